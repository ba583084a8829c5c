/*
 * move_ask.c — asking for a move of a live session (move.h, move_int.h):
 * whether it can move, where to when no region is named, its time limit,
 * and the move started.
 */
#include "proxy/session/move.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/session_state.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/gate.h"
#include "proxy/session/move_int.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/need.h"
#include "routing/region.h"
#include "routing/route.h"

/* Between two transactions under transaction pooling: no server, none being fetched. */
static bool move_session_detached(const struct session *s)
{
    return s->phase == PHASE_ACTIVE && txn_next_detached_idle(s) && s->pinned == NULL;
}

const char *move_refusal(const struct session *s)
{
    if (s->unmovable != NULL)
        return s->unmovable;
    if (move_session_detached(s))
        return s->hold.on_safe == SAFE_CLOSE ? "it is being drained" : NULL;
    if (s->phase != PHASE_ACTIVE || s->server_conn == NULL)
        return "it is not relaying";
    if (s->secret == NULL)
        return "pgnear has no key to log in for it";
    if (s->rare->move != NULL)
        return "it is being moved already";
    if (s->hold.on_safe == SAFE_CLOSE)
        return "it is being drained";
    if (s->move_answer_owed)
        return "its server still owes the answer of the last move's query";
    return NULL;
}

static void move_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session_move *mv = arg;
    struct session *s = mv->s;
    (void)fd;
    (void)what;
    char why[160];
    if (mv->lost)
        snprintf(why, sizeof(why),
                 "no server took it within failover_wait and move_timeout (%d ms) after its own "
                 "ended",
                 mv->failover_ms + mv->timeout_ms);
    else if (mv->target.wait_for_role && !mv->mover_ready)
        snprintf(why, sizeof(why),
                 "no server that fits took it within failover_wait and move_timeout (%d ms)",
                 mv->failover_ms + mv->timeout_ms);
    else if (mv->step == MOVE_WAITING && mv->mover != NULL && !mv->mover_ready)
        snprintf(why, sizeof(why), "logging in to the target took longer than move_timeout (%d ms)",
                 mv->timeout_ms);
    else if (mv->step == MOVE_WAITING)
        snprintf(why, sizeof(why), "it reached no transaction boundary within move_timeout (%d ms)",
                 mv->timeout_ms);
    else if (mv->step == MOVE_CONNECTING && mv->mover == NULL)
        snprintf(why, sizeof(why),
                 "no standby of the region replayed its position within move_timeout (%d ms)",
                 mv->timeout_ms);
    else
        snprintf(why, sizeof(why), "the move took longer than move_timeout (%d ms)",
                 mv->timeout_ms);
    s->busy++;
    move_end(mv, false, why);
    session_callback_done(s);
}

static void move_refused(struct session *s, const char *why, move_done_fn done, void *arg)
{
    struct move_result r = {.client_id = s->id};
    snprintf(r.from, sizeof(r.from), "%s", s->region != NULL ? s->region->name : "");
    snprintf(r.reason, sizeof(r.reason), "%s", why);
    slog_info(s, "not moved: %s", why);
    stat_inc(&s->w->stats.moves_failed);
    done(&r, arg);
}

/*
 * A detached session (transaction pooling) has nothing to carry: its next
 * transactions go to the region the move names, or to the first of its
 * own route that is not the one to avoid; one sent to the region its
 * route picks anyway follows its route again.
 */
static void move_detached(struct session *s, const struct move_target *t, move_done_fn done,
                          void *arg)
{
    struct move_result r = {.client_id = s->id, .moved = true};
    const char *why = move_route_detached(s, t, &r);
    if (why != NULL) {
        move_refused(s, why, done, arg);
        return;
    }
    stat_inc(&s->w->stats.moves_done);
    done(&r, arg);
}

/* A move's record for s, its move_timeout running, s's move from now on; NULL: out of memory. */
static struct session_move *move_new(struct session *s, const struct move_target *t,
                                     move_done_fn done, void *arg)
{
    struct session_rare *rare = session_rare_own(&s->rare);
    struct session_move *mv = rare != NULL ? calloc(1, sizeof(*mv)) : NULL;
    if (mv == NULL)
        return NULL;
    if (session_state_init(&mv->st) != SESSION_STATE_OK ||
        (mv->timer = evtimer_new(s->w->base, move_timeout_cb, mv)) == NULL) {
        session_state_free(&mv->st);
        free(mv);
        return NULL;
    }
    mv->s = s;
    mv->mover_ops = &move_mover_ops;
    mv->target = *t;
    mv->done = done;
    mv->arg = arg;
    mv->res.client_id = s->id;
    snprintf(mv->res.from, sizeof(mv->res.from), "%s", s->region->name);
    snprintf(mv->res.to, sizeof(mv->res.to), "%s", t->region);
    /* The worker's values now: an admin's SET move_timeout before a DRAIN is what it waits. */
    mv->timeout_ms = s->w->cfg->move_timeout_ms;
    mv->failover_ms = s->w->cfg->failover_wait_ms;
    int limit_ms = mv->timeout_ms + (t->wait_for_role ? mv->failover_ms : 0);
    struct timeval tv = {limit_ms / 1000, (limit_ms % 1000) * 1000};
    evtimer_add(mv->timer, &tv);
    rare->move = mv;
    rare->moving = &move_session_hooks;
    return mv;
}

