/*
 * near.c — each transaction on the nearest host that can run it (near.h).
 */
#include "proxy/session/near.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/param_set.h"
#include "protocol/prepared.h"
#include "protocol/txn_open.h"
#include "protocol/tx_track.h"
#include "proxy/base/config.h"
#include "proxy/base/func_catalog.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "protocol/pg_error.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/fence.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/near_int.h"
#include "proxy/session/near_text.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/timeouts.h"
#include "routing/region.h"

bool near_session_start(struct session *s, bool own_slots, const struct near_pooling *pool)
{
    if (s->need.role != NEED_NEAREST || s->txn == NULL || s->pinned != NULL)
        return true;
    struct near_state *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return false;
    n->held.answer = evbuffer_new();
    n->held.kept = evbuffer_new();
    if (n->held.answer == NULL || n->held.kept == NULL) {
        s->near = n;
        near_session_end(s);
        return false;
    }
    s->near = n;
    if (fence_begin(s) != 0) { /* its writes' positions (fence_ask_after) */
        near_session_end(s);
        return false;
    }
    n->slots.own = own_slots;
    n->pool = pool;
    if (txn_open_startup_serializable(
            param_set_get(&s->server_startup, "options"),
            param_set_get(&s->server_startup, "default_transaction_isolation")))
        near_note_serializable(s, "its startup parameters");
    near_on_relay(s);
    /* Its database's routines are read now, so that its first statement need not wait long. */
    n->routines = func_catalog_database(&s->w->funcs, s->database);
    (void)func_catalog_get(n->routines, s->w->cfg);
    return true;
}

void near_session_end(struct session *s)
{
    struct near_state *n = s->near;
    if (n == NULL)
        return;
    func_waiter_cancel(&n->routines_wait);
    if (n->held.answer != NULL)
        evbuffer_free(n->held.answer);
    if (n->held.kept != NULL)
        evbuffer_free(n->held.kept);
    free(n);
    s->near = NULL;
}

/* The session ends for want of memory: as the verbs return. */
static enum near_verdict near_out_of_memory(struct session *s)
{
    session_close(s, "out of memory");
    return NEAR_ENDED;
}

/*
 * The transaction moves to leg next, as near_legs.c's table allows
 * (near_leg_enter); only here, and each caller acts on a refusal (the
 * session failed).
 */
static bool near_leg_to(struct session *s, enum near_leg next)
{
    return near_leg_enter(s, &s->near->leg, next);
}

/* ... as the verbs return. */
static enum near_verdict near_go(struct session *s, enum near_leg next, enum near_verdict v)
{
    return near_leg_to(s, next) ? v : NEAR_ENDED;
}

/* The database's routines were read, or could not be: the client's waiting message goes on. */
static void near_routines_ready(struct func_waiter *fw)
{
    struct session *s = fw->owner;
    slog_debug(s, "nearest: its database's routines were read: its transaction goes on");
    endpoint_resume_read(&s->client);
    endpoint_set_reader(&s->client, s->client.on_read);
}

static size_t near_request_extent(struct session *s);

/*
 * Whether the Query, Parse or Bind messages of the request at the head of
 * client.in (near_request_extent) name what names (the database's copy)
 * does not know; settle: near_text_unknown's.
 */
static bool near_request_unknown(struct session *s, struct func_set *names, bool settle)
{
    size_t end = near_request_extent(s);
    const uint8_t *p = end > 0 ? evbuffer_pullup(s->client.in, (ssize_t)end) : NULL;
    bool unknown = false;
    for (size_t at = 0; p != NULL && at < end; at += 1 + (size_t)pkt_be32(p + at + 1))
        if ((p[at] == 'Q' || p[at] == 'P' || p[at] == 'B') &&
            near_text_unknown(s, names, p + at, 1 + (size_t)pkt_be32(p + at + 1), settle))
            unknown = true;
    return unknown;
}

