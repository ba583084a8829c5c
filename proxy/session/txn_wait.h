/*
 * txn_wait.h — a transaction waiting on its worker for a connection of
 * its full pool to be given back, with no fetcher (txn_fetch.h): embedded
 * in struct session as s->txn_wait.  Only txn_fetch.c writes it; SHOW
 * CLIENTS, the gate, a move's check and the pool read it.  Its place in
 * the worker's queue is s->turn (wait_turn.h).
 */
#ifndef PGNEAR_PROXY_SESSION_TXN_WAIT_H
#define PGNEAR_PROXY_SESSION_TXN_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "routing/need.h"

struct region;
struct region_host;

/* While waiting: for the host and need its direct take asked. */
struct txn_wait {
    bool waiting;
    struct region *region; /* the pool's key (pool_wait.h) */
    struct region_host *host;
    struct need_spec need;
};

#endif
