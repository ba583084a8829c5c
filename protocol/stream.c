/*
 * stream.c — plain and TLS reads and writes, on flat bytes and on
 * evbuffers.  Every operation that stops short records what it waits for
 * (read_want, write_want), so that the caller can never arm the wrong
 * event: a write that leaves bytes behind always says which readiness
 * will take them.
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

#include "protocol/tls.h"
#include "protocol/ws.h"

void stream_init(struct stream *s, int fd)
{
    s->fd = fd;
    s->ssl = NULL;
    s->ws = NULL;
    s->read_want = STREAM_WANT_READ;
    s->write_want = STREAM_WANT_WRITE;
}

int stream_take_fd(struct stream *s)
{
    if (s->ssl != NULL) {
        /* Best effort close_notify: one try on the non-blocking socket. */
        ERR_clear_error();
        if (!SSL_in_init(s->ssl))
            SSL_shutdown(s->ssl);
        SSL_free(s->ssl);
        s->ssl = NULL;
        ERR_clear_error();
    }
    if (s->ws != NULL) {
        ws_free(s->ws); /* its close frame, the socket's TLS; the socket is s->fd */
        s->ws = NULL;
    }
    int fd = s->fd;
    s->fd = -1;
    return fd;
}

void stream_close(struct stream *s)
{
    int fd = stream_take_fd(s);
    if (fd >= 0)
        close(fd);
}

bool stream_has_pending(const struct stream *s)
{
    return (s->ssl != NULL && SSL_pending(s->ssl) > 0) || (s->ws != NULL && ws_has_pending(s->ws));
}

int stream_flush(struct stream *s)
{
    if (s->ws == NULL)
        return 0;
    int rc = ws_flush(s->ws);
    if (rc == STREAM_AGAIN)
        s->write_want = ws_write_want(s->ws);
    return rc;
}

