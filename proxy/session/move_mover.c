/*
 * move_mover.c — where a moved session goes and the mover that logs in
 * there (move_int.h): the region and need of the target, the internal
 * session that logs in to it (again, while a standby has not replayed the
 * session's position), and whether it can take the session.
 */
#include "proxy/session/move.h"

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/gate.h"
#include "proxy/session/move_int.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/need.h"
#include "routing/region.h"
#include "routing/route.h"

void session_origin_locality(const struct session *s, const struct config *cfg,
                             struct locality *loc)
{
    const struct session_origin *o = &s->origin;
    memset(loc, 0, sizeof(*loc));
    loc->source = (enum locality_source)o->source;
    loc->via = "the session's login";
    loc->has_coords = o->has_coords;
    loc->lat = o->lat;
    loc->lon = o->lon;
    loc->region = o->region[0] ? region_set_find(&cfg->regions, o->region) : NULL;
}

/* Whether the region named (of the worker's configuration) holds s's database. */
bool move_region_holds_database(const struct session *s, const char *region)
{
    struct region_subset where;
    const struct region_subset *placed =
        placement_of(&s->w->shared->placement, s->w->cfg, s->database, &where);
    const struct region *r = region_set_find(&s->w->cfg->regions, region);
    return placed == NULL || r == NULL || region_subset_has(placed, r);
}

void move_home_region(const struct session *s, char *out, size_t cap)
{
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double cosines[ROUTE_MAX_REGIONS];
    struct region_subset where;
    const struct config *cfg = s->w->cfg;
    session_origin_locality(s, cfg, &loc);
    size_t n = route_plan(&cfg->routing, &loc, &s->need,
                          placement_of(&s->w->shared->placement, cfg, s->database, &where), plan,
                          cosines, ROUTE_MAX_REGIONS);
    snprintf(out, cap, "%s", n > 0 ? plan[0]->name : "");
}

/* What the mover needs: the session's need, and the position it has seen (never older data). */
static struct need_spec move_need(const struct session_move *mv)
{
    struct need_spec need = mv->s->need;
    if (mv->st.lsn_known && (need.min_lsn < mv->st.lsn || need.min_tli != 0)) {
        need.min_lsn = mv->st.lsn;
        need.min_tli = 0;
    }
    return need;
}

/* The regions of route that the move may go to: the target, or any but the one to avoid. */
static size_t move_keep_wanted(const struct session_move *mv, const struct region *target,
                               struct region **plan, double *cosines, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        bool wanted =
            mv->target.region[0] ? plan[i] == target : strcmp(plan[i]->name, mv->target.avoid) != 0;
        if (wanted) {
            plan[kept] = plan[i];
            cosines[kept++] = cosines[i];
        }
    }
    return kept;
}

/*
 * The mover's plan, by the caller's locality (the target named first):
 * its count, 0 when no region fits; then *later says whether one would
 * once a standby has replayed the session's position.
 */
static size_t move_plan(const struct session_move *mv, const struct config *cfg,
                        struct locality *loc, struct region **plan, double *cosines, bool *later)
{
    struct need_spec need = move_need(mv);
    session_origin_locality(mv->s, cfg, loc);
    if (mv->target.region[0] != '\0') {
        loc->source = LOCALITY_REGION_HINT;
        loc->region = region_set_find(&cfg->regions, mv->target.region);
    }
    struct region_subset where;
    const struct region_subset *placed =
        placement_of(&mv->s->w->shared->placement, cfg, mv->s->database, &where);
    size_t n = route_plan(&cfg->routing, loc, &need, placed, plan, cosines, ROUTE_MAX_REGIONS);
    n = move_keep_wanted(mv, loc->region, plan, cosines, n);
    *later = false;
    if (n > 0 || need.min_lsn == 0 || !need_reads_standbys(need.role))
        return n;
    /* None fits now: is there a standby, in a region it may go to, that is catching up? */
    for (size_t i = 0; i < cfg->regions.count && !*later; i++) {
        struct region *r = &cfg->regions.items[i];
        bool wanted =
            mv->target.region[0] ? r == loc->region : strcmp(r->name, mv->target.avoid) != 0;
        wanted = wanted && (placed == NULL || region_subset_has(placed, r));
        for (size_t j = 0; wanted && j < r->nhosts && !*later; j++)
            *later = need_may_catch_up(&r->hosts[j], &need);
    }
    return n;
}

/* The mover's login state, besides the session's own (session_new_internal): its need and plan. */
static const char *move_mover_init(struct session_move *mv, struct session *m)
{
    struct session_login *l = m->login;
    l->move_of = mv;
    m->need = move_need(mv);
    bool later;
    l->plan_len = move_plan(mv, m->cfg, &l->loc, l->plan, l->plan_cos, &later);
    if (l->plan_len == 0)
        return "no region to move it to has a server that fits what it needs";
    m->region = l->plan[0];
    snprintf(mv->res.to, sizeof(mv->res.to), "%s", l->plan[0]->name);
    return NULL;
}

/* How often a move waiting for a standby to replay the session's position looks again. */
#define MOVE_REPLAY_POLL_MS 50

static void move_retry_cb(evutil_socket_t fd, short what, void *arg);

/*
 * Logs the mover in; first, while only a standby that has not replayed
 * the session's position would fit, waits for it (within move_timeout:
 * its health checks tell when it has).  Early (before the state is read:
 * the position is not known yet), a move with nowhere to go now starts
 * no mover; the one after the read waits or says why.
 */
void move_start_mover(struct session_move *mv, bool early)
{
    struct session *s = mv->s;
    struct worker *w = s->w;
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double cosines[ROUTE_MAX_REGIONS];
    bool later;
    size_t n = move_plan(mv, w->cfg, &loc, plan, cosines, &later);
    if (n == 0 && early)
        return; /* the read tells the position; the mover after it waits or says why */
    if (n == 0 && later) {
        struct timeval tv = {0, MOVE_REPLAY_POLL_MS * 1000};
        if (mv->retry == NULL && (mv->retry = evtimer_new(w->base, move_retry_cb, mv)) == NULL) {
            move_end(mv, false, "out of memory");
            return;
        }
        evtimer_add(mv->retry, &tv);
        return;
    }
    const char *why = NULL;
    struct session *m = session_new_internal(s, "move", &why);
    if (m == NULL) {
        move_end(mv, false, why);
        return;
    }
    if ((why = move_mover_init(mv, m)) != NULL) {
        m->login->move_of = NULL;
        session_close(m, why);
        move_end(mv, false, why);
        return;
    }
    mv->mover = m;
    log_debug(s->id, "move: client %llu logs in to region %s", (unsigned long long)m->id,
              m->region->name);
    phase_begin_at(m, PHASE_CONNECT);
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

void move_target_lost(struct session *m, const char *why)
{
    struct session_move *mv = m->login->move_of;
    m->login->move_of = NULL;
    mv->mover = NULL;
    char reason[256];
    snprintf(reason, sizeof(reason), "the target failed: %s", why != NULL ? why : "closed");
    struct session *s = mv->s;
    s->busy++;
    move_end(mv, false, reason);
    session_callback_done(s);
}

void move_abandon(struct session *s)
{
    struct session_move *mv = s->move;
    move_end(mv, false, s->closing_why != NULL ? s->closing_why : "the session ended");
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
    m->login->move_of = NULL;
    session_close(m, "its standby had not replayed the session's position");
    return false;
}
