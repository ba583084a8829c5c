/*
 * sock.h — the bytes of one non-blocking socket, plain or TLS: the bottom
 * of every stream.  struct stream (stream.h) reads and writes its socket
 * through these, and a WebSocket (ws.h) the socket under its frames.
 *
 * The status codes and readinesses are the stream's: they are defined
 * here, at the bottom, so that every layer of a stream (sock, ws, stream)
 * returns the same ones and passes them up unchanged.
 *
 * The plain reads and writes are inline: they are the relay's hot path.
 */
#ifndef PGNEAR_PROTOCOL_SOCK_H
#define PGNEAR_PROTOCOL_SOCK_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <openssl/ssl.h>

enum stream_status {
    STREAM_AGAIN = -1, /* nothing now: wait for the readiness in read_want / write_want */
    STREAM_ERROR = -2, /* errno or the TLS error queue says why */
    STREAM_EOF = -3,
};

/* A readiness of the socket: an unfinished operation waits for one of them. */
enum stream_want {
    STREAM_WANT_READ = 1,
    STREAM_WANT_WRITE = 2,
};

/*
 * A socket and its TLS, if any.  Reads and writes keep separate waits,
 * because with TLS either may need the other direction: SSL_read() may
 * have a record of its own to send (WANT_WRITE) and SSL_write() may need
 * to read first (WANT_READ).
 */
struct sock {
    SSL *ssl; /* NULL: plain */
    int fd;
    uint8_t read_want;  /* what an unfinished read waits for */
    uint8_t write_want; /* what unwritten bytes wait for */
};

void sock_init(struct sock *k, int fd);

/*
 * At most max bytes into p: the count (> 0) or a stream_status.  *more is
 * set when decrypted bytes remain inside OpenSSL that no socket event will
 * announce.
 */
ssize_t sock_read(struct sock *k, void *p, size_t max, int *more);

/* As much of p[0..n) as the socket takes: the count (0 included) or a stream_status. */
ssize_t sock_write(struct sock *k, const void *p, size_t n);

/* Ends the TLS (one try at close_notify) and hands the socket to the caller to close. */
int sock_take_fd(struct sock *k);

/*
 * The least round trip the kernel measured on TCP socket fd, in
 * microseconds (its smoothed one on kernels before 4.6): the network's,
 * timed on acknowledgments from the handshake on.  The smoothed figure
 * is not used where the least is known: a peer in interactive mode
 * delays its acknowledgment until it answers, and that sample then holds
 * the peer's work.  -1 when fd has none (not TCP, or nothing measured).
 */
int64_t sock_tcp_rtt_us(int fd);

/*
 * The parts of the above, for a stream whose TLS runs over something else
 * than its socket (a WebSocket, stream.c).  Each takes what it needs and
 * sets *want to the readiness an unfinished operation waits for: for TLS,
 * the direction OpenSSL wants of whatever lies under it.
 */

static inline bool sock_errno_again(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* recv(): the count, STREAM_EOF on a hang-up, STREAM_AGAIN or STREAM_ERROR. */
static inline ssize_t sock_recv(int fd, void *p, size_t max, uint8_t *want)
{
    ssize_t got = recv(fd, p, max, 0);
    if (got > 0)
        return got;
    if (got == 0)
        return STREAM_EOF;
    if (sock_errno_again()) {
        *want = STREAM_WANT_READ;
        return STREAM_AGAIN;
    }
    return STREAM_ERROR;
}

/* send(): the count (0 included), STREAM_AGAIN or STREAM_ERROR. */
static inline ssize_t sock_send(int fd, const void *p, size_t n, uint8_t *want)
{
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    *want = STREAM_WANT_WRITE; /* the only readiness a plain write waits for */
    if (w >= 0)
        return w;
    return sock_errno_again() ? STREAM_AGAIN : STREAM_ERROR;
}

/* sendmsg() of several pieces in one system call, as sock_send. */
static inline ssize_t sock_sendv(int fd, struct iovec *iov, size_t count, uint8_t *want)
{
    struct msghdr msg = {.msg_iov = iov, .msg_iovlen = count};
    ssize_t w = sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    *want = STREAM_WANT_WRITE;
    if (w >= 0)
        return w;
    return sock_errno_again() ? STREAM_AGAIN : STREAM_ERROR;
}

/* Maps an SSL_get_error() result onto a stream_status; *want gets what to wait for. */
ssize_t sock_tls_status(SSL *ssl, int ret, uint8_t *want);

/* SSL_read_ex() as sock_read. */
ssize_t sock_tls_read(SSL *ssl, void *p, size_t max, uint8_t *want, int *more);

/*
 * SSL_write_ex() as sock_write.  A record that did not fit stays inside
 * OpenSSL, and the retry must offer the same bytes again.
 */
ssize_t sock_tls_write(SSL *ssl, const void *p, size_t n, uint8_t *want);

/* Best-effort close_notify, one try on the non-blocking socket, and the SSL freed. */
void sock_tls_end(SSL *ssl);

/* Decrypted bytes wait inside OpenSSL (no socket event will announce them). */
static inline bool sock_tls_pending(const SSL *ssl)
{
    return ssl != NULL && SSL_pending(ssl) > 0;
}

static inline bool sock_pending(const struct sock *k)
{
    return sock_tls_pending(k->ssl);
}

#endif
