/*
 * pool.c — server connections kept between clients: given back, reset,
 * kept idle, taken again, and closed when they should not be kept.
 */
#include "proxy/pool/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/prepared.h"
#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/stream.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/pool_limits.h"
#include "proxy/pool/pool_warm.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/gate.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/region.h"

/* How often idle connections are looked at for server_idle_timeout and server_lifetime. */
#define POOL_SWEEP_MS 1000
/* At most one line per pool (or host) per interval says that clients wait for it. */
#define POOL_WAIT_LOG_INTERVAL_MS 10000
/* What a kept connection may be sent unasked (notices, parameter changes): small messages. */
#define POOL_MAX_MESSAGE (64 * 1024)

bool pool_session_may_share(const struct session *s)
{
    if (!config_pooling(s->cfg) || s->login == NULL)
        return false;
    if (strlen(s->user) >= SERVER_POOL_NAME_MAX || strlen(s->database) >= SERVER_POOL_NAME_MAX)
        return false;
    const struct startup_packet *sp = &s->login->startup;
    for (size_t i = 0; i < sp->nparams; i++) {
        const char *name = sp->params[i].name;
        /* A walsender, or a protocol option: a property of the connection, not a setting. */
        if (strcmp(name, "replication") == 0 || strncmp(name, "_pq_.", 5) == 0)
            return false;
    }
    return true;
}

/* Why sc cannot be kept now that its client leaves; NULL when it can. */
static const char *pool_refusal(const struct server_conn *sc, const struct session *s)
{
    if (!sc->poolable || !config_pooling(s->cfg))
        return "pooling is off for it";
    if (s->phase != PHASE_ACTIVE)
        return "its client did not finish logging in";
    if (sc->reconnect)
        return "RECONNECT asked for a new connection";
    if (sc->cancel_unsure)
        return "a cancel request sent to it may still arrive";
    if (sc->w->draining)
        return "pgnear is shutting down";
    if (!server_conn_at_safe_point(sc) || sc->tx.status != 'I' || s->client.fwd_remaining != 0 ||
        sc->ep.fwd_remaining != 0 || evbuffer_get_length(sc->ep.in) > 0)
        return "its client left inside a transaction, a COPY or a request";
    if (wall_clock_us() - sc->connect_time > (int64_t)s->cfg->server_lifetime_ms * 1000)
        return "it is older than server_lifetime";
    if (!host_is_up(sc->host))
        return "its host is down";
    return NULL;
}

/*
 * Never called: a kept connection's events go to pool_event, its owner's
 * (pool_endpoint_owner).  Being a reader, it keeps the read event armed
 * (endpoint_arm), so that a server hanging up is seen at once.
 */
static void pool_reading(struct session *s)
{
    (void)s;
}

static void pool_close(struct server_conn *sc, const char *why)
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

static void pool_now_idle(struct server_conn *sc)
{
    sc->idle_since = wall_clock_us();
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
    if (evbuffer_get_length(sc->ep.out) > 0) {
        ssize_t n = stream_write(&sc->ep.stream, sc->ep.out);
        if (n < 0) {
            pool_close(sc, "could not send to the server");
            return false;
        }
        sc->ep.bytes_out += (uint64_t)n;
    }
    endpoint_arm(&sc->ep);
    return true;
}

