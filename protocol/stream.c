/*
 * stream.c — reads and writes of a stream, on flat bytes and on
 * evbuffers: to the socket (sock.h) or to the WebSocket over it (ws.h),
 * with TLS on either.  Every operation that stops short records what it
 * waits for (read_want, write_want), so that the caller can never arm the
 * wrong event: a write that leaves bytes behind always says which
 * readiness will take them.
 */
#include "protocol/stream.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <openssl/err.h>

#include "protocol/tls.h"
#include "protocol/tls_prefix.h"

/* A plain stream over fd; TLS and WebSocket layers are added after. */
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
        sock_tls_end(s->ssl);
        s->ssl = NULL;
    }
    if (s->ws != NULL) {
        ws_free(s->ws); /* its close frame, the socket's TLS; the socket is s->fd */
        s->ws = NULL;
    }
    int fd = s->fd;
    s->fd = -1;
    return fd;
}

/* Ends the layers above the fd (TLS close, the WebSocket's close frame), then closes it. */
void stream_close(struct stream *s)
{
    int fd = stream_take_fd(s);
    if (fd >= 0)
        close(fd);
}

bool stream_has_pending(const struct stream *s)
{
    return sock_tls_pending(s->ssl) || (s->ws != NULL && ws_has_pending(s->ws));
}

void stream_rest(struct stream *s)
{
    if (s->ws != NULL)
        ws_rest(s->ws);
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

/*
 * TLS inside a WebSocket waits, for a read or a write of its records,
 * for what the socket under the frames waits for (it may be TLS too).
 */
static uint8_t stream_ws_want(const struct stream *s, uint8_t tls_want)
{
    return tls_want == STREAM_WANT_READ ? ws_read_want(s->ws) : ws_write_want(s->ws);
}

/* TLS over the WebSocket's BIO: sock's TLS read, with the waits and leftovers of the frames. */
static ssize_t stream_read_ws_tls(struct stream *s, void *p, size_t max, int *more)
{
    ssize_t got = sock_tls_read(s->ssl, p, max, &s->read_want, more);
    if (got == STREAM_AGAIN)
        s->read_want = stream_ws_want(s, s->read_want);
    else if (got > 0 && !*more)
        *more = ws_has_pending(s->ws); /* records may wait in the frames below */
    return got;
}

ssize_t stream_read_bytes(struct stream *s, void *p, size_t max, int *more)
{
    if (s->ws != NULL) {
        if (s->ssl != NULL)
            return stream_read_ws_tls(s, p, max, more);
        ssize_t n = ws_read(s->ws, p, max, more);
        if (n == STREAM_AGAIN)
            s->read_want = ws_read_want(s->ws);
        return n;
    }
    if (s->ssl != NULL)
        return sock_tls_read(s->ssl, p, max, &s->read_want, more);
    *more = 0;
    return sock_recv(s->fd, p, max, &s->read_want);
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

/* TLS over the WebSocket's BIO; a write cut short waits for what the frames' socket waits for. */
static ssize_t stream_write_ws_tls(struct stream *s, const void *p, size_t n)
{
    ssize_t w = sock_tls_write(s->ssl, p, n, &s->write_want);
    if (w == STREAM_AGAIN || (w >= 0 && (size_t)w < n))
        s->write_want = stream_ws_want(s, s->write_want);
    return w;
}

/*
 * Writes through whatever layers the stream has: WebSocket, TLS, both (TLS
 * inside the WebSocket) or none. Sets write_want.
 */
ssize_t stream_write_bytes(struct stream *s, const void *p, size_t n)
{
    if (s->ws != NULL) {
        if (s->ssl != NULL)
            return stream_write_ws_tls(s, p, n);
        ssize_t w = ws_write(s->ws, p, n);
        s->write_want = ws_write_want(s->ws);
        return w;
    }
    if (s->ssl != NULL)
        return sock_tls_write(s->ssl, p, n, &s->write_want);
    return sock_send(s->fd, p, n, &s->write_want);
}

/* Several chunks in one writev(). */
static ssize_t stream_write_plain_chunks(struct stream *s, struct evbuffer *buf)
{
    s->write_want = STREAM_WANT_WRITE;
    int n = evbuffer_write(buf, s->fd);
    if (n >= 0)
        return n;
    return sock_errno_again() ? 0 : STREAM_ERROR;
}

/*
 * send() for the usual single chunk (cheaper in the kernel than writev()),
 * writev() for several; with TLS chunk by chunk.  One peek both counts
 * the chunks and finds the first (the relay writes twice a transaction).
 */
ssize_t stream_write(struct stream *s, struct evbuffer *buf)
{
    struct evbuffer_iovec vec[2];
    int chunks = evbuffer_peek(buf, -1, NULL, vec, 2);
    if (s->ssl == NULL && s->ws == NULL && chunks > 1)
        return stream_write_plain_chunks(s, buf);
    ssize_t total = 0;
    while (chunks > 0) {
        ssize_t n = stream_write_bytes(s, vec[0].iov_base, vec[0].iov_len);
        if (n == STREAM_AGAIN)
            return total;
        if (n < 0)
            return n;
        evbuffer_drain(buf, (size_t)n);
        total += n;
        if ((size_t)n < vec[0].iov_len || chunks == 1)
            break; /* the socket is full (write_want says so), or all of buf went */
        chunks = evbuffer_peek(buf, -1, NULL, vec, 1);
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

/*
 * SSL_accept's or SSL_connect's result as 0 (done) or a stream_status; an EOF
 * mid-handshake is an error.
 */
static int stream_handshake_result(struct stream *s, int ret)
{
    if (ret == 1) {
        s->read_want = STREAM_WANT_READ;
        return 0;
    }
    ssize_t st = sock_tls_status(s->ssl, ret, &s->read_want);
    if (st == STREAM_AGAIN && s->ws != NULL)
        s->read_want = stream_ws_want(s, s->read_want);
    return st == STREAM_EOF ? STREAM_ERROR : (int)st;
}

int stream_push_websocket(struct stream *s, uint64_t max_frame)
{
    struct sock below = {
        .fd = s->fd, .ssl = s->ssl, .read_want = s->read_want, .write_want = s->write_want};
    struct ws_conn *ws = ws_new(&below, max_frame); /* takes the socket's TLS */
    if (ws == NULL)
        return -1;
    s->ssl = NULL; /* s->fd stays: the socket events wait on */
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

int stream_tls_server_direct(struct stream *s, SSL_CTX *ctx, const void *hello, size_t n)
{
    if (stream_tls_server(s, ctx) != 0)
        return -1;
    if (tls_prefix_push(s->ssl, hello, n) == 0)
        return 0;
    SSL_free(s->ssl);
    s->ssl = NULL;
    return -1;
}

int stream_tls_accept(struct stream *s)
{
    ERR_clear_error();
    return stream_handshake_result(s, SSL_accept(s->ssl));
}

/*
 * One step of the client-side handshake (pgnear to a server): 0 when done,
 * STREAM_AGAIN to call again.
 */
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
