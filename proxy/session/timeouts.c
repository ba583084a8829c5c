/*
 * timeouts.c — PgBouncer's timeouts for an established session
 * (timeouts.h): where the session is, the one timer, what each timeout
 * does, and the server's 57014 that query_timeout's cancel brings, named.
 */
#include "proxy/session/timeouts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/framing.h"
#include "protocol/pg_error.h"
#include "protocol/pkt.h"
#include "protocol/tx_track.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel.h"
#include "proxy/session/relay.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"

/* query_timeout's next look while its request's sends are held (endpoint.h's writes_held). */
#define TIMEOUTS_HELD_RECHECK_MS 10

/* An ErrorResponse longer than this is passed as it is (a cancel's is a few hundred bytes). */
#define TIMEOUTS_ERROR_MAX 4096

static const char canceled_message[] = "canceling statement due to query_timeout";

/* The values in force for s now (milliseconds, 0: off), from its worker's configuration. */
struct timeouts_values {
    int32_t query_ms, transaction_ms, idle_transaction_ms, client_idle_ms;
};

/* Reads them into v; whether any is on. */
static bool timeouts_values_of(const struct session *s, struct timeouts_values *v)
{
    const struct config *cfg = s->w->cfg;
    v->query_ms = config_section_value(cfg, SECTION_QUERY_TIMEOUT, s->user, s->database);
    v->transaction_ms =
        config_section_value(cfg, SECTION_TRANSACTION_TIMEOUT, s->user, s->database);
    v->idle_transaction_ms =
        config_section_value(cfg, SECTION_IDLE_TRANSACTION_TIMEOUT, s->user, s->database);
    v->client_idle_ms =
        config_section_value(cfg, SECTION_CLIENT_IDLE_TIMEOUT, s->user, s->database);
    return v->query_ms > 0 || v->transaction_ms > 0 || v->idle_transaction_ms > 0 ||
           v->client_idle_ms > 0;
}

/*
 * The values in force for s now, kept in its state.  The state is made
 * as a timeout first applies to it (most sessions never have one) and kept
 * after; false when it could not be (out of memory).
 */
static bool timeouts_read_values(struct session *s)
{
    struct timeouts_values v;
    bool on = timeouts_values_of(s, &v);
    if (!on && s->timeouts == NULL)
        return true; /* none, as before: nothing to keep */
    if (s->timeouts == NULL && (s->timeouts = calloc(1, sizeof(*s->timeouts))) == NULL)
        return false;
    struct timeouts_state *t = s->timeouts;
    t->query_ms = v.query_ms;
    t->transaction_ms = v.transaction_ms;
    t->idle_transaction_ms = v.idle_transaction_ms;
    t->client_idle_ms = v.client_idle_ms;
    t->stale = false;
    t->on = on;
    return true;
}

/* Where s is now (enum timeouts_phase), from what the relay and transaction pooling keep. */
static enum timeouts_phase timeouts_phase_now(const struct session *s)
{
    const struct server_conn *sc = s->server_conn;
    if (s->txn != NULL && s->txn->owes_request(s, false))
        return TIMEOUTS_QUERY;
    if (sc == NULL) /* between transactions under transaction pooling, or waiting for one */
        return txn_next_waiting(s) || evbuffer_get_length(s->client.in) > 0 ? TIMEOUTS_QUERY
                                                                            : TIMEOUTS_IDLE;
    const struct tx_track *tx = &sc->tx;
    if (tx->outstanding > 0 || (tx->flags & (TX_BATCH | TX_COPYING)) || s->client.fwd_remaining)
        return TIMEOUTS_QUERY;
    return tx->status == 'T' || tx->status == 'E' ? TIMEOUTS_IDLE_TXN : TIMEOUTS_IDLE;
}

static void timeouts_earliest(int64_t *deadline, int64_t since, int32_t ms)
{
    if (ms > 0 && since + ms < *deadline)
        *deadline = since + ms;
}