/*
 * Whether the request at the head of client.in waits for its database's
 * catalog to be read again: it names a function, relation, operator or
 * type that the copy does not know — made since, past pgnear, and it
 * may write.  Once a copy read after the request was first seen answers,
 * what it still lacks is noted absent (near_text_unknown) and the request
 * is placed: such names on a primary.  No wait when no read can start
 * (the last failed everywhere): near_need_of places them on a primary.
 */
static bool near_names_wait(struct session *s)
{
    struct near_state *ns = s->near;
    struct func_set *names = func_catalog_get(ns->routines, s->w->cfg);
    if (names == NULL)
        return false;
    bool settle = ns->unknown_since != 0 && func_set_read(names) > ns->unknown_since - 1;
    if (!near_request_unknown(s, names, settle)) {
        ns->unknown_since = 0;
        return false;
    }
    if (ns->unknown_since == 0)
        ns->unknown_since = func_catalog_reads(ns->routines) + 1;
    func_catalog_demand(ns->routines, s->w->cfg);
    if (!func_catalog_wait_read(ns->routines, &ns->routines_wait)) {
        ns->unknown_since = 0;
        return false;
    }
    slog_debug(s, "nearest: its transaction waits for its database's catalog to be read again");
    endpoint_pause_read(&s->client);
    return true;
}

/*
 * Whether the transaction that the client's waiting message begins waits
 * for its database's catalog, being read now (func_catalog.h): where it
 * runs may depend on it, and a read takes a few milliseconds, once a
 * database and worker, after DDL of routines and when a name is not known
 * yet (near_names_wait; names: its names are looked at), where sending
 * it to a primary meanwhile would cost a distant client a round trip.
 * The client is read no more until then.
 */
static bool near_routines_wait(struct session *s, bool names)
{
    struct near_state *ns = s->near;
    ns->routines_wait.ready = near_routines_ready;
    ns->routines_wait.owner = s;
    if (!func_catalog_wait(ns->routines, s->w->cfg, &ns->routines_wait))
        return names && near_names_wait(s);
    slog_debug(s, "nearest: its transaction waits for its database's routines to be read");
    endpoint_pause_read(&s->client);
    return true;
}

/*
 * The first message of client.in, whole (n: its size), or NULL: not all
 * of it is in yet, or it is too long to keep (*too_long).
 */
static const uint8_t *near_first_message(struct session *s, size_t *n, bool *too_long)
{
    uint8_t h[PKT_HEADER_LEN];
    *too_long = false;
    if (evbuffer_copyout(s->client.in, h, sizeof(h)) != (ssize_t)sizeof(h))
        return NULL;
    uint32_t len = pkt_be32(h + 1);
    *too_long = len < 4 || 1 + (size_t)len > NEAR_HOLD_MAX;
    if (*too_long)
        return NULL;
    *n = 1 + (size_t)len;
    if (evbuffer_get_length(s->client.in) < *n)
        return NULL;
    return evbuffer_pullup(s->client.in, (ssize_t)*n);
}

/* What the client's waiting messages say of the request they begin (near_request_of). */
enum near_request {
    NEAR_REQUEST_UNKNOWN, /* its messages are not all in yet */
    NEAR_REQUEST_KEPT,    /* whole, every message short enough to keep */
    NEAR_REQUEST_LONG,    /* a message of it is too long to keep: it cannot run again */
};

/*
 * The request that the messages at the head of client.in begin: the
 * extended protocol's messages up to the first that asks for an answer
 * (Sync, Flush) or is not one of them.  A client expects no answer before
 * that message, so waiting for it costs nothing; and a Bind of a value
 * over NEAR_HOLD_MAX behind a short Parse (a driver binding a large
 * bytea, json or text) must start on a primary, where a standby's 25006
 * could no longer be run again.  Read a header at a time, as the relay
 * reads them; at most NEAR_HOLD_MAX bytes of short messages are looked at.
 */
