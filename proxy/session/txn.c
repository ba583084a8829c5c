/*
 * txn.c — transaction pooling (txn.h).
 */
#include "proxy/session/txn.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/prepared.h"
#include "protocol/stream.h"
#include "protocol/param_set.h"
#include "protocol/txn_open.h"
#include "protocol/txn_pin.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel.h"
#include "proxy/session/db_unhold.h"
#include "proxy/session/fence.h"
#include "proxy/session/gate.h"
#include "proxy/session/latency_hooks.h"
#include "proxy/session/move.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/near.h"
#include "proxy/session/near_sync.h"
#include "proxy/session/near_slots.h"
#include "proxy/session/near_text.h"
#include "proxy/session/notify_hub.h"
#include "proxy/session/notify_watch.h"
#include "proxy/session/relay.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/txn_cancel.h"
#include "proxy/session/txn_fetch.h"
#include "proxy/session/txn_notify.h"
#include "proxy/session/txn_prep.h"
#include "routing/need.h"
#include "routing/region.h"
#include "routing/registry.h"

static void txn_client_read_cb(struct session *s);
static int txn_client_pump(struct session *s);
static void txn_param(struct session *s, const uint8_t *body, uint32_t len);
static bool txn_server_idle(struct session *s);
static void txn_resume_cb(struct session *s);
static void txn_closing(struct session *s);
static void txn_attached(struct session *s);
static bool txn_client_ended(struct session *s, bool hangup);
static bool txn_between(const struct session *s);

/* What both kinds of session below do alike. */
#define TXN_HOOKS_COMMON                                                                           \
    .client_read = txn_client_read_cb, .client_pump = txn_client_pump, .server_param = txn_param,  \
    .server_idle = txn_server_idle, .life = {.resume = txn_resume_cb, .closing = txn_closing},     \
    .on_cancel = txn_cancel, .server_gone = near_on_server_gone, .attached = txn_attached,         \
    .owes_request = near_owes_request, .client_ended = txn_client_ended, .between = txn_between

/* Sessions whose prepared statements are followed (txn_prep.h)... */
static const struct txn_hooks txn_hooks_prep = {
    TXN_HOOKS_COMMON,
    .server = &txn_prep_reader,
};

/* ... and the others, whose server side the fence reader reads (fence.h). */
static const struct txn_hooks txn_hooks_plain = {
    TXN_HOOKS_COMMON,
    .server = &fence_reader,
};

void txn_session_start(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (s->cfg == NULL || sc == NULL || !sc->poolable)
        return;
    /* Under session pooling only nearest places transactions, on connections of its own. */
    int mode = config_session_pool_mode(s->cfg, s->user, s->database);
    bool own_slots = mode == POOL_SESSION && s->need.role == NEED_NEAREST;
    if (mode != POOL_TRANSACTION && !own_slots)
        return;
    /* session_login_end decided whether pgnear may log in for it elsewhere (s->secret). */
    if (s->secret == NULL)
        s->pinned = s->unmovable != NULL ? s->unmovable : "pgnear cannot log in for it";
    bool prep = s->pinned == NULL && s->cfg->max_prepared_statements > 0;
    if (prep && !txn_prep_start(s)) {
        prep = false;
        s->pinned = "out of memory";
    }
    s->txn = prep ? &txn_hooks_prep : &txn_hooks_plain;
    txn_notify_encoding(s, txn_notify_login_encoding(s, sc));
    if (!prep || !near_session_start(s, own_slots)) {
        if (s->need.role == NEED_NEAREST && s->pinned == NULL)
            s->pinned = "out of memory";
        return;
    }
    if (s->near != NULL && txn_open_startup_serializable(
                               param_set_get(&s->server_startup, "options"),
                               param_set_get(&s->server_startup, "default_transaction_isolation")))
        near_note_serializable(s, "its startup parameters");
    near_on_relay(s);
}