/* The deadline of the phase s is in; INT64_MAX: none. */
static int64_t timeouts_deadline(const struct timeouts_state *t)
{
    int64_t d = INT64_MAX;
    switch ((enum timeouts_phase)t->where) {
    case TIMEOUTS_QUERY:
        if (!t->canceled)
            timeouts_earliest(&d, t->query_since_ms, t->query_ms);
        else if (t->cancel_on != NULL) /* the server has as long again to say something */
            timeouts_earliest(&d, t->cancel_sent_ms, t->query_ms);
        timeouts_earliest(&d, t->transaction_since_ms, t->transaction_ms);
        break;
    case TIMEOUTS_IDLE_TXN:
        timeouts_earliest(&d, t->idle_since_ms, t->idle_transaction_ms);
        timeouts_earliest(&d, t->transaction_since_ms, t->transaction_ms);
        break;
    case TIMEOUTS_IDLE:
        timeouts_earliest(&d, t->idle_since_ms, t->client_idle_ms);
        break;
    }
    return d;
}

/*
 * The session timer armed for the nearest deadline.  A timer armed for an
 * earlier one is left as it is: it fires, finds nothing due, and is armed
 * again then (timeouts_expired), so that a session busy with short
 * transactions moves it about once per deadline rather than twice a
 * transaction.
 */
static void timeouts_arm(struct session *s, int64_t now)
{
    struct timeouts_state *t = s->timeouts;
    int64_t d = timeouts_deadline(t);
    if (d == INT64_MAX || (t->armed && t->deadline_ms <= d))
        return;
    int64_t ms = d > now ? d - now : 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    struct event *timer = session_timer(s);
    t->armed = timer != NULL && event_add(timer, &tv) == 0;
    t->deadline_ms = d;
}

/* s enters phase (from t->where) at now; a transaction that starts reads the values anew. */
static void timeouts_enter(struct session *s, enum timeouts_phase phase, int64_t now)
{
    struct timeouts_state *t = s->timeouts;
    bool from_idle = t->where == TIMEOUTS_IDLE;
    if (t->stale && (from_idle || phase == TIMEOUTS_IDLE))
        (void)timeouts_read_values(s); /* its state is there: this cannot fail */
    if (phase != TIMEOUTS_IDLE && from_idle)
        t->transaction_since_ms = now;
    if (phase == TIMEOUTS_QUERY) {
        t->query_since_ms = now;
        t->canceled = false;
        t->cancel_on = NULL;
    } else {
        t->idle_since_ms = now;
    }
    t->where = (uint8_t)phase;
}

void timeouts_note(struct session *s)
{
    struct timeouts_state *t = s->timeouts;
    if (t == NULL)
        return;
    enum timeouts_phase phase = timeouts_phase_now(s);
    const struct server_conn *sc = s->server_conn;
    bool next = false, ended = false;
    if (sc != t->answered_on) {
        t->answered_on = sc;
        t->answered = sc != NULL ? sc->tx.answered : 0;
        t->answered_idle = sc != NULL ? sc->tx.answered_idle : 0;
    } else if (sc != NULL && sc->tx.answered != t->answered) {
        ended = sc->tx.answered_idle != t->answered_idle;
        t->answered = sc->tx.answered;
        t->answered_idle = sc->tx.answered_idle;
        next = phase == TIMEOUTS_QUERY;
    }
    if (phase == t->where && !next)
        return;
    int64_t now = monotonic_ms();
    if (ended && phase != TIMEOUTS_IDLE)
        timeouts_enter(s, TIMEOUTS_IDLE, now); /* a transaction ended in between */
    timeouts_enter(s, phase, now);
    if (t->on)
        timeouts_arm(s, now);
    else if (t->armed) {
        event_del(s->timer);
        t->armed = false;
    }
}

void timeouts_start(struct session *s)
{
    if (s->client.stream.fd < 0)
        return; /* pgnear's own: no client to time */
    if (!timeouts_read_values(s)) {
        session_close(s, "out of memory");
        return;
    }
    struct timeouts_state *t = s->timeouts;
    if (t == NULL)
        return; /* no timeout applies */
    t->where = (uint8_t)timeouts_phase_now(s);
    int64_t now = monotonic_ms();
    t->query_since_ms = t->transaction_since_ms = t->idle_since_ms = now;
    if (t->on)
        timeouts_arm(s, now);
}

