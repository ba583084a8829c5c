/*
 * server_login.h — the login on an open server connection (SERVER_LOGIN),
 * for phase.c.
 */
#ifndef PGNEAR_PROXY_SERVER_LOGIN_H
#define PGNEAR_PROXY_SERVER_LOGIN_H

struct session;

/*
 * SERVER_LOGIN: sends the StartupMessage as the client sent it, minus
 * what is pgnear's own, and reads the server's login messages (under
 * auth = passthrough the client's answers too) up to ReadyForQuery, which
 * ends the phase.
 */
void server_login_enter(struct session *s);

#endif