static enum near_request near_request_of(struct session *s)
{
    struct frame_walk w;
    char type;
    uint32_t len;
    frame_walk_init(&w, s->client.in, 0);
    while (frame_walk_next(&w, &type, &len)) {
        if (1 + (size_t)len > NEAR_HOLD_MAX)
            return NEAR_REQUEST_LONG;
        if (type == '\0' || strchr("PBDEC", type) == NULL || w.at > NEAR_HOLD_MAX)
            return w.at <= w.have ? NEAR_REQUEST_KEPT : NEAR_REQUEST_UNKNOWN;
    }
    return w.bad ? NEAR_REQUEST_LONG : NEAR_REQUEST_UNKNOWN;
}

/*
 * The bytes of the request at the head of client.in that near_request_of
 * found whole (or the first NEAR_HOLD_MAX bytes of it): its whole
 * extended-protocol messages and the Sync, Flush, Query or FunctionCall
 * that ends it.  0: none such.
 */
static size_t near_request_extent(struct session *s)
{
    struct frame_walk w;
    char type;
    uint32_t len;
    size_t end = 0;
    frame_walk_init(&w, s->client.in, 0);
    while (frame_walk_next(&w, &type, &len) && w.at <= w.have && 1 + (size_t)len <= NEAR_HOLD_MAX) {
        bool extended = type != '\0' && strchr("PBDEC", type) != NULL;
        if (!extended && (type == '\0' || strchr("SHQF", type) == NULL))
            break;
        end = w.at;
        if (!extended || end > NEAR_HOLD_MAX)
            break;
    }
    return end;
}

/*
 * Whether a Query, Parse or Bind of the request's first end bytes
 * (near_request_extent), from byte from on, runs what belongs on a
 * primary (near_need_of: DO, CALL, a routine that may write, a lock, a
 * pin, a block that is not READ ONLY).  Each text is read once here:
 * near_client_held does not read these messages again (checked_left).
 * A standby must not run any of it first: dblink_exec's write would
 * commit there and again where the transaction runs again.
 */
static bool near_request_for_primary(struct session *s, size_t from, size_t end)
{
    const uint8_t *p = evbuffer_pullup(s->client.in, (ssize_t)end);
    if (p == NULL)
        return true; /* out of memory: where writes run, the session closes as it goes on */
    for (size_t at = from; at < end; at += 1 + (size_t)pkt_be32(p + at + 1)) {
        bool read_only;
        size_t n = 1 + (size_t)pkt_be32(p + at + 1);
        if (p[at] != 'Q' && p[at] != 'P' && p[at] != 'B')
            continue;
        if (near_need_of(s, p + at, n, &read_only) == NEED_PRIMARY && !read_only)
            return true;
    }
    return false;
}

bool near_first_ready(struct session *s)
{
    uint8_t h[PKT_HEADER_LEN];
    if (s->near == NULL || s->near->leg == NEAR_FORWARDING)
        return true;
    if (evbuffer_copyout(s->client.in, h, sizeof(h)) != (ssize_t)sizeof(h))
        return false;
    uint32_t len = pkt_be32(h + 1);
    /* A bad length or a message too long to keep: the fetch goes ahead (for a primary). */
    if (len < 4 || 1 + (size_t)len > NEAR_HOLD_MAX)
        return true;
    return near_request_of(s) != NEAR_REQUEST_UNKNOWN && !near_routines_wait(s, true);
}

/*
 * What the request at the head of client.in needs, its first message msg
 * (n bytes): its first message's need (near_need_of), or a primary's for
 * a later Query, Parse or Bind of it that would be placed there.  *end:
 * the request's bytes read (0: a READ ONLY block's, which runs where it
 * begins, not read further).
 */
static enum session_need near_request_need(struct session *s, const uint8_t *msg, size_t n,
                                           bool *read_only, size_t *end)
{
    enum session_need need = near_need_of(s, msg, n, read_only);
    *end = *read_only ? 0 : near_request_extent(s);
    if (need != NEED_PRIMARY && *end > 0 && near_request_for_primary(s, n, *end))
        need = NEED_PRIMARY;
    return need;
}

