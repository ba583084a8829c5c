/*
 * test_startup.c
 *    Unit tests for protocol/startup.c, the parser of the first packet
 *    (cmocka, TAP output).  Packets are assembled here byte by byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/startup.h"

/* A string literal with embedded NULs, as pointer and length without the final NUL. */
#define LIT(s) (const uint8_t *)(s), sizeof(s) - 1

#define V30 "\x00\x03\x00\x00"
#define V32 "\x00\x03\x00\x02"

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Writes the length word (4 + n) and then body into buf; returns the packet length. */
static size_t packet(uint8_t *buf, const uint8_t *body, size_t n)
{
    put_be32(buf, (uint32_t)(4 + n));
    memcpy(buf + 4, body, n);
    return 4 + n;
}

static int parse_body(const uint8_t *body, size_t n, struct startup_packet *sp, uint8_t *buf)
{
    return startup_parse(buf, packet(buf, body, n), sp);
}

/* Parses body into a heap copy of exactly the packet's size (so ASan sees overreads). */
static int parse_exact(const uint8_t *body, size_t n, struct startup_packet *sp, uint8_t **owned)
{
    *owned = malloc(4 + n);
    assert_non_null(*owned);
    return parse_body(body, n, sp, *owned);
}

/* A CancelRequest with key_len key bytes 0, 1, 2, ... */
static size_t cancel_packet(uint8_t *buf, uint32_t pid, size_t key_len)
{
    size_t len = 12 + key_len;
    put_be32(buf, (uint32_t)len);
    put_be32(buf + 4, PROTO_CODE_CANCEL);
    put_be32(buf + 8, pid);
    for (size_t i = 0; i < key_len; i++)
        buf[12 + i] = (uint8_t)(i * 7 + 1);
    return len;
}

/* ---- the request codes ---- */

static void test_ssl_request(void **state)
{
    static const uint8_t pkt[] = {0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2F};
    struct startup_packet sp;
    assert_int_equal(startup_parse(pkt, sizeof(pkt), &sp), STARTUP_OK);
    assert_int_equal(sp.kind, STARTUP_SSL_REQUEST);
    assert_int_equal(sp.version, PROTO_CODE_SSL);
    assert_int_equal(sp.version, 80877103u);
}

static void test_gssenc_request(void **state)
{
    static const uint8_t pkt[] = {0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x30};
    struct startup_packet sp;
    assert_int_equal(startup_parse(pkt, sizeof(pkt), &sp), STARTUP_OK);
    assert_int_equal(sp.kind, STARTUP_GSSENC_REQUEST);
    assert_int_equal(sp.version, 80877104u);
}

static void test_requests_reject_extra_byte(void **state)
{
    static const uint8_t ssl[] = {0, 0, 0, 9, 0x04, 0xD2, 0x16, 0x2F, 0};
    static const uint8_t gss[] = {0, 0, 0, 9, 0x04, 0xD2, 0x16, 0x30, 0};
    struct startup_packet sp;
    assert_int_equal(startup_parse(ssl, sizeof(ssl), &sp), STARTUP_EBADLEN);
    assert_int_equal(startup_parse(gss, sizeof(gss), &sp), STARTUP_EBADLEN);
}

/* ---- CancelRequest ---- */

static void test_cancel_v30(void **state)
{
    static const uint8_t pkt[] = {0,    0,    0,    16,   0x04, 0xD2, 0x16, 0x2E,
                                  0x00, 0x01, 0xE2, 0x40, 0xCA, 0xFE, 0xBA, 0xBE};
    struct startup_packet sp;
    assert_int_equal(startup_parse(pkt, sizeof(pkt), &sp), STARTUP_OK);
    assert_int_equal(sp.kind, STARTUP_CANCEL_REQUEST);
    assert_int_equal(sp.version, PROTO_CODE_CANCEL);
    assert_int_equal(sp.cancel_pid, 123456);
    assert_int_equal(sp.cancel_key_len, 4);
    assert_ptr_equal(sp.cancel_key, pkt + 12);
}

