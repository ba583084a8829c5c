/*
 * test_framing.c
 *    Unit tests for protocol/framing.c over real libevent evbuffers
 *    (cmocka, TAP output).  Byte streams are laid out in flat arrays here
 *    and then loaded into evbuffers made of one or of many chains.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/framing.h"

#define MAX_BODY (1u << 20)

/* ---- building byte streams ---- */

static size_t put_header(uint8_t *w, size_t n, char type, uint32_t len_word)
{
    w[n] = (uint8_t)type;
    w[n + 1] = (uint8_t)(len_word >> 24);
    w[n + 2] = (uint8_t)(len_word >> 16);
    w[n + 3] = (uint8_t)(len_word >> 8);
    w[n + 4] = (uint8_t)len_word;
    return n + 5;
}

/* Appends a whole message whose body bytes are fill, fill+1, ... */
static size_t put_msg(uint8_t *w, size_t n, char type, uint32_t body_len, uint8_t fill)
{
    n = put_header(w, n, type, body_len + 4);
    for (uint32_t i = 0; i < body_len; i++)
        w[n++] = (uint8_t)(fill + i);
    return n;
}

static size_t put_ready(uint8_t *w, size_t n, char status)
{
    n = put_header(w, n, 'Z', 5);
    w[n++] = (uint8_t)status;
    return n;
}

static struct evbuffer *flat_buffer(const uint8_t *w, size_t n)
{
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    assert_int_equal(evbuffer_add(b, w, n), 0);
    return b;
}

/* One chain per piece, the pieces referenced where they lie. */
static struct evbuffer *ref_buffer(const uint8_t *w, const size_t *cuts, size_t ncuts, size_t n)
{
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        if (to > from)
            assert_int_equal(evbuffer_add_reference(b, w + from, to - from, NULL, NULL), 0);
        from = to;
    }
    return b;
}

/* One chain per piece, each piece copied into a buffer of its own and moved over. */
static struct evbuffer *moved_buffer(const uint8_t *w, const size_t *cuts, size_t ncuts, size_t n)
{
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : n;
        struct evbuffer *piece = evbuffer_new();
        assert_non_null(piece);
        assert_int_equal(evbuffer_add(piece, w + from, to - from), 0);
        assert_int_equal(evbuffer_add_buffer(b, piece), 0);
        evbuffer_free(piece);
        from = to;
    }
    return b;
}

static int chains(struct evbuffer *b)
{
    return evbuffer_peek(b, -1, NULL, NULL, 0);
}

/*
 * A scan of server bytes, and the status a fresh tx_track was left with
 * (0: no ReadyForQuery with a status byte was seen).
 */
struct tscan {
    size_t forward;
    uint32_t remaining;
    char last_type;
    size_t messages;
    int error;
    char ready_status;
};

static struct tscan tscan_of(const struct frame_scan *f, const struct tx_track *t)
{
    struct tscan s = {f->forward, f->remaining, f->last_type, f->messages, f->error, t->status};
    return s;
}

static struct tscan scan(struct evbuffer *b, uint32_t remaining)
{
    struct frame_scan s;
    struct tx_track t;
    tx_track_init(&t, 0);
    memset(&s, 0x5A, sizeof(s)); /* garbage: frame_scan must set every field */
    frame_scan(b, remaining, &s, &t, FRAME_FROM_SERVER);
    return tscan_of(&s, &t);
}

/* The same through the flat scan of the relay's direct path. */
static struct tscan scan_bytes(const uint8_t *w, size_t avail, uint32_t remaining)
{
    struct frame_scan s;
    struct tx_track t;
    tx_track_init(&t, 0);
    memset(&s, 0x5A, sizeof(s));
    frame_scan_bytes(w, avail, remaining, &s, &t, FRAME_FROM_SERVER);
    return tscan_of(&s, &t);
}

