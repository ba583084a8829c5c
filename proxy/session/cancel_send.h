/*
 * cancel_send.h — delivering one CancelRequest on a connection of its own:
 * to the server that runs the session's query (plain, or TLS when the
 * session's server connection is), or to the peer instance that holds the
 * session (plain TCP, a PROXY v2 header first).  Connect, write, wait for
 * the other side to hang up, all within a deadline; nothing is answered to
 * anyone, as the protocol says.
 *
 * The other side hanging up is what says the request was acted on: a
 * server's postmaster signals the backend before it closes, a peer closes
 * once its own delivery ended.  The caller hears how a delivery ended
 * (its ended callback, on w's loop, never from within cancel_send): it
 * holds the server connection the request is for, and the connection of
 * the client that sent it, until then (cancel.c).
 */
#ifndef PGNEAR_PROXY_CANCEL_SEND_H
#define PGNEAR_PROXY_CANCEL_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "protocol/tls.h"

struct config;
struct server_conn;
struct worker;

/* How a delivery ended. */
struct cancel_outcome {
    struct server_conn *server; /* as given; NULL once it closed (cancel_send_forget) */
    uint64_t requester_id;      /* as given */
    int requester_worker;
    bool delivered;  /* the other side hung up after the request: it was acted on */
    bool maybe_sent; /* not seen acted on, yet it may have got the request */
    bool stopping;   /* pgnear is stopping: its sessions and connections close anyway */
};

typedef void (*cancel_ended_fn)(struct worker *w, const struct cancel_outcome *o);

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
    /* TCP_NODELAY and keepalives on its socket (session_tune_tcp, handed down); NULL: none. */
    void (*tune)(const struct config *cfg, int fd);
    cancel_ended_fn ended;      /* NULL: nobody hears how it ended */
    struct server_conn *server; /* for ended: the connection it cancels on (w's own), or NULL */
    uint64_t requester_id;      /* for ended: the session that sent the request */
    int requester_worker;       /* ... on that worker */
};

/*
 * Starts a delivery on w's loop.  0: ended is told, later, how it ended;
 * or -1 when it could not start (counted and logged; ended is not told).
 */
int cancel_send(struct worker *w, const struct cancel_delivery *d);

/* sc closes: the deliveries for it forget it (server_conn_close). */
void cancel_send_forget(struct worker *w, const struct server_conn *sc);

/* Frees deliveries still in flight (shutdown). */
void cancel_send_close_all(struct worker *w);

#endif
