/*
 * pool_idle.c — a server connection with no client: parked, reset, idle,
 * and what its server sends meanwhile.
 */
#include "proxy/pool/pool_idle.h"

#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/prepared.h"
#include "protocol/stream.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/pool_limits.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/region.h"

/* How often idle connections are looked at for server_idle_timeout and server_lifetime. */
#define POOL_SWEEP_MS 1000
/* What a kept connection may be sent unasked (notices, parameter changes): small messages. */
#define POOL_MAX_MESSAGE (64 * 1024)

/*
 * Never called: a kept connection's events go to pool_event, its owner's
 * (pool_endpoint_owner).  Being a reader, it keeps the read event armed
 * (endpoint_arm), so that a server hanging up is seen at once.
 */
static void pool_reading(struct session *s)
{
    (void)s;
}

void pool_close(struct server_conn *sc, const char *why)
{
    log_info(0, "server connection %llu to %s:%d (database %s, user %s) closed: %s",
             (unsigned long long)sc->id, sc->host->name, sc->host->port, sc->database, sc->user,
             why);
    server_conn_close(sc, false);
}

void pool_arm_sweep(struct worker *w)
{
    if (w->pool_timer != NULL && !evtimer_pending(w->pool_timer, NULL)) {
        struct timeval tv = {POOL_SWEEP_MS / 1000, (POOL_SWEEP_MS % 1000) * 1000};
        evtimer_add(w->pool_timer, &tv);
    }
}

void pool_now_idle(struct server_conn *sc)
{
    pool_now_idle_at(sc, worker_clock_us(sc->w));
}

void pool_now_idle_at(struct server_conn *sc, int64_t now_us)
{
    sc->idle_since = now_us;
    server_conn_move(sc, &sc->w->idle_servers);
    pool_arm_sweep(sc->w);
    /* Someone may be waiting for it (here), or for the slot it holds (anywhere). */
    if (__atomic_load_n(&sc->w->shared->pool_limits.waiting, __ATOMIC_RELAXED) > 0)
        event_active(sc->w->pool_wake, EV_TIMEOUT, 0);
    log_debug(0, "server connection %llu to %s:%d is idle (database %s, user %s, %u uses)",
              (unsigned long long)sc->id, sc->host->name, sc->host->port, sc->database, sc->user,
              sc->use_count);
}

/* Writes what is queued for the server; false when the connection was closed. */
static bool pool_flush(struct server_conn *sc)
{
    if (endpoint_write_out(&sc->ep) < 0) {
        pool_close(sc, "could not send to the server");
        return false;
    }
    return true;
}

/* Whether the server process has a temporary schema: one row, 't' or 'f'. */
static const char TEMP_CHECK[] = "SELECT pg_catalog.pg_my_temp_schema() <> 0";

/* A DataRow of TEMP_CHECK's answer: its one column is 't' (a temporary schema) or 'f'. */
static bool pool_temp_answer(const uint8_t *body, uint32_t len)
{
    return len == 2 + 4 + 1 && body[0] == 0 && body[1] == 1 && body[2] == 0 && body[3] == 0 &&
           body[4] == 0 && body[5] == 1 && body[6] == 't';
}

/* Sends the reset query; the connection becomes idle when the server has answered it. */
void pool_reset(struct server_conn *sc)
{
    /* DISCARD ALL takes the statements transaction pooling prepared there. */
    prep_server_free(sc->prep);
    sc->prep = NULL;
    const char *query = sc->cfg->server_reset_query;
    if (query[0] == '\0' && !sc->owes_fence) {
        pool_now_idle(sc);
        return;
    }
    /*
     * DISCARD ALL empties the session's temporary schema but cannot drop
     * it: a client given this server process would find it made already
     * (current_schema() creates none, so PREPARE TRANSACTION is not
     * refused as directly).  Asked in the same write; one that has it is
     * closed (pool_temp_answer).
     */
    sc->temp_check_owed = query[0] != '\0';
    sc->temp_check_reading = false;
    sc->temp_schema = false;
    if (query[0] != '\0' &&
        (pkt_add_query(sc->ep.out, query) != 0 || pkt_add_query(sc->ep.out, TEMP_CHECK) != 0)) {
        pool_close(sc, "out of memory");
        return;
    }
    server_conn_move(sc, &sc->w->used_servers);
    sc->idle_since = wall_clock_us(); /* when the reset started: a server that never answers it */
    pool_arm_sweep(sc->w);
    sc->reset_failed = false;
    pool_flush(sc);
}