static void expect_scan(const struct tscan *s, size_t forward, uint32_t remaining, size_t messages,
                        char last_type, char ready_status)
{
    assert_int_equal(s->forward, forward);
    assert_int_equal(s->remaining, remaining);
    assert_int_equal(s->messages, messages);
    assert_int_equal(s->last_type, last_type);
    assert_int_equal(s->ready_status, ready_status);
    assert_int_equal(s->error, 0);
}

static void assert_same_scan(const struct tscan *a, const struct tscan *b)
{
    assert_int_equal(a->forward, b->forward);
    assert_int_equal(a->remaining, b->remaining);
    assert_int_equal(a->messages, b->messages);
    assert_int_equal(a->last_type, b->last_type);
    assert_int_equal(a->ready_status, b->ready_status);
    assert_int_equal(a->error, b->error);
}

/* ---- frame_peek_whole ---- */

static int peek(const uint8_t *w, size_t n, uint32_t max_body, char *type, uint32_t *body_len)
{
    struct evbuffer *b = flat_buffer(w, n);
    int rc = frame_peek_whole(b, max_body, type, body_len);
    evbuffer_free(b);
    return rc;
}

/* frame_walk: every header in order, where each message ends, one cut short, a bad length. */
static void test_walk(void **state)
{
    (void)state;
    struct evbuffer *b = evbuffer_new();
    const uint8_t bytes[] = {'P', 0, 0, 0, 6, 'x', 0, 'S', 0, 0, 0, 4, 'B', 0, 0, 0, 9, 'y'};
    evbuffer_add(b, bytes, sizeof(bytes));
    struct frame_walk w;
    char type;
    uint32_t len;
    frame_walk_init(&w, b, 0);
    assert_true(frame_walk_next(&w, &type, &len));
    assert_int_equal(type, 'P');
    assert_int_equal(len, 6);
    assert_int_equal(w.at, 7);
    assert_true(frame_walk_next(&w, &type, &len));
    assert_int_equal(type, 'S');
    assert_int_equal(w.at, 12);
    assert_true(frame_walk_next(&w, &type, &len)); /* its header is whole, its body is not */
    assert_int_equal(type, 'B');
    assert_true(w.at > w.have);
    assert_false(frame_walk_next(&w, &type, &len));
    assert_false(w.bad);
    const uint8_t bad[] = {'Q', 0, 0, 0, 3};
    evbuffer_drain(b, evbuffer_get_length(b));
    evbuffer_add(b, bad, sizeof(bad));
    frame_walk_init(&w, b, 0);
    assert_false(frame_walk_next(&w, &type, &len));
    assert_true(w.bad);
    frame_walk_init(&w, b, 2); /* from inside: no whole header */
    assert_false(frame_walk_next(&w, &type, &len));
    evbuffer_free(b);
}

static void test_peek_incomplete_header(void **state)
{
    uint8_t w[16];
    size_t n = put_msg(w, 0, 'D', 2, 0);
    char type = 0;
    uint32_t len = 0;
    for (size_t avail = 0; avail < 5; avail++)
        assert_int_equal(peek(w, avail, MAX_BODY, &type, &len), FRAME_INCOMPLETE);
    assert_int_equal(n, 7);
}

static void test_peek_incomplete_body(void **state)
{
    uint8_t w[64];
    size_t n = put_msg(w, 0, 'D', 40, 0);
    char type = 0;
    uint32_t len = 0;
    assert_int_equal(peek(w, 5, MAX_BODY, &type, &len), FRAME_INCOMPLETE);
    assert_int_equal(peek(w, n - 1, MAX_BODY, &type, &len), FRAME_INCOMPLETE);
}

