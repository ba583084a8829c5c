/*
 * txn_fetch.h — the server connection for a session's next transaction
 * under transaction pooling (txn_fetch.c).
 */
#ifndef PGNEAR_PROXY_SESSION_TXN_FETCH_H
#define PGNEAR_PROXY_SESSION_TXN_FETCH_H

#include <stdbool.h>

struct session;
struct worker;

/*
 * A connection for the next transaction of s, whose client's message waits
 * unread: a parked one that fits (near_slots.h), an idle one taken at once,
 * else a fetcher's; s->txn->attached runs it once it is there.  The
 * session may be closed on return (a failure told to its client).
 */
void txn_fetch_start(struct session *s);

/*
 * Transactions whose pool was full wait on their worker, oldest first, for
 * a connection to be given back (worker's txn_waiters), with no fetcher:
 * the pool's wake-up serves them first (txn_waiters_serve; recheck: a
 * slot may have freed, so that one whose pool is no longer full logs in
 * through a fetcher), and one that
 * waits past query_wait_timeout goes to a fetcher, which fails it with
 * 53300 as it fails any other.  txn_wait_leave: s waits no more (its
 * request was canceled, it closes); txn_waiters_free: the worker's timer.
 */
void txn_waiters_serve(struct worker *w, bool recheck);
void txn_wait_leave(struct session *s);
void txn_waiters_free(struct worker *w);

#endif
