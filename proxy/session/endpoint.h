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

#include <event2/event_struct.h>

#include "protocol/stream.h"

struct endpoint;
struct evbuffer;
struct event;
struct session;
struct uring_recv;
struct uring_send;
struct worker;

typedef void (*endpoint_handler)(struct session *s);

/*
 * Whoever owns an endpoint: its session (session.c), the pool while it
 * keeps a server connection between clients (pool.c), or a move that
 * takes the old server connection's failures itself (move.h).  The
 * endpoint knows nothing of them but these.
 */
struct endpoint_owner {
    /* An event of the socket: runs endpoint_dispatch inside the owner's own bracket. */
    void (*event)(struct endpoint *ep, short what);
    /*
     * The socket failed (the peer hung up, a read or a write failed, out
     * of memory); gone: it failed reading (the peer's end, or a read error).
     */
    void (*failed)(struct session *s, struct endpoint *ep, const char *why, bool gone);
    /* The id its log lines carry (a session's; 0: none). */
    uint64_t (*log_id)(const struct endpoint *ep);
    /* The ring has sent all it was given, and nobody waits for that: NULL: nothing to do. */
    void (*drained)(struct endpoint *ep);
};

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
    /*
     * rev: readability, and a client's hangup while its reads are paused
     * (EV_CLOSED: the same event, its mask changed, rather than one more
     * event a client); rev_mask: what it is assigned now.  wev:
     * writability, made as a send first waits for it (NULL until then),
     * let go as the endpoint parks (endpoint_park.c).  rev is NULL until
     * the socket is attached, then rev_event (below).
     */
    struct event *rev, *wev;
    struct evbuffer *in, *out;
    endpoint_handler on_read;  /* the phase's input step (or handshake, connect); NULL: none */
    endpoint_handler on_write; /* runs when queued output may move; NULL: just flush */
    struct session *session;   /* NULL: a kept server connection between clients */
    /* Told of its events and failures: its session, the pool, a move. */
    const struct endpoint_owner *owner;
    struct worker *w;       /* whose loop its events are on */
    uint32_t fwd_remaining; /* bytes of the current message still to forward */
    char last_type;         /* type of the last message seen starting */
    bool client;            /* the client's side (else a server's) */
    bool read_paused;       /* back-pressure: the peer's output is full */
    bool eof;               /* the peer ended its stream; what it sent before waits in in */
    bool hangup_seen;       /* its owner took the client's hangup: no longer watched */
    bool linger; /* its last word sent: closed after a FIN and a drain (runtime/linger.h) */
    /*
     * A server's, while a cancel request pgnear sent to its server is being
     * delivered: what is queued for it waits (endpoint_release_writes).
     * PostgreSQL signals the canceled backend twice, its process and then
     * its process group, and a second signal that lands after the canceled
     * statement ended would cancel the next one; once the server has closed
     * the cancel connection, both are sent, and a backend reading its next
     * message drops a cancel that came meanwhile.
     */
    bool writes_held;
    /*
     * Its in and out went back to the worker while it waits with nothing
     * pending (endpoint_park): both point to the worker's quiet buffer,
     * which reads as empty and takes nothing, until endpoint_wake.
     */
    bool parked;
    bool rev_armed, wev_armed;
    short rev_mask;
    /*
     * ring: sends go through the worker's io_uring (endpoint_use_ring); tx
     * is the ring's send while there are bytes to send (NULL when idle),
     * the bytes in flight in it, what comes meanwhile in out.  Else each
     * flush writes to the socket itself.  ring_rx: the worker's ring can
     * receive for it too (asked once, as ring is set).
     */
    bool ring : 1, ring_rx : 1;
    bool tx_failed;    /* a send failed (the ring's; no write event to be had): the next flush tells
                          the owner */
    bool drain_wanted; /* run on_write as the ring's sends complete (someone waits for them) */
    bool rx_unread;    /* rx's bytes came for no reader: the next reader is to be run for them */
    int tx_errno;      /* why tx_failed */
    struct uring_send *tx;
    /*
     * rx: with ring, the ring's receive when the worker's ring can receive,
     * made as a read first finds it wanted (NULL: reads call recv on the
     * loop's read events).  It is armed
     * while the worker's load makes it pay (uring_recv_wanted), the socket
     * read on its read events otherwise, and moves as it next reads: from
     * the ring once its stop is told, to it at once (the socket read no
     * more while it is armed, so the bytes stay in order).  The bytes of its
     * last completion stay in the ring's buffer (rx->kept) until a read
     * takes them, as a read would take them from the socket; what a reader
     * does not take before the next completion, or what comes for no
     * reader, goes to in.  rx->error is its failure, which the next read
     * tells.  Kept in rx, not here: an idle client has no rx.
     */
    struct uring_recv *rx;
    uint64_t bytes_in, bytes_out; /* read from and written to the socket */
    /*
     * The read event's storage (event_assign): a crowd's clients each
     * hold one, and in the endpoint it costs no allocation of its own.
     */
    struct event rev_event;
};