static void check_cancel_ok(size_t key_len)
{
    uint8_t *buf = malloc(12 + key_len);
    assert_non_null(buf);
    size_t len = cancel_packet(buf, 0x7FFFFFFF, key_len);
    struct startup_packet sp;
    assert_int_equal(startup_parse(buf, len, &sp), STARTUP_OK);
    assert_int_equal(sp.kind, STARTUP_CANCEL_REQUEST);
    assert_int_equal(sp.cancel_pid, 0x7FFFFFFF);
    assert_int_equal(sp.cancel_key_len, key_len);
    assert_ptr_equal(sp.cancel_key, buf + 12);
    assert_int_equal(sp.cancel_key[key_len - 1], (uint8_t)((key_len - 1) * 7 + 1));
    free(buf);
}

static void test_cancel_long_keys(void **state)
{
    check_cancel_ok(32);
    check_cancel_ok(CANCEL_KEY_MAX_LEN);
    check_cancel_ok(5);
}

static void check_cancel_rejected(size_t key_len)
{
    uint8_t *buf = malloc(12 + key_len);
    assert_non_null(buf);
    size_t len = cancel_packet(buf, 42, key_len);
    struct startup_packet sp;
    assert_int_equal(startup_parse(buf, len, &sp), STARTUP_EBADCANCEL);
    free(buf);
}

static void test_cancel_key_too_long(void **state)
{
    check_cancel_rejected(CANCEL_KEY_MAX_LEN + 1);
    check_cancel_rejected(1000);
}

static void test_cancel_key_too_short(void **state)
{
    check_cancel_rejected(3);
    check_cancel_rejected(1);
    check_cancel_rejected(0);
}

/* Code only, or code and part of the pid. */
static void test_cancel_truncated(void **state)
{
    static const uint8_t bare[] = {0, 0, 0, 8, 0x04, 0xD2, 0x16, 0x2E};
    static const uint8_t half_pid[] = {0, 0, 0, 10, 0x04, 0xD2, 0x16, 0x2E, 0, 1};
    struct startup_packet sp;
    assert_int_equal(startup_parse(bare, sizeof(bare), &sp), STARTUP_EBADCANCEL);
    assert_int_equal(startup_parse(half_pid, sizeof(half_pid), &sp), STARTUP_EBADCANCEL);
}

/* ---- StartupMessage ---- */

static void test_startup_v30(void **state)
{
    uint8_t *buf;
    struct startup_packet sp;
    int rc =
        parse_exact(LIT(V30 "user\0alice\0database\0shop\0application_name\0psql\0\0"), &sp, &buf);
    assert_int_equal(rc, STARTUP_OK);
    assert_int_equal(sp.kind, STARTUP_MESSAGE);
    assert_int_equal(sp.version, PROTO_VERSION(3, 0));
    assert_int_equal(sp.nparams, 3);
    assert_string_equal(sp.params[0].name, "user");
    assert_string_equal(sp.params[0].value, "alice");
    assert_string_equal(sp.params[1].name, "database");
    assert_string_equal(sp.params[1].value, "shop");
    assert_string_equal(sp.params[2].name, "application_name");
    assert_string_equal(sp.params[2].value, "psql");
    assert_ptr_equal(sp.params[0].name, buf + 8); /* pointers into the packet */
    assert_string_equal(sp.user, "alice");
    assert_string_equal(sp.database, "shop");
    assert_int_equal(sp.n_unknown_pq, 0);
    free(buf);
}

static void test_startup_v32(void **state)
{
    uint8_t *buf;
    struct startup_packet sp;
    int rc = parse_exact(LIT(V32 "database\0db\0user\0bob\0options\0-c x=1\0\0"), &sp, &buf);
    assert_int_equal(rc, STARTUP_OK);
    assert_int_equal(sp.kind, STARTUP_MESSAGE);
    assert_int_equal(PROTO_MAJOR(sp.version), 3);
    assert_int_equal(PROTO_MINOR(sp.version), 2);
    assert_int_equal(sp.nparams, 3);
    assert_string_equal(sp.user, "bob");
    assert_string_equal(sp.database, "db");
    assert_string_equal(startup_param(&sp, "options"), "-c x=1");
    free(buf);
}