enum session_need near_next_need(struct session *s)
{
    struct near_state *ns = s->near;
    ns->placed.first = 0;
    if (ns->leg == NEAR_FORWARDING)
        return NEED_PRIMARY; /* put back: it runs again on a primary */
    size_t n, end;
    bool read_only, too_long;
    const uint8_t *msg = near_first_message(s, &n, &too_long);
    if (too_long || near_request_of(s) == NEAR_REQUEST_LONG)
        return NEED_PRIMARY; /* it cannot be kept to run again: where writes run */
    if (msg == NULL)
        return NEED_NEAREST;
    enum session_need need = near_request_need(s, msg, n, &read_only, &end);
    /* near_begin takes it from here as the connection attaches: no text is read twice. */
    ns->placed = (struct near_placed){.need = need == NEED_PRIMARY ? NEED_PRIMARY : NEED_NEAREST,
                                      .read_only = read_only,
                                      .first = n,
                                      .end = end};
    return need;
}

void near_on_relay(struct session *s)
{
    struct near_state *ns = s->near;
    /* A request put back stays so, to run again on this connection (a primary's). */
    if (ns == NULL || (ns->leg != NEAR_FORWARDING && !near_leg_to(s, NEAR_BETWEEN)))
        return;
    ns->held.checked_left = 0;
    evbuffer_drain(ns->held.answer, evbuffer_get_length(ns->held.answer));
    evbuffer_drain(ns->held.kept, evbuffer_get_length(ns->held.kept));
}

/*
 * What the transaction this message (n bytes) begins needs, its request
 * read whole (*end: its bytes read, near_request_extent) where the
 * connection is a standby's: as near_next_need found it when it fetched
 * the connection, each text read once.
 */
static enum session_need near_begin_need(struct session *s, const uint8_t *msg, size_t n,
                                         enum near_request request, bool *read_only, size_t *end)
{
    struct near_state *ns = s->near;
    enum session_need need;
    if (ns->placed.first != 0 && ns->placed.first == n) {
        need = ns->placed.need;
        *read_only = ns->placed.read_only;
        *end = ns->placed.end;
    } else if (request != NEAR_REQUEST_LONG && host_is_standby(s->server_conn->host)) {
        need = near_request_need(s, msg, n, read_only, end);
    } else {
        need = near_need_of(s, msg, n, read_only);
    }
    ns->placed.first = 0;
    return request == NEAR_REQUEST_LONG ? NEED_PRIMARY : need;
}

/*
 * The transaction placed on a standby (need, read_only and end as
 * near_begin_need found them): held, its request stood in for when it
 * belongs on a primary, or shown (a READ ONLY block).  As near_begin.
 */
static enum near_verdict near_begin_on_standby(struct session *s, enum session_need need,
                                               bool read_only, enum near_request request,
                                               size_t end)
{
    struct near_state *ns = s->near;
    if (read_only)
        return near_go(s, NEAR_SHOWN, NEAR_PASS);
    if (need == NEED_PRIMARY && request != NEAR_REQUEST_LONG && end == 0)
        end = near_request_extent(s);
    if (need == NEED_PRIMARY && end > 0) {
        if (!near_stand_in(s, end))
            return near_out_of_memory(s);
        return near_go(s, NEAR_STANDING_IN, NEAR_AGAIN);
    }
    ns->held.checked_left = end;
    ns->held.must_forward = need == NEED_PRIMARY;
    return near_go(s, NEAR_HELD, NEAR_PASS);
}

