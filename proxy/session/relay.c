/*
 * relay.c — an established session: bytes both ways.
 *
 * The scan looks only at message headers: to know boundaries, and to
 * tell the server connection's tx_track each message that starts, which
 * keeps its transaction status (from the server's ReadyForQuery only) and
 * its count of requests outstanding, a few instructions a message.
 *
 * Every read lands in the worker's relay block, or, when the peer sends
 * through the worker's io_uring, in a block the peer's send lends and
 * keeps until the kernel has the bytes (a socket that receives through
 * the ring reads from the ring's buffer there: one copy, as a recv's).
 * When nothing is queued for the peer, it goes out from there: no
 * allocation, no further copy.  Only what the peer's socket does not
 * take, and a header cut off by the end of the read, are kept in
 * evbuffers; while bytes wait for the peer, new ones are appended behind
 * them (one copy, into packed chains).
 *
 * When the peer's output backs up past the high-water mark, reading from
 * the source stops until it drains below the low-water mark.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/db_unhold.h"
#include "proxy/session/fence.h"
#include "proxy/session/relay.h"
#include "proxy/session/gate.h"
#include "proxy/session/latency_hooks.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/state_watch.h"
#include "routing/region.h"

/* What a scan learnt goes into the session; <0: bad length, session failed. */
static inline __attribute__((always_inline)) int
relay_note_scan(struct session *s, struct endpoint *src, const struct frame_scan *sc)
{
    if (sc->error) {
        session_fail_msg(s, "08P01", "%s",
                         src == &s->client ? "invalid message length from client"
                                           : "invalid message length from server");
        return -1;
    }
    src->fwd_remaining = sc->remaining;
    if (sc->messages > 0)
        src->last_type = sc->last_type;
    latency_server_seen(s);
    return 0;
}

/*
 * After the server's bytes went on to the client (its last answer must
 * reach the client before anything is done): what the admin asked for,
 * if the session has come to a safe point.  False when the session ended.
 */
static bool relay_after_server_bytes(struct session *s, enum frame_side side)
{
    return side != FRAME_FROM_SERVER || s->hold.on_safe == SAFE_NOTHING ||
           gate_act_at_safe_point(s);
}

/*
 * A connection that may be kept outlives its client: the client's
 * Terminate, the last thing it sends, is not passed on (the server would
 * end the connection).  Returns how much of the forward bytes at p to
 * send.  A Terminate with anything behind it is sent, and the connection
 * then is not kept.
 */
static size_t relay_keep_terminate(struct session *s, const uint8_t *p, size_t forward)
{
    struct server_conn *sc = s->server_conn;
    if (!sc->poolable)
        return forward;
    if (forward >= sizeof(pkt_terminate) &&
        memcmp(p + forward - sizeof(pkt_terminate), pkt_terminate, sizeof(pkt_terminate)) == 0)
        return forward - sizeof(pkt_terminate);
    sc->poolable = false;
    return forward;
}

