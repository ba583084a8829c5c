/*
 * pool_wait.c — pool_size, max_db_connections and max_user_connections:
 * the connections counted against them, and the clients that wait when
 * one is reached.
 */
#include "proxy/pool/pool_wait.h"

#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/pg_error.h"
#include "protocol/pkt.h"
#include "protocol/sock.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/pool_limits.h"
#include "proxy/pool/pool_idle.h"
#include "proxy/pool/pool_take.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/fetch.h"
#include "proxy/session/gate.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/txn_fetch.h"
#include "routing/health.h"
#include "routing/need.h"
#include "routing/region.h"

/* At most one line per pool (or host) per interval says that clients wait for it. */
#define POOL_WAIT_LOG_INTERVAL_MS 10000

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
    w->server_waiters_recheck = true; /* a slot freed, or a client waits for one */
    event_active(w->pool_wake, EV_TIMEOUT, 0);
    return 0;
}

/* Every worker looks at its waiting clients, and at its idle connections others wait for. */
static void pool_wake_all(struct worker *w)
{
    if (worker_call_all(w, pool_wake_soon, NULL, NULL, NULL) != 0)
        log_warn(0, "out of memory waking the clients waiting for a server connection");
}

/* A server login's round trips: connect, startup, SCRAM's two; TLS's request and handshake. */
#define LOGIN_ROUND_TRIPS     4
#define LOGIN_TLS_ROUND_TRIPS 2

void pool_logged_in(struct server_conn *sc)
{
    /* Timed for how many logins to its host may overlap (pool_growing). */
    health_note_login_time(sc->host, wall_clock_us() - sc->connect_time,
                           sock_tcp_rtt_us(sc->ep.stream.fd),
                           LOGIN_ROUND_TRIPS + (sc->tls ? LOGIN_TLS_ROUND_TRIPS : 0));
    /* Transactions that waited while their pool grew look again. */
    if (sc->w->server_waiters.count > 0)
        pool_wake_soon(sc->w, NULL);
}

void pool_uncount(struct server_conn *sc)
{
    char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
    pool_slice_key(pool, sc->region->name, sc->database, sc->user, sc->pool_slice);
    pool_host_key(host, sc->host->name, sc->host->port);
    if (pool_limits_release(&sc->w->shared->pool_limits, pool, host))
        pool_wake_all(sc->w);
}

/* max_user_connections for s: its sections', else the setting. */
static int pool_user_limit(const struct session *s)
{
    return config_section_value(s->cfg, SECTION_MAX_USER_CONNECTIONS, s->user, s->database);
}

static enum pool_reserve pool_try_reserve(const struct session *s, const struct region_host *h)
{
    char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
    int slice = pool_slice_of(s);
    pool_session_keys(s, h, slice, pool, host);
    return pool_limits_reserve_user(&s->w->shared->pool_limits, pool, host,
                                    pool_slice_size(s, slice), s->cfg->max_db_connections,
                                    pool_user_limit(s));
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
static struct server_conn *pool_idle_holding(const struct session *s, const struct region_host *h,
                                             enum pool_reserve rc)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->w->idle_servers)
    {
        struct server_conn *sc = list_entry(pos, struct server_conn, node);
        /* The same registry entry: name, port and address (a name DNS moved is another). */
        bool same_host = sc->host->runtime == h->runtime && sc->host->port == h->port &&
                         strcmp(sc->host->name, h->name) == 0;
        bool same_pool = strcmp(sc->region->name, s->region->name) == 0 &&
                         strcmp(sc->database, s->database) == 0 && strcmp(sc->user, s->user) == 0;
        bool same_user = same_host && strcmp(sc->user, s->user) == 0;
        if (rc == POOL_FULL ? same_pool : rc == POOL_USER_FULL ? same_user : same_host)
            return sc;
    }
    return NULL;
}

static bool pool_close_for(struct session *s, const struct region_host *h, enum pool_reserve rc)
{
    struct server_conn *sc = pool_idle_holding(s, h, rc);
    if (sc == NULL)
        return false;
    pool_close(sc, "its slot is wanted by a client with other startup parameters");
    return true;
}

