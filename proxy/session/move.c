/*
 * move.c — moving a live session to another server (move.h).
 */
#include "proxy/session/move.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "protocol/clock.h"
#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/session_state.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "proxy/session/cancel.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/gate.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/relay.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/region.h"
#include "routing/need.h"
#include "routing/route.h"

/* The largest message of the state's answer or the replay's read at once. */
#define MOVE_MAX_MESSAGE (SESSION_STATE_MAX_BYTES + 1024)

enum move_step {
    MOVE_WAITING,    /* for the session's next safe point (the mover logs in meanwhile) */
    MOVE_READING,    /* the old server answers the state query */
    MOVE_CONNECTING, /* the state is read; the mover is still logging in to the target */
    MOVE_REPLAYING,  /* the target runs the replay */
    MOVE_DRAINING,   /* the old server answers a NOTIFY: its notifications go on */
};

struct session_move {
    struct session *s;
    struct session *mover; /* the internal session logging in to the target; NULL: none */
    bool mover_ready;      /* it has logged in, and waits for the state to replay */
    struct move_target target;
    enum move_step step;
    move_done_fn done;
    void *arg;
    struct move_result res;
    struct session_state st;
    struct event *timer; /* move_timeout */
    struct event *retry; /* waiting for a standby to replay the session's position */
    int64_t held_us;     /* when the client was held; 0: not yet */
    char failure[200];   /* why the read or the replay failed; "" */
    bool old_gone;       /* the old server failed after the state was read (move_old_failed) */
    char old_why[320];   /* ... and why: the session ends with it if the move fails */
    /* An ErrorResponse the old server sent meanwhile (its FATAL as it ends), held back. */
    uint8_t old_error[1024];
    uint32_t old_error_len;
};

static void move_fail_text(struct session_move *mv, const char *prefix, const char *text)
{
    if (mv->failure[0] == '\0')
        snprintf(mv->failure, sizeof(mv->failure), "%s%s", prefix, text);
}

/* A server's ErrorResponse as the failure: its SQLSTATE and message, after prefix. */
static void move_fail_report(struct session_move *mv, const char *prefix, const uint8_t *body,
                             uint32_t len)
{
    const char *sqlstate = pkt_report_field(body, len, 'C');
    const char *msg = pkt_report_field(body, len, 'M');
    char words[sizeof(mv->failure)];
    snprintf(words, sizeof(words), "%s %s", sqlstate != NULL ? sqlstate : "XX000",
             msg != NULL ? msg : "(no message)");
    move_fail_text(mv, prefix, words);
}

static int move_pass_on(struct session *s, char type, const uint8_t *body, uint32_t len);
static void move_old_read(struct session *s);

/*
 * The move failed: the session stays on its old server.  What the server
 * said meanwhile and was held back reaches the client now, and the relay
 * takes the connection again (unless it is gone, or still owes the answer
 * of a query of the move's, whose reader gives it back at its end).
 */
static void move_old_back(struct session_move *mv)
{
    struct session *s = mv->s;
    struct server_conn *old = s->server_conn;
    old->ep.on_fail = NULL;
    if (mv->old_error_len > 0) {
        if (move_pass_on(s, 'E', mv->old_error, mv->old_error_len) < 0)
            return;
        old->ep.last_type = 'E';
        mv->old_error_len = 0;
    }
    if (!mv->old_gone && !s->move_answer_owed && old->ep.on_read == move_old_read)
        relay_attach_server(s);
}

/*
 * The move ends: whoever asked hears how, the session is read again (if
 * no other hold keeps it), and everything the move made is let go.  The
 * mover, if still there, is closed with its connection.
 */