static void test_peek_ready(void **state)
{
    uint8_t w[64];
    size_t n = put_msg(w, 0, 'C', 11, 'a');
    n = put_msg(w, n, 'Z', 1, 'I');
    struct evbuffer *b = flat_buffer(w, n);
    char type = 0;
    uint32_t len = 0;
    assert_int_equal(frame_peek_whole(b, MAX_BODY, &type, &len), FRAME_READY);
    assert_int_equal(type, 'C');
    assert_int_equal(len, 11);
    const uint8_t *body = frame_body(b, len);
    assert_non_null(body);
    assert_memory_equal(body, w + 5, 11);
    frame_consume(b, len);
    assert_int_equal(evbuffer_get_length(b), 6);
    assert_int_equal(frame_peek_whole(b, MAX_BODY, &type, &len), FRAME_READY);
    assert_int_equal(type, 'Z');
    assert_int_equal(len, 1);
    assert_int_equal(frame_body(b, len)[0], 'I');
    frame_consume(b, len);
    assert_int_equal(evbuffer_get_length(b), 0);
    evbuffer_free(b);
}

static void test_peek_empty_body(void **state)
{
    uint8_t w[8];
    size_t n = put_msg(w, 0, 'N', 0, 0);
    char type = 0;
    uint32_t len = 99;
    assert_int_equal(peek(w, n, MAX_BODY, &type, &len), FRAME_READY);
    assert_int_equal(type, 'N');
    assert_int_equal(len, 0);
}

static void test_peek_bad_length(void **state)
{
    uint8_t w[16];
    char type;
    uint32_t len;
    for (uint32_t word = 0; word < 4; word++) {
        size_t n = put_header(w, 0, 'D', word);
        memset(w + n, 0, 8);
        assert_int_equal(peek(w, n + 8, MAX_BODY, &type, &len), FRAME_BAD_LENGTH);
        assert_int_equal(peek(w, n, MAX_BODY, &type, &len), FRAME_BAD_LENGTH);
    }
}

static void test_peek_body_above_max(void **state)
{
    uint8_t w[128];
    size_t n = put_msg(w, 0, 'p', 100, 0);
    char type = 0;
    uint32_t len = 0;
    assert_int_equal(peek(w, n, 99, &type, &len), FRAME_BAD_LENGTH);
    assert_int_equal(peek(w, 5, 99, &type, &len), FRAME_BAD_LENGTH); /* decided on the header */
    assert_int_equal(peek(w, n, 100, &type, &len), FRAME_READY);
    assert_int_equal(len, 100);
    put_header(w, 0, 'p', 0xFFFFFFFFu);
    assert_int_equal(peek(w, n, MAX_BODY, &type, &len), FRAME_BAD_LENGTH);
}

/* The body is made contiguous even when it spans chains. */
static void test_peek_body_over_chains(void **state)
{
    uint8_t w[128];
    size_t n = put_msg(w, 0, 'd', 90, 3);
    static const size_t cuts[] = {2, 7, 30, 31, 60};
    struct evbuffer *b = ref_buffer(w, cuts, 5, n);
    assert_int_equal(chains(b), 6);
    char type = 0;
    uint32_t len = 0;
    assert_int_equal(frame_peek_whole(b, MAX_BODY, &type, &len), FRAME_READY);
    assert_int_equal(type, 'd');
    assert_int_equal(len, 90);
    assert_memory_equal(frame_body(b, len), w + 5, 90);
    frame_consume(b, len);
    assert_int_equal(evbuffer_get_length(b), 0);
    evbuffer_free(b);
}

/* ---- frame_scan ---- */

static void test_scan_empty(void **state)
{
    struct evbuffer *b = evbuffer_new();
    struct tscan s = scan(b, 0);
    expect_scan(&s, 0, 0, 0, 0, 0);
    s = scan(b, 17);
    expect_scan(&s, 0, 17, 0, 0, 0);
    evbuffer_free(b);
}

static void test_scan_whole_messages(void **state)
{
    uint8_t w[128];
    size_t n = put_msg(w, 0, 'T', 10, 0);
    n = put_msg(w, n, 'D', 3, 0);
    n = put_msg(w, n, 'C', 5, 0);
    struct evbuffer *b = flat_buffer(w, n);
    struct tscan s = scan(b, 0);
    expect_scan(&s, n, 0, 3, 'C', 0);
    assert_int_equal(n, 33);
    assert_int_equal(evbuffer_get_length(b), n); /* scanning consumes nothing */
    evbuffer_free(b);
}

