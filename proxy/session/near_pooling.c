/*
 * near_pooling.c — nearest at transaction pooling's door (near.h): what
 * txn.c's verbs hand nearest — a connection attached (its state carried
 * first, near_sync.h), one let go (parked under session pooling), a
 * client's message seen, its text's pins, the server's ReadyForQuery, the
 * client's stream ended — and a pin that is never final on a standby.
 * txn.c's own actions come back through the struct near_pooling it handed
 * down as the session started.
 */
#include "proxy/session/near.h"

#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/framing.h"
#include "protocol/pg_error.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/txn_open.h"
#include "protocol/txn_pin.h"
#include "proxy/base/log.h"
#include "proxy/session/move.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/near_int.h"
#include "proxy/session/near_slots.h"
#include "proxy/session/near_sync.h"
#include "proxy/session/near_text.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/region.h"

/*
 * The session is pinned, or about to be (txn_pin): under session pooling
 * it stays on the connection it runs on, its parked ones go back.
 */
static void near_pinned(struct session *s)
{
    if (s->near != NULL && s->server_conn != NULL)
        near_slots_give_back(s);
}

/* nearest pins the session itself (txn_pin, through txn.c). */
static void near_pin(struct session *s, const char *why)
{
    s->near->pool->pin(s, why);
    near_pinned(s);
}

/* The attached connection takes the client's messages on, as txn.c goes on. */
static void near_go(struct session *s)
{
    near_on_relay(s); /* before the relay reads the client's waiting messages */
    s->near->pool->go(s);
}

/* The session's state carried to its connection, or where it stays (near_sync.h). */
static void near_synced(struct session *s, enum near_sync_end how, struct server_conn *spare,
                        const char *why)
{
    if (spare != NULL)
        near_slot_give_back(s, spare);
    if (how == NEAR_SYNC_FAILED) {
        slog_warn(s, "its settings could not follow it to its other server connection: %s", why);
        struct pg_error err;
        pg_error_set(&err, "08006", "pgnear lost the session's settings");
        pg_error_detail(&err, "%s", why);
        session_fail(s, &err);
        return;
    }
    /* why lives until this returns, the pin's reason as long as the session (SHOW CLIENTS) */
    if (how == NEAR_SYNC_PINNED) {
        slog_info(s, "nearest: its state stays on the server connection that has it: %s", why);
        near_pin(s, "its state could not follow it to its other server connection");
    }
    near_go(s);
}

bool near_on_attach(struct session *s)
{
    if (s->near == NULL)
        return false;
    near_slots_attach(s);
    if (near_slots_behind(s))
        near_sync_start(s, near_synced);
    else
        near_go(s);
    return true;
}

bool near_on_let_go(struct session *s, struct server_conn *sc)
{
    if (s->near == NULL || !s->near->slots.own)
        return false;
    near_slot_park(s, sc);
    return true;
}

bool near_carries(struct session *s)
{
    if (s->near == NULL || !s->near->slots.own)
        return false;
    near_note_state_change(s);
    return true;
}

const char *near_on_text(struct session *s, const uint8_t *body, size_t len, bool changes,
                         const char *why)
{
    if (body == NULL && near_carries(s))
        return NULL; /* too long to read: what it may set is carried */
    if (body == NULL) {
        near_pinned(s); /* txn.c pins it now */
        return why;
    }
    if (changes)
        near_note_state_change(s);
    if (!near_serializable(s) && txn_open_sets_serializable(body, len))
        near_note_serializable(s, "a statement may");
    /* Not while held on a standby for a primary (must_forward): it pins where it runs again. */
    if (why == NULL || near_held_for_primary(s))
        return NULL;
    near_pinned(s); /* txn.c pins it now */
    return why;
}

/*
 * pool_mode = session: a Bind (h) runs a statement that may change the
 * session's state each time it runs (near_bind_pins).
 */
static void near_client_bind(struct session *s, const struct msg_head *h)
{
    uint8_t head[PKT_HEADER_LEN + 2 * 256];
    size_t n = 1 + (size_t)h->len;
    if (h->type != 'B' || s->pinned != NULL || !s->near->slots.own)
        return;
    if (n > h->avail)
        n = h->avail;
    if (n > sizeof(head))
        n = sizeof(head);
    if (n <= PKT_HEADER_LEN || evbuffer_copyout(s->client.in, head, n) != (ssize_t)n)
        return;
    const char *why = near_bind_pins(s, head, n);
    if (why != NULL)
        near_pin(s, why);
}

int near_client_step(struct session *s, const struct msg_head *h, bool can_let_go)
{
    switch (near_on_client(s, h, can_let_go)) {
    case NEAR_PASS:
        break;
    case NEAR_LAST:
        endpoint_pause_read(&s->client); /* until its answer settles (near_on_ready) */
        break;
    case NEAR_WAIT:
        return MSG_WAIT; /* the server's answers to a Flush call the pump again */
    case NEAR_AGAIN:
        return MSG_MOVED; /* another message took its place at the head: read again */
    case NEAR_REFETCH:
        s->near->pool->fetch_again(s);
        return s->closed ? MSG_ENDED : MSG_WAIT;
    default:
        return MSG_ENDED;
    }
    near_client_bind(s, h);
    return s->closed ? MSG_ENDED : MSG_HEAD;
}

/*
 * The bytes of client.in that are whole messages, after what is left of
 * the one being passed on; *last: the type of the last (0: none).
 * SIZE_MAX: the one being passed on was cut short.
 */
static size_t near_client_whole(const struct session *s, char *last)
{
    struct frame_walk w;
    char type;
    uint32_t len;
    size_t whole = s->client.fwd_remaining;
    *last = 0;
    frame_walk_init(&w, s->client.in, whole);
    if (w.at > w.have)
        return SIZE_MAX;
    while (frame_walk_next(&w, &type, &len) && w.at <= w.have) {
        *last = type;
        whole = w.at;
    }
    return whole;
}

