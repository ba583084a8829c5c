/*
 * move_wire.c — a move on the wire (move_int.h): the session held at its
 * safe point, its state read from the old server, replayed on the target,
 * the old server's notifications drained, and the switch of the session's
 * server connection to the mover's.
 */
#include "proxy/session/move.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/clock.h"
#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/session_state.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel.h"
#include "proxy/session/fetch.h"
#include "proxy/session/gate.h"
#include "proxy/session/move_int.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/relay.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/region.h"

/* The ReadyForQuery that ends an answer: its status; the bytes after it stay for the relay. */
static char move_ready(struct endpoint *ep, const uint8_t *body, uint32_t len)
{
    char status = len >= 1 ? (char)body[0] : '?';
    frame_consume(ep->in, len);
    return status;
}

static void move_replay_start(struct session_move *mv);

static void move_switch(struct session_move *mv);

/*
 * The old server failed while the session waits, held at its safe point,
 * for its move: its state is read, so the move goes on, and the session
 * lives on the target if the target takes it.  If the move fails, the
 * session ends as the failure would have ended it (move_end).  The old
 * connection's events stop here; it is closed at the switch or the end.
 */
static void move_old_failed(struct session *s, struct endpoint *ep, const char *why, bool gone)
{
    (void)gone;
    struct session_move *mv = s->rare->move;
    if (mv->old_gone)
        return;
    mv->old_gone = true;
    snprintf(mv->old_why, sizeof(mv->old_why), "%s", why);
    slog_info(s, "its server failed during its move (%s); the move goes on", why);
    endpoint_set_reader(ep, NULL);
    evbuffer_drain(ep->out, evbuffer_get_length(ep->out));
    endpoint_arm(ep);
    /* Draining its notifications was all that was left: the switch is now. */
    if (mv->step == MOVE_DRAINING && s->move_answer_owed) {
        s->move_answer_owed = false;
        move_switch(mv);
    }
}

/* The old connection's owner while the move goes on: its session's events, the move's failures. */
static const struct endpoint_owner move_old_owner = {
    .event = session_endpoint_event,
    .failed = move_old_failed,
    .log_id = session_endpoint_log_id,
};

/* The old server answered the state query (status: its ReadyForQuery's). */
static void move_state_done(struct session *s, char status)
{
    struct session_move *mv = s->rare->move;
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
    s->server_conn->ep.owner = &move_old_owner;
    slog_debug(s, "move: its state is read (%zu bytes to replay)",
               evbuffer_get_length(mv->st.replay));
    if (mv->mover == NULL)
        move_start_mover(mv, false);
    else if (mv->mover_ready)
        move_replay_start(mv);
    /* else the mover's login, begun with the move, replays once it ends (move_mover_ready) */
}

/* One message of the old server's answer to the state query. */
static int move_state_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct session_move *mv = s->rare->move;
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

static void move_held(struct session *s);

/* The session is asked to stop at its next safe point (now, if it is at one). */
void move_hold(struct session_move *mv)
{
    struct session *s = mv->s;
    if (gate_hold_session(s, HOLD_MOVE) && s->rare->move == mv && s->hold.held)
        move_held(s);
}

/*
 * The session is held at its safe point (s->rare->moving's holding): the old
 * server is asked for the state.
 */
static void move_held(struct session *s)
{
    struct session_move *mv = s->rare->move;
    if (mv == NULL || mv->step != MOVE_WAITING)
        return;
    struct server_conn *old = s->server_conn;
    if (old == NULL) {
        /*
         * It let its connection go while the move waited (a nearest write
         * a standby refused, which waits in client.in for a primary's):
         * it moves as a session between transactions does.
         */
        const char *why = move_route_detached(s, &mv->target, &mv->res);
        move_end(mv, why == NULL, why);
        return;
    }
    /* Held earlier by a cutover's gate, the client has waited since then. */
    mv->held_us = s->hold.held_at_us > 0 ? s->hold.held_at_us : monotonic_us();
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
    old->ep.owner = &session_endpoint_owner;
    if (mv->old_gone)
        server_conn_close(old, false);
    else
        s->w->shared->flow->server_release(old);
    server_conn_hand_over(ns, m, s);
    s->moves++;
    slog_info(s, "now on server %s:%d in region %s (backend %u)", ns->host->name, ns->host->port,
              ns->region->name, ns->pid);
    if (relay_attach_server(s) == 0 && !s->closed)
        move_end(mv, true, NULL);
    else if (s->rare->move == mv)
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
    struct session_move *mv = s->rare->move;
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
    struct session_move *mv = m->login->fetch_arg;
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

/*
 * The mover m logged in (its fetch_ops' ready): the state is replayed
 * once it is read, or the session is held for its read now.  The mover
 * stays the move's until the move ends.
 */
static void move_mover_ready(struct session *m, void *arg)
{
    struct session_move *mv = arg;
    struct server_conn *ns = m->server_conn;
    bool region_ok = mv->target.region[0] ? strcmp(ns->region->name, mv->target.region) == 0
                                          : strcmp(ns->region->name, mv->target.avoid) != 0;
    snprintf(mv->res.to, sizeof(mv->res.to), "%s", ns->region->name);
    if (!region_ok) {
        move_end(mv, false, "the region to move it to has no server that fits what it needs");
        return;
    }
    /*
     * Back on the host whose server ended it, which never went down since:
     * its backend alone was ended (pg_terminate_backend, idle_session_timeout),
     * and the session ends as a direct one would; a server restarted there
     * takes it.
     */
    if (mv->lost && ns->host == mv->s->server_conn->host &&
        health_downs(ns->host) == mv->lost_downs) {
        move_end(mv, false, "its server ended its backend and still takes logins");
        return;
    }
    session_set_timer(m, 0); /* move_timeout bounds the rest */
    ns->ep.on_write = NULL;
    mv->mover_ready = true;
    if (mv->step == MOVE_CONNECTING) {
        move_replay_start(mv);
        return;
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
}

const struct fetch_ops move_mover_ops = {
    .what = "move",
    .ready = move_mover_ready,
    .lost = move_mover_lost,
};

const struct session_hooks move_session_hooks = {
    .holding = move_held,
    .closing = move_abandon,
};