void timeouts_reconfigured(struct worker *w)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->active_sessions)
    {
        struct session *s = list_entry(pos, struct session, node);
        if (s->phase != PHASE_ACTIVE || s->client.stream.fd < 0)
            continue;
        struct timeouts_values v;
        if (s->timeouts == NULL && !timeouts_values_of(s, &v))
            continue; /* none before, none now: nothing to follow (a crowd keeps no state) */
        if (s->timeouts == NULL && (s->timeouts = calloc(1, sizeof(*s->timeouts))) == NULL) {
            session_close(s, "out of memory");
            continue;
        }
        struct timeouts_state *t = s->timeouts;
        t->stale = true;
        if (!t->on) { /* not followed till now: where it is, from now */
            int64_t now = monotonic_ms();
            t->where = (uint8_t)timeouts_phase_now(s);
            t->query_since_ms = t->transaction_since_ms = t->idle_since_ms = now;
        }
        t->on = true; /* followed until its next transaction's start reads them */
        if (t->where != TIMEOUTS_IDLE)
            continue;
        (void)timeouts_read_values(s); /* between transactions: at once (its state is there) */
        if (t->on) {
            timeouts_arm(s, monotonic_ms());
        } else if (t->armed) {
            event_del(s->timer);
            t->armed = false;
        }
    }
}

const struct pkt_report *timeouts_cancel_report(const struct session *s)
{
    static const struct pkt_report waited = {
        .severity = "ERROR",
        .sqlstate = "57014",
        .message = canceled_message,
        .detail = "The request waited for a server connection longer than query_timeout "
                  "allows; it did not run."};
    return s->timeouts != NULL && s->timeouts->canceling ? &waited : NULL;
}

/* One FATAL of a timeout, in PostgreSQL's words, the setting named in the detail. */
static void timeouts_fail(struct session *s, const char *sqlstate, const char *message,
                          const char *setting, int32_t ms)
{
    struct pg_error e;
    pg_error_set(&e, sqlstate, "%s", message);
    pg_error_detail(&e, "pgnear's %s is %d ms.", setting, (int)ms);
    session_fail(s, &e);
}

static void timeouts_rewrite_reader(struct session *s);

/* query_timeout: the request canceled, the server's 57014 named when it comes. */
static void timeouts_cancel(struct session *s)
{
    struct timeouts_state *t = s->timeouts;
    struct server_conn *sc = s->server_conn;
    const struct server_reader *reader = relay_server_reader(s);
    t->canceled = true;
    t->canceling = true;
    slog_info(s, "query_timeout (%d ms): canceling its request", (int)t->query_ms);
    bool sent = cancel_session_request(s);
    t->canceling = false;
    /* Sent to the server that runs it (not answered here): its 57014 is named on the way. */
    if (sent && !s->closed && s->server_conn == sc && sc != NULL && sc->ep.on_read == reader->read)
        endpoint_set_reader(&sc->ep, timeouts_rewrite_reader);
    /* Sent to a server: watched until it says something (timeouts_cancel_unanswered). */
    t->cancel_on = NULL;
    if (sent && !s->closed && s->server_conn == sc && sc != NULL) {
        t->cancel_on = sc;
        t->cancel_bytes_in = sc->ep.bytes_in;
        t->cancel_sent_ms = monotonic_ms();
    }
}

/*
 * query_timeout's cancel sent query_timeout ago.  A server that said
 * anything since is alive (rows a slow client has not read yet keep it
 * from seeing the cancel): looked at again later.  One that said nothing
 * answers nobody, as a hung host or a network that drops every packet:
 * what the request did is unknown, so the session ends as on a lost
 * connection, and no client waits much past twice query_timeout for a
 * server that is gone.
 */
