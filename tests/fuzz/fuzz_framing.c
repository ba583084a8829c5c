/*
 * fuzz_framing.c
 *    libFuzzer target for protocol/framing.c: the relay scans the same
 *    bytes with frame_scan_bytes (direct path, one flat block) or with
 *    frame_scan (queued path, an evbuffer of chains cut anywhere).  Both
 *    must reach the same verdict on any input, leave the connection's
 *    tx_track in the same state, never claim more bytes than they were
 *    given, and never read outside them (ASan watches).
 *
 *    Input: 4 bytes of "remaining" (the rest of a message already in
 *    flight, reduced to below 64 KiB; the top bit of the fourth byte says
 *    the bytes come from the server), 1 byte seeding where the chains are
 *    cut, then the bytes to scan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/framing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint32_t remaining = ((uint32_t)data[0] << 8 | data[1]) % 65536u;
    unsigned seed = data[4] | (unsigned)data[2] << 8 | (unsigned)data[3] << 16;
    enum frame_side side = (data[3] & 0x80) ? FRAME_FROM_SERVER : FRAME_FROM_CLIENT;
    const uint8_t *p = data + 5;
    size_t n = size - 5;

    /* A private copy of exactly n bytes, so that ASan sees any overread. */
    uint8_t *flat = malloc(n ? n : 1);
    check(flat != NULL);
    memcpy(flat, p, n);
    struct frame_scan a, b;
    struct tx_track ta, tb;
    tx_track_init(&ta, 'I');
    tx_track_init(&tb, 'I');
    frame_scan_bytes(flat, n, remaining, &a, &ta, side);

    struct evbuffer *buf = evbuffer_new();
    check(buf != NULL);
    for (size_t at = 0; at < n;) {
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % 13;
        if (piece > n - at)
            piece = n - at;
        check(evbuffer_add_reference(buf, flat + at, piece, NULL, NULL) == 0);
        at += piece;
    }
    frame_scan(buf, remaining, &b, &tb, side);

    check(a.forward <= n);
    check(a.forward == b.forward && a.remaining == b.remaining && a.messages == b.messages &&
          a.last_type == b.last_type && a.error == b.error);
    check(ta.outstanding == tb.outstanding && ta.window_syncs == tb.window_syncs &&
          ta.copy_ends == tb.copy_ends && ta.flags == tb.flags && ta.status == tb.status);
    /* Only the server's ReadyForQuery sets the status. */
    check(side == FRAME_FROM_SERVER || ta.status == 'I');
    evbuffer_free(buf);
    free(flat);
    return 0;
}
