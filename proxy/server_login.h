/*
 * server_login.h — shared between the server login and its auth steps.
 */
#ifndef PGNEAR_PROXY_SERVER_LOGIN_H
#define PGNEAR_PROXY_SERVER_LOGIN_H

#include <stdint.h>

struct session;

void server_login_on_read(struct session *s);
/* Moves the whole login message at the front of the server's input to the client. */
int server_forward(struct session *s, uint32_t body_len);
/* The server hung up or failed before the session was established. */
void server_try_next(struct session *s, const char *why);

#endif