/* client.in keeps its first n bytes alone.  False: out of memory. */
static bool near_client_keep(struct session *s, size_t n)
{
    struct evbuffer *in = s->client.in;
    if (evbuffer_get_length(in) == n)
        return true;
    struct evbuffer *kept = evbuffer_new();
    bool ok = kept != NULL && evbuffer_remove_buffer(in, kept, n) == (int)n;
    evbuffer_drain(in, evbuffer_get_length(in));
    ok = ok && evbuffer_add_buffer(in, kept) == 0;
    if (kept != NULL)
        evbuffer_free(kept);
    return ok;
}

/*
 * A nearest session's client left without a Terminate (killed, or one
 * that sends and closes at once).  Directly, the backend runs every whole
 * message that came before the end; so here the whole messages run as if
 * a Terminate followed them (txn_client_terminated), what a standby
 * refuses forwarded as ever, and a message cut short is dropped.  A
 * hangup seen while the client's reads were paused waits for them to
 * resume: the bytes before it are read first, then the end of stream.
 * False: nothing is left to run, or it cannot be, and the session ends.
 */
bool near_on_client_ended(struct session *s, bool hangup)
{
    if (s->near == NULL || s->closed || s->phase != PHASE_ACTIVE)
        return false;
    if (s->txn_client_gone || hangup) {
        endpoint_hangup_taken(&s->client);
        return true;
    }
    char last;
    size_t whole = near_client_whole(s, &last);
    if (whole == SIZE_MAX || (whole == 0 && s->server_conn == NULL))
        return false;
    if (!near_client_keep(s, whole) || (last != 'X' && pkt_add_terminate(s->client.in) != 0)) {
        session_close(s, "out of memory");
        return true;
    }
    s->txn_client_gone = true;
    slog_debug(s, "client ended its stream: %zu bytes before it run, then the session ends", whole);
    endpoint_set_reader(&s->client,
                        s->client.on_read); /* it reads them, ending with the Terminate */
    return true;
}

/*
 * How a move of a session pinned on a standby ended (near_pin_leave_standby):
 * what its client sent while it was held runs now, where it is.  Called
 * before the move's memory goes, the session alive (closed when it ended).
 */
static void near_pin_moved(const struct move_result *r, void *arg)
{
    struct session *s = arg;
    if (!s->closed && s->server_conn != NULL && !s->hold.held &&
        evbuffer_get_length(s->client.in) > 0)
        (void)s->near->pool->pump(s);
    if (r->moved)
        log_info(r->client_id,
                 "nearest: it keeps its server connection on a primary in region %s now", r->to);
    else
        log_warn(r->client_id,
                 "nearest: it keeps its server connection on a standby, where its writes fail "
                 "with 25006: it could not move to a primary (%s); tried again as its next "
                 "transaction ends",
                 r->reason);
}

/*
 * A pin is never final on a standby.  A session pinned there by
 * what it ran (a statement too long to read whole, a reported setting a
 * routine changed: near.h places what a text shows pins on a primary;
 * under session pooling, a state its sync could not carry, near_sync.h)
 * moves with its state, as its transaction ends, to a primary (move.h:
 * the state read back, replayed there), where it stays pinned and its
 * writes run.  Held at once: no request more runs on the standby.  Asked
 * once a transaction (near_pin_move_may_ask): the end of a move that
 * failed lets the session's hold go, which calls here again.
 */
static void near_pin_leave_standby(struct session *s)
{
    const struct server_conn *sc = s->server_conn;
    if (s->near == NULL || sc == NULL || s->closed || !host_is_standby(sc->host) ||
        sc->tx.status != 'I' || s->rare->move != NULL)
        return;
    /* Its client sent more already: the setting pins it now, before more runs there. */
    if (s->pinned == NULL && s->txn_params_moved > 0 && !s->near->slots.own)
        near_pin(s, "a reported setting differs from its login's");
    if (s->pinned == NULL || !near_pin_move_may_ask(s))
        return;
    slog_info(s,
              "nearest: it keeps its server connection on a standby (%s): it moves to a "
              "primary with its state",
              s->pinned);
    struct move_target t = {.hold_first = true, .primary = true};
    move_session(s, &t, near_pin_moved, s);
}

bool near_on_idle(struct session *s)
{
    if (s->pinned != NULL)
        near_pinned(s); /* pinned as its transaction ended (a reported setting) */
    if (!s->closed)
        near_pin_leave_standby(s);
    return !s->closed;
}

/*
 * NEAR_RESUME: the client, paused for the held answer, is read again;
 * what it sent meanwhile runs, after a pin's move off a standby is asked
 * (before it would run there).  False: the session ended.
 */
bool near_resume(struct session *s)
{
    if (endpoint_flush(s, &s->client) < 0)
        return false;
    endpoint_resume_read(&s->client);
    near_pin_leave_standby(s);
    return s->hold.held || evbuffer_get_length(s->client.in) == 0 || s->near == NULL ||
           s->near->pool->pump(s) >= 0;
}

enum near_verdict near_on_server_ready(struct session *s, uint8_t status, bool can_forward)
{
    enum near_verdict v = near_on_ready(s, status, can_forward);
    if (v != NEAR_RESUME)
        return v;
    return near_resume(s) ? NEAR_PASS : NEAR_ENDED;
}

bool near_on_close(struct session *s)
{
    bool own = s->near != NULL && s->near->slots.own;
    near_sync_end(s);
    near_slots_give_back(s); /* session pooling resets them */
    near_session_end(s);
    return own;
}
