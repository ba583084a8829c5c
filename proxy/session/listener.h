/*
 * listener.h — TCP (IPv4, IPv6) and Unix-socket listening sockets.
 */
#ifndef PGNEAR_PROXY_LISTENER_H
#define PGNEAR_PROXY_LISTENER_H

#include <stdbool.h>
#include <stddef.h>

struct worker;
struct config;

struct listener_set;

/* Opens every listen_addr and the Unix socket; NULL with err on failure. */
/* reuseport: several workers share the TCP ports; with_unix: this one has the Unix socket. */
struct listener_set *listener_open(struct worker *w, const struct config *cfg, bool reuseport,
                                   bool with_unix, char *err, size_t errcap);
/* Stops accepting (SIGTERM) without closing the sockets. */
void listener_pause(struct listener_set *ls);
void listener_close(struct listener_set *ls);

#endif
