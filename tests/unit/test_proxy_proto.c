/*
 * test_proxy_proto.c
 *    Unit tests for protocol/proxy_proto.c (cmocka, TAP output).  v2
 *    headers are either written out byte for byte or assembled here with
 *    a tiny builder; CRC32c is checked against published vectors first so
 *    that the builder's checksums can be trusted.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "protocol/proxy_proto.h"

static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* A PostgreSQL v3.0 StartupMessage for user "app" and an SSLRequest. */
static const uint8_t pg_startup[] = {0x00, 0x00, 0x00, 0x13, 0x00, 0x03, 0x00, 0x00, 'u', 's',
                                     'e',  'r',  0x00, 'a',  'p',  'p',  0x00, 0x00, 0x00};
static const uint8_t pg_sslrequest[] = {0x00, 0x00, 0x00, 0x08, 0x04, 0xD2, 0x16, 0x2F};

/* ---- helpers ---- */

static int parse(const void *buf, size_t len, struct pp_header *h)
{
    struct pp_tlv_types t;

    pp_tlv_types_default(&t);
    return pp_parse(buf, len, &t, h);
}

static int parse_str(const char *s, struct pp_header *h)
{
    return parse(s, strlen(s), h);
}

static void assert_addr(const struct sockaddr_storage *ss, int family, const char *text,
                        uint16_t port)
{
    char got[INET6_ADDRSTRLEN];

    assert_int_equal(ss->ss_family, family);
    if (family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, got, sizeof(got)));
        assert_int_equal(ntohs(sin->sin_port), port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
        assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, got, sizeof(got)));
        assert_int_equal(ntohs(sin6->sin6_port), port);
    }
    assert_string_equal(got, text);
}

/* Every proper prefix is PP_INCOMPLETE, the whole is PP_OK. */
static void assert_incremental(const uint8_t *buf, size_t len)
{
    struct pp_header h;

    for (size_t i = 0; i < len; i++) {
        if (parse(buf, i, &h) != PP_INCOMPLETE)
            fail_msg("prefix of %zu bytes (of %zu) was not PP_INCOMPLETE", i, len);
    }
    assert_int_equal(parse(buf, len, &h), PP_OK);
    assert_int_equal(h.length, len);
}

struct v2buf {
    uint8_t b[2048];
    size_t n;
};

static void v2_start(struct v2buf *v, uint8_t ver_cmd, uint8_t fam)
{
    memcpy(v->b, v2_sig, sizeof(v2_sig));
    v->b[12] = ver_cmd;
    v->b[13] = fam;
    v->b[14] = v->b[15] = 0;
    v->n = 16;
}

static void v2_bytes(struct v2buf *v, const void *p, size_t n)
{
    assert_true(v->n + n <= sizeof(v->b));
    memcpy(v->b + v->n, p, n);
    v->n += n;
}

static void v2_u16(struct v2buf *v, uint16_t x)
{
    uint8_t b[2] = {(uint8_t)(x >> 8), (uint8_t)x};
    v2_bytes(v, b, 2);
}

static void v2_tlv(struct v2buf *v, uint8_t type, const void *val, size_t n)
{
    v2_bytes(v, &type, 1);
    v2_u16(v, (uint16_t)n);
    v2_bytes(v, val, n);
}

static void v2_tlv_str(struct v2buf *v, uint8_t type, const char *s)
{
    v2_tlv(v, type, s, strlen(s));
}

/* Appends a zeroed CRC32C TLV; returns where its value lies. */
static size_t v2_crc_tlv(struct v2buf *v)
{
    static const uint8_t zero[4];
    v2_tlv(v, PP2_TYPE_CRC32C, zero, 4);
    return v->n - 4;
}

/* Sets the length field from what was appended. */
static void v2_finish(struct v2buf *v)
{
    size_t len = v->n - 16;
    v->b[14] = (uint8_t)(len >> 8);
    v->b[15] = (uint8_t)len;
}

static void v2_seal_crc(struct v2buf *v, size_t at)
{
    uint32_t crc;

    memset(v->b + at, 0, 4);
    crc = pp_crc32c(0, v->b, v->n);
    v->b[at] = (uint8_t)(crc >> 24);
    v->b[at + 1] = (uint8_t)(crc >> 16);
    v->b[at + 2] = (uint8_t)(crc >> 8);
    v->b[at + 3] = (uint8_t)crc;
}

static void v2_tcp4(struct v2buf *v, const char *src, const char *dst, uint16_t sp, uint16_t dp)
{
    uint8_t a[4];
    assert_int_equal(inet_pton(AF_INET, src, a), 1);
    v2_bytes(v, a, 4);
    assert_int_equal(inet_pton(AF_INET, dst, a), 1);
    v2_bytes(v, a, 4);
    v2_u16(v, sp);
    v2_u16(v, dp);
}

/* A PROXY TCP4 header 10.0.0.1:1234 -> 10.0.0.2:6432 ready for TLVs. */
static void v2_proxy4(struct v2buf *v)
{
    v2_start(v, 0x21, 0x11);
    v2_tcp4(v, "10.0.0.1", "10.0.0.2", 1234, 6432);
}