/* Sends the reset query; the connection becomes idle when the server has answered it. */
static void pool_reset(struct server_conn *sc)
{
    /* DISCARD ALL takes the statements transaction pooling prepared there. */
    prep_server_free(sc->prep);
    sc->prep = NULL;
    const char *query = sc->cfg->server_reset_query;
    if (query[0] == '\0') {
        pool_now_idle(sc);
        return;
    }
    if (pkt_add_query(sc->ep.out, query) != 0) {
        pool_close(sc, "out of memory");
        return;
    }
    server_conn_move(sc, &sc->w->used_servers);
    sc->idle_since = wall_clock_us(); /* when the reset started: a server that never answers it */
    pool_arm_sweep(sc->w);
    sc->reset_failed = false;
    pool_flush(sc);
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
static void pool_park(struct server_conn *sc)
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

/* A kept connection goes idle as it is (txn_return), or reset first. */
static void pool_keep(struct server_conn *sc)
{
    if (sc->txn_return) {
        /* Its session is the one its next clients would have (pool_find takes exact fits). */
        sc->txn_return = false;
        pool_now_idle(sc);
        endpoint_arm(&sc->ep);
        return;
    }
    stat_inc(&sc->w->stats.servers_kept);
    pool_reset(sc);
}

void pool_release(struct server_conn *sc)
{
    struct session *s = sc->client;
    const char *refusal = pool_refusal(sc, s);
    if (refusal != NULL) {
        sc->txn_return = false;
        if (sc->poolable) {
            stat_inc(&sc->w->stats.servers_not_kept);
            log_debug(s->id, "server connection %llu not kept: %s", (unsigned long long)sc->id,
                      refusal);
        }
        server_conn_close(sc, true);
        return;
    }
    pool_park(sc);
    if (sc->cancels_in_flight > 0) {
        /* Not idle, not reset yet: the cancel must land before anyone else's query can. */
        sc->cancel_held = true;
        server_conn_move(sc, &sc->w->used_servers);
        sc->idle_since = wall_clock_us();
        pool_arm_sweep(sc->w);
        endpoint_arm(&sc->ep);
        log_debug(s->id, "server connection %llu held back until its cancel is delivered",
                  (unsigned long long)sc->id);
        return;
    }
    pool_keep(sc);
}

void pool_cancel_done(struct server_conn *sc)
{
    if (!sc->cancel_held)
        return; /* its session still has it */
    sc->cancel_held = false;
    if (sc->cancel_unsure || sc->w->draining) {
        stat_inc(&sc->w->stats.servers_not_kept);
        pool_close(sc, sc->cancel_unsure ? "a cancel request sent to it may still arrive"
                                         : "pgnear is shutting down");
        return;
    }
    pool_keep(sc);
}

/* A server's ErrorResponse, for the log: its message field. */
static void pool_log_error(const struct server_conn *sc, const uint8_t *body, uint32_t len)
{
    const char *msg = pkt_report_field(body, len, 'M');
    log_warn(0, "server connection %llu to %s:%d: %s", (unsigned long long)sc->id, sc->host->name,
             sc->host->port, msg != NULL ? msg : "(an error without a message)");
}

/* One message from a server with no client; false when the connection was closed. */
static bool pool_message(struct server_conn *sc, char type, const uint8_t *body, uint32_t len)
{
    bool resetting = sc->list == &sc->w->used_servers && !sc->cancel_held;
    switch (type) {
    case 'S':
        if (param_set_note(&sc->reported, body, len) != PARAM_SET_OK) {
            pool_close(sc, "it reported more parameters than pgnear keeps");
            return false;
        }
        return true;
    case 'N':
        return true;
    case 'E':
        pool_log_error(sc, body, len);
        if (!resetting) {
            pool_close(sc, "the server sent an error to an idle connection");
            return false;
        }
        sc->reset_failed = true;
        return true;
    case 'Z':
        if (!resetting || len < 1) {
            pool_close(sc, "unexpected ReadyForQuery");
            return false;
        }
        if (sc->reset_failed || body[0] != 'I') {
            stat_inc(&sc->w->stats.servers_not_kept);
            pool_close(sc, "server_reset_query failed");
            return false;
        }
        sc->tx.status = 'I';
        health_note_answer(sc->host); /* busy or not, it answers */
        pool_now_idle(sc);
        return true;
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
    ssize_t n = stream_read(&sc->ep.stream, sc->ep.in, POOL_MAX_MESSAGE, &more);
    if (n == STREAM_AGAIN)
        return true;
    if (n < 0) {
        pool_close(sc, n == STREAM_EOF ? "the server closed the connection"
                                       : "could not receive from the server");
        return false;
    }
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

/* How well a kept connection's login parameters suit a client. */
enum pool_fit {
    FIT_NONE,  /* it cannot serve the client */
    FIT_SET,   /* it can, with the client's differing parameters set */
    FIT_EXACT, /* it logged in with exactly the client's parameters: nothing to set */
};

/*
 * Every startup parameter sc logged in with must be one s gives too (s's
 * value is then set), and options the same: a RESET returns a parameter to
 * its login value, and the server's default for one given at login cannot
 * be learnt afterwards.
 */
static enum pool_fit pool_params_fit(const struct server_conn *sc, const struct session *s)
{
    const char *name, *value;
    bool same = true;
    for (size_t off = 0; param_set_next(&sc->startup, &off, &name, &value);) {
        const char *mine = param_set_get(&s->server_startup, name);
        if (mine == NULL)
            return FIT_NONE;
        /* options cannot be SET: it must be the same. */
        if (strcmp(name, "options") == 0 && strcmp(mine, value) != 0)
            return FIT_NONE;
        same = same && strcmp(mine, value) == 0;
    }
    /* Options sc did not log in with cannot be added either. */
    if (param_set_get(&s->server_startup, "options") != NULL &&
        param_set_get(&sc->startup, "options") == NULL)
        return FIT_NONE;
    return same && s->server_startup.count == sc->startup.count ? FIT_EXACT : FIT_SET;
}

/* How s's pool is pooled ([database]/[user] pool_mode, else pool_mode). */
static int pool_mode_of(const struct session *s)
{
    return config_session_pool_mode(s->cfg, s->user, s->database);
}

static bool pool_same_place(const struct server_conn *sc, const struct region *r,
                            const struct region_host *h)
{
    return sc->host->port == h->port && strcmp(sc->host->name, h->name) == 0 &&
           strcmp(sc->region->name, r->name) == 0;
}

/*
 * An idle connection to h of r that can serve s (too old ones are closed
 * on the way), one that logged in with exactly s's parameters first: the
 * client's RESET then means what it would directly.  NULL when none.
 * The one idle for the shortest time first (the idle list is in the order
 * they became idle): a few connections stay busy and warm (their caches,
 * and under transaction pooling the statements prepared on them), and the
 * rest go at server_idle_timeout when the load falls, as with PgBouncer's
 * default (server_round_robin = 0).
 */
static struct server_conn *pool_find(struct session *s, const struct region *r,
                                     const struct region_host *h, bool exact)
{
    int64_t oldest = wall_clock_us() - (int64_t)s->cfg->server_lifetime_ms * 1000;
    struct server_conn *fit = NULL;
    struct list_node *pos, *tmp;
    list_for_each_reverse_safe(pos, tmp, &s->w->idle_servers)
    {
        struct server_conn *sc = list_entry(pos, struct server_conn, node);
        if (!pool_same_place(sc, r, h) || strcmp(sc->database, s->database) != 0 ||
            strcmp(sc->user, s->user) != 0 || evbuffer_get_length(sc->ep.in) > 0)
            continue; /* (part of a message from the server is still coming: not now) */
        if (sc->connect_time < oldest) {
            pool_close(sc, "older than server_lifetime");
            continue;
        }
        enum pool_fit how = pool_params_fit(sc, s);
        if (how == FIT_EXACT)
            return sc;
        /* Under transaction pooling nothing resets it between clients: exact fits only. */
        if (how == FIT_SET && fit == NULL && !exact && pool_mode_of(s) != POOL_TRANSACTION)
            fit = sc;
    }
    return fit;
}

struct server_conn *pool_take(struct session *s, struct region *r, struct region_host *h,
                              bool ready)
{
    struct server_conn *sc = pool_find(s, r, h, ready);
    /* The most recently idle fit first: when it is due for server_check_query, all are. */
    if (sc == NULL ||
        (ready && wall_clock_us() - sc->idle_since > (int64_t)s->cfg->server_check_delay_ms * 1000))
        return NULL;
    server_conn_attach(sc, s);
    sc->region = r;
    sc->host = h;
    return sc;
}

/* ---- pool_size and max_db_connections: counting, and clients waiting ---- */

/*
 * Under transaction pooling with several workers, each worker has a slice
 * of pool_size of its own (at least one connection): a connection never
 * leaves its worker, and with one pool for all, a client waiting on one
 * worker would get its turn only by having another worker close an idle
 * connection and logging in anew, for every transaction that crosses.
 * The slice of s's worker, or -1 for the shared pool.
 */
static int pool_slice_of(const struct session *s)
{
    return pool_mode_of(s) == POOL_TRANSACTION && s->w->shared->nworkers > 1 ? s->w->index : -1;
}

/* The most connections of a slice (pool_size, split between the workers). */
static int pool_slice_size(const struct session *s, int slice)
{
    int n = s->w->shared->nworkers, size = config_pool_size(s->cfg, pool_mode_of(s));
    if (slice < 0)
        return size;
    size = size / n + (slice < size % n);
    return size > 0 ? size : 1;
}

/* A pool's key, with its slice's when it has one. */
static void pool_slice_key(char *out, const char *region, const char *database, const char *user,
                           int slice)
{
    pool_key(out, region, database, user);
    if (slice >= 0) {
        size_t n = strlen(out);
        snprintf(out + n, POOL_KEY_MAX - n, "\x1f#%d", slice);
    }
}

static void pool_session_keys(const struct session *s, const struct region_host *h, int slice,
                              char *pool, char *host)
{
    pool_slice_key(pool, s->region->name, s->database, s->user, slice);
    pool_host_key(host, h->name, h->port);
}

static int pool_wake_soon(struct worker *w, void *arg)
{
    (void)arg;
    event_active(w->pool_wake, EV_TIMEOUT, 0);
    return 0;
}

/* Every worker looks at its waiting clients, and at its idle connections others wait for. */
static void pool_wake_all(struct worker *w)
{
    if (worker_call_all(w, pool_wake_soon, NULL, NULL, NULL) != 0)
        log_warn(0, "out of memory waking the clients waiting for a server connection");
}

void pool_uncount(struct server_conn *sc)
{
    char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
    pool_slice_key(pool, sc->region->name, sc->database, sc->user, sc->pool_slice);
    pool_host_key(host, sc->host->name, sc->host->port);
    if (pool_limits_release(&sc->w->shared->pool_limits, pool, host))
        pool_wake_all(sc->w);
}

static enum pool_reserve pool_try_reserve(const struct session *s, const struct region_host *h)
{
    char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
    int slice = pool_slice_of(s);
    pool_session_keys(s, h, slice, pool, host);
    return pool_limits_reserve(&s->w->shared->pool_limits, pool, host, pool_slice_size(s, slice),
                               s->cfg->max_db_connections);
}

/* The slot just reserved for s: its host and slice. */
static void pool_reserved(struct session *s, struct region_host *h)
{
    s->login->slot_reserved = true;
    s->login->slot_host = h;
    s->login->slot_slice = (int8_t)pool_slice_of(s);
}

void pool_unreserve(struct session *s)
{
    char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
    if (s->login == NULL || !s->login->slot_reserved)
        return;
    s->login->slot_reserved = false;
    pool_session_keys(s, s->login->slot_host, s->login->slot_slice, pool, host);
    if (pool_limits_release(&s->w->shared->pool_limits, pool, host))
        pool_wake_all(s->w);
}

/*
 * A limit is reached, and an idle connection here holds a slot of it
 * (one that cannot serve s, else s would have taken it): it goes, to make
 * room.  Returns whether one did.
 */
static bool pool_close_for(struct session *s, const struct region_host *h, enum pool_reserve rc)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->w->idle_servers)
    {
        struct server_conn *sc = list_entry(pos, struct server_conn, node);
        bool same_host = sc->host->port == h->port && strcmp(sc->host->name, h->name) == 0;
        bool same_pool = strcmp(sc->region->name, s->region->name) == 0 &&
                         strcmp(sc->database, s->database) == 0 && strcmp(sc->user, s->user) == 0;
        if (rc == POOL_FULL ? same_pool : same_host) {
            pool_close(sc, "its slot is wanted by a client with other startup parameters");
            return true;
        }
    }
    return false;
}

/* The line that says clients wait for a full pool or host: one per pool or host per interval. */
static void pool_wait_log(const struct session *s, const struct region_host *h,
                          enum pool_reserve rc, const struct pool_wait_report *r)
{
    char what[400];
    if (rc == POOL_HOST_FULL)
        snprintf(what, sizeof(what), "max_db_connections (%d) reached on host %s:%d of region %s",
                 s->cfg->max_db_connections, h->name, h->port, s->region->name);
    else
        snprintf(what, sizeof(what), "pool_size (%d) reached for region %s, database %s, user %s",
                 config_pool_size(s->cfg, pool_mode_of(s)), s->region->name, s->database, s->user);
    log_warn(s->id,
             "%s: %d client%s waiting for a server connection (%d began waiting since the last "
             "report); a client still waiting after query_wait_timeout (%g s) gets 53300",
             what, r->waiting, r->waiting == 1 ? "" : "s", r->began,
             s->cfg->query_wait_timeout_ms / 1000.0);
}

static void pool_wait(struct session *s, struct region_host *h, enum pool_reserve rc)
{
    struct session_login *l = s->login;
    l->wait_host = h;
    l->wait_reason = (uint8_t)rc;
    if (!l->waiting) {
        /* Counted under what it waits for: its pool, or its host when that is what is full. */
        if (rc == POOL_HOST_FULL)
            pool_host_key(l->wait_key, h->name, h->port);
        else
            pool_slice_key(l->wait_key, s->region->name, s->database, s->user, pool_slice_of(s));
        l->wait_key_kind = rc == POOL_HOST_FULL ? POOL_HOST_FULL : POOL_FULL;
        l->waiting = true;
        l->wait_since_us = wall_clock_us();
        struct pool_wait_report report;
        if (pool_limits_wait_report(&s->w->shared->pool_limits, l->wait_key, monotonic_ms(),
                                    POOL_WAIT_LOG_INTERVAL_MS, &report))
            pool_wait_log(s, h, rc, &report);
    }
    phase_enter(s, PHASE_WAIT_SERVER);
    /* Idle connections of other workers hold slots: they give them up (pool_wake_cb). */
    pool_wake_all(s->w);
}

bool pool_reserve(struct session *s, struct region_host *h)
{
    struct session_login *l = s->login;
    if (!config_pooling(s->cfg) || l->slot_reserved)
        return true;
    enum pool_reserve rc = pool_try_reserve(s, h);
    if (rc != POOL_RESERVED && rc != POOL_NO_MEMORY && pool_close_for(s, h, rc))
        rc = pool_try_reserve(s, h);
    switch (rc) {
    case POOL_RESERVED:
        pool_reserved(s, h);
        return true;
    case POOL_NO_MEMORY:
        session_fail_msg(s, "53200", "out of memory");
        return false;
    default:
        if (l->warming)
            session_close(s, "min_pool_size: the pool is full");
        else
            pool_wait(s, h, rc);
        return false;
    }
}

void pool_wait_stop(struct session *s)
{
    struct session_login *l = s->login;
    if (l == NULL || !l->waiting)
        return;
    l->waiting = false;
    pool_limits_wait(&s->w->shared->pool_limits, l->wait_key, -1);
}

/* A waiting client sent something before its login ended: not a PostgreSQL client. */
static void pool_wait_client_input(struct session *s)
{
    session_fail_msg(s, "08P01", "unexpected message from the client during its login");
}

void pool_wait_enter(struct session *s)
{
    struct session_login *l = s->login;
    log_debug(s->id, "waiting for a server connection: %s of region %s, database %s, user %s",
              l->wait_reason == POOL_FULL ? "pool_size reached" : "max_db_connections reached",
              s->region->name, s->database, s->user);
    int64_t waited_ms = (wall_clock_us() - l->wait_since_us) / 1000;
    int left = s->cfg->query_wait_timeout_ms - (int)waited_ms;
    session_set_timer(s, left > 0 ? left : 1);
    /* Not read, but watched: a client that gives up is seen at once. */
    endpoint_set_reader(&s->client, pool_wait_client_input);
    endpoint_pause_read(&s->client);
}

void pool_wait_timeout(struct session *s)
{
    struct session_login *l = s->login;
    char msg[160], detail[320];
    double waited = (double)(wall_clock_us() - l->wait_since_us) / 1e6;
    pool_wait_stop(s);
    if (l->wait_reason == POOL_FULL) {
        snprintf(msg, sizeof(msg), "no server connection free for database \"%s\", user \"%s\"",
                 s->database, s->user);
        int slice = pool_slice_of(s);
        snprintf(detail, sizeof(detail),
                 "The pool of region %s is full: its %d server connections (%s) were in use "
                 "for the %.1f s this client waited (query_wait_timeout).",
                 s->region->name, pool_slice_size(s, slice),
                 slice < 0 ? "pool_size" : "this worker's share of pool_size", waited);
    } else {
        snprintf(msg, sizeof(msg), "no server connection free on host %s:%d", l->wait_host->name,
                 l->wait_host->port);
        snprintf(detail, sizeof(detail),
                 "The host has %d server connections (max_db_connections), all in use for the "
                 "%.1f s this client waited (query_wait_timeout).",
                 s->cfg->max_db_connections, waited);
    }
    struct pg_error err;
    pg_error_set(&err, "53300", "%s", msg);
    pg_error_detail(&err, "%s", detail);
    pg_error_hint(&err,
                  "Raise pool_size or max_db_connections if the server can take more connections, "
                  "or make clients hold their sessions for less time.");
    session_fail(s, &err);
}

/*
 * The limit that refused a waiter in this walk of the waiting clients:
 * another waiter counted under the same key is refused by it too (nothing
 * in the walk frees a slot without waking the walk again), and is not
 * asked again: under transaction pooling a crowd waits at every
 * transaction's end, and each ask formats its keys and takes the lock.
 */
struct pool_refused {
    uint8_t reason; /* enum pool_reserve: POOL_FULL or POOL_HOST_FULL; 0: none yet */
    char key[POOL_KEY_MAX];
};

/* Its waiting client can go: a kept connection fits it, or a slot was reserved for it. */
static bool pool_waiter_may_go(struct session *s, struct pool_refused *refused)
{
    struct session_login *l = s->login;
    if (pool_find(s, s->region, l->wait_host, false) != NULL)
        return true;
    if (refused->reason != POOL_RESERVED && refused->reason == l->wait_key_kind &&
        strcmp(refused->key, l->wait_key) == 0)
        return false;
    enum pool_reserve rc = pool_try_reserve(s, l->wait_host);
    if (rc != POOL_RESERVED && rc != POOL_NO_MEMORY && pool_close_for(s, l->wait_host, rc))
        rc = pool_try_reserve(s, l->wait_host);
    if (rc != POOL_RESERVED) {
        if (rc == l->wait_key_kind) { /* its wait_key is the key of the limit that refused it */
            refused->reason = (uint8_t)rc;
            memcpy(refused->key, l->wait_key, sizeof(refused->key));
        }
        return false;
    }
    pool_reserved(s, l->wait_host);
    return true;
}

/* Idle connections whose slot a waiting client (of any worker) wants are closed. */
static void pool_shed_idle(struct worker *w)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->idle_servers)
    {
        if (__atomic_load_n(&w->shared->pool_limits.waiting, __ATOMIC_RELAXED) == 0)
            return;
        struct server_conn *sc = list_entry(pos, struct server_conn, node);
        char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
        pool_slice_key(pool, sc->region->name, sc->database, sc->user, sc->pool_slice);
        pool_host_key(host, sc->host->name, sc->host->port);
        if (pool_limits_has_waiters(&w->shared->pool_limits, pool) ||
            pool_limits_has_waiters(&w->shared->pool_limits, host))
            pool_close(sc, "a client waits for its slot");
    }
}

