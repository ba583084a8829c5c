/*
 * txn_fetch.h — the server connection for a session's next transaction
 * under transaction pooling (txn_fetch.c).
 */
#ifndef PGNEAR_PROXY_SESSION_TXN_FETCH_H
#define PGNEAR_PROXY_SESSION_TXN_FETCH_H

struct session;

/*
 * A connection for the next transaction of s, whose client's message waits
 * unread: a parked one that fits (txn_slots.h), an idle one taken at once,
 * else a fetcher's; s->txn->attached runs it once it is there.  The
 * session may be closed on return (a failure told to its client).
 */
void txn_fetch_start(struct session *s);

#endif