static int v2_parse(struct v2buf *v, struct pp_header *h)
{
    v2_finish(v);
    return parse(v->b, v->n, h);
}

/* ---- CRC32c ---- */

static void test_crc32c_vectors(void **state)
{
    (void)state;
    uint8_t buf[32];

    assert_int_equal(pp_crc32c(0, (const uint8_t *)"123456789", 9), 0xE3069283u);
    assert_int_equal(pp_crc32c(0, (const uint8_t *)"", 0), 0);
    /* RFC 3720 B.4 */
    memset(buf, 0, sizeof(buf));
    assert_int_equal(pp_crc32c(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof(buf));
    assert_int_equal(pp_crc32c(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    assert_int_equal(pp_crc32c(0, buf, 32), 0x46DD794Eu);
    /* chaining equals one pass */
    assert_int_equal(
        pp_crc32c(pp_crc32c(0, (const uint8_t *)"1234", 4), (const uint8_t *)"56789", 5),
        0xE3069283u);
}

/* ---- v1 ---- */

static void test_v1_tcp4(void **state)
{
    (void)state;
    struct pp_header h;
    const char *line = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    uint8_t buf[128];

    memcpy(buf, line, strlen(line));
    memcpy(buf + strlen(line), pg_startup, sizeof(pg_startup));
    assert_int_equal(parse(buf, strlen(line) + sizeof(pg_startup), &h), PP_OK);
    assert_int_equal(h.version, 1);
    assert_false(h.local);
    assert_int_equal(h.length, strlen(line));
    assert_addr(&h.src, AF_INET, "192.168.0.1", 56324);
    assert_addr(&h.dst, AF_INET, "192.168.0.11", 443);
    assert_false(h.has_city || h.has_region || h.has_location || h.crc_checked);
}

static void test_v1_tcp4_extremes(void **state)
{
    (void)state;
    struct pp_header h;
    const char *line = "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n";

    assert_int_equal(parse_str(line, &h), PP_OK);
    assert_int_equal(h.length, strlen(line));
    assert_addr(&h.src, AF_INET, "255.255.255.255", 65535);
    assert_addr(&h.dst, AF_INET, "0.0.0.0", 0);
}

static void test_v1_tcp6(void **state)
{
    (void)state;
    struct pp_header h;
    const char *longest = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                          "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe 65535 65535\r\n";

    assert_int_equal(strlen(longest), 104);
    assert_int_equal(parse_str(longest, &h), PP_OK);
    assert_int_equal(h.length, 104);
    assert_addr(&h.src, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    assert_addr(&h.dst, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);

    assert_int_equal(parse_str("PROXY TCP6 2001:db8::1 ::1 40000 5432\r\n", &h), PP_OK);
    assert_addr(&h.src, AF_INET6, "2001:db8::1", 40000);
    assert_addr(&h.dst, AF_INET6, "::1", 5432);
    assert_int_equal(parse_str("PROXY TCP6 ::ffff:192.0.2.1 2001:DB8::2 1 2\r\n", &h), PP_OK);
    assert_addr(&h.src, AF_INET6, "::ffff:192.0.2.1", 1);
}

static void test_v1_unknown(void **state)
{
    (void)state;
    struct pp_header h;
    const char *worst = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";

    assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &h), PP_OK);
    assert_int_equal(h.version, 1);
    assert_true(h.local);
    assert_int_equal(h.length, 15);
    assert_int_equal(h.src.ss_family, AF_UNSPEC);

    assert_int_equal(strlen(worst), PP_V1_MAX_LEN);
    assert_int_equal(parse_str(worst, &h), PP_OK);
    assert_true(h.local);
    assert_int_equal(h.length, PP_V1_MAX_LEN);
    /* anything after "UNKNOWN " is ignored, even nonsense */
    assert_int_equal(parse_str("PROXY UNKNOWN  garbage !!\r\n", &h), PP_OK);
    assert_true(h.local);

    assert_int_equal(parse_str("PROXY UNKNOWNX\r\n", &h), PP_EINVALID);
    assert_int_equal(parse_str("PROXY UNKNOWN\r\r\n", &h), PP_EINVALID);
    assert_int_equal(parse_str("PROXY unknown\r\n", &h), PP_EINVALID);
}

static void test_v1_length_limit(void **state)
{
    (void)state;
    struct pp_header h;
    char line[256];

    /* 105 characters + CRLF = 107: accepted */
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 105, "\r\n", 3);
    assert_int_equal(parse_str(line, &h), PP_OK);
    assert_int_equal(h.length, 107);

    /* 106 characters + CRLF = 108: too long, known as soon as the CR is at byte 107 */
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + 106, "\r\n", 3);
    assert_int_equal(parse(line, 107, &h), PP_ETOOLONG);
    assert_int_equal(parse_str(line, &h), PP_ETOOLONG);

    /* no CRLF at all: incomplete up to 106 bytes, too long from 107 on */
    memset(line, 'x', sizeof(line));
    memcpy(line, "PROXY TCP4 ", 11);
    assert_int_equal(parse(line, 106, &h), PP_INCOMPLETE);
    assert_int_equal(parse(line, 107, &h), PP_ETOOLONG);
    assert_int_equal(parse(line, sizeof(line), &h), PP_ETOOLONG);
}

