/*
 * txn_next.h — how a session under transaction pooling is getting the
 * server connection for its next transaction: s->txn_next, made as it
 * sets out and freed as it gets one or stops (NULL meanwhile: an idle
 * client holds none).  Only txn_fetch.c writes it (tests/doc/owners.t);
 * the others ask it through session_types.h's txn_next_waiting,
 * txn_next_queued and txn_next_detached_idle and stop it with
 * txn_fetch.h's txn_next_stop; the pool's queue and SHOW CLIENTS read
 * whether it is QUEUED, and where.  Its place in the worker's queue is
 * its turn (wait_turn.h).
 *
 * The next connection comes one way, txn_fetch_start, with four outcomes:
 * a parked slot of nearest's own (near_slots.h) or an idle connection
 * taken at once (fetch_take) attach it there and then, s->txn_next
 * staying NULL;
 * else it waits in the pool's queue (QUEUED) for a connection given back
 * at its spot, or a fetcher logs in for it (FETCHER).
 */
#ifndef PGNEAR_PROXY_SESSION_TXN_NEXT_H
#define PGNEAR_PROXY_SESSION_TXN_NEXT_H

#include "proxy/session/wait_turn.h"
#include "routing/need.h"

struct region;
struct region_host;
struct session;

/* Where a transaction's connection is taken, or waited for (fetch.h: fetch_take). */
struct fetch_spot {
    struct region *region;
    struct region_host *host;
};

enum txn_next_how {
    TXN_NEXT_NONE,    /* made, not yet on its way (s->txn_next NULL: getting none) */
    TXN_NEXT_QUEUED,  /* in the pool's queue, its pool full on this worker, with no fetcher */
    TXN_NEXT_FETCHER, /* a fetcher (fetch.h) logs in for it */
};

struct txn_next {
    enum txn_next_how how;
    struct session *fetcher; /* FETCHER: the internal session logging in for it; else NULL */
    /* QUEUED: the spot (spot.region: the pool's key, pool_wait.h) and need its take asks. */
    struct fetch_spot spot;
    struct need_spec need;
    struct wait_turn turn; /* QUEUED: its place in the queue; told_since_us, its client's */
};

#endif