/* Maps an SSL_get_error() result onto a stream status; *want gets what to wait for. */
static ssize_t stream_tls_status(struct stream *s, int ret, uint8_t *want)
{
    switch (SSL_get_error(s->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        /* Inside a WebSocket, what the socket below waits for (it may be TLS too). */
        *want = s->ws != NULL ? ws_read_want(s->ws) : STREAM_WANT_READ;
        return STREAM_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = s->ws != NULL ? ws_write_want(s->ws) : STREAM_WANT_WRITE;
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

static bool stream_errno_again(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/*
 * Gives back OpenSSL's 16 KB read buffer once every decrypted byte has
 * been taken.  SSL_MODE_RELEASE_BUFFERS misses a case: a read that took
 * in a TLS 1.3 session ticket keeps the buffer, so every idle connection
 * to a server held 16 KB for nothing.  OpenSSL frees nothing while a
 * record is partly read or written.
 */
static void stream_tls_release(struct stream *s)
{
    SSL_free_buffers(s->ssl);
}

ssize_t stream_read_bytes(struct stream *s, void *p, size_t max, int *more)
{
    *more = 0;
    if (s->ssl != NULL) {
        size_t got = 0;
        ERR_clear_error();
        int ret = SSL_read_ex(s->ssl, p, max, &got);
        if (ret <= 0) {
            ssize_t st = stream_tls_status(s, ret, &s->read_want);
            if (st == STREAM_AGAIN && s->read_want == STREAM_WANT_READ)
                stream_tls_release(s);
            return st;
        }
        s->read_want = STREAM_WANT_READ;
        bool decrypted = SSL_pending(s->ssl) > 0;
        /* Inside a WebSocket, records may wait in the frames below as well. */
        *more = decrypted || (s->ws != NULL && ws_has_pending(s->ws));
        if (!decrypted)
            stream_tls_release(s);
        return (ssize_t)got;
    }
    if (s->ws != NULL) {
        ssize_t n = ws_read(s->ws, p, max, more);
        if (n == STREAM_AGAIN)
            s->read_want = ws_read_want(s->ws);
        return n;
    }
    ssize_t got = recv(s->fd, p, max, 0);
    if (got > 0)
        return got;
    if (got == 0)
        return STREAM_EOF;
    if (stream_errno_again()) {
        s->read_want = STREAM_WANT_READ;
        return STREAM_AGAIN;
    }
    return STREAM_ERROR;
}

/* Enough for one TLS record, so a TLS read is never cut short by this block. */
#define STREAM_READ_BLOCK (16 * 1024 + 512)

ssize_t stream_read(struct stream *s, struct evbuffer *buf, size_t max, int *more)
{
    uint8_t block[STREAM_READ_BLOCK];
    ssize_t got = stream_read_bytes(s, block, max < sizeof(block) ? max : sizeof(block), more);
    if (got > 0 && evbuffer_add(buf, block, (size_t)got) != 0)
        return STREAM_ERROR;
    return got;
}

/*
 * TLS: one SSL_write_ex() writes at most one record with partial writes
 * enabled, so keep going until everything is out or OpenSSL says what it
 * waits for.  A record that did not fit stays inside OpenSSL, and the
 * retry must offer the same bytes again: the caller keeps them at the
 * front of its queue.
 */
static ssize_t stream_write_tls(struct stream *s, const uint8_t *p, size_t n)
{
    size_t total = 0;
    while (total < n) {
        size_t done = 0;
        ERR_clear_error();
        int ret = SSL_write_ex(s->ssl, p + total, n - total, &done);
        if (ret <= 0) {
            ssize_t st = stream_tls_status(s, ret, &s->write_want);
            return st == STREAM_AGAIN && total > 0 ? (ssize_t)total : st;
        }
        total += done;
    }
    s->write_want = STREAM_WANT_WRITE;
    return (ssize_t)total;
}

ssize_t stream_write_bytes(struct stream *s, const void *p, size_t n)
{
    if (s->ssl != NULL)
        return stream_write_tls(s, p, n);
    if (s->ws != NULL) {
        ssize_t w = ws_write(s->ws, p, n);
        s->write_want = ws_write_want(s->ws);
        return w;
    }
    ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    s->write_want = STREAM_WANT_WRITE; /* the only readiness a plain write waits for */
    if (w >= 0)
        return w;
    return stream_errno_again() ? STREAM_AGAIN : STREAM_ERROR;
}

/* Several chunks in one writev(). */
static ssize_t stream_write_plain_chunks(struct stream *s, struct evbuffer *buf)
{
    s->write_want = STREAM_WANT_WRITE;
    int n = evbuffer_write(buf, s->fd);
    if (n >= 0)
        return n;
    return stream_errno_again() ? 0 : STREAM_ERROR;
}

/*
 * send() for the usual single chunk (cheaper in the kernel than writev()),
 * writev() for several; with TLS chunk by chunk.
 */
ssize_t stream_write(struct stream *s, struct evbuffer *buf)
{
    ssize_t total = 0;
    if (s->ssl == NULL && s->ws == NULL && evbuffer_peek(buf, -1, NULL, NULL, 0) > 1)
        return stream_write_plain_chunks(s, buf);
    while (evbuffer_get_length(buf) > 0) {
        struct evbuffer_iovec vec[1];
        if (evbuffer_peek(buf, -1, NULL, vec, 1) < 1)
            return STREAM_ERROR;
        ssize_t n = stream_write_bytes(s, vec[0].iov_base, vec[0].iov_len);
        if (n == STREAM_AGAIN)
            return total;
        if (n < 0)
            return n;
        evbuffer_drain(buf, (size_t)n);
        total += n;
        if ((size_t)n < vec[0].iov_len)
            break; /* the socket is full; write_want says so */
    }
    return total;
}

ssize_t stream_write_raw(struct stream *s, const void *p, size_t n)
{
    if (s->ws != NULL)
        return stream_write_bytes(s, p, n);
    ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL);
    if (w < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? STREAM_AGAIN : STREAM_ERROR;
    return w;
}

static int stream_handshake_result(struct stream *s, int ret)
{
    if (ret == 1) {
        s->read_want = STREAM_WANT_READ;
        return 0;
    }
    ssize_t st = stream_tls_status(s, ret, &s->read_want);
    return st == STREAM_EOF ? STREAM_ERROR : (int)st;
}

int stream_push_websocket(struct stream *s, uint64_t max_frame)
{
    int fd = s->fd;
    struct ws_conn *ws = ws_new(s, max_frame); /* takes the socket and its TLS */
    if (ws == NULL)
        return -1;
    s->fd = fd; /* still the socket events wait on */
    s->ws = ws;
    s->read_want = STREAM_WANT_READ;
    s->write_want = STREAM_WANT_WRITE;
    return 0;
}

int stream_tls_server(struct stream *s, SSL_CTX *ctx)
{
    if (s->ws == NULL) {
        s->ssl = tls_new_client_ssl(ctx, s->fd);
        return s->ssl != NULL ? 0 : -1;
    }
    BIO *bio = ws_bio_new(s->ws);
    SSL *ssl = bio != NULL ? SSL_new(ctx) : NULL;
    if (ssl == NULL) {
        BIO_free(bio);
        return -1;
    }
    SSL_set_bio(ssl, bio, bio);
    SSL_set_accept_state(ssl);
    s->ssl = ssl;
    return 0;
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

const char *stream_error(const struct stream *s, char *buf, size_t cap)
{
    if (s->ws != NULL && ws_error(s->ws)[0] != '\0') {
        snprintf(buf, cap, "%s", ws_error(s->ws));
        return buf;
    }
    if (s->ssl != NULL || s->ws != NULL)
        return stream_tls_error(buf, cap);
    snprintf(buf, cap, "%s", strerror(errno));
    return buf;
}
