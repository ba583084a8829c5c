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

/*
 * Opens every listen_addr (with SO_REUSEPORT: each worker's socket, and
 * another pgnear's during an upgrade) and, with_unix, the Unix socket;
 * NULL with err on failure.
 */
struct listener_set *listener_open(struct worker *w, const struct config *cfg, bool with_unix,
                                   char *err, size_t errcap);
/* Takes the connections queued on the listeners as sessions, before they close (a drain). */
void listener_take_backlog(struct listener_set *ls);
/* Stops accepting (SIGTERM) without closing the sockets. */
void listener_pause(struct listener_set *ls);
void listener_close(struct listener_set *ls);

#endif
