/*
 * auth_lookup.c — auth_query with kept connections.
 *
 * Opening a libpq connection (TCP, TLS, SCRAM) to look up one verifier
 * costs more than the client's own login; a connection storm would pay it
 * twice.  So each worker keeps a few idle connections per host and
 * database (its own: no locks) and runs the next lookup on one of them.
 * A kept connection that the server has closed is noticed while idle, or
 * at the latest when the lookup on it fails, and the lookup is then
 * retried once on a fresh connection to the same host.  Hosts are tried
 * healthy ones first, in the order of the regions given (the caller's,
 * nearest first), each region's in the configured order.  Each worker opens at most
 * AUTH_LOOKUP_CONNS_PER_KEY connections per host and database; further
 * lookups wait in line and are handed the next one that frees up.
 */
#include "proxy/base/auth_lookup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/pgconn.h"
#include "routing/region.h"

#define AUTH_LOOKUP_SWEEP_MS     5000
#define AUTH_LOOKUP_CONNINFO_MAX 2048

/* One idle kept connection. */
struct auth_lookup_conn {
    struct list_node node;
    struct auth_lookup_pool *pool;
    struct pgasync *q;
    char *key;       /* its conninfo (with a password: never logged) */
    char where[300]; /* host:port, for the log */
    char dbname[64]; /* the database it is connected to (auth_lookup_close_database) */
    uint64_t idle_since_ms;
};

struct auth_lookup {
    struct list_node node; /* on pool->busy or pool->waiting, or on none */
    struct list *on;       /* which */
    struct auth_lookup_pool *pool;
    const struct config *cfg;
    char *dbname;
    char *user;
    uint64_t client_id;
    const struct region_host **order; /* the hosts to ask: up ones first, regions in order */
    size_t norder;
    size_t next;                    /* next entry of order to try */
    const struct region_host *host; /* the host being asked */
    char key[AUTH_LOOKUP_CONNINFO_MAX];
    struct pgasync *q;
    bool reused; /* q was a kept connection */
    auth_lookup_done_fn done;
    void *arg;
    char error[512];
};

/* A connection closed or became idle: someone waiting may take it or open one. */
static void auth_lookup_wake(struct auth_lookup_pool *p)
{
    if (p->waiting.count > 0)
        event_active(p->wake, EV_TIMEOUT, 0);
}

/*
 * Forgets a kept connection (closing it unless its q was taken), and wakes a
 * waiter: there is room now.
 */
static void auth_lookup_conn_free(struct auth_lookup_conn *c)
{
    list_remove(&c->pool->idle, &c->node);
    pgasync_abandon(c->q);
    free(c->key);
    auth_lookup_wake(c->pool);
    free(c);
}

/* The server closed a kept connection while idle: it leaves the pool. */
static void auth_lookup_conn_closed(void *arg)
{
    struct auth_lookup_conn *c = arg;
    log_debug(0, "auth_query connection to %s closed by the server while idle", c->where);
    auth_lookup_conn_free(c);
}

/*
 * Every AUTH_LOOKUP_SWEEP_MS: kept connections idle longer than
 * AUTH_LOOKUP_IDLE_TIMEOUT_MS are closed.
 */
static void auth_lookup_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct auth_lookup_pool *p = arg;
    uint64_t now = (uint64_t)monotonic_ms();
    struct list_node *pos, *tmp;
    (void)fd;
    (void)what;
    list_for_each_safe(pos, tmp, &p->idle)
    {
        struct auth_lookup_conn *c = list_entry(pos, struct auth_lookup_conn, node);
        if (now - c->idle_since_ms >= AUTH_LOOKUP_IDLE_TIMEOUT_MS)
            auth_lookup_conn_free(c);
    }
}

static void auth_lookup_wake_cb(evutil_socket_t fd, short what, void *arg);

/*
 * One pool per worker, on its loop; -1 when its events cannot be made
 * (auth_lookup_pool_close frees what was).
 */
