/*
 * ws.h — the server side of a WebSocket connection (RFC 6455) that carries
 * one byte stream: what binary messages bring is read as a stream, with no
 * relation between frame and message boundaries, and what is written goes
 * out in binary frames.
 *
 * It sits between a socket (sock.h: plain, or TLS for wss) and whoever
 * reads the PostgreSQL stream: struct stream (stream.h) calls it, so the
 * relay, the login and cancel code never see a frame.  The frames are
 * parsed and built by wslay's frame layer; this file holds the policy
 * around it: client frames must be masked, pings are answered, a close is
 * answered and ends the stream, text frames end it with 1003, frames
 * longer than the limit with 1009, anything malformed with 1002.
 *
 * Nothing is allocated per frame or per message.  Incoming payload is
 * unmasked in wslay's 4 KB buffer and copied once into the caller's;
 * outgoing bytes go straight from the caller's buffer (plain) or through
 * one block on the stack (TLS, which copies into its record anyway).
 */
#ifndef PGNEAR_PROTOCOL_WS_H
#define PGNEAR_PROTOCOL_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/bio.h>

#include "protocol/sock.h"

/* Close status codes (RFC 6455 section 7.4.1). */
#define WS_CLOSE_NORMAL      1000
#define WS_CLOSE_GOING_AWAY  1001
#define WS_CLOSE_PROTOCOL    1002
#define WS_CLOSE_UNSUPPORTED 1003 /* a text frame: we carry bytes */
#define WS_CLOSE_BAD_DATA    1007 /* a close reason that is not UTF-8 */
#define WS_CLOSE_TOO_BIG     1009
#define WS_CLOSE_INTERNAL    1011

struct ws_conn;

/*
 * A WebSocket over the socket (and TLS, if any) of below, which it takes
 * over: below is left with fd -1 and no TLS.  max_frame bounds the payload
 * of one client frame.  NULL when out of memory (below untouched).
 */
struct ws_conn *ws_new(struct sock *below, uint64_t max_frame);

/*
 * Sends a close frame (one try, as TLS's close_notify), ends the TLS of
 * the socket, frees the connection and returns the socket for the caller
 * to close.
 */
int ws_free(struct ws_conn *ws);

/* The TLS of wss under the frames (its client certificate, for one); NULL for ws. */
SSL *ws_tls(const struct ws_conn *ws);

/*
 * Up to max bytes of the stream into p: a count (> 0) or a stream_status.
 * STREAM_EOF after a close frame (answered) or a hang-up; STREAM_ERROR
 * after a protocol violation (the close frame saying so is on its way:
 * ws_error() tells why).  *more is set when bytes may be buffered that no
 * socket event will announce.
 */
ssize_t ws_read(struct ws_conn *ws, void *p, size_t max, int *more);

/*
 * Sends bytes of p in a binary frame: how many were taken (a frame cut
 * short by the socket is finished on the next call, which must offer the
 * bytes that follow), or STREAM_AGAIN / STREAM_ERROR.  Control frames
 * waiting (pongs, a close) go first.
 */
ssize_t ws_write(struct ws_conn *ws, const void *p, size_t n);

/* Sends the control frames waiting: 0 when none is left, STREAM_AGAIN or STREAM_ERROR. */
int ws_flush(struct ws_conn *ws);

/* Control frames wait for the socket (the caller must wait for ws_write_want). */
bool ws_has_output(const struct ws_conn *ws);

/* Bytes may wait inside (ours, wslay's or TLS's) that no socket event will announce. */
bool ws_has_pending(const struct ws_conn *ws);

/* Queues a ping (websocket_ping_interval) and tries to send it; <0 when the connection failed. */
int ws_ping(struct ws_conn *ws);

/* Queues a close frame with code and tries to send it; later writes fail. */
void ws_close(struct ws_conn *ws, uint16_t code, const char *reason);

/* What the last unfinished read and write of the socket wait for (enum stream_want). */
uint8_t ws_read_want(const struct ws_conn *ws);
uint8_t ws_write_want(const struct ws_conn *ws);

/* Why the stream ended with STREAM_ERROR, for logs; "" when it did not. */
const char *ws_error(const struct ws_conn *ws);

/*
 * A BIO reading and writing ws's stream, for a TLS session inside the
 * WebSocket (an SSLRequest sent through it).  NULL when out of memory.
 */
BIO *ws_bio_new(struct ws_conn *ws);

/*
 * Lets wslay's frame state (some 4 KiB) and the control frames' part (700
 * bytes) go while nothing is under way in either direction and no control
 * frame is owed, as an idle client's buffers go: true when they are gone
 * (or were).  The next read or write makes them again.
 */
bool ws_rest(struct ws_conn *ws);

/* Frames received since the last ws_pong_seen() call saw a pong (ping liveness). */
bool ws_pong_seen(struct ws_conn *ws);

#endif