static void move_end(struct session_move *mv, bool moved, const char *reason)
{
    struct session *s = mv->s;
    struct session *mover = mv->mover;
    mv->res.moved = moved;
    snprintf(mv->res.reason, sizeof(mv->res.reason), "%s", moved ? "" : reason);
    mv->res.hold_us = mv->held_us > 0 ? monotonic_us() - mv->held_us : 0;
    if (mv->timer != NULL)
        event_free(mv->timer);
    if (mv->retry != NULL)
        event_free(mv->retry);
    session_state_free(&mv->st);
    s->move = NULL;
    mv->mover = NULL;
    if (mover != NULL) {
        mover->login->move_of = NULL;
        session_close(mover, moved ? "its connection went to the moved session" : reason);
    }
    if (moved)
        log_info(s->id, "moved from region %s to region %s (client held %.1f ms)", mv->res.from,
                 mv->res.to, (double)mv->res.hold_us / 1000.0);
    else
        log_info(s->id, "not moved from region %s%s%s: %s", mv->res.from,
                 mv->res.to[0] ? " to region " : "", mv->res.to, reason);
    stat_inc(moved ? &s->w->stats.moves_done : &s->w->stats.moves_failed);
    if (moved)
        stat_move_hold(&s->w->stats, mv->res.hold_us);
    bool old_gone = mv->old_gone && !moved && !s->closed;
    if (!moved && !s->closed && s->server_conn != NULL)
        move_old_back(mv);
    if (!s->closed)
        gate_release_session(s, HOLD_MOVE);
    char why[sizeof(mv->old_why)];
    snprintf(why, sizeof(why), "%s", mv->old_why);
    mv->done(&mv->res, mv->arg);
    free(mv);
    /* The old server is gone and the move could not save the session: it ends as it would have. */
    if (old_gone && !s->closed)
        session_server_gone(s, why);
}

/* Between two transactions under transaction pooling: no server, none being fetched. */
static bool move_session_detached(const struct session *s)
{
    return s->txn != NULL && s->phase == PHASE_ACTIVE && s->server_conn == NULL &&
           s->fetcher == NULL && s->pinned == NULL;
}

const char *move_refusal(const struct session *s)
{
    if (s->unmovable != NULL)
        return s->unmovable;
    if (move_session_detached(s))
        return s->on_safe == SAFE_CLOSE ? "it is being drained" : NULL;
    if (s->phase != PHASE_ACTIVE || s->server_conn == NULL)
        return "it is not relaying";
    if (s->secret == NULL)
        return "pgnear has no key to log in for it";
    if (s->move != NULL)
        return "it is being moved already";
    if (s->on_safe == SAFE_CLOSE)
        return "it is being drained";
    if (s->move_answer_owed)
        return "its server still owes the answer of the last move's query";
    return NULL;
}

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
static bool move_region_holds_database(const struct session *s, const char *region)
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

static void move_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session_move *mv = arg;
    struct session *s = mv->s;
    (void)fd;
    (void)what;
    char why[160];
    if (mv->step == MOVE_WAITING && mv->mover != NULL && !mv->mover_ready)
        snprintf(why, sizeof(why), "logging in to the target took longer than move_timeout (%d ms)",
                 s->cfg->move_timeout_ms);
    else if (mv->step == MOVE_WAITING)
        snprintf(why, sizeof(why), "it reached no transaction boundary within move_timeout (%d ms)",
                 s->cfg->move_timeout_ms);
    else if (mv->step == MOVE_CONNECTING && mv->mover == NULL)
        snprintf(why, sizeof(why),
                 "no standby of the region replayed its position within move_timeout (%d ms)",
                 s->cfg->move_timeout_ms);
    else
        snprintf(why, sizeof(why), "the move took longer than move_timeout (%d ms)",
                 s->cfg->move_timeout_ms);
    s->busy++;
    move_end(mv, false, why);
    session_callback_done(s);
}

/* A message of the old server that is not the move's: on to the client, as the relay would. */
static int move_pass_on(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    if (pkt_add_msg(s->client.out, type, body, len) != 0) {
        session_close(s, "out of memory");
        return -1;
    }
    return endpoint_flush(s, &s->client);
}

static void move_bad_length(struct session *s)
{
    session_fail_msg(s, "08P01", "invalid message length from server");
}

/*
 * A reader of the session's server connection (the mover's, for the
 * target): whole messages, each handed to handler (msg_loop.h).
 */