int auth_lookup_pool_init(struct auth_lookup_pool *p, struct event_base *base)
{
    memset(p, 0, sizeof(*p));
    p->base = base;
    list_init(&p->idle);
    list_init(&p->busy);
    list_init(&p->waiting);
    p->sweep = event_new(base, -1, EV_PERSIST, auth_lookup_sweep, p);
    p->wake = event_new(base, -1, 0, auth_lookup_wake_cb, p);
    struct timeval tv = {AUTH_LOOKUP_SWEEP_MS / 1000, 0};
    return p->sweep && p->wake && event_add(p->sweep, &tv) == 0 ? 0 : -1;
}

/* Closes the kept connections and the pool's events; safe on a pool never initialised. */
void auth_lookup_pool_close(struct auth_lookup_pool *p)
{
    struct list_node *pos, *tmp;
    if (p->base == NULL)
        return;
    list_for_each_safe(pos, tmp, &p->idle)
        auth_lookup_conn_free(list_entry(pos, struct auth_lookup_conn, node));
    if (p->sweep)
        event_free(p->sweep);
    if (p->wake)
        event_free(p->wake);
    p->sweep = p->wake = NULL;
}

void auth_lookup_close_database(struct auth_lookup_pool *p, const char *database)
{
    struct list_node *pos, *tmp;
    if (p->base == NULL)
        return;
    list_for_each_safe(pos, tmp, &p->idle)
    {
        struct auth_lookup_conn *c = list_entry(pos, struct auth_lookup_conn, node);
        if (strcmp(c->dbname, database) == 0)
            auth_lookup_conn_free(c);
    }
}

/* Is a connection made with this conninfo kept idle? */
static bool auth_lookup_has_idle(const struct auth_lookup_pool *p, const char *key)
{
    for (const struct list_node *n = p->idle.head.next; n != &p->idle.head; n = n->next)
        if (strcmp(list_entry(n, struct auth_lookup_conn, node)->key, key) == 0)
            return true;
    return false;
}

/* Takes an idle connection made with this conninfo out of the pool, newest first. */
static struct pgasync *auth_lookup_take_idle(struct auth_lookup_pool *p, const char *key)
{
    for (struct list_node *n = p->idle.head.prev; n != &p->idle.head; n = n->prev) {
        struct auth_lookup_conn *c = list_entry(n, struct auth_lookup_conn, node);
        if (strcmp(c->key, key) == 0) {
            struct pgasync *q = c->q;
            c->q = NULL;
            auth_lookup_conn_free(c);
            return q;
        }
    }
    return NULL;
}

/* Puts a connection whose query just ended back in the pool, if there is room. */
static void auth_lookup_keep(struct auth_lookup_pool *p, struct pgasync *q, const char *key,
                             const char *dbname, const struct region_host *h)
{
    size_t same = 0;
    struct list_node *n;
    for (n = p->idle.head.next; n != &p->idle.head; n = n->next)
        same += strcmp(list_entry(n, struct auth_lookup_conn, node)->key, key) == 0;
    if (same >= AUTH_LOOKUP_CONNS_PER_KEY || p->idle.count >= AUTH_LOOKUP_IDLE_MAX)
        return;
    struct auth_lookup_conn *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->key = strdup(key)) == NULL) {
        free(c);
        return;
    }
    c->pool = p;
    c->q = q;
    snprintf(c->where, sizeof(c->where), "%s:%d", h->name, h->port);
    snprintf(c->dbname, sizeof(c->dbname), "%s", dbname);
    c->idle_since_ms = (uint64_t)monotonic_ms();
    if (!pgasync_keep(q, auth_lookup_conn_closed, c)) {
        free(c->key);
        free(c);
        return;
    }
    list_append(&p->idle, &c->node);
}

/* Moves a lookup to the busy or the waiting list, or off both (NULL); on records where it is. */
static void auth_lookup_set_list(struct auth_lookup *l, struct list *to)
{
    if (l->on != NULL)
        list_remove(l->on, &l->node);
    l->on = to;
    if (to != NULL)
        list_append(to, &l->node);
}

