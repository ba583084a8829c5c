/*
 * server_dial.h — opening a connection to a PostgreSQL server: a
 * non-blocking connect, the SSLRequest server_tls asks for, and the TLS
 * handshake with the certificate checks of its mode.
 *
 * Server logins and forwarded CancelRequests both dial.  The dial is a
 * step machine over the caller's stream and owns no events or timers:
 * after DIAL_AGAIN the caller waits for the readiness the stream's
 * read_want names (writable while connecting), then steps again; the
 * deadline is the caller's too.
 */
#ifndef PGNEAR_PROXY_SERVER_DIAL_H
#define PGNEAR_PROXY_SERVER_DIAL_H

#include <sys/socket.h>

#include "protocol/stream.h"
#include "protocol/tls.h"

enum server_dial_stage {
    DIAL_CONNECTING, /* waiting for connect() */
    DIAL_SSL_ANSWER, /* SSLRequest sent, waiting for 'S' or 'N' */
    DIAL_HANDSHAKE,  /* TLS handshake */
};

enum server_dial_result {
    DIAL_AGAIN,  /* wait for the stream's read_want, then step again */
    DIAL_DONE,   /* connected: over TLS when st->ssl is set */
    DIAL_FAILED, /* why says why; the caller closes the stream */
};

struct server_dial {
    struct stream *st;
    enum server_dial_stage stage;
    enum tls_server_mode tls_mode; /* TLS_SERVER_DISABLE: plain TCP, no SSLRequest */
    SSL_CTX *tls_ctx;
    const char *host; /* checked against the certificate under verify-full */
    /* After DIAL_FAILED: */
    const char *failed_call; /* "socket()" or "connect()" when that call failed at once */
    int failed_errno;        /* its errno (then the caller may blame this machine) */
    char why[320];
};

/* host must outlive the dial; tls_ctx may be NULL only with TLS_SERVER_DISABLE. */
void server_dial_init(struct server_dial *d, struct stream *st, SSL_CTX *tls_ctx,
                      enum tls_server_mode tls_mode, const char *host);

/* Opens the socket into st and starts connecting: DIAL_AGAIN or DIAL_FAILED. */
enum server_dial_result server_dial_start(struct server_dial *d, const struct sockaddr *addr,
                                          socklen_t addrlen);

/* Goes on once the readiness waited for has come. */
enum server_dial_result server_dial_step(struct server_dial *d);

#endif
