/*
 * stream.c — plain and TLS reads and writes, on flat bytes and straight
 * into and out of evbuffers.  Plain reads use recv() on reserved buffer
 * space rather than evbuffer_read(), which costs an extra FIONREAD ioctl
 * per call.
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

ssize_t stream_read_bytes(struct stream *s, void *p, size_t max, int *more)
{
    *more = 0;
    if (s->ssl != NULL) {
        size_t got = 0;
        ERR_clear_error();
        int ret = SSL_read_ex(s->ssl, p, max, &got);
        if (ret <= 0)
            return stream_tls_status(s, ret);
        *more = SSL_pending(s->ssl) > 0;
        return (ssize_t)got;
    }
    ssize_t got = recv(s->fd, p, max, 0);
    if (got > 0)
        return got;
    if (got == 0)
        return STREAM_EOF;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        s->want = STREAM_WANT_READ;
        return STREAM_AGAIN;
    }
    return STREAM_ERROR;
}

ssize_t stream_read(struct stream *s, struct evbuffer *buf, size_t max, int *more)
{
    struct evbuffer_iovec vec[2];
    *more = 0;
    if (evbuffer_reserve_space(buf, (ev_ssize_t)max, vec, 2) <= 0)
        return STREAM_ERROR;
    if (vec[0].iov_len > max)
        vec[0].iov_len = max;
    ssize_t got = stream_read_bytes(s, vec[0].iov_base, vec[0].iov_len, more);
    vec[0].iov_len = got > 0 ? (size_t)got : 0;
    if (evbuffer_commit_space(buf, vec, got > 0 ? 1 : 0) != 0)
        return STREAM_ERROR;
    return got;
}

ssize_t stream_write_bytes(struct stream *s, const void *p, size_t n)
{
    if (s->ssl != NULL) {
        size_t done = 0;
        ERR_clear_error();
        /* Partial writes and moving write buffers are enabled on the SSL. */
        int ret = SSL_write_ex(s->ssl, p, n, &done);
        return ret > 0 ? (ssize_t)done : stream_tls_status(s, ret);
    }
    ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w >= 0) {
        if ((size_t)w < n)
            s->want = STREAM_WANT_WRITE;
        return w;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        s->want = STREAM_WANT_WRITE;
        return STREAM_AGAIN;
    }
    return STREAM_ERROR;
}

/* Several chunks in one writev(); after a partial write the socket is full. */
static ssize_t stream_write_plain_chunks(struct stream *s, struct evbuffer *buf)
{
    int n = evbuffer_write(buf, s->fd);
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

/*
 * send() for the usual single chunk (cheaper in the kernel than writev()),
 * writev() for several; with TLS one record per chunk.
 */
ssize_t stream_write(struct stream *s, struct evbuffer *buf)
{
    ssize_t total = 0;
    if (s->ssl == NULL && evbuffer_peek(buf, -1, NULL, NULL, 0) > 1)
        return stream_write_plain_chunks(s, buf);
    while (evbuffer_get_length(buf) > 0) {
        struct evbuffer_iovec vec[1];
        if (evbuffer_peek(buf, -1, NULL, vec, 1) < 1)
            return STREAM_ERROR;
        ssize_t n = stream_write_bytes(s, vec[0].iov_base, vec[0].iov_len);
        if (n < 0)
            return total > 0 && n == STREAM_AGAIN ? total : n;
        evbuffer_drain(buf, (size_t)n);
        total += n;
        if ((size_t)n < vec[0].iov_len)
            break; /* the socket is full */
    }
    return total;
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
