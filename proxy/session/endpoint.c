/*
 * endpoint.c — one side of a session: a socket with its stream (plain,
 * TLS or WebSocket), its buffers and its events.  Which events are armed
 * is derived from the state (endpoint_arm); the event callback runs the
 * writer and the reader of the side.  Its events and failures go to its
 * owner (struct endpoint_owner): the session, the pool, a move; the
 * endpoint knows none of them.
 */
#include "proxy/session/endpoint.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/buffer_pool.h"
#include "proxy/runtime/linger.h"
#include "proxy/runtime/uring.h"
#include "proxy/runtime/worker.h"

static ssize_t endpoint_read_ended(struct session *s, struct endpoint *ep, ssize_t n);

_Static_assert(URING_BLOCK_SIZE >= RELAY_BLOCK_SIZE, "a relay read fits in a ring's block");

/* The socket failed: its owner hears why. */
static void endpoint_failed(struct session *s, struct endpoint *ep, const char *why, bool gone)
{
    ep->owner->failed(s, ep, why, gone);
}

/*
 * Runs the reader.  After the peer's end of stream the reader only sees
 * the bytes that came before it; one that is still the reader afterwards
 * waits for bytes that will never come, and the end is taken now.  Once
 * the owner ended, the endpoint may be gone with another session it was
 * handed to (a fetcher's connection, whose new session ended at once): it
 * is not touched again.
 */
static void endpoint_run_reader(struct session *s, struct endpoint *ep, const bool *ended)
{
    endpoint_handler reader = ep->on_read;
    reader(s);
    if (!*ended && ep->eof && ep->on_read == reader && !ep->read_paused)
        endpoint_read_ended(s, ep, STREAM_EOF);
}

/*
 * Each event has one readiness.  The writer runs when it is the one its
 * queued output waits for, the reader when it is the one its read waits
 * for; a read event also runs the reader when the reader was kicked
 * (endpoint_set_reader) or TLS holds decrypted bytes, which costs at most
 * one read that finds nothing.
 */
void endpoint_dispatch(struct session *s, struct endpoint *ep, short what, const bool *ended)
{
    if (__builtin_expect(ep->parked, 0) && endpoint_wake(ep) < 0) {
        endpoint_failed(s, ep, "out of memory", false);
        return;
    }
    uint8_t ready = (what & EV_READ) ? STREAM_WANT_READ : STREAM_WANT_WRITE;
    if (ep->ring && ready == STREAM_WANT_WRITE) {
        /* Only the ring's completions make a write event here (endpoint_sent). */
        if (ep->on_write != NULL && !ep->tx_failed)
            ep->on_write(s);
        else
            endpoint_flush(s, ep);
        return;
    }
    if (ep->out != NULL && (evbuffer_get_length(ep->out) > 0 || stream_has_output(&ep->stream)) &&
        ep->stream.write_want == ready) {
        if (ep->on_write != NULL)
            ep->on_write(s);
        else
            endpoint_flush(s, ep);
        if (*ended)
            return;
    }
    if (ep->on_read != NULL && !ep->read_paused &&
        (ready == STREAM_WANT_READ || ep->stream.read_want == STREAM_WANT_WRITE))
        endpoint_run_reader(s, ep, ended);
    else if (ep->read_paused || ep->on_read == NULL)
        endpoint_arm(ep); /* a pause or no reader left armed (endpoint_set_reader) takes effect */
}

static void endpoint_event_cb(evutil_socket_t fd, short what, void *arg)
{
    struct endpoint *ep = arg;
    (void)fd;
    ep->owner->event(ep, what);
}

/*
 * The read event now, in the endpoint itself; the write event at its
 * first use (endpoint_wev): most sockets, an idle client's above all,
 * never wait to write.
 */
static int endpoint_new_events(struct endpoint *ep, int fd)
{
    ep->wev = NULL;
    ep->rev_mask = EV_READ;
    ep->rev_armed = ep->wev_armed = false;
    if (event_assign(&ep->rev_event, ep->w->base, fd, EV_READ | EV_PERSIST, endpoint_event_cb,
                     ep) != 0)
        return -1;
    ep->rev = &ep->rev_event;
    return 0;
}

