/*
 * test_pg_encoding.c — protocol/pg_encoding.c: LATIN1 to UTF8 and back,
 * UTF8 checked as the server checks it, and the server's own words for
 * what it refuses (22021 with the bytes its mblen reads, 22P05); and
 * proxy/base/notify_senders.c: a notification told by the newest holder
 * of its backend, none once that was given back past the grace.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocol/pg_encoding.h"
#include "protocol/pg_error.h"
#include "proxy/base/notify_senders.h"

static void test_latin1(void **state)
{
    (void)state;
    char out[64];
    size_t n, bad;
    assert_int_equal(
        pg_encoding_convert("LATIN1", "UTF8", "caf\xe9", 4, out, sizeof(out), &n, &bad), PG_ENC_OK);
    assert_int_equal(n, 5);
    assert_string_equal(out, "caf\xc3\xa9");
    assert_int_equal(
        pg_encoding_convert("UTF8", "LATIN1", "cr\xc3\xa8me", 6, out, sizeof(out), &n, &bad),
        PG_ENC_OK);
    assert_string_equal(out, "cr\xe8me");
    assert_int_equal(
        pg_encoding_convert("UTF8", "LATIN1", "x\xe6\x97\xa5", 4, out, sizeof(out), &n, &bad),
        PG_ENC_UNMAPPABLE);
    assert_int_equal(bad, 1);
    struct pg_error e;
    pg_encoding_error(&e, PG_ENC_UNMAPPABLE, "UTF8", "LATIN1", "x\xe6\x97\xa5", 4, bad);
    assert_string_equal(e.sqlstate, "22P05");
    assert_string_equal(e.message, "character with byte sequence 0xe6 0x97 0xa5 in encoding "
                                   "\"UTF8\" has no equivalent in encoding \"LATIN1\"");
    assert_int_equal(pg_encoding_convert("LATIN1", "UTF8", "abcdef", 6, out, 4, &n, &bad),
                     PG_ENC_NOSPACE);
    assert_int_equal(pg_encoding_convert("MULE_INTERNAL", "UTF8", "a", 1, out, 4, &n, &bad),
                     PG_ENC_UNKNOWN);
}

/* The server's message for UTF8 text t (len bytes), or "" when it is well-formed. */
static const char *utf8_refusal(const char *t, size_t len)
{
    static struct pg_error e;
    char out[64];
    size_t n, bad;
    if (pg_encoding_convert("UTF8", "UTF8", t, len, out, sizeof(out), &n, &bad) == PG_ENC_OK)
        return "";
    pg_encoding_error(&e, PG_ENC_INVALID, "UTF8", "UTF8", t, len, bad);
    return e.message;
}

static void test_utf8_checked(void **state)
{
    (void)state;
    /* As PostgreSQL 15 says them (measured): the bytes its mblen reads from the first bad one. */
    assert_string_equal(utf8_refusal("a\xff"
                                     "b",
                                     3),
                        "invalid byte sequence for encoding \"UTF8\": 0xff");
    assert_string_equal(utf8_refusal("a\xc3"
                                     "b",
                                     3),
                        "invalid byte sequence for encoding \"UTF8\": 0xc3 0x62");
    assert_string_equal(utf8_refusal("a\xe6\x97"
                                     "b",
                                     4),
                        "invalid byte sequence for encoding \"UTF8\": 0xe6 0x97 0x62");
    assert_string_equal(utf8_refusal("a\xed\xa0\x80", 4),
                        "invalid byte sequence for encoding \"UTF8\": 0xed 0xa0 0x80");
    assert_string_equal(utf8_refusal("\xff", 1),
                        "invalid byte sequence for encoding \"UTF8\": 0xff");
    assert_string_equal(utf8_refusal("caf\xc3\xa9", 5), "");
    assert_true(pg_encoding_is_utf8("SQL_ASCII"));
    assert_false(pg_encoding_is_utf8("LATIN1"));
}

static void test_senders(void **state)
{
    (void)state;
    static struct notify_senders ns;
    int host_a, host_b;
    notify_senders_init(&ns);
    assert_int_equal(notify_senders_pid(&ns, &host_a, 100, 0), 0);
    uint64_t first = notify_senders_note(&ns, &host_a, 100, 7001);
    assert_int_equal(notify_senders_pid(&ns, &host_a, 100, 10), 7001);
    assert_int_equal(notify_senders_pid(&ns, &host_b, 100, 10), 0); /* another host's backend */
    notify_senders_released(&ns, first, 1000);
    assert_int_equal(notify_senders_pid(&ns, &host_a, 100, 1000 + NOTIFY_SENDERS_GRACE_MS), 7001);
    /* the backend's next client notifies: its own */
    uint64_t second = notify_senders_note(&ns, &host_a, 100, 7002);
    assert_int_equal(notify_senders_pid(&ns, &host_a, 100, 1500), 7002);
    notify_senders_released(&ns, second, 2000);
    assert_int_equal(notify_senders_pid(&ns, &host_a, 100, 2000 + NOTIFY_SENDERS_GRACE_MS + 1), 0);
    /* the ring forgets the oldest */
    for (int i = 0; i < NOTIFY_SENDERS_MAX; i++)
        notify_senders_note(&ns, &host_b, 200 + (uint32_t)i, 1);
    notify_senders_released(&ns, second, 3000); /* forgotten: no effect */
    assert_int_equal(notify_senders_pid(&ns, &host_a, 100, 2100), 0);
    assert_true(notify_senders_text_may_notify("select pg_NOTIFY('a', 'b')", 26));
    assert_false(notify_senders_text_may_notify("NOTIF", 5));
    notify_senders_destroy(&ns);
}

/* Every canonical name has a number a byte holds, which gives the name back; others have 0. */
static void test_numbers(void **state)
{
    (void)state;
    static const char *const spelt[] = {"utf-8",   "unicode", "SQL_ASCII", "latin1", "ISO-8859-2",
                                        "win1252", "koi8",    "EUC_JP",    "sjis",   "GB18030"};
    unsigned seen[sizeof(spelt) / sizeof(spelt[0])];
    for (size_t i = 0; i < sizeof(spelt) / sizeof(spelt[0]); i++) {
        const char *canonical = pg_encoding_canonical(spelt[i]);
        assert_non_null(canonical);
        unsigned n = pg_encoding_number(canonical);
        assert_in_range(n, 1, 254);
        assert_string_equal(pg_encoding_name(n), canonical);
        seen[i] = n;
    }
    assert_int_equal(seen[0], 1); /* UTF8 */
    assert_int_equal(seen[1], 1);
    assert_int_equal(pg_encoding_number("latin-1"), 0); /* a spelling, not the canonical name */
    assert_int_equal(pg_encoding_number("MULE_INTERNAL"), 0);
    assert_null(pg_encoding_name(0));
    assert_null(pg_encoding_name(254));
    for (unsigned n = 1; pg_encoding_name(n) != NULL; n++)
        assert_int_equal(pg_encoding_number(pg_encoding_name(n)), n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latin1),
        cmocka_unit_test(test_utf8_checked),
        cmocka_unit_test(test_senders),
        cmocka_unit_test(test_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