#define MOVE_READER(name, handler)                                                                 \
    static const struct msg_reader name##_table = {.fill_max = 65536,                              \
                                                   .max_body = MOVE_MAX_MESSAGE,                   \
                                                   .on_message = handler,                          \
                                                   .on_bad_length = move_bad_length};              \
    static void name(struct session *s)                                                            \
    {                                                                                              \
        endpoint_read_messages(s, &s->server_conn->ep, &name##_table);                             \
    }

/* The ReadyForQuery that ends an answer: its status; the bytes after it stay for the relay. */
static char move_ready(struct endpoint *ep, const uint8_t *body, uint32_t len)
{
    char status = len >= 1 ? (char)body[0] : '?';
    frame_consume(ep->in, len);
    return status;
}

static void move_start_mover(struct session_move *mv, bool early);
static void move_replay_start(struct session_move *mv);

static void move_switch(struct session_move *mv);

/*
 * The old server failed while the session waits, held at its safe point,
 * for its move: its state is read, so the move goes on, and the session
 * lives on the target if the target takes it.  If the move fails, the
 * session ends as the failure would have ended it (move_end).  The old
 * connection's events stop here; it is closed at the switch or the end.
 */
static void move_old_failed(struct session *s, struct endpoint *ep, const char *why)
{
    struct session_move *mv = s->move;
    if (mv->old_gone)
        return;
    mv->old_gone = true;
    snprintf(mv->old_why, sizeof(mv->old_why), "%s", why);
    log_info(s->id, "its server failed during its move (%s); the move goes on", why);
    endpoint_set_reader(ep, NULL);
    evbuffer_drain(ep->out, evbuffer_get_length(ep->out));
    endpoint_arm(ep);
    /* Draining its notifications was all that was left: the switch is now. */
    if (mv->step == MOVE_DRAINING && s->move_answer_owed) {
        s->move_answer_owed = false;
        move_switch(mv);
    }
}

/*
 * A message the idle old server sends while the move goes on: a
 * notification, a notice or a parameter goes on to the client, as the
 * relay would pass it; an ErrorResponse (the FATAL of a server shutting
 * down) is held back: if the server then goes, the move may still save
 * the session, which then never hears of it (move_end tells it
 * otherwise).
 */
static int move_old_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct session_move *mv = s->move;
    if (type != 'E')
        return move_pass_on(s, type, body, len) < 0 ? MSG_STOP : MSG_CONSUMED;
    if (mv->old_error_len == 0 && len <= sizeof(mv->old_error)) {
        memcpy(mv->old_error, body, len);
        mv->old_error_len = len;
    }
    return MSG_CONSUMED;
}

MOVE_READER(move_old_read, move_old_message)

/* The old server answered the state query (status: its ReadyForQuery's). */
static void move_state_done(struct session *s, char status)
{
    struct session_move *mv = s->move;
    s->move_answer_owed = false;
    if (mv == NULL) {
        relay_attach_server(s); /* the move ended meanwhile (move_timeout): the relay goes on */
        return;
    }
    /* What the old server sends while the move goes on: see move_old_message. */
    endpoint_set_reader(&s->server_conn->ep, move_old_read);
    const char *why = mv->failure[0] ? mv->failure : session_state_unmovable(&mv->st, s->user);
    if (why == NULL && status != 'I')
        why = "its server was not idle";
    if (why == NULL && session_state_finish(&mv->st) != SESSION_STATE_OK)
        why = "out of memory";
    if (why != NULL) {
        move_end(mv, false, why);
        return;
    }
    mv->step = MOVE_CONNECTING;
    s->server_conn->ep.on_fail = move_old_failed;
    log_debug(s->id, "move: its state is read (%zu bytes to replay)",
              evbuffer_get_length(mv->st.replay));
    if (mv->mover == NULL)
        move_start_mover(mv, false);
    else if (mv->mover_ready)
        move_replay_start(mv);
    /* else the mover's login, begun with the move, replays once it ends (move_target_ready) */
}

