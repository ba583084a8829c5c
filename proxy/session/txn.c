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
#include "proxy/session/notify_hub.h"
#include "proxy/session/notify_watch.h"
#include "proxy/session/relay.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/session_need.h"
#include "proxy/session/txn_cancel.h"
#include "proxy/session/txn_fetch.h"
#include "proxy/session/txn_notify.h"
#include "proxy/session/txn_prep.h"
#include "proxy/session/txn_settings.h"
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
static bool txn_between(const struct session *s);
static bool txn_conn_between(const struct session *s);
static void txn_attached_go(struct session *s);
static void txn_fetch_again(struct session *s);
static void txn_settings_read_end(struct session *s, const char *why);

/* What both kinds of session below do alike. */
#define TXN_HOOKS_COMMON                                                                           \
    .client_read = txn_client_read_cb, .client_pump = txn_client_pump, .server_param = txn_param,  \
    .server_idle = txn_server_idle, .life = {.resume = txn_resume_cb, .closing = txn_closing},     \
    .on_cancel = txn_cancel, .server_gone = near_on_server_gone, .attached = txn_attached,         \
    .owes_request = near_owes_request, .client_ended = near_on_client_ended,                       \
    .between = txn_between

/* Sessions whose prepared statements are followed (txn_prep.h)... */
static const struct txn_hooks txn_hooks_prep = {
    TXN_HOOKS_COMMON,
    .server = &txn_prep_reader,
    .rest = txn_prep_rest,
};

/*
 * ... nearest's under session pooling, on connections of its own between
 * which it carries what the session sets (near_sync.h): what a text sets
 * does not pin (txn_pin_scan_carried) ...
 */
static const struct txn_hooks txn_hooks_carried = {
    TXN_HOOKS_COMMON,
    .server = &txn_prep_reader,
};

/* ... and the others, whose server side the fence reader reads (fence.h). */
static const struct txn_hooks txn_hooks_plain = {
    TXN_HOOKS_COMMON,
    .server = &fence_reader,
};

/* What nearest has transaction pooling do (near.h). */
static const struct near_pooling txn_near_pooling = {
    .go = txn_attached_go,
    .pin = txn_pin,
    .pump = txn_client_pump,
    .fetch_again = txn_fetch_again,
};

void txn_session_start(struct session *s)
{
    /* No connection: a login answered without one (login_greet.h), which pools transactions. */
    struct server_conn *sc = s->server_conn;
    if (s->cfg == NULL || (sc != NULL && !sc->poolable))
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
    if (sc != NULL) /* (else its greeting told it: server_greet_client) */
        txn_notify_encoding(s, txn_notify_login_encoding(s, sc));
    if ((!prep || !near_session_start(s, own_slots, &txn_near_pooling)) &&
        s->need.role == NEED_NEAREST && s->pinned == NULL)
        s->pinned = "out of memory";
    if (own_slots && s->near != NULL)
        s->txn = &txn_hooks_carried;
    /* The client's settings follow it where the pool resets what it gives back (txn_settings.h). */
    if (mode == POOL_TRANSACTION && s->near == NULL && s->pinned == NULL &&
        s->cfg->server_reset_query[0] != '\0')
        txn_settings_start(s);
}

/* The transaction's connection takes the session's waiting messages on. */
static void txn_attached_go(struct session *s)
{
    cancel_retarget(s, s->server_conn);
    if (relay_attach_server(s) == 0 && !s->closed) {
        endpoint_resume_read(&s->client);
        txn_client_pump(s);
    }
}

/* A connection attached for the session's next transaction: with its state first. */
static void txn_attached(struct session *s)
{
    latency_session_attached(s);
    if (txn_settings_apply(s, txn_attached_go)) /* the client's settings there first */
        return;
    if (!near_on_attach(s)) /* nearest carries its state there first */
        txn_attached_go(s);
}

void txn_pin(struct session *s, const char *why)
{
    if (s->pinned != NULL)
        return;
    s->pinned = why;
    stat_inc(&s->w->stats.txn_pins);
    slog_info(s, "keeps its server connection from now on (transaction pooling): %s", why);
}

/*
 * What a whole Query or Parse (body: blen bytes) leaves in the server's
 * session (txn_pin.h); NULL: nothing.  followed: named statements are
 * (txn_prep.h).  Where nearest carries the session's state between its
 * own connections, what it sets does not pin: *changes (when not NULL)
 * says it may change.
 */
