/*
 * server_login.h — the login on an open server connection (SERVER_LOGIN),
 * for the phase table (flow.c).
 */
#ifndef PGNEAR_PROXY_SERVER_LOGIN_H
#define PGNEAR_PROXY_SERVER_LOGIN_H

#include <stddef.h>

struct session;

/*
 * SERVER_LOGIN: sends the StartupMessage as the client sent it, minus
 * what is pgnear's own, and reads the server's login messages (under
 * auth = passthrough the client's answers too) up to ReadyForQuery, which
 * ends the phase.  (A kept connection taken from the pool is handed over
 * instead: server_handover.h; the phase table chooses.)
 */
void server_login_enter(struct session *s);

/* The host served s's login: throttle and health are told (a kept connection's handover too). */
void server_login_served(struct session *s);

#endif
