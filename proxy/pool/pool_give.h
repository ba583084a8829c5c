/*
 * pool_give.h — a server connection given back by its client (its
 * session closing, or its transaction ending under transaction pooling):
 * kept for the next client when it can serve one, else closed.
 */
#ifndef PGNEAR_PROXY_POOL_GIVE_H
#define PGNEAR_PROXY_POOL_GIVE_H

struct server_conn;

/*
 * s's client is leaving (session_close), or its transaction ended (txn.h):
 * its server connection is kept when it can serve another client, else
 * closed.  One with a cancel request on its way to it waits on
 * used_servers, neither reset nor idle, until pool_cancel_done.
 */
void pool_release(struct server_conn *sc);

/*
 * The cancel requests on their way to sc ended (cancel_send.h): a
 * connection pool_release held back for them is kept now (or closed, when
 * one may still arrive).
 */
void pool_cancel_done(struct server_conn *sc);

#endif