/* The transaction this message begins: where it runs.  As near_on_client returns. */
static enum near_verdict near_begin(struct session *s, const uint8_t *msg, size_t n,
                                    bool can_let_go)
{
    struct near_state *ns = s->near;
    ns->held.must_forward = ns->held.cancel_asked = false;
    ns->held.checked_left = 0;
    ns->pin_move_asked = false; /* a move off a standby it is pinned on may be asked at its end */
    /*
     * Put back: it runs again here, on a primary's connection; or on the
     * standby's its session is pinned to (its state could not follow it,
     * near_sync.h), where its client gets the standby's 25006.  Held on a
     * standby it never is: the table refuses that move.
     */
    if (ns->leg == NEAR_FORWARDING) {
        bool here = !host_is_standby(s->server_conn->host) || s->pinned != NULL;
        return near_go(s, here ? NEAR_RERUN : NEAR_HELD, NEAR_PASS);
    }
    enum near_request request = near_request_of(s);
    if (request == NEAR_REQUEST_UNKNOWN)
        return NEAR_WAIT; /* the rest of the request comes: the relay reads on */
    /* Its names were looked at as its connection was fetched (near_first_ready), once. */
    bool placed = ns->placed.first != 0 && ns->placed.first == n;
    if (host_is_standby(s->server_conn->host) && near_routines_wait(s, !placed))
        return NEAR_WAIT;
    bool read_only, standby = host_is_standby(s->server_conn->host);
    size_t end = 0; /* its request's bytes read whole (near_request_for_primary) */
    enum session_need need = near_begin_need(s, msg, n, request, &read_only, &end);
    slog_debug(s, "nearest: a transaction starts on the %s %s:%d (its connection %llu)%s",
               standby ? "standby" : "primary", s->server_conn->host->name,
               s->server_conn->host->port, (unsigned long long)s->server_conn->id,
               need == NEED_PRIMARY ? ", for a primary" : "");
    if (!standby)
        return near_go(s, need == NEED_PRIMARY ? NEAR_PRIMARY : NEAR_PRIMARY_NEAREST, NEAR_PASS);
    if (need == NEED_PRIMARY && can_let_go)
        return NEAR_REFETCH;
    return near_begin_on_standby(s, need, read_only, request, end);
}

/* Whether the message at hand begins a transaction: the connection idle, nothing owed. */
static bool near_at_start(const struct session *s)
{
    const struct server_conn *sc = s->server_conn;
    enum near_leg leg = s->near->leg;
    return (leg == NEAR_BETWEEN || leg == NEAR_FORWARDING) && sc->tx.status == 'I' &&
           server_conn_at_safe_point(sc);
}

/*
 * Whether the message at hand begins a transaction on a primary behind
 * pgnear's own question of its position (fence_ask_after): nothing of
 * the client's owed, only that question.
 */
static bool near_follows_on_primary(const struct session *s)
{
    const struct server_conn *sc = s->server_conn;
    return s->near->leg == NEAR_BETWEEN && s->fence != NULL && s->fence->after &&
           sc->tx.status == 'I' && !host_is_standby(sc->host) && sc->tx.outstanding == 1 &&
           !(sc->tx.flags & TX_BATCH);
}

/*
 * It came before the primary answered pgnear's question of its position
 * after the last transaction, and follows it there: a transaction of its
 * own, which may write, so its end asks again (the answer on its way is
 * older than its commit).
 */
static bool near_follow_on_primary(struct session *s)
{
    struct near_state *ns = s->near;
    ns->held.must_forward = ns->held.cancel_asked = false;
    return near_leg_to(s, NEAR_PRIMARY);
}

/*
 * The first message of a request after a Flush that kept the hold: the
 * request is read whole first, as a transaction's first one is, and
 * what of it belongs on a primary has the request run there, not on the
 * standby at all (near_stand_in).  As near_on_client returns.
 */
static enum near_verdict near_next_request(struct session *s)
{
    struct near_state *ns = s->near;
    enum near_request request = near_request_of(s);
    if (request == NEAR_REQUEST_UNKNOWN)
        return NEAR_WAIT; /* the rest of it comes: the relay reads on */
    if (request == NEAR_REQUEST_LONG)
        return near_go(s, NEAR_HELD, NEAR_PASS); /* its long message gives the hold up */
    size_t end = near_request_extent(s);
    if (!near_request_for_primary(s, 0, end)) {
        ns->held.checked_left = end;
        return near_go(s, NEAR_HELD, NEAR_PASS);
    }
    if (!near_stand_in(s, end))
        return near_out_of_memory(s);
    return near_go(s, NEAR_STANDING_IN, NEAR_AGAIN);
}