static void test_v1_invalid(void **state)
{
    (void)state;
    struct pp_header h;
    static const char *const bad[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",       /* port out of range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",       /* port out of range */
        "PROXY TCP4 1.2.3.4 5.6.7.8 123456 2\r\n",      /* six digits */
        "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n",         /* heading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n",          /* heading zero */
        "PROXY TCP4 1.2.3.4 5.6.7.8 +80 2\r\n",         /* sign */
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",          /* sign */
        "PROXY TCP4 1.2.3.4 5.6.7.8 8a 2\r\n",          /* not decimal */
        "PROXY TCP4 1.2.3.4 5.6.7.8 0x50 2\r\n",        /* not decimal */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",          /* double space */
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",          /* double space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",          /* double space */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",          /* trailing space */
        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n",          /* double space */
        "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",          /* tab */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",             /* missing field */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",         /* extra field */
        "PROXY TCP4\r\n",                               /* no addresses */
        "PROXY \r\n",                                   /* nothing */
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",           /* protocol */
        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",           /* protocol is case-sensitive */
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",           /* protocol */
        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",          /* heading zero in address */
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",             /* short address */
        "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",         /* octet out of range */
        "PROXY TCP4 ::1 5.6.7.8 1 2\r\n",               /* IPv6 under TCP4 */
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",               /* IPv4 under TCP6 */
        "PROXY TCP6 ::1%lo ::1 1 2\r\n",                /* scope id */
        "PROXY TCP6 1::2::3 ::1 1 2\r\n",               /* two double colons */
        "PROXY TCP4 example.com 5.6.7.8 1 2\r\n",       /* name */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",             /* LF without CR */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",            /* CR without LF */
        "PROXY TCP4 1.2.3.4\n5.6.7.8 1 2\r\n",          /* stray LF */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",         /* CR CR LF */
        "PROXY \x80\x81\xff garbage in here\r\n",       /* garbage */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nPROXY TCP4", /* (first one is fine, see below) */
    };
    size_t n = sizeof(bad) / sizeof(bad[0]);

    for (size_t i = 0; i < n - 1; i++) {
        int rc = parse_str(bad[i], &h);
        if (rc != PP_EINVALID)
            fail_msg("case %zu \"%s\" gave %d", i, bad[i], rc);
        /* nothing is left in *out after a failure */
        assert_int_equal(h.version, 0);
        assert_int_equal(h.length, 0);
    }
    /* a second header is the PostgreSQL stream's problem: only the first is consumed */
    assert_int_equal(parse_str(bad[n - 1], &h), PP_OK);
    assert_int_equal(h.length, strlen(bad[n - 1]) - strlen("PROXY TCP4"));
}

static void test_v1_nul_in_address(void **state)
{
    (void)state;
    struct pp_header h;
    static const char line[] = "PROXY TCP4 1.2.3.4\0005 5.6.7.8 1 2\r\n";

    assert_int_equal(parse(line, sizeof(line) - 1, &h), PP_EINVALID);
}

static void test_v1_incremental(void **state)
{
    (void)state;
    static const char *const good[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.2 5000 6432\r\n",
        "PROXY TCP6 2001:db8::1 2001:db8::2 5000 6432\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN 1 2 3\r\n",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_incremental((const uint8_t *)good[i], strlen(good[i]));
}

/* ---- v2 ---- */

/* TCP4 192.0.2.10:51234 -> 198.51.100.7:6432, city "Seattle" (0xE3), CRC32C. */
static const uint8_t v2_literal_tcp4[] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21, 0x11, 0x00,
    0x1D, 0xC0, 0x00, 0x02, 0x0A, 0xC6, 0x33, 0x64, 0x07, 0xC8, 0x22, 0x19, 0x20, 0xE3, 0x00,
    0x07, 0x53, 0x65, 0x61, 0x74, 0x74, 0x6C, 0x65, 0x03, 0x00, 0x04, 0x30, 0x51, 0x1A, 0x2E};