static void timeouts_cancel_unanswered(struct session *s, int64_t now)
{
    struct timeouts_state *t = s->timeouts;
    const struct server_conn *sc = s->server_conn;
    if (sc != t->cancel_on || sc == NULL) {
        t->cancel_on = NULL; /* the request left that connection: answered, or moved on */
        return;
    }
    if (sc->ep.bytes_in != t->cancel_bytes_in) {
        t->cancel_bytes_in = sc->ep.bytes_in;
        t->cancel_sent_ms = now;
        return;
    }
    slog_warn(s, "query_timeout (%d ms): the server answered nothing in %d ms after the cancel",
              (int)t->query_ms, (int)t->query_ms);
    struct pg_error e;
    pg_error_set(&e, "08006",
                 "terminating connection because the server did not answer query_timeout's cancel");
    pg_error_detail(&e,
                    "The request ran longer than query_timeout (%d ms), and nothing came from its "
                    "server in the %d ms after the cancel; whether it ran is unknown.",
                    (int)t->query_ms, (int)t->query_ms);
    pg_error_hint(&e, "Reconnect: a new session is sent to a server that answers.");
    session_fail(s, &e);
}

void timeouts_expired(struct session *s)
{
    struct timeouts_state *t = s->timeouts;
    if (t == NULL)
        return; /* its timer is armed for timeouts only once they are followed */
    s->busy++;
    t->armed = false;
    timeouts_note(s);
    int64_t now = monotonic_ms();
    if (t->where == TIMEOUTS_IDLE && s->hold.held)
        t->idle_since_ms = now; /* held: its request may wait unread; idle from after the hold */
    bool in_txn = t->where != TIMEOUTS_IDLE;
    if (in_txn && t->transaction_ms > 0 && now >= t->transaction_since_ms + t->transaction_ms)
        timeouts_fail(s, "25P04", "terminating connection due to transaction timeout",
                      "transaction_timeout", t->transaction_ms);
    else if (t->where == TIMEOUTS_IDLE_TXN && t->idle_transaction_ms > 0 &&
             now >= t->idle_since_ms + t->idle_transaction_ms)
        timeouts_fail(s, "25P03", "terminating connection due to idle-in-transaction timeout",
                      "idle_transaction_timeout", t->idle_transaction_ms);
    else if (t->where == TIMEOUTS_IDLE && t->client_idle_ms > 0 &&
             now >= t->idle_since_ms + t->client_idle_ms)
        timeouts_fail(s, "57P05", "terminating connection due to idle-session timeout",
                      "client_idle_timeout", t->client_idle_ms);
    else if (t->where == TIMEOUTS_QUERY && t->canceled && t->cancel_on != NULL && t->query_ms > 0 &&
             now >= t->cancel_sent_ms + t->query_ms)
        timeouts_cancel_unanswered(s, now);
    else if (t->where == TIMEOUTS_QUERY && !t->canceled && t->query_ms > 0 &&
             now >= t->query_since_ms + t->query_ms) {
        if (s->server_conn != NULL && s->server_conn->ep.writes_held)
            /* The request may wait in pgnear for an earlier cancel's delivery: asked again soon. */
            t->query_since_ms = now + TIMEOUTS_HELD_RECHECK_MS - t->query_ms;
        else
            timeouts_cancel(s);
    }
    if (!s->closed && s->phase == PHASE_ACTIVE && t->on)
        timeouts_arm(s, monotonic_ms());
    session_callback_done(s);
}

/*
 * The message at offset at of in (len: its length word) replaced by msg
 * (n bytes); false when out of memory.
 */
static bool timeouts_splice(struct evbuffer *in, size_t at, uint32_t len, const uint8_t *msg,
                            size_t n)
{
    struct evbuffer *head = evbuffer_new();
    bool ok = head != NULL && evbuffer_remove_buffer(in, head, at) == (int)at &&
              evbuffer_drain(in, 1 + (size_t)len) == 0 && evbuffer_prepend(in, msg, n) == 0 &&
              evbuffer_prepend_buffer(in, head) == 0;
    if (head != NULL)
        evbuffer_free(head);
    return ok;
}

/*
 * The ErrorResponse at offset at of in: a 57014 gets query_timeout's
 * words.  The bytes it takes now (to walk on from); 0 when out of memory.
 */