void pool_roll_back(struct server_conn *sc)
{
    if (pkt_add_query(sc->ep.out, "ROLLBACK") != 0) {
        pool_close(sc, "out of memory");
        return;
    }
    server_conn_move(sc, &sc->w->used_servers);
    sc->idle_since = wall_clock_us();
    pool_arm_sweep(sc->w);
    if (pool_flush(sc))
        endpoint_arm(&sc->ep);
}

/*
 * The last answer to a vanished client's connection (pool_roll_back) came:
 * kept, as it is or reset.  False when it was closed.
 */
static bool pool_rolled_back(struct server_conn *sc, const uint8_t *body, uint32_t len)
{
    sc->rollback_owed = 0;
    sc->rollback_until_us = 0;
    if (len < 1 || body[0] != 'I') {
        stat_inc(&sc->w->stats.servers_not_kept);
        pool_close(sc, "its ROLLBACK left it inside a transaction");
        return false;
    }
    /* Clean now: what the client had under way is answered (its figures kept). */
    uint64_t answered = sc->tx.answered, answered_idle = sc->tx.answered_idle;
    tx_track_init(&sc->tx, 'I');
    sc->tx.answered = answered;
    sc->tx.answered_idle = answered_idle;
    health_note_answer(sc->host);
    log_info(0, "server connection %llu rolled back after its client left; kept",
             (unsigned long long)sc->id);
    stat_inc(&sc->w->stats.servers_kept);
    stat_inc(&sc->w->stats.servers_rolled_back);
    if (sc->txn_return) {
        sc->txn_return = false;
        pool_now_idle(sc);
    } else {
        pool_reset(sc);
    }
    return !sc->closed;
}

/* A ParameterStatus kept for the connection's next client; false when it was closed. */
static bool pool_note_parameter(struct server_conn *sc, const uint8_t *body, uint32_t len)
{
    if (param_set_note(&sc->reported, body, len) != PARAM_SET_OK) {
        pool_close(sc, "it reported more parameters than pgnear keeps");
        return false;
    }
    return true;
}

/*
 * A message to a vanished client's connection before it is clean: the
 * answers its client was owed (a cancel's error among them) and the
 * ROLLBACK's, dropped.  False when it was closed.
 */
static bool pool_rollback_message(struct server_conn *sc, char type, const uint8_t *body,
                                  uint32_t len)
{
    switch (type) {
    case 'S':
        return pool_note_parameter(sc, body, len);
    case 'G':
    case 'H':
    case 'W':
        pool_close(sc, "a COPY began after its client left");
        return false;
    case 'Z':
        if (--sc->rollback_owed > 0)
            return true;
        if (sc->cancel_held) { /* more answers than its client was owed: the count is wrong */
            pool_close(sc, "unexpected ReadyForQuery");
            return false;
        }
        return pool_rolled_back(sc, body, len);
    default:
        return true;
    }
}

static void pool_event(struct endpoint *ep, short what);

/*
 * A kept connection's socket failed: it is closed.  Not called while
 * pool_event reads and writes the socket itself (and closes it, saying why).
 */
static void pool_endpoint_failed(struct session *s, struct endpoint *ep, const char *why, bool gone)
{
    (void)s;
    (void)gone;
    pool_close(list_entry(ep, struct server_conn, ep), why);
}

/* A kept connection's log lines name no session. */
static uint64_t pool_endpoint_log_id(const struct endpoint *ep)
{
    (void)ep;
    return 0;
}

/* What a kept connection's endpoint tells the pool, its owner while it has no client. */
static const struct endpoint_owner pool_endpoint_owner = {
    .event = pool_event,
    .failed = pool_endpoint_failed,
    .log_id = pool_endpoint_log_id,
};

/* Parks a connection without client: its events come to pool_event. */
void pool_park(struct server_conn *sc)
{
    server_conn_detach(sc);
    sc->ep.owner = &pool_endpoint_owner;
    sc->ep.read_paused = false;
    sc->ep.on_read = pool_reading;
    sc->ep.stream.read_want = STREAM_WANT_READ;
}

bool pool_keep_fresh(struct server_conn *sc)
{
    if (!sc->poolable || sc->tx.status != 'I' || evbuffer_get_length(sc->ep.in) > 0) {
        server_conn_close(sc, true);
        return false;
    }
    pool_park(sc);
    pool_now_idle(sc);
    endpoint_arm(&sc->ep);
    return true;
}

/* A server's ErrorResponse, for the log: its message field. */
static void pool_log_error(const struct server_conn *sc, const uint8_t *body, uint32_t len)
{
    const char *msg = pkt_report_field(body, len, 'M');
    log_warn(0, "server connection %llu to %s:%d: %s", (unsigned long long)sc->id, sc->host->name,
             sc->host->port, msg != NULL ? msg : "(an error without a message)");
}

