/*
 * msg_loop.h — the login phases' input loop: whole messages, one at a time.
 */
#ifndef PGNEAR_PROXY_MSG_LOOP_H
#define PGNEAR_PROXY_MSG_LOOP_H

#include <stddef.h>
#include <stdint.h>

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

#endif