static void test_database_defaults_to_user(void **state)
{
    uint8_t *buf;
    struct startup_packet sp;
    assert_int_equal(parse_exact(LIT(V30 "user\0carol\0\0"), &sp, &buf), STARTUP_OK);
    assert_int_equal(sp.nparams, 1);
    assert_string_equal(sp.database, "carol");
    assert_ptr_equal(sp.database, sp.user);
    assert_null(startup_param(&sp, "database"));
    free(buf);

    assert_int_equal(parse_exact(LIT(V30 "database\0\0user\0dave\0\0"), &sp, &buf), STARTUP_OK);
    assert_string_equal(sp.database, "dave");
    free(buf);
}

static void test_missing_user(void **state)
{
    uint8_t *buf;
    struct startup_packet sp;
    assert_int_equal(parse_exact(LIT(V30 "database\0db\0\0"), &sp, &buf), STARTUP_ENOUSER);
    free(buf);
    assert_int_equal(parse_exact(LIT(V30 "user\0\0database\0db\0\0"), &sp, &buf), STARTUP_ENOUSER);
    free(buf);
    assert_int_equal(parse_exact(LIT(V30 "\0"), &sp, &buf), STARTUP_ENOUSER);
    free(buf);
    /* "_pq_.user" is not user. */
    assert_int_equal(parse_exact(LIT(V30 "_pq_.user\0x\0\0"), &sp, &buf), STARTUP_ENOUSER);
    free(buf);
}

static void expect_bad_params(const uint8_t *body, size_t n)
{
    uint8_t *buf;
    struct startup_packet sp;
    assert_int_equal(parse_exact(body, n, &sp, &buf), STARTUP_EBADPARAMS);
    free(buf);
}

static void test_missing_terminator(void **state)
{
    expect_bad_params(LIT(V30 "user\0alice\0"));
    expect_bad_params(LIT(V30 "user\0alice\0database\0db\0"));
}

/* No parameter list at all: not even the terminator. */
static void test_version_only(void **state)
{
    static const uint8_t pkt[] = {0, 0, 0, 8, 0, 3, 0, 0};
    struct startup_packet sp;
    assert_int_equal(startup_parse(pkt, sizeof(pkt), &sp), STARTUP_EBADPARAMS);
}

static void test_trailing_bytes(void **state)
{
    expect_bad_params(LIT(V30 "user\0alice\0\0x"));
    expect_bad_params(LIT(V30 "user\0alice\0\0\0"));
    expect_bad_params(LIT(V30 "user\0alice\0\0database\0db\0\0"));
}

static void test_unterminated_name_or_value(void **state)
{
    expect_bad_params(LIT(V30 "user\0alice\0datab"));
    expect_bad_params(LIT(V30 "user\0alice\0database\0db"));
    expect_bad_params(LIT(V30 "user"));
    expect_bad_params(LIT(V30 "user\0"));
}

static void test_bad_protocol(void **state)
{
    static const uint8_t junk[] = {0, 0, 0, 8, 0x12, 0x34, 0x56, 0x78};
    uint8_t buf[32];
    struct startup_packet sp;
    assert_int_equal(parse_body(LIT("\x00\x02\x00\x00user\0x\0\0"), &sp, buf), STARTUP_EBADPROTO);
    assert_int_equal(parse_body(LIT("\x00\x02\x00\x00"), &sp, buf), STARTUP_EBADPROTO);
    assert_int_equal(parse_body(LIT("\x00\x04\x00\x00user\0x\0\0"), &sp, buf), STARTUP_EBADPROTO);
    assert_int_equal(parse_body(LIT("\x00\x00\x00\x03user\0x\0\0"), &sp, buf), STARTUP_EBADPROTO);
    assert_int_equal(startup_parse(junk, sizeof(junk), &sp), STARTUP_EBADPROTO);
}

static void test_pq_options(void **state)
{
    uint8_t *buf;
    struct startup_packet sp;
    int rc = parse_exact(LIT(V32 "_pq_.protocol_managed_params\0on\0user\0erin\0_pq_.foo\0bar\0\0"),
                         &sp, &buf);
    assert_int_equal(rc, STARTUP_OK);
    assert_int_equal(sp.n_unknown_pq, 2);
    assert_string_equal(sp.unknown_pq[0], "_pq_.protocol_managed_params");
    assert_string_equal(sp.unknown_pq[1], "_pq_.foo");
    assert_int_equal(sp.nparams, 1);
    assert_string_equal(sp.params[0].name, "user");
    assert_null(startup_param(&sp, "_pq_.foo"));
    assert_string_equal(sp.user, "erin");
    free(buf);
}

