/*
 * txn_cancel.h — a cancel request for a session whose transactions are
 * placed one by one (txn.h, near.h), while no server runs its statement.
 *
 * A client that sent a request and asked to cancel it expects what a
 * server it were connected to directly would answer: the statement
 * stopped, 57014 "canceling statement due to user request".  A session
 * under transaction pooling has no server connection between its
 * transactions; the cancel key names none then, and a request that comes
 * when nothing was sent cancels nothing, as on PostgreSQL.  But a session
 * whose request waits for a connection (a fetcher logs in for it, or it
 * waits in a full pool's queue; a nearest write a standby refused, whose
 * messages wait for a primary's; under session pooling, one whose state
 * is being carried to that primary's connection first, near_sync.h) has a
 * statement going on that no server runs yet: the request is canceled
 * here.  Its messages up to the Query,
 * Sync or FunctionCall that ends it are taken off the client's input and
 * answered with 57014 and a ReadyForQuery, after what a standby already
 * answered of them (ParseComplete, BindComplete: the client was told of
 * its statement, which the follower of prepared statements knows);
 * nothing of it runs anywhere.  The client's next requests, if any, still
 * wait for the connection; with none, the fetcher is let go.  A request
 * not yet whole (no Sync yet) is not canceled: it then runs.
 *
 * A cancel request that reaches a standby while its answer is held
 * (near.h) is noted (near_on_cancel): should the standby have
 * refused the transaction as a write before the cancel came, it is
 * answered 57014 instead of being run again on a primary.
 */
#ifndef PGNEAR_PROXY_TXN_CANCEL_H
#define PGNEAR_PROXY_TXN_CANCEL_H

#include <stdbool.h>

struct session;

/*
 * On the session's own worker, as a cancel request for it comes: true
 * when it was answered here (its request waited for a server connection);
 * false: it goes to the server connection the session holds, if any.
 */
bool txn_cancel(struct session *s);

#endif
