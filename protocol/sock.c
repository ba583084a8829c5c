/*
 * sock.c — TLS reads and writes on a socket (or on whatever BIO the SSL
 * has), and struct sock's plain-or-TLS operations.  Every operation that
 * stops short records what it waits for, so that the caller can never arm
 * the wrong event.
 */
#include "protocol/sock.h"

#include <netinet/in.h>
#include <linux/tcp.h> /* tcpi_min_rtt, which glibc's struct tcp_info lacks */
#include <stddef.h>
#include <sys/socket.h>

#include <openssl/err.h>

int64_t sock_tcp_rtt_us(int fd)
{
    struct tcp_info info;
    socklen_t len = sizeof(info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0)
        return -1;
    /* The least first (Linux 4.6 on); UINT32_MAX: no sample yet. */
    if (len >= offsetof(struct tcp_info, tcpi_min_rtt) + sizeof(info.tcpi_min_rtt) &&
        info.tcpi_min_rtt != 0 && info.tcpi_min_rtt != UINT32_MAX)
        return info.tcpi_min_rtt;
    if (len >= offsetof(struct tcp_info, tcpi_rtt) + sizeof(info.tcpi_rtt) && info.tcpi_rtt != 0)
        return info.tcpi_rtt;
    return -1;
}

/* A plain socket; TLS is added after with its SSL. */
void sock_init(struct sock *k, int fd)
{
    k->fd = fd;
    k->ssl = NULL;
    k->read_want = STREAM_WANT_READ;
    k->write_want = STREAM_WANT_WRITE;
}

ssize_t sock_tls_status(SSL *ssl, int ret, uint8_t *want)
{
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *want = STREAM_WANT_READ;
        return STREAM_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = STREAM_WANT_WRITE;
        return STREAM_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return STREAM_EOF;
    case SSL_ERROR_SYSCALL:
        /* errno 0: the peer hung up without close_notify (a WebSocket's BIO says so too). */
        if (ERR_peek_error() == 0 && (errno == 0 || errno == ECONNRESET))
            return STREAM_EOF;
        return STREAM_ERROR;
    default:
        return STREAM_ERROR;
    }
}

/*
 * Gives back OpenSSL's 16 KB read buffer once every decrypted byte has
 * been taken.  SSL_MODE_RELEASE_BUFFERS misses a case: a read that took
 * in a TLS 1.3 session ticket keeps the buffer, so every idle connection
 * to a server held 16 KB for nothing.  OpenSSL frees nothing while a
 * record is partly read or written.
 */
static void sock_tls_release(SSL *ssl)
{
    SSL_free_buffers(ssl);
}

ssize_t sock_tls_read(SSL *ssl, void *p, size_t max, uint8_t *want, int *more)
{
    size_t got = 0;
    *more = 0;
    ERR_clear_error();
    int ret = SSL_read_ex(ssl, p, max, &got);
    if (ret <= 0) {
        ssize_t st = sock_tls_status(ssl, ret, want);
        if (st == STREAM_AGAIN && *want == STREAM_WANT_READ)
            sock_tls_release(ssl);
        return st;
    }
    *want = STREAM_WANT_READ;
    *more = SSL_pending(ssl) > 0;
    if (!*more)
        sock_tls_release(ssl);
    return (ssize_t)got;
}

/*
 * One SSL_write_ex() writes at most one record with partial writes
 * enabled, so keep going until everything is out or OpenSSL says what it
 * waits for.
 */
ssize_t sock_tls_write(SSL *ssl, const void *p, size_t n, uint8_t *want)
{
    const uint8_t *bytes = p;
    size_t total = 0;
    while (total < n) {
        size_t done = 0;
        ERR_clear_error();
        int ret = SSL_write_ex(ssl, bytes + total, n - total, &done);
        if (ret <= 0) {
            ssize_t st = sock_tls_status(ssl, ret, want);
            return st == STREAM_AGAIN && total > 0 ? (ssize_t)total : st;
        }
        total += done;
    }
    *want = STREAM_WANT_WRITE;
    return (ssize_t)total;
}

void sock_tls_end(SSL *ssl)
{
    ERR_clear_error();
    if (!SSL_in_init(ssl))
        SSL_shutdown(ssl);
    SSL_free(ssl);
    ERR_clear_error();
}

ssize_t sock_read(struct sock *k, void *p, size_t max, int *more)
{
    if (k->ssl != NULL)
        return sock_tls_read(k->ssl, p, max, &k->read_want, more);
    *more = 0;
    return sock_recv(k->fd, p, max, &k->read_want);
}

ssize_t sock_write(struct sock *k, const void *p, size_t n)
{
    if (k->ssl != NULL)
        return sock_tls_write(k->ssl, p, n, &k->write_want);
    return sock_send(k->fd, p, n, &k->write_want);
}

int sock_take_fd(struct sock *k)
{
    if (k->ssl != NULL) {
        sock_tls_end(k->ssl);
        k->ssl = NULL;
    }
    int fd = k->fd;
    k->fd = -1;
    return fd;
}