static void test_scan_cut_at_end(void **state)
{
    uint8_t w[256];
    size_t n = put_msg(w, 0, 'D', 3, 0);
    n = put_msg(w, n, 'D', 100, 0);
    size_t avail = n - 80; /* header and 20 body bytes of the second message */
    struct evbuffer *b = flat_buffer(w, avail);
    struct tscan s = scan(b, 0);
    expect_scan(&s, avail, 80, 2, 'D', 0);
    evbuffer_free(b);
}

/* A header alone starts its message; the body is owed. */
static void test_scan_header_only(void **state)
{
    uint8_t w[64];
    size_t n = put_msg(w, 0, 'd', 30, 0);
    struct evbuffer *b = flat_buffer(w, 5);
    struct tscan s = scan(b, 0);
    expect_scan(&s, 5, 30, 1, 'd', 0);
    evbuffer_free(b);
    assert_int_equal(n, 35);
}

static void test_scan_continues_remaining(void **state)
{
    uint8_t w[256];
    memset(w, 0x44, 80); /* the tail of a message begun in an earlier read */
    size_t n = put_msg(w, 80, 'C', 8, 0);
    n = put_ready(w, n, 'I');
    struct evbuffer *b = flat_buffer(w, n);
    struct tscan s = scan(b, 80);
    expect_scan(&s, n, 0, 2, 'Z', 'I');
    evbuffer_free(b);
}

/* The tail owed from an earlier scan may be longer than what has arrived. */
static void test_scan_remaining_beyond_buffer(void **state)
{
    uint8_t w[64];
    memset(w, 'Z', sizeof(w)); /* looks like headers, must be skipped as body */
    struct evbuffer *b = flat_buffer(w, 30);
    struct tscan s = scan(b, 100);
    expect_scan(&s, 30, 70, 0, 0, 0);
    s = scan(b, 30);
    expect_scan(&s, 30, 0, 0, 0, 0);
    evbuffer_free(b);
}

static void test_scan_remaining_then_split_header(void **state)
{
    uint8_t w[64];
    memset(w, 0, 10);
    put_msg(w, 10, 'D', 8, 0);
    struct evbuffer *b = flat_buffer(w, 13); /* tail, then 3 header bytes */
    struct tscan s = scan(b, 10);
    expect_scan(&s, 10, 0, 0, 0, 0);
    evbuffer_free(b);
}

static void test_scan_split_header(void **state)
{
    uint8_t w[64];
    size_t first = put_msg(w, 0, 'D', 6, 0);
    put_msg(w, first, 'D', 6, 0);
    for (size_t extra = 1; extra < 5; extra++) {
        struct evbuffer *b = flat_buffer(w, first + extra);
        struct tscan s = scan(b, 0);
        expect_scan(&s, first, 0, 1, 'D', 0);
        evbuffer_free(b);
    }
}

static void test_scan_ready_status(void **state)
{
    static const char statuses[] = {'I', 'T', 'E'};
    for (size_t i = 0; i < 3; i++) {
        uint8_t w[64];
        size_t n = put_msg(w, 0, 'C', 4, 0);
        n = put_ready(w, n, statuses[i]);
        struct evbuffer *b = flat_buffer(w, n);
        struct tscan s = scan(b, 0);
        expect_scan(&s, n, 0, 2, 'Z', statuses[i]);
        evbuffer_free(b);
    }
}

/* The last ReadyForQuery wins, even when other messages follow it. */
static void test_scan_last_ready_wins(void **state)
{
    uint8_t w[64];
    size_t n = put_ready(w, 0, 'T');
    n = put_msg(w, n, 'C', 2, 0);
    n = put_ready(w, n, 'E');
    n = put_msg(w, n, 'N', 3, 0);
    struct evbuffer *b = flat_buffer(w, n);
    struct tscan s = scan(b, 0);
    expect_scan(&s, n, 0, 4, 'N', 'E');
    evbuffer_free(b);
}

