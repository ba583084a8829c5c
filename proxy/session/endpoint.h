/*
 * endpoint.h — one side of a session: a socket, its stream, buffers and
 * events (endpoint.c).
 */
#ifndef PGNEAR_PROXY_ENDPOINT_H
#define PGNEAR_PROXY_ENDPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "protocol/stream.h"

struct evbuffer;
struct event;
struct session;

typedef void (*endpoint_handler)(struct session *s);

/*
 * One side of the proxy: a socket, its buffers and its events.
 *
 * Which events are armed is never set by hand: endpoint_arm() derives it
 * from the state — a reader (on_read, not paused) waits for what its
 * stream's last read asked for, queued output waits for what its last
 * write asked for — and every primitive below calls it after touching
 * the stream.  The event callback runs the writer when the readiness its
 * write waits for arrives, and the reader when the readiness its read
 * waits for does, so a TLS operation that wants the other direction is
 * retried when that direction is ready.
 */
struct endpoint {
    struct stream stream;
    struct event *rev, *wev;
    struct event *hev; /* client only: a hangup while reads are paused */
    struct evbuffer *in, *out;
    endpoint_handler on_read;  /* the phase's input step (or handshake, connect); NULL: none */
    endpoint_handler on_write; /* runs when queued output may move; NULL: just flush */
    struct session *session;   /* NULL: a kept server connection between clients */
    /* Its events while it has no session (set by the pool as it keeps it). */
    void (*unowned_event)(struct endpoint *ep, short what);
    /*
     * Who is told when the socket fails (the peer hung up, a read or a
     * write failed): NULL, the session, which ends (endpoint_failed); a
     * move under way takes the old server connection's failures itself.
     */
    void (*on_fail)(struct session *s, struct endpoint *ep, const char *why);
    uint32_t fwd_remaining; /* bytes of the current message still to forward */
    char last_type;         /* type of the last message seen starting */
    bool read_paused;       /* back-pressure: the peer's output is full */
    bool eof;               /* the peer ended its stream; what it sent before waits in in */
    bool rev_armed, wev_armed, hev_armed;
    uint64_t bytes_in, bytes_out; /* read from and written to the socket */
};

/* Buffers, and events when fd >= 0; <0 when out of memory (endpoint_free cleans up). */
int endpoint_init(struct session *s, struct endpoint *ep, int fd);
/* Detaches, then frees the buffers. */
void endpoint_free(struct endpoint *ep);
/* Arms exactly the events the endpoint's reader and queued output wait for. */
void endpoint_arm(struct endpoint *ep);
/*
 * Makes h the endpoint's reader (NULL: nothing is read now).  Bytes that
 * arrived before the change (already in ep->in, or decrypted inside
 * OpenSSL) are handed to h on the next loop turn: a client that pipelines
 * its next message behind the last one is never left waiting.
 */
void endpoint_set_reader(struct endpoint *ep, endpoint_handler h);
/* A reader that waits for the socket to become writable (a TCP connect). */
void endpoint_wait_writable(struct endpoint *ep, endpoint_handler h);
int endpoint_flush(struct session *s, struct endpoint *ep); /* <0: session closed */
void endpoint_pause_read(struct endpoint *ep);
void endpoint_resume_read(struct endpoint *ep);
int endpoint_send(struct session *s, struct endpoint *ep, const void *p, size_t n);
/* Reads what the socket has into ep->in; <0 closed (session closed), 0 nothing, >0 bytes. */
ssize_t endpoint_fill(struct session *s, struct endpoint *ep, size_t max, int *more);
/* The same into flat memory; >0 bytes read, 0 nothing yet, <0 session closed. */
ssize_t endpoint_fill_bytes(struct session *s, struct endpoint *ep, uint8_t *p, size_t max,
                            int *more);
/*
 * Sends n bytes straight from p when nothing is queued before them; what
 * the socket does not take is queued in ep->out.  <0: session closed.
 */
int endpoint_send_bytes(struct session *s, struct endpoint *ep, const uint8_t *p, size_t n);
/*
 * One step of a TLS handshake (stream_tls_accept or stream_tls_connect),
 * run as the endpoint's reader: arms the event the handshake waits for;
 * returns 0 when done, STREAM_AGAIN, or STREAM_ERROR.
 */
int endpoint_handshake(struct endpoint *ep, int (*step)(struct stream *));
int endpoint_attach(struct session *s, struct endpoint *ep, int fd);
void endpoint_detach(struct endpoint *ep);

#endif
