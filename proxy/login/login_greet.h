/*
 * login_greet.h — a login under transaction pooling answered without a
 * server connection, as PgBouncer answers its pools' logins.
 *
 * Such a session holds a server connection only for its transactions; its
 * login took one just to hear what the server says at login, and under a
 * crowd of logins that doubled the pool's demand: each login queued for a
 * connection, then its first query queued again.  A connection of the same
 * pool that logged in with exactly the client's startup parameters (idle,
 * or serving another client) already heard it: its reported ParameterStatus
 * values are the client's, with BackendKeyData of pgnear's and that
 * connection's process ID, and the session starts with no server
 * connection, as it is between transactions.
 *
 * Only where nothing is lost: the host up, pgnear able to log in for the
 * client (auth = scram, movable), no nearest and no position to wait for,
 * and a live connection of the pool that proves the database and role
 * took a login (a database dropped closes them).  Else the login goes on
 * as before: a kept connection handed over, or a new one.
 */
#ifndef PGNEAR_PROXY_LOGIN_GREET_H
#define PGNEAR_PROXY_LOGIN_GREET_H

#include <stdbool.h>

struct region;
struct region_host;
struct session;

/*
 * In CONNECT, before host h of region r is tried: true when s's client was
 * answered (the session goes on to ACTIVE) or the session failed (out of
 * memory); false when it logs in through a server as before.
 */
bool login_greet(struct session *s, struct region *r, struct region_host *h);

#endif
