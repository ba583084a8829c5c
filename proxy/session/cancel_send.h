/*
 * cancel_send.h — delivering one CancelRequest on a connection of its own:
 * to the server that runs the session's query (plain, or TLS when the
 * session's server connection is), or to the peer instance that holds the
 * session (plain TCP, a PROXY v2 header first).  Connect, write, wait for
 * the other side to hang up, all within a deadline; nothing is answered to
 * anyone, as the protocol says.
 */
#ifndef PGNEAR_PROXY_CANCEL_SEND_H
#define PGNEAR_PROXY_CANCEL_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "protocol/tls.h"

struct worker;

#define CANCEL_SEND_MAX 512 /* bytes one delivery writes, at most */

struct cancel_delivery {
    uint64_t client_id; /* for the log: the session canceled, or the cancel request's own id */
    int peer_id;      /* a peer's id (its figures, SHOW PEERS; peer_stats_begin_out was called), or
                       * 0 for a server */
    bool predecessor; /* to the draining pgnear this one replaced (its cancel socket) */
    const struct sockaddr *addr;
    socklen_t addrlen;
    SSL_CTX *tls_ctx;         /* NULL: plain TCP */
    enum tls_server_mode tls; /* with tls_ctx */
    const char *host;         /* for verify-full; copied */
    const uint8_t *bytes;     /* what to write; copied */
    size_t len;
    int timeout_ms;
};

/* Starts a delivery on w's loop.  0; or -1 when it could not start (counted and logged). */
int cancel_send(struct worker *w, const struct cancel_delivery *d);

/* Frees deliveries still in flight (shutdown). */
void cancel_send_close_all(struct worker *w);

#endif
