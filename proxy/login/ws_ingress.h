/*
 * ws_ingress.h — a connection to websocket_port before its PostgreSQL
 * stream begins (PHASE_WEBSOCKET): the HTTP request, GET /healthz for the
 * load balancer, the upgrade to a WebSocket, and the locality headers of
 * whoever sent the request — believed only from trusted_proxies (or
 * trusted_http_proxies), and kept in the login's state for client_login.c
 * to weigh.  A forwarded address among them becomes the session's own
 * address (access: the hba line, the throttle) only from
 * trusted_http_proxies; else it only places the caller.  After
 * the upgrade the session goes on as any other: its stream is a WebSocket
 * (protocol/ws.h), which nothing past this file needs to know.
 */
#ifndef PGNEAR_PROXY_WS_INGRESS_H
#define PGNEAR_PROXY_WS_INGRESS_H

#include <stdbool.h>

struct session;

/* The first phase of a connection to websocket_port (after wss's TLS handshake). */
void ws_ingress_enter(struct session *s);

/* The request did not come whole within websocket_handshake_timeout. */
void ws_ingress_timeout(struct session *s);

/* Starts the pings of websocket_ping_interval once the session relays; -1 when out of memory. */
int ws_ingress_start_pings(struct session *s);

#endif
