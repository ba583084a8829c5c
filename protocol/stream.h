/*
 * stream.h — one non-blocking byte stream, plain, TLS or WebSocket (itself
 * over plain or TLS, and maybe with TLS inside), read into and written
 * from libevent buffers.  Whoever reads the stream never learns which.
 *
 * The relay calls these directly from its event callbacks so that a write
 * is attempted the moment there is something to send, instead of waiting
 * a loop turn for a writable event.
 */
#ifndef PGNEAR_PROTOCOL_STREAM_H
#define PGNEAR_PROTOCOL_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "protocol/sock.h"
#include "protocol/ws.h"

struct evbuffer;

/*
 * Reads and writes keep separate waits, as a socket's (sock.h), because
 * with TLS either may need the other direction.  Each operation sets its
 * own field whenever it stops short, so whoever arms the socket's events
 * knows, for the read side and the write side apart, which readiness
 * resumes it.  A TLS handshake counts as a read.  Inside a WebSocket they
 * are what the socket under its frames waits for.
 */
struct stream {
    SSL *ssl;           /* TLS of the stream (inside the WebSocket when ws is set) */
    struct ws_conn *ws; /* the stream is a WebSocket's (ws.h); it owns the socket's TLS */
    int fd;
    uint8_t read_want;  /* what an unfinished read (or handshake) waits for */
    uint8_t write_want; /* what unwritten bytes wait for */
};

void stream_init(struct stream *s, int fd);
void stream_close(struct stream *s);
/* Ends TLS as stream_close does, but hands the socket to the caller to close. */
int stream_take_fd(struct stream *s);

/*
 * Appends at most max bytes to buf.  Returns the count (> 0) or a
 * stream_status.  With TLS, *more is set when decrypted bytes remain
 * buffered inside OpenSSL and no socket event will announce them.  The
 * bytes go through a small block on the stack and are appended, so buf
 * only ever holds memory for bytes that arrived (a reservation of max
 * bytes per read would pin a large chain for every small read).
 */
ssize_t stream_read(struct stream *s, struct evbuffer *buf, size_t max, int *more);

/*
 * Writes as much of buf as the socket takes and drains it; returns bytes
 * (0 included) or a stream_status.  Whenever bytes are left in buf,
 * write_want says which readiness to wait for.
 */
ssize_t stream_write(struct stream *s, struct evbuffer *buf);

/* The same on flat memory: at most max bytes into p; as much of p[0..n) as the socket takes. */
ssize_t stream_read_bytes(struct stream *s, void *p, size_t max, int *more);
ssize_t stream_write_bytes(struct stream *s, const void *p, size_t n);

/* Decrypted bytes are waiting inside OpenSSL (no socket event will announce them). */
bool stream_has_pending(const struct stream *s);

/*
 * A stream with nothing under way lets go of what it can make again (a
 * WebSocket's frame state), as an idle client's buffers go.
 */
void stream_rest(struct stream *s);

/* The WebSocket keeps control frames for the socket (then write_want says what they wait for). */
static inline bool stream_has_output(const struct stream *s)
{
    return s->ws != NULL && ws_has_output(s->ws); /* inline: the relay asks on every step */
}

/* Sends those control frames: 0 when done or nothing is waiting, else a stream_status. */
int stream_flush(struct stream *s);

/*
 * Turns s into a WebSocket over what it was (plain or TLS), after the
 * HTTP upgrade: -1 when out of memory (s unchanged).
 */
int stream_push_websocket(struct stream *s, uint64_t max_frame);

/* Writes a small block that must go out whole, before TLS (SSLRequest replies). */
ssize_t stream_write_raw(struct stream *s, const void *p, size_t n);

/*
 * Starts the server side of TLS on the stream (an SSLRequest answered
 * 'S'): on the socket, or inside the WebSocket.  -1 when out of memory.
 */
int stream_tls_server(struct stream *s, SSL_CTX *ctx);

/*
 * The same for a direct TLS handshake (PostgreSQL 17's sslnegotiation=direct):
 * hello[0..n), its first bytes, were already read off the stream, and
 * OpenSSL gets a copy of them ahead of the rest (tls_prefix.h).  -1 when out
 * of memory (s unchanged).
 */
int stream_tls_server_direct(struct stream *s, SSL_CTX *ctx, const void *hello, size_t n);

/* TLS handshakes, resumed on each event until 0 (done) or STREAM_ERROR. */
int stream_tls_accept(struct stream *s);
int stream_tls_connect(struct stream *s);

/* A short description of the last TLS error on this thread, for logs. */
const char *stream_tls_error(char *buf, size_t cap);

/* Why the last operation on s failed, for logs: the WebSocket's, TLS's or errno's words. */
const char *stream_error(const struct stream *s, char *buf, size_t cap);

#endif
