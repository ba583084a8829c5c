/*
 * auth_lookup.h — auth_query on pgnear's own connections, kept open per
 * worker and reused, so that a login costs one query, not one connection.
 */
#ifndef PGNEAR_PROXY_AUTH_LOOKUP_H
#define PGNEAR_PROXY_AUTH_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "proxy/base/list.h"

struct config;
struct event;
struct event_base;
struct region;

/*
 * Connections open per worker and host+database, busy or idle: a login
 * storm queues for them rather than opening one per login and running the
 * server out of connections.  At most AUTH_LOOKUP_IDLE_MAX idle in all.
 */
#define AUTH_LOOKUP_CONNS_PER_KEY 4
#define AUTH_LOOKUP_IDLE_MAX      64
/* An idle connection unused this long is closed. */
#define AUTH_LOOKUP_IDLE_TIMEOUT_MS 60000

struct auth_lookup_pool {
    struct event_base *base;
    struct list idle;    /* struct auth_lookup_conn, oldest first */
    struct list busy;    /* struct auth_lookup with a query running */
    struct list waiting; /* struct auth_lookup queued for a connection, first come first */
    struct event *sweep;
    struct event *wake;   /* made active when a connection frees up for a waiter */
    unsigned long opened; /* connections opened, for the logs and tests */
    unsigned long reused; /* queries that ran on a kept connection */
};

/*
 * secret: the user's rolpassword, NULL when no such user; error: why the
 * lookup failed (secret is then NULL too).  Owned by the callee during
 * the call only.
 */
typedef void (*auth_lookup_done_fn)(void *arg, const char *secret, const char *error);

struct auth_lookup;

int auth_lookup_pool_init(struct auth_lookup_pool *p, struct event_base *base);
void auth_lookup_pool_close(struct auth_lookup_pool *p);
/* Closes the idle connections to database (it is being dropped, renamed or copied). */
void auth_lookup_close_database(struct auth_lookup_pool *p, const char *database);

/*
 * Looks user up with cfg->auth_query on a host of regions[0..nregions):
 * every up host first, in the regions' order, then those that are down,
 * on a kept connection when there is one.  cfg and the regions must
 * outlive the lookup; the array itself need not.  NULL: could not start
 * (error set; "no region ... has a host" when nregions is 0).
 */
struct auth_lookup *auth_lookup_start(struct auth_lookup_pool *p, const struct config *cfg,
                                      struct region *const *regions, size_t nregions,
                                      const char *dbname, const char *user, uint64_t client_id,
                                      auth_lookup_done_fn done, void *arg, char *error,
                                      size_t errcap);

/* The client went away: the callback is not called. */
void auth_lookup_cancel(struct auth_lookup *l);

#endif
