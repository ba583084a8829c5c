/*
 * msg_loop.c — the login phases' input loop: whole messages, one at a time.
 */
#include "proxy/session/msg_loop.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/framing.h"
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
