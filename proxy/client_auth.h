/*
 * client_auth.h — pgnear verifies the client itself (auth = scram).
 */
#ifndef PGNEAR_PROXY_CLIENT_AUTH_H
#define PGNEAR_PROXY_CLIENT_AUTH_H

struct session;

/*
 * Sends AuthenticationSASL and runs the exchange; then runs the login's
 * after_auth (the server login, or the admin console).
 */
void client_auth_start(struct session *s);

/* Sends the client AuthenticationOk once the server accepted pgnear's login. */
int client_auth_send_ok(struct session *s);

#endif
