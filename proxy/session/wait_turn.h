/*
 * wait_turn.h — a session's place in its worker's one queue of clients
 * waiting for a server connection of a full pool (pool_wait.h), a login
 * (PHASE_WAIT_SERVER) or a transaction (txn_fetch.h) alike, served in
 * arrival order: embedded in struct session as s->turn.  Only pool_wait.c
 * writes it; SHOW CLIENTS and txn_fetch.c read it.  told_since_us is the
 * client's: a transaction that waited in the queue and goes on to wait
 * behind a fetcher (the same wait, the same since_us) is not told twice.
 */
#ifndef PGNEAR_PROXY_SESSION_WAIT_TURN_H
#define PGNEAR_PROXY_SESSION_WAIT_TURN_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/base/list.h"

struct wait_turn {
    bool queued;
    struct list_node node; /* on the worker's server_waiters */
    int64_t since_us;      /* its client waits since (Unix time, microseconds) */
    int64_t until_ms;      /* monotonic_ms: query_wait_timeout; 0: no limit */
    int64_t notify_ms;     /* monotonic_ms: query_wait_notify's NOTICE; 0: none due */
    int64_t told_since_us; /* the since_us of the wait its client was told of (one NOTICE a wait) */
};

#endif