/* relay_keep_terminate for the forward bytes at the front of in. */
static size_t relay_keep_terminate_in(struct session *s, struct evbuffer *in, size_t forward)
{
    uint8_t tail[5];
    if (forward < sizeof(tail)) {
        s->server_conn->poolable = false;
        return forward;
    }
    struct evbuffer_ptr at;
    if (evbuffer_ptr_set(in, &at, forward - sizeof(tail), EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(in, &at, tail, sizeof(tail)) != (ssize_t)sizeof(tail)) {
        s->server_conn->poolable = false;
        return forward;
    }
    return relay_keep_terminate(s, tail, sizeof(tail)) == 0 ? forward - sizeof(tail) : forward;
}

/*
 * Under session pooling, whether the client's bytes may leave state that a
 * move without its server cannot carry (state_watch.h); skip: the bytes
 * that end a message begun before.
 */
static inline __attribute__((always_inline)) void relay_watch_client(struct session *s,
                                                                     enum frame_side side,
                                                                     const uint8_t *p, size_t len,
                                                                     size_t skip)
{
    if (side == FRAME_FROM_CLIENT && s->state_unknown == NULL && len > skip)
        state_watch_client(s, p, len, skip);
}

/*
 * Whether the server of a session under session pooling is idle after
 * the bytes just scanned: nothing asked, nothing of a message left.  Its
 * ErrorResponse then is no answer but a backend's FATAL (a fast
 * shutdown's 57P01), and the last thing it sends.
 */
static inline __attribute__((always_inline)) bool relay_server_idle(const struct session *s,
                                                                    const struct endpoint *src)
{
    return src->fwd_remaining == 0 && s->txn == NULL && server_conn_at_safe_point(s->server_conn) &&
           s->client.fwd_remaining == 0;
}

/*
 * Whether the server's bytes just scanned (sc) left it idle with an
 * ErrorResponse last.  Checked after the scan, not before: the answer to
 * the client's last request (its ReadyForQuery) and the FATAL of a backend
 * that ends at once after it may come in one read.
 */
static inline __attribute__((always_inline)) bool
relay_server_ended_idle(const struct session *s, const struct endpoint *src, enum frame_side side,
                        const struct frame_scan *sc)
{
    return __builtin_expect(side == FRAME_FROM_SERVER && sc->messages > 0 && sc->last_type == 'E',
                            0) &&
           relay_server_idle(s, src);
}

/*
 * The idle session's server bytes p (len: skip bytes that end a message
 * begun before, then whole messages, the last an ErrorResponse): the flow's server_ended_idle may
 * move the session instead of ending it.  True when it does: *send is then how many bytes before
 * the error still go to the client; the rest is the move's.
 */
static bool relay_server_ends(struct session *s, const uint8_t *p, size_t len, size_t skip,
                              size_t *send)
{
    size_t pos = skip, last = len;
    while (len - pos >= 5) {
        uint32_t mlen = pkt_be32(p + pos + 1);
        if (mlen < 4 || (size_t)mlen - 4 > len - pos - 5)
            return false;
        last = pos;
        pos += 1 + (size_t)mlen;
    }
    if (last == len || p[last] != 'E')
        return false;
    const struct session_flow *flow = s->w->shared->flow;
    if (flow->server_ended_idle == NULL ||
        !flow->server_ended_idle(s, p + last + 5, pkt_be32(p + last + 1) - 4,
                                 "it sent a FATAL error"))
        return false;
    *send = last;
    return true;
}

/* The client's bytes at the front of in that the watch reads (relay_watch_client). */
static void relay_watch_client_in(struct session *s, struct evbuffer *in, size_t len, size_t skip)
{
    if (s->state_unknown != NULL || len <= skip)
        return;
    const uint8_t *flat = evbuffer_pullup(in, (ssize_t)len);
    if (flat != NULL)
        state_watch_client(s, flat, len, skip);
    else
        state_watch_unread(s);
}

/*
 * The idle session's server bytes in src->in (forward of them scanned,
 * skip first: relay_server_ends): when the last is a FATAL, the session
 * moves as from a read, what came before it still the client's.  They are
 * copied out first: the move drops what src->in holds.  True when it moved.
 */
static bool relay_buffered_ends(struct session *s, struct endpoint *src, struct endpoint *dst,
                                size_t forward, size_t skip)
{
    uint8_t *block = s->w->relay_block;
    size_t send;
    if (forward > RELAY_BLOCK_SIZE ||
        evbuffer_copyout(src->in, block, forward) != (ssize_t)forward ||
        !relay_server_ends(s, block, forward, skip, &send))
        return false;
    if (send > 0)
        endpoint_send_bytes(s, dst, block, send);
    return true;
}

static int relay_pump(struct session *s, struct endpoint *src, struct endpoint *dst,
                      enum frame_side side)
{
    struct frame_scan sc;
    if (side == FRAME_FROM_CLIENT && src->fwd_remaining == 0)
        db_unhold_in(s, src->in);
    size_t skip = src->fwd_remaining;
    frame_scan(src->in, src->fwd_remaining, &sc, &s->server_conn->tx, side);
    if (relay_note_scan(s, src, &sc) < 0)
        return -1;
    size_t forward = sc.forward;
    if (side == FRAME_FROM_CLIENT)
        relay_watch_client_in(s, src->in, forward, skip);
    if (relay_server_ended_idle(s, src, side, &sc) &&
        relay_buffered_ends(s, src, dst, forward, skip))
        return 0;
    if (__builtin_expect(sc.last_type == 'X', 0) && side == FRAME_FROM_CLIENT &&
        (forward = relay_keep_terminate_in(s, src->in, forward)) < sc.forward) {
        /* The session ends here, as a server ends it after Terminate; its connection may stay. */
        if (forward > 0 &&
            (evbuffer_remove_buffer(src->in, dst->out, forward) < 0 || endpoint_flush(s, dst) < 0))
            return -1;
        session_close(s, "client terminated the session");
        return -1;
    }
    if (forward == 0)
        return 0;
    int rc = forward == evbuffer_get_length(src->in)
                 ? evbuffer_add_buffer(dst->out, src->in)
                 : (evbuffer_remove_buffer(src->in, dst->out, forward) < 0 ? -1 : 0);
    if (rc != 0) {
        session_close(s, "out of memory");
        return -1;
    }
    if (endpoint_flush(s, dst) < 0)
        return -1;
    relay_throttle(src, dst);
    return relay_after_server_bytes(s, side) ? 0 : -1;
}

/*
 * A header cut off by the end of the last read waits in src->in: at most
 * a ReadyForQuery (passed whole) minus one byte.  It goes in front of the
 * new bytes in the block, so every scan is of flat memory.
 */
#define RELAY_CARRY_MAX 8

/*
 * Reads into the worker's block and forwards every whole header's worth
 * at once: straight to the peer's socket when nothing is queued there
 * (no allocation, no copy), else appended to the peer's queue, which
 * packs small reads into shared chains, so that memory follows the bytes
 * queued rather than the number of reads.
 */
static void relay_read_into(struct session *s, struct endpoint *src, struct endpoint *dst,
                            enum frame_side side, uint8_t *block)
{
    size_t carry = evbuffer_get_length(src->in);
    if (carry > RELAY_CARRY_MAX) {
        /* Only relay_start leaves more, and relay_pump takes that. */
        relay_pump(s, src, dst, side);
        return;
    }
    if (carry > 0)
        evbuffer_copyout(src->in, block, carry);
    int more;
    ssize_t n = endpoint_fill_bytes(s, src, block + carry, RELAY_BLOCK_SIZE - carry, &more);
    if (n <= 0)
        return;
    if (carry > 0)
        evbuffer_drain(src->in, carry);
    size_t avail = carry + (size_t)n;
    /* A read's first message, when it starts one, may be a DROP DATABASE (db_unhold.h). */
    if (side == FRAME_FROM_CLIENT && src->fwd_remaining == 0 &&
        (block[0] == 'Q' || block[0] == 'P'))
        db_unhold_bytes(s, block, avail);
    size_t skip = src->fwd_remaining;
    struct frame_scan sc;
    frame_scan_bytes(block, avail, src->fwd_remaining, &sc, &s->server_conn->tx, side);
    if (relay_note_scan(s, src, &sc) < 0)
        return;
    if (sc.forward < avail && evbuffer_add(src->in, block + sc.forward, avail - sc.forward) != 0) {
        session_close(s, "out of memory");
        return;
    }
    size_t send = sc.forward;
    relay_watch_client(s, side, block, send, skip);
    if (relay_server_ended_idle(s, src, side, &sc) &&
        relay_server_ends(s, block, send, skip, &send)) {
        /* The session moves; what its server said before its FATAL is still the client's. */
        if (send > 0)
            endpoint_send_bytes(s, dst, block, send);
        return;
    }
    if (__builtin_expect(sc.last_type == 'X', 0) && side == FRAME_FROM_CLIENT)
        send = relay_keep_terminate(s, block, send);
    if (send > 0 && endpoint_send_bytes(s, dst, block, send) < 0)
        return;
    if (send < sc.forward) {
        /* The session ends here, as a server ends it after Terminate; its connection may stay. */
        session_close(s, "client terminated the session");
        return;
    }
    if (!relay_after_server_bytes(s, side))
        return;
    relay_throttle(src, dst);
    if (more && !src->read_paused)
        event_active(src->rev, EV_READ, 0);
}

/*
 * With the worker's io_uring the peer's send is made at the end of the
 * loop turn, after the worker's block has taken other reads: the read
 * lands in a block the peer lends instead, which its send keeps until the
 * kernel has the bytes (endpoint_borrow_block): still no copy.
 */
static void relay_read(struct session *s, struct endpoint *src, struct endpoint *dst,
                       enum frame_side side)
{
    if (evbuffer_get_length(src->in) > RELAY_CARRY_MAX) {
        /* Bytes the ring's receive put in src->in (no reader then): on from there, then the new. */
        int more;
        if (endpoint_fill(s, src, RELAY_BLOCK_SIZE, &more) < 0)
            return;
        relay_pump(s, src, dst, side);
        return;
    }
    uint8_t *lent = endpoint_borrow_block(dst);
    relay_read_into(s, src, dst, side, lent != NULL ? lent : s->w->relay_block);
    if (lent != NULL)
        endpoint_return_block(dst); /* a read that sent nothing from it */
}

static void relay_write(struct session *s, struct endpoint *ep, struct endpoint *peer)
{
    if (endpoint_flush(s, ep) < 0)
        return;
    /* A held client stays unread whatever the back-pressure says. */
    if (peer->read_paused && endpoint_queued(ep) <= RELAY_LOW_WATER &&
        !(peer == &s->client && s->hold.held)) {
        endpoint_want_drain(ep, false);
        endpoint_resume_read(peer);
    }
}

static void relay_client_after_server(struct session *s);

static void relay_server_read(struct session *s)
{
    relay_read(s, &s->server_conn->ep, &s->client, FRAME_FROM_SERVER);
    if (__builtin_expect(s->client_after_server, 0))
        relay_client_after_server(s);
}

/* The server's bytes that came first are read: its client's next, unless it moved or ended. */
static void relay_client_after_server(struct session *s)
{
    s->client_after_server = false;
    if (!s->closed && s->server_conn != NULL && !s->hold.held &&
        endpoint_queued(&s->server_conn->ep) <= RELAY_LOW_WATER)
        endpoint_resume_read(&s->client);
}

/*
 * An idle session's server that spoke while the loop was elsewhere (a
 * switchover's FATAL, on a loaded machine, come before the client's next
 * request but not yet read): its bytes are read first, so that its end
 * moves the session before the request goes to it.  True when the client's
 * bytes must wait (the session moves or ended, or the server's bytes come
 * with the ring's receive at the end of this turn: the client is read
 * after them).
 */
static bool relay_server_spoke_first(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (!relay_server_idle(s, &sc->ep) || !endpoint_peer_spoke(&sc->ep))
        return false;
    if (endpoint_ring_receiving(&sc->ep)) {
        if (sc->ep.on_read != relay_server_read)
            return false; /* a fence's reader: its bytes are not this relay's to wait for */
        s->client_after_server = true;
        endpoint_pause_read(&s->client);
        return true;
    }
    relay_server_read(s);
    return s->closed || s->server_conn != sc || s->client.read_paused;
}

static void relay_client_read(struct session *s)
{
    /* A host fenced as a former primary gets no request more (former_primary.h). */
    if (__builtin_expect(host_is_fenced(s->server_conn->host), 0) &&
        !s->w->shared->flow->server_fenced(s))
        return;
    if (relay_server_spoke_first(s))
        return;
    relay_read(s, &s->client, &s->server_conn->ep, FRAME_FROM_CLIENT);
}

static int relay_server_pump(struct session *s)
{
    return relay_pump(s, &s->server_conn->ep, &s->client, FRAME_FROM_SERVER);
}

/* The zero-copy relay's server side: bytes on as they come, headers only read. */
static const struct server_reader relay_reader = {.read = relay_server_read,
                                                  .pump = relay_server_pump};

static void relay_client_write(struct session *s)
{
    relay_write(s, &s->client, &s->server_conn->ep);
}

static void relay_server_write(struct session *s)
{
    relay_write(s, &s->server_conn->ep, &s->client);
}

const struct server_reader *relay_server_reader(const struct session *s)
{
    /* Fences and transaction pooling read the server's messages; the relay only their headers. */
    return s->txn != NULL ? s->txn->server : s->report_fence ? &fence_reader : &relay_reader;
}

int relay_attach_server(struct session *s)
{
    struct endpoint *server = &s->server_conn->ep;
    const struct server_reader *reader = relay_server_reader(s);
    s->client_after_server = false; /* a server that came first is gone: this one is new */
    server->on_write = relay_server_write;
    server->read_paused = false;
    endpoint_use_ring(server);
    s->client.on_write = relay_client_write;
    endpoint_set_reader(server, reader->read);
    /* Whatever the server sent already goes through now. */
    if (evbuffer_get_length(server->in) > 0 && reader->pump(s) < 0)
        return -1;
    return 0;
}

/* The client's side as its session starts to relay, with or without a server connection. */
static void relay_client_begin(struct session *s, endpoint_handler on_write,
                               endpoint_handler reader)
{
    session_set_timer(s, 0);
    s->client.on_write = on_write;
    s->client.fwd_remaining = 0;
    s->client.read_paused = false;
    endpoint_use_ring(&s->client);
    endpoint_set_reader(&s->client, reader);
}

/*
 * A paused region holds new sessions at the same gate as open ones: false
 * when s ended there.
 */
static bool relay_pass_gate(struct session *s)
{
    uint8_t reasons = gate_reasons_for(s, s->region);
    return reasons == 0 || gate_hold_session(s, reasons);
}

void relay_start(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    struct endpoint *server = &sc->ep;
    server_conn_move(sc, &s->w->active_servers);
    server->fwd_remaining = 0;
    slog_info(s, "session established: user=%s database=%s region=%s server=%s:%d", s->user,
              s->database, sc->region->name, sc->host->name, sc->host->port);
    relay_client_begin(s, relay_client_write,
                       s->txn != NULL ? s->txn->client_read : relay_client_read);
    if (relay_attach_server(s) < 0)
        return;
    if (evbuffer_get_length(s->client.in) > 0 &&
        (s->txn != NULL ? s->txn->client_pump(s)
                        : relay_pump(s, &s->client, server, FRAME_FROM_CLIENT)) < 0)
        return;
    if (endpoint_flush(s, &s->client) < 0 || !relay_pass_gate(s))
        return;
    /* Under transaction pooling the login's connection is given back until the client asks. */
    if (s->txn != NULL)
        s->txn->server_idle(s);
}

void relay_start_detached(struct session *s)
{
    if (s->txn == NULL) { /* (login_greet.h chose only sessions that pool transactions) */
        session_fail_msg(s, "53200", "out of memory");
        return;
    }
    slog_info(s, "session established: user=%s database=%s region=%s, no server connection yet",
              s->user, s->database, s->region->name);
    relay_client_begin(s, NULL, s->txn->client_read);
    /* Its first message waits at the gate too: it would fetch a connection. */
    if (endpoint_flush(s, &s->client) < 0 || !relay_pass_gate(s))
        return;
    if (evbuffer_get_length(s->client.in) > 0)
        s->txn->client_pump(s);
}
