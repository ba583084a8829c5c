/*
 * linger.h — a client socket closed after pgnear's last word to it (a
 * FATAL, an HTTP answer): its write side shut (a FIN behind the bytes
 * sent), what the client still sends read and dropped until it closes its
 * side or LINGER_MS pass, then closed.
 *
 * Why: close() on a socket whose input holds bytes nobody read (a client
 * that sent its next message while pgnear answered the one before with a
 * FATAL) sends a reset instead of a FIN, and drops whatever the kernel had
 * not sent yet; a reset that overtakes the FATAL, or reaches a client
 * whose stack discards unread data on a reset (Windows), loses the error.
 * PostgreSQL's own backend avoids the question by exiting with nothing
 * unread in the usual case; pgnear, which answers a client while its
 * next message may already be on the way, lingers as a careful server
 * does (shutdown, drain, then close).
 *
 * Bounded: a client that never closes holds nothing past LINGER_MS (the
 * descriptor and a few dozen bytes), nor more than LINGER_MAX sockets a
 * worker (the next ones close at once), nor is more than LINGER_DRAIN_MAX
 * bytes of its input read.
 */
#ifndef PGNEAR_PROXY_LINGER_H
#define PGNEAR_PROXY_LINGER_H

#include <stddef.h>

#include "proxy/base/list.h"

struct event_base;

#define LINGER_MS        2000
#define LINGER_MAX       256
#define LINGER_DRAIN_MAX (1024 * 1024)

struct linger_set {
    struct event_base *base;
    struct list socks; /* struct linger_sock, one a lingering socket */
};

void linger_init(struct linger_set *l, struct event_base *base);

/*
 * Closes fd (a connected TCP or Unix socket, its layers above it ended:
 * the TLS close_notify, the WebSocket's close frame, already written)
 * after its write side is shut and its input drained, as above; at once
 * when it cannot linger (out of memory, LINGER_MAX reached).
 */
void linger_close(struct linger_set *l, int fd);

/* How many sockets linger now. */
size_t linger_count(const struct linger_set *l);

/* Closes every lingering socket now (the worker is ending). */
void linger_free(struct linger_set *l);

#endif
