/*
 * test_ws.c
 *    Unit tests for protocol/ws.c (cmocka, TAP output), over a socket pair:
 *    a PostgreSQL message split over many frames and read a byte at a
 *    time, fragmented messages, a ping answered and pings of our own, the
 *    client's close echoed, every frame a client may not send closed with
 *    its code, and writes a small socket buffer cuts short anywhere — a
 *    frame, once begun, ends before a pong goes out.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "protocol/ws.h"

struct pair {
    int client; /* the test's end: writes client frames, reads pgnear's */
    struct ws_conn *ws;
};

/* sndbuf: pgnear's socket buffer (0: the system's). */
static void pair_open(struct pair *p, uint64_t max_frame, int sndbuf)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    if (sndbuf > 0)
        assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
    struct sock lower;
    sock_init(&lower, sv[1]);
    p->client = sv[0];
    p->ws = ws_new(&lower, max_frame);
    assert_non_null(p->ws);
    assert_int_equal(lower.fd, -1);
}

static void pair_close(struct pair *p)
{
    close(ws_free(p->ws));
    close(p->client);
}

static size_t client_frame(uint8_t *out, int fin, int opcode, const void *data, size_t n, int mask)
{
    const uint8_t *d = data, key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (n < 126) {
        out[h++] = (uint8_t)((mask ? 0x80 : 0) | n);
    } else {
        out[h++] = (uint8_t)((mask ? 0x80 : 0) | 126);
        out[h++] = (uint8_t)(n >> 8);
        out[h++] = (uint8_t)n;
    }
    if (mask) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < n; i++)
        out[h + i] = mask ? d[i] ^ key[i % 4] : d[i];
    return h + n;
}

static void send_frame(struct pair *p, int fin, int opcode, const void *data, size_t n)
{
    uint8_t buf[70000];
    size_t len = client_frame(buf, fin, opcode, data, n, 1);
    assert_int_equal(write(p->client, buf, len), (ssize_t)len);
}

/* One frame pgnear sent: its opcode, payload into out. */
static int read_frame(struct pair *p, uint8_t *out, size_t cap, size_t *len)
{
    uint8_t h[10];
    assert_int_equal(read(p->client, h, 2), 2);
    assert_int_equal(h[1] & 0x80, 0);
    size_t n = h[1] & 0x7f;
    if (n == 126) {
        assert_int_equal(read(p->client, h + 2, 2), 2);
        n = (size_t)h[2] << 8 | h[3];
    }
    assert_true(n <= cap);
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(p->client, out + got, n - got);
        assert_true(r > 0);
        got += (size_t)r;
    }
    *len = n;
    return h[0] & 0x0f;
}

/* Reads the stream a byte at a time until it stops; returns its length and *end. */
static size_t read_stream(struct pair *p, uint8_t *out, size_t cap, ssize_t *end)
{
    size_t total = 0;
    int more;
    ssize_t n;
    while (total < cap && (n = ws_read(p->ws, out + total, 1, &more)) > 0)
        total += (size_t)n;
    *end = total < cap ? n : 0;
    return total;
}

static void test_split_and_fragmented(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 1024, 0);
    static const char msg[] = "Q\0\0\0\x0dSELECT 1;";
    for (size_t i = 0; i < sizeof(msg); i += 3) /* a frame every 3 bytes */
        send_frame(&p, 1, 2, msg + i, sizeof(msg) - i < 3 ? sizeof(msg) - i : 3);
    send_frame(&p, 0, 2, "ab", 2); /* a fragmented message with a ping inside */
    send_frame(&p, 1, 9, "hi", 2);
    send_frame(&p, 0, 0, "", 0);
    send_frame(&p, 1, 0, "cd", 2);
    uint8_t got[64];
    ssize_t end;
    size_t n = read_stream(&p, got, sizeof(got), &end);
    assert_int_equal(end, STREAM_AGAIN);
    assert_int_equal(n, sizeof(msg) + 4);
    assert_memory_equal(got, msg, sizeof(msg));
    assert_memory_equal(got + sizeof(msg), "abcd", 4);
    uint8_t f[200];
    size_t flen;
    assert_int_equal(read_frame(&p, f, sizeof(f), &flen), 10);
    assert_int_equal(flen, 2);
    assert_memory_equal(f, "hi", 2);
    assert_int_equal(ws_ping(p.ws), 0);
    assert_int_equal(read_frame(&p, f, sizeof(f), &flen), 9);
    send_frame(&p, 1, 10, f, flen);
    n = read_stream(&p, got, sizeof(got), &end);
    assert_int_equal(n, 0);
    assert_true(ws_pong_seen(p.ws));
    send_frame(&p, 1, 8, "\x03\xe9", 2); /* close 1001: echoed, the stream ends */
    int more;
    assert_int_equal(ws_read(p.ws, got, sizeof(got), &more), STREAM_EOF);
    assert_int_equal(read_frame(&p, f, sizeof(f), &flen), 8);
    assert_int_equal(flen, 2);
    assert_memory_equal(f, "\x03\xe9", 2);
    assert_int_equal(ws_write(p.ws, "x", 1), STREAM_ERROR);
    pair_close(&p);
}

