/*
 * txn_fetch.h — the server connection for a session's next transaction
 * under transaction pooling (txn_fetch.c).
 */
#ifndef PGNEAR_PROXY_SESSION_TXN_FETCH_H
#define PGNEAR_PROXY_SESSION_TXN_FETCH_H

#include <stdbool.h>

struct session;

/*
 * A connection for the next transaction of s, whose client's message waits
 * unread: a parked one that fits (near_slots.h), an idle one taken at once,
 * else a fetcher's; s->txn->attached runs it once it is there.  The
 * session may be closed on return (a failure told to its client).
 */
void txn_fetch_start(struct session *s);

/*
 * A transaction whose pool is full on its worker waits, with no fetcher,
 * in the pool's one queue (pool_wait.h, s->turn), behind whoever came
 * first, for a connection to be given back.  The pool's wake-up serves it
 * in its turn (txn_wait_serve: it takes the connection; or goes the
 * fetcher's way, its spot no longer serving it or, recheck, its pool no
 * longer full; *full_for: the waiter whose pool was last found full in
 * this walk), and the queue's timer gives it up past query_wait_timeout
 * (txn_wait_give_up: the session ends with err, 53300, as a login's).
 */
struct pg_error;
void txn_wait_serve(struct session *s, bool recheck, struct session **full_for);
void txn_wait_give_up(struct session *s, const struct pg_error *err);

/*
 * s waits for its next transaction's connection no more (its request was
 * canceled, it closes): it leaves the pool's queue, or its fetcher is let
 * go with why.  Whether it waits: txn_next_waiting (session_types.h).
 */
void txn_next_stop(struct session *s, const char *why);

#endif
