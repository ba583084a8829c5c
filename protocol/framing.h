/*
 * framing.h — message boundaries of the v3 protocol inside an evbuffer.
 *
 * The relay reads only the five-byte header of each message and decides
 * to forward it, telling the server connection's tx_track the type of
 * each message as it starts; the login phases ask for whole messages.
 */
#ifndef PGNEAR_PROTOCOL_FRAMING_H
#define PGNEAR_PROTOCOL_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/tx_track.h"

struct evbuffer;

enum frame_status {
    FRAME_INCOMPLETE = 0,
    FRAME_READY = 1,
    FRAME_BAD_LENGTH = -1,
};

/*
 * Looks at the message at the front of buf.  FRAME_READY when the whole
 * message (header and body_len bytes of body) is there; FRAME_BAD_LENGTH
 * when the length word is below 4 or the body above max_body.
 */
int frame_peek_whole(struct evbuffer *buf, uint32_t max_body, char *type, uint32_t *body_len);

/* Pulls up and returns the body of the whole message at the front (after frame_peek_whole). */
const uint8_t *frame_body(struct evbuffer *buf, uint32_t body_len);
void frame_consume(struct evbuffer *buf, uint32_t body_len);

/*
 * A walk over the headers of the messages in buf from byte `at` on, without
 * reading their bodies or moving anything.  frame_walk_next gives the next
 * message's type and length word; false at the end of what is in buf (no
 * whole header there).  w->at is then past that message, which may run
 * past the buffer's end (w->at > w->have: not whole yet).  A length word
 * below 4 ends the walk with w->bad set.
 */
struct frame_walk {
    struct evbuffer *buf;
    size_t at, have;
    bool bad;
};

void frame_walk_init(struct frame_walk *w, struct evbuffer *buf, size_t at);
bool frame_walk_next(struct frame_walk *w, char *type, uint32_t *len);

/* What the relay learnt from scanning headers. */
struct frame_scan {
    size_t forward;     /* bytes at the front that may go out now */
    uint32_t remaining; /* bytes of a message cut off by the end of the buffer */
    char last_type;     /* type of the last message that started */
    size_t messages;    /* messages that started in this scan */
    int error;          /* FRAME_BAD_LENGTH on a length word below 4 */
};

/* Whose bytes are scanned: the same type byte means different messages each way. */
enum frame_side {
    FRAME_FROM_CLIENT,
    FRAME_FROM_SERVER,
};

/*
 * Scans buf from the front: first the rest of the message in progress
 * (remaining bytes), then whole and partial messages, stopping before a
 * header that is not complete yet.  Each message that starts is told to
 * track once (tx_track_client or tx_track_server, by side), before the
 * scan moves past its header.  The server's ReadyForQuery is only passed
 * whole, so its status byte is always seen.
 */
void frame_scan(struct evbuffer *buf, uint32_t remaining, struct frame_scan *out,
                struct tx_track *track, enum frame_side side);

/* The same on avail contiguous bytes (the relay's direct path). */
void frame_scan_bytes(const uint8_t *p, size_t avail, uint32_t remaining, struct frame_scan *out,
                      struct tx_track *track, enum frame_side side);

#endif
