/*
 * stream.h — one non-blocking byte stream, plain or TLS, read into and
 * written from libevent buffers.
 *
 * The relay calls these directly from its event callbacks so that a write
 * is attempted the moment there is something to send, instead of waiting
 * a loop turn for a writable event.
 */
#ifndef PGNEAR_PROTOCOL_STREAM_H
#define PGNEAR_PROTOCOL_STREAM_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

struct evbuffer;

enum stream_status {
    STREAM_AGAIN = -1, /* nothing now: wait for the event in stream.want */
    STREAM_ERROR = -2, /* errno or the TLS error queue says why */
    STREAM_EOF = -3,
};

/* Which readiness the last STREAM_AGAIN waits for (TLS may want the other one). */
enum stream_want {
    STREAM_WANT_READ = 1,
    STREAM_WANT_WRITE = 2,
};

struct stream {
    int fd;
    SSL *ssl;
    int want;
};

void stream_init(struct stream *s, int fd);
void stream_close(struct stream *s);

/*
 * Appends at most max bytes to buf.  Returns the count (> 0) or a
 * stream_status.  With TLS, *more is set when decrypted bytes remain
 * buffered inside OpenSSL and no socket event will announce them.
 */
ssize_t stream_read(struct stream *s, struct evbuffer *buf, size_t max, int *more);

/* Writes as much of buf as the socket takes and drains it; returns bytes or a stream_status. */
ssize_t stream_write(struct stream *s, struct evbuffer *buf);

/* The same on flat memory: at most max bytes into p; as much of p[0..n) as the socket takes. */
ssize_t stream_read_bytes(struct stream *s, void *p, size_t max, int *more);
ssize_t stream_write_bytes(struct stream *s, const void *p, size_t n);

/* Writes a small block that must go out whole, before TLS (SSLRequest replies). */
ssize_t stream_write_raw(struct stream *s, const void *p, size_t n);

/* TLS handshakes, resumed on each event until 0 (done) or STREAM_ERROR. */
int stream_tls_accept(struct stream *s);
int stream_tls_connect(struct stream *s);

/* A short description of the last TLS error on this thread, for logs. */
const char *stream_tls_error(char *buf, size_t cap);

#endif
