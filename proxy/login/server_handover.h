/*
 * server_handover.h — a kept server connection given to a new client
 * (SERVER_LOGIN for a connection taken from the pool, pool.h).
 *
 * The client gets what a server would have sent at login: AuthenticationOk
 * (pgnear verified it), every ParameterStatus value the connection has,
 * BackendKeyData with the connection's real process ID and a new key of
 * pgnear's, ReadyForQuery.  Before that, in one round trip, the server
 * runs server_check_query when the connection was idle longer than
 * server_check_delay, and sets the client's startup parameters that
 * differ from the ones the connection logged in with (set_config takes
 * the value as a startup packet gives it); the ParameterStatus messages
 * that answers brings replace the kept values the client is told.  No
 * round trip at all when nothing differs and no check is due.
 *
 * A connection that fails the check, or dies before the client has heard
 * anything, is closed and the login goes on with another (or a new one):
 * its host is not blamed, since a kept connection can die of old age.
 */
#ifndef PGNEAR_PROXY_SERVER_HANDOVER_H
#define PGNEAR_PROXY_SERVER_HANDOVER_H

struct param_set;
struct session;

void server_handover_enter(struct session *s);

/*
 * Writes to s's client what a server says as a login succeeds:
 * AuthenticationOk, the ParameterStatus values of reported with those of
 * changed in their place, BackendKeyData with s's key (registered by the
 * caller), pgnear's notices, ReadyForQuery.  0, or -1 when s failed (out
 * of memory).
 */
int server_greet_client(struct session *s, const struct param_set *reported,
                        const struct param_set *changed);

#endif