static void test_v2_literal_tcp4_crc(void **state)
{
    (void)state;
    struct pp_header h;
    uint8_t buf[sizeof(v2_literal_tcp4) + sizeof(pg_startup)];

    memcpy(buf, v2_literal_tcp4, sizeof(v2_literal_tcp4));
    memcpy(buf + sizeof(v2_literal_tcp4), pg_startup, sizeof(pg_startup));
    assert_int_equal(parse(buf, sizeof(buf), &h), PP_OK);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    assert_int_equal(h.length, 45);
    assert_addr(&h.src, AF_INET, "192.0.2.10", 51234);
    assert_addr(&h.dst, AF_INET, "198.51.100.7", 6432);
    assert_true(h.crc_checked);
    assert_true(h.has_city);
    assert_string_equal(h.city, "Seattle");
    assert_false(h.has_region || h.has_location);

    /* any flipped bit outside the CRC field is caught by the CRC */
    for (size_t i = 16; i < sizeof(v2_literal_tcp4); i++) {
        if (i >= 28 && i <= 30)
            continue; /* the city TLV's type and length: the walk itself changes */
        if (i >= 38 && i <= 40)
            continue; /* the CRC TLV's own type and length */
        memcpy(buf, v2_literal_tcp4, sizeof(v2_literal_tcp4));
        buf[i] ^= 0x01;
        int rc = parse(buf, sizeof(v2_literal_tcp4), &h);
        if (rc != PP_ECRC)
            fail_msg("flipping byte %zu gave %d", i, rc);
    }
}

/* TCP6 2001:db8::1:40000 -> 2001:db8::2:5432, no TLVs. */
static const uint8_t v2_literal_tcp6[] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x21,
    0x21, 0x00, 0x24, 0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0D, 0xB8, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x9C, 0x40, 0x15, 0x38};

static void test_v2_literal_tcp6(void **state)
{
    (void)state;
    struct pp_header h;

    assert_int_equal(parse(v2_literal_tcp6, sizeof(v2_literal_tcp6), &h), PP_OK);
    assert_int_equal(h.version, 2);
    assert_false(h.local);
    assert_int_equal(h.length, 52);
    assert_addr(&h.src, AF_INET6, "2001:db8::1", 40000);
    assert_addr(&h.dst, AF_INET6, "2001:db8::2", 5432);
    assert_false(h.crc_checked);
    assert_false(h.has_city);
}

/* LOCAL, UNSPEC, length 0: what HAProxy sends for health checks. */
static const uint8_t v2_literal_local[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51,
                                           0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00};

static void test_v2_local(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;

    assert_int_equal(parse(v2_literal_local, sizeof(v2_literal_local), &h), PP_OK);
    assert_int_equal(h.version, 2);
    assert_true(h.local);
    assert_int_equal(h.length, 16);
    assert_int_equal(h.src.ss_family, AF_UNSPEC);

    /* LOCAL with an address block: addresses skipped, not used */
    v2_start(&v, 0x20, 0x11);
    v2_tcp4(&v, "10.9.9.9", "10.8.8.8", 1, 2);
    assert_int_equal(v2_parse(&v, &h), PP_OK);
    assert_true(h.local);
    assert_int_equal(h.length, 28);
    assert_int_equal(h.src.ss_family, AF_UNSPEC);

    /* LOCAL with TLVs after an UNSPEC (empty) address block: TLVs still read */
    v2_start(&v, 0x20, 0x00);
    v2_tlv_str(&v, 0xE4, "eu-west");
    size_t at = v2_crc_tlv(&v);
    v2_finish(&v);
    v2_seal_crc(&v, at);
    assert_int_equal(parse(v.b, v.n, &h), PP_OK);
    assert_true(h.local);
    assert_true(h.crc_checked);
    assert_true(h.has_region);
    assert_string_equal(h.region, "eu-west");

    /* LOCAL may carry the families PROXY may not (the family is ignored) */
    static const uint8_t fams[] = {0x12, 0x22, 0x31, 0x32};
    for (size_t i = 0; i < sizeof(fams); i++) {
        uint8_t block[216] = {0};
        v2_start(&v, 0x20, fams[i]);
        v2_bytes(&v, block, fams[i] >> 4 == 3 ? 216 : fams[i] >> 4 == 2 ? 36 : 12);
        assert_int_equal(v2_parse(&v, &h), PP_OK);
        assert_true(h.local);
    }

    /* a bad TLV in a LOCAL header is still refused */
    v2_start(&v, 0x20, 0x00);
    v2_tlv(&v, 0xE3, "\xff", 1);
    assert_int_equal(v2_parse(&v, &h), PP_EUTF8);
}

static void test_v2_proxy_unspec(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;

    v2_start(&v, 0x21, 0x00);
    assert_int_equal(v2_parse(&v, &h), PP_OK);
    assert_true(h.local);

    /* bytes under UNSPEC are not an address block: they must be TLVs */
    v2_start(&v, 0x21, 0x00);
    v2_tlv_str(&v, 0xE3, "Lyon");
    assert_int_equal(v2_parse(&v, &h), PP_OK);
    assert_true(h.local);
    assert_string_equal(h.city, "Lyon");
}

static void test_v2_version_command(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;
    static const uint8_t bad[] = {0x11, 0x31, 0x01, 0xF1, 0x22, 0x23, 0x2F};

    for (size_t i = 0; i < sizeof(bad); i++) {
        v2_start(&v, bad[i], 0x11);
        v2_tcp4(&v, "1.2.3.4", "5.6.7.8", 1, 2);
        int rc = v2_parse(&v, &h);
        if (rc != PP_EINVALID)
            fail_msg("ver_cmd 0x%02x gave %d", bad[i], rc);
        /* decided from the fixed 16 bytes alone */
        assert_int_equal(parse(v.b, 16, &h), PP_EINVALID);
    }
}