/* The line that says clients wait for a full pool or host: one per pool or host per interval. */
static void pool_wait_log(const struct session *s, const struct region_host *h,
                          enum pool_reserve rc, const struct pool_wait_report *r)
{
    char what[400];
    if (rc == POOL_HOST_FULL)
        snprintf(what, sizeof(what), "max_db_connections (%d) reached on host %s:%d of region %s",
                 s->cfg->max_db_connections, h->name, h->port, s->region->name);
    else if (rc == POOL_USER_FULL)
        snprintf(what, sizeof(what), "max_user_connections (%d) reached for user %s on host %s:%d",
                 pool_user_limit(s), s->user, h->name, h->port);
    else
        snprintf(what, sizeof(what), "pool_size (%d) reached for region %s, database %s, user %s",
                 config_pool_size(s->cfg, pool_mode_of(s)), s->region->name, s->database, s->user);
    slog_warn(s,
              "%s: %d client%s waiting for a server connection (%d began waiting since the last "
              "report); a client still waiting after query_wait_timeout (%g s) gets 53300",
              what, r->waiting, r->waiting == 1 ? "" : "s", r->began,
              s->cfg->query_wait_timeout_ms / 1000.0);
}

/* s begins waiting, counted under key: the log says so, at most once an interval per key. */
static void pool_wait_count(struct session *s, const char *key, const struct region_host *h,
                            enum pool_reserve rc)
{
    struct pool_wait_report report;
    if (pool_limits_wait_report(&s->w->shared->pool_limits, key, monotonic_ms(),
                                POOL_WAIT_LOG_INTERVAL_MS, &report))
        pool_wait_log(s, h, rc, &report);
}

/* ---- the one queue: logins and transactions waiting, in arrival order ---- */

/* The queue's timer goes off at until_ms (monotonic_ms; 0: none) unless it does sooner. */
static void pool_queue_timer_at(struct worker *w, int64_t until_ms)
{
    if (until_ms == 0 || (w->server_wait_timer_ms != 0 && w->server_wait_timer_ms <= until_ms))
        return;
    int64_t ms = until_ms - monotonic_ms();
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (evtimer_add(w->server_wait_timer, &tv) == 0)
        w->server_wait_timer_ms = until_ms;
}

/*
 * When s's client, waiting since since_us, is due its NOTICE
 * (query_wait_notify; monotonic_ms): 0 when off, or when query_wait_timeout
 * (until_ms) comes first.  Due to every waiter alike: whether its client
 * may be told is looked at then (pool_wait_notify).  The worker's config,
 * not the session's: a wait that begins after a reload follows it.
 */
static int64_t pool_notify_at(const struct session *s, int64_t since_us, int64_t until_ms)
{
    int notify = s->w->cfg->query_wait_notify_ms;
    if (notify <= 0)
        return 0;
    int64_t left = notify - (wall_clock_us() - since_us) / 1000;
    int64_t at = monotonic_ms() + (left > 0 ? left : 1);
    return until_ms != 0 && at >= until_ms ? 0 : at;
}

/*
 * s takes its turn at the end of the queue, its client waiting since
 * since_us: it gets 53300 once that is query_wait_timeout ago.  A login
 * gets it at once when query_wait_timeout is 0; a transaction then waits
 * on (as each did with a timer of its own).
 */
static void pool_queue_join(struct session *s, int64_t since_us, bool login)
{
    struct wait_turn *t = session_turn(s);
    int timeout = s->cfg->query_wait_timeout_ms;
    int64_t left = timeout - (wall_clock_us() - since_us) / 1000;
    if (t->queued)
        return;
    t->queued = true;
    t->session = s;
    t->since_us = since_us;
    t->until_ms = timeout > 0 || login ? monotonic_ms() + (left > 0 ? left : 1) : 0;
    t->notify_ms = pool_notify_at(s, since_us, t->until_ms);
    list_append(&s->w->server_waiters, &t->node);
    pool_queue_timer_at(s->w, t->notify_ms != 0 ? t->notify_ms : t->until_ms);
}