void move_session(struct session *s, const struct move_target *t, move_done_fn done, void *arg)
{
    const char *why = move_refusal(s);
    if (why == NULL && t->region[0] != '\0' && strcmp(t->region, s->region->name) == 0)
        why = "it is in that region already";
    if (why == NULL && t->region[0] != '\0' && !move_region_holds_database(s, t->region))
        why = "its database does not live in that region";
    if (why == NULL && move_session_detached(s)) {
        move_detached(s, t, done, arg);
        return;
    }
    struct session_move *mv = why == NULL ? move_new(s, t, done, arg) : NULL;
    if (why == NULL && mv == NULL)
        why = "out of memory";
    if (why != NULL) {
        move_refused(s, why, done, arg);
        return;
    }
    s->busy++;
    /*
     * The mover logs in first, while the session runs on: the client is
     * held only for the read and the replay.  Where none can log in yet (a
     * standby must replay the position the read will tell), it is held now.
     */
    move_start_mover(mv, true);
    if (s->rare->move == mv && (mv->mover == NULL || t->hold_first))
        move_hold(mv);
    session_callback_done(s);
}

/* Not between transactions: what it ran there ends with an error, as it would directly. */
static const char move_lost_not_idle[] = "it was not idle";

const char *move_lost_refusal(const struct session *s)
{
    const struct server_conn *sc = s->server_conn;
    /* Transaction pooling and nearest fetch a connection for each transaction anyway. */
    if (s->txn != NULL || s->phase != PHASE_ACTIVE || sc == NULL ||
        !server_conn_at_safe_point(sc) || s->client.fwd_remaining != 0 || sc->ep.fwd_remaining != 0)
        return move_lost_not_idle;
    if (s->state_unknown != NULL)
        return s->state_unknown;
    if (s->hold.on_safe != SAFE_NOTHING)
        return "it is held";
    /* A standby's replayed position is not known without it: no other server surely has it. */
    if (need_reads_standbys(s->need.role) && host_is_standby(sc->host))
        return "its server was a standby, whose position is not known without it";
    return move_refusal(s);
}

/* The end of a move without its server: the log says it (move_end); on failure the session ends. */
static void move_lost_done(const struct move_result *r, void *arg)
{
    (void)r;
    (void)arg;
}

/* The ended server's connection while the move goes on: its failures are nobody's. */
static void move_lost_old_failed(struct session *s, struct endpoint *ep, const char *why, bool gone)
{
    (void)s;
    (void)ep;
    (void)why;
    (void)gone;
}

static const struct endpoint_owner move_lost_old_owner = {
    .event = session_endpoint_event,
    .failed = move_lost_old_failed,
    .log_id = session_endpoint_log_id,
};

bool move_session_lost(struct session *s, const uint8_t *error, size_t len, const char *why)
{
    const char *refusal = move_lost_refusal(s);
    if (refusal == move_lost_not_idle) {
        slog_debug(s, "its server ended while it was not idle (%s): no move", why);
        return false;
    }
    if (refusal != NULL) {
        slog_info(s, "its server ended while it was idle (%s); it cannot move without it: %s", why,
                  refusal);
        return false;
    }
    /* Its mover may wait for a primary being promoted as a login would: failover_wait more. */
    struct move_target t = {.hold_first = true, .wait_for_role = true};
    struct session_move *mv = move_new(s, &t, move_lost_done, NULL);
    if (mv == NULL)
        return false;
    slog_info(s,
              "its server %s:%d of region %s ended while it was idle (%s): moving it with "
              "its login's state",
              s->server_conn->host->name, s->server_conn->host->port, s->region->name, why);
    /* Nothing to read: the replay is the login's (the mover's own), then a Sync. */
    mv->lost = true;
    mv->lost_downs = health_downs(s->server_conn->host);
    mv->old_gone = true;
    mv->step = MOVE_CONNECTING;
    mv->held_us = monotonic_us();
    snprintf(mv->old_why, sizeof(mv->old_why), "%s", why);
    if (error != NULL && len <= sizeof(mv->old_error)) {
        memcpy(mv->old_error, error, len);
        mv->old_error_len = (uint32_t)len;
    }
    /* It knows its state no more: a second end of its server before it moved is the last. */
    s->state_unknown = "its server ended before it moved";
    server_conn_uncount(s->server_conn);
    struct endpoint *ep = &s->server_conn->ep;
    ep->owner = &move_lost_old_owner;
    endpoint_set_reader(ep, NULL);
    evbuffer_drain(ep->in, evbuffer_get_length(ep->in));
    evbuffer_drain(ep->out, evbuffer_get_length(ep->out));
    endpoint_arm(ep);
    s->busy++;
    if (session_state_finish(&mv->st) != SESSION_STATE_OK)
        move_end(mv, false, "out of memory");
    else if (gate_hold_session(s, HOLD_MOVE) && s->rare->move == mv)
        move_start_mover(mv, false);
    session_callback_done(s);
    return true;
}