/*
 * The write event, made as it is first needed.  NULL when out of memory:
 * the endpoint's sends count as failed (tx_failed), which its next flush
 * tells its owner.
 */
static struct event *endpoint_wev(struct endpoint *ep)
{
    if (ep->wev == NULL && ep->rev != NULL) {
        ep->wev =
            event_new(ep->w->base, ep->stream.fd, EV_WRITE | EV_PERSIST, endpoint_event_cb, ep);
        if (ep->wev == NULL && !ep->tx_failed) {
            ep->tx_failed = true;
            ep->tx_errno = ENOMEM;
        }
    }
    return ep->wev;
}

int endpoint_init(struct endpoint *ep, struct worker *w, const struct endpoint_owner *owner,
                  struct session *s, bool client, int fd)
{
    memset(ep, 0, sizeof(*ep));
    stream_init(&ep->stream, fd);
    ep->session = s;
    ep->owner = owner;
    ep->w = w;
    ep->client = client;
    ep->in = evbuffer_new();
    ep->out = evbuffer_new();
    if (ep->in == NULL || ep->out == NULL)
        return -1;
    return fd >= 0 ? endpoint_new_events(ep, fd) : 0;
}

int endpoint_attach(struct endpoint *ep, int fd)
{
    stream_init(&ep->stream, fd);
    return endpoint_new_events(ep, fd);
}

/* Bytes taken from the socket, by a read or into ep->in. */
static void endpoint_count_in(struct endpoint *ep, size_t n)
{
    ep->bytes_in += (uint64_t)n;
    stat_add(ep->client ? &ep->w->stats.bytes_client_to_server
                        : &ep->w->stats.bytes_server_to_client,
             (uint64_t)n);
}

/* The ring's buffer the endpoint holds goes back, its bytes (if any are left) dropped. */
static void endpoint_rx_give(struct endpoint *ep)
{
    if (!uring_recv_holds(ep->rx))
        return;
    uring_buf_give(ep->w->uring, ep->rx->kept_bid);
    ep->rx->kept = NULL;
    ep->rx->kept_len = 0;
}

/*
 * Takes up to max of the held bytes: appended to in, else copied to p.
 * The buffer goes back once they are all taken; *more: some are left.
 */
static ssize_t endpoint_rx_take(struct endpoint *ep, struct evbuffer *in, uint8_t *p, size_t max,
                                int *more)
{
    size_t n = ep->rx->kept_len < max ? ep->rx->kept_len : max;
    if (in != NULL) {
        if (evbuffer_add(in, ep->rx->kept, n) != 0)
            return STREAM_ERROR; /* errno: ENOMEM */
    } else if (p != NULL) {
        memcpy(p, ep->rx->kept, n);
    }
    ep->rx->kept += n;
    ep->rx->kept_len -= n;
    *more = ep->rx->kept_len > 0;
    if (ep->rx->kept_len == 0)
        endpoint_rx_give(ep);
    return (ssize_t)n;
}

/* The held bytes go to ep->in, for whichever reader comes (out of memory: told by the next read).
 */
static void endpoint_rx_stash(struct endpoint *ep)
{
    int more;
    if (!uring_recv_holds(ep->rx))
        return;
    size_t n = ep->rx->kept_len;
    if (endpoint_rx_take(ep, ep->in, NULL, n, &more) < 0) {
        ep->rx->error = ENOMEM;
        endpoint_rx_give(ep);
        uring_recv_stop(ep->rx);
        return;
    }
    endpoint_count_in(ep, n);
}

/*
 * A completion of the ring's receive: its bytes held for the reader,
 * which runs now and reads them as it would read the socket; with no
 * reader reading (paused, or between phases) they go to ep->in and the
 * receive stops, until a reader reads again (endpoint_arm).  The buffer
 * is the endpoint's from here (given back as its bytes are taken).
 */