/* One message of the old server's answer to the state query. */
static int move_state_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct session_move *mv = s->move;
    int rc;
    if (mv == NULL && type != 'Z')
        return MSG_CONSUMED; /* the move ended before the answer did */
    switch (type) {
    case 'D':
        rc = mv->failure[0] ? SESSION_STATE_OK : session_state_row(&mv->st, body, len);
        if (rc == SESSION_STATE_FULL)
            move_fail_text(mv, "", "its prepared statements are larger than a move carries");
        else if (rc != SESSION_STATE_OK)
            move_fail_text(mv, "", "pgnear could not read its state back from the server");
        return MSG_CONSUMED;
    case 'E':
        move_fail_report(mv, "reading its state failed: ", body, len);
        return MSG_CONSUMED;
    case 'T':
    case 'C':
        return MSG_CONSUMED;
    case 'Z':
        move_state_done(s, move_ready(&s->server_conn->ep, body, len));
        return MSG_STOP;
    default: /* NotificationResponse, NoticeResponse, ParameterStatus: the client's */
        return move_pass_on(s, type, body, len) < 0 ? MSG_STOP : MSG_CONSUMED;
    }
}

MOVE_READER(move_state_read, move_state_message)

/* The session is asked to stop at its next safe point (now, if it is at one). */
static void move_hold(struct session_move *mv)
{
    struct session *s = mv->s;
    if (gate_hold_session(s, HOLD_MOVE) && s->move == mv && s->held)
        move_held(s);
}

/* The session is held at its safe point: the old server is asked for the state. */
void move_held(struct session *s)
{
    struct session_move *mv = s->move;
    if (mv == NULL || mv->step != MOVE_WAITING)
        return;
    struct server_conn *old = s->server_conn;
    mv->held_us = monotonic_us();
    if (old->ep.fwd_remaining != 0 || evbuffer_get_length(old->ep.in) > 0) {
        move_end(mv, false, "its server was sending a message");
        return;
    }
    mv->step = MOVE_READING;
    s->move_answer_owed = true;
    if (pkt_add_query(old->ep.out, session_state_query()) != 0) {
        move_end(mv, false, "out of memory");
        return;
    }
    endpoint_set_reader(&old->ep, move_state_read);
    endpoint_flush(s, &old->ep);
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
static void move_start_mover(struct session_move *mv, bool early)
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
 * The switch: the session's cancel key names the new backend, the old
 * connection is let go (kept by the pool after its reset, or closed), and
 * the relay takes the new one.  Inside the mover's callback; the session
 * is not in one of its own.
 */
static void move_switch(struct session_move *mv)
{
    struct session *s = mv->s, *m = mv->mover;
    struct server_conn *old = s->server_conn, *ns = m->server_conn;
    s->busy++;
    cancel_retarget(s, ns);
    /* The old connection goes first: the pool's release unlinks it from s. */
    old->ep.on_fail = NULL;
    if (mv->old_gone)
        server_conn_close(old, false);
    else
        s->w->shared->flow->server_release(old);
    server_conn_hand_over(ns, m, s);
    s->moves++;
    log_info(s->id, "now on server %s:%d in region %s (backend %u)", ns->host->name, ns->host->port,
             ns->region->name, ns->pid);
    if (relay_attach_server(s) == 0 && !s->closed)
        move_end(mv, true, NULL);
    else if (s->move == mv)
        move_end(mv, false, "the session ended");
    session_callback_done(s);
}

/*
 * One message of the old server's answer to the NOTIFY that drains it: a
 * notification sent before the new server listened reaches the old one's
 * socket before this answer does, and goes on to the client.
 */
static int move_drain_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct session_move *mv = s->move;
    if (type == 'A' || type == 'S' || type == 'N')
        return move_pass_on(s, type, body, len) < 0 ? MSG_STOP : MSG_CONSUMED;
    if (type != 'Z')
        return MSG_CONSUMED; /* CommandComplete */
    move_ready(&s->server_conn->ep, body, len);
    s->move_answer_owed = false;
    if (mv != NULL && mv->mover != NULL && mv->mover->server_conn != NULL)
        move_switch(mv);
    else
        relay_attach_server(s); /* the move failed meanwhile: the session stays */
    return MSG_STOP;
}

