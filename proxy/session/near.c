/*
 * near.c — each transaction on the nearest host that can run it (near.h).
 */
#include "proxy/session/near.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/clock.h"
#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/prepared.h"
#include "protocol/tx_track.h"
#include "proxy/base/config.h"
#include "proxy/base/func_catalog.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/fence.h"
#include "proxy/session/near_text.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/region.h"

bool near_session_start(struct session *s)
{
    if (s->need.role != NEED_NEAREST || s->txn == NULL || s->pinned != NULL)
        return true;
    struct near_state *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return false;
    n->answer = evbuffer_new();
    n->kept = evbuffer_new();
    if (n->answer == NULL || n->kept == NULL) {
        s->near = n;
        near_session_end(s);
        return false;
    }
    s->near = n;
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
    if (n->answer != NULL)
        evbuffer_free(n->answer);
    if (n->kept != NULL)
        evbuffer_free(n->kept);
    free(n);
    s->near = NULL;
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
 * near_client_message does not read these messages again (checked_left).
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

/*
 * The held request at the head of client.in (end bytes) belongs on a
 * primary, and its connection cannot go back now (a Flush before it left
 * a batch open on the standby; a setting moved): its messages are kept
 * unsent, and a Sync of pgnear's own goes to the standby in their place.
 * Its ReadyForQuery, held, settles the transaction as a refusal would
 * (must_forward): the messages run on a primary, and on the standby not
 * at all.  False: out of memory.
 */
static bool near_stand_in(struct session *s, size_t end)
{
    struct near_state *ns = s->near;
    if (evbuffer_remove_buffer(s->client.in, ns->kept, end) != (int)end ||
        evbuffer_prepend(s->client.in, pkt_sync, sizeof(pkt_sync)) != 0)
        return false;
    ns->must_forward = ns->stood_in = true;
    ns->checked_left = 0;
    log_debug(s->id,
              "nearest: its request belongs on a primary: a Sync in its place on the standby");
    return true;
}

bool near_first_ready(struct session *s)
{
    uint8_t h[PKT_HEADER_LEN];
    if (s->near == NULL || s->near->forward_pending)
        return true;
    if (evbuffer_copyout(s->client.in, h, sizeof(h)) != (ssize_t)sizeof(h))
        return false;
    uint32_t len = pkt_be32(h + 1);
    /* A bad length or a message too long to keep: the fetch goes ahead (for a primary). */
    if (len < 4 || 1 + (size_t)len > NEAR_HOLD_MAX)
        return true;
    return near_request_of(s) != NEAR_REQUEST_UNKNOWN && !near_routines_wait(s);
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
    ns->placed = false;
    if (ns->forward_pending)
        return NEED_PRIMARY;
    size_t n, end;
    bool read_only, too_long;
    const uint8_t *msg = near_first_message(s, &n, &too_long);
    if (too_long || near_request_of(s) == NEAR_REQUEST_LONG)
        return NEED_PRIMARY; /* it cannot be kept to run again: where writes run */
    if (msg == NULL)
        return NEED_NEAREST;
    enum session_need need = near_request_need(s, msg, n, &read_only, &end);
    /* near_begin takes it from here as the connection attaches: no text is read twice. */
    ns->placed = true;
    ns->placed_primary = need == NEED_PRIMARY;
    ns->placed_read_only = read_only;
    ns->placed_first = n;
    ns->placed_end = end;
    return need;
}

void near_position(struct session *s, struct need_spec *need)
{
    struct near_state *ns = s->near;
    const struct registry_host *at = ns->wrote_on;
    need->read_at = NULL; /* its own writes, not its reads, are what it must see (near.h) */
    if (at != NULL && !__atomic_load_n(&at->health.role_known, __ATOMIC_ACQUIRE)) {
        /*
         * Its checks cannot tell what the host is (they cannot log in): no
         * standby is known to have replayed anything, and a position would
         * fit no host of unknown role, that one included.  Reads stay where
         * the session wrote.
         */
        need->read_at = at;
        need->read_until_ms = ns->wrote_at_ms;
        return;
    }
    if (at != NULL && s->fence.position_after != 0) {
        /* The server said where its WAL was right after the session's last transaction there. */
        if (s->fence.position_after > ns->write_lsn)
            ns->write_lsn = s->fence.position_after;
        ns->wrote_on = NULL;
    } else if (at != NULL) {
        /* Started in a later millisecond: after the commit (need.h's read_until_ms). */
        if (__atomic_load_n(&at->health.lsn_since_ms, __ATOMIC_ACQUIRE) > ns->wrote_at_ms) {
            uint64_t lsn = __atomic_load_n(&at->health.lsn, __ATOMIC_ACQUIRE);
            if (lsn > ns->write_lsn)
                ns->write_lsn = lsn;
            ns->wrote_on = NULL;
        } else {
            /* Not checked since: no standby is known to have it, the primary has. */
            need->read_at = at;
            need->read_until_ms = ns->wrote_at_ms;
        }
    }
    if (ns->write_lsn > need->min_lsn) {
        need->min_lsn = ns->write_lsn;
        need->min_tli = 0;
    }
    log_debug(s->id, "nearest: its next transaction must see %X/%X%s",
              (unsigned)(need->min_lsn >> 32), (unsigned)need->min_lsn,
              need->read_at != NULL ? ", or run on the primary it wrote on" : "");
}

void near_attached(struct session *s)
{
    struct near_state *ns = s->near;
    if (ns == NULL)
        return;
    ns->leg = NEAR_BETWEEN;
    ns->request_sent = ns->next_request = ns->stood_in = false;
    ns->checked_left = 0;
    evbuffer_drain(ns->answer, evbuffer_get_length(ns->answer));
    evbuffer_drain(ns->kept, evbuffer_get_length(ns->kept));
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
    if (ns->placed && ns->placed_first == n) {
        need = ns->placed_primary ? NEED_PRIMARY : NEED_NEAREST;
        *read_only = ns->placed_read_only;
        *end = ns->placed_end;
    } else if (request != NEAR_REQUEST_LONG && host_is_standby(s->server_conn->host)) {
        need = near_request_need(s, msg, n, read_only, end);
    } else {
        need = near_need_of(s, msg, n, read_only);
    }
    ns->placed = false;
    return request == NEAR_REQUEST_LONG ? NEED_PRIMARY : need;
}

/* The transaction this message begins: where it runs.  As near_client_message returns. */
static int near_begin(struct session *s, const uint8_t *msg, size_t n, bool can_let_go)
{
    struct near_state *ns = s->near;
    ns->must_forward = ns->forward_failed = false;
    ns->flushing = ns->portal_kept = ns->cancel_asked = false;
    ns->next_request = ns->stood_in = false;
    ns->checked_left = 0;
    if (ns->forward_pending) {
        ns->forward_pending = false;
        ns->forwarded = true;
        ns->leg = NEAR_PRIMARY;
        return NEAR_READ_ON;
    }
    ns->forwarded = false;
    enum near_request request = near_request_of(s);
    if (request == NEAR_REQUEST_UNKNOWN)
        return NEAR_WAIT; /* the rest of the request comes: the relay reads on */
    if (host_is_standby(s->server_conn->host) && near_routines_wait(s))
        return NEAR_WAIT;
    bool read_only, standby = host_is_standby(s->server_conn->host);
    size_t end = 0; /* its request's bytes read whole (near_request_for_primary) */
    enum session_need need = near_begin_need(s, msg, n, request, &read_only, &end);
    ns->for_primary = need == NEED_PRIMARY;
    log_debug(s->id, "nearest: a transaction starts on the %s %s:%d (its connection %llu)%s",
              standby ? "standby" : "primary", s->server_conn->host->name,
              s->server_conn->host->port, (unsigned long long)s->server_conn->id,
              need == NEED_PRIMARY ? ", for a primary" : "");
    if (!standby) {
        ns->leg = NEAR_PRIMARY;
        return NEAR_READ_ON;
    }
    if (need == NEED_PRIMARY && can_let_go)
        return NEAR_REFETCH;
    ns->leg = read_only ? NEAR_SHOWN : NEAR_HELD;
    ns->checked_left = end;
    if (need == NEED_PRIMARY && !read_only && request != NEAR_REQUEST_LONG && end == 0)
        end = near_request_extent(s);
    if (need == NEED_PRIMARY && !read_only && end > 0) {
        if (near_stand_in(s, end))
            return NEAR_REPLACED;
        session_close(s, "out of memory");
        return -1;
    }
    ns->must_forward = need == NEED_PRIMARY;
    return NEAR_READ_ON;
}

/* Whether the message at hand begins a transaction: the connection idle, nothing owed. */
static bool near_at_start(const struct session *s)
{
    const struct server_conn *sc = s->server_conn;
    return s->near->leg == NEAR_BETWEEN && sc->tx.status == 'I' && server_conn_at_safe_point(sc);
}

/*
 * Whether the message at hand begins a transaction on a primary behind
 * pgnear's own question of its position (fence_ask_after): nothing of
 * the client's owed, only that question.
 */
static bool near_follows_on_primary(const struct session *s)
{
    const struct server_conn *sc = s->server_conn;
    return s->near->leg == NEAR_BETWEEN && s->fence.after && sc->tx.status == 'I' &&
           !host_is_standby(sc->host) && sc->tx.outstanding == 1 && !(sc->tx.flags & TX_BATCH);
}

/* The answer so far goes to the client, and the rest as it comes: no replay for this one. */
static void near_give_up(struct session *s)
{
    struct near_state *ns = s->near;
    if (evbuffer_add_buffer(s->client.out, ns->answer) != 0)
        session_close(s, "out of memory"); /* the client could not be told all of it */
    evbuffer_drain(ns->kept, evbuffer_get_length(ns->kept));
    ns->leg = NEAR_SHOWN;
    ns->next_request = false;
}

/* Whether any message of the answer in b is a statement's result, or an error. */
static bool near_has_results(struct evbuffer *b)
{
    struct frame_walk w;
    char type;
    uint32_t len;
    frame_walk_init(&w, b, 0);
    while (frame_walk_next(&w, &type, &len))
        if (type != '\0' && strchr("DCEIsGHWd", type) != NULL)
            return true;
    return false;
}

/*
 * A client Flush while held: what is held goes to the client, which waits
 * for it, and so does what the server answers until the client's next
 * message (near.h).
 */
static void near_flush_asked(struct session *s)
{
    struct near_state *ns = s->near;
    if (ns->portal_kept || near_has_results(ns->answer) ||
        evbuffer_add_buffer(s->client.out, ns->answer) != 0) {
        near_give_up(s);
        return;
    }
    ns->flushing = ns->next_request = true;
    /* Run again, the messages after the Flush will be; the rewriter Parses what they use. */
    evbuffer_drain(ns->kept, evbuffer_get_length(ns->kept));
}

/*
 * The client's first message after a Flush: it waits in client.in until
 * every answer the client flushed for has reached it (a client that sent
 * on without reading them), then the hold goes on, the message kept to
 * run again.  True: it waits.
 */
static bool near_flush_read(struct session *s)
{
    struct near_state *ns = s->near;
    const struct prep_server *ps = s->server_conn->prep;
    if (ps != NULL && !prep_server_answered(ps))
        return true;
    ns->flushing = false;
    return false;
}

/* The session ends for want of memory: as near_client_message returns. */
static int near_out_of_memory(struct session *s)
{
    session_close(s, "out of memory");
    return -1;
}

/*
 * The first message of a request after a Flush that kept the hold: the
 * request is read whole first, as a transaction's first one is, and
 * what of it belongs on a primary has the request run there, not on the
 * standby at all (near_stand_in).  As near_client_message returns.
 */
static int near_next_request(struct session *s)
{
    struct near_state *ns = s->near;
    enum near_request request = near_request_of(s);
    if (request == NEAR_REQUEST_UNKNOWN)
        return NEAR_WAIT; /* the rest of it comes: the relay reads on */
    ns->next_request = false;
    if (request == NEAR_REQUEST_LONG)
        return NEAR_READ_ON; /* its long message gives the hold up (near_client_long) */
    size_t end = near_request_extent(s);
    if (!near_request_for_primary(s, 0, end)) {
        ns->checked_left = end;
        return NEAR_READ_ON;
    }
    if (near_stand_in(s, end))
        return NEAR_REPLACED;
    session_close(s, "out of memory");
    return -1;
}

int near_client_long(struct session *s, bool can_let_go)
{
    struct near_state *ns = s->near;
    if (near_at_start(s)) {
        if (host_is_standby(s->server_conn->host) && can_let_go)
            return NEAR_REFETCH;
        ns->forwarded = false;
        ns->for_primary = true; /* placed as a write: it could not be kept to run again */
        ns->leg = host_is_standby(s->server_conn->host) ? NEAR_SHOWN : NEAR_PRIMARY;
    } else if (ns->leg == NEAR_HELD) {
        near_give_up(s);
    }
    ns->head_seen = true;
    return NEAR_READ_ON;
}

int near_client_message(struct session *s, const uint8_t *msg, size_t n, bool can_let_go)
{
    struct near_state *ns = s->near;
    if (near_at_start(s)) {
        int rc = near_begin(s, msg, n, can_let_go);
        if (rc != NEAR_READ_ON)
            return rc;
        /* Its request's read may have moved it. */
        if ((msg = evbuffer_pullup(s->client.in, (ssize_t)n)) == NULL)
            return near_out_of_memory(s);
    } else if (near_follows_on_primary(s)) {
        /*
         * It came before the primary answered pgnear's question of its
         * position after the last transaction, and follows it there: a
         * transaction of its own, which may write, so its end asks again
         * (the answer on its way is older than its commit).
         */
        ns->leg = NEAR_PRIMARY;
        ns->forwarded = ns->forward_failed = ns->must_forward = false;
        ns->flushing = ns->portal_kept = ns->cancel_asked = false;
        ns->for_primary = true;
    }
    if (ns->leg == NEAR_HELD && ns->flushing && near_flush_read(s))
        return NEAR_WAIT;
    if (ns->leg == NEAR_HELD && ns->next_request && !ns->flushing) {
        int rc = near_next_request(s);
        if (rc != NEAR_READ_ON)
            return rc;
        if ((msg = evbuffer_pullup(s->client.in, (ssize_t)n)) == NULL)
            return near_out_of_memory(s);
    }
    ns->head_seen = true;
    if (ns->leg == NEAR_SHOWN && s->server_conn->tx.status == 'T' &&
        host_is_standby(s->server_conn->host)) {
        struct near_refusal refusal;
        if (!near_block_refusal(s, msg, n, &refusal))
            return NEAR_READ_ON;
        if (!near_refuse_in_block(s, msg, n, &refusal)) {
            session_close(s, "out of memory");
            return -1;
        }
        return NEAR_REPLACED;
    }
    if (ns->leg != NEAR_HELD)
        return NEAR_READ_ON;
    if (ns->stood_in && !ns->request_sent) {
        ns->request_sent = true; /* pgnear's Sync (near_stand_in): the request is kept already */
        return NEAR_LAST;
    }
    if (n > NEAR_HOLD_MAX) {
        near_give_up(s);
        return NEAR_READ_ON;
    }
    bool read_only;
    if (msg[0] == 'H') {
        near_flush_asked(s);
        return NEAR_READ_ON;
    }
    if (msg[0] == 'B' || msg[0] == 'E')
        ns->portal_kept = true;
    /* What its request's check read (near_request_for_primary) is not read again. */
    if (ns->checked_left == 0 && near_need_of(s, msg, n, &read_only) == NEED_PRIMARY && !read_only)
        ns->must_forward = true;
    if (evbuffer_add(ns->kept, msg, n) != 0) {
        session_close(s, "out of memory");
        return -1;
    }
    if (msg[0] == 'Q' || msg[0] == 'S' || msg[0] == 'F') {
        ns->request_sent = true;
        return NEAR_LAST;
    }
    return NEAR_READ_ON;
}

struct evbuffer *near_sink(struct session *s, uint8_t type)
{
    struct near_state *ns = s->near;
    if (ns == NULL)
        return s->client.out;
    if (ns->leg == NEAR_PRIMARY && ns->forwarded && type == 'E')
        ns->forward_failed = true;
    if (ns->leg != NEAR_HELD)
        return s->client.out;
    if (ns->flushing) {
        /* Answers to the messages before a Flush: a result or an error ends the hold. */
        if (strchr("DCEIsGHWd", type) != NULL) {
            near_give_up(s);
            ns->request_sent = false;
        }
        return s->client.out;
    }
    /* A COPY's response must reach the client; a long answer streams. */
    if (type == 'G' || type == 'H' || type == 'W' ||
        evbuffer_get_length(ns->answer) > NEAR_HOLD_MAX) {
        near_give_up(s);
        ns->request_sent = false;
        return s->client.out;
    }
    return ns->answer;
}

/*
 * A standby's refusal of a serializable transaction: the server's own
 * words in English, or the routine that says them when the session's
 * default_transaction_isolation is serializable (lc_messages may
 * translate the message, never the routine).
 */
static bool near_refused_serializable(const uint8_t *body, size_t len)
{
    const char *code = pkt_report_field(body, len, 'C');
    const char *msg = pkt_report_field(body, len, 'M');
    const char *routine = pkt_report_field(body, len, 'R');
    return code != NULL && strcmp(code, "0A000") == 0 &&
           ((msg != NULL && strcmp(msg, "cannot use serializable mode in a hot standby") == 0) ||
            (routine != NULL && strcmp(routine, "GetSerializableTransactionSnapshot") == 0));
}

/*
 * Whether an error (body, len bytes) is one a standby gives for what a
 * primary runs: 25006, a write on a read-only server; 0A000, what recovery
 * does not support (an unlogged or temporary table's read, a serializable
 * transaction); 55000, a function that recovery forbids (pg_current_wal_lsn
 * and its siblings: "recovery is in progress"); and the internal error of
 * a transaction ID asked for (txid_current), told by its routine, which
 * lc_messages never translates.  A primary that gives the same error too
 * gives it as its own.
 */
static bool near_refused_by_recovery(const uint8_t *body, size_t len)
{
    const char *code = pkt_report_field(body, len, 'C');
    const char *routine = pkt_report_field(body, len, 'R');
    if (code == NULL)
        return false;
    return strcmp(code, "25006") == 0 || strcmp(code, "0A000") == 0 || strcmp(code, "55000") == 0 ||
           (strcmp(code, "XX000") == 0 && routine != NULL &&
            strcmp(routine, "GetNewTransactionId") == 0);
}

/*
 * Whether the first ErrorResponse in b says the standby cannot run the
 * transaction that a primary can (near_refused_by_recovery); a refused
 * serializable transaction sets *serializable.
 */
static bool near_refused(struct evbuffer *b, bool *serializable)
{
    struct evbuffer_ptr p;
    uint8_t h[PKT_HEADER_LEN];
    evbuffer_ptr_set(b, &p, 0, EVBUFFER_PTR_SET);
    while (evbuffer_copyout_from(b, &p, h, sizeof(h)) == (ssize_t)sizeof(h)) {
        uint32_t len = pkt_be32(h + 1);
        if (h[0] == 'E') {
            uint8_t body[1024];
            size_t want = len - 4 < sizeof(body) ? len - 4 : sizeof(body);
            struct evbuffer_ptr q = p;
            if (evbuffer_ptr_set(b, &q, PKT_HEADER_LEN, EVBUFFER_PTR_ADD) != 0 ||
                evbuffer_copyout_from(b, &q, body, want) != (ssize_t)want)
                return false;
            *serializable = near_refused_serializable(body, want);
            return *serializable || near_refused_by_recovery(body, want);
        }
        if (evbuffer_ptr_set(b, &p, 1 + (size_t)len, EVBUFFER_PTR_ADD) != 0)
            break;
    }
    return false;
}

/* Where the transaction that ended ran, for SHOW CLIENTS: its reads' leg or its writes'. */
static void near_note_ran(struct session *s, bool wrote)
{
    const struct registry_region *r = s->server_conn->region->runtime;
    if (wrote)
        s->near->writes_at = r;
    else
        s->near->reads_at = r;
}

/* The held transaction's answer is complete: to the client, or dropped to run it again. */
static enum near_verdict near_settle_held(struct session *s, uint8_t status)
{
    struct near_state *ns = s->near;
    ns->request_sent = false;
    bool serializable = false;
    if (status == 'I' && (ns->must_forward || near_refused(ns->answer, &serializable))) {
        if (serializable && !ns->serializable) {
            /* Each of its transactions would be refused so: they all run on a primary from now. */
            log_info(s->id, "nearest: its transactions are serializable, which a standby cannot "
                            "run: on a primary from now on");
            ns->serializable = true;
        }
        if (!ns->cancel_asked) {
            log_debug(s->id, "nearest: %s: run again on a primary",
                      ns->must_forward ? "the transaction belongs on a primary"
                      : serializable   ? "the standby refused a serializable transaction"
                                       : "the standby refused what a primary runs");
            return NEAR_FORWARD;
        }
        /* Its client asked to cancel it meanwhile: canceled, as a primary would (txn_cancel.h). */
        ns->stood_in = false; /* ... a request kept unsent too: it ran nowhere */
        if (pkt_add_canceled(ns->answer) != 0) {
            session_close(s, "out of memory");
            return NEAR_FAILED;
        }
    }
    stat_inc(&s->w->stats.nearest_near);
    near_note_ran(s, false);
    if (!near_deliver(s)) {
        session_close(s, "out of memory");
        return NEAR_FAILED;
    }
    ns->leg = status == 'I' ? NEAR_BETWEEN : NEAR_SHOWN;
    return NEAR_KEEP;
}

bool near_deliver(struct session *s)
{
    struct near_state *ns = s->near;
    if (ns->stood_in) {
        /* pgnear's Sync stood in for the request: it runs where it is after all, unheld. */
        ns->stood_in = false;
        evbuffer_drain(ns->answer, evbuffer_get_length(ns->answer));
        if (ns->leg == NEAR_HELD)
            ns->leg = NEAR_SHOWN;
        return evbuffer_prepend_buffer(s->client.in, ns->kept) == 0;
    }
    evbuffer_drain(ns->kept, evbuffer_get_length(ns->kept));
    if (ns->leg == NEAR_HELD)
        ns->leg = NEAR_SHOWN;
    return evbuffer_add_buffer(s->client.out, ns->answer) == 0;
}

/*
 * A transaction ended on a primary: until a check of it that starts now
 * has read its position and the standbys' checks show one replayed, the
 * session reads there too (need.h).  Those checks come every
 * HEALTH_HURRY_MS for a while instead of every health_check_interval, so
 * that reads come back near within a few local round trips, not a second.
 */
static bool near_hurry_standby(const struct region_host *h, void *arg)
{
    return host_is_up(h) && host_is_standby(h);
}

static void near_hurry_checks(struct session *s, struct region_host *primary)
{
    int64_t until = monotonic_ms() + NEAR_HURRY_MS;
    bool wake = health_hurry(primary, until);
    if (health_hurry_hosts(&s->cfg->regions, near_hurry_standby, NULL, until) || wake)
        worker_wake_checks(s->w);
}

/*
 * A transaction ended on a primary: it may have written (pgnear parses no
 * SQL; a SELECT may call a function that writes).  The session reads
 * there until it knows a position past it (near_position): the server is
 * asked at once, its answer following on the connection without holding
 * the client (fence_ask_after); should it not say, a check of the primary
 * that starts from now tells.  False: the session ended.
 */
static bool near_wrote(struct session *s, struct region_host *primary)
{
    struct near_state *ns = s->near;
    ns->wrote_on = primary->runtime;
    ns->wrote_at_ms = monotonic_ms();
    /* No role known there: its position would help no read (near_position); none is asked. */
    if (!__atomic_load_n(&primary->runtime->health.role_known, __ATOMIC_ACQUIRE))
        return true;
    if (s->cfg->health_check_interval_ms > 0)
        near_hurry_checks(s, primary);
    return fence_asking(&s->fence) || fence_ask_after(s) == 0;
}

enum near_verdict near_settle(struct session *s, uint8_t status)
{
    struct near_state *ns = s->near;
    const struct server_conn *sc = s->server_conn;
    /* pgnear's own question to the server (a statement's check) is not the transaction's end. */
    if (ns == NULL || sc == NULL || sc->tx.outstanding != 0 || (sc->tx.flags & TX_BATCH) ||
        (sc->prep != NULL && !prep_server_idle(sc->prep)))
        return NEAR_KEEP;
    switch (ns->leg) {
    case NEAR_HELD:
        return ns->request_sent ? near_settle_held(s, status) : NEAR_KEEP;
    case NEAR_PRIMARY:
        if (status != 'I')
            return NEAR_KEEP;
        if (ns->forwarded) {
            log_debug(s->id, "nearest: the transaction run again on a primary ended%s",
                      ns->forward_failed ? " with an error" : "");
            stat_inc(&s->w->stats.nearest_forwarded);
            ns->forwarded_total++;
            if (ns->forward_failed)
                stat_inc(&s->w->stats.nearest_forward_failed);
        }
        near_note_ran(s, ns->forwarded || ns->for_primary);
        ns->forwarded = false;
        if (ns->routines_changed)
            func_catalog_changed(&s->w->funcs); /* committed now: read again after it */
        ns->routines_changed = false;
        ns->leg = NEAR_BETWEEN;
        /* A pinned session reads on its primary for good: no position to wait for. */
        if (s->pinned != NULL)
            return NEAR_KEEP;
        return near_wrote(s, sc->host) ? NEAR_KEEP : NEAR_FAILED;
    case NEAR_SHOWN:
        if (status == 'I') {
            near_note_ran(s, false);
            ns->leg = NEAR_BETWEEN;
        }
        ns->request_sent = false;
        return NEAR_KEEP;
    default:
        return NEAR_KEEP;
    }
}

bool near_put_back(struct session *s)
{
    struct near_state *ns = s->near;
    /* The held answer stays until the next connection attaches: a cancel answers after it. */
    ns->replay_left = evbuffer_get_length(ns->kept);
    if (evbuffer_prepend_buffer(s->client.in, ns->kept) != 0)
        return false;
    ns->forward_pending = true;
    ns->head_seen = ns->stood_in = false;
    ns->leg = NEAR_BETWEEN;
    if (s->prep != NULL)
        prep_client_set_replay(s->prep, true);
    return true;
}

bool near_owes_request(const struct session *s, bool for_close)
{
    const struct near_state *ns = s->near;
    return ns != NULL && (ns->leg == NEAR_HELD || (for_close && ns->forward_pending));
}

void near_consumed(struct session *s, size_t n)
{
    struct near_state *ns = s->near;
    if (ns == NULL)
        return;
    ns->head_seen = false;
    ns->checked_left = n < ns->checked_left ? ns->checked_left - n : 0;
    if (ns->replay_left == 0)
        return;
    ns->replay_left = n < ns->replay_left ? ns->replay_left - n : 0;
    if (ns->replay_left == 0 && s->prep != NULL)
        prep_client_set_replay(s->prep, false);
}
