/*
 * server_login.h — the login on an open server connection (SERVER_LOGIN),
 * for phase.c.
 */
#ifndef PGNEAR_PROXY_SERVER_LOGIN_H
#define PGNEAR_PROXY_SERVER_LOGIN_H

#include <stddef.h>

struct session;

/*
 * SERVER_LOGIN: sends the StartupMessage as the client sent it, minus
 * what is pgnear's own, and reads the server's login messages (under
 * auth = passthrough the client's answers too) up to ReadyForQuery, which
 * ends the phase.  A kept connection taken from the pool is handed over
 * instead (server_handover.h).
 */
void server_login_enter(struct session *s);

/*
 * The startup parameters s gives the server (user and database aside,
 * pgnear.* hints removed): at most max, into names and values; returns
 * how many.
 */
size_t server_login_params(const struct session *s, const char **names, const char **values,
                           size_t max);

/* The value of one of them; NULL when s gives none. */
const char *server_login_param(const struct session *s, const char *name);

/* The host served s's login: throttle and health are told (a kept connection's handover too). */
void server_login_served(struct session *s);

#endif
