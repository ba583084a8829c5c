/*
 * near_hold.c — a nearest transaction's answer held on a standby (near.h):
 * where the server's messages go, a Flush while held, the hold given up,
 * and at its end the answer delivered or dropped to run it again.
 */
#include <string.h>

#include <event2/buffer.h>

#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/prepared.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/near_hold.h"
#include "proxy/session/near_int.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/region.h"

/* The session failed or ran out of memory: as the verbs return (closed once). */
static enum near_verdict near_ended(struct session *s)
{
    if (!s->closed)
        session_close(s, "out of memory");
    return NEAR_ENDED;
}

void near_give_up(struct session *s)
{
    struct near_state *ns = s->near;
    if (evbuffer_add_buffer(s->client.out, ns->held.answer) != 0)
        session_close(s, "out of memory"); /* the client could not be told all of it */
    evbuffer_drain(ns->held.kept, evbuffer_get_length(ns->held.kept));
}

/* Whether any message in b is of one of these types. */
static bool near_has_any(struct evbuffer *b, const char *types)
{
    struct frame_walk w;
    char type;
    uint32_t len;
    frame_walk_init(&w, b, 0);
    while (frame_walk_next(&w, &type, &len))
        if (type != '\0' && strchr(types, type) != NULL)
            return true;
    return false;
}

/*
 * A client Flush while held: what is held goes to the client, which waits
 * for it, and so does what the server answers until the client's next
 * message (near.h).
 */
enum near_leg near_flush_asked(struct session *s)
{
    struct near_state *ns = s->near;
    /* A Bind or Execute kept since the last Flush: a portal on the standby. */
    if (near_has_any(ns->held.kept, "BE") || near_has_any(ns->held.answer, "DCEIsGHWd") ||
        evbuffer_add_buffer(s->client.out, ns->held.answer) != 0) {
        near_give_up(s);
        return NEAR_SHOWN;
    }
    /* Run again, the messages after the Flush will be; the rewriter Parses what they use. */
    evbuffer_drain(ns->held.kept, evbuffer_get_length(ns->held.kept));
    return NEAR_HELD_FLUSHING;
}

/*
 * The client's first message after a Flush: it waits in client.in until
 * every answer the client flushed for has reached it (a client that sent
 * on without reading them), then the hold goes on, the message kept to
 * run again.  True: it waits.
 */
bool near_flush_read(struct session *s)
{
    const struct prep_server *ps = s->server_conn->prep;
    return ps != NULL && !prep_server_answered(ps);
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
bool near_stand_in(struct session *s, size_t end)
{
    struct near_state *ns = s->near;
    if (evbuffer_remove_buffer(s->client.in, ns->held.kept, end) != (int)end ||
        evbuffer_prepend(s->client.in, pkt_sync, sizeof(pkt_sync)) != 0)
        return false;
    ns->held.must_forward = true;
    ns->held.checked_left = 0;
    slog_debug(s, "nearest: its request belongs on a primary: a Sync in its place on the standby");
    return true;
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

void near_note_ran(struct session *s, bool wrote)
{
    const struct registry_region *r = s->server_conn->region->runtime;
    if (wrote)
        s->near->writes_at = r;
    else
        s->near->reads_at = r;
}

/*
 * The held transaction to run again on a primary (near_settle_held): where
 * its connection cannot go back, the standby's answer goes to the client
 * after all, which is read again.
 */
static enum near_verdict near_forward(struct session *s, bool can_forward, enum near_leg *next)
{
    if (can_forward) {
        s->near->slots.state_changing = false; /* the standby undid it with the error */
        *next = NEAR_FORWARDING;
        return NEAR_FORWARD;
    }
    *next = NEAR_SHOWN;
    return near_deliver(s) ? NEAR_PASS : near_ended(s);
}

enum near_verdict near_settle_held(struct session *s, uint8_t status, bool can_forward,
                                   enum near_leg *next)
{
    struct near_state *ns = s->near;
    bool serializable = false, canceled = false;
    if (status == 'I' && (ns->held.must_forward || near_refused(ns->held.answer, &serializable))) {
        if (serializable && !ns->serializable) {
            /* Each of its transactions would be refused so: they all run on a primary from now. */
            slog_info(s, "nearest: its transactions are serializable, which a standby cannot "
                         "run: on a primary from now on");
            ns->serializable = true;
        }
        if (!ns->held.cancel_asked) {
            slog_debug(s, "nearest: %s: run again on a primary",
                       ns->held.must_forward ? "the transaction belongs on a primary"
                       : serializable        ? "the standby refused a serializable transaction"
                                             : "the standby refused what a primary runs");
            return near_forward(s, can_forward, next);
        }
        /* Its client asked to cancel it meanwhile: canceled, as a primary would (txn_cancel.h);
         * a request kept unsent (a stand-in's) ran nowhere. */
        canceled = true;
        evbuffer_drain(ns->held.kept, evbuffer_get_length(ns->held.kept));
        if (pkt_add_canceled(ns->held.answer) != 0)
            return near_ended(s);
    }
    stat_inc(&s->w->stats.nearest_near);
    near_note_ran(s, false);
    *next = status == 'I' ? NEAR_BETWEEN : NEAR_SHOWN;
    bool ok = canceled ? evbuffer_add_buffer(s->client.out, ns->held.answer) == 0 : near_deliver(s);
    return ok ? NEAR_PASS : near_ended(s);
}

bool near_deliver(struct session *s)
{
    struct near_state *ns = s->near;
    if (ns->leg == NEAR_STANDING_IN || ns->leg == NEAR_STOOD_IN) {
        /* pgnear's Sync stood in for the request: it runs where it is after all, unheld. */
        evbuffer_drain(ns->held.answer, evbuffer_get_length(ns->held.answer));
        return evbuffer_prepend_buffer(s->client.in, ns->held.kept) == 0;
    }
    if (!near_leg_delivers(ns->leg))
        return near_leg_refuse(s, ns->leg, "deliver its held answer");
    evbuffer_drain(ns->held.kept, evbuffer_get_length(ns->held.kept));
    return evbuffer_add_buffer(s->client.out, ns->held.answer) == 0;
}

bool near_put_back(struct session *s)
{
    struct near_state *ns = s->near;
    /* The held answer stays until the next connection attaches: a cancel answers after it. */
    ns->forward.replay_left = evbuffer_get_length(ns->held.kept);
    if (evbuffer_prepend_buffer(s->client.in, ns->held.kept) != 0)
        return false;
    ns->head_seen = false;
    if (s->prep != NULL)
        prep_client_set_replay(s->prep, true);
    return true;
}