/*
 * A ReadyForQuery while no client has the connection: the end of pgnear's
 * question of its WAL position, of the reset, or of the question of its
 * temporary schema; idle after the last.  False when it was closed.
 */
static bool pool_reset_answered(struct server_conn *sc, bool resetting, const uint8_t *body,
                                uint32_t len)
{
    if (!resetting || len < 1) {
        pool_close(sc, "unexpected ReadyForQuery");
        return false;
    }
    if (sc->reset_failed || body[0] != 'I') {
        stat_inc(&sc->w->stats.servers_not_kept);
        pool_close(sc, "server_reset_query failed");
        return false;
    }
    health_note_answer(sc->host); /* busy or not, it answers */
    if (sc->owes_fence) {
        /* pgnear's own question answered (pool_give.c); the reset's answer follows */
        sc->owes_fence = false;
        if (sc->cfg->server_reset_query[0] != '\0')
            return true;
    }
    if (sc->temp_check_owed) {
        /* the reset answered; the temporary schema's answer follows */
        sc->temp_check_owed = false;
        sc->temp_check_reading = true;
        return true;
    }
    sc->temp_check_reading = false;
    if (sc->temp_schema) {
        stat_inc(&sc->w->stats.servers_not_kept);
        pool_close(sc, "its server process has a temporary schema, which DISCARD ALL cannot "
                       "drop");
        return false;
    }
    sc->tx.status = 'I';
    pool_now_idle(sc);
    return true;
}

/* One message from a server with no client; false when the connection was closed. */
static bool pool_message(struct server_conn *sc, char type, const uint8_t *body, uint32_t len)
{
    if (sc->rollback_owed > 0)
        return pool_rollback_message(sc, type, body, len);
    bool resetting = sc->list == &sc->w->used_servers && !sc->cancel_held;
    switch (type) {
    case 'S':
        return pool_note_parameter(sc, body, len);
    case 'N':
        return true;
    case 'E':
        pool_log_error(sc, body, len);
        if (!resetting) {
            server_conn_ended_by_server(sc); /* a FATAL: a shutdown, maybe a restart */
            pool_close(sc, "the server sent an error to an idle connection");
            return false;
        }
        sc->reset_failed = true;
        return true;
    case 'Z':
        return pool_reset_answered(sc, resetting, body, len);
    case 'D':
        if (resetting && sc->temp_check_reading && pool_temp_answer(body, len))
            sc->temp_schema = true;
        if (resetting)
            return true; /* rows of a reset query that returns some, or the check's */
        pool_close(sc, "the server sent an unexpected message to an idle connection");
        return false;
    default:
        if (resetting)
            return true; /* CommandComplete, rows of a reset query that returns some */
        pool_close(sc, "the server sent an unexpected message to an idle connection");
        return false;
    }
}

/* Reads and handles what the server sent; false when the connection was closed. */
static bool pool_read(struct server_conn *sc)
{
    int more = 0;
    ssize_t n = endpoint_read(&sc->ep, POOL_MAX_MESSAGE, &more);
    /* With the ring's receive what came is in the input already. */
    if (n == STREAM_AGAIN && evbuffer_get_length(sc->ep.in) == 0)
        return true;
    if (n < 0 && n != STREAM_AGAIN) {
        server_conn_ended_by_server(sc);
        pool_close(sc, n == STREAM_EOF ? "the server closed the connection"
                                       : "could not receive from the server");
        return false;
    }
    if (n > 0)
        sc->ep.bytes_in += (uint64_t)n;
    for (;;) {
        char type;
        uint32_t len;
        int st = frame_peek_whole(sc->ep.in, POOL_MAX_MESSAGE, &type, &len);
        if (st == FRAME_INCOMPLETE)
            break;
        if (st == FRAME_BAD_LENGTH) {
            pool_close(sc, "the server sent an invalid message length");
            return false;
        }
        if (!pool_message(sc, type, frame_body(sc->ep.in, len), len))
            return false;
        frame_consume(sc->ep.in, len);
    }
    if (more)
        event_active(sc->ep.rev, EV_READ, 0);
    return true;
}

/* The event of a kept connection's socket: what it is sent is written, what it sends read. */
static void pool_event(struct endpoint *ep, short what)
{
    struct server_conn *sc = list_entry(ep, struct server_conn, ep);
    sc->in_callback = true;
    if ((what & EV_CLOSED) == 0 && pool_flush(sc) && pool_read(sc))
        endpoint_arm(ep);
    sc->in_callback = false;
    if (sc->closed)
        server_conn_free(sc);
}
