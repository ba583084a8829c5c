/*
 * stream.c — plain and TLS reads and writes straight into and out of
 * evbuffers.  Plain reads use recv() on reserved buffer space rather than
 * evbuffer_read(), which costs an extra FIONREAD ioctl per call.
 */
#include "protocol/stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/err.h>

void stream_init(struct stream *s, int fd)
{
    s->fd = fd;
    s->ssl = NULL;
    s->want = STREAM_WANT_READ;
}

void stream_close(struct stream *s)
{
    if (s->ssl != NULL) {
        /* Best effort close_notify; the socket is non-blocking. */
        SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
}

static ssize_t stream_read_plain(struct stream *s, struct evbuffer *buf, size_t max)
{
    struct evbuffer_iovec vec[2];
    int n = evbuffer_reserve_space(buf, (ev_ssize_t)max, vec, 2);
    if (n <= 0)
        return STREAM_ERROR;
    if (vec[0].iov_len > max)
        vec[0].iov_len = max;
    ssize_t got = recv(s->fd, vec[0].iov_base, vec[0].iov_len, 0);
    if (got <= 0) {
        evbuffer_commit_space(buf, vec, 0);
        if (got == 0)
            return STREAM_EOF;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            s->want = STREAM_WANT_READ;
            return STREAM_AGAIN;
        }
        return STREAM_ERROR;
    }
    vec[0].iov_len = (size_t)got;
    if (evbuffer_commit_space(buf, vec, 1) != 0)
        return STREAM_ERROR;
    return got;
}

/* Maps an SSL_get_error() result onto a stream status and sets want. */
static ssize_t stream_tls_status(struct stream *s, int ret)
{
    switch (SSL_get_error(s->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        s->want = STREAM_WANT_READ;
        return STREAM_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        s->want = STREAM_WANT_WRITE;
        return STREAM_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return STREAM_EOF;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0 && (errno == 0 || errno == ECONNRESET))
            return STREAM_EOF;
        return STREAM_ERROR;
    default:
        return STREAM_ERROR;
    }
}

static ssize_t stream_read_tls(struct stream *s, struct evbuffer *buf, size_t max, int *more)
{
    struct evbuffer_iovec vec[1];
    if (evbuffer_reserve_space(buf, (ev_ssize_t)max, vec, 1) != 1)
        return STREAM_ERROR;
    if (vec[0].iov_len > max)
        vec[0].iov_len = max;
    size_t got = 0;
    ERR_clear_error();
    int ret = SSL_read_ex(s->ssl, vec[0].iov_base, vec[0].iov_len, &got);
    if (ret <= 0) {
        evbuffer_commit_space(buf, vec, 0);
        return stream_tls_status(s, ret);
    }
    vec[0].iov_len = got;
    if (evbuffer_commit_space(buf, vec, 1) != 0)
        return STREAM_ERROR;
    *more = SSL_pending(s->ssl) > 0;
    return (ssize_t)got;
}

ssize_t stream_read(struct stream *s, struct evbuffer *buf, size_t max, int *more)
{
    *more = 0;
    if (s->ssl != NULL)
        return stream_read_tls(s, buf, max, more);
    return stream_read_plain(s, buf, max);
}

/* send() for the common case of one contiguous chunk: cheaper in the kernel than writev(). */
static ssize_t stream_send_one(struct stream *s, struct evbuffer *buf)
{
    struct evbuffer_iovec vec[2];
    int nvec = evbuffer_peek(buf, -1, NULL, vec, 2);
    if (nvec != 1)
        return evbuffer_write(buf, s->fd);
    ssize_t n = send(s->fd, vec[0].iov_base, vec[0].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0)
        evbuffer_drain(buf, (size_t)n);
    return n;
}

static ssize_t stream_write_plain(struct stream *s, struct evbuffer *buf)
{
    ssize_t n = stream_send_one(s, buf);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            s->want = STREAM_WANT_WRITE;
            return STREAM_AGAIN;
        }
        return STREAM_ERROR;
    }
    if (evbuffer_get_length(buf) > 0)
        s->want = STREAM_WANT_WRITE;
    return n;
}

/* One TLS record per contiguous chunk; partial writes are enabled on the SSL. */
static ssize_t stream_write_tls(struct stream *s, struct evbuffer *buf)
{
    ssize_t total = 0;
    while (evbuffer_get_length(buf) > 0) {
        struct evbuffer_iovec vec[1];
        if (evbuffer_peek(buf, -1, NULL, vec, 1) < 1)
            return STREAM_ERROR;
        size_t done = 0;
        ERR_clear_error();
        int ret = SSL_write_ex(s->ssl, vec[0].iov_base, vec[0].iov_len, &done);
        if (ret <= 0) {
            ssize_t st = stream_tls_status(s, ret);
            return total > 0 && st == STREAM_AGAIN ? total : st;
        }
        evbuffer_drain(buf, done);
        total += (ssize_t)done;
    }
    return total;
}

ssize_t stream_write(struct stream *s, struct evbuffer *buf)
{
    if (evbuffer_get_length(buf) == 0)
        return 0;
    if (s->ssl != NULL)
        return stream_write_tls(s, buf);
    return stream_write_plain(s, buf);
}

ssize_t stream_write_raw(struct stream *s, const void *p, size_t n)
{
    ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
    if (w < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? STREAM_AGAIN : STREAM_ERROR;
    return w;
}

static int stream_handshake_result(struct stream *s, int ret)
{
    if (ret == 1)
        return 0;
    ssize_t st = stream_tls_status(s, ret);
    return st == STREAM_EOF ? STREAM_ERROR : (int)st;
}

int stream_tls_accept(struct stream *s)
{
    ERR_clear_error();
    return stream_handshake_result(s, SSL_accept(s->ssl));
}

int stream_tls_connect(struct stream *s)
{
    ERR_clear_error();
    return stream_handshake_result(s, SSL_connect(s->ssl));
}

const char *stream_tls_error(char *buf, size_t cap)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, cap, "%s", errno ? strerror(errno) : "connection closed during TLS");
        return buf;
    }
    ERR_error_string_n(e, buf, cap);
    ERR_clear_error();
    return buf;
}
