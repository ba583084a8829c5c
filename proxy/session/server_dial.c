/*
 * server_dial.c — connect, SSLRequest per server_tls, TLS handshake.
 */
#include "proxy/session/server_dial.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "protocol/pkt.h"
#include "protocol/startup.h"

static enum server_dial_result dial_fail(struct server_dial *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum server_dial_result dial_fail(struct server_dial *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->why, sizeof(d->why), fmt, ap);
    va_end(ap);
    return DIAL_FAILED;
}

static enum server_dial_result dial_wait(struct server_dial *d, enum server_dial_stage stage,
                                         uint8_t want)
{
    d->stage = stage;
    d->st->read_want = want;
    return DIAL_AGAIN;
}

void server_dial_init(struct server_dial *d, struct stream *st, SSL_CTX *tls_ctx,
                      enum tls_server_mode tls_mode, const char *host)
{
    memset(d, 0, sizeof(*d));
    d->st = st;
    d->tls_ctx = tls_ctx;
    d->tls_mode = tls_mode;
    d->host = host;
}

static enum server_dial_result dial_call_failed(struct server_dial *d, const char *call)
{
    d->failed_call = call;
    d->failed_errno = errno;
    return dial_fail(d, "%s", strerror(errno));
}

enum server_dial_result server_dial_start(struct server_dial *d, const struct sockaddr *addr,
                                          socklen_t addrlen)
{
    stream_init(d->st, socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (d->st->fd < 0)
        return dial_call_failed(d, "socket()");
    if (connect(d->st->fd, addr, addrlen) != 0 && errno != EINPROGRESS)
        return dial_call_failed(d, "connect()");
    return dial_wait(d, DIAL_CONNECTING, STREAM_WANT_WRITE);
}

static enum server_dial_result dial_handshake(struct server_dial *d)
{
    int rc = stream_tls_connect(d->st);
    if (rc == STREAM_AGAIN)
        return DIAL_AGAIN; /* the handshake set the read_want it waits for */
    if (rc == 0)
        return DIAL_DONE;
    char why[256];
    long verify = SSL_get_verify_result(d->st->ssl);
    if (verify != X509_V_OK)
        snprintf(why, sizeof(why), "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
    else
        stream_tls_error(why, sizeof(why));
    return dial_fail(d, "TLS handshake failed: %s", why);
}

/* The server's one-byte answer; nothing is read past it, since the TLS handshake follows. */
static enum server_dial_result dial_ssl_answer(struct server_dial *d)
{
    char c;
    ssize_t n = recv(d->st->fd, &c, 1, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return DIAL_AGAIN;
    if (n <= 0)
        return dial_fail(d, "%s", n == 0 ? "server closed the connection" : strerror(errno));
    if (c == 'S') {
        d->st->ssl = tls_new_server_ssl(d->tls_ctx, d->st->fd, d->tls_mode, d->host);
        if (d->st->ssl == NULL)
            return dial_fail(d, "could not create TLS session");
        d->stage = DIAL_HANDSHAKE;
        return dial_handshake(d);
    }
    if (c == 'N' && d->tls_mode < TLS_SERVER_REQUIRE)
        return DIAL_DONE;
    return dial_fail(d, "%s",
                     c == 'N' ? "server does not support TLS, and server_tls requires it"
                              : "server sent an invalid answer to SSLRequest");
}

static enum server_dial_result dial_connected(struct server_dial *d)
{
    int err = 0;
    socklen_t elen = sizeof(err);
    if (getsockopt(d->st->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
        err = errno;
    if (err != 0)
        return dial_fail(d, "%s", strerror(err));
    if (d->tls_mode == TLS_SERVER_DISABLE)
        return DIAL_DONE;
    uint8_t req[8];
    pkt_store_be32(req, 8);
    pkt_store_be32(req + 4, PROTO_CODE_SSL);
    if (stream_write_raw(d->st, req, sizeof(req)) != (ssize_t)sizeof(req))
        return dial_fail(d, "could not send SSLRequest");
    return dial_wait(d, DIAL_SSL_ANSWER, STREAM_WANT_READ);
}

enum server_dial_result server_dial_step(struct server_dial *d)
{
    switch (d->stage) {
    case DIAL_CONNECTING:
        return dial_connected(d);
    case DIAL_SSL_ANSWER:
        return dial_ssl_answer(d);
    case DIAL_HANDSHAKE:
        return dial_handshake(d);
    }
    return dial_fail(d, "invalid dial state");
}
