/*
 * framing.h — message boundaries of the v3 protocol inside an evbuffer.
 *
 * The relay reads only the five-byte header of each message and decides
 * to forward it; the login phases ask for whole messages.
 */
#ifndef PGNEAR_PROTOCOL_FRAMING_H
#define PGNEAR_PROTOCOL_FRAMING_H

#include <stddef.h>
#include <stdint.h>

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

/* What the relay learnt from scanning headers. */
struct frame_scan {
    size_t forward;     /* bytes at the front that may go out now */
    uint32_t remaining; /* bytes of a message cut off by the end of the buffer */
    char last_type;     /* type of the last message that started */
    char ready_status;  /* status byte of the last ReadyForQuery seen, or 0 */
    size_t messages;    /* messages that started in this scan */
    /*
     * Of those, the ones a ReadyForQuery answers, one each, when a client
     * sends them: Query, Sync, FunctionCall ('Q', 'S', 'F'); and the
     * ReadyForQuery messages themselves.  Both are counted in either
     * direction: which one means something depends on who sent the bytes
     * (a server's 'S' is a ParameterStatus, a client's 'Z' means nothing).
     */
    uint32_t requests;
    uint32_t readies;
    int error; /* FRAME_BAD_LENGTH on a length word below 4 */
};

/*
 * Scans buf from the front: first the rest of the message in progress
 * (remaining bytes), then whole and partial messages, stopping before a
 * header that is not complete yet.  ReadyForQuery is only passed whole, so
 * its status byte is always seen.
 */
void frame_scan(struct evbuffer *buf, uint32_t remaining, struct frame_scan *out);

/* The same on avail contiguous bytes (the relay's direct path). */
void frame_scan_bytes(const uint8_t *p, size_t avail, uint32_t remaining, struct frame_scan *out);

#endif