/* A client message longer than NEAR_HOLD_MAX is about to go: never kept.  As near_on_client. */
static enum near_verdict near_client_long(struct session *s, bool can_let_go)
{
    struct near_state *ns = s->near;
    if (near_at_start(s)) {
        if (host_is_standby(s->server_conn->host) && can_let_go)
            return NEAR_REFETCH;
        /* Placed as a write: it could not be kept to run again. */
        if (!near_leg_to(s, host_is_standby(s->server_conn->host) ? NEAR_SHOWN : NEAR_PRIMARY))
            return NEAR_ENDED;
    } else if (near_leg_holds(ns->leg)) {
        near_give_up(s);
        if (!near_leg_to(s, NEAR_SHOWN))
            return NEAR_ENDED;
    }
    ns->head_seen = true;
    return NEAR_PASS;
}

/*
 * Where the transaction that msg (n bytes, at the head of client.in)
 * begins or continues runs, before the hold looks at it: a new one
 * placed, one following pgnear's question on a primary, the wait for a
 * Flush's answers, the next request after one read whole.  NEAR_PASS:
 * *msg (read in place again) goes on to the hold.
 */
static enum near_verdict near_client_place(struct session *s, const uint8_t **msg, size_t n,
                                           bool can_let_go)
{
    struct near_state *ns = s->near;
    enum near_verdict v = NEAR_PASS;
    bool moved = false; /* a request's read may have moved it */
    if (near_at_start(s)) {
        v = near_begin(s, *msg, n, can_let_go);
        moved = true;
    } else if (near_follows_on_primary(s) && !near_follow_on_primary(s)) {
        return NEAR_ENDED;
    }
    if (v == NEAR_PASS && ns->leg == NEAR_HELD_FLUSHING) {
        if (near_flush_read(s))
            return NEAR_WAIT;
        v = near_next_request(s);
        moved = true;
    }
    if (v == NEAR_PASS && moved && (*msg = evbuffer_pullup(s->client.in, (ssize_t)n)) == NULL)
        return near_out_of_memory(s);
    return v;
}

/* A whole client message (msg, n bytes) while its transaction is held: kept, to run again. */
static enum near_verdict near_client_held(struct session *s, const uint8_t *msg, size_t n)
{
    struct near_state *ns = s->near;
    /* pgnear's Sync (near_stand_in): the request is kept already. */
    if (ns->leg == NEAR_STANDING_IN)
        return near_go(s, NEAR_STOOD_IN, NEAR_LAST);
    if (n > NEAR_HOLD_MAX) {
        near_give_up(s);
        return near_go(s, NEAR_SHOWN, NEAR_PASS);
    }
    bool read_only;
    if (msg[0] == 'H')
        return near_go(s, near_flush_asked(s), NEAR_PASS);
    /* What its request's check read (near_request_for_primary) is not read again. */
    if (ns->held.checked_left == 0 && near_need_of(s, msg, n, &read_only) == NEED_PRIMARY &&
        !read_only)
        ns->held.must_forward = true;
    if (evbuffer_add(ns->held.kept, msg, n) != 0)
        return near_out_of_memory(s);
    if (msg[0] == 'Q' || msg[0] == 'S' || msg[0] == 'F')
        return near_go(s, NEAR_HELD_SENT, NEAR_LAST);
    return NEAR_PASS;
}

/* A whole client message (msg, n bytes) is about to go to the server: as near_on_client. */
static enum near_verdict near_client_message(struct session *s, const uint8_t *msg, size_t n,
                                             bool can_let_go)
{
    struct near_state *ns = s->near;
    enum near_verdict v = near_client_place(s, &msg, n, can_let_go);
    if (v != NEAR_PASS)
        return v;
    ns->head_seen = true;
    if (ns->leg == NEAR_SHOWN && s->server_conn->tx.status == 'T' &&
        host_is_standby(s->server_conn->host)) {
        struct near_refusal refusal;
        if (!near_block_refusal(s, msg, n, &refusal))
            return NEAR_PASS;
        return near_refuse_in_block(s, msg, n, &refusal) ? NEAR_AGAIN : near_out_of_memory(s);
    }
    bool held = ns->leg == NEAR_HELD || ns->leg == NEAR_STANDING_IN;
    return held ? near_client_held(s, msg, n) : NEAR_PASS;
}