static size_t add_pair(uint8_t *body, size_t n, const char *name, const char *value)
{
    size_t a = strlen(name) + 1, b = strlen(value) + 1;
    memcpy(body + n, name, a);
    memcpy(body + n + a, value, b);
    return n + a + b;
}

/* Version, user, then extra params named prefix0, prefix1, ..., then the terminator. */
static size_t body_with_params(uint8_t *body, const char *prefix, int extra)
{
    memcpy(body, V30, 4);
    size_t n = add_pair(body, 4, "user", "u");
    for (int i = 0; i < extra; i++) {
        char name[32];
        snprintf(name, sizeof(name), "%s%d", prefix, i);
        n = add_pair(body, n, name, "v");
    }
    body[n++] = 0;
    return n;
}

/* ---- names cut as PostgreSQL cuts them (NAMEDATALEN - 1 bytes) ---- */

/* A StartupMessage of user (and database, unless NULL) parsed and cut, in a heap copy. */
static uint8_t *parse_and_cut(const char *user, const char *database, struct startup_packet *sp)
{
    uint8_t body[512];
    memcpy(body, V30, 4);
    size_t n = add_pair(body, 4, "user", user);
    if (database != NULL)
        n = add_pair(body, n, "database", database);
    n = add_pair(body, n, "application_name", "x");
    body[n++] = 0;
    uint8_t *buf;
    assert_int_equal(parse_exact(body, n, sp, &buf), STARTUP_OK);
    startup_cut_names(buf, 4 + n, sp);
    return buf;
}

static void test_names_cut(void **state)
{
    char r63[64], r66[67], d70[71];
    memset(r63, 'r', 63), r63[63] = '\0';
    memset(r66, 'r', 66), r66[66] = '\0';
    memset(d70, 'd', 70), d70[70] = '\0';
    struct startup_packet sp;
    uint8_t *buf = parse_and_cut(r66, d70, &sp);
    assert_string_equal(sp.user, r63);
    assert_int_equal(strlen(sp.database), 63);
    assert_string_equal(startup_param(&sp, "user"), r63); /* what goes to the server */
    assert_string_equal(startup_param(&sp, "application_name"), "x");
    free(buf);

    buf = parse_and_cut(r63, "db", &sp); /* 63 bytes are kept whole */
    assert_string_equal(sp.user, r63);
    assert_string_equal(sp.database, "db");
    free(buf);

    buf = parse_and_cut(r66, NULL, &sp); /* the database defaulted to the user: cut too */
    assert_string_equal(sp.database, r63);
    free(buf);
}

/* A byte cut, as PostgreSQL's: a character across byte 63 is split (then no role matches). */
static void test_names_cut_bytes(void **state)
{
    char user[80];
    memset(user, 'a', 62);
    memcpy(user + 62, "\xc3\xa9\xc3\xa9", 5); /* é at bytes 62-63, é at 64-65 */
    struct startup_packet sp;
    uint8_t *buf = parse_and_cut(user, "db", &sp);
    assert_int_equal(strlen(sp.user), 63);
    assert_int_equal((unsigned char)sp.user[62], 0xc3);
    free(buf);
}

static void test_param_limits(void **state)
{
    uint8_t body[2048], *buf;
    struct startup_packet sp;
    size_t n = body_with_params(body, "p", STARTUP_MAX_PARAMS - 1);
    assert_int_equal(parse_exact(body, n, &sp, &buf), STARTUP_OK);
    assert_int_equal(sp.nparams, STARTUP_MAX_PARAMS);
    assert_string_equal(sp.params[STARTUP_MAX_PARAMS - 1].name, "p62");
    free(buf);

    n = body_with_params(body, "p", STARTUP_MAX_PARAMS);
    assert_int_equal(parse_exact(body, n, &sp, &buf), STARTUP_ETOOMANY);
    free(buf);
}