static const char *txn_message_pins(struct session *s, char type, const uint8_t *body, size_t blen,
                                    bool *changes)
{
    const char *text = (const char *)body;
    const uint8_t *sql = body;
    if (type != 'Q') {
        size_t name_len = strnlen(text, blen);
        if (name_len >= blen)
            return NULL; /* malformed: the server refuses it */
        if (name_len > 0 && s->prep == NULL)
            return "a named prepared statement";
        sql += name_len + 1;
    }
    size_t len = strnlen((const char *)sql, blen - (size_t)(sql - body));
    bool changed = false;
    if (s->txn != &txn_hooks_carried && !txn_settings_on(s))
        return txn_pin_scan(sql, len);
    const char *why = txn_pin_scan_carried(sql, len, &changed);
    if (type != 'Q' && why == NULL) /* read back where it runs (txn_settings.h) */
        txn_settings_parsed(s, sql > body + 1, changed);
    else if (changed && why == NULL)
        txn_settings_touched(s); /* read back before the connection goes (txn_settings.h) */
    if (changes != NULL && changed)
        *changes = true;
    return why;
}

/*
 * Reads a Query or Parse whole, when it is not too long, for what it
 * would leave behind.  1: read (or pinned for its length), 0: wait for
 * the rest, <0: the session ended.
 */
static int txn_client_scan(struct session *s, char type, uint32_t len, size_t avail)
{
    const uint8_t *msg = NULL;
    const char *why = "a statement too long to read whole";
    bool changes = false;
    if (len - 4 <= TXN_SCAN_MAX) {
        if (avail < 1 + (size_t)len)
            return 0;
        if ((msg = evbuffer_pullup(s->client.in, 1 + (ssize_t)len)) == NULL) {
            session_close(s, "out of memory");
            return -1;
        }
        txn_notify_sender(s, msg + 5, len - 4);
        why = txn_message_pins(s, type, msg + 5, len - 4, &changes);
    }
    /* nearest notes what it changes; it may carry the pin, or pin where it runs (near.h) */
    if (s->near != NULL)
        why = near_on_text(s, msg != NULL ? msg + 5 : NULL, len - 4, changes, why);
    if (why != NULL)
        txn_pin(s, why);
    return 1;
}