static void test_scan_ready_without_status(void **state)
{
    uint8_t w[64];
    size_t first = put_msg(w, 0, 'C', 4, 0);
    size_t n = put_ready(w, first, 'I');
    struct evbuffer *b = flat_buffer(w, n - 1);
    struct tscan s = scan(b, 0);
    expect_scan(&s, first, 0, 1, 'C', 0);
    evbuffer_free(b);

    b = flat_buffer(w + first, 5); /* the header alone, at the front */
    s = scan(b, 0);
    expect_scan(&s, 0, 0, 0, 0, 0);
    evbuffer_free(b);
}

/* A ReadyForQuery of length 4 (no status byte) is whole at five bytes: held back, it would stall.
 */
static void test_scan_ready_empty(void **state)
{
    uint8_t w[64];
    size_t first = put_msg(w, 0, 'C', 4, 0);
    size_t n = put_header(w, first, 'Z', 4);
    struct evbuffer *b = flat_buffer(w, n);
    struct tscan s = scan(b, 0);
    expect_scan(&s, n, 0, 2, 'Z', 0);
    evbuffer_free(b);
    s = scan_bytes(w, n, 0);
    expect_scan(&s, n, 0, 2, 'Z', 0);

    size_t more = put_ready(w, n, 'T'); /* a real one after it still gives its status */
    b = flat_buffer(w, more);
    s = scan(b, 0);
    expect_scan(&s, more, 0, 3, 'Z', 'T');
    evbuffer_free(b);
}

static void test_scan_bad_length(void **state)
{
    for (uint32_t word = 0; word < 4; word++) {
        uint8_t w[64];
        size_t first = put_msg(w, 0, 'D', 4, 0);
        size_t n = put_header(w, first, 'D', word);
        n = put_msg(w, n, 'D', 4, 0);
        struct evbuffer *b = flat_buffer(w, n);
        struct tscan s = scan(b, 0);
        assert_int_equal(s.error, FRAME_BAD_LENGTH);
        assert_int_equal(s.forward, first);
        assert_int_equal(s.messages, 1);
        evbuffer_free(b);
    }
}

static void test_scan_bad_length_first(void **state)
{
    uint8_t w[16];
    size_t n = put_header(w, 0, 'Z', 3);
    w[n++] = 'I';
    struct evbuffer *b = flat_buffer(w, n);
    struct tscan s = scan(b, 0);
    assert_int_equal(s.error, FRAME_BAD_LENGTH);
    assert_int_equal(s.forward, 0);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.ready_status, 0);
    evbuffer_free(b);
}

/* ---- streams over many chains ---- */

struct layout {
    size_t n;
    size_t count;
    size_t start[16];
    size_t total[16];
    char type[16];
    char status[16];
};

/* Messages of all sizes with two ReadyForQuery among them; prefixes cut it anywhere. */
static void build_stream(uint8_t *w, struct layout *l)
{
    static const char types[] = {'T', 'D', 'D', 'Z', 'C', 'D', 'Z', 'N', 'D', 'E'};
    static const uint32_t bodies[] = {23, 0, 7, 1, 13, 2, 1, 0, 4, 40};
    static const char stats[] = {0, 0, 0, 'T', 0, 0, 'E', 0, 0, 0};
    size_t n = 0;
    l->count = sizeof(types);
    for (size_t i = 0; i < l->count; i++) {
        l->start[i] = n;
        l->type[i] = types[i];
        l->status[i] = stats[i];
        n = types[i] == 'Z' ? put_ready(w, n, stats[i]) : put_msg(w, n, types[i], bodies[i], 9);
        l->total[i] = n - l->start[i];
    }
    l->n = n;
}