static void test_v2_families(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;
    uint8_t block[216] = {0};
    static const uint8_t proxy_refused[] = {0x12, 0x22, 0x31, 0x32};
    static const uint8_t undefined[] = {0x01, 0x02, 0x10, 0x13, 0x20, 0x23, 0x30,
                                        0x33, 0x41, 0x44, 0xFF, 0x03, 0x0F};

    for (size_t i = 0; i < sizeof(proxy_refused); i++) {
        v2_start(&v, 0x21, proxy_refused[i]);
        v2_bytes(&v, block, 216);
        assert_int_equal(v2_parse(&v, &h), PP_EINVALID);
    }
    for (size_t i = 0; i < sizeof(undefined); i++) {
        v2_start(&v, 0x21, undefined[i]);
        v2_bytes(&v, block, 216);
        assert_int_equal(v2_parse(&v, &h), PP_EINVALID);
        v2_start(&v, 0x20, undefined[i]);
        v2_bytes(&v, block, 216);
        assert_int_equal(v2_parse(&v, &h), PP_EINVALID);
    }
}

static void test_v2_length_field(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;
    uint8_t pad[1024] = {0};

    /* exactly 1024: 12 address bytes and a NOOP TLV filling the rest */
    v2_proxy4(&v);
    v2_tlv(&v, PP2_TYPE_NOOP, pad, 1024 - 12 - 3);
    assert_int_equal(v2_parse(&v, &h), PP_OK);
    assert_int_equal(h.length, 16 + 1024);

    /* 1025: refused from the fixed part alone, before waiting for the rest */
    v2_proxy4(&v);
    v2_tlv(&v, PP2_TYPE_NOOP, pad, 1025 - 12 - 3);
    assert_int_equal(v2_parse(&v, &h), PP_ETOOLONG);
    assert_int_equal(parse(v.b, 16, &h), PP_ETOOLONG);
    v.b[14] = 0xFF;
    v.b[15] = 0xFF;
    assert_int_equal(parse(v.b, 16, &h), PP_ETOOLONG);

    /* shorter than the address block */
    v2_proxy4(&v);
    v2_finish(&v);
    v.b[15] = 11;
    assert_int_equal(parse(v.b, v.n, &h), PP_EINVALID);
    assert_int_equal(parse(v.b, 16, &h), PP_EINVALID);
    v2_start(&v, 0x21, 0x21);
    v2_bytes(&v, pad, 35);
    assert_int_equal(v2_parse(&v, &h), PP_EINVALID);
    v2_start(&v, 0x20, 0x31);
    v2_bytes(&v, pad, 215);
    assert_int_equal(v2_parse(&v, &h), PP_EINVALID);

    /* the length field decides where the header ends, whatever follows */
    v2_proxy4(&v);
    v2_finish(&v);
    v2_bytes(&v, pg_startup, sizeof(pg_startup));
    assert_int_equal(parse(v.b, v.n, &h), PP_OK);
    assert_int_equal(h.length, 28);
}

static void test_v2_tlv_bounds(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;

    /* a TLV whose length runs past the header */
    v2_proxy4(&v);
    v2_tlv_str(&v, PP2_TYPE_AUTHORITY, "db.example.com");
    v2_finish(&v);
    v.b[v.n - 14 - 1] = 15; /* authority length 14 -> 15 */
    assert_int_equal(parse(v.b, v.n, &h), PP_EINVALID);
    /* ... even when more bytes follow the header */
    v2_bytes(&v, pg_startup, sizeof(pg_startup));
    assert_int_equal(parse(v.b, v.n, &h), PP_EINVALID);

    /* one or two stray bytes: not even a TLV header */
    for (size_t extra = 1; extra <= 2; extra++) {
        v2_proxy4(&v);
        v2_tlv_str(&v, PP2_TYPE_NOOP, "");
        v2_bytes(&v, "\x04\x00", extra);
        assert_int_equal(v2_parse(&v, &h), PP_EINVALID);
    }

    /* a locality TLV overrunning by one byte */
    v2_proxy4(&v);
    v2_tlv_str(&v, 0xE3, "Oslo");
    v2_finish(&v);
    v.b[15]--;
    assert_int_equal(parse(v.b, v.n, &h), PP_EINVALID);

    /* zero-length TLVs are fine */
    v2_proxy4(&v);
    v2_tlv(&v, PP2_TYPE_NOOP, "", 0);
    v2_tlv(&v, PP2_TYPE_ALPN, "", 0);
    assert_int_equal(v2_parse(&v, &h), PP_OK);
}