static bool endpoint_received(struct uring_recv *op, const uint8_t *p, int res, unsigned bid)
{
    struct endpoint *ep = op->owner;
    if (res == -ECANCELED) {
        if (ep->parked) { /* an idle client's (endpoint_park_rx): made again as a read wants it */
            uring_recv_release(op);
            ep->rx = NULL;
        }
        endpoint_arm(ep); /* stopped: the socket's event, or the receive again, as now wanted */
        return false;
    }
    if (__builtin_expect(ep->parked, 0) && endpoint_wake(ep) < 0) {
        /* Its bytes are dropped: its next read tells the failure, which ends its owner. */
        op->error = ENOMEM;
        uring_recv_stop(op);
        ep->owner->event(ep, EV_READ);
        return false;
    }
    endpoint_rx_stash(ep); /* bytes the reader left: before the new ones */
    if (res > 0) {
        op->kept = p;
        op->kept_len = (size_t)res;
        op->kept_bid = bid;
    } else if (res == 0) {
        ep->eof = true;
    } else {
        op->error = -res;
        uring_recv_stop(op);
    }
    if (ep->on_read == NULL || ep->read_paused) {
        endpoint_rx_stash(ep);
        ep->rx_unread = true;
        uring_recv_stop(op);
        endpoint_arm(ep); /* a paused client's hangup is watched instead */
        return res > 0;
    }
    /* The worker's load no longer pays for the ring: the socket's readiness from the next bytes. */
    if (!uring_recv_wanted(op->ring))
        uring_recv_stop(op);
    ep->owner->event(ep, EV_READ);
    return res > 0;
}

void endpoint_detach(struct endpoint *ep)
{
    /* Before the socket closes: a send still queued in the ring goes out now or not at all. */
    uring_send_release(ep->tx);
    ep->tx = NULL;
    endpoint_rx_give(ep);
    uring_recv_release(ep->rx);
    ep->rx = NULL;
    ep->ring = ep->ring_rx = false;
    ep->tx_failed = false;
    ep->drain_wanted = false;
    if (ep->rev)
        event_del(ep->rev); /* (its storage is the endpoint's) */
    if (ep->wev)
        event_free(ep->wev);
    ep->rev = ep->wev = NULL;
    ep->rev_armed = ep->wev_armed = false;
    ep->read_paused = false;
    ep->eof = false;
    ep->on_read = NULL;
    ep->on_write = NULL;
    if (ep->linger && ep->stream.fd >= 0)
        linger_close(&ep->w->lingering, stream_take_fd(&ep->stream));
    else
        stream_close(&ep->stream);
    ep->linger = false;
    if (ep->in && !ep->parked)
        evbuffer_drain(ep->in, evbuffer_get_length(ep->in));
    if (ep->out && !ep->parked)
        evbuffer_drain(ep->out, evbuffer_get_length(ep->out));
    ep->fwd_remaining = 0;
}

void endpoint_free(struct endpoint *ep)
{
    endpoint_detach(ep);
    if (ep->parked) { /* the worker's quiet buffer, not its own */
        ep->in = ep->out = NULL;
        ep->w->buffers.quiet_users--;
    }
    ep->parked = false;
    if (ep->in)
        evbuffer_free(ep->in);
    if (ep->out)
        evbuffer_free(ep->out);
    ep->in = ep->out = NULL;
}

int endpoint_wake(struct endpoint *ep)
{
    if (!ep->parked)
        return 0;
    struct buffer_pool *bp = &ep->w->buffers;
    struct evbuffer *in = buffer_pool_get(bp), *out = buffer_pool_get(bp);
    if (in == NULL || out == NULL) {
        if (in != NULL)
            buffer_pool_put(bp, in);
        if (out != NULL)
            buffer_pool_put(bp, out);
        return -1;
    }
    ep->in = in;
    ep->out = out;
    ep->parked = false;
    bp->quiet_users--;
    return 0;
}

static void endpoint_set_event(struct event *ev, bool *armed, bool want)
{
    if (want == *armed || ev == NULL)
        return;
    if (want)
        event_add(ev, NULL);
    else
        event_del(ev);
    *armed = want;
}

