/*
 * login_limits.h — max_user_client_connections and
 * max_db_client_connections at a client's login: its session is counted
 * (proxy/base/client_limits.h) once the client is known — after pgnear
 * authenticated it, or, under auth = passthrough, before the server does —
 * or refused with 53300.  The count goes as the session closes
 * (session_close), wherever it is then.
 */
#ifndef PGNEAR_PROXY_LOGIN_LIMITS_H
#define PGNEAR_PROXY_LOGIN_LIMITS_H

#include <stdbool.h>

struct session;

/* Counts s's session; false when a limit refused it (s failed: 53300, or 53200 out of memory). */
bool login_limits_admit(struct session *s);

#endif