static void pool_queue_leave(struct session *s)
{
    struct wait_turn *t = session_turn(s);
    if (t == NULL || !t->queued)
        return;
    t->queued = false;
    list_remove(&s->w->server_waiters, &t->node);
}

static void pool_wait(struct session *s, struct region_host *h, enum pool_reserve rc)
{
    struct session_login *l = s->login;
    l->pool_wait.host = h;
    l->pool_wait.reason = (uint8_t)rc;
    if (!l->pool_wait.waiting) {
        /* Counted under what it waits for: its pool, or its host when that is what is full. */
        if (rc == POOL_HOST_FULL)
            pool_host_key(l->pool_wait.key, h->name, h->port);
        else if (rc == POOL_USER_FULL)
            pool_user_key(l->pool_wait.key, s->user, h->name, h->port);
        else
            pool_slice_key(l->pool_wait.key, s->region->name, s->database, s->user,
                           pool_slice_of(s));
        l->pool_wait.key_kind = (uint8_t)rc;
        l->pool_wait.waiting = true;
        /* A transaction that waited without a fetcher first (txn_fetch.c) waits since then. */
        pool_queue_join(s, l->wait_began_us != 0 ? l->wait_began_us : wall_clock_us(), true);
        l->wait_began_us = 0;
        pool_wait_count(s, l->pool_wait.key, h, rc);
    }
    phase_enter(s, PHASE_WAIT_SERVER);
    /* Idle connections of other workers hold slots: they give them up (pool_wake_cb). */
    pool_wake_all(s->w);
}

bool pool_queued(const struct session *s, const struct region *r)
{
    if (__atomic_load_n(&s->w->shared->pool_limits.waiting, __ATOMIC_RELAXED) == 0 ||
        s->w->server_waiters.count == 0)
        return false;
    char pool[POOL_KEY_MAX];
    pool_slice_key(pool, r->name, s->database, s->user, pool_slice_of(s));
    return pool_limits_waiting(&s->w->shared->pool_limits, pool) > 0;
}

/*
 * Whether s's pool, on this worker, grows as fast as h allows: as many of
 * its connections logging in here as logins to h may overlap
 * (health_logins_at_once: one at a time to a near host).
 */
static bool pool_growing(const struct session *s, const struct region_host *h, int slice)
{
    unsigned at_once = health_logins_at_once(h), logging_in = 0;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->w->login_servers)
    {
        const struct server_conn *sc = list_entry(pos, struct server_conn, node);
        if (sc->counted && sc->pool_slice == slice &&
            strcmp(sc->region->name, s->region->name) == 0 &&
            strcmp(sc->database, s->database) == 0 && strcmp(sc->user, s->user) == 0 &&
            ++logging_in >= at_once)
            return true;
    }
    return false;
}

bool pool_txn_wait(struct session *s, struct region_host *h, bool join)
{
    int slice = pool_slice_of(s);
    /*
     * An idle connection of the pool is the fetcher's: due for its check,
     * it checks it; with other startup parameters, it closes it for the
     * slot (pool_close_for).  Another worker's would have to be shed.
     * One that clients already queued for will be theirs (pool_queued).
     */
    if (s->cfg->server_check_delay_ms == 0 || (slice < 0 && s->w->shared->nworkers > 1) ||
        (pool_idle_holding(s, h, POOL_FULL) != NULL && !(join && pool_queued(s, s->region))))
        return false;
    char pool[POOL_KEY_MAX], host[POOL_KEY_MAX];
    pool_session_keys(s, h, slice, pool, host);
    enum pool_reserve rc = pool_limits_full(&s->w->shared->pool_limits, pool, host,
                                            pool_slice_size(s, slice), s->cfg->max_db_connections);
    bool growing = rc == POOL_RESERVED && pool_growing(s, h, slice);
    if (rc != POOL_FULL && !growing)
        return false;
    if (join) {
        pool_queue_join(s, wall_clock_us(), false);
        if (growing) /* counted as waiting (pool_queued), but no limit is reached to say so */
            pool_limits_wait(&s->w->shared->pool_limits, pool, 1);
        else
            pool_wait_count(s, pool, h, POOL_FULL);
    }
    return true;
}

