/*
 * msg_loop.h — reading a stream message by message: the login phases'
 * loop over whole messages, and the stepper of the active sessions that
 * look at some messages whole and pass the rest on as they come (the
 * fence reader, transaction pooling).  The zero-copy relay reads neither.
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

/*
 * The body of the whole message of h at the front of src's input, made
 * contiguous; NULL when that runs out of memory, the session then closed.
 */
const uint8_t *msg_body(struct session *s, struct endpoint *src, const struct msg_head *h);

/* Whether the whole message of h is in the input. */
static inline int msg_whole(const struct msg_head *h)
{
    return h->avail >= 1 + (size_t)h->len;
}

#endif