static void test_pq_limits(void **state)
{
    uint8_t body[2048], *buf;
    struct startup_packet sp;
    size_t n = body_with_params(body, "_pq_.x", STARTUP_MAX_UNKNOWN_PQ);
    assert_int_equal(parse_exact(body, n, &sp, &buf), STARTUP_OK);
    assert_int_equal(sp.n_unknown_pq, STARTUP_MAX_UNKNOWN_PQ);
    assert_int_equal(sp.nparams, 1);
    free(buf);

    n = body_with_params(body, "_pq_.x", STARTUP_MAX_UNKNOWN_PQ + 1);
    assert_int_equal(parse_exact(body, n, &sp, &buf), STARTUP_ETOOMANY);
    free(buf);
}

static void test_duplicate_params(void **state)
{
    uint8_t *buf;
    struct startup_packet sp;
    int rc =
        parse_exact(LIT(V30 "user\0first\0options\0a\0user\0second\0options\0b\0\0"), &sp, &buf);
    assert_int_equal(rc, STARTUP_OK);
    assert_int_equal(sp.nparams, 4);
    assert_string_equal(startup_param(&sp, "user"), "second");
    assert_string_equal(startup_param(&sp, "options"), "b");
    assert_string_equal(sp.user, "second");
    assert_null(startup_param(&sp, "missing"));
    assert_null(startup_param(&sp, "USER"));
    free(buf);
}

/* ---- lengths ---- */

static void test_declared_length_mismatch(void **state)
{
    uint8_t buf[64];
    struct startup_packet sp;
    size_t len = packet(buf, LIT(V30 "user\0alice\0\0"));
    buf[len] = 0;
    assert_int_equal(startup_parse(buf, len + 1, &sp), STARTUP_EBADLEN);
    assert_int_equal(startup_parse(buf, len - 1, &sp), STARTUP_EBADLEN);
    assert_int_equal(startup_parse(buf, len, &sp), STARTUP_OK);
}

static void test_parse_short_buffers(void **state)
{
    static const uint8_t seven[] = {0, 0, 0, 7, 0, 3, 0};
    struct startup_packet sp;
    assert_int_equal(startup_parse(seven, sizeof(seven), &sp), STARTUP_EBADLEN);
    assert_int_equal(startup_parse(seven, 3, &sp), STARTUP_EBADLEN);
    assert_int_equal(startup_parse(seven, 0, &sp), STARTUP_EBADLEN);
}

static int length_of(uint32_t word, size_t avail, uint32_t *len)
{
    uint8_t b[4];
    put_be32(b, word);
    return startup_packet_length(b, avail, len);
}

static void test_packet_length(void **state)
{
    uint32_t len = 12345;
    assert_int_equal(length_of(8, 4, &len), STARTUP_OK);
    assert_int_equal(len, 8);
    assert_int_equal(length_of(STARTUP_MAX_LEN, 4, &len), STARTUP_OK);
    assert_int_equal(len, 10000);
    assert_int_equal(length_of(300, 4, &len), STARTUP_OK);
    assert_int_equal(len, 300);
}

static void test_packet_length_bad(void **state)
{
    uint32_t len = 12345;
    assert_int_equal(length_of(7, 4, &len), STARTUP_EBADLEN);
    assert_int_equal(length_of(0, 4, &len), STARTUP_EBADLEN);
    assert_int_equal(length_of(10001, 4, &len), STARTUP_EBADLEN);
    assert_int_equal(length_of(0xFFFFFFFFu, 4, &len), STARTUP_EBADLEN);
    assert_int_equal(length_of(0x80000008u, 4, &len), STARTUP_EBADLEN);
    assert_int_equal(len, 12345);
}

static void test_packet_length_incomplete(void **state)
{
    uint32_t len = 12345;
    for (size_t avail = 0; avail < 4; avail++)
        assert_int_equal(length_of(8, avail, &len), STARTUP_INCOMPLETE);
    /* Even a bad length is only judged once all four bytes are there. */
    assert_int_equal(length_of(0xFFFFFFFFu, 3, &len), STARTUP_INCOMPLETE);
    assert_int_equal(len, 12345);
}