void pool_txn_wait_end(struct session *s)
{
    char pool[POOL_KEY_MAX];
    pool_queue_leave(s);
    pool_slice_key(pool, s->txn_next->spot.region->name, s->database, s->user, pool_slice_of(s));
    pool_limits_wait(&s->w->shared->pool_limits, pool, -1);
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
    if (l == NULL || !l->pool_wait.waiting)
        return;
    l->pool_wait.waiting = false;
    pool_queue_leave(s);
    pool_limits_wait(&s->w->shared->pool_limits, l->pool_wait.key, -1);
}

/* A waiting client sent something before its login ended: not a PostgreSQL client. */
static void pool_wait_client_input(struct session *s)
{
    session_fail_msg(s, "08P01", "unexpected message from the client during its login");
}

void pool_wait_enter(struct session *s)
{
    struct session_login *l = s->login;
    slog_debug(s, "waiting for a server connection: %s of region %s, database %s, user %s",
               l->pool_wait.reason == POOL_FULL        ? "pool_size reached"
               : l->pool_wait.reason == POOL_USER_FULL ? "max_user_connections reached"
                                                       : "max_db_connections reached",
               s->region->name, s->database, s->user);
    session_set_timer(s, 0); /* the queue's timer is its query_wait_timeout (pool_queue_join) */
    /* Not read, but watched: a client that gives up is seen at once. */
    endpoint_set_reader(&s->client, pool_wait_client_input);
    endpoint_pause_read(&s->client);
}

/*
 * Why a client of s waits for a connection of its pool in region r (at
 * host h): the pool is full, or grows as fast as h allows (pool_growing).
 */
static void pool_size_why(const struct session *s, const struct region *r,
                          const struct region_host *h, bool still, char detail[320])
{
    int slice = pool_slice_of(s), size = pool_slice_size(s, slice);
    const char *limit = slice < 0 ? "pool_size" : "this worker's share of pool_size";
    char pool[POOL_KEY_MAX];
    pool_slice_key(pool, r->name, s->database, s->user, slice);
    int open = pool_limits_servers(&s->w->shared->pool_limits, pool);
    if (open < size && h != NULL) {
        unsigned at_once = health_logins_at_once(h);
        snprintf(detail, 320,
                 "The pool of region %s %s growing, %u login%s at a time to host %s:%d (SHOW "
                 "RTT's logins_at_once), and %s %d of its %d server connections (%s)",
                 r->name, still ? "is" : "was", at_once, at_once == 1 ? "" : "s", h->name, h->port,
                 still ? "holds" : "held", open, size, limit);
    } else {
        snprintf(detail, 320,
                 "The pool of region %s is full: its %d server connections (%s) %s in use", r->name,
                 size, limit, still ? "are" : "were");
    }
}

/*
 * Why a client of s waits for a connection to h of region r, full by
 * reason: the message of its 53300 (which names the pool or the host),
 * and the start of its detail, with the limit and its number, said of
 * a client that still waits, else of one that waited.
 */
static void pool_wait_why(const struct session *s, const struct region *r,
                          const struct region_host *h, enum pool_reserve reason, bool still,
                          char msg[160], char detail[320])
{
    if (reason == POOL_FULL) {
        snprintf(msg, 160, "no server connection free for database \"%s\", user \"%s\"",
                 s->database, s->user);
        pool_size_why(s, r, h, still, detail);
    } else if (reason == POOL_USER_FULL) {
        snprintf(msg, 160, "no server connection free for user \"%s\" on host %s:%d", s->user,
                 h->name, h->port);
        snprintf(detail, 320,
                 "The user has %d server connections to the host (max_user_connections), all in "
                 "use",
                 pool_user_limit(s));
    } else {
        snprintf(msg, 160, "no server connection free on host %s:%d", h->name, h->port);
        snprintf(detail, 320, "The host has %d server connections (max_db_connections), all in use",
                 s->cfg->max_db_connections);
    }
}