/*
 * The read event waits for mask (EV_READ, EV_CLOSED, both; 0: nothing).
 * Its mask changes only while it is not pending (event_assign's rule).
 */
static void endpoint_set_read_event(struct endpoint *ep, short mask)
{
    if (mask == ep->rev_mask) {
        endpoint_set_event(ep->rev, &ep->rev_armed, mask != 0);
        return;
    }
    endpoint_set_event(ep->rev, &ep->rev_armed, false);
    if (mask == 0)
        return;
    event_assign(ep->rev, ep->w->base, ep->stream.fd, (short)(mask | EV_PERSIST), endpoint_event_cb,
                 ep);
    ep->rev_mask = mask;
    endpoint_set_event(ep->rev, &ep->rev_armed, true);
}

void endpoint_arm(struct endpoint *ep)
{
    if (ep->rev == NULL)
        return;
    /* After the end of stream the socket is always readable: the reader is run, never armed. */
    bool reading = ep->on_read != NULL && !ep->read_paused && !ep->eof;
    /*
     * The ring's receive is made as a read first finds it wanted: an idle
     * client of a quiet worker never holds one.  Out of memory: its reads
     * stay with the loop's events.
     */
    if (ep->rx == NULL && ep->ring_rx && reading && uring_recv_wanted(ep->w->uring))
        ep->rx = uring_recv_new(ep->w->uring, ep->stream.fd, endpoint_received, ep);
    /*
     * The ring's receive is armed while a reader reads and the worker's
     * load makes it pay (uring_recv_wanted), and stopped when bytes come
     * for none or the load no longer does (endpoint_received); the read
     * event stays off while it is armed, stopping included (its end is
     * told, and arms what reads next), and is on otherwise, the ring out
     * of room included.
     */
    if (ep->rx != NULL && ep->rx->error == 0) {
        bool wanted = uring_recv_wanted(ep->rx->ring);
        if (!reading || ep->stream.read_want != STREAM_WANT_READ)
            reading = false;
        else if (ep->rx->armed) {
            if (wanted && ep->rx->stopping)
                uring_recv_arm(ep->rx); /* armed anew as the cancel ends it */
            reading = false;
        } else if (wanted && uring_recv_arm(ep->rx) == 0) {
            reading = false;
        }
    }
    /* The ring's sends need no readiness: the kernel waits for room itself. */
    bool writing = !ep->ring && !ep->writes_held &&
                   (evbuffer_get_length(ep->out) > 0 || stream_has_output(&ep->stream));
    uint8_t rw = ep->stream.read_want, ww = ep->stream.write_want;
    bool want_r = (reading && rw == STREAM_WANT_READ) || (writing && ww == STREAM_WANT_READ);
    bool want_w = (reading && rw == STREAM_WANT_WRITE) || (writing && ww == STREAM_WANT_WRITE);
    /*
     * A paused client's hangup (its FIN sets EPOLLRDHUP once the bytes it
     * sent before are in our socket buffer): the ring's receive, while it
     * stays armed, tells it itself.
     */
    bool want_h = ep->client && ep->on_read != NULL && ep->read_paused && !ep->hangup_seen &&
                  (ep->rx == NULL || !ep->rx->armed || ep->rx->stopping) &&
                  (event_base_get_features(ep->w->base) & EV_FEATURE_EARLY_CLOSE);
    short mask = (short)((want_r ? EV_READ : 0) | (want_h ? EV_CLOSED : 0));
    bool read_as_was = mask == 0 ? !ep->rev_armed : ep->rev_armed && mask == ep->rev_mask;
    if (read_as_was && want_w == ep->wev_armed)
        return; /* as it was: most calls (several a transaction) */
    endpoint_set_read_event(ep, mask);
    if (want_w && endpoint_wev(ep) == NULL)
        event_active(ep->rev, EV_WRITE, 0); /* its flush tells the failure (tx_failed) */
    endpoint_set_event(ep->wev, &ep->wev_armed, want_w);
}

