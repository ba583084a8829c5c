/*
 * txn_wait.h — a transaction waiting on its worker for a connection of
 * its full pool to be given back, with no fetcher (txn_fetch.h): embedded
 * in struct session as s->txn_wait.  Only txn_fetch.c writes it; SHOW
 * CLIENTS, the gate, a move's check and the pool read it.
 */
#ifndef PGNEAR_PROXY_SESSION_TXN_WAIT_H
#define PGNEAR_PROXY_SESSION_TXN_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/base/list.h"
#include "routing/need.h"

struct region;
struct region_host;

/*
 * While waiting: on the worker's txn_waiters, for the host and need its
 * direct take asked, since when (Unix time, microseconds) and until when
 * (monotonic_ms: query_wait_timeout; 0: no limit).
 */
struct txn_wait {
    bool waiting;
    struct list_node node;
    struct region *region; /* the pool's key (pool_wait.h) */
    struct region_host *host;
    struct need_spec need;
    int64_t since_us;
    int64_t until_ms;
};

#endif