/*
 * The one answer to a client that waited past query_wait_timeout for a
 * connection to h of region r, full by reason: 53300 naming the pool or
 * the host.
 */
static void pool_wait_error(const struct session *s, const struct region *r,
                            const struct region_host *h, enum pool_reserve reason,
                            struct pg_error *err)
{
    char msg[160], detail[320];
    double waited = (double)(wall_clock_us() - session_turn(s)->since_us) / 1e6;
    pool_wait_why(s, r, h, reason, false, msg, detail);
    pg_error_set(err, "53300", "%s", msg);
    pg_error_detail(err, "%s for the %.1f s this client waited (query_wait_timeout).", detail,
                    waited);
    pg_error_hint(err,
                  "Raise pool_size, max_db_connections or max_user_connections if the server can "
                  "take more connections, or make clients hold their sessions for less time.");
}

/* ---- query_wait_notify: one NOTICE to a client that has waited that long ---- */

/*
 * The session whose client waits for waiter s and may be told now, or
 * NULL.  A transaction waiting in the queue is its own; a fetcher's is
 * its owner's when its ops name one (transaction pooling's).  A login is
 * never told: no AuthenticationOk has gone to its client yet, and before
 * it libpq takes nothing but an authentication request or an error (a
 * NoticeResponse fails the login: "expected authentication request from
 * server").  Nor is a client with a server connection attached: a relayed
 * message might be half written to it.
 */
static struct session *pool_waiter_client(struct session *s)
{
    struct session *c = NULL;
    if (txn_next_queued(s))
        c = s;
    else if ((s->phase == PHASE_WAIT_SERVER || s->phase == PHASE_WAIT_ROLE) &&
             s->login->fetch != NULL && s->login->fetch->waiting_client != NULL)
        c = s->login->fetch->waiting_client(s->login->fetch_arg);
    if (c == NULL || c->phase != PHASE_ACTIVE || c->server_conn != NULL)
        return NULL;
    return c;
}

/*
 * The NOTICE for waiter s: where it waits (a transaction's region and
 * host, else its login's), and why: a hold of the region (PAUSE, a
 * migration's or a move's), else the limit that is full.
 */
static void pool_wait_notice(const struct session *s, struct pg_error *e)
{
    bool txn = txn_next_queued(s);
    const struct region *r = txn ? s->txn_next->spot.region : s->region;
    const struct region_host *h = txn ? s->txn_next->spot.host : s->login->pool_wait.host;
    enum pool_reserve reason = txn ? POOL_FULL : (enum pool_reserve)s->login->pool_wait.reason;
    char msg[160], detail[320];
    double waited = (double)(wall_clock_us() - session_turn(s)->since_us) / 1e6;
    uint8_t held = gate_reasons_for(s, r);
    if (held != 0) { /* what keeps it waiting now: the hold, whether or not the pool is full */
        snprintf(msg, sizeof(msg), "the region is %s",
                 held & HOLD_PAUSE ? "paused (PAUSE)" : "held for a migration or a move");
        snprintf(detail, sizeof(detail), "Its clients wait until %s",
                 held & HOLD_PAUSE ? "an administrator lets it go (RESUME)" : "the hold ends");
    } else {
        pool_wait_why(s, r, h, reason, true, msg, detail);
    }
    pg_error_set(e, "00000", "waiting for a server connection of region %s: %s", r->name, msg);
    pg_error_detail(e,
                    "%s. This client has waited %.1f s; after query_wait_timeout (%g s) it gets "
                    "an error.",
                    detail, waited, s->cfg->query_wait_timeout_ms / 1000.0);
}