MOVE_READER(move_drain_read, move_drain_message)

/*
 * The new server listens: one round trip to the old one brings what it
 * was sent before.  A backend that listens reads the notification queue
 * when it is told of a commit, which may come after a query of ours is
 * answered; one that sends a notification itself reads the whole queue
 * before its ReadyForQuery.  So the round trip is a NOTIFY on a channel
 * nobody listens on: everything committed before it, which the new
 * server may not have, reaches the client before its answer.  The old
 * server goes on listening until the switch, so that a move that fails
 * now leaves the session's channels as they were.
 */
static void move_drain_start(struct session_move *mv)
{
    struct session *s = mv->s;
    struct server_conn *old = s->server_conn;
    static const char drain[] = "NOTIFY pgnear_move_drain";
    mv->step = MOVE_DRAINING;
    s->busy++;
    if (pkt_add_query(old->ep.out, drain) != 0) {
        move_end(mv, false, "out of memory");
    } else {
        s->move_answer_owed = true;
        endpoint_set_reader(&old->ep, move_drain_read);
        endpoint_flush(s, &old->ep);
    }
    session_callback_done(s);
}

/* The target answered the whole replay: the old server drains, or the session switches. */
static void move_replayed(struct session_move *mv, char status)
{
    if (mv->failure[0] == '\0' && status != 'I')
        move_fail_text(mv, "", "the target was not idle after the replay");
    if (mv->failure[0] != '\0')
        move_end(mv, false, mv->failure);
    else if (mv->st.channels > 0 && !mv->old_gone)
        move_drain_start(mv);
    else
        move_switch(mv);
}

/* One message of the target's answer to the replay: the mover's. */
static int move_replay_message(struct session *m, char type, const uint8_t *body, uint32_t len)
{
    struct session_move *mv = m->login->move_of;
    if (type == 'E') {
        move_fail_report(mv, "the target refused its state: ", body, len);
    } else if (type == 'Z') {
        /*
         * What the target sends from now on (a notification of a channel
         * it listens on now) is the client's: it waits, unread, for the
         * relay to take over at the switch.
         */
        endpoint_pause_read(&m->server_conn->ep);
        move_replayed(mv, move_ready(&m->server_conn->ep, body, len));
        return MSG_STOP;
    }
    return MSG_CONSUMED; /* ParseComplete, BindComplete, rows, tags, ParameterStatus, notices */
}

MOVE_READER(move_replay_read, move_replay_message)

/*
 * The mover logged in before the state was read: it fits only if its
 * server has what the session has seen (a standby may not have replayed
 * the position read back); if not, it goes, and a mover that waits for a
 * standby that has it, or goes elsewhere, takes its place.
 */
static bool move_mover_fits(struct session_move *mv)
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

/* The state is read and the mover logged in: the target is given the state. */
static void move_replay_start(struct session_move *mv)
{
    if (!move_mover_fits(mv)) {
        move_start_mover(mv, false);
        return;
    }
    struct session *m = mv->mover;
    struct server_conn *ns = m->server_conn;
    mv->step = MOVE_REPLAYING;
    if (evbuffer_add_buffer(ns->ep.out, mv->st.replay) != 0) {
        move_end(mv, false, "out of memory");
        return;
    }
    endpoint_set_reader(&ns->ep, move_replay_read);
    endpoint_flush(m, &ns->ep);
}