/*
 * ws_rest lets wslay's frame state go only while nothing is under way: not
 * with half a frame read, nor with a frame's payload still to come, nor
 * with a pong waiting; after it, frames are read and written as before.
 */
static void test_rest(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 1024, 0);
    uint8_t got[64], f[200], raw[64];
    ssize_t end;
    size_t flen;
    assert_true(ws_rest(p.ws)); /* nothing read yet */
    send_frame(&p, 1, 2, "SELECT", 6);
    assert_int_equal(read_stream(&p, got, sizeof(got), &end), 6);
    assert_memory_equal(got, "SELECT", 6);
    assert_true(ws_rest(p.ws));
    assert_true(ws_rest(p.ws)); /* again: nothing to let go */
    /* Half a header, then the rest after a rest that must not happen. */
    size_t len = client_frame(raw, 1, 2, "abcdef", 6, 1);
    assert_int_equal(write(p.client, raw, 1), 1);
    assert_int_equal(read_stream(&p, got, sizeof(got), &end), 0);
    assert_int_equal(end, STREAM_AGAIN);
    assert_false(ws_rest(p.ws));
    /* Part of the payload: still under way. */
    assert_int_equal(write(p.client, raw + 1, len - 4), (ssize_t)(len - 4));
    assert_int_equal(read_stream(&p, got, sizeof(got), &end), 3);
    assert_false(ws_rest(p.ws));
    assert_int_equal(write(p.client, raw + len - 3, 3), 3);
    assert_int_equal(read_stream(&p, got + 3, sizeof(got) - 3, &end), 3);
    assert_memory_equal(got, "abcdef", 6);
    assert_true(ws_rest(p.ws));
    /* A ping read while the socket takes no more would leave its pong waiting: not here. */
    send_frame(&p, 1, 9, "hi", 2);
    assert_int_equal(read_stream(&p, got, sizeof(got), &end), 0);
    assert_true(ws_rest(p.ws)); /* the pong went at once */
    assert_int_equal(read_frame(&p, f, sizeof(f), &flen), 10);
    assert_memory_equal(f, "hi", 2);
    /* Written after a rest: a frame as any. */
    assert_int_equal(ws_write(p.ws, "xyz", 3), 3);
    assert_int_equal(read_frame(&p, f, sizeof(f), &flen), 2);
    assert_int_equal(flen, 3);
    assert_memory_equal(f, "xyz", 3);
    pair_close(&p);
}

/* Each frame a client may not send: the stream fails and the close frame has the code. */
static void expect_refused(int fin, int opcode, const void *data, size_t n, int mask, uint16_t code)
{
    struct pair p;
    pair_open(&p, 1024, 0);
    uint8_t buf[2048], f[200];
    size_t len = client_frame(buf, fin, opcode, data, n, mask), flen;
    if (opcode == 0x42) /* RSV1 */
        buf[0] = (uint8_t)(buf[0] & ~0x0f) | 0x40 | 2;
    assert_int_equal(write(p.client, buf, len), (ssize_t)len);
    int more;
    assert_int_equal(ws_read(p.ws, buf, sizeof(buf), &more), STREAM_ERROR);
    assert_true(ws_error(p.ws)[0] != '\0');
    assert_int_equal(read_frame(&p, f, sizeof(f), &flen), 8);
    assert_true(flen >= 2);
    assert_int_equal(f[0] << 8 | f[1], code);
    pair_close(&p);
}