static void test_v2_crc(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;
    size_t at;

    /* CRC first, then a city */
    v2_proxy4(&v);
    at = v2_crc_tlv(&v);
    v2_tlv_str(&v, 0xE3, "Berlin");
    v2_finish(&v);
    v2_seal_crc(&v, at);
    assert_int_equal(parse(v.b, v.n, &h), PP_OK);
    assert_true(h.crc_checked);
    assert_string_equal(h.city, "Berlin");

    /* a wrong checksum */
    v.b[at + 3] ^= 0x80;
    assert_int_equal(parse(v.b, v.n, &h), PP_ECRC);
    assert_false(h.crc_checked);

    /* the checksum zeroes counted: a sender that forgot to zero the field */
    v2_proxy4(&v);
    at = v2_crc_tlv(&v);
    v2_finish(&v);
    v2_seal_crc(&v, at);
    v.b[at] ^= 0xFF;
    assert_int_equal(parse(v.b, v.n, &h), PP_ECRC);

    /* CRC checked before the locality TLVs are judged */
    v2_proxy4(&v);
    v2_tlv(&v, 0xE3, "\xc0\x80", 2);
    at = v2_crc_tlv(&v);
    v2_finish(&v);
    v2_seal_crc(&v, at);
    v.b[at] ^= 1;
    assert_int_equal(parse(v.b, v.n, &h), PP_ECRC);
    v.b[at] ^= 1;
    assert_int_equal(parse(v.b, v.n, &h), PP_EUTF8);

    /* wrong sizes and duplicates */
    v2_proxy4(&v);
    v2_tlv(&v, PP2_TYPE_CRC32C, "\0\0\0", 3);
    assert_int_equal(v2_parse(&v, &h), PP_EINVALID);
    v2_proxy4(&v);
    v2_tlv(&v, PP2_TYPE_CRC32C, "\0\0\0\0\0", 5);
    assert_int_equal(v2_parse(&v, &h), PP_EINVALID);
    v2_proxy4(&v);
    at = v2_crc_tlv(&v);
    v2_crc_tlv(&v);
    v2_finish(&v);
    v2_seal_crc(&v, at);
    assert_int_equal(parse(v.b, v.n, &h), PP_EINVALID);

    /* no CRC TLV: nothing checked */
    v2_proxy4(&v);
    assert_int_equal(v2_parse(&v, &h), PP_OK);
    assert_false(h.crc_checked);
}

static void test_v2_ignored_tlvs(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;
    static const uint8_t ssl[] = {0x01, 0,   0,   0,   0,   0x21, 0x00, 0x07,
                                  'T',  'L', 'S', 'v', '1', '.',  '3'};
    static const uint8_t ignored[] = {0xE0, 0xE1, 0xEA, 0xEE, 0xE2, 0xE6, 0xEF,
                                      0xF0, 0xF8, 0xFF, 0x06, 0x21, 0x7F};

    v2_proxy4(&v);
    v2_tlv_str(&v, PP2_TYPE_ALPN, "postgresql");
    v2_tlv_str(&v, PP2_TYPE_AUTHORITY, "eu-west.db.example.com");
    v2_tlv(&v, PP2_TYPE_NOOP, "\0\0\0\0\0", 5);
    v2_tlv_str(&v, PP2_TYPE_UNIQUE_ID, "4f3c2b1a");
    v2_tlv(&v, PP2_TYPE_SSL, ssl, sizeof(ssl));
    v2_tlv_str(&v, PP2_TYPE_NETNS, "blue");
    /* vendors' binary payloads, invalid UTF-8 on purpose */
    for (size_t i = 0; i < sizeof(ignored); i++)
        v2_tlv(&v, ignored[i], "\x01\xff\x00\xc0", 4);
    v2_tlv(&v, PP2_TYPE_NOOP, "\xff", 1);
    v2_tlv_str(&v, 0xE5, "47.61,-122.33");
    assert_int_equal(v2_parse(&v, &h), PP_OK);
    assert_true(h.has_location);
    assert_string_equal(h.location, "47.61,-122.33");
    assert_false(h.has_city || h.has_region);
}

static void test_v2_locality(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;

    v2_proxy4(&v);
    v2_tlv_str(&v, 0xE5, "40.71,-74.01");
    v2_tlv_str(&v, 0xE3, "New York");
    v2_tlv_str(&v, 0xE4, "us-east");
    assert_int_equal(v2_parse(&v, &h), PP_OK);
    assert_true(h.has_city && h.has_region && h.has_location);
    assert_string_equal(h.city, "New York");
    assert_string_equal(h.region, "us-east");
    assert_string_equal(h.location, "40.71,-74.01");

    /* configured types: the defaults become ordinary custom TLVs */
    struct pp_tlv_types t = {.city = 0xE7, .region = 0xE8, .location = 0xE9};
    v2_proxy4(&v);
    v2_tlv_str(&v, 0xE3, "Ignored");
    v2_tlv_str(&v, 0xE7, "Zürich");
    v2_tlv_str(&v, 0xE8, "eu-central");
    v2_finish(&v);
    assert_int_equal(pp_parse(v.b, v.n, &t, &h), PP_OK);
    assert_string_equal(h.city, "Zürich");
    assert_string_equal(h.region, "eu-central");
    assert_false(h.has_location);

    /* an empty locality TLV counts as absent */
    v2_proxy4(&v);
    v2_tlv(&v, 0xE3, "", 0);
    assert_int_equal(v2_parse(&v, &h), PP_OK);
    assert_false(h.has_city);
    assert_string_equal(h.city, "");
}

