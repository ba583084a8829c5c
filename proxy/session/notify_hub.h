/*
 * notify_hub.h — LISTEN and NOTIFY without pinning, for the sessions
 * whose server connection goes back between transactions (transaction
 * pooling, and a `nearest` session's own connections under session
 * pooling: s->txn set).
 *
 * A simple Query of LISTEN, UNLISTEN and UNLISTEN * statements alone
 * (protocol/listen_sql.h), sent while the session holds no server
 * connection, is answered here: the session's channels change in its
 * worker's table, and the worker's one listening connection for the
 * database — pgnear's own login (server_conninfo) on the database's
 * primary, made when the first channel is listened on, closed when none
 * is — LISTENs or UNLISTENs there for the union of its sessions'
 * channels.  A LISTEN is answered once that connection listens, so that
 * every NOTIFY committed after the answer reaches the session, as
 * directly.  Each worker has its own connection: a NOTIFY from any
 * session reaches every worker's, and no notification crosses threads.
 *
 * Each NotificationResponse the connection receives goes (the channel
 * and the payload in the session's encoding; the process ID the sender
 * was given when it is pgnear's client, base/notify_senders.h, else the
 * backend's) to every session of the worker listening on the channel, in
 * the order it came: at once when the session is between
 * transactions (txn_hooks' between), else queued until it is (the end
 * of its transaction, the answer of its request).  A session whose queue
 * (with what its client has not read yet) passes NOTIFY_CLIENT_MAX bytes
 * ends with 54000, as a server ends the notifier when its queue is full.
 *
 * The connection lost, or its host no longer the database's primary (a
 * failover; checked every second and when a host is fenced): pgnear
 * listens again on the primary, and each session listening is sent a
 * WARNING between its transactions that notifications sent meanwhile may
 * be lost.  None is delivered twice: the old connection's are dropped
 * with it.
 *
 * A LISTEN inside a transaction block or beside other statements still
 * runs on the session's server and pins the session (txn_pin.h); an
 * UNLISTEN there stops pgnear's delivery too, at its commit
 * (notify_watch.h).
 *
 * Channel names and notifications are in the client's encoding
 * (client_encoding as its server reported it): a Query is converted to
 * UTF8 before it is read, as the server converts it, and a text that is
 * not well-formed gets the server's 22021; the listening connection logs
 * in with client_encoding UTF8 (and the session's database, whatever
 * server_conninfo says), and each notification goes to a session in its
 * encoding, or, where a character has none there, as a WARNING 22P05.  A
 * LISTEN the server refuses on the listening connection fails the
 * sessions that asked for that channel alone: a query of several changes
 * refused is sent again one change a query.
 */
#ifndef PGNEAR_PROXY_NOTIFY_HUB_H
#define PGNEAR_PROXY_NOTIFY_HUB_H

#include <stdbool.h>
#include <stddef.h>

struct session;
struct worker_part;

/* The most bytes of notifications waiting for one session, its client's socket's queue counted. */
#define NOTIFY_CLIENT_MAX (16u * 1024 * 1024)
/* The longest Query read for LISTEN and UNLISTEN statements. */
#define NOTIFY_QUERY_MAX 4096

/*
 * The session holds no server connection and its client's input begins
 * with a whole Query: when it holds only LISTEN and UNLISTEN, it is taken
 * off the input and answered (now, or once the worker's connection
 * listens: notify_hub_waiting until then, the client unread), and 1;
 * 0: not ours (the caller goes on as ever); -1: the session ended.
 */
int notify_hub_query(struct session *s);

/* Whether the session's LISTEN waits for the server: its client is not read meanwhile. */
bool notify_hub_waiting(const struct session *s);

struct listen_op;
/* An UNLISTEN (UNLISTEN *, DISCARD ALL) its server ran, committed (notify_watch.h): applied here.
 */
void notify_hub_unlisten(struct session *s, const struct listen_op *op);

/* The session is between transactions: the notifications waiting for it go out. */
void notify_hub_idle(struct session *s);

/* The session ends: its channels are dropped (and UNLISTENed where it was the last). */
void notify_hub_session_end(struct session *s);

extern const struct worker_part notify_hub_part;

#endif
