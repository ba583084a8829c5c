/*
 * msg_loop.h — reading a stream message by message: the login phases'
 * loop over whole messages, and the stepper, the pump and the server
 * reader of the active sessions that look at some messages whole and
 * pass the rest on as they come (the fence reader, transaction pooling).
 * The zero-copy relay reads neither.
 */
#ifndef PGNEAR_PROXY_MSG_LOOP_H
#define PGNEAR_PROXY_MSG_LOOP_H

#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/pkt.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/gate.h"
#include "proxy/session/latency_hooks.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"

/* What a message handler did with the whole message at the front of the input. */
enum msg_verdict {
    MSG_STOP = -1,     /* the session ended or moved on: the loop touches nothing more */
    MSG_CONSUMED = 0,  /* handled here: the loop drops it from the input */
    MSG_FORWARDED = 1, /* already moved off the input, to the peer's output */
};

/* One whole message; returns an enum msg_verdict. */
typedef int (*msg_handler)(struct session *s, char type, const uint8_t *body, uint32_t len);

struct msg_reader {
    size_t fill_max;   /* the most read from the socket at a time */
    uint32_t max_body; /* a longer message counts as a bad length */
    msg_handler on_message;
    endpoint_handler on_bad_length; /* must end the session or move it on */
};

/*
 * Reads what ep's socket has, hands each whole message to the handler,
 * then flushes the peer endpoint (where forwarded messages went).  A
 * partial message waits in ep->in for the next read.
 */
void endpoint_read_messages(struct session *s, struct endpoint *ep, const struct msg_reader *r);

/*
 * Defines reader `name`, an endpoint_handler that reads the session's
 * server connection message by message into handler (a msg_handler), a
 * body longer than max_body counting as a bad length (bad_length).  The
 * readers of a move's and of a nearest session's sync are such.
 */
#define MSG_SERVER_READER(linkage, name, handler, max_body_, bad_length)                           \
    static const struct msg_reader name##_table = {.fill_max = 65536,                              \
                                                   .max_body = (max_body_),                        \
                                                   .on_message = (handler),                        \
                                                   .on_bad_length = (bad_length)};                 \
    linkage void name(struct session *s)                                                           \
    {                                                                                              \
        endpoint_read_messages(s, &s->server_conn->ep, &name##_table);                             \
    }

/* A message header at the front of an input, its length checked (at least 4). */
struct msg_head {
    uint8_t type;
    uint32_t len; /* the length word: the body is len - 4 bytes */
    size_t avail; /* bytes in the input, this header's included */
};

enum msg_step {
    MSG_ENDED = -1, /* the session ended (a bad length, out of memory) */
    MSG_WAIT = 0,   /* nothing more to do until more is read */
    MSG_MOVED = 1,  /* more of a message passed on earlier moved on: step again */
    MSG_HEAD = 2,   /* a header is in *h: the caller reads it whole or passes it on */
};

/*
 * One step of src's input toward dst (side: "client" or "server", for the
 * error): the rest of a message being passed on, or the next header.  A
 * length under 4 fails the session with 08P01.  src->last_type is the
 * header's type from then on (a server's FATAL before it hangs up
 * explains the hang-up: session_server_gone).
 */
int msg_step_head(struct session *s, struct endpoint *src, struct evbuffer *dst, struct msg_head *h,
                  const char *side);

/*
 * Passes the message of h on as it comes: what of it is in src's input
 * now, the rest by later msg_step_head calls.  MSG_MOVED or MSG_ENDED.
 */
int msg_step_pass(struct session *s, struct endpoint *src, struct evbuffer *dst,
                  const struct msg_head *h);

/* Moves n bytes of src's input to dst; MSG_MOVED, or MSG_ENDED out of memory. */
int msg_move(struct session *s, struct endpoint *src, struct evbuffer *dst, size_t n);

/* Whether a run takes a whole message (body: blen bytes), followed: it goes on as it came. */
typedef bool (*msg_take_fn)(struct session *s, uint8_t type, const uint8_t *body, uint32_t blen);

/*
 * The whole messages at the front of src's input, in its first chunk,
 * that take takes one after another: their headers read in place, then
 * all moved on to dst at once, rather than each pulled up, copied and
 * drained.  MSG_MOVED; MSG_WAIT when none was taken (a bad length, a
 * message not whole there: the step's to read); MSG_ENDED out of memory.
 * Inline, so that take is called directly (transaction pooling's hot
 * path: every answer, every extended-protocol batch).
 */
static inline int msg_run(struct session *s, struct endpoint *src, struct evbuffer *dst,
                          msg_take_fn take)
{
    struct evbuffer_iovec v;
    if (src->fwd_remaining > 0 || evbuffer_peek(src->in, -1, NULL, &v, 1) < 1)
        return MSG_WAIT;
    const uint8_t *p = v.iov_base;
    size_t run = 0;
    while (v.iov_len - run >= PKT_HEADER_LEN) {
        uint8_t type = p[run];
        uint32_t len = pkt_be32(p + run + 1);
        if (len < 4 || v.iov_len - run - 1 < len ||
            !take(s, type, p + run + PKT_HEADER_LEN, len - 4))
            break;
        src->last_type = (char)type;
        run += 1 + (size_t)len;
    }
    return run > 0 ? msg_move(s, src, dst, run) : MSG_WAIT;
}

/*
 * The body of the whole message of h at the front of src's input, made
 * contiguous; NULL when that runs out of memory, the session then closed.
 */
const uint8_t *msg_body(struct session *s, struct endpoint *src, const struct msg_head *h);

/* One step of a session's server input (msg_step_head and on); an enum msg_step but MSG_HEAD. */
typedef int (*msg_step_fn)(struct session *s);

/* Whether the whole message of h is in the input. */
static inline int msg_whole(const struct msg_head *h)
{
    return h->avail >= 1 + (size_t)h->len;
}

/*
 * The server's input stepped through until it waits, then what follows
 * every step loop of a relaying session's server side: the client's
 * output flushed, the server unread while that output is over
 * RELAY_HIGH_WATER, and the gate's wish done at a safe point.  <0: the
 * session ended.  Inline, so that each reader's step is called directly
 * (transaction pooling's hot path).
 */
static inline int msg_pump(struct session *s, msg_step_fn step)
{
    struct endpoint *src = &s->server_conn->ep;
    int rc;
    while ((rc = step(s)) > 0)
        ;
    if (rc >= 0)
        latency_server_seen(s);
    if (rc < 0 || endpoint_flush(s, &s->client) < 0)
        return -1;
    relay_throttle(src, &s->client);
    if (s->hold.on_safe != SAFE_NOTHING && !gate_act_at_safe_point(s))
        return -1;
    return 0;
}

/*
 * A server endpoint's reader over pump: what the socket has read, pumped,
 * and the next read asked for at once when the fill stopped at its block
 * and the server is still the session's and still read.
 */
static inline void msg_server_read(struct session *s, int (*pump)(struct session *s))
{
    struct server_conn *sc = s->server_conn;
    struct endpoint *src = &sc->ep;
    int more;
    if (endpoint_fill(s, src, RELAY_BLOCK_SIZE, &more) < 0 || pump(s) < 0)
        return;
    if (more && s->server_conn == sc && !src->read_paused)
        event_active(src->rev, EV_READ, 0);
}

#endif