static void test_v2_locality_duplicate(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;
    static const uint8_t types[] = {0xE3, 0xE4, 0xE5};

    for (size_t i = 0; i < sizeof(types); i++) {
        v2_proxy4(&v);
        v2_tlv_str(&v, types[i], "a");
        v2_tlv_str(&v, PP2_TYPE_NOOP, "");
        v2_tlv_str(&v, types[i], "a");
        assert_int_equal(v2_parse(&v, &h), PP_EINVALID);
    }
    /* an empty one still counts for the duplicate rule */
    v2_proxy4(&v);
    v2_tlv(&v, 0xE3, "", 0);
    v2_tlv_str(&v, 0xE3, "Paris");
    assert_int_equal(v2_parse(&v, &h), PP_EINVALID);
    /* unknown and vendor types may repeat */
    v2_proxy4(&v);
    v2_tlv_str(&v, 0xEA, "vpce-1");
    v2_tlv_str(&v, 0xEA, "vpce-2");
    v2_tlv_str(&v, PP2_TYPE_NOOP, "");
    v2_tlv_str(&v, PP2_TYPE_NOOP, "");
    assert_int_equal(v2_parse(&v, &h), PP_OK);
}

static void test_v2_locality_length(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;
    char val[PP_TLV_VALUE_MAX + 2];

    memset(val, 'a', sizeof(val));
    v2_proxy4(&v);
    v2_tlv(&v, 0xE3, val, PP_TLV_VALUE_MAX);
    assert_int_equal(v2_parse(&v, &h), PP_OK);
    assert_int_equal(strlen(h.city), PP_TLV_VALUE_MAX);

    v2_proxy4(&v);
    v2_tlv(&v, 0xE4, val, PP_TLV_VALUE_MAX + 1);
    assert_int_equal(v2_parse(&v, &h), PP_ETOOLONG);

    /* 128 bytes of 2-byte characters: fine */
    for (int i = 0; i < PP_TLV_VALUE_MAX; i += 2)
        memcpy(val + i, "\xc3\xa9", 2);
    v2_proxy4(&v);
    v2_tlv(&v, 0xE3, val, PP_TLV_VALUE_MAX);
    assert_int_equal(v2_parse(&v, &h), PP_OK);
}

