/*
 * framing.c — header-only scanning of v3 protocol messages in evbuffers
 * (framing.h).
 */
#include "protocol/framing.h"

#include <stdbool.h>
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

/* Drops a message whose body is body_len bytes, its header included, once it has been handled. */
void frame_consume(struct evbuffer *buf, uint32_t body_len)
{
    evbuffer_drain(buf, (size_t)body_len + PKT_HEADER_LEN);
}

/*
 * Copies n bytes starting at offset off of the peeked chains into out;
 * false when the chains end first.  Only used for headers that straddle
 * two chains, so the common case reads headers in place.
 */
static bool frame_gather(const struct evbuffer_iovec *vec, int nvec, int i, size_t off,
                         uint8_t *out, size_t n)
{
    size_t got = 0;
    for (; i < nvec && got < n; i++, off = 0) {
        size_t take = vec[i].iov_len - off;
        if (take > n - got)
            take = n - got;
        memcpy(out + got, (const uint8_t *)vec[i].iov_base + off, take);
        got += take;
    }
    return got == n;
}

#define FRAME_SCAN_VECS 16

/* A window of peeked chains, refilled when the scan walks off its end. */
struct frame_window {
    struct evbuffer *buf;
    struct evbuffer_iovec vec[FRAME_SCAN_VECS];
    int nvec;
    int ci;      /* chain holding the scan position */
    size_t coff; /* offset of the scan position in that chain */
};

/* Peeks the chains from absolute offset pos on. */
static bool frame_window_at(struct frame_window *fw, size_t pos)
{
    struct evbuffer_ptr ptr;
    if (evbuffer_ptr_set(fw->buf, &ptr, pos, EVBUFFER_PTR_SET) != 0)
        return false;
    fw->nvec = evbuffer_peek(fw->buf, -1, &ptr, fw->vec, FRAME_SCAN_VECS);
    if (fw->nvec > FRAME_SCAN_VECS)
        fw->nvec = FRAME_SCAN_VECS;
    fw->ci = 0;
    fw->coff = 0;
    return fw->nvec > 0;
}

/* Moves the scan position n bytes on; false when it left the buffer. */
static bool frame_window_advance(struct frame_window *fw, size_t n, size_t newpos)
{
    fw->coff += n;
    while (fw->ci < fw->nvec && fw->coff >= fw->vec[fw->ci].iov_len) {
        fw->coff -= fw->vec[fw->ci].iov_len;
        fw->ci++;
    }
    if (fw->ci < fw->nvec)
        return true;
    return frame_window_at(fw, newpos);
}

/* The header at the scan position: in place when it is contiguous. */
static const uint8_t *frame_window_header(struct frame_window *fw, uint8_t *copy, size_t want)
{
    if (fw->vec[fw->ci].iov_len - fw->coff >= want)
        return (const uint8_t *)fw->vec[fw->ci].iov_base + fw->coff;
    if (frame_gather(fw->vec, fw->nvec, fw->ci, fw->coff, copy, want))
        return copy;
    /* Straddles the end of the window: gather through evbuffer's own copy. */
    return NULL;
}

/*
 * The header at *pos (h holds at least min(6, avail - *pos) of its bytes):
 * notes the message, in out and in track, and moves *pos past it.  False
 * stops the scan: a bad length, a server's ReadyForQuery whose status byte
 * has not arrived, or a message cut off by the end of the bytes.  A
 * ReadyForQuery without a body (length 4, from a broken server) has no
 * status to wait for: it is whole at five bytes and goes out as it is, or
 * the session would stall on it; its status is unknown.  A client's 'Z'
 * is no ReadyForQuery, and nothing waits for its body.
 */