/* A whole client message (n bytes, header included) went on: off the input, unless moved. */
static void txn_client_consumed(struct session *s, uint8_t type, size_t n, bool moved)
{
    s->client.last_type = (char)type;
    if (!moved)
        evbuffer_drain(s->client.in, n);
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
    if (type == 'B')
        txn_settings_bound(s, msg + 5, len - 4);
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

static bool txn_may_let_go(const struct session *s);
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
    if (type == 'B')
        txn_settings_bound(s, body, blen);
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
    if (s->near != NULL && (rc = near_client_step(s, &h, txn_may_let_go(s))) != MSG_HEAD)
        return rc;
    if (s->pinned == NULL && (h.type == 'Q' || h.type == 'P') &&
        (rc = txn_client_scan(s, (char)h.type, h.len, h.avail)) <= 0)
        return rc;
    if (s->prep != NULL && (h.type != 'd' || h.len - 4 < TXN_PREP_STREAM_MIN))
        return txn_client_rewrite(s, h.type, h.len, h.avail);
    if (notify_watch_on(s) && (rc = txn_notify_watch_msg(s, &h, TXN_SCAN_MAX)) <= 0)
        return rc;
    if (h.type == 'B')
        txn_settings_bound(s, NULL, 0); /* named statements pinned (txn_message_pins) */
    tx_track_client(&s->server_conn->tx, h.type);
    txn_client_consumed(s, h.type, h.avail < 1 + (size_t)h.len ? h.avail : 1 + (size_t)h.len, true);
    return msg_step_pass(s, src, dst, &h);
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
        if (s->rare->notify != NULL && !notify_watch_start(s)) {
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

/*
 * A connection kept between transactions whose server ended it (its
 * FATAL waits in the input, or answered pgnear's question): true when the
 * transaction takes another, as one refused by a standby does.
 */
static bool txn_server_ended_between(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (__builtin_expect(!sc->fatal_read && !server_conn_error_waits(sc), 1) ||
        !txn_conn_between(s))
        return false;
    txn_fetch_again(s);
    return true;
}

static int txn_client_pump(struct session *s)
{
    /* A quiet client's empty statement table went with its buffers (txn_prep_rest). */
    if (__builtin_expect(s->prep == NULL, 0) && s->txn == &txn_hooks_prep && !txn_prep_start(s)) {
        session_fail_msg(s, "53200", "out of memory");
        return -1;
    }
    if (s->server_conn == NULL)
        return txn_need_server(s);
    if (txn_settings_busy(s))
        return 0; /* its settings are read or replayed: its messages wait */
    if (txn_server_ended_between(s))
        return s->closed ? -1 : 0;
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
    /*
     * The server's role, not the session's state: a promotion reports it to
     * every session of the server, none of which set it (PGC_INTERNAL).  It
     * is the connection's now, for the logins answered as it logged in
     * (login_greet.h).
     */
    if (strcmp(name, "in_hot_standby") == 0) {
        if (param_set_note(&sc->reported, body, blen) != PARAM_SET_OK)
            sc->poolable = false; /* its report is no longer whole: not kept, greets nobody */
        return;
    }
    if (near_carries(s))
        return; /* nearest's connections are its own: carried, not pinned */
    if (txn_settings_on(s)) {
        txn_settings_touched(s); /* follows the client: read back, not pinned */
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
           !s->move_answer_owed && !fence_asking(s->fence) && sc->ep.fwd_remaining == 0 &&
           (evbuffer_get_length(sc->ep.in) == 0 || server_conn_error_waits(sc)) &&
           s->client.fwd_remaining == 0 && txn_prep_idle(sc);
}

/* ... and nothing the admin asked of it at this point (a move asked waits for none). */
static bool txn_conn_between(const struct session *s)
{
    return txn_conn_idle(s) && s->hold.on_safe == SAFE_NOTHING && s->rare->move == NULL;
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
    session_note_read(s, sc->host->runtime);
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
    if (near_on_let_go(s, sc))
        return;                               /* parked: nearest's own under session pooling */
    sc->txn_return = !txn_settings_let_go(s); /* reset when its settings are there */
    stat_inc(&s->w->stats.txn_returns);
    s->w->shared->flow->server_release(sc); /* detaches it: s->server_conn is NULL */
}

/*
 * The connection goes back (txn_may_let_go held), and another is fetched
 * for the messages that wait in the client's input: nearest's, for a
 * transaction that belongs on a primary (near.h), or put back after a
 * standby refused it.  An admin's hold asked meanwhile (PAUSE, a
 * migration's pause, a cutover) holds them there as it holds a new
 * request, until it is lifted; a move asked meanwhile, which has not held
 * it yet (its answer was held, no safe point), moves it as a session
 * between transactions (move_held); a close (DRAIN) waits for their
 * answer (near_owes_request).
 */
static void txn_fetch_again(struct session *s)
{
    txn_let_go(s);
    if (s->hold.on_safe != SAFE_NOTHING && !gate_act_at_safe_point(s))
        return;
    txn_need_server(s);
}

static bool txn_server_idle(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (s->near != NULL && sc != NULL) {
        /* nearest settles its request (near.h): run again on a primary, its connection let go */
        bool can_forward = txn_conn_idle(s) && s->txn_params_moved == 0;
        enum near_verdict v = near_on_server_ready(s, (uint8_t)sc->tx.status, can_forward);
        if (v == NEAR_FORWARD)
            txn_fetch_again(s);
        if (v != NEAR_PASS || s->server_conn != sc || s->closed)
            return !s->closed;
    }
    /* An admin's wish that waited while the answer was held (near_owes_request). */
    if (s->near != NULL && s->hold.on_safe != SAFE_NOTHING && !gate_act_at_safe_point(s))
        return false;
    /*
     * A request its client sent before this ReadyForQuery (a pipelining
     * client, or one that sent while its settings were read back) takes
     * its turn as any other would: the connection goes back at every
     * transaction's end, and a client waiting for it is not passed over.
     */
    bool sent_more = s->near == NULL && evbuffer_get_length(s->client.in) > 0;
    bool stays = sent_more ? !txn_conn_between(s) : !txn_may_release(s);
    if (!stays && s->pinned == NULL && txn_settings_read(s, txn_settings_read_end))
        return !s->closed; /* its settings are read back first */
    if (stays && !s->closed)
        notify_hub_idle(s); /* a pinned session's notifications, when it waits for nothing */
    else if (!stays && s->txn_params_moved > 0)
        txn_pin(s, "a reported setting differs from its login's");
    /* It keeps its connection: nearest moves one pinned on a standby to a primary. */
    if (stays || s->pinned != NULL)
        return near_on_idle(s);
    txn_let_go(s);
    endpoint_resume_read(&s->client);
    notify_hub_idle(s);
    if (sent_more && !s->closed)
        txn_client_pump(s); /* its next transaction: a connection for it */
    return !s->closed;
}

/* The settings read back (txn_settings.h): the connection goes, or stays pinned. */
static void txn_settings_read_end(struct session *s, const char *why)
{
    if (why != NULL)
        txn_pin(s, why);
    if (txn_server_idle(s) && s->server_conn != NULL && !s->closed)
        txn_client_pump(s);
}

static void txn_resume_cb(struct session *s)
{
    endpoint_resume_read(&s->client);
    /* What came meanwhile is handed to the reader on the next loop turn. */
    endpoint_set_reader(&s->client, txn_client_read_cb);
}

/*
 * Whether the connection of a session ending inside a transaction or a
 * request can be rolled back and kept (server_rollback_timeout): the
 * server waits for nothing of its client's — no message half sent, no
 * extended-protocol batch without its Sync (a Sync would commit the
 * batch's implicit transaction, which the client never ended), no COPY —
 * pgnear knows the answers it owes and sends no half message to the
 * client, and nothing pins it (the pool's rules after a transaction).
 * Nearest's sessions end as they do (near_on_client_ended).
 */
static bool txn_may_roll_back(const struct session *s)
{
    const struct server_conn *sc = s->server_conn;
    if (sc == NULL || s->cfg->server_rollback_timeout_ms == 0 || s->near != NULL ||
        s->pinned != NULL || s->phase != PHASE_ACTIVE || !sc->poolable || s->rare->move != NULL ||
        s->move_answer_owed || sc->cancels_in_flight > 0)
        return false;
    /* Idle outside a transaction, it is given back as ever (reset: pool_give.h). */
    if (sc->tx.status == 'I' && server_conn_at_safe_point(sc))
        return false;
    return sc->tx.status != 0 && !(sc->tx.flags & (TX_BATCH | TX_COPYING | TX_UNSURE)) &&
           s->client.fwd_remaining == 0 && sc->ep.fwd_remaining == 0;
}

/*
 * The session ends inside a transaction: its connection gets a cancel of
 * what runs there, if anything does, and a ROLLBACK (pool_give.h); kept
 * as it is after that when nothing else of the session's is owed, reset
 * otherwise (txn_return).
 */
static void txn_roll_back(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    sc->rollback_owed = sc->tx.outstanding + 1;
    sc->rollback_until_us = wall_clock_us() + (int64_t)s->cfg->server_rollback_timeout_ms * 1000;
    sc->txn_return = txn_prep_idle(sc) && s->txn_params_moved == 0 && !txn_settings_on_conn(s);
    slog_info(s, "server connection %llu: its client left inside a transaction; %s",
              (unsigned long long)sc->id,
              sc->tx.outstanding > 0 ? "canceled, then rolled back" : "rolled back");
    if (sc->tx.outstanding > 0 && !cancel_server_conn(s->w, sc, s->id))
        sc->rollback_owed = 0; /* closed as before: what runs there would hold it */
}

static void txn_closing(struct session *s)
{
    /* A session that left nothing behind leaves its connection as it is (no reset)... */
    if (txn_settings_owed(s) && s->server_conn != NULL)
        s->server_conn->poolable = false; /* its own answers unread there: not kept */
    bool as_is = txn_may_release(s) && !txn_settings_on_conn(s);
    if (!as_is && txn_may_roll_back(s))
        txn_roll_back(s);
    txn_next_stop(s, s->closing_why != NULL ? s->closing_why : "its session ended");
    txn_notify_sender_end(s);
    /* ... unless its connections were nearest's own (session pooling resets them). */
    if (!near_on_close(s) && as_is)
        s->server_conn->txn_return = true;
    txn_prep_end(s);
    txn_settings_end(s);
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
    if (s->closed || s->phase != PHASE_ACTIVE || s->rare->move != NULL ||
        s->client.fwd_remaining != 0 || evbuffer_get_length(s->client.in) != 0)
        return false;
    const struct server_conn *sc = s->server_conn;
    if (sc == NULL)
        return txn_next_detached_idle(s);
    return server_conn_at_safe_point(sc) && sc->tx.status == 'I' && !fence_asking(s->fence) &&
           sc->ep.fwd_remaining == 0 && evbuffer_get_length(sc->ep.in) == 0 && txn_prep_idle(sc) &&
           !s->txn->owes_request(s, false);
}