/* Hands bytes that arrived before now to the reader, on the next loop turn. */
static void endpoint_kick(struct endpoint *ep)
{
    if (ep->on_read != NULL && !ep->read_paused && ep->rev != NULL &&
        (evbuffer_get_length(ep->in) > 0 || ep->eof || ep->rx_unread || uring_recv_holds(ep->rx) ||
         ep->stream.ssl != NULL || stream_has_pending(&ep->stream)))
        event_active(ep->rev, EV_READ, 0);
}

/*
 * A client's read event left without a reader stays armed until it fires
 * with none (endpoint_dispatch disarms it then), as a pause's does: a
 * login's phases set the next reader in the same callback, with no
 * epoll_ctl.  Not a server's: one set aside has no session to take it.
 */
static bool endpoint_disarm_later(const struct endpoint *ep)
{
    return ep->on_read == NULL && ep->client && ep->rev_armed;
}

void endpoint_set_reader(struct endpoint *ep, endpoint_handler h)
{
    ep->on_read = h;
    ep->stream.read_want = STREAM_WANT_READ;
    if (!endpoint_disarm_later(ep))
        endpoint_arm(ep);
    endpoint_kick(ep); /* nothing without a reader */
}

void endpoint_wait_writable(struct endpoint *ep, endpoint_handler h)
{
    ep->on_read = h;
    ep->stream.read_want = STREAM_WANT_WRITE;
    endpoint_arm(ep);
}

/*
 * What the turn queued becomes the send's buffer: the two evbuffers trade
 * places (the send's is empty), which costs nothing, where moving the
 * chains cost hundreds of instructions a transaction.  Only at the end of
 * the turn or in a completion, when no caller holds ep->out.
 */
static bool endpoint_fill_send(struct uring_send *op)
{
    struct endpoint *ep = op->owner;
    if (op->block_len == 0 && evbuffer_get_length(op->buf) == 0 && !ep->writes_held &&
        !ep->parked) {
        struct evbuffer *queued = ep->out;
        ep->out = op->buf;
        op->buf = queued;
    }
    return op->block_len > 0 || evbuffer_get_length(op->buf) > 0;
}

/* Bytes the kernel took: off the block, or off the buffer's front. */
static void endpoint_sent_bytes(struct endpoint *ep, struct uring_send *op, size_t n)
{
    ep->bytes_out += (uint64_t)n;
    if (op->block_len == 0) {
        evbuffer_drain(op->buf, n);
        return;
    }
    /* A block's bytes: the rest of them first, then the block goes back. */
    op->block_off += (uint32_t)n;
    op->block_len -= (uint32_t)n;
    if (op->block_len == 0) {
        uring_block_give(op->ring, op->block);
        op->block = NULL;
    }
}

/*
 * A send of the ring completed: the next one starts with what is left or
 * was queued meanwhile, and a waiter hears of it.  A failure waits for
 * the next flush, which tells the owner from its own event (never from
 * inside the ring's loop over completions).
 */
static void endpoint_sent(struct uring_send *op, int res)
{
    struct endpoint *ep = op->owner;
    if (res >= 0) {
        endpoint_sent_bytes(ep, op, (size_t)res);
        if (endpoint_fill_send(op)) {
            if (uring_send_start(op) == 0) {
                if (ep->drain_wanted && endpoint_wev(ep) != NULL)
                    event_active(ep->wev, EV_WRITE, 0); /* the queue shrank */
                return;
            }
            res = -EAGAIN; /* the ring is full even after a submission */
        }
    }
    if (res < 0) {
        ep->tx_failed = true;
        ep->tx_errno = -res;
    }
    /* Nothing left to send: the send goes back to the ring's cache until the next bytes. */
    ep->tx = NULL;
    uring_send_release(op);
    if ((res < 0 || ep->drain_wanted) && endpoint_wev(ep) != NULL)
        event_active(ep->wev, EV_WRITE, 0);
    else if (res < 0 || ep->drain_wanted)
        event_active(ep->rev, EV_WRITE, 0); /* no write event to be had: the read event tells it */
    else if (ep->owner->drained != NULL)
        ep->owner->drained(ep);
}