static size_t timeouts_name_error(const struct session *s, struct evbuffer *in, size_t at,
                                  uint32_t len)
{
    uint8_t body[TIMEOUTS_ERROR_MAX];
    if (len - 4 > sizeof(body))
        return 1 + (size_t)len;
    struct evbuffer_ptr p;
    if (evbuffer_ptr_set(in, &p, at + PKT_HEADER_LEN, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(in, &p, body, len - 4) != (ssize_t)(len - 4))
        return 1 + (size_t)len;
    struct pg_error e;
    memset(&e, 0, sizeof(e));
    pg_error_from_report(&e, body, len - 4);
    if (strcmp(e.sqlstate, "57014") != 0)
        return 1 + (size_t)len;
    pg_error_set(&e, "57014", "%s", canceled_message);
    pg_error_detail(&e, "The statement ran longer than query_timeout (%d ms) allows.",
                    (int)s->timeouts->query_ms);
    uint8_t msg[2048];
    struct pktbuf pb;
    pkt_init(&pb, msg, sizeof(msg));
    pg_error_put(&pb, 'E', "ERROR", &e);
    if (!pkt_ok(&pb))
        return 1 + (size_t)len;
    return timeouts_splice(in, at, len, msg, pb.len) ? pb.len : 0;
}

/* What in holds from at on, moved to *held (new); false when out of memory. */
static bool timeouts_hold_tail(struct evbuffer *in, size_t at, struct evbuffer **held)
{
    struct evbuffer *front = evbuffer_new();
    *held = evbuffer_new();
    bool ok = front != NULL && *held != NULL && evbuffer_remove_buffer(in, front, at) == (int)at &&
              evbuffer_add_buffer(*held, in) == 0 && evbuffer_add_buffer(in, front) == 0;
    if (front != NULL)
        evbuffer_free(front);
    return ok;
}

/*
 * The server's whole messages in in from at: their 57014 named, up to the
 * ReadyForQuery that ends the canceled request (*ended).  An ErrorResponse
 * not whole yet waits in held, out of the reader's way.  False: out of memory.
 */
static bool timeouts_rewrite(const struct session *s, struct evbuffer *in, size_t at, bool *ended,
                             struct evbuffer **held)
{
    for (;;) {
        uint8_t h[PKT_HEADER_LEN];
        struct evbuffer_ptr p;
        if (evbuffer_ptr_set(in, &p, at, EVBUFFER_PTR_SET) != 0 ||
            evbuffer_copyout_from(in, &p, h, sizeof(h)) != (ssize_t)sizeof(h))
            return true;
        uint32_t len = pkt_be32(h + 1);
        if (len < 4)
            return true; /* the reader fails the session on it */
        if (h[0] == 'Z') {
            *ended = true;
            return true;
        }
        size_t have = evbuffer_get_length(in) - at;
        if (h[0] == 'E' && have < 1 + (size_t)len)
            return len - 4 > TIMEOUTS_ERROR_MAX || timeouts_hold_tail(in, at, held);
        if (have < 1 + (size_t)len)
            return true;
        size_t took = h[0] == 'E' ? timeouts_name_error(s, in, at, len) : 1 + (size_t)len;
        if (took == 0)
            return false;
        at += took;
    }
}

/*
 * The server endpoint's reader while query_timeout's cancel is answered:
 * its bytes read, the 57014 named, then handed to the session's own
 * reader (relay_server_reader), which reads for itself again from the
 * ReadyForQuery that ends the request.
 */
static void timeouts_rewrite_reader(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (sc == NULL)
        return;
    struct endpoint *ep = &sc->ep;
    const struct server_reader *reader = relay_server_reader(s);
    int more = 0;
    if (endpoint_fill(s, ep, RELAY_BLOCK_SIZE, &more) < 0)
        return;
    bool ended = false;
    struct evbuffer *held = NULL;
    if (!timeouts_rewrite(s, ep->in, ep->fwd_remaining, &ended, &held)) {
        if (held != NULL)
            evbuffer_free(held);
        session_close(s, "out of memory");
        return;
    }
    if (ended)
        endpoint_set_reader(ep, reader->read);
    int rc = reader->pump(s);
    if (held != NULL) {
        if (rc >= 0 && !s->closed && s->server_conn == sc && evbuffer_add_buffer(ep->in, held) != 0)
            session_close(s, "out of memory");
        evbuffer_free(held);
    }
    if (rc >= 0 && more && !s->closed && s->server_conn == sc)
        event_active(ep->rev, EV_READ, 0);
}