/* A connection may have freed up: waiting clients go on, oldest first, while they can. */
static void pool_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    struct pool_refused refused = {.reason = POOL_RESERVED};
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->waiting_sessions)
    {
        struct session *s = list_entry(pos, struct session, node);
        if (s->phase != PHASE_WAIT_SERVER || !pool_waiter_may_go(s, &refused))
            continue;
        pool_wait_stop(s);
        endpoint_set_reader(&s->client, NULL);
        endpoint_resume_read(&s->client);
        s->login->retry_host = s->login->wait_host;
        phase_done(s);
    }
    pool_shed_idle(w);
}

/* Closes the idle connections past server_idle_timeout or server_lifetime. */
static void pool_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    int64_t now = wall_clock_us();
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->idle_servers)
    {
        struct server_conn *sc = list_entry(pos, struct server_conn, node);
        const struct config *cfg = w->cfg;
        if (now - sc->idle_since >= (int64_t)cfg->server_idle_timeout_ms * 1000 &&
            !pool_warm_keeps(w, sc))
            pool_close(sc, "idle longer than server_idle_timeout");
        else if (now - sc->connect_time >= (int64_t)cfg->server_lifetime_ms * 1000)
            pool_close(sc, "older than server_lifetime");
    }
    int64_t reset_limit_us = w->cfg->server_connect_timeout_ms > 0
                                 ? 2 * (int64_t)w->cfg->server_connect_timeout_ms * 1000
                                 : 10000000;
    list_for_each_safe(pos, tmp, &w->used_servers)
    {
        struct server_conn *sc = list_entry(pos, struct server_conn, node);
        if (now - sc->idle_since >= reset_limit_us)
            pool_close(sc, "server_reset_query not answered in twice server_connect_timeout");
    }
    pool_warm_tick(w);
    if (w->idle_servers.count > 0 || w->used_servers.count > 0 || pool_warm_active(w))
        pool_arm_sweep(w);
}