/* The endpoint's send, taken from the ring's cache when it has none; NULL when out of memory. */
static struct uring_send *endpoint_tx(struct endpoint *ep)
{
    if (ep->tx == NULL)
        ep->tx = uring_send_get(ep->w->uring, ep->stream.fd, endpoint_sent, endpoint_fill_send, ep);
    return ep->tx;
}

void endpoint_use_ring(struct endpoint *ep)
{
    if (ep->w->uring == NULL || ep->stream.fd < 0 || ep->stream.ssl != NULL ||
        ep->stream.ws != NULL)
        return;
    ep->ring = true;
    ep->ring_rx = uring_can_recv(ep->w->uring);
    if (!endpoint_disarm_later(ep))
        endpoint_arm(ep); /* the ring's receive, if the worker's load wants it now */
}

/* Nothing queued nor in flight: bytes sent now go out first, from wherever they lie. */
static bool endpoint_ring_idle(const struct endpoint *ep)
{
    const struct uring_send *op = ep->tx;
    return ep->ring && !ep->tx_failed && evbuffer_get_length(ep->out) == 0 &&
           (op == NULL ||
            (!op->busy && !op->later && op->block_len == 0 && evbuffer_get_length(op->buf) == 0));
}

uint8_t *endpoint_borrow_block(struct endpoint *ep)
{
    if (ep->writes_held || !endpoint_ring_idle(ep))
        return NULL; /* held: what is read for it is kept in out */
    struct uring_send *op = endpoint_tx(ep);
    if (op != NULL && op->block == NULL)
        op->block = uring_block_take(op->ring);
    return op != NULL ? op->block : NULL;
}

void endpoint_return_block(struct endpoint *ep)
{
    struct uring_send *op = ep->tx;
    if (op == NULL || op->busy || op->later)
        return;
    /* Unused: the block and the send go back (an idle endpoint holds neither). */
    ep->tx = NULL;
    uring_send_release(op);
}

int endpoint_write_out(struct endpoint *ep)
{
    if (ep->tx_failed && !ep->ring) { /* its write event could not be made (endpoint_wev) */
        errno = ep->tx_errno;
        return -1;
    }
    if (ep->writes_held) {
        endpoint_arm(ep); /* its reads go on; its writes wait for endpoint_release_writes */
        return 0;
    }
    if (ep->ring) {
        if (!ep->tx_failed && evbuffer_get_length(ep->out) > 0 && endpoint_tx(ep) == NULL) {
            ep->tx_failed = true;
            ep->tx_errno = ENOMEM;
        }
        if (ep->tx_failed) {
            errno = ep->tx_errno;
            return -1;
        }
        /* Sent at the end of the turn, with whatever else the turn queues. */
        if (evbuffer_get_length(ep->out) > 0)
            uring_send_later(ep->tx);
    } else if (evbuffer_get_length(ep->out) > 0 || stream_has_output(&ep->stream)) {
        /* A WebSocket's control frames go first, even with nothing of ours to send. */
        ssize_t n = evbuffer_get_length(ep->out) > 0 ? stream_write(&ep->stream, ep->out)
                                                     : stream_flush(&ep->stream);
        if (n == STREAM_AGAIN)
            n = 0;
        if (n < 0)
            return -1;
        ep->bytes_out += (uint64_t)n;
    }
    endpoint_arm(ep); /* a reader set meanwhile waits for its answer (the pool's, a handover's) */
    return 0;
}

int endpoint_flush(struct session *s, struct endpoint *ep)
{
    if (ep->stream.fd < 0)
        return 0;
    if (endpoint_write_out(ep) < 0) {
        endpoint_failed(s, ep, ep->client ? "could not send to client" : "could not send to server",
                        false);
        return -1;
    }
    return 0;
}

void endpoint_hold_writes(struct endpoint *ep)
{
    ep->writes_held = true;
}

int endpoint_release_writes(struct session *s, struct endpoint *ep)
{
    if (!ep->writes_held)
        return 0;
    ep->writes_held = false;
    return s != NULL ? endpoint_flush(s, ep) : 0;
}

int endpoint_handshake(struct endpoint *ep, int (*step)(struct stream *))
{
    int rc = step(&ep->stream);
    endpoint_arm(ep);
    return rc;
}

