/*
 * move_mover.c — where a moved session goes and the mover that logs in
 * there (move_int.h): the region and need of the target, the fetcher
 * (fetch.h) that logs in to it (again, while a standby has not replayed
 * the session's position), and whether it can take the session.
 */
#include "proxy/session/move.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/fetch.h"
#include "proxy/session/gate.h"
#include "proxy/session/move_int.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/session_need.h"
#include "routing/need.h"
#include "routing/region.h"
#include "routing/route.h"

/* Whether the region named (of the worker's configuration) holds s's database. */
bool move_region_holds_database(const struct session *s, const char *region)
{
    struct region_subset where;
    struct locality loc;
    session_locality(s, NULL, &loc);
    const struct region_subset *placed = session_placed(s, s->w->cfg, &loc, &where);
    const struct region *r = region_set_find(&s->w->cfg->regions, region);
    return placed == NULL || r == NULL || region_subset_has(placed, r);
}

/* The session's route now for its own need: its home region, plan[0]. */
static size_t move_route(const struct session *s, struct region **plan)
{
    struct locality loc;
    double cosines[ROUTE_MAX_REGIONS];
    struct need_spec need = s->need; /* its role, not what its transactions read */
    need_forget_reads(&need);
    session_locality(s, NULL, &loc);
    return session_replan(s, s->w->cfg, &loc, &need, plan, cosines, ROUTE_MAX_REGIONS);
}

void move_home_region(const struct session *s, char *out, size_t cap)
{
    struct region *plan[ROUTE_MAX_REGIONS];
    size_t n = move_route(s, plan);
    snprintf(out, cap, "%s", n > 0 ? plan[0]->name : "");
}

/*
 * What the mover needs (session_need.h: MOVE): never older data than its
 * server had; a primary where the move says so (move_target's primary).
 */
static struct need_spec move_need(const struct session_move *mv)
{
    struct need_spec need =
        session_need_for(mv->s, NEED_AT_MOVE, mv->st.lsn_known ? mv->st.lsn : 0);
    if (mv->target.primary)
        need.role = NEED_PRIMARY;
    /*
     * Its server, a primary, ended before its position could be read: only
     * a primary surely has what the session saw there (move_lost_refusal).
     */
    if (mv->lost && need_reads_standbys(need.role))
        need.role = NEED_READ_WRITE;
    return need;
}

/* What the mover fetches: its need, in the target region or any but the one to avoid. */
static struct fetch_want move_want(const struct session_move *mv)
{
    return (struct fetch_want){.need = move_need(mv),
                               .region = mv->target.region,
                               .only = mv->target.region[0] != '\0',
                               .avoid = mv->target.avoid};
}

/*
 * Whether a standby that has not replayed the position want needs yet,
 * in a region the move may go to, may catch up (loc: as fetch_plan set it).
 */
static bool move_may_catch_up(const struct session_move *mv, const struct fetch_want *want,
                              const struct locality *loc)
{
    const struct config *cfg = mv->s->w->cfg;
    if (want->need.min_lsn == 0 || !need_reads_standbys(want->need.role))
        return false;
    for (size_t i = 0; i < cfg->regions.count; i++) {
        struct region *r = &cfg->regions.items[i];
        if (!fetch_wants(want, loc, r) || !move_region_holds_database(mv->s, r->name))
            continue;
        for (size_t j = 0; j < r->nhosts; j++)
            if (need_may_catch_up(&r->hosts[j], &want->need))
                return true;
    }
    return false;
}

/* How often a move waiting for a standby to replay the session's position looks again. */
#define MOVE_REPLAY_POLL_MS 50

static void move_retry_cb(evutil_socket_t fd, short what, void *arg);

/* Looks again in MOVE_REPLAY_POLL_MS for a standby that has replayed the position. */
static void move_retry_later(struct session_move *mv)
{
    struct timeval tv = {0, MOVE_REPLAY_POLL_MS * 1000};
    if (mv->retry == NULL && (mv->retry = evtimer_new(mv->s->w->base, move_retry_cb, mv)) == NULL) {
        move_end(mv, false, "out of memory");
        return;
    }
    evtimer_add(mv->retry, &tv);
}