/* The transaction's connection takes the session's waiting messages on. */
static void txn_attached_go(struct session *s)
{
    cancel_retarget(s, s->server_conn);
    near_on_relay(s); /* before the relay reads the client's waiting messages */
    if (relay_attach_server(s) == 0 && !s->closed) {
        endpoint_resume_read(&s->client);
        txn_client_pump(s);
    }
}

/* The session's state carried to its connection, or where it stays (near_sync.h). */
static void txn_synced(struct session *s, enum near_sync_end how, struct server_conn *spare,
                       const char *why)
{
    if (spare != NULL)
        near_slot_give_back(s, spare);
    if (how == NEAR_SYNC_FAILED) {
        log_warn(s->id, "its settings could not follow it to its other server connection: %s", why);
        struct pg_error err;
        pg_error_set(&err, "08006", "pgnear lost the session's settings");
        pg_error_detail(&err, "%s", why);
        session_fail(s, &err);
        return;
    }
    /* why lives until this returns, the pin's reason as long as the session (SHOW CLIENTS) */
    if (how == NEAR_SYNC_PINNED) {
        log_info(s->id, "nearest: its state stays on the server connection that has it: %s", why);
        txn_pin(s, "its state could not follow it to its other server connection");
    }
    txn_attached_go(s);
}

/* A connection attached for the session's next transaction: with its state first. */
static void txn_attached(struct session *s)
{
    latency_session_attached(s);
    if (near_on_attach(s) == NEAR_SYNC)
        near_sync_start(s, txn_synced);
    else
        txn_attached_go(s);
}

void txn_pin(struct session *s, const char *why)
{
    if (s->pinned != NULL)
        return;
    s->pinned = why;
    stat_inc(&s->w->stats.txn_pins);
    log_info(s->id, "keeps its server connection from now on (transaction pooling): %s", why);
    /* A nearest session under session pooling stays on the connection it runs on. */
    if (s->server_conn != NULL)
        near_slots_give_back(s);
}

/*
 * What a whole Query or Parse (body: blen bytes) leaves in the server's
 * session; NULL: nothing.  followed: named statements are (txn_prep.h).
 */
static const char *txn_message_pins(const struct session *s, char type, const uint8_t *body,
                                    size_t blen, bool *changes)
{
    const char *text = (const char *)body;
    if (type == 'Q')
        return near_text_pins(s, body, strnlen(text, blen), changes);
    size_t name_len = strnlen(text, blen);
    if (name_len >= blen)
        return NULL; /* malformed: the server refuses it */
    if (name_len > 0 && s->prep == NULL)
        return "a named prepared statement";
    return near_text_pins(s, body + name_len + 1, strnlen(text + name_len + 1, blen - name_len - 1),
                          changes);
}

/*
 * Reads a Query or Parse whole, when it is not too long, for what it
 * would leave behind.  1: read (or pinned for its length), 0: wait for
 * the rest, <0: the session ended.
 */
