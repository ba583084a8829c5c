/*
 * test_pkt.c
 *    Unit tests for protocol/pkt.c: the message builder and the reader
 *    (cmocka, TAP output).  Expected bytes are written out by hand.  Also
 *    protocol/pg_error.c, the error value that such a report carries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pg_error.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"

#define CANARY 0xEE

/* Fills storage with the canary so writes past cap show up. */
static void init_guarded(struct pktbuf *pb, uint8_t *storage, size_t total, size_t cap)
{
    memset(storage, CANARY, total);
    pkt_init(pb, storage, cap);
}

static void assert_canary(const uint8_t *storage, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        assert_int_equal(storage[i], CANARY);
}

/* ---- builder ---- */

static void test_init_empty(void **state)
{
    uint8_t buf[4];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    assert_ptr_equal(pb.data, buf);
    assert_int_equal(pb.cap, 4);
    assert_int_equal(pb.len, 0);
    assert_true(pkt_ok(&pb));
}

static void test_put_ints_big_endian(void **state)
{
    uint8_t buf[16];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_u8(&pb, 0xAB);
    pkt_put_u16(&pb, 0x1234);
    pkt_put_u32(&pb, 0xDEADBEEFu);
    pkt_put_u16(&pb, 0xFF00);
    static const uint8_t want[] = {0xAB, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0xFF, 0x00};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_put_bytes_and_cstr(void **state)
{
    uint8_t buf[32];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_bytes(&pb, "xyz", 3);
    pkt_put_bytes(&pb, NULL, 0);
    pkt_put_cstr(&pb, "ab");
    pkt_put_cstr(&pb, "");
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, 7);
    assert_memory_equal(buf, "xyzab\0", 7);
}