static void test_refused_frames(void **state)
{
    (void)state;
    static uint8_t big[1500];
    expect_refused(1, 1, "hi", 2, 1, WS_CLOSE_UNSUPPORTED); /* text */
    expect_refused(1, 2, "hi", 2, 0, WS_CLOSE_PROTOCOL);    /* unmasked */
    expect_refused(1, 0x42, "hi", 2, 1, WS_CLOSE_PROTOCOL); /* reserved bit */
    expect_refused(1, 0, "hi", 2, 1, WS_CLOSE_PROTOCOL);    /* continuation, no message */
    expect_refused(1, 5, "hi", 2, 1, WS_CLOSE_PROTOCOL);    /* unknown opcode */
    expect_refused(1, 2, big, sizeof(big), 1, WS_CLOSE_TOO_BIG);
    expect_refused(0, 9, "hi", 2, 1, WS_CLOSE_PROTOCOL); /* fragmented ping: wslay says so */
}

/* Parses pgnear's frames in raw[0..n): binary payload into out, pongs counted; returns its length.
 */
static size_t parse_frames(const uint8_t *raw, size_t n, uint8_t *out, size_t *pongs)
{
    size_t i = 0, o = 0;
    while (i < n) {
        assert_true(i + 2 <= n);
        int op = raw[i] & 0x0f;
        uint64_t len = raw[i + 1] & 0x7f;
        size_t h = 2;
        assert_int_equal(raw[i] & 0x80, 0x80); /* every frame is whole: fin */
        if (len == 126) {
            len = (uint64_t)raw[i + 2] << 8 | raw[i + 3];
            h = 4;
        } else if (len == 127) {
            len = 0;
            for (int k = 0; k < 8; k++)
                len = len << 8 | raw[i + 2 + k];
            h = 10;
        }
        assert_true(i + h + len <= n);
        if (op == 10)
            (*pongs)++;
        else {
            assert_int_equal(op, 2);
            memcpy(out + o, raw + i + h, (size_t)len);
            o += (size_t)len;
        }
        i += h + (size_t)len;
    }
    return o;
}

/* Writes cut short by a small socket buffer; a ping's pong waits for the frame under way. */
static void test_partial_writes(void **state)
{
    (void)state;
    struct pair p;
    pair_open(&p, 1024, 4096);
    size_t total = 600000, off = 0, raw_len = 0, pongs = 0;
    uint8_t *data = malloc(total), *back = malloc(total), *raw = malloc(2 * total), f[64];
    assert_true(data != NULL && back != NULL && raw != NULL);
    for (size_t i = 0; i < total; i++)
        data[i] = (uint8_t)(i * 7 + i / 251);
    send_frame(&p, 1, 9, "p1", 2);
    for (int rounds = 0; off < total && rounds < 100000; rounds++) {
        ssize_t n = ws_write(p.ws, data + off, total - off);
        assert_true(n >= 0 || n == STREAM_AGAIN);
        off += n > 0 ? (size_t)n : 0;
        int more;
        if (rounds == 1) /* the ping is read while a frame is half out */
            assert_int_equal(ws_read(p.ws, f, sizeof(f), &more), STREAM_AGAIN);
        if (rounds > 1 && ws_has_output(p.ws))
            assert_int_equal(ws_flush(p.ws), 0); /* nothing goes inside the frame */
        ssize_t r = read(p.client, raw + raw_len, 2 * total - raw_len);
        raw_len += r > 0 ? (size_t)r : 0;
    }
    assert_int_equal(off, total);
    assert_int_equal(ws_flush(p.ws), 0); /* the pong, now that the data is out */
    assert_false(ws_has_output(p.ws));
    ssize_t r;
    while ((r = read(p.client, raw + raw_len, 2 * total - raw_len)) > 0)
        raw_len += (size_t)r;
    assert_int_equal(parse_frames(raw, raw_len, back, &pongs), total);
    assert_memory_equal(back, data, total);
    assert_int_equal(pongs, 1);
    free(data);
    free(back);
    free(raw);
    pair_close(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_fragmented),
        cmocka_unit_test(test_refused_frames),
        cmocka_unit_test(test_partial_writes),
        cmocka_unit_test(test_rest),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