static inline __attribute__((always_inline)) bool
frame_scan_step(const uint8_t *h, size_t avail, size_t *pos, struct frame_scan *out,
                struct tx_track *track, enum frame_side side)
{
    size_t have = avail - *pos;
    uint32_t len = pkt_be32(h + 1);
    uint8_t type = h[0], status = 0;
    if (len < 4) {
        out->error = FRAME_BAD_LENGTH;
        return false;
    }
    if (side == FRAME_FROM_SERVER) {
        if (type == 'Z' && len > 4) {
            if (have <= PKT_HEADER_LEN)
                return false; /* wait for the status byte */
            status = h[PKT_HEADER_LEN];
        }
        tx_track_server(track, type, status);
    } else {
        tx_track_client(track, type);
    }
    out->last_type = (char)type;
    out->messages++;
    size_t total = (size_t)len + 1;
    if (total > have) {
        out->remaining = (uint32_t)(total - have);
        *pos = avail;
        return false;
    }
    *pos += total;
    return true;
}

void frame_scan(struct evbuffer *buf, uint32_t remaining, struct frame_scan *out,
                struct tx_track *track, enum frame_side side)
{
    size_t avail = evbuffer_get_length(buf);
    memset(out, 0, sizeof(*out));
    size_t pos = remaining < avail ? remaining : avail;
    out->remaining = remaining - (uint32_t)pos;
    struct frame_window fw = {.buf = buf};
    if (avail - pos < PKT_HEADER_LEN || !frame_window_at(&fw, pos)) {
        out->forward = pos;
        return;
    }
    while (avail - pos >= PKT_HEADER_LEN) {
        uint8_t copy[PKT_HEADER_LEN + 1];
        size_t want = avail - pos > PKT_HEADER_LEN ? PKT_HEADER_LEN + 1 : PKT_HEADER_LEN;
        const uint8_t *h = frame_window_header(&fw, copy, want);
        if (h == NULL) {
            struct evbuffer_ptr ptr;
            if (evbuffer_ptr_set(buf, &ptr, pos, EVBUFFER_PTR_SET) != 0 ||
                evbuffer_copyout_from(buf, &ptr, copy, want) != (ev_ssize_t)want)
                break;
            h = copy;
        }
        size_t from = pos;
        if (!frame_scan_step(h, avail, &pos, out, track, side))
            break;
        if (avail - pos < PKT_HEADER_LEN || !frame_window_advance(&fw, pos - from, pos))
            break;
    }
    out->forward = pos;
}

/*
 * The direct path's loop, made once for each side: with the side a
 * constant, each message costs the header checks and the tracker's own
 * few instructions, and no call.
 */
static inline __attribute__((always_inline)) size_t
frame_scan_flat(const uint8_t *p, size_t avail, size_t pos, struct frame_scan *out,
                struct tx_track *track, enum frame_side side)
{
    while (avail - pos >= PKT_HEADER_LEN && frame_scan_step(p + pos, avail, &pos, out, track, side))
        ;
    return pos;
}

void frame_scan_bytes(const uint8_t *p, size_t avail, uint32_t remaining, struct frame_scan *out,
                      struct tx_track *track, enum frame_side side)
{
    memset(out, 0, sizeof(*out));
    size_t pos = remaining < avail ? remaining : avail;
    out->remaining = remaining - (uint32_t)pos;
    if (side == FRAME_FROM_SERVER)
        pos = frame_scan_flat(p, avail, pos, out, track, FRAME_FROM_SERVER);
    else
        pos = frame_scan_flat(p, avail, pos, out, track, FRAME_FROM_CLIENT);
    out->forward = pos;
}

void frame_walk_init(struct frame_walk *w, struct evbuffer *buf, size_t at)
{
    w->buf = buf;
    w->at = at;
    w->have = evbuffer_get_length(buf);
    w->bad = false;
}

bool frame_walk_next(struct frame_walk *w, char *type, uint32_t *len)
{
    uint8_t h[5];
    struct evbuffer_ptr p;
    if (w->bad || w->at > w->have || w->have - w->at < sizeof(h) ||
        evbuffer_ptr_set(w->buf, &p, w->at, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(w->buf, &p, h, sizeof(h)) != (ssize_t)sizeof(h))
        return false;
    *type = (char)h[0];
    *len = pkt_be32(h + 1);
    if (*len < 4) {
        w->bad = true;
        return false;
    }
    w->at += 1 + (size_t)*len;
    return true;
}