/* c's client is told e, a NOTICE, between two messages. */
static void pool_wait_tell(struct session *c, const struct pg_error *e)
{
    uint8_t buf[1600];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pg_error_put(&pb, 'N', "NOTICE", e);
    if (!pkt_ok(&pb))
        return;
    log_debug(c->id, "told the client why it waits: %s", e->message);
    c->busy++;
    endpoint_send(c, &c->client, buf, pb.len); /* a failure closes the session */
    session_callback_done(c);
}

/* Waiter s is due its NOTICE: its client is told why it waits, once a wait. */
static void pool_wait_notify(struct session *s)
{
    struct session *c = pool_waiter_client(s);
    struct wait_turn *told = c != NULL ? session_turn(c) : NULL;
    int64_t since = session_turn(s)->since_us;
    if (told == NULL || told->told_since_us == since)
        return;
    told->told_since_us = since;
    struct pg_error e;
    pool_wait_notice(s, &e);
    pool_wait_tell(c, &e);
}

void pool_wait_role_tick(struct session *s)
{
    struct session_login *l = s->login;
    int notify = s->w->cfg->query_wait_notify_ms;
    if (notify <= 0 || l->role_wait_told || l->need_wait_until_ms == 0)
        return; /* (a wait for a standby to replay pgnear.min_lsn has no failover_wait) */
    int64_t waited = monotonic_ms() - (l->need_wait_until_ms - s->cfg->failover_wait_ms);
    struct session *c = waited >= notify ? pool_waiter_client(s) : NULL;
    if (c == NULL)
        return;
    l->role_wait_told = true;
    struct pg_error e;
    pg_error_set(&e, "00000",
                 "waiting for a server connection of region %s: no server that is %s is available",
                 l->plan_len > 0 ? l->plan[0]->name : s->region->name, need_name(s->need.role));
    pg_error_detail(&e,
                    "The session waits up to failover_wait (%g s) for one, a standby promoted or "
                    "a server back. This client has waited %.1f s.",
                    s->cfg->failover_wait_ms / 1000.0, waited / 1000.0);
    pool_wait_tell(c, &e);
}

/*
 * s waited past query_wait_timeout: it gets 53300, a login and a
 * transaction alike (one closing already only leaves the queue).
 */
static void pool_wait_expired(struct session *s)
{
    struct pg_error err;
    s->busy++;
    if (txn_next_queued(s)) {
        pool_wait_error(s, s->txn_next->spot.region, s->txn_next->spot.host, POOL_FULL, &err);
        txn_wait_give_up(s, &err);
    } else if (s->phase == PHASE_WAIT_SERVER) {
        struct session_login *l = s->login;
        pool_wait_error(s, s->region, l->pool_wait.host, (enum pool_reserve)l->pool_wait.reason,
                        &err);
        pool_wait_stop(s);
        session_fail(s, &err);
    } else {
        pool_wait_stop(s); /* a login closing already */
    }
    pool_queue_leave(s); /* out of the queue whatever happened: the walk goes on */
    session_callback_done(s);
}

/* The earlier of two instants, 0 meaning none. */
static int64_t pool_earlier(int64_t a, int64_t b)
{
    return a == 0 || (b != 0 && b < a) ? b : a;
}

/*
 * The place of the first waiter whose query_wait_timeout or
 * query_wait_notify is past, or NULL and *next: the earliest of them to
 * come.
 */
static struct wait_turn *pool_queue_due(struct worker *w, int64_t now, int64_t *next)
{
    struct list_node *pos, *tmp;
    *next = 0;
    list_for_each_safe(pos, tmp, &w->server_waiters)
    {
        struct wait_turn *t = list_entry(pos, struct wait_turn, node);
        int64_t at = pool_earlier(t->until_ms, t->notify_ms);
        if (at != 0 && at <= now)
            return t;
        *next = pool_earlier(*next, at);
    }
    return NULL;
}

/*
 * The queue's timer: those past query_wait_timeout get 53300, those past
 * query_wait_notify a NOTICE, one at a time (the failure of one may end
 * others: the walk starts again).
 */