/* Connections to this conninfo, busy or idle. */
static size_t auth_lookup_open_count(const struct auth_lookup_pool *p, const char *key)
{
    size_t n = 0;
    const struct list_node *i;
    for (i = p->idle.head.next; i != &p->idle.head; i = i->next)
        n += strcmp(list_entry(i, struct auth_lookup_conn, node)->key, key) == 0;
    for (i = p->busy.head.next; i != &p->busy.head; i = i->next)
        n += strcmp(list_entry(i, struct auth_lookup, node)->key, key) == 0;
    return n;
}

/* Frees a lookup, off any list; its connection, if any, was kept or abandoned before. */
static void auth_lookup_free(struct auth_lookup *l)
{
    auth_lookup_set_list(l, NULL);
    free(l->order);
    free(l->dbname);
    free(l->user);
    free(l);
}

static void auth_lookup_query_done(void *arg, const PGresult *res, const char *error,
                                   bool server_answered);

/* Starts the query on host l->host: on a kept connection unless fresh is asked for. */
static bool auth_lookup_ask(struct auth_lookup *l, bool fresh)
{
    const char *params[1] = {l->user};
    const struct config *cfg = l->cfg;
    int timeout_ms = cfg->server_connect_timeout_ms * 2;
    if (!fresh && (l->q = auth_lookup_take_idle(l->pool, l->key)) != NULL) {
        if (pgasync_requery(l->q, cfg->auth_query, 1, params, timeout_ms, auth_lookup_query_done,
                            l) == 0) {
            l->reused = true;
            l->pool->reused++;
            auth_lookup_set_list(l, &l->pool->busy);
            return true;
        }
        pgasync_abandon(l->q);
    }
    l->reused = false;
    if (!fresh && auth_lookup_open_count(l->pool, l->key) >= AUTH_LOOKUP_CONNS_PER_KEY) {
        if (l->on != &l->pool->waiting)
            log_debug(l->client_id, "auth_query: waiting for one of the %d connections to %s:%d",
                      AUTH_LOOKUP_CONNS_PER_KEY, l->host->name, l->host->port);
        auth_lookup_set_list(l, &l->pool->waiting);
        return true;
    }
    l->q = pgasync_query(l->pool->base, l->key, cfg->auth_query, 1, params, timeout_ms,
                         auth_lookup_query_done, l, l->error, sizeof(l->error));
    if (l->q == NULL)
        return false;
    auth_lookup_set_list(l, &l->pool->busy);
    l->pool->opened++;
    log_debug(l->client_id, "auth_query: new connection to %s:%d of region %s", l->host->name,
              l->host->port, l->host->region->name);
    return true;
}

/* The next host in order; false when every host has been tried. */
static bool auth_lookup_next_host(struct auth_lookup *l)
{
    while (l->next < l->norder) {
        l->host = l->order[l->next++];
        if (!pgconn_conninfo(l->cfg, l->host, l->dbname, "pgnear auth_query", l->key,
                             sizeof(l->key))) {
            snprintf(l->error, sizeof(l->error), "conninfo too long");
            continue;
        }
        if (auth_lookup_ask(l, false))
            return true;
    }
    return false;
}

/*
 * pgasync's answer: the secret (or the server's refusal, which another host
 * would repeat) to the caller; a lost connection tries again, then the next
 * host; the lookup ends here unless it goes on.
 */
