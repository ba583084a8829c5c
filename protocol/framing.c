/*
 * framing.c — header-only scanning of v3 protocol messages in evbuffers.
 */
#include "protocol/framing.h"

#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"

int frame_peek_whole(struct evbuffer *buf, uint32_t max_body, char *type, uint32_t *body_len)
{
    uint8_t hdr[PKT_HEADER_LEN];
    if (evbuffer_copyout(buf, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
        return FRAME_INCOMPLETE;
    uint32_t len = pkt_be32(hdr + 1);
    if (len < 4 || len - 4 > max_body)
        return FRAME_BAD_LENGTH;
    *type = (char)hdr[0];
    *body_len = len - 4;
    if (evbuffer_get_length(buf) < (size_t)len + 1)
        return FRAME_INCOMPLETE;
    return FRAME_READY;
}

const uint8_t *frame_body(struct evbuffer *buf, uint32_t body_len)
{
    const uint8_t *p = evbuffer_pullup(buf, (ev_ssize_t)body_len + PKT_HEADER_LEN);
    return p ? p + PKT_HEADER_LEN : NULL;
}

void frame_consume(struct evbuffer *buf, uint32_t body_len)
{
    evbuffer_drain(buf, (size_t)body_len + PKT_HEADER_LEN);
}

/* Reads n bytes at ptr without moving it; false if the buffer ends first. */
static int frame_copy_at(struct evbuffer *buf, struct evbuffer_ptr *ptr, uint8_t *out, size_t n)
{
    return evbuffer_copyout_from(buf, ptr, out, n) == (ev_ssize_t)n;
}

void frame_scan(struct evbuffer *buf, uint32_t remaining, struct frame_scan *out)
{
    size_t avail = evbuffer_get_length(buf);
    memset(out, 0, sizeof(*out));
    size_t pos = remaining < avail ? remaining : avail;
    out->remaining = remaining - (uint32_t)pos;
    struct evbuffer_ptr ptr;
    if (pos == avail || evbuffer_ptr_set(buf, &ptr, pos, EVBUFFER_PTR_SET) != 0) {
        out->forward = pos;
        return;
    }
    while (avail - pos >= PKT_HEADER_LEN) {
        uint8_t hdr[PKT_HEADER_LEN + 1];
        size_t want = avail - pos > PKT_HEADER_LEN ? PKT_HEADER_LEN + 1 : PKT_HEADER_LEN;
        if (!frame_copy_at(buf, &ptr, hdr, want))
            break;
        uint32_t len = pkt_be32(hdr + 1);
        if (len < 4) {
            out->error = FRAME_BAD_LENGTH;
            break;
        }
        if (hdr[0] == 'Z') {
            if (want <= PKT_HEADER_LEN)
                break; /* wait for the status byte */
            out->ready_status = (char)hdr[PKT_HEADER_LEN];
        }
        out->last_type = (char)hdr[0];
        out->messages++;
        size_t total = (size_t)len + 1;
        if (total > avail - pos) {
            out->remaining = (uint32_t)(total - (avail - pos));
            pos = avail;
            break;
        }
        pos += total;
        if (pos == avail || evbuffer_ptr_set(buf, &ptr, total, EVBUFFER_PTR_ADD) != 0)
            break;
    }
    out->forward = pos;
}