static void pool_queue_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    struct wait_turn *t;
    int64_t next, now;
    w->server_wait_timer_ms = 0;
    while ((t = pool_queue_due(w, now = monotonic_ms(), &next)) != NULL) {
        struct session *s = t->session;
        if (t->notify_ms != 0 && t->notify_ms <= now) {
            t->notify_ms = 0; /* first: telling the client may end s */
            pool_wait_notify(s);
        } else {
            pool_wait_expired(s);
        }
    }
    pool_queue_timer_at(w, next);
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
    if (pool_find(s, s->region, l->pool_wait.host, false) != NULL)
        return true;
    if (refused->reason != POOL_RESERVED && refused->reason == l->pool_wait.key_kind &&
        strcmp(refused->key, l->pool_wait.key) == 0)
        return false;
    enum pool_reserve rc = pool_try_reserve(s, l->pool_wait.host);
    if (rc != POOL_RESERVED && rc != POOL_NO_MEMORY && pool_close_for(s, l->pool_wait.host, rc))
        rc = pool_try_reserve(s, l->pool_wait.host);
    if (rc != POOL_RESERVED) {
        if (rc ==
            l->pool_wait.key_kind) { /* its wait_key is the key of the limit that refused it */
            refused->reason = (uint8_t)rc;
            memcpy(refused->key, l->pool_wait.key, sizeof(refused->key));
        }
        return false;
    }
    pool_reserved(s, l->pool_wait.host);
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
        char pool[POOL_KEY_MAX], host[POOL_KEY_MAX], user[POOL_KEY_MAX];
        pool_slice_key(pool, sc->region->name, sc->database, sc->user, sc->pool_slice);
        pool_host_key(host, sc->host->name, sc->host->port);
        pool_user_key(user, sc->user, sc->host->name, sc->host->port);
        if (pool_limits_has_waiters(&w->shared->pool_limits, pool) ||
            pool_limits_has_waiters(&w->shared->pool_limits, host) ||
            pool_limits_has_waiters(&w->shared->pool_limits, user))
            pool_close(sc, "a client waits for its slot");
    }
}

/* The login s, woken with a connection or a slot for it, goes on to CONNECT. */
static void pool_waiter_go(struct session *s)
{
    pool_wait_stop(s);
    endpoint_set_reader(&s->client, NULL);
    endpoint_resume_read(&s->client);
    s->login->retry_host = s->login->pool_wait.host;
    phase_done(s);
}

/*
 * A connection may have freed up: the queue's clients, logins and
 * transactions alike, go on in arrival order while they can.
 */
static void pool_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    struct pool_refused refused = {.reason = POOL_RESERVED};
    struct session *full_for = NULL;
    bool recheck = w->server_waiters_recheck;
    w->server_waiters_recheck = false;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->server_waiters)
    {
        /*
         * Nothing idle left and no slot freed: nobody further on can go
         * (a login too takes an idle connection, or closes one for its
         * slot).  A crowd's queue is long, and is woken at each give-back.
         */
        if (!recheck && w->idle_servers.count == 0)
            break;
        struct session *s = list_entry(pos, struct wait_turn, node)->session;
        if (txn_next_queued(s))
            txn_wait_serve(s, recheck, &full_for);
        else if (s->phase == PHASE_WAIT_SERVER && pool_waiter_may_go(s, &refused))
            pool_waiter_go(s);
    }
    pool_shed_idle(w);
}

int pool_wait_init(struct worker *w)
{
    w->pool_wake = evtimer_new(w->base, pool_wake_cb, w);
    w->server_wait_timer = evtimer_new(w->base, pool_queue_timer_cb, w);
    return w->pool_wake != NULL && w->server_wait_timer != NULL ? 0 : -1;
}

void pool_wait_free(struct worker *w)
{
    if (w->server_wait_timer != NULL)
        event_free(w->server_wait_timer);
    w->server_wait_timer = NULL;
    if (w->pool_wake != NULL)
        event_free(w->pool_wake);
    w->pool_wake = NULL;
}