static int txn_client_scan(struct session *s, char type, uint32_t len, size_t avail)
{
    if (len - 4 > TXN_SCAN_MAX) {
        /* nearest, session pooling: what it may set is carried, not pinned (near_sync.h) */
        if (near_own_slots(s))
            near_note_state_change(s);
        else
            txn_pin(s, "a statement too long to read whole");
        return 1;
    }
    if (avail < 1 + (size_t)len)
        return 0;
    const uint8_t *msg = evbuffer_pullup(s->client.in, 1 + (ssize_t)len);
    if (msg == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    txn_notify_sender(s, msg + 5, len - 4);
    bool changes = false;
    const char *why = txn_message_pins(s, type, msg + 5, len - 4, &changes);
    if (changes && s->near != NULL)
        near_note_state_change(s);
    if (s->near != NULL && !near_serializable(s) && txn_open_sets_serializable(msg + 5, len - 4))
        near_note_serializable(s, "a statement may");
    /*
     * nearest: not while held on a standby for a primary (near.h's
     * must_forward): it pins there, when its messages run again.
     */
    if (why != NULL && !near_held_for_primary(s))
        txn_pin(s, why);
    return 1;
}

/*
 * pool_mode = session, nearest: a Bind runs a statement that may change
 * the session's state each time it runs (near_bind_pins).
 */
static void txn_client_scan_bind(struct session *s, const struct msg_head *h)
{
    uint8_t head[PKT_HEADER_LEN + 2 * 256];
    size_t n = 1 + (size_t)h->len;
    if (n > h->avail)
        n = h->avail;
    if (n > sizeof(head))
        n = sizeof(head);
    if (n <= PKT_HEADER_LEN || evbuffer_copyout(s->client.in, head, n) != (ssize_t)n)
        return;
    const char *why = near_bind_pins(s, head, n);
    if (why != NULL)
        txn_pin(s, why);
}

/* A whole client message (n bytes, header included) went on: off the input, unless moved. */
static void txn_client_consumed(struct session *s, uint8_t type, size_t n, bool moved)
{
    s->client.last_type = (char)type;
    if (!moved)
        evbuffer_drain(s->client.in, n);
    if (s->near != NULL)
        near_consumed(s, n);
}

/* One whole client message through the rewriter (txn_prep.h); as txn_client_step returns. */
static int txn_client_rewrite(struct session *s, uint8_t type, uint32_t len, size_t avail)
{
    if (avail < 1 + (size_t)len)
        return 0;
    const uint8_t *msg = evbuffer_pullup(s->client.in, 1 + (ssize_t)len);
    if (msg == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    int rc = type == 'Q' ? txn_prep_deallocate(s, msg + 5, len - 4) : 0;
    if (rc != 0) {
        if (rc > 0)
            txn_client_consumed(s, type, 1 + (size_t)len, false);
        return rc;
    }
    bool moved = false;
    bool watch = notify_watch_on(s);
    struct notify_watch_msg wm;
    if (watch)
        notify_watch_read(type, msg + 5, len - 4, &wm);
    rc = txn_prep_client(s, type, msg + 5, len - 4, &moved);
    if (rc <= 0)
        return rc;
    if (watch)
        notify_watch_client(s, &wm);
    tx_track_client(&s->server_conn->tx, type);
    txn_client_consumed(s, type, 1 + (size_t)len, moved);
    return 1;
}

static void txn_refetch(struct session *s);
static bool txn_may_let_go(const struct session *s);
static void txn_pin_leave_standby(struct session *s);

/* txn_near_step: another message took its place at the head, seen: its header is read again. */
#define TXN_NEAR_AGAIN 2

/*
 * nearest (near.h): the message at the head of the client's input, seen
 * before it goes.  1: it goes on; TXN_NEAR_AGAIN; else as txn_client_step
 * returns.
 */
static int txn_near_step(struct session *s, const struct msg_head *h)
{
    switch (near_on_client(s, h, txn_may_let_go(s))) {
    case NEAR_PASS:
        return 1;
    case NEAR_LAST:
        endpoint_pause_read(&s->client); /* until its answer settles (txn_near_settled) */
        return 1;
    case NEAR_WAIT:
        return MSG_WAIT; /* the server's answers to a Flush call the pump again */
    case NEAR_AGAIN:
        return TXN_NEAR_AGAIN;
    case NEAR_REFETCH:
        txn_refetch(s);
        return s->closed ? MSG_ENDED : MSG_WAIT;
    default:
        return MSG_ENDED;
    }
}

/* The session ends once the server has what its client sent before leaving. */
static void txn_close_when_sent(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (sc != NULL && endpoint_flush(s, &sc->ep) < 0)
        return;
    if (sc == NULL || endpoint_queued(&sc->ep) == 0)
        session_close(s, "client terminated the session");
}

/*
 * The client's Terminate: what it sent before it still reaches the server
 * and runs, as it would directly (a write sent with the Terminate in one
 * packet, a statement run again on a primary just now), then the session
 * ends; the server's answer, to no one, tells pool_release whether the
 * connection can be kept.
 */
static int txn_client_terminated(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (sc == NULL || endpoint_queued(&sc->ep) == 0) {
        session_close(s, "client terminated the session");
        return MSG_ENDED;
    }
    endpoint_pause_read(&s->client);
    sc->ep.on_write = txn_close_when_sent;
    endpoint_want_drain(&sc->ep, true);
    txn_close_when_sent(s);
    return s->closed ? MSG_ENDED : MSG_WAIT;
}

/*
 * For msg_run: an extended-protocol message that goes to the server as it
 * came (txn_prep_client_take: Parse, Bind and Execute of the unnamed
 * statement, a portal's Describe, Sync, ...), followed; a Parse whose text
 * pins is left to the step, which pins.
 */
static bool txn_client_take(struct session *s, uint8_t type, const uint8_t *body, uint32_t blen)
{
    if (type == 'X' ||
        (type == 'P' && s->pinned == NULL && txn_message_pins(s, 'P', body, blen, NULL) != NULL))
        return false;
    if (!notify_watch_on(s)) {
        if (!txn_prep_client_take(s, type, body, blen))
            return false;
    } else {
        struct notify_watch_msg wm;
        notify_watch_read(type, body, blen, &wm);
        if (!txn_prep_client_take(s, type, body, blen))
            return false;
        notify_watch_client(s, &wm);
    }
    tx_track_client(&s->server_conn->tx, type);
    return true;
}

/* One message of the client, or part of one, on to the server; 1: go on, 0: wait, <0: ended. */
static int txn_client_step(struct session *s)
{
    struct endpoint *src = &s->client;
    if (!near_reads_client(s))
        return MSG_WAIT;
    struct evbuffer *dst = s->server_conn->ep.out;
    struct msg_head h;
    int rc = msg_step_head(s, src, dst, &h, "client");
    if (rc != MSG_HEAD)
        return rc;
    /* The extended protocol's: the header read again with those after it (a Query's is not). */
    if (h.type != 'Q' && s->prep != NULL && s->near == NULL &&
        (rc = msg_run(s, src, dst, txn_client_take)) != MSG_WAIT)
        return rc;
    if (h.type == 'X') {
        /* Not passed on: the connection may serve others (pool_release judges). */
        if (h.len == 4 && h.avail == 5)
            evbuffer_drain(src->in, 5);
        return txn_client_terminated(s);
    }
    if ((h.type == 'Q' || h.type == 'P') && h.avail >= 1 + (size_t)h.len)
        db_unhold_in(s, src->in); /* a DROP DATABASE's (db_unhold.h) */
    if (s->near != NULL && (rc = txn_near_step(s, &h)) != 1)
        return rc == TXN_NEAR_AGAIN ? MSG_MOVED : rc;
    if (s->pinned == NULL && (h.type == 'Q' || h.type == 'P') &&
        (rc = txn_client_scan(s, (char)h.type, h.len, h.avail)) <= 0)
        return rc;
    if (h.type == 'B' && s->pinned == NULL && near_own_slots(s))
        txn_client_scan_bind(s, &h);
    if (s->prep != NULL && (h.type != 'd' || h.len - 4 < TXN_PREP_STREAM_MIN))
        return txn_client_rewrite(s, h.type, h.len, h.avail);
    if (notify_watch_on(s) && (rc = txn_notify_watch_msg(s, &h, TXN_SCAN_MAX)) <= 0)
        return rc;
    tx_track_client(&s->server_conn->tx, h.type);
    if (s->near != NULL)
        near_consumed(s, h.avail < 1 + (size_t)h.len ? h.avail : 1 + (size_t)h.len);
    return msg_step_pass(s, src, dst, &h);
}

/*
 * The bytes of client.in that are whole messages, after what is left of
 * the one being passed on; *last: the type of the last (0: none).
 * SIZE_MAX: the one being passed on was cut short.
 */
static size_t txn_client_whole(const struct session *s, char *last)
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
static bool txn_client_keep(struct session *s, size_t n)
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
static bool txn_client_ended(struct session *s, bool hangup)
{
    if (s->near == NULL || s->closed || s->phase != PHASE_ACTIVE)
        return false;
    if (s->txn_client_gone || hangup) {
        endpoint_hangup_taken(&s->client);
        return true;
    }
    char last;
    size_t whole = txn_client_whole(s, &last);
    if (whole == SIZE_MAX || (whole == 0 && s->server_conn == NULL))
        return false;
    if (!txn_client_keep(s, whole) || (last != 'X' && pkt_add_terminate(s->client.in) != 0)) {
        session_close(s, "out of memory");
        return true;
    }
    s->txn_client_gone = true;
    log_debug(s->id, "client ended its stream: %zu bytes before it run, then the session ends",
              whole);
    endpoint_set_reader(&s->client,
                        s->client.on_read); /* it reads them, ending with the Terminate */
    return true;
}

/* A client with nothing but a Terminate to say: the session ends without a server. */
static bool txn_only_terminate(const struct session *s)
{
    uint8_t buf[sizeof(pkt_terminate)];
    return evbuffer_get_length(s->client.in) == sizeof(buf) &&
           evbuffer_copyout(s->client.in, buf, sizeof(buf)) == (ssize_t)sizeof(buf) &&
           memcmp(buf, pkt_terminate, sizeof(buf)) == 0;
}

/*
 * Named Parses (and the Sync after them) of statements some server has
 * parsed already, answered without a server connection (txn_prep.h): a
 * client that prepares its statements as it connects (pgbench -M
 * prepared, PQprepare) then waits for no connection, nor holds up the
 * ones that wait for its other sessions' transactions to end.  False when
 * the session ended.
 */
static bool txn_answer_known_parses(struct session *s)
{
    bool answered = false, added = false;
    const uint8_t *h; /* the header read in place (msg_step_head's reason) */
    while (evbuffer_get_length(s->client.in) >= 5 &&
           (h = evbuffer_pullup(s->client.in, 5)) != NULL) {
        uint8_t type = h[0];
        uint32_t len = pkt_be32(h + 1);
        if (len < 4 || evbuffer_get_length(s->client.in) < 1 + (size_t)len)
            break;
        if (type == 'S' && answered) {
            evbuffer_drain(s->client.in, 5 + (len - 4));
            answered = false;
            added = true;
            if (pkt_add_ready(s->client.out, 'I') != 0)
                break;
            continue;
        }
        if (type != 'P' || len - 4 > TXN_SCAN_MAX)
            break;
        const uint8_t *msg = evbuffer_pullup(s->client.in, 1 + (ssize_t)len);
        /* An unnamed one is never known (prep_client_parse_known): its text is not read twice. */
        if (msg == NULL || len == 4 || msg[5] == '\0')
            break;
        const char *why = txn_message_pins(s, 'P', msg + 5, len - 4, NULL);
        /* nearest: it pins where it runs, a primary (near.h): the server gets it, placed so. */
        if (why != NULL && s->near != NULL)
            break;
        if (prep_client_parse_known(s->prep, msg + 5, len - 4) != PREP_OK)
            break;
        if (why != NULL)
            txn_pin(s, why);
        if (notify_watch_on(s)) { /* its statement, should it be an UNLISTEN (notify_watch.h) */
            struct notify_watch_msg wm;
            notify_watch_read('P', msg + 5, len - 4, &wm);
            notify_watch_client(s, &wm);
        }
        evbuffer_drain(s->client.in, 1 + (size_t)len);
        answered = added = true;
        if (pkt_add_parse_complete(s->client.out) != 0)
            break;
    }
    /* Nothing answered: nothing new to send (what a full socket kept waits for its event). */
    if (!added && !stream_has_output(&s->client.stream))
        return true;
    return endpoint_flush(s, &s->client) == 0;
}

/* The detached session's client sent something: it waits, unread, for a server connection. */
static int txn_need_server(struct session *s)
{
    if (evbuffer_get_length(s->client.in) == 0 || notify_hub_waiting(s))
        return 0;
    /* LISTEN and UNLISTEN alone: answered by pgnear, no server needed (notify_hub.h). */
    int heard;
    while ((heard = notify_hub_query(s)) > 0) {
        /* Its UNLISTENs on a server followed from now, nothing outstanding (notify_watch.h). */
        if (s->notify != NULL && !notify_watch_start(s)) {
            session_close(s, "out of memory");
            return -1;
        }
        if (notify_hub_waiting(s) || evbuffer_get_length(s->client.in) == 0)
            return 0;
    }
    if (heard < 0)
        return -1;
    if (txn_only_terminate(s)) {
        session_close(s, "client terminated the session");
        return -1;
    }
    if (!near_first_ready(s))
        return 0; /* where it runs depends on the whole first message */
    if (s->prep != NULL && txn_next_detached_idle(s) && !s->hold.held) {
        if (!txn_answer_known_parses(s))
            return -1;
        if (evbuffer_get_length(s->client.in) == 0)
            return 0;
    }
    endpoint_pause_read(&s->client);
    if (txn_next_detached_idle(s) && !s->hold.held)
        txn_fetch_start(s);
    return s->closed ? -1 : 0;
}

static int txn_client_pump(struct session *s)
{
    if (s->server_conn == NULL)
        return txn_need_server(s);
    /* A host fenced as a former primary gets no request more (former_primary.h). */
    if (__builtin_expect(host_is_fenced(s->server_conn->host), 0) &&
        !s->w->shared->flow->server_fenced(s))
        return s->closed ? -1 : 0;
    struct endpoint *server = &s->server_conn->ep;
    int rc;
    while ((rc = txn_client_step(s)) > 0)
        ;
    if (rc >= 0)
        latency_server_seen(s);
    if (rc < 0 || endpoint_flush(s, server) < 0)
        return -1;
    /* The rewriter's own answers (ParseComplete, CloseComplete) go out too. */
    if (s->prep != NULL &&
        (evbuffer_get_length(s->client.out) > 0 || stream_has_output(&s->client.stream)) &&
        endpoint_flush(s, &s->client) < 0)
        return -1;
    relay_throttle(&s->client, server);
    return 0;
}

static void txn_client_read_cb(struct session *s)
{
    struct endpoint *src = &s->client;
    int more;
    if (endpoint_fill(s, src, RELAY_BLOCK_SIZE, &more) < 0 || txn_client_pump(s) < 0)
        return;
    if (more && !src->read_paused)
        event_active(src->rev, EV_READ, 0);
}

/* One ParameterStatus: a reported setting now other than the connection's at login, or back. */
static void txn_param(struct session *s, const uint8_t *body, uint32_t len)
{
    struct server_conn *sc = s->server_conn;
    size_t blen = len - 4;
    const char *name = (const char *)body;
    size_t name_len = strnlen(name, blen);
    if (name_len + 1 >= blen)
        return;
    const char *value = name + name_len + 1;
    if (strnlen(value, blen - name_len - 1) >= blen - name_len - 1)
        return;
    if (strcmp(name, "client_encoding") == 0)
        txn_notify_encoding(s, value);
    if (near_own_slots(s)) {
        near_note_state_change(s); /* its connections are its own: carried, not pinned */
        return;
    }
    const char *was = param_set_get(&sc->reported, name);
    if (was == NULL || strcmp(was, value) != 0) {
        if (s->txn_params_moved < UINT8_MAX)
            s->txn_params_moved++;
    } else if (s->txn_params_moved > 0) {
        s->txn_params_moved--;
    }
}

/*
 * Whether the session's server connection is between transactions with
 * nothing owed either way, whatever its client sent meanwhile and
 * whatever the admin asked of it at this point (a hold, a close).
 */
static bool txn_conn_idle(const struct session *s)
{
    const struct server_conn *sc = s->server_conn;
    return sc != NULL && s->pinned == NULL && !s->closed && s->phase == PHASE_ACTIVE &&
           sc->poolable && server_conn_at_safe_point(sc) && sc->tx.status == 'I' && !s->hold.held &&
           !s->move_answer_owed && !fence_asking(&s->fence) && sc->ep.fwd_remaining == 0 &&
           evbuffer_get_length(sc->ep.in) == 0 && s->client.fwd_remaining == 0 && txn_prep_idle(sc);
}

/* ... and nothing the admin asked of it at this point (a move asked waits for none). */
static bool txn_conn_between(const struct session *s)
{
    return txn_conn_idle(s) && s->hold.on_safe == SAFE_NOTHING && s->move == NULL;
}

/* Whether the connection could go back now, whatever the client sent: its settings as at login. */
static bool txn_may_let_go(const struct session *s)
{
    return txn_conn_between(s) && s->txn_params_moved == 0;
}

/* Whether the session may give its server connection back now: idle, the client silent too. */
static bool txn_may_release(const struct session *s)
{
    return txn_conn_between(s) && evbuffer_get_length(s->client.in) == 0;
}

/* What the session has seen, for its next server: never an older standby (txn.h, need.h). */
static void txn_note_position(struct session *s, const struct server_conn *sc)
{
    s->txn_read_at = sc->host->runtime;
    s->txn_read_until_ms = monotonic_ms();
}

/* The connection goes back to the pool (txn_may_let_go held): the session is detached. */
static void txn_let_go(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    txn_note_position(s, sc);
    cancel_retarget(s, NULL); /* a cancel request now finds nothing to cancel */
    txn_notify_sender_end(s);
    notify_watch_detached(s);
    s->client.on_write = NULL;
    s->transactions++;
    if (near_own_slots(s)) {
        near_slot_park(s, sc);
        return;
    }
    sc->txn_return = true;
    stat_inc(&s->w->stats.txn_returns);
    s->w->shared->flow->server_release(sc); /* detaches it: s->server_conn is NULL */
}

/*
 * nearest: a standby refused the held transaction as a write (near.h):
 * its connection goes back, and the transaction's messages wait in the
 * client's input for a primary's.  An admin's hold asked meanwhile (PAUSE,
 * a migration's pause, a cutover) holds them there as it holds a new
 * request, until it is lifted; a move asked meanwhile, which has not held
 * it yet (its answer was held, no safe point), moves it as a session
 * between transactions (move_held); a close (DRAIN) waits for their
 * answer (near_owes_request).
 */
static void txn_forward(struct session *s)
{
    txn_let_go(s);
    if (!near_put_back(s)) {
        session_close(s, "out of memory");
        return;
    }
    if (s->hold.on_safe != SAFE_NOTHING && !gate_act_at_safe_point(s))
        return;
    txn_need_server(s);
}

/* nearest: the message at the head begins a transaction for a primary (near.h). */
static void txn_refetch(struct session *s)
{
    txn_let_go(s);
    txn_need_server(s);
}

/*
 * nearest: the answer of a held transaction, once complete, settled; a
 * client the hold kept waiting is read again.  Where the connection could
 * not go back (txn_conn_idle), the client gets the standby's answer
 * instead of its run on a primary.  False: nothing more to do here (it
 * was forwarded, or the session ended).
 */
static bool txn_near_settled(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    bool can_forward = txn_conn_idle(s) && s->txn_params_moved == 0;
    switch (near_on_ready(s, (uint8_t)sc->tx.status, can_forward)) {
    case NEAR_ENDED:
        return false;
    case NEAR_FORWARD:
        txn_forward(s);
        return false;
    case NEAR_RESUME:
        if (endpoint_flush(s, &s->client) < 0)
            return false;
        endpoint_resume_read(&s->client);
        txn_pin_leave_standby(s); /* before what the client sent meanwhile runs on the standby */
        if (!s->hold.held && evbuffer_get_length(s->client.in) > 0 && txn_client_pump(s) < 0)
            return false;
        break;
    default:
        break;
    }
    return s->server_conn == sc && !s->closed;
}

/*
 * How a move of a session pinned on a standby ended (txn_pin_leave_standby):
 * what its client sent while it was held runs now, where it is.  Called
 * before the move's memory goes, the session alive (closed when it ended).
 */
static void txn_pin_moved(const struct move_result *r, void *arg)
{
    struct session *s = arg;
    if (!s->closed && s->server_conn != NULL && !s->hold.held &&
        evbuffer_get_length(s->client.in) > 0)
        txn_client_pump(s);
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
 * nearest: a pin is never final on a standby.  A session pinned there by
 * what it ran (a statement too long to read whole, a reported setting a
 * routine changed: near.h places what a text shows pins on a primary;
 * under session pooling, a state its sync could not carry, near_sync.h)
 * moves with its state, as its transaction ends, to a primary (move.h:
 * the state read back, replayed there), where it stays pinned and its
 * writes run.  Held at once: no request more runs on the standby.  Asked
 * once a transaction (near_pin_move_may_ask): the end of a move that
 * failed lets the session's hold go, which calls here again.
 */
static void txn_pin_leave_standby(struct session *s)
{
    const struct server_conn *sc = s->server_conn;
    if (s->near == NULL || sc == NULL || s->closed || !host_is_standby(sc->host) ||
        sc->tx.status != 'I' || s->move != NULL)
        return;
    /* Its client sent more already: the setting pins it now, before more runs there. */
    if (s->pinned == NULL && s->txn_params_moved > 0 && !near_own_slots(s))
        txn_pin(s, "a reported setting differs from its login's");
    if (s->pinned == NULL || !near_pin_move_may_ask(s))
        return;
    log_info(s->id,
             "nearest: it keeps its server connection on a standby (%s): it moves to a "
             "primary with its state",
             s->pinned);
    struct move_target t = {.hold_first = true, .primary = true};
    move_session(s, &t, txn_pin_moved, s);
}

static bool txn_server_idle(struct session *s)
{
    if (s->near != NULL && s->server_conn != NULL && !txn_near_settled(s))
        return !s->closed;
    /* An admin's wish that waited while the answer was held (near_owes_request). */
    if (s->near != NULL && s->hold.on_safe != SAFE_NOTHING && !gate_act_at_safe_point(s))
        return false;
    if (!txn_may_release(s)) {
        if (!s->closed)
            notify_hub_idle(s); /* a pinned session's notifications, when it waits for nothing */
        if (!s->closed)
            txn_pin_leave_standby(s);
        return !s->closed;
    }
    if (s->txn_params_moved > 0) {
        txn_pin(s, "a reported setting differs from its login's");
        txn_pin_leave_standby(s);
        return !s->closed;
    }
    txn_let_go(s);
    endpoint_resume_read(&s->client);
    notify_hub_idle(s);
    return !s->closed;
}

static void txn_resume_cb(struct session *s)
{
    endpoint_resume_read(&s->client);
    /* What came meanwhile is handed to the reader on the next loop turn. */
    endpoint_set_reader(&s->client, txn_client_read_cb);
}

static void txn_closing(struct session *s)
{
    /* A session that left nothing behind leaves its connection as it is (no reset). */
    bool own_slots = near_own_slots(s);
    if (txn_may_release(s) && !own_slots)
        s->server_conn->txn_return = true;
    txn_next_stop(s, s->closing_why != NULL ? s->closing_why : "its session ended");
    txn_notify_sender_end(s);
    near_sync_end(s);
    near_slots_give_back(s); /* session pooling resets them */
    txn_prep_end(s);
    near_session_end(s);
    notify_hub_session_end(s);
    notify_watch_end(s);
}

/*
 * Whether its client waits for no answer: between transactions, the
 * server's answers all passed on (notify_hub.h: a notification may go to
 * it now, as a server sends one to an idle client).
 */
static bool txn_between(const struct session *s)
{
    if (s->closed || s->phase != PHASE_ACTIVE || s->move != NULL || s->client.fwd_remaining != 0 ||
        evbuffer_get_length(s->client.in) != 0)
        return false;
    const struct server_conn *sc = s->server_conn;
    if (sc == NULL)
        return txn_next_detached_idle(s);
    return server_conn_at_safe_point(sc) && sc->tx.status == 'I' && !fence_asking(&s->fence) &&
           sc->ep.fwd_remaining == 0 && evbuffer_get_length(sc->ep.in) == 0 && txn_prep_idle(sc) &&
           !near_owes_request(s, false);
}