enum near_verdict near_on_client(struct session *s, const struct msg_head *h, bool can_let_go)
{
    struct near_state *ns = s->near;
    if (ns->head_seen)
        return NEAR_PASS;
    size_t n = 1 + (size_t)h->len;
    if (n > NEAR_HOLD_MAX)
        return near_client_long(s, can_let_go);
    if (h->avail < n)
        return NEAR_WAIT;
    const uint8_t *msg = evbuffer_pullup(s->client.in, (ssize_t)n);
    if (msg == NULL)
        return near_out_of_memory(s);
    enum near_verdict v = near_client_message(s, msg, n, can_let_go);
    if (v == NEAR_LAST)
        ns->client_paused = true;
    return v;
}

/* A transaction on a primary ended (status 'I'): counted, and what it may have written noted.
 */
static enum near_verdict near_settle_primary(struct session *s)
{
    struct near_state *ns = s->near;
    bool rerun = ns->leg == NEAR_RERUN || ns->leg == NEAR_RERUN_FAILED;
    if (rerun) {
        slog_debug(s, "nearest: the transaction run again on a primary ended%s",
                   ns->leg == NEAR_RERUN_FAILED ? " with an error" : "");
        stat_inc(&s->w->stats.nearest_forwarded);
        ns->forward.total++;
        if (ns->leg == NEAR_RERUN_FAILED)
            stat_inc(&s->w->stats.nearest_forward_failed);
    }
    near_note_ran(s, rerun || ns->leg == NEAR_PRIMARY);
    if (ns->routines_changed)
        func_catalog_changed(&s->w->funcs); /* committed now: read again after it */
    ns->routines_changed = false;
    if (!near_leg_to(s, NEAR_BETWEEN))
        return NEAR_ENDED;
    /* A pinned session reads on its primary for good: no position to wait for. */
    if (s->pinned != NULL)
        return NEAR_PASS;
    return near_wrote(s, s->server_conn->host) ? NEAR_PASS : NEAR_ENDED;
}

/*
 * The answer held for a request sent whole is complete: delivered, or
 * (NEAR_FORWARD) its kept messages put back in front of client.in to run
 * again on a primary, the connection to be let go.  As near_on_ready.
 */
static enum near_verdict near_settle_asked(struct session *s, uint8_t status, bool can_forward)
{
    enum near_leg next = NEAR_BETWEEN;
    enum near_verdict v = near_settle_held(s, status, can_forward, &next);
    if (v == NEAR_ENDED)
        return v;
    if (v == NEAR_FORWARD && !near_put_back(s))
        return near_out_of_memory(s);
    return near_go(s, next, v);
}

/* The server's ReadyForQuery (status): where the transaction's leg goes.  As near_on_ready. */
static enum near_verdict near_settle(struct session *s, uint8_t status, bool can_forward)
{
    struct near_state *ns = s->near;
    const struct server_conn *sc = s->server_conn;
    /* pgnear's own question to the server (a statement's check) is not the transaction's end.
     */
    if (sc == NULL || sc->tx.outstanding != 0 || (sc->tx.flags & TX_BATCH) ||
        (sc->prep != NULL && !prep_server_idle(sc->prep)))
        return NEAR_PASS;
    switch (ns->leg) {
    case NEAR_HELD_SENT:
    case NEAR_STOOD_IN:
        return near_settle_asked(s, status, can_forward);
    case NEAR_PRIMARY:
    case NEAR_PRIMARY_NEAREST:
    case NEAR_RERUN:
    case NEAR_RERUN_FAILED:
        return status == 'I' ? near_settle_primary(s) : NEAR_PASS;
    case NEAR_SHOWN:
        if (status != 'I')
            return NEAR_PASS;
        near_note_ran(s, false);
        return near_go(s, NEAR_BETWEEN, NEAR_PASS);
    default:
        return NEAR_PASS;
    }
}