/* What a scan of the first avail bytes must find, from the layout alone. */
static struct tscan model_scan(const struct layout *l, size_t avail)
{
    struct tscan s = {0};
    s.forward = 0;
    for (size_t i = 0; i < l->count; i++) {
        size_t need = l->type[i] == 'Z' ? 6 : 5;
        if (l->start[i] + need > avail)
            break;
        s.messages++;
        s.last_type = l->type[i];
        if (l->type[i] == 'Z')
            s.ready_status = l->status[i];
        if (l->start[i] + l->total[i] > avail) {
            s.forward = avail;
            s.remaining = (uint32_t)(l->start[i] + l->total[i] - avail);
            break;
        }
        s.forward = l->start[i] + l->total[i];
    }
    return s;
}

static void test_scan_prefixes_match_model(void **state)
{
    uint8_t w[512];
    struct layout l;
    build_stream(w, &l);
    for (size_t avail = 0; avail <= l.n; avail++) {
        struct evbuffer *b = flat_buffer(w, avail);
        struct tscan got = scan(b, 0), want = model_scan(&l, avail);
        assert_same_scan(&got, &want);
        evbuffer_free(b);
    }
}

/* Every way of cutting every prefix into three chains scans like one chain. */
static void test_scan_two_cuts_reference(void **state)
{
    uint8_t w[512];
    struct layout l;
    build_stream(w, &l);
    for (size_t avail = 2; avail <= l.n; avail += 3) {
        struct tscan want = model_scan(&l, avail);
        for (size_t a = 1; a < avail; a++) {
            for (size_t c = a + 1; c < avail; c += 2) {
                size_t cuts[2] = {a, c};
                struct evbuffer *b = ref_buffer(w, cuts, 2, avail);
                assert_int_equal(chains(b), 3);
                struct tscan got = scan(b, 0);
                assert_same_scan(&got, &want);
                evbuffer_free(b);
            }
        }
    }
}

static void test_scan_moved_chains(void **state)
{
    uint8_t w[512];
    struct layout l;
    build_stream(w, &l);
    /* Cut inside headers, between a 'Z' header and its status byte, and in bodies. */
    size_t cuts[] = {2, l.start[3] + 5, l.start[4] + 3, l.start[6] + 1, l.start[9] + 4};
    struct evbuffer *b = moved_buffer(w, cuts, 5, l.n);
    assert_int_equal(chains(b), 6);
    struct tscan s = scan(b, 0);
    expect_scan(&s, l.n, 0, l.count, 'E', 'E');
    evbuffer_free(b);

    b = moved_buffer(w, cuts, 4, l.start[6] + 5); /* ends before the second status byte */
    assert_int_equal(chains(b), 5);
    s = scan(b, 0);
    expect_scan(&s, l.start[6], 0, 6, 'D', 'T');
    evbuffer_free(b);
}

static void test_scan_one_byte_chains(void **state)
{
    uint8_t w[512];
    struct layout l;
    build_stream(w, &l);
    size_t cuts[511] = {0};
    for (size_t i = 0; i + 1 < l.n; i++)
        cuts[i] = i + 1;
    for (size_t avail = 1; avail <= l.n; avail++) {
        struct evbuffer *b = ref_buffer(w, cuts, avail - 1, avail);
        assert_int_equal(chains(b), (int)avail);
        struct tscan got = scan(b, 0), want = model_scan(&l, avail);
        assert_same_scan(&got, &want);
        evbuffer_free(b);
    }
}

/* Chains of 1 to 9 bytes at random, many more than one peek returns at once. */
static size_t random_cuts(size_t *cuts, size_t avail, unsigned *seed)
{
    size_t k = 0;
    for (size_t at = 0;;) {
        *seed = *seed * 1103515245u + 12345u;
        at += 1 + (*seed >> 16) % 9;
        if (at >= avail)
            return k;
        cuts[k++] = at;
    }
}