static void auth_lookup_query_done(void *arg, const PGresult *res, const char *error,
                                   bool server_answered)
{
    struct auth_lookup *l = arg;
    struct pgasync *q = l->q;
    const struct region_host *h = l->host;
    (void)server_answered;
    l->q = NULL;
    auth_lookup_set_list(l, NULL);
    /* Whatever becomes of this connection, a waiter may now take it or open one. */
    auth_lookup_wake(l->pool);
    if (error == NULL) {
        const char *secret = NULL;
        if (PQntuples(res) > 0 && PQnfields(res) >= 2 && !PQgetisnull(res, 0, 1))
            secret = PQgetvalue(res, 0, 1);
        auth_lookup_keep(l->pool, q, l->key, l->dbname, h);
        l->done(l->arg, secret, NULL);
        auth_lookup_free(l);
        return;
    }
    if (pgasync_connection_ok(q)) {
        /* The server ran the query and refused it: another host would too. */
        auth_lookup_keep(l->pool, q, l->key, l->dbname, h);
        l->done(l->arg, NULL, error);
        auth_lookup_free(l);
        return;
    }
    snprintf(l->error, sizeof(l->error), "%s:%d: %s", h->name, h->port, error);
    if (l->reused) {
        log_debug(l->client_id, "auth_query: kept connection to %s:%d was lost (%s), reconnecting",
                  h->name, h->port, error);
        if (auth_lookup_ask(l, true))
            return;
    } else {
        log_warn(l->client_id, "auth_query on %s:%d of region %s failed: %s", h->name, h->port,
                 h->region->name, error);
    }
    if (auth_lookup_next_host(l))
        return;
    l->done(l->arg, NULL, l->error);
    auth_lookup_free(l);
}

/* The hosts of regions[] to ask, up ones first; each group in the regions' order. */
static bool auth_lookup_order(struct auth_lookup *l, struct region *const *regions, size_t nregions)
{
    if (nregions == 0)
        return true;
    size_t cap = nregions * REGION_MAX_HOSTS;
    if ((l->order = calloc(cap, sizeof(*l->order))) == NULL)
        return false;
    l->norder = pgconn_hosts((const struct region *const *)regions, nregions, PGCONN_UP_FIRST,
                             l->order, cap);
    return true;
}

struct auth_lookup *auth_lookup_start(struct auth_lookup_pool *p, const struct config *cfg,
                                      struct region *const *regions, size_t nregions,
                                      const char *dbname, const char *user, uint64_t client_id,
                                      auth_lookup_done_fn done, void *arg, char *error,
                                      size_t errcap)
{
    struct auth_lookup *l = calloc(1, sizeof(*l));
    if (l == NULL || (l->dbname = strdup(dbname)) == NULL || (l->user = strdup(user)) == NULL ||
        !auth_lookup_order(l, regions, nregions)) {
        if (l)
            auth_lookup_free(l);
        snprintf(error, errcap, "out of memory");
        return NULL;
    }
    l->pool = p;
    l->cfg = cfg;
    l->client_id = client_id;
    l->done = done;
    l->arg = arg;
    snprintf(l->error, sizeof(l->error), "no region that takes sessions has a host");
    if (!auth_lookup_next_host(l)) {
        snprintf(error, errcap, "%s", l->error);
        auth_lookup_free(l);
        return NULL;
    }
    return l;
}

void auth_lookup_cancel(struct auth_lookup *l)
{
    if (l == NULL)
        return;
    if (l->q != NULL) {
        pgasync_abandon(l->q);
        auth_lookup_wake(l->pool);
    }
    auth_lookup_free(l);
}

/* Waiters, first come first: a kept connection, or a slot to open one. */
static void auth_lookup_wake_cb(evutil_socket_t fd, short what, void *arg)
{
    struct auth_lookup_pool *p = arg;
    struct list_node *pos, *tmp;
    (void)fd;
    (void)what;
    list_for_each_safe(pos, tmp, &p->waiting)
    {
        struct auth_lookup *l = list_entry(pos, struct auth_lookup, node);
        if (auth_lookup_open_count(p, l->key) >= AUTH_LOOKUP_CONNS_PER_KEY &&
            !auth_lookup_has_idle(p, l->key))
            continue;
        auth_lookup_set_list(l, NULL);
        if (auth_lookup_ask(l, false) || auth_lookup_next_host(l))
            continue;
        l->done(l->arg, NULL, l->error);
        auth_lookup_free(l);
    }
}