static void test_typed_message_length(void **state)
{
    uint8_t buf[32];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_begin(&pb, 'Q');
    pkt_put_cstr(&pb, "SELECT 1");
    pkt_end(&pb);
    static const uint8_t want[] = {'Q', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_untyped_message_length(void **state)
{
    uint8_t buf[32];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_begin(&pb, 0);
    pkt_put_u32(&pb, 196608);
    pkt_put_cstr(&pb, "user");
    pkt_put_cstr(&pb, "u");
    pkt_put_u8(&pb, 0);
    pkt_end(&pb);
    static const uint8_t want[] = {0, 0, 0, 16, 0, 3, 0, 0, 'u', 's', 'e', 'r', 0, 'u', 0, 0};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

/* Each message's length covers only itself, not what came before. */
static void test_consecutive_messages(void **state)
{
    uint8_t buf[32];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_begin(&pb, 'Z');
    pkt_put_u8(&pb, 'I');
    pkt_end(&pb);
    pkt_begin(&pb, 'S');
    pkt_put_cstr(&pb, "a");
    pkt_put_cstr(&pb, "bc");
    pkt_end(&pb);
    pkt_begin(&pb, 'N');
    pkt_end(&pb);
    static const uint8_t want[] = {'Z', 0, 0,   0,   5, 'I', 'S', 0, 0, 0, 9,
                                   'a', 0, 'b', 'c', 0, 'N', 0,   0, 0, 4};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_exact_fit(void **state)
{
    uint8_t storage[16];
    struct pktbuf pb;
    init_guarded(&pb, storage, sizeof(storage), 10);
    pkt_begin(&pb, 'D');
    pkt_put_u32(&pb, 7);
    pkt_put_u8(&pb, 9);
    pkt_end(&pb);
    static const uint8_t want[] = {'D', 0, 0, 0, 9, 0, 0, 0, 7, 9};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, 10);
    assert_memory_equal(storage, want, sizeof(want));
    assert_canary(storage, 10, sizeof(storage));
}

static void test_overflow_is_sticky(void **state)
{
    uint8_t storage[32];
    struct pktbuf pb;
    init_guarded(&pb, storage, sizeof(storage), 8);
    pkt_put_u32(&pb, 0x01020304);
    pkt_put_bytes(&pb, "12345", 5); /* one byte too many: nothing of it written */
    assert_false(pkt_ok(&pb));
    assert_int_equal(pb.len, 4);
    pkt_put_u8(&pb, 0x42); /* would fit, but the failure sticks */
    pkt_put_u16(&pb, 0x4242);
    assert_false(pkt_ok(&pb));
    assert_int_equal(pb.len, 4);
    static const uint8_t want[] = {1, 2, 3, 4};
    assert_memory_equal(storage, want, 4);
    assert_canary(storage, 4, sizeof(storage));
}

static void test_overflow_each_put(void **state)
{
    uint8_t storage[16];
    struct pktbuf pb;

    init_guarded(&pb, storage, sizeof(storage), 0);
    pkt_put_u8(&pb, 1);
    assert_false(pkt_ok(&pb));
    assert_canary(storage, 0, sizeof(storage));

    init_guarded(&pb, storage, sizeof(storage), 1);
    pkt_put_u16(&pb, 1);
    assert_false(pkt_ok(&pb));
    assert_canary(storage, 0, sizeof(storage));

    init_guarded(&pb, storage, sizeof(storage), 3);
    pkt_put_u32(&pb, 1);
    assert_false(pkt_ok(&pb));
    assert_canary(storage, 0, sizeof(storage));
}

/* The terminating NUL must fit too. */
static void test_cstr_nul_overflow(void **state)
{
    uint8_t storage[16];
    struct pktbuf pb;
    init_guarded(&pb, storage, sizeof(storage), 5);
    pkt_put_cstr(&pb, "hello");
    assert_false(pkt_ok(&pb));
    assert_int_equal(pb.len, 0);
    assert_canary(storage, 0, sizeof(storage));
}

static void test_huge_put_fails(void **state)
{
    uint8_t storage[16];
    struct pktbuf pb;
    init_guarded(&pb, storage, sizeof(storage), 8);
    pkt_put_u8(&pb, 1);
    pkt_put_bytes(&pb, storage, SIZE_MAX);
    assert_false(pkt_ok(&pb));
    assert_int_equal(pb.len, 1);
    assert_canary(storage, 1, sizeof(storage));
}

/* A message that does not fit leaves the storage past cap alone, length word included. */
static void test_end_after_overflow(void **state)
{
    uint8_t storage[16];
    struct pktbuf pb;
    init_guarded(&pb, storage, sizeof(storage), 8);
    pkt_begin(&pb, 'E');
    pkt_put_cstr(&pb, "too long");
    pkt_end(&pb);
    assert_false(pkt_ok(&pb));
    static const uint8_t want[] = {'E', 0, 0, 0, 0};
    assert_memory_equal(storage, want, sizeof(want));
    assert_canary(storage, 5, sizeof(storage));
}

static void test_begin_overflow(void **state)
{
    uint8_t storage[8];
    struct pktbuf pb;
    init_guarded(&pb, storage, sizeof(storage), 3);
    pkt_begin(&pb, 'Q');
    pkt_end(&pb);
    assert_false(pkt_ok(&pb));
    assert_int_equal(storage[0], 'Q');
    assert_canary(storage, 1, sizeof(storage));
}

/* Appends one field to want: code byte, string, NUL. */
static size_t add_field(uint8_t *want, size_t n, char code, const char *s)
{
    want[n++] = (uint8_t)code;
    memcpy(want + n, s, strlen(s) + 1);
    return n + strlen(s) + 1;
}

static void test_report_all_fields(void **state)
{
    uint8_t buf[256];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    struct pkt_report r = {"FATAL", "28P01", "password authentication failed", "the detail",
                           "a hint"};
    pkt_put_report(&pb, 'E', &r);

    uint8_t want[256] = {'E', 0, 0, 0, 0};
    size_t n = 5;
    n = add_field(want, n, 'S', "FATAL");
    n = add_field(want, n, 'V', "FATAL");
    n = add_field(want, n, 'C', "28P01");
    n = add_field(want, n, 'M', "password authentication failed");
    n = add_field(want, n, 'D', "the detail");
    n = add_field(want, n, 'H', "a hint");
    want[n++] = 0;
    pkt_store_be32(want + 1, (uint32_t)(n - 1));

    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, n);
    assert_memory_equal(buf, want, n);
}

/* Fields read back from a report's body; a body cut anywhere never reads past its end. */
static void test_report_field(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    struct pkt_report r = {"ERROR", "22023", "invalid value for parameter", NULL, "a hint"};
    pkt_put_report(&pb, 'E', &r);
    const uint8_t *body = buf + PKT_HEADER_LEN;
    size_t len = pb.len - PKT_HEADER_LEN;
    assert_string_equal(pkt_report_field(body, len, 'C'), "22023");
    assert_string_equal(pkt_report_field(body, len, 'M'), "invalid value for parameter");
    assert_string_equal(pkt_report_field(body, len, 'H'), "a hint");
    assert_null(pkt_report_field(body, len, 'D'));
    for (size_t cut = 0; cut < len; cut++) {
        const char *v = pkt_report_field(body, cut, 'H');
        assert_true(v == NULL || (const uint8_t *)v + strlen(v) < body + cut);
    }
    assert_null(pkt_report_field(body, 0, 'C'));
}

/* A report's severity: FATAL and PANIC end the connection; a prefix with it is enough. */
static void test_report_fatal(void **state)
{
    (void)state;
    static const char *const severities[] = {"FATAL",   "PANIC",  "ERROR",
                                             "WARNING", "FATALE", "FATA"};
    for (size_t i = 0; i < sizeof(severities) / sizeof(severities[0]); i++) {
        uint8_t buf[256];
        struct pktbuf pb;
        pkt_init(&pb, buf, sizeof(buf));
        struct pkt_report r = {severities[i], "57P01", "terminating connection", NULL, NULL};
        pkt_put_report(&pb, 'E', &r);
        bool fatal = i < 2;
        assert_int_equal(pkt_report_fatal(buf + PKT_HEADER_LEN, pb.len - PKT_HEADER_LEN), fatal);
        /* S, then V: the two fields are enough (a peek at the message's start). */
        size_t prefix = 2 * (strlen(severities[i]) + 2);
        assert_int_equal(pkt_report_fatal(buf + PKT_HEADER_LEN, prefix), fatal);
        assert_false(pkt_report_fatal(buf + PKT_HEADER_LEN, 1));
    }
    /* The language-independent V decides, whatever the localized S says. */
    static const uint8_t localized[] = "SFATAL\0VERROR\0C22023\0";
    assert_false(pkt_report_fatal(localized, sizeof(localized)));
    static const uint8_t only_s[] = "SPANIC\0C58000\0";
    assert_true(pkt_report_fatal(only_s, sizeof(only_s)));
    assert_false(pkt_report_fatal(NULL, 0));
}

static void test_report_without_optional(void **state)
{
    uint8_t buf[128];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_u8(&pb, 0x77); /* something before: the length starts at the report */
    struct pkt_report r = {"NOTICE", "00000", "hi", NULL, NULL};
    pkt_put_report(&pb, 'N', &r);
    static const uint8_t want[] = {0x77, 'N', 0,   0,   0,   32,  'S', 'N', 'O', 'T', 'I', 'C',
                                   'E',  0,   'V', 'N', 'O', 'T', 'I', 'C', 'E', 0,   'C', '0',
                                   '0',  '0', '0', '0', 0,   'M', 'h', 'i', 0,   0};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_report_overflow(void **state)
{
    uint8_t storage[64];
    struct pktbuf pb;
    init_guarded(&pb, storage, sizeof(storage), 20);
    struct pkt_report r = {"ERROR", "42601", "syntax error at or near", NULL, NULL};
    pkt_put_report(&pb, 'E', &r);
    assert_false(pkt_ok(&pb));
    assert_true(pb.len <= 20);
    assert_canary(storage, 20, sizeof(storage));
}

/* An error filled by its named parts goes out as the report of those fields, P last. */
static void test_pg_error_put(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct pktbuf pb;
    struct pg_error e;
    pg_error_set(&e, "42601", "syntax error at or near \"%s\"", "SHOW");
    pg_error_hint(&e, "SHOW %s lists them.", "HELP");
    pg_error_detail(&e, "The detail.");
    e.position = 12;
    pkt_init(&pb, buf, sizeof(buf));
    pg_error_put(&pb, 'E', "ERROR", &e);

    uint8_t want[256] = {'E', 0, 0, 0, 0};
    size_t n = 5;
    n = add_field(want, n, 'S', "ERROR");
    n = add_field(want, n, 'V', "ERROR");
    n = add_field(want, n, 'C', "42601");
    n = add_field(want, n, 'M', "syntax error at or near \"SHOW\"");
    n = add_field(want, n, 'D', "The detail.");
    n = add_field(want, n, 'H', "SHOW HELP lists them.");
    n = add_field(want, n, 'P', "12");
    want[n++] = 0;
    pkt_store_be32(want + 1, (uint32_t)(n - 1));
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, n);
    assert_memory_equal(buf, want, n);
}

/* Read back from a report, and set anew: no part of the earlier error stays. */
static void test_pg_error_from_report(void **state)
{
    (void)state;
    uint8_t buf[256];
    struct pktbuf pb;
    struct pg_error e;
    pkt_init(&pb, buf, sizeof(buf));
    struct pkt_report r = {"ERROR", "22023", "invalid value for parameter", NULL, "a hint"};
    pkt_put_report(&pb, 'E', &r);
    pg_error_from_report(&e, buf + PKT_HEADER_LEN, pb.len - PKT_HEADER_LEN);
    assert_true(pg_error_is_set(&e));
    assert_string_equal(e.sqlstate, "22023");
    assert_string_equal(e.message, "invalid value for parameter");
    assert_string_equal(e.detail, "");
    assert_string_equal(e.hint, "a hint");
    pg_error_set(&e, "53200", "out of memory");
    assert_string_equal(e.hint, "");
    assert_int_equal(e.position, 0);
    pg_error_from_report(&e, buf, 0);
    assert_false(pg_error_is_set(&e));
}

static void test_ready_for_query(void **state)
{
    uint8_t buf[16];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_ready_for_query(&pb, 'I');
    pkt_put_ready_for_query(&pb, 'E');
    static const uint8_t want[] = {'Z', 0, 0, 0, 5, 'I', 'Z', 0, 0, 0, 5, 'E'};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_ready_status(void **state)
{
    (void)state;
    static const uint8_t idle[] = {'I'};
    assert_int_equal(pkt_ready_status('Z', idle, 1), 'I');
    assert_int_equal(pkt_ready_status('Z', idle, 0), 0); /* a body without its status */
    assert_int_equal(pkt_ready_status('Z', NULL, 1), 0);
    assert_int_equal(pkt_ready_status('C', idle, 1), 0);
}

/* pkt_add.c: the header says the body's length and its own 4 bytes. */
static void test_add_query_and_msg(void **state)
{
    (void)state;
    struct evbuffer *out = evbuffer_new();
    assert_non_null(out);
    assert_int_equal(pkt_add_query(out, "SELECT 1"), 0);
    assert_int_equal(pkt_add_msg(out, 'Z', "T", 1), 0);
    assert_int_equal(pkt_add_header(out, 'd', 3), 0);
    assert_int_equal(pkt_add_msg(out, 'S', NULL, 0), 0);
    assert_int_equal(pkt_add_target(out, 'D', 'S', "s1x", 2), 0);
    static const uint8_t want[] = {'Q', 0,   0, 0, 13,  'S', 'E', 'L', 'E', 'C', 'T', ' ', '1',
                                   0,   'Z', 0, 0, 0,   5,   'T', 'd', 0,   0,   0,   7,   'S',
                                   0,   0,   0, 4, 'D', 0,   0,   0,   8,   'S', 's', '1', 0};
    assert_int_equal(evbuffer_get_length(out), sizeof(want));
    assert_memory_equal(evbuffer_pullup(out, -1), want, sizeof(want));
    evbuffer_free(out);
}

/* pkt_add_pieces: one message of the pieces in order, put together on the stack or added apart. */
static void test_add_pieces(void **state)
{
    (void)state;
    static char big[600];
    memset(big, 'x', sizeof(big));
    for (size_t big_len = 0; big_len <= sizeof(big); big_len += 100) {
        struct evbuffer *out = evbuffer_new();
        assert_non_null(out);
        const struct pkt_piece pieces[] = {{"ab", 2}, {"", 0}, {big, big_len}, {"c", 1}, {"", 1}};
        assert_int_equal(pkt_add_pieces(out, 'B', pieces, 5), 0);
        size_t body = 2 + big_len + 2;
        assert_int_equal(evbuffer_get_length(out), 5 + body);
        const uint8_t *p = evbuffer_pullup(out, -1);
        assert_int_equal(p[0], 'B');
        assert_int_equal(pkt_be32(p + 1), 4 + body);
        assert_memory_equal(p + 5, "ab", 2);
        assert_memory_equal(p + 7, big, big_len);
        assert_memory_equal(p + 7 + big_len, "c", 2);
        evbuffer_free(out);
    }
}

/* pkt_add.c: the builders of one message type each, byte for byte. */
static void test_add_builders(void **state)
{
    (void)state;
    static const uint8_t types[4] = {0, 0, 0, 25};
    const struct pkt_piece params[2] = {{"ab", 2}, {"", 0}};
    struct evbuffer *out = evbuffer_new();
    assert_non_null(out);
    assert_int_equal(pkt_add_terminate(out), 0);
    assert_int_equal(pkt_add_sync(out), 0);
    assert_int_equal(pkt_add_parse_complete(out), 0);
    assert_int_equal(pkt_add_ready(out, 'T'), 0);
    assert_int_equal(pkt_add_parse(out, "s", 1, "SELECT $1", 9, types, 1), 0);
    assert_int_equal(pkt_add_bind_text(out, params, 2), 0);
    assert_int_equal(pkt_add_execute_all(out), 0);
    assert_int_equal(pkt_add_bind_text(out, params, PKT_BIND_TEXT_MAX + 1), -1);
    static const char want[] = "X\0\0\0\4"
                               "S\0\0\0\4"
                               "1\0\0\0\4"
                               "Z\0\0\0\5T"
                               "P\0\0\0\x16s\0SELECT $1\0\0\1\0\0\0\x19"
                               "B\0\0\0\x16\0\0\0\0\0\2\0\0\0\2ab\0\0\0\0\0\0"
                               "E\0\0\0\x09\0\0\0\0\0";
    assert_int_equal(evbuffer_get_length(out), sizeof(want) - 1);
    assert_memory_equal(evbuffer_pullup(out, -1), want, sizeof(want) - 1);
    evbuffer_free(out);
}

/* The message types in b, in order, and the SQLSTATE of its ErrorResponse into code. */
static void canceled_types(struct evbuffer *b, char *types, size_t cap, char *code)
{
    size_t n = evbuffer_get_length(b), at = 0, k = 0;
    const uint8_t *p = evbuffer_pullup(b, -1);
    code[0] = '\0';
    while (at + 5 <= n && k + 1 < cap) {
        uint32_t len = pkt_be32(p + at + 1);
        if (p[at] == 'E') {
            const char *c = pkt_report_field(p + at + 5, len - 4, 'C');
            snprintf(code, 6, "%s", c != NULL ? c : "");
        }
        types[k++] = (char)p[at];
        at += 1 + len;
    }
    types[k] = '\0';
    assert_int_equal(at, n);
}

/* pkt_add.c: a canceled request keeps what came before its first result or error. */
static void test_add_canceled(void **state)
{
    (void)state;
    char types[16], code[6];
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    assert_int_equal(pkt_add_canceled(b), 0); /* nothing answered yet */
    canceled_types(b, types, sizeof(types), code);
    assert_string_equal(types, "EZ");
    assert_string_equal(code, "57014");
    evbuffer_drain(b, evbuffer_get_length(b));
    /* ParseComplete, BindComplete, then a standby's 25006 and its ReadyForQuery */
    uint8_t buf[128];
    struct pktbuf pb;
    struct pkt_report refused = {.severity = "ERROR", .sqlstate = "25006", .message = "ro"};
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_report(&pb, 'E', &refused);
    assert_true(pkt_ok(&pb));
    assert_int_equal(pkt_add_msg(b, '1', NULL, 0), 0);
    assert_int_equal(pkt_add_msg(b, '2', NULL, 0), 0);
    assert_int_equal(evbuffer_add(b, buf, pb.len), 0);
    assert_int_equal(pkt_add_msg(b, 'Z', "I", 1), 0);
    assert_int_equal(pkt_add_canceled(b), 0);
    canceled_types(b, types, sizeof(types), code);
    assert_string_equal(types, "12EZ");
    assert_string_equal(code, "57014");
    /* a row description stays, the rows and what follows go */
    evbuffer_drain(b, evbuffer_get_length(b));
    assert_int_equal(pkt_add_msg(b, 'T', "\0\0", 2), 0);
    assert_int_equal(pkt_add_msg(b, 'D', "\0\0", 2), 0);
    assert_int_equal(pkt_add_msg(b, 'C', "SELECT 1", 9), 0);
    assert_int_equal(pkt_add_canceled(b), 0);
    canceled_types(b, types, sizeof(types), code);
    assert_string_equal(types, "TEZ");
    evbuffer_free(b);
}

static void test_authentication(void **state)
{
    uint8_t buf[32];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_authentication(&pb, 0, NULL, 0);
    pkt_put_authentication(&pb, 12, "v=ab", 4);
    static const uint8_t want[] = {'R', 0, 0,  0, 8, 0, 0,  0,   0,   'R', 0,
                                   0,   0, 12, 0, 0, 0, 12, 'v', '=', 'a', 'b'};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    /* Too long for what is left: the buffer is marked failed, not overrun. */
    pkt_init(&pb, buf, 10);
    pkt_put_authentication(&pb, 11, "0123456789", 10);
    assert_false(pkt_ok(&pb));
}

static void test_parameter_status(void **state)
{
    uint8_t buf[64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_parameter_status(&pb, "TimeZone", "UTC");
    static const uint8_t want[] = {'S', 0,   0,   0,   17, 'T', 'i', 'm', 'e',
                                   'Z', 'o', 'n', 'e', 0,  'U', 'T', 'C', 0};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_backend_key_data(void **state)
{
    uint8_t buf[64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    static const uint8_t key[] = {0xCA, 0xFE, 0xBA, 0xBE, 0x01, 0x02};
    pkt_put_backend_key_data(&pb, 0x00012345, key, 4);
    pkt_put_backend_key_data(&pb, 7, key, sizeof(key));
    static const uint8_t want[] = {'K',  0,    0,    0,    12,   0,    1,    0x23, 0x45, 0xCA,
                                   0xFE, 0xBA, 0xBE, 'K',  0,    0,    0,    14,   0,    0,
                                   0,    7,    0xCA, 0xFE, 0xBA, 0xBE, 0x01, 0x02};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_fail_is_sticky(void **state)
{
    uint8_t storage[16];
    struct pktbuf pb;
    init_guarded(&pb, storage, sizeof(storage), sizeof(storage));
    pkt_put_u8(&pb, 1);
    pkt_fail(&pb);
    pkt_put_ready_for_query(&pb, 'I');
    assert_false(pkt_ok(&pb));
    assert_int_equal(pb.len, 1);
    assert_canary(storage, 1, sizeof(storage));
}

/* ---- reader ---- */

static void test_get_ints(void **state)
{
    static const uint8_t msg[] = {0xAB, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 0x80, 0x01};
    struct pktreader r;
    pkt_reader_init(&r, msg, sizeof(msg));
    assert_int_equal(pkt_remaining(&r), 9);
    assert_int_equal(pkt_get_u8(&r), 0xAB);
    assert_int_equal(pkt_get_u16(&r), 0x1234);
    assert_int_equal(pkt_get_u32(&r), 0xDEADBEEFu);
    assert_int_equal(pkt_remaining(&r), 2);
    assert_int_equal(pkt_get_u16(&r), 0x8001);
    assert_int_equal(pkt_remaining(&r), 0);
    assert_false(r.failed);
}

static void test_get_bytes(void **state)
{
    static const uint8_t msg[] = {1, 2, 3, 4, 5};
    struct pktreader r;
    pkt_reader_init(&r, msg, sizeof(msg));
    assert_ptr_equal(pkt_get_bytes(&r, 0), msg);
    assert_ptr_equal(pkt_get_bytes(&r, 2), msg);
    assert_ptr_equal(pkt_get_bytes(&r, 3), msg + 2);
    assert_ptr_equal(pkt_get_bytes(&r, 0), msg + 5);
    assert_int_equal(pkt_remaining(&r), 0);
    assert_false(r.failed);
    assert_null(pkt_get_bytes(&r, 1));
    assert_true(r.failed);
}

static void test_get_past_end(void **state)
{
    static const uint8_t msg[] = {1, 2, 3};
    struct pktreader r;

    pkt_reader_init(&r, msg, sizeof(msg));
    assert_int_equal(pkt_get_u32(&r), 0);
    assert_true(r.failed);
    assert_int_equal(pkt_remaining(&r), 0);

    pkt_reader_init(&r, msg, 1);
    assert_int_equal(pkt_get_u16(&r), 0);
    assert_true(r.failed);

    pkt_reader_init(&r, msg, 0);
    assert_int_equal(pkt_get_u8(&r), 0);
    assert_true(r.failed);

    pkt_reader_init(&r, msg, sizeof(msg));
    assert_null(pkt_get_bytes(&r, 4));
    assert_true(r.failed);

    pkt_reader_init(&r, msg, sizeof(msg));
    pkt_get_u8(&r);
    assert_null(pkt_get_bytes(&r, SIZE_MAX));
    assert_true(r.failed);
}

static void test_reader_sticky(void **state)
{
    static const uint8_t msg[] = {0, 'a', 'b', 0, 9, 9, 9, 9};
    struct pktreader r;
    pkt_reader_init(&r, msg, sizeof(msg));
    pkt_get_u8(&r);
    assert_null(pkt_get_bytes(&r, 100));
    assert_int_equal(pkt_remaining(&r), 0);
    /* Enough bytes are left for each of these, yet all fail. */
    assert_int_equal(pkt_get_u8(&r), 0);
    assert_int_equal(pkt_get_u16(&r), 0);
    assert_int_equal(pkt_get_u32(&r), 0);
    assert_string_equal(pkt_get_cstr(&r), "");
    assert_null(pkt_get_bytes(&r, 0));
    assert_true(r.failed);
}

static void test_get_cstr(void **state)
{
    static const uint8_t msg[] = {'u', 's', 'e', 'r', 0, 0, 'x', 0};
    struct pktreader r;
    pkt_reader_init(&r, msg, sizeof(msg));
    const char *a = pkt_get_cstr(&r);
    assert_ptr_equal(a, msg);
    assert_string_equal(a, "user");
    const char *b = pkt_get_cstr(&r);
    assert_ptr_equal(b, msg + 5);
    assert_string_equal(b, "");
    assert_string_equal(pkt_get_cstr(&r), "x");
    assert_int_equal(pkt_remaining(&r), 0);
    assert_false(r.failed);
}

static void test_cstr_without_nul(void **state)
{
    static const uint8_t msg[] = {'o', 'k', 0, 'b', 'a', 'd', 0};
    struct pktreader r;
    /* The NUL after "bad" lies outside the message. */
    pkt_reader_init(&r, msg, sizeof(msg) - 1);
    assert_string_equal(pkt_get_cstr(&r), "ok");
    const char *s = pkt_get_cstr(&r);
    assert_non_null(s);
    assert_string_equal(s, "");
    assert_true(r.failed);
    assert_int_equal(pkt_remaining(&r), 0);
}

static void test_cstr_at_end(void **state)
{
    static const uint8_t msg[] = {'a', 0};
    struct pktreader r;
    pkt_reader_init(&r, msg, sizeof(msg));
    assert_string_equal(pkt_get_cstr(&r), "a");
    assert_false(r.failed);
    assert_string_equal(pkt_get_cstr(&r), "");
    assert_true(r.failed);
}

static void test_be32_helpers(void **state)
{
    uint8_t b[4];
    pkt_store_be32(b, 0x80FF0102u);
    static const uint8_t want[] = {0x80, 0xFF, 0x01, 0x02};
    assert_memory_equal(b, want, 4);
    assert_int_equal(pkt_be32(b), 0x80FF0102u);
}

/* What the builder writes the reader reads back. */
static void test_round_trip(void **state)
{
    uint8_t buf[64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_begin(&pb, 'R');
    pkt_put_u32(&pb, 10);
    pkt_put_cstr(&pb, "SCRAM-SHA-256");
    pkt_put_u8(&pb, 0);
    pkt_end(&pb);
    assert_true(pkt_ok(&pb));

    struct pktreader r;
    pkt_reader_init(&r, buf, pb.len);
    assert_int_equal(pkt_get_u8(&r), 'R');
    assert_int_equal(pkt_get_u32(&r), pb.len - 1);
    assert_int_equal(pkt_get_u32(&r), 10);
    assert_string_equal(pkt_get_cstr(&r), "SCRAM-SHA-256");
    assert_int_equal(pkt_get_u8(&r), 0);
    assert_int_equal(pkt_remaining(&r), 0);
    assert_false(r.failed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_empty),
        cmocka_unit_test(test_ready_status),
        cmocka_unit_test(test_add_query_and_msg),
        cmocka_unit_test(test_add_pieces),
        cmocka_unit_test(test_add_builders),
        cmocka_unit_test(test_add_canceled),
        cmocka_unit_test(test_put_ints_big_endian),
        cmocka_unit_test(test_put_bytes_and_cstr),
        cmocka_unit_test(test_typed_message_length),
        cmocka_unit_test(test_untyped_message_length),
        cmocka_unit_test(test_consecutive_messages),
        cmocka_unit_test(test_exact_fit),
        cmocka_unit_test(test_overflow_is_sticky),
        cmocka_unit_test(test_overflow_each_put),
        cmocka_unit_test(test_cstr_nul_overflow),
        cmocka_unit_test(test_huge_put_fails),
        cmocka_unit_test(test_end_after_overflow),
        cmocka_unit_test(test_begin_overflow),
        cmocka_unit_test(test_report_all_fields),
        cmocka_unit_test(test_report_field),
        cmocka_unit_test(test_report_fatal),
        cmocka_unit_test(test_report_without_optional),
        cmocka_unit_test(test_report_overflow),
        cmocka_unit_test(test_ready_for_query),
        cmocka_unit_test(test_authentication),
        cmocka_unit_test(test_parameter_status),
        cmocka_unit_test(test_backend_key_data),
        cmocka_unit_test(test_fail_is_sticky),
        cmocka_unit_test(test_get_ints),
        cmocka_unit_test(test_get_bytes),
        cmocka_unit_test(test_get_past_end),
        cmocka_unit_test(test_reader_sticky),
        cmocka_unit_test(test_get_cstr),
        cmocka_unit_test(test_cstr_without_nul),
        cmocka_unit_test(test_cstr_at_end),
        cmocka_unit_test(test_be32_helpers),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_pg_error_put),
        cmocka_unit_test(test_pg_error_from_report),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("pkt", tests, NULL, NULL);
}