enum near_verdict near_on_ready(struct session *s, uint8_t status, bool can_forward)
{
    struct near_state *ns = s->near;
    if (ns == NULL)
        return NEAR_PASS;
    enum near_verdict v = near_settle(s, status, can_forward);
    if (v != NEAR_PASS || !ns->client_paused || !near_reads_client(s))
        return v;
    ns->client_paused = false;
    return NEAR_RESUME;
}

void near_consumed(struct session *s, size_t n)
{
    struct near_state *ns = s->near;
    if (ns == NULL)
        return;
    ns->head_seen = false;
    ns->held.checked_left = n < ns->held.checked_left ? ns->held.checked_left - n : 0;
    if (ns->forward.replay_left == 0)
        return;
    ns->forward.replay_left = n < ns->forward.replay_left ? ns->forward.replay_left - n : 0;
    if (ns->forward.replay_left == 0 && s->prep != NULL)
        prep_client_set_replay(s->prep, false);
}

void near_on_cancel(struct session *s)
{
    struct near_state *ns = s->near;
    if (ns != NULL && near_leg_asked(ns->leg))
        ns->held.cancel_asked = true;
}

bool near_cancel_unsent(struct session *s, size_t n)
{
    struct near_state *ns = s->near;
    bool refused = ns != NULL && ns->leg == NEAR_FORWARDING;
    struct evbuffer *answer = refused ? ns->held.answer : s->client.out;
    const struct pkt_report *why = timeouts_cancel_report(s); /* query_timeout's, or none */
    bool ok = (why != NULL ? pkt_add_canceled_as(answer, why) : pkt_add_canceled(answer)) == 0 &&
              (!refused || evbuffer_add_buffer(s->client.out, answer) == 0);
    evbuffer_drain(s->client.in, n);
    if (ns != NULL) {
        near_consumed(s, n); /* the prepared statements' replay ends with it */
        /* Nothing runs again. */
        if (refused && !near_leg_to(s, NEAR_BETWEEN))
            return true; /* the session failed */
    }
    return ok;
}

struct evbuffer *near_sink(struct session *s, uint8_t type)
{
    struct near_state *ns = s->near;
    if (ns == NULL)
        return s->client.out;
    if (ns->leg == NEAR_RERUN && type == 'E' && !near_leg_to(s, NEAR_RERUN_FAILED))
        return s->client.out; /* the session failed */
    if (!near_leg_holds(ns->leg))
        return s->client.out;
    bool give_up;
    if (ns->leg == NEAR_HELD_FLUSHING)
        /* Answers to the messages before a Flush: a result or an error ends the hold. */
        give_up = strchr("DCEIsGHWd", type) != NULL;
    else
        /* A COPY's response must reach the client; a long answer streams. */
        give_up = type == 'G' || type == 'H' || type == 'W' ||
                  evbuffer_get_length(ns->held.answer) > NEAR_HOLD_MAX;
    if (!give_up)
        return ns->leg == NEAR_HELD_FLUSHING ? s->client.out : ns->held.answer;
    near_give_up(s);
    if (!near_leg_to(s, NEAR_SHOWN))
        return s->client.out; /* the session failed: nothing goes to the client any more */
    return s->client.out;
}

/*
 * The server ended the connection (session_server_gone): an answer held
 * on a standby (near.h) goes to the client as it came, the server's FATAL
 * in it, then the session ends, as it would directly and as under
 * transaction pooling a server that ends a transaction ends its session.
 * Nothing runs again elsewhere: only a standby's refusal is replayed.
 * False: the session ended.
 */
bool near_on_server_gone(struct session *s)
{
    if (s->near == NULL || !near_leg_holds(s->near->leg))
        return true;
    slog_debug(s, "nearest: the server ended the connection while its answer was held");
    if (!near_deliver(s)) {
        if (!s->closed)
            session_close(s, "out of memory");
        return false;
    }
    return near_leg_to(s, NEAR_SHOWN);
}