/* A TLS ClientHello's first bytes (record 0x16, TLS 1.0 record version, a length): direct TLS. */
static void test_tls_handshake(void **state)
{
    const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};
    uint32_t len = 12345;
    assert_true(startup_is_tls_handshake(hello, sizeof(hello)));
    assert_true(startup_is_tls_handshake(hello, 1));
    assert_false(startup_is_tls_handshake(hello, 0));
    /* ... which is never a startup packet's length. */
    assert_int_equal(startup_packet_length(hello, sizeof(hello), &len), STARTUP_EBADLEN);
    const uint8_t ssl_request[] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
    assert_false(startup_is_tls_handshake(ssl_request, sizeof(ssl_request)));
}

/* A startup packet at the size limit parses, one byte more does not. */
static void test_max_size_packet(void **state)
{
    uint8_t *buf = malloc(STARTUP_MAX_LEN + 1);
    assert_non_null(buf);
    static const char head[] = V30 "user\0u\0options\0";
    size_t fixed = 4 + sizeof(head) - 1 + 2; /* + value's NUL + terminator */
    size_t value_len = STARTUP_MAX_LEN - fixed;
    put_be32(buf, STARTUP_MAX_LEN);
    memcpy(buf + 4, head, sizeof(head) - 1);
    memset(buf + 4 + sizeof(head) - 1, 'x', value_len);
    buf[STARTUP_MAX_LEN - 2] = 0;
    buf[STARTUP_MAX_LEN - 1] = 0;
    struct startup_packet sp;
    assert_int_equal(startup_parse(buf, STARTUP_MAX_LEN, &sp), STARTUP_OK);
    assert_int_equal(strlen(startup_param(&sp, "options")), value_len);

    put_be32(buf, STARTUP_MAX_LEN + 1);
    buf[STARTUP_MAX_LEN] = 0;
    assert_int_equal(startup_parse(buf, STARTUP_MAX_LEN + 1, &sp), STARTUP_EBADLEN);
    free(buf);
}

static void test_strerror(void **state)
{
    static const int codes[] = {STARTUP_OK,        STARTUP_INCOMPLETE, STARTUP_EBADLEN,
                                STARTUP_EBADPROTO, STARTUP_EBADPARAMS, STARTUP_ENOUSER,
                                STARTUP_ETOOMANY,  STARTUP_EBADCANCEL};
    const size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        const char *a = startup_strerror(codes[i]);
        assert_non_null(a);
        assert_true(strlen(a) > 0);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(a, startup_strerror(codes[j]));
    }
    assert_non_null(strstr(startup_strerror(STARTUP_ENOUSER), "user"));
    assert_non_null(startup_strerror(-99));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ssl_request),
        cmocka_unit_test(test_gssenc_request),
        cmocka_unit_test(test_requests_reject_extra_byte),
        cmocka_unit_test(test_cancel_v30),
        cmocka_unit_test(test_cancel_long_keys),
        cmocka_unit_test(test_cancel_key_too_long),
        cmocka_unit_test(test_cancel_key_too_short),
        cmocka_unit_test(test_cancel_truncated),
        cmocka_unit_test(test_startup_v30),
        cmocka_unit_test(test_startup_v32),
        cmocka_unit_test(test_database_defaults_to_user),
        cmocka_unit_test(test_missing_user),
        cmocka_unit_test(test_missing_terminator),
        cmocka_unit_test(test_version_only),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_unterminated_name_or_value),
        cmocka_unit_test(test_bad_protocol),
        cmocka_unit_test(test_pq_options),
        cmocka_unit_test(test_names_cut),
        cmocka_unit_test(test_names_cut_bytes),
        cmocka_unit_test(test_param_limits),
        cmocka_unit_test(test_pq_limits),
        cmocka_unit_test(test_duplicate_params),
        cmocka_unit_test(test_declared_length_mismatch),
        cmocka_unit_test(test_parse_short_buffers),
        cmocka_unit_test(test_packet_length),
        cmocka_unit_test(test_packet_length_bad),
        cmocka_unit_test(test_packet_length_incomplete),
        cmocka_unit_test(test_tls_handshake),
        cmocka_unit_test(test_max_size_packet),
        cmocka_unit_test(test_strerror),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("startup", tests, NULL, NULL);
}
