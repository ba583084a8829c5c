/*
 * wait_turn.h — a session's place in its worker's one queue of clients
 * waiting for a server connection of a full pool (pool_wait.h), a login
 * (PHASE_WAIT_SERVER) or a transaction (txn_fetch.h) alike, served in
 * arrival order.  It is part of what a session has only while it waits:
 * a login's struct session_login, a transaction's struct txn_next
 * (session_turn finds it), so an idle client carries none.  Only
 * pool_wait.c writes it, but txn_fetch.c, which carries told_since_us
 * over as a transaction that waited in the queue goes on to wait behind a
 * fetcher (the same wait, the same since_us: its client is not told
 * twice); SHOW CLIENTS reads it.
 */
#ifndef PGNEAR_PROXY_SESSION_WAIT_TURN_H
#define PGNEAR_PROXY_SESSION_WAIT_TURN_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/base/list.h"

struct session;

struct wait_turn {
    bool queued;
    struct list_node node;   /* on the worker's server_waiters */
    struct session *session; /* whose turn it is, while queued */
    int64_t since_us;        /* its client waits since (Unix time, microseconds) */
    int64_t until_ms;        /* monotonic_ms: query_wait_timeout; 0: no limit */
    int64_t notify_ms;       /* monotonic_ms: query_wait_notify's NOTICE; 0: none due */
    int64_t told_since_us; /* the since_us of the wait its client was told of (one NOTICE a wait) */
};

#endif