/*
 * Buffers, and events on w's loop when fd >= 0, for s (a client's side
 * when client); <0 when out of memory (endpoint_free cleans up).
 */
int endpoint_init(struct endpoint *ep, struct worker *w, const struct endpoint_owner *owner,
                  struct session *s, bool client, int fd);
/*
 * From now on the endpoint's sends go through its worker's io_uring, when
 * the worker has one and the stream is plain TCP (TLS and WebSocket
 * streams keep writing themselves), and so do its reads where the ring
 * can receive, while the worker's load makes that pay.  Sessions switch
 * once logged in.
 */
void endpoint_use_ring(struct endpoint *ep);
/* Bytes queued for the socket and not yet taken by it: in out, and in the ring's send. */
size_t endpoint_queued(const struct endpoint *ep);
/*
 * Whether the peer sent something not yet read, or ended, as its socket
 * says (a look, a system call): true also for bytes read and not taken.
 * False while the ring receives for it (what came is the ring's to tell).
 */
bool endpoint_peer_spoke(const struct endpoint *ep);

/* Whether ep's bytes come through the ring's receive, at the end of the loop's turn, not a read. */
bool endpoint_ring_receiving(const struct endpoint *ep);
/*
 * on_write is to run as the ring's sends complete, not only when the
 * socket reports room: someone waits for the queued bytes to drain (a
 * paused peer, a close after the last bytes).  Under epoll it changes
 * nothing.
 */
static inline void endpoint_want_drain(struct endpoint *ep, bool want)
{
    ep->drain_wanted = want;
}
/*
 * With the ring, a block for the next read whose bytes are all for this
 * endpoint: endpoint_send_bytes then sends from it without a copy, and
 * the block stays the send's until the kernel took them.  NULL: read
 * elsewhere (no ring, or bytes queued before them).  What is left
 * unsent of it is given back by endpoint_return_block.
 */
uint8_t *endpoint_borrow_block(struct endpoint *ep);
void endpoint_return_block(struct endpoint *ep);
/*
 * Writes what out holds (or hands it to the ring) without telling the
 * owner of a failure: 0, or -1 when the socket failed (the caller closes).
 */
int endpoint_write_out(struct endpoint *ep);
/* Detaches, then frees the buffers. */
void endpoint_free(struct endpoint *ep);
/*
 * An idle client's buffers go back to its worker (runtime/buffer_pool.h),
 * and its write event goes, when it holds nothing — no byte read and not
 * taken, none queued or in flight, no half message — and is not parked
 * already: true when they went.  Its owner decides when it is idle; the
 * endpoint wakes itself for its own events (endpoint_dispatch, the ring's
 * receive), and whoever else writes to it wakes it first.
 */
bool endpoint_park(struct endpoint *ep);
/* Its buffers again, when parked: 0, or -1 when out of memory (it stays parked). */
int endpoint_wake(struct endpoint *ep);
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
/*
 * A server's sends wait while pgnear's cancel requests to it are delivered
 * (endpoint.writes_held says why), then go: flushed for s (<0: s closed),
 * or, s NULL, left to its next flush.
 */
void endpoint_hold_writes(struct endpoint *ep);
int endpoint_release_writes(struct session *s, struct endpoint *ep);
/*
 * The reader runs no more until endpoint_resume_read; the socket's read
 * event is disarmed when it next fires (a pause that ends sooner touches
 * no epoll registration), and a client's hangup is watched meanwhile.
 */
void endpoint_pause_read(struct endpoint *ep);

/*
 * The client's hangup, seen while its reads were paused, is its owner's to
 * handle when they resume (the bytes before it are read first, then the
 * end of stream): it is watched no more.
 */
void endpoint_hangup_taken(struct endpoint *ep);
void endpoint_resume_read(struct endpoint *ep);
/*
 * A paused reader's ring receive stopped now rather than when bytes next
 * come: the peer's further bytes wait in the socket, as they do for a
 * paused read event, not in pgnear (back-pressure).  Nothing without it.
 */
void endpoint_stop_receiving(struct endpoint *ep);
int endpoint_send(struct session *s, struct endpoint *ep, const void *p, size_t n);
/*
 * Reads what the socket has into ep->in, as stream_read does (a count, or
 * a stream_status): with the ring's receive, what it received is in
 * ep->in already and this says STREAM_AGAIN, or the end or failure it
 * met.  Tells nobody: the pool's reader of a kept connection.
 */
ssize_t endpoint_read(struct endpoint *ep, size_t max, int *more);
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
/* Its events on fd, a socket made after the endpoint (a server's). */
int endpoint_attach(struct endpoint *ep, int fd);
/*
 * Runs the endpoint's writer when the readiness its output waits for came,
 * then its reader when the one its read waits for did; ended is the
 * owner's flag that it ended meanwhile (nothing more is run then).  The
 * owner's event calls it.
 */
void endpoint_dispatch(struct session *s, struct endpoint *ep, short what, const bool *ended);
void endpoint_detach(struct endpoint *ep);

#endif