int pool_init(struct worker *w)
{
    w->pool_timer = evtimer_new(w->base, pool_sweep, w);
    w->pool_wake = evtimer_new(w->base, pool_wake_cb, w);
    return w->pool_timer != NULL && w->pool_wake != NULL ? 0 : -1;
}

static void pool_close_list(struct list *l, const char *why)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, l) pool_close(list_entry(pos, struct server_conn, node), why);
}

void pool_close_idle(struct worker *w)
{
    pool_close_list(&w->used_servers, "pgnear is shutting down");
    pool_close_list(&w->idle_servers, "pgnear is shutting down");
}

void pool_free(struct worker *w)
{
    pool_close_idle(w);
    if (w->pool_timer != NULL)
        event_free(w->pool_timer);
    if (w->pool_wake != NULL)
        event_free(w->pool_wake);
    w->pool_timer = w->pool_wake = NULL;
}

static bool pool_in_region(const struct server_conn *sc, const char *region)
{
    return region == NULL || strcasecmp(sc->region->name, region) == 0;
}

/* The kept connections that match close now; those in use are closed when given back. */
static void pool_close_matching(struct worker *w, const char *region, const char *database,
                                const char *why, struct gate_pids *pids, int *closed, int *marked)
{
    struct list *kept[] = {&w->used_servers, &w->idle_servers};
    for (size_t i = 0; i < 2; i++) {
        struct list_node *pos, *tmp;
        list_for_each_safe(pos, tmp, kept[i])
        {
            struct server_conn *sc = list_entry(pos, struct server_conn, node);
            if (!pool_in_region(sc, region) || (database && strcmp(sc->database, database) != 0))
                continue;
            if (pids != NULL && sc->pid != 0)
                gate_pids_add(pids, (long)sc->pid);
            pool_close(sc, why);
            (*closed)++;
        }
    }
    struct list *in_use[] = {&w->login_servers, &w->active_servers};
    for (size_t i = 0; i < 2; i++) {
        struct list_node *pos, *tmp;
        list_for_each_safe(pos, tmp, in_use[i])
        {
            struct server_conn *sc = list_entry(pos, struct server_conn, node);
            if (pool_in_region(sc, region) && (!database || strcmp(sc->database, database) == 0) &&
                !sc->reconnect) {
                sc->reconnect = true;
                (*marked)++;
            }
        }
    }
}

void pool_reconnect(struct worker *w, const char *region, int *closed, int *marked)
{
    pool_close_matching(w, region, NULL, "RECONNECT", NULL, closed, marked);
}

void pool_retire_database(struct worker *w, const char *region, const char *database,
                          struct gate_pids *pids)
{
    int closed = 0, marked = 0;
    pool_close_matching(w, region, database, "its database is moving to another region", pids,
                        &closed, &marked);
}

static int pool_part_start(struct worker *w, char *err, size_t errcap)
{
    if (pool_init(w) == 0)
        return 0;
    snprintf(err, errcap, "could not create the pool timers of worker %d", w->index);
    return -1;
}

/* At drain too: a connection given back from then on is closed, not kept. */
const struct worker_part pool_part = {
    .name = "pool",
    .start = pool_part_start,
    .drain = pool_close_idle,
    .stop = pool_close_idle,
    .free = pool_free,
};