static void test_v2_utf8(void **state)
{
    (void)state;
    struct pp_header h;
    struct v2buf v;
    static const char *const good[] = {
        "São Paulo",        "東京", "Reykjavík 🌋", "\x7f", "\xef\xbf\xbf", /* U+FFFF */
        "\xf4\x8f\xbf\xbf",                                                /* U+10FFFF */
        "\xed\x9f\xbf",                                                    /* U+D7FF */
    };
    static const char *const bad[] = {
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong */
        "\xf0\x80\x80\xaf", /* overlong */
        "\xed\xa0\x80",     /* surrogate */
        "\xed\xbf\xbf",     /* surrogate */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf5\x80\x80\x80", /* F5 */
        "\xff",
        "\x80",         /* lone continuation */
        "abc\xc3",      /* truncated */
        "\xe6\x9d",     /* truncated */
        "\xe6\x9d\x41", /* bad continuation */
        "caf\xe9",      /* Latin-1 */
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v2_proxy4(&v);
        v2_tlv_str(&v, 0xE3, good[i]);
        assert_int_equal(v2_parse(&v, &h), PP_OK);
        assert_string_equal(h.city, good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v2_proxy4(&v);
        v2_tlv_str(&v, 0xE3 + (uint8_t)(i % 3), bad[i]);
        int rc = v2_parse(&v, &h);
        if (rc != PP_EUTF8)
            fail_msg("bad UTF-8 case %zu gave %d", i, rc);
    }
    /* NUL inside a value */
    v2_proxy4(&v);
    v2_tlv(&v, 0xE3, "Par\0is", 6);
    assert_int_equal(v2_parse(&v, &h), PP_EUTF8);
    v2_proxy4(&v);
    v2_tlv(&v, 0xE4, "\0", 1);
    assert_int_equal(v2_parse(&v, &h), PP_EUTF8);
}

static void test_v2_incremental(void **state)
{
    (void)state;
    struct v2buf v;
    size_t at;

    assert_incremental(v2_literal_tcp4, sizeof(v2_literal_tcp4));
    assert_incremental(v2_literal_tcp6, sizeof(v2_literal_tcp6));
    assert_incremental(v2_literal_local, sizeof(v2_literal_local));

    v2_start(&v, 0x21, 0x21);
    uint8_t a6[36] = {0x20, 0x01, 0x0d, 0xb8};
    v2_bytes(&v, a6, sizeof(a6));
    v2_tlv_str(&v, 0xE3, "Montréal");
    v2_tlv_str(&v, 0xE4, "ca-east");
    v2_tlv_str(&v, 0xE5, "45.50,-73.57");
    at = v2_crc_tlv(&v);
    v2_finish(&v);
    v2_seal_crc(&v, at);
    assert_incremental(v.b, v.n);
}

/* ---- telling PROXY from PostgreSQL ---- */

static void test_not_proxy(void **state)
{
    (void)state;
    struct pp_header h;
    static const uint8_t gssenc[] = {0x00, 0x00, 0x00, 0x08, 0x04, 0xD2, 0x16, 0x30};
    static const uint8_t cancel[] = {0x00, 0x00, 0x00, 0x10, 0x04, 0xD2, 0x16, 0x2E,
                                     0,    0,    0,    1,    0,    0,    0,    2};

    /* PostgreSQL's first byte is 0 (length <= 10000): decided from one byte */
    assert_int_equal(parse(pg_startup, 1, &h), PP_NOT_PROXY);
    assert_int_equal(parse(pg_startup, sizeof(pg_startup), &h), PP_NOT_PROXY);
    assert_int_equal(parse(pg_sslrequest, 1, &h), PP_NOT_PROXY);
    assert_int_equal(parse(pg_sslrequest, sizeof(pg_sslrequest), &h), PP_NOT_PROXY);
    assert_int_equal(parse(gssenc, sizeof(gssenc), &h), PP_NOT_PROXY);
    assert_int_equal(parse(cancel, sizeof(cancel), &h), PP_NOT_PROXY);
    /* a TLS ClientHello sent directly (PostgreSQL 17 sslnegotiation=direct) */
    assert_int_equal(parse("\x16\x03\x01", 3, &h), PP_NOT_PROXY);
    assert_int_equal(parse_str("GET / HTTP/1.1\r\n", &h), PP_NOT_PROXY);

    /* nothing yet, or a prefix of either signature: wait */
    assert_int_equal(parse("", 0, &h), PP_INCOMPLETE);
    assert_int_equal(parse_str("PROX", &h), PP_INCOMPLETE);
    assert_int_equal(parse(v2_sig, 11, &h), PP_INCOMPLETE);
    assert_int_equal(parse(v2_sig, 12, &h), PP_INCOMPLETE);
    /* and decided at the first byte that leaves both signatures */
    assert_int_equal(parse_str("PROXZ", &h), PP_NOT_PROXY);
    assert_int_equal(parse_str("PROXYTCP4", &h), PP_NOT_PROXY);
    assert_int_equal(parse_str("proxy ", &h), PP_NOT_PROXY);
    assert_int_equal(parse("\x0D\x0A\x0D\x0A\x01", 5, &h), PP_NOT_PROXY);
    assert_int_equal(parse("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0B", 12, &h),
                     PP_NOT_PROXY);
    assert_int_equal(parse("\x0D\x0A\x0D", 3, &h), PP_INCOMPLETE);
}

static void test_strerror(void **state)
{
    (void)state;
    static const int codes[] = {PP_INCOMPLETE, PP_OK,   PP_NOT_PROXY, PP_EINVALID,
                                PP_ETOOLONG,   PP_ECRC, PP_EUTF8,     -99};
    struct pp_tlv_types t;

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        assert_non_null(pp_strerror(codes[i]));
        assert_true(strlen(pp_strerror(codes[i])) > 0);
    }
    assert_string_equal(pp_strerror(PP_ECRC), "PROXY protocol header CRC32c mismatch");
    pp_tlv_types_default(&t);
    assert_int_equal(t.city, 0xE3);
    assert_int_equal(t.region, 0xE4);
    assert_int_equal(t.location, 0xE5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vectors),
        cmocka_unit_test(test_v1_tcp4),
        cmocka_unit_test(test_v1_tcp4_extremes),
        cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_length_limit),
        cmocka_unit_test(test_v1_invalid),
        cmocka_unit_test(test_v1_nul_in_address),
        cmocka_unit_test(test_v1_incremental),
        cmocka_unit_test(test_v2_literal_tcp4_crc),
        cmocka_unit_test(test_v2_literal_tcp6),
        cmocka_unit_test(test_v2_local),
        cmocka_unit_test(test_v2_proxy_unspec),
        cmocka_unit_test(test_v2_version_command),
        cmocka_unit_test(test_v2_families),
        cmocka_unit_test(test_v2_length_field),
        cmocka_unit_test(test_v2_tlv_bounds),
        cmocka_unit_test(test_v2_crc),
        cmocka_unit_test(test_v2_ignored_tlvs),
        cmocka_unit_test(test_v2_locality),
        cmocka_unit_test(test_v2_locality_duplicate),
        cmocka_unit_test(test_v2_locality_length),
        cmocka_unit_test(test_v2_utf8),
        cmocka_unit_test(test_v2_incremental),
        cmocka_unit_test(test_not_proxy),
        cmocka_unit_test(test_strerror),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("proxy_proto", tests, NULL, NULL);
}
