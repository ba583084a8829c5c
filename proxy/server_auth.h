/*
 * server_auth.h — authentication requests from the server during login.
 */
#ifndef PGNEAR_PROXY_SERVER_AUTH_H
#define PGNEAR_PROXY_SERVER_AUTH_H

#include <stdint.h>

struct session;

/*
 * One AuthenticationXXX message.  Returns 0 when consumed, 1 when
 * forwarded to the client as it is, -1 when the session failed.
 */
int server_auth_message(struct session *s, const uint8_t *body, uint32_t len);

/* auth = passthrough: relays the client's password and SASL messages to the server. */
void server_auth_client_on_read(struct session *s);

#endif