static void test_scan_random_chains(void **state)
{
    uint8_t w[512];
    struct layout l;
    build_stream(w, &l);
    unsigned seed = 777;
    for (int round = 0; round < 3000; round++) {
        size_t cuts[512];
        size_t avail = l.n - (size_t)round % 40;
        size_t ncuts = random_cuts(cuts, avail, &seed);
        struct evbuffer *b =
            round % 2 ? ref_buffer(w, cuts, ncuts, avail) : moved_buffer(w, cuts, ncuts, avail);
        assert_int_equal(chains(b), (int)ncuts + 1);
        struct tscan got = scan(b, 0), want = model_scan(&l, avail);
        assert_same_scan(&got, &want);
        evbuffer_free(b);
    }
}

/* Scans the front of b, drains what may go, and counts it. */
static void relay_step(struct evbuffer *b, uint32_t *remaining, size_t *sent, size_t *messages,
                       char *ready)
{
    struct tscan s = scan(b, *remaining);
    assert_int_equal(s.error, 0);
    assert_true(s.forward <= evbuffer_get_length(b));
    assert_int_equal(evbuffer_drain(b, s.forward), 0);
    *sent += s.forward;
    *messages += s.messages;
    *remaining = s.remaining;
    if (s.ready_status != 0)
        *ready = s.ready_status;
}

/* Fed in pieces of pseudo-random size the way reads arrive, every byte goes out once. */
static void test_scan_streaming(void **state)
{
    uint8_t w[512];
    struct layout l;
    build_stream(w, &l);
    unsigned seed = 12345;
    for (int round = 0; round < 300; round++) {
        struct evbuffer *b = evbuffer_new();
        uint32_t remaining = 0;
        size_t sent = 0, messages = 0, fed = 0;
        char ready = 0;
        while (fed < l.n) {
            seed = seed * 1103515245u + 12345u;
            size_t piece = 1 + (seed >> 16) % 17;
            if (piece > l.n - fed)
                piece = l.n - fed;
            assert_int_equal(evbuffer_add_reference(b, w + fed, piece, NULL, NULL), 0);
            fed += piece;
            relay_step(b, &remaining, &sent, &messages, &ready);
        }
        assert_int_equal(sent, l.n);
        assert_int_equal(messages, l.count);
        assert_int_equal(remaining, 0);
        assert_int_equal(ready, 'E');
        assert_int_equal(evbuffer_get_length(b), 0);
        evbuffer_free(b);
    }
}

/* ---- the flat scan of the relay's direct path ---- */

static void test_scan_bytes_prefixes_match_model(void **state)
{
    uint8_t w[512];
    struct layout l;
    build_stream(w, &l);
    for (size_t avail = 0; avail <= l.n; avail++) {
        struct tscan got, want = model_scan(&l, avail);
        got = scan_bytes(w, avail, 0);
        assert_same_scan(&got, &want);
    }
}

/* From inside any message, with the rest of it as remaining, both scans agree. */
static void test_scan_bytes_matches_evbuffer_scan(void **state)
{
    uint8_t w[512];
    struct layout l;
    build_stream(w, &l);
    for (size_t i = 0; i < l.count; i++) {
        for (size_t into = 0; into < l.total[i]; into++) {
            size_t from = l.start[i] + into;
            uint32_t remaining = into == 0 ? 0 : (uint32_t)(l.total[i] - into);
            for (size_t avail = 0; from + avail <= l.n; avail += 3) {
                struct tscan flat;
                flat = scan_bytes(w + from, avail, remaining);
                struct evbuffer *b = flat_buffer(w + from, avail);
                struct tscan chained = scan(b, remaining);
                assert_same_scan(&flat, &chained);
                evbuffer_free(b);
            }
        }
    }
}

static void test_scan_bytes_bad_length(void **state)
{
    uint8_t w[64];
    size_t n = put_msg(w, 0, 'D', 2, 9);
    n = put_header(w, n, 'C', 3);
    struct tscan s;
    s = scan_bytes(w, n, 0);
    assert_int_equal(s.error, FRAME_BAD_LENGTH);
    assert_int_equal(s.forward, 7);
    assert_int_equal(s.messages, 1);
}

