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
/*
 * The Unix socket a draining pgnear keeps, in unix_socket_dir, for the
 * cancel requests that its successor on the same port receives for
 * sessions it does not know (they are this process's): mode 0600, and
 * nothing but a CancelRequest is taken on it.  NULL with err when there is
 * no unix_socket_dir or it cannot be bound.
 */
struct listener_set *listener_open_cancel(struct worker *w, const struct config *cfg, char *err,
                                          size_t errcap);

/* Takes the connections queued on the listeners as sessions, before they close (a drain). */
void listener_take_backlog(struct listener_set *ls);
/* Stops accepting (SIGTERM) without closing the sockets. */
void listener_pause(struct listener_set *ls);
void listener_close(struct listener_set *ls);

#endif