bool move_target_ready(struct session *m)
{
    struct session_move *mv = m->login != NULL ? m->login->move_of : NULL;
    if (mv == NULL)
        return false;
    struct server_conn *ns = m->server_conn;
    bool region_ok = mv->target.region[0] ? strcmp(ns->region->name, mv->target.region) == 0
                                          : strcmp(ns->region->name, mv->target.avoid) != 0;
    snprintf(mv->res.to, sizeof(mv->res.to), "%s", ns->region->name);
    if (!region_ok) {
        move_end(mv, false, "the region to move it to has no server that fits what it needs");
        return true;
    }
    session_set_timer(m, 0); /* move_timeout bounds the rest */
    ns->ep.on_write = NULL;
    mv->mover_ready = true;
    if (mv->step == MOVE_CONNECTING) {
        move_replay_start(mv);
        return true;
    }
    /*
     * Logged in before the session was held: the connection waits, unread,
     * for the state (what the server says meanwhile, the replay's reader
     * reads first), and the session is held at its next safe point.
     */
    endpoint_set_reader(&ns->ep, NULL);
    struct session *s = mv->s;
    s->busy++;
    move_hold(mv);
    session_callback_done(s);
    return true;
}

static void move_refused(struct session *s, const char *why, move_done_fn done, void *arg)
{
    struct move_result r = {.client_id = s->id};
    snprintf(r.from, sizeof(r.from), "%s", s->region != NULL ? s->region->name : "");
    snprintf(r.reason, sizeof(r.reason), "%s", why);
    log_info(s->id, "not moved: %s", why);
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
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double cosines[ROUTE_MAX_REGIONS];
    struct region_subset where;
    const struct config *cfg = s->w->cfg;
    char home[MOVE_REGION_MAX];
    snprintf(r.from, sizeof(r.from), "%s", s->region->name);
    snprintf(r.to, sizeof(r.to), "%s", t->region);
    session_origin_locality(s, cfg, &loc);
    size_t n = route_plan(&cfg->routing, &loc, &s->need,
                          placement_of(&s->w->shared->placement, cfg, s->database, &where), plan,
                          cosines, ROUTE_MAX_REGIONS);
    for (size_t i = 0; i < n && r.to[0] == '\0'; i++)
        if (strcmp(plan[i]->name, t->avoid) != 0)
            snprintf(r.to, sizeof(r.to), "%s", plan[i]->name);
    if (r.to[0] == '\0') {
        move_refused(s, "no region to move it to has a server that fits what it needs", done, arg);
        return;
    }
    move_home_region(s, home, sizeof(home));
    snprintf(s->txn_region, sizeof(s->txn_region), "%s", strcmp(home, r.to) == 0 ? "" : r.to);
    /* It belongs to that region now (a DRAIN of the old one ends those still there). */
    struct region *to = region_set_find(&s->cfg->regions, r.to);
    if (to != NULL)
        s->region = to;
    s->moves++;
    log_info(s->id, "its next transactions go to region %s (it holds no server connection now)",
             r.to);
    stat_inc(&s->w->stats.moves_done);
    done(&r, arg);
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
    struct session_move *mv = why == NULL ? calloc(1, sizeof(*mv)) : NULL;
    if (why == NULL && (mv == NULL || session_state_init(&mv->st) != SESSION_STATE_OK ||
                        (mv->timer = evtimer_new(s->w->base, move_timeout_cb, mv)) == NULL)) {
        if (mv != NULL)
            session_state_free(&mv->st);
        free(mv);
        why = "out of memory";
    }
    if (why != NULL) {
        move_refused(s, why, done, arg);
        return;
    }
    mv->s = s;
    mv->target = *t;
    mv->done = done;
    mv->arg = arg;
    mv->res.client_id = s->id;
    snprintf(mv->res.from, sizeof(mv->res.from), "%s", s->region->name);
    snprintf(mv->res.to, sizeof(mv->res.to), "%s", t->region);
    struct timeval tv = {s->cfg->move_timeout_ms / 1000, (s->cfg->move_timeout_ms % 1000) * 1000};
    evtimer_add(mv->timer, &tv);
    s->move = mv;
    s->busy++;
    /*
     * The mover logs in first, while the session runs on: the client is
     * held only for the read and the replay.  Where none can log in yet (a
     * standby must replay the position the read will tell), it is held now.
     */
    move_start_mover(mv, true);
    if (s->move == mv && mv->mover == NULL)
        move_hold(mv);
    session_callback_done(s);
}