/*
 * Logs the mover in; first, while only a standby that has not replayed
 * the session's position would fit, waits for it (within move_timeout:
 * its health checks tell when it has).  Early (before the state is read:
 * the position is not known yet), a move with nowhere to go now starts
 * no mover; the one after the read waits or says why.
 */
void move_start_mover(struct session_move *mv, bool early)
{
    struct fetch_want want = move_want(mv);
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double cosines[ROUTE_MAX_REGIONS];
    size_t n = fetch_plan(mv->s, &want, &loc, plan, cosines);
    if (n == 0 && early)
        return; /* the read tells the position; the mover after it waits or says why */
    if (n == 0 && move_may_catch_up(mv, &want, &loc)) {
        move_retry_later(mv);
        return;
    }
    /*
     * A session whose server ended, or one leaving a former primary, waits
     * as a login does for a primary being promoted (wait_for_role).
     */
    if (n == 0 && !mv->target.wait_for_role) {
        move_end(mv, false, "no region to move it to has a server that fits what it needs");
        return;
    }
    if (n > 0)
        snprintf(mv->res.to, sizeof(mv->res.to), "%s", plan[0]->name);
    slog_debug(mv->s, "move: a mover logs in to region %s", n > 0 ? plan[0]->name : "(none yet)");
    const char *why = fetch_start(mv->s, &want, mv->mover_ops, mv, &mv->mover);
    if (why != NULL)
        move_end(mv, false, why);
}

static void move_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session_move *mv = arg;
    struct session *s = mv->s;
    (void)fd;
    (void)what;
    s->busy++;
    move_start_mover(mv, false);
    session_callback_done(s);
}

void move_mover_lost(struct session *m, void *arg, const char *why)
{
    struct session_move *mv = arg;
    (void)m;
    mv->mover = NULL;
    char reason[256];
    snprintf(reason, sizeof(reason), "the target failed: %s", why != NULL ? why : "closed");
    struct session *s = mv->s;
    s->busy++;
    move_end(mv, false, reason);
    session_callback_done(s);
}

/*
 * The mover logged in before the state was read: it fits only if its
 * server has what the session has seen (a standby may not have replayed
 * the position read back); if not, it goes, and a mover that waits for a
 * standby that has it, or goes elsewhere, takes its place.
 */
bool move_mover_fits(struct session_move *mv)
{
    struct need_spec need = move_need(mv);
    if (need.min_lsn == 0 || need_host_fit(mv->mover->server_conn->host, &need) != NEED_FIT_NONE)
        return true;
    struct session *m = mv->mover;
    mv->mover = NULL;
    mv->mover_ready = false;
    fetch_close(m, "its standby had not replayed the session's position");
    return false;
}

const char *move_route_detached(struct session *s, const struct move_target *t,
                                struct move_result *r)
{
    struct region *plan[ROUTE_MAX_REGIONS];
    snprintf(r->from, sizeof(r->from), "%s", s->region->name);
    snprintf(r->to, sizeof(r->to), "%s", t->region);
    size_t n = move_route(s, plan);
    const char *home = n > 0 ? plan[0]->name : ""; /* what its route picks (move_home_region) */
    for (size_t i = 0; i < n && r->to[0] == '\0'; i++)
        if (strcmp(plan[i]->name, t->avoid) != 0)
            snprintf(r->to, sizeof(r->to), "%s", plan[i]->name);
    if (r->to[0] == '\0')
        return "no region to move it to has a server that fits what it needs";
    char *region = NULL;
    if (strcmp(home, r->to) != 0 && (region = strdup(r->to)) == NULL)
        return "out of memory";
    if (region != NULL || s->rare->txn_region != NULL) {
        struct session_rare *rare = session_rare_own(&s->rare);
        if (rare == NULL) {
            free(region);
            return "out of memory";
        }
        free(rare->txn_region);
        rare->txn_region = region;
    }
    /* It belongs to that region now (a DRAIN of the old one ends those still there). */
    struct region *to = region_set_find(&s->cfg->regions, r->to);
    if (to != NULL)
        s->region = to;
    s->moves++;
    slog_info(s, "its next transactions go to region %s (it holds no server connection now)",
              r->to);
    return NULL;
}
