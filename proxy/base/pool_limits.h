/*
 * pool_limits.h — server connections counted across workers, for
 * pool_size (per region, database and user), max_db_connections (per
 * host) and max_user_connections (per user and host).
 *
 * Pools live on each worker (pool.h), but a limit protects a server from
 * all of pgnear: the counts are shared, under one lock taken only as a
 * connection opens or closes and as a client starts or stops waiting —
 * never per message.  A count whose connections are all gone and that
 * nobody waits for is removed, so the table holds what is in use.
 */
#ifndef PGNEAR_PROXY_POOL_LIMITS_H
#define PGNEAR_PROXY_POOL_LIMITS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/base/count_table.h"

/* region, database and user; or host:port; or user and host:port */
#define POOL_KEY_MAX 200

struct pool_count {
    char key[POOL_KEY_MAX]; /* first: count_table keys it */
    int servers;            /* connections open or opening */
    int waiting;            /* clients waiting for one */
    int began;              /* clients that began waiting since the last report */
    bool reported;          /* a report was made, at reported_ms */
    int64_t reported_ms;    /* (monotonic) */
};

struct pool_limits {
    pthread_mutex_t lock;
    struct count_table counts; /* of struct pool_count: pools, hosts and users on hosts */
    int waiting;               /* clients waiting, all pools (read without the lock as a hint) */
};

int pool_limits_init(struct pool_limits *pl);
void pool_limits_free(struct pool_limits *pl);

/* The keys of a pool and of a host. */
void pool_key(char *out, const char *region, const char *database, const char *user);
void pool_host_key(char *out, const char *host, int port);

/* What pool_limits_reserve found. */
enum pool_reserve {
    POOL_RESERVED,  /* counted: the connection may be opened */
    POOL_FULL,      /* pool_size reached */
    POOL_HOST_FULL, /* max_db_connections reached */
    POOL_USER_FULL, /* max_user_connections reached */
    POOL_NO_MEMORY, /* no room to count it */
};

/*
 * The key of a user's connections to a host, for max_user_connections: a
 * pool's connections count under it too, derived from the pool's and the
 * host's keys, so that releasing a connection needs only those.
 */
void pool_user_key(char *out, const char *user, const char *host, int port);

/*
 * Counts one more connection of pool, host and the pool's user on host
 * unless a limit says no (0: no limit).
 */
enum pool_reserve pool_limits_reserve_user(struct pool_limits *pl, const char *pool,
                                           const char *host, int pool_size, int max_db,
                                           int max_user);
/* The same without max_user_connections. */
enum pool_reserve pool_limits_reserve(struct pool_limits *pl, const char *pool, const char *host,
                                      int pool_size, int max_db);

/* What pool_limits_reserve would find now, counting nothing: POOL_RESERVED when room is left. */
enum pool_reserve pool_limits_full(struct pool_limits *pl, const char *pool, const char *host,
                                   int pool_size, int max_db);

/* One connection of pool, host (and user on host) closed.  Returns whether some client waits. */
bool pool_limits_release(struct pool_limits *pl, const char *pool, const char *host);

/* A client starts (delta 1) or stops (-1) waiting for a connection of pool. */
void pool_limits_wait(struct pool_limits *pl, const char *pool, int delta);

/* What a report of clients waiting for one pool or host says. */
struct pool_wait_report {
    int waiting; /* clients waiting now */
    int began;   /* of all of them, those that began since the last report */
};

/*
 * pool_limits_wait(pl, pool, 1), and whether the log should say so now:
 * at most once per interval_ms for each pool or host, whatever the number
 * of clients and workers (the lines are counted under the same lock).
 * Then *r says how many wait.  now_ms: a monotonic clock.
 */
bool pool_limits_wait_report(struct pool_limits *pl, const char *pool, int64_t now_ms,
                             int64_t interval_ms, struct pool_wait_report *r);

/* The clients counted as waiting under pool (pool_limits_wait_report), 0 when none. */
int pool_limits_waiting(struct pool_limits *pl, const char *pool);

/* The server connections open or opening of pool (or under any one key). */
int pool_limits_servers(struct pool_limits *pl, const char *pool);

/* The server connections open or opening for user, all hosts together. */
int pool_limits_user_servers(struct pool_limits *pl, const char *user);

/* Whether some client waits for a connection of pool. */
bool pool_limits_has_waiters(struct pool_limits *pl, const char *pool);

#endif
