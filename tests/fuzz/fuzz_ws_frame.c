/*
 * fuzz_ws_frame.c
 *    libFuzzer target for the WebSocket frame path (protocol/ws.c over
 *    wslay): the input is what a client sends, written into one end of a
 *    socket pair whose other end is read by ws_read in chunks of a size
 *    the input picks.  Two modes, by the first byte's low bit:
 *
 *    raw:   the rest is sent as it is.  Besides not crashing: no read
 *           returns more than asked, the stream read is never longer than
 *           the input, and everything pgnear sent back (pongs, the close)
 *           is well-formed frames, unmasked, control payloads <= 125.
 *    built: the rest is cut into chunks that the harness wraps in valid
 *           masked binary/continuation frames (fragmented or not), with
 *           pings between them; the stream read must be exactly the
 *           payloads in order, the pings answered by pongs with their
 *           payload, and the end a clean EOF.
 *
 *    Then ws_write sends the stream read back; the peer must find it in
 *    binary frames, unchanged.  With the first byte's second bit, wslay's
 *    frame state is let go after each read where nothing is under way
 *    (ws_rest, as an idle client's): in built mode the same must hold.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/ws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STREAM 65536

static uint8_t wire[4 * MAX_STREAM], expect[MAX_STREAM], got[MAX_STREAM], back[8 * MAX_STREAM];

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

/* A masked client frame of p[0..n) into out; returns its length. */
static size_t client_frame(uint8_t *out, int fin, int opcode, const uint8_t *p, size_t n,
                           uint8_t key)
{
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        out[h++] = (uint8_t)(0x80 | n);
    } else {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    uint8_t mask[4] = {key, (uint8_t)(key * 3), (uint8_t)(key + 7), 0x5a};
    memcpy(out + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++)
        out[h + i] = p[i] ^ mask[i % 4];
    return h + n;
}

/* Valid frames from the input: chunk lengths from its bytes, pings between messages. */
static size_t build_frames(const uint8_t *d, size_t n, size_t *expect_len, size_t *pings)
{
    size_t w = 0, e = 0, i = 0;
    *pings = 0;
    while (i < n && w + 300 + 64 < sizeof(wire)) {
        size_t len = d[i] % 61, parts = 1 + d[i] / 61 % 3;
        i++;
        for (size_t part = 0; part < parts && i < n; part++) {
            size_t k = len < n - i ? len : n - i;
            w += client_frame(wire + w, part + 1 == parts, part == 0 ? 2 : 0, d + i, k, d[i - 1]);
            memcpy(expect + e, d + i, k);
            e += k;
            i += k;
        }
        if (d[i - 1] & 1) {
            w += client_frame(wire + w, 1, 9, (const uint8_t *)"pp", 2, 0x11);
            (*pings)++;
        }
    }
    *expect_len = e;
    return w;
}

/* Reads the stream in chunks of step bytes until it ends; returns its length. */
/*
 * rest: after each read, wslay's frame state is let go where nothing is
 * under way (ws_rest), as an idle client's is: no byte may be lost or
 * changed by it.
 */
static size_t read_all(struct ws_conn *ws, size_t step, bool rest, ssize_t *end)
{
    size_t total = 0;
    for (;;) {
        int more = 0;
        size_t room = sizeof(got) - total < step ? sizeof(got) - total : step;
        if (room == 0) {
            *end = 0;
            return total;
        }
        ssize_t n = ws_read(ws, got + total, room, &more);
        if (n <= 0) {
            *end = n;
            return total;
        }
        check((size_t)n <= room);
        total += (size_t)n;
        if (rest)
            ws_rest(ws);
    }
}

/* Parses what pgnear sent: counts pongs "pp", returns the binary payload's length in out. */
static size_t parse_back(const uint8_t *p, size_t n, uint8_t *out, size_t *pongs)
{
    size_t i = 0, o = 0;
    *pongs = 0;
    while (i + 2 <= n) {
        int opcode = p[i] & 0x0f;
        check((p[i + 1] & 0x80) == 0); /* pgnear never masks */
        uint64_t len = p[i + 1] & 0x7f;
        size_t h = 2;
        if (len == 126) {
            check(i + 4 <= n);
            len = (uint64_t)p[i + 2] << 8 | p[i + 3];
            h = 4;
        } else if (len == 127) {
            check(i + 10 <= n);
            len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | p[i + 2 + k];
            h = 10;
        }
        check(i + h + len <= n);
        if (opcode >= 8)
            check(len <= 125);
        if (opcode == 10 && len == 2 && memcmp(p + i + h, "pp", 2) == 0)
            (*pongs)++;
        if (opcode == 2) {
            memcpy(out + o, p + i + h, (size_t)len);
            o += (size_t)len;
        }
        i += h + (size_t)len;
    }
    check(i == n);
    return o;
}

/* Appends what the peer has to back[have..); returns the new length. */
static size_t drain(int fd, size_t have)
{
    size_t n = have;
    ssize_t r;
    while (n < sizeof(back) / 2 && (r = read(fd, back + n, sizeof(back) / 2 - n)) > 0)
        n += (size_t)r;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (size < 2 || size > MAX_STREAM ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        return 0;
    int built = data[0] & 1;
    size_t step = 1 + data[1] % 200, expect_len = 0, pings = 0;
    uint64_t max_frame = built ? 1u << 20 : 16u + (uint64_t)data[0] * 16u;
    size_t wlen = built ? build_frames(data + 2, size - 2, &expect_len, &pings) : size - 2;
    const uint8_t *w = built ? wire : data + 2;
    check(write(sv[0], w, wlen) == (ssize_t)wlen);
    shutdown(sv[0], SHUT_WR);

    struct sock lower;
    sock_init(&lower, sv[1]);
    struct ws_conn *ws = ws_new(&lower, max_frame);
    check(ws != NULL);
    ssize_t end;
    bool rest = (data[0] & 2) != 0;
    size_t n = read_all(ws, step, rest, &end);
    if (rest)
        ws_rest(ws);
    check(n <= wlen);
    if (built) {
        check(end == STREAM_EOF && n == expect_len && memcmp(got, expect, n) == 0);
    }
    size_t back_len = drain(sv[0], 0); /* what reading sent back: room for the echo */
    ssize_t sent = end == STREAM_ERROR ? 0 : ws_write(ws, got, n);
    check(sent == STREAM_ERROR || (sent >= 0 && (size_t)sent <= n));
    int fd = ws_free(ws);
    close(fd);
    back_len = drain(sv[0], back_len);
    size_t pongs, blen = parse_back(back, back_len, back + sizeof(back) / 2, &pongs);
    if (built) {
        /* A socket that is not read fills up: a pong waiting then answers the later pings too. */
        check(pongs <= pings && (pings == 0 || pongs > 0));
        check((size_t)sent == n && blen == n && memcmp(back + sizeof(back) / 2, got, n) == 0);
    }
    close(sv[0]);
    return 0;
}
