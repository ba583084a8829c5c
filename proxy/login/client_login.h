/*
 * client_login.h — the phases of a new connection before authentication
 * (PROXY_HEADER, STARTUP, CLIENT_TLS): what starts each, for the phase table (flow.c).
 */
#ifndef PGNEAR_PROXY_CLIENT_LOGIN_H
#define PGNEAR_PROXY_CLIENT_LOGIN_H

struct session;

/* PROXY_HEADER: reads the header, under a timer of its own (at most 5 s). */
void client_proxy_enter(struct session *s);

/*
 * STARTUP: reads SSLRequest, GSSENCRequest, CancelRequest or the
 * StartupMessage.  The login timeout starts here, unless the phase is
 * entered again after the TLS handshake, which does not restart it.
 */
void client_startup_enter(struct session *s);

/* CLIENT_TLS: runs the handshake the client asked for with SSLRequest. */
void client_tls_enter(struct session *s);

#endif