void endpoint_pause_read(struct endpoint *ep)
{
    if (ep->read_paused)
        return;
    ep->read_paused = true;
    log_debug(ep->owner->log_id(ep), "reading from the %s paused",
              ep->client ? "client" : "server");
    /*
     * An armed read event stays armed until it fires paused (endpoint_dispatch
     * then makes it a client's hangup watch): readiness is level-triggered,
     * so nothing is lost, and a pause that ends before the loop turns again —
     * transaction pooling's, while an idle connection is taken for the client —
     * costs no epoll_ctl, where disarming and arming again cost four.  The
     * ring's receive stays armed the same way: bytes that come paused stop
     * it (endpoint_received).
     */
    if (!ep->rev_armed && (ep->rx == NULL || !ep->rx->armed))
        endpoint_arm(ep);
}

void endpoint_hangup_taken(struct endpoint *ep)
{
    ep->hangup_seen = true;
    endpoint_arm(ep);
}

void endpoint_stop_receiving(struct endpoint *ep)
{
    if (ep->rx == NULL || !ep->read_paused || !ep->rx->armed || ep->rx->stopping)
        return;
    uring_recv_stop(ep->rx);
    endpoint_arm(ep); /* a paused client's hangup is watched instead */
}

void endpoint_resume_read(struct endpoint *ep)
{
    if (!ep->read_paused)
        return;
    ep->read_paused = false;
    endpoint_arm(ep);
    /*
     * TLS may hold decrypted bytes no socket event will announce, the
     * ring's receive bytes it received while paused, or told to a reader
     * that left them; an ended stream none at all.
     */
    if (ep->rev &&
        (stream_has_pending(&ep->stream) || ep->eof || ep->rx_unread || uring_recv_holds(ep->rx)))
        event_active(ep->rev, EV_READ, 0);
    ep->rx_unread = false;
}

int endpoint_send(struct session *s, struct endpoint *ep, const void *p, size_t n)
{
    if (endpoint_wake(ep) != 0 || evbuffer_add(ep->out, p, n) != 0) {
        endpoint_failed(s, ep, "out of memory", false);
        return -1;
    }
    return endpoint_flush(s, ep);
}

/* A read that got nothing: wait for the event, or close the session saying why. */
static ssize_t endpoint_read_ended(struct session *s, struct endpoint *ep, ssize_t n)
{
    if (n == STREAM_AGAIN) {
        /* A TLS read may now wait for writability; the ring's armed receive waits as it is. */
        if (ep->rx == NULL || !ep->rx->armed)
            endpoint_arm(ep);
        return 0;
    }
    if (n == STREAM_EOF) {
        ep->eof = true; /* its owner may yet handle what came before (endpoint_fill) */
        endpoint_failed(
            s, ep, ep->client ? "client closed the connection" : "server closed the connection",
            true);
    } else {
        char why[256], msg[320];
        stream_error(&ep->stream, why, sizeof(why));
        snprintf(msg, sizeof(msg), "%s: %s",
                 ep->client ? "could not receive from client" : "could not receive from server",
                 why);
        endpoint_failed(s, ep, msg, true);
    }
    return -1;
}

/* A read that got bytes: a TLS read that waited for writability no longer does. */
static ssize_t endpoint_read_got(struct endpoint *ep, ssize_t n, uint8_t want_before)
{
    endpoint_count_in(ep, (size_t)n);
    if (want_before != ep->stream.read_want)
        endpoint_arm(ep);
    return n;
}

/*
 * One read, into in (appended) or else to p: the bytes the ring's
 * receive holds, else the end or failure it met, else nothing while it
 * is armed; without it (or while it is not armed) the socket itself.
 * The bytes before an end come first.  A count or a stream_status.
 */
