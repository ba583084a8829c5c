/*
 * client_auth.h — pgnear verifies the client itself (CLIENT_AUTH: auth =
 * scram, and always for the admin console), for the phase table (flow.c).
 */
#ifndef PGNEAR_PROXY_CLIENT_AUTH_H
#define PGNEAR_PROXY_CLIENT_AUTH_H

struct session;

/*
 * CLIENT_AUTH: finds the user's verifier (auth_file, else auth_query; for
 * the console admin_users in auth_file only), sends AuthenticationSASL
 * and runs the exchange; a verified client ends the phase (phase_done).
 */
void client_auth_enter(struct session *s);

#endif
