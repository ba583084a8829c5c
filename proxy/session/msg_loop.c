/*
 * msg_loop.c — reading a stream message by message (msg_loop.h).
 */
#include "proxy/session/msg_loop.h"

#include <stdio.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "proxy/session/server_conn.h"

void endpoint_read_messages(struct session *s, struct endpoint *ep, const struct msg_reader *r)
{
    int more;
    if (endpoint_fill(s, ep, r->fill_max, &more) < 0)
        return;
    for (;;) {
        char type;
        uint32_t len;
        int st = frame_peek_whole(ep->in, r->max_body, &type, &len);
        if (st == FRAME_INCOMPLETE)
            break;
        if (st == FRAME_BAD_LENGTH) {
            r->on_bad_length(s);
            return;
        }
        /* After MSG_STOP the session may be closed, or reading elsewhere: hands off. */
        int verdict = r->on_message(s, type, frame_body(ep->in, len), len);
        if (verdict == MSG_STOP)
            return;
        if (verdict == MSG_CONSUMED)
            frame_consume(ep->in, len);
    }
    /* The client's messages go to the server connection, if there is one yet. */
    struct endpoint *peer = ep != &s->client         ? &s->client
                            : s->server_conn != NULL ? &s->server_conn->ep
                                                     : NULL;
    if (peer != NULL && endpoint_flush(s, peer) < 0)
        return;
    /* The read stopped at fill_max: the rest comes on the next loop turn. */
    if (more)
        event_active(ep->rev, EV_READ, 0);
}

int msg_move(struct session *s, struct endpoint *src, struct evbuffer *dst, size_t n)
{
    if (evbuffer_remove_buffer(src->in, dst, n) != (int)n) {
        session_close(s, "out of memory");
        return MSG_ENDED;
    }
    return MSG_MOVED;
}

const uint8_t *msg_body(struct session *s, struct endpoint *src, const struct msg_head *h)
{
    const uint8_t *msg = evbuffer_pullup(src->in, 1 + (ssize_t)h->len);
    if (msg == NULL) {
        session_close(s, "out of memory");
        return NULL;
    }
    return msg + PKT_HEADER_LEN;
}

int msg_step_head(struct session *s, struct endpoint *src, struct evbuffer *dst, struct msg_head *h,
                  const char *side)
{
    size_t avail = evbuffer_get_length(src->in);
    if (src->fwd_remaining > 0) {
        size_t n = avail < src->fwd_remaining ? avail : src->fwd_remaining;
        if (n == 0)
            return MSG_WAIT;
        src->fwd_remaining -= (uint32_t)n;
        return msg_move(s, src, dst, n);
    }
    /*
     * The header read in place (the input's first chunk holds it, but for
     * a header cut between two reads): a pullup that finds it there costs
     * a third of a copyout, on every message.
     */
    if (avail < PKT_HEADER_LEN)
        return MSG_WAIT;
    const uint8_t *b = evbuffer_pullup(src->in, PKT_HEADER_LEN);
    if (b == NULL) {
        session_close(s, "out of memory");
        return MSG_ENDED;
    }
    h->type = b[0];
    h->len = pkt_be32(b + 1);
    h->avail = avail;
    if (h->len < 4) {
        char msg[64];
        snprintf(msg, sizeof(msg), "invalid message length from %s", side);
        session_fail_msg(s, "08P01", "%s", msg);
        return MSG_ENDED;
    }
    src->last_type = (char)h->type;
    return MSG_HEAD;
}

int msg_step_pass(struct session *s, struct endpoint *src, struct evbuffer *dst,
                  const struct msg_head *h)
{
    size_t n = h->avail < 1 + (size_t)h->len ? h->avail : 1 + (size_t)h->len;
    src->fwd_remaining = (uint32_t)(1 + (size_t)h->len - n);
    return msg_move(s, src, dst, n);
}