static ssize_t endpoint_read_into(struct endpoint *ep, struct evbuffer *in, uint8_t *p, size_t max,
                                  int *more)
{
    *more = 0;
    if (uring_recv_holds(ep->rx))
        return endpoint_rx_take(ep, in, p, max, more);
    if (ep->eof)
        return STREAM_EOF;
    if (ep->rx != NULL && ep->rx->error != 0) {
        errno = ep->rx->error; /* for stream_error */
        return STREAM_ERROR;
    }
    if (ep->rx != NULL && ep->rx->armed)
        return STREAM_AGAIN;
    ssize_t n = in != NULL ? stream_read(&ep->stream, in, max, more)
                           : stream_read_bytes(&ep->stream, p, max, more);
    if (ep->ring_rx && n > 0 && (ep->rx == NULL || ep->rx->error == 0)) {
        uring_count_read(ep->w->uring);
        /* The worker's load makes the ring pay again: its receive reads what comes next. */
        if (uring_recv_wanted(ep->w->uring) && ep->on_read != NULL && !ep->read_paused)
            endpoint_arm(ep);
    }
    return n;
}

ssize_t endpoint_read(struct endpoint *ep, size_t max, int *more)
{
    return endpoint_read_into(ep, ep->in, NULL, max, more);
}

/*
 * The bytes a peer sent before ending its stream are handled before the
 * end is: a client may write its CancelRequest, or a whole login, and
 * close at once, so that the end arrives in the read after the bytes,
 * while they still wait in ep->in for the reader of the next phase.
 */
ssize_t endpoint_fill(struct session *s, struct endpoint *ep, size_t max, int *more)
{
    uint8_t want = ep->stream.read_want;
    ssize_t n = endpoint_read_into(ep, ep->in, NULL, max, more);
    if (n > 0)
        return endpoint_read_got(ep, n, want);
    if (n == STREAM_EOF && evbuffer_get_length(ep->in) > 0) {
        if (!ep->eof)
            log_debug(ep->owner->log_id(ep),
                      "%s ended its stream; %zu bytes before the end still to handle",
                      ep->client ? "client" : "server", evbuffer_get_length(ep->in));
        ep->eof = true;
        endpoint_arm(ep);
        return 0;
    }
    return endpoint_read_ended(s, ep, n);
}

ssize_t endpoint_fill_bytes(struct session *s, struct endpoint *ep, uint8_t *p, size_t max,
                            int *more)
{
    uint8_t want = ep->stream.read_want;
    ssize_t n = endpoint_read_into(ep, NULL, p, max, more);
    if (n > 0)
        return endpoint_read_got(ep, n, want);
    return endpoint_read_ended(s, ep, n);
}

int endpoint_send_bytes(struct session *s, struct endpoint *ep, const uint8_t *p, size_t n)
{
    size_t sent = 0;
    if (ep->ring) {
        struct uring_send *op = ep->tx;
        if (op != NULL && op->block != NULL && p >= op->block &&
            p + n <= op->block + URING_BLOCK_SIZE && endpoint_ring_idle(ep) && !ep->writes_held) {
            /* Bytes read into the block it lent (endpoint_borrow_block): sent from there. */
            op->block_off = (uint32_t)(p - op->block);
            op->block_len = (uint32_t)n;
            uring_send_later(op); /* at the end of the turn, with whatever else it queues */
            return 0;
        }
        /* The ring sends later: p (the worker's block) is copied behind what is queued. */
        if (evbuffer_add(ep->out, p, n) != 0) {
            endpoint_failed(s, ep, "out of memory", false);
            return -1;
        }
        return endpoint_flush(s, ep);
    }
    if (evbuffer_get_length(ep->out) == 0 && !ep->writes_held) {
        ssize_t w = stream_write_bytes(&ep->stream, p, n);
        if (w == STREAM_ERROR || w == STREAM_EOF) {
            endpoint_failed(
                s, ep, ep->client ? "could not send to client" : "could not send to server", false);
            return -1;
        }
        sent = w > 0 ? (size_t)w : 0;
        ep->bytes_out += sent;
    }
    /* What the socket did not take is kept (the only copy this path makes). */
    if (sent < n && evbuffer_add(ep->out, p + sent, n - sent) != 0) {
        endpoint_failed(s, ep, "out of memory", false);
        return -1;
    }
    endpoint_arm(ep);
    return 0;
}