/*
 * The relay's two paths in turn, as in relay.c: reads go through the flat
 * scan while nothing is carried over, else through the evbuffer holding
 * the carried-over bytes.  Every byte goes out once, in order.
 */
static void test_scan_bytes_hybrid_streaming(void **state)
{
    uint8_t w[512];
    struct layout l;
    build_stream(w, &l);
    unsigned seed = 4242;
    for (int round = 0; round < 500; round++) {
        struct evbuffer *carry = evbuffer_new(), *out = evbuffer_new();
        uint32_t remaining = 0;
        size_t messages = 0, fed = 0;
        char ready = 0;
        while (fed < l.n) {
            seed = seed * 1103515245u + 12345u;
            size_t piece = 1 + (seed >> 16) % 23;
            if (piece > l.n - fed)
                piece = l.n - fed;
            struct tscan sc;
            if (evbuffer_get_length(carry) == 0) {
                sc = scan_bytes(w + fed, piece, remaining);
                evbuffer_add(out, w + fed, sc.forward);
                evbuffer_add(carry, w + fed + sc.forward, piece - sc.forward);
            } else {
                evbuffer_add(carry, w + fed, piece);
                sc = scan(carry, remaining);
                evbuffer_remove_buffer(carry, out, sc.forward);
            }
            assert_int_equal(sc.error, 0);
            fed += piece;
            remaining = sc.remaining;
            messages += sc.messages;
            if (sc.ready_status)
                ready = sc.ready_status;
        }
        assert_int_equal(evbuffer_get_length(out), l.n);
        assert_memory_equal(evbuffer_pullup(out, -1), w, l.n);
        assert_int_equal(evbuffer_get_length(carry), 0);
        assert_int_equal(messages, l.count);
        assert_int_equal(remaining, 0);
        assert_int_equal(ready, 'E');
        evbuffer_free(carry);
        evbuffer_free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_walk),
        cmocka_unit_test(test_peek_incomplete_header),
        cmocka_unit_test(test_peek_incomplete_body),
        cmocka_unit_test(test_peek_ready),
        cmocka_unit_test(test_peek_empty_body),
        cmocka_unit_test(test_peek_bad_length),
        cmocka_unit_test(test_peek_body_above_max),
        cmocka_unit_test(test_peek_body_over_chains),
        cmocka_unit_test(test_scan_bytes_prefixes_match_model),
        cmocka_unit_test(test_scan_bytes_matches_evbuffer_scan),
        cmocka_unit_test(test_scan_bytes_bad_length),
        cmocka_unit_test(test_scan_bytes_hybrid_streaming),
        cmocka_unit_test(test_scan_empty),
        cmocka_unit_test(test_scan_whole_messages),
        cmocka_unit_test(test_scan_cut_at_end),
        cmocka_unit_test(test_scan_header_only),
        cmocka_unit_test(test_scan_continues_remaining),
        cmocka_unit_test(test_scan_remaining_beyond_buffer),
        cmocka_unit_test(test_scan_remaining_then_split_header),
        cmocka_unit_test(test_scan_split_header),
        cmocka_unit_test(test_scan_ready_status),
        cmocka_unit_test(test_scan_last_ready_wins),
        cmocka_unit_test(test_scan_ready_without_status),
        cmocka_unit_test(test_scan_ready_empty),
        cmocka_unit_test(test_scan_bad_length),
        cmocka_unit_test(test_scan_bad_length_first),
        cmocka_unit_test(test_scan_prefixes_match_model),
        cmocka_unit_test(test_scan_two_cuts_reference),
        cmocka_unit_test(test_scan_moved_chains),
        cmocka_unit_test(test_scan_one_byte_chains),
        cmocka_unit_test(test_scan_random_chains),
        cmocka_unit_test(test_scan_streaming),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("framing", tests, NULL, NULL);
}
