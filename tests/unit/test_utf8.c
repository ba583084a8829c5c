/*
 * test_utf8.c — protocol/utf8.c: utf8_put, the one encoder of a code
 * point (JSON's \u escapes, SQL's U& names), at each length's bounds and
 * for every code point a caller may give it, each read back as one
 * well-formed sequence by utf8_seq_len; and utf8_seq_len and
 * utf8_invalid_at refusing what PostgreSQL refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/utf8.h"

/* utf8_put's bytes for cp are want (n bytes). */
static void encodes(uint32_t cp, const char *want, size_t n)
{
    uint8_t out[4];
    assert_int_equal(utf8_put(cp, out), n);
    assert_memory_equal(out, want, n);
}

static void test_put_bounds(void **state)
{
    (void)state;
    encodes(0x01, "\x01", 1);
    encodes('A', "A", 1);
    encodes(0x7F, "\x7f", 1);
    encodes(0x80, "\xc2\x80", 2);
    encodes(0xE9, "\xc3\xa9", 2); /* é */
    encodes(0x7FF, "\xdf\xbf", 2);
    encodes(0x800, "\xe0\xa0\x80", 3);
    encodes(0x65E5, "\xe6\x97\xa5", 3); /* 日 */
    encodes(0xD7FF, "\xed\x9f\xbf", 3);
    encodes(0xE000, "\xee\x80\x80", 3);
    encodes(0xFFFF, "\xef\xbf\xbf", 3);
    encodes(0x10000, "\xf0\x90\x80\x80", 4);
    encodes(0x1F600, "\xf0\x9f\x98\x80", 4); /* 😀, a JSON surrogate pair's */
    encodes(0x10FFFF, "\xf4\x8f\xbf\xbf", 4);
}

/* Every code point but the surrogates reads back as one sequence of the length written. */
static void test_put_round_trip(void **state)
{
    (void)state;
    for (uint32_t cp = 1; cp <= 0x10FFFF; cp++) {
        if (cp == 0xD800)
            cp = 0xE000;
        uint8_t out[4];
        size_t n = utf8_put(cp, out);
        assert_int_equal(n, cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4);
        assert_int_equal(utf8_seq_len(out, n), n);
        uint32_t back = n == 1 ? out[0] : (uint32_t)(out[0] & (0x7F >> n));
        for (size_t i = 1; i < n; i++)
            back = back << 6 | (out[i] & 0x3F);
        if (back != cp)
            fail_msg("U+%04X read back as U+%04X", (unsigned)cp, (unsigned)back);
    }
}

static void test_seq_len(void **state)
{
    (void)state;
    assert_int_equal(utf8_seq_len((const uint8_t *)"\xc0\x80", 2), 0);         /* overlong */
    assert_int_equal(utf8_seq_len((const uint8_t *)"\xe0\x9f\xbf", 3), 0);     /* overlong */
    assert_int_equal(utf8_seq_len((const uint8_t *)"\xed\xa0\x80", 3), 0);     /* a surrogate */
    assert_int_equal(utf8_seq_len((const uint8_t *)"\xf4\x90\x80\x80", 4), 0); /* > U+10FFFF */
    assert_int_equal(utf8_seq_len((const uint8_t *)"\xe6\x97", 2), 0);         /* cut */
    assert_int_equal(utf8_seq_len((const uint8_t *)"\x80", 1), 0);
    assert_int_equal(utf8_invalid_at((const uint8_t *)"ab\xc3\xa9x", 5), 5);
    assert_int_equal(utf8_invalid_at((const uint8_t *)"ab\0c", 4), 2); /* a NUL */
    assert_int_equal(utf8_invalid_at((const uint8_t *)"ab\xc3", 3), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_bounds),
        cmocka_unit_test(test_put_round_trip),
        cmocka_unit_test(test_seq_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
