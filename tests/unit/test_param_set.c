/*
 * test_param_set.c
 *    Unit tests for protocol/param_set.c: a connection's ParameterStatus
 *    values, kept to be told again to the next client (cmocka, TAP).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "protocol/param_set.h"
#include "protocol/pkt.h"

static void test_put_get_replace(void **state)
{
    (void)state;
    struct param_set ps = {0};
    assert_null(param_set_get(&ps, "TimeZone"));
    assert_int_equal(param_set_put(&ps, "TimeZone", "UTC"), PARAM_SET_OK);
    assert_int_equal(param_set_put(&ps, "DateStyle", "ISO, MDY"), PARAM_SET_OK);
    assert_int_equal(param_set_put(&ps, "application_name", ""), PARAM_SET_OK);
    assert_string_equal(param_set_get(&ps, "TimeZone"), "UTC");
    assert_string_equal(param_set_get(&ps, "application_name"), "");
    /* a later report replaces the value; the others keep theirs */
    assert_int_equal(param_set_put(&ps, "TimeZone", "Europe/Paris"), PARAM_SET_OK);
    assert_int_equal(ps.count, 3);
    assert_string_equal(param_set_get(&ps, "TimeZone"), "Europe/Paris");
    assert_string_equal(param_set_get(&ps, "DateStyle"), "ISO, MDY");
    assert_null(param_set_get(&ps, "timezone")); /* names are exact, as the server sends them */
    assert_int_equal(param_set_put(&ps, "", "x"), PARAM_SET_BAD);
    param_set_free(&ps);
    assert_null(ps.data);
}

static void test_note_strict(void **state)
{
    (void)state;
    struct param_set ps = {0};
    static const uint8_t good[] = "server_version\0"
                                  "15.6";
    assert_int_equal(param_set_note(&ps, good, sizeof(good)), PARAM_SET_OK);
    assert_string_equal(param_set_get(&ps, "server_version"), "15.6");
    static const uint8_t no_value_nul[] = {'a', 0, 'b'};
    assert_int_equal(param_set_note(&ps, no_value_nul, sizeof(no_value_nul)), PARAM_SET_BAD);
    static const uint8_t no_nul[] = {'a', 'b'};
    assert_int_equal(param_set_note(&ps, no_nul, sizeof(no_nul)), PARAM_SET_BAD);
    static const uint8_t trailing[] = {'a', 0, 'b', 0, 'c', 0};
    assert_int_equal(param_set_note(&ps, trailing, sizeof(trailing)), PARAM_SET_BAD);
    static const uint8_t name_only[] = {'a', 0};
    assert_int_equal(param_set_note(&ps, name_only, sizeof(name_only)), PARAM_SET_BAD);
    assert_int_equal(param_set_note(&ps, (const uint8_t *)"", 0), PARAM_SET_BAD);
    static const uint8_t empty_name[] = {0, 'v', 0};
    assert_int_equal(param_set_note(&ps, empty_name, sizeof(empty_name)), PARAM_SET_BAD);
    assert_int_equal(ps.count, 1);
    assert_false(ps.overflowed);
    param_set_free(&ps);
}

static void test_full(void **state)
{
    (void)state;
    struct param_set ps = {0};
    char name[32];
    for (int i = 0; i < PARAM_SET_MAX; i++) {
        snprintf(name, sizeof(name), "p%d", i);
        assert_int_equal(param_set_put(&ps, name, "v"), PARAM_SET_OK);
    }
    assert_int_equal(param_set_put(&ps, "one_more", "v"), PARAM_SET_FULL);
    assert_true(ps.overflowed);
    /* replacing one still works: its old entry makes the room */
    assert_int_equal(param_set_put(&ps, "p3", "w"), PARAM_SET_OK);
    assert_string_equal(param_set_get(&ps, "p3"), "w");
    param_set_free(&ps);

    char big[PARAM_SET_MAX_BYTES];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(param_set_put(&ps, "big", big), PARAM_SET_FULL);
    assert_true(ps.overflowed);
    assert_int_equal(ps.count, 0);
    big[PARAM_SET_MAX_BYTES - 5] = '\0'; /* "big\0" (4) + value (4091) + "\0" fill it exactly */
    assert_int_equal(param_set_put(&ps, "big", big), PARAM_SET_OK);
    assert_int_equal(ps.used, PARAM_SET_MAX_BYTES);
    assert_int_equal(param_set_put(&ps, "a", ""), PARAM_SET_FULL);
    param_set_free(&ps);
}

static void test_write(void **state)
{
    (void)state;
    struct param_set ps = {0};
    param_set_put(&ps, "a", "1");
    param_set_put(&ps, "bb", "22");
    param_set_put(&ps, "a", "3"); /* a moves after bb */
    uint8_t buf[64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    param_set_write(&ps, &pb);
    static const uint8_t want[] = {'S', 0,   0, 0, 10, 'b', 'b', 0, '2', '2',
                                   0,   'S', 0, 0, 0,  8,   'a', 0, '3', 0};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
    pkt_init(&pb, buf, 12); /* too small: the builder's sticky error */
    param_set_write(&ps, &pb);
    assert_false(pkt_ok(&pb));
    param_set_free(&ps);
}

/* A set given a larger limit holds a whole startup packet's parameters; a copy keeps the order. */
static void test_limit_and_copy(void **state)
{
    (void)state;
    struct param_set big = {.limit = 10000}, small = {0}, copy = {.limit = 10000};
    char name[16], value[200];
    memset(value, 'v', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    for (int i = 0; i < 40; i++) {
        snprintf(name, sizeof(name), "p%02d", i);
        assert_int_equal(param_set_put(&big, name, value), PARAM_SET_OK);
        int rc = param_set_put(&small, name, value);
        assert_int_equal(rc, (i + 1) * (4 + 200) <= PARAM_SET_MAX_BYTES ? PARAM_SET_OK
                                                                        : PARAM_SET_FULL);
    }
    assert_int_equal(big.count, 40);
    assert_false(big.overflowed);
    assert_true(small.overflowed);
    assert_int_equal(param_set_copy(&copy, &big), PARAM_SET_OK);
    assert_int_equal(copy.count, 40);
    size_t a = 0, b = 0;
    const char *n1, *v1, *n2, *v2;
    while (param_set_next(&big, &a, &n1, &v1)) {
        assert_true(param_set_next(&copy, &b, &n2, &v2));
        assert_string_equal(n1, n2);
        assert_string_equal(v1, v2);
    }
    struct param_set cramped = {0};
    assert_int_equal(param_set_copy(&cramped, &big), PARAM_SET_FULL);
    assert_true(cramped.overflowed);
    param_set_free(&big);
    param_set_free(&small);
    param_set_free(&copy);
    param_set_free(&cramped);
}

/* Shrunk to what it holds, it reads the same and grows again on a put. */
static void test_shrink(void **state)
{
    struct param_set ps = {0};
    (void)state;
    param_set_shrink(&ps); /* empty: nothing to do */
    assert_null(ps.data);
    assert_int_equal(param_set_put(&ps, "application_name", "crowd"), 0);
    assert_int_equal(param_set_put(&ps, "DateStyle", "ISO, MDY"), 0);
    assert_true(ps.cap > ps.used);
    param_set_shrink(&ps);
    assert_int_equal(ps.cap, ps.used);
    assert_string_equal(param_set_get(&ps, "application_name"), "crowd");
    assert_string_equal(param_set_get(&ps, "DateStyle"), "ISO, MDY");
    assert_int_equal(param_set_put(&ps, "TimeZone", "Europe/Dublin"), 0);
    assert_string_equal(param_set_get(&ps, "TimeZone"), "Europe/Dublin");
    assert_string_equal(param_set_get(&ps, "application_name"), "crowd");
    assert_int_equal(ps.count, 3);
    param_set_free(&ps);
}

/* A lent set reads another's bytes; a change copies them first, and freeing it leaves them. */
static void test_lend(void **state)
{
    (void)state;
    struct param_set ps;
    memset(&ps, 0, sizeof(ps));
    assert_int_equal(param_set_put(&ps, "client_encoding", "UTF8"), PARAM_SET_OK);
    assert_int_equal(param_set_put(&ps, "DateStyle", "ISO"), PARAM_SET_OK);
    char other[64];
    memcpy(other, ps.data, ps.used);
    const char before[] = "client_encoding\0UTF8\0DateStyle\0ISO";
    param_set_lend(&ps, other);
    assert_true(ps.lent);
    assert_ptr_equal(ps.data, other);
    assert_string_equal(param_set_get(&ps, "DateStyle"), "ISO");
    param_set_shrink(&ps); /* nothing of its own to shrink */
    assert_ptr_equal(ps.data, other);
    /* A change: its own copy first; the lender's bytes unchanged. */
    assert_int_equal(param_set_put(&ps, "client_encoding", "LATIN1"), PARAM_SET_OK);
    assert_false(ps.lent);
    assert_ptr_not_equal(ps.data, other);
    assert_memory_equal(other, before, sizeof(before));
    assert_string_equal(param_set_get(&ps, "client_encoding"), "LATIN1");
    assert_string_equal(param_set_get(&ps, "DateStyle"), "ISO");
    assert_int_equal(ps.count, 2);
    param_set_free(&ps);
    /* Freed while lent: the lender's bytes stay (ASan would see a bad free). */
    struct param_set lent;
    memset(&lent, 0, sizeof(lent));
    lent.used = (uint16_t)sizeof(before);
    lent.count = 2;
    param_set_lend(&lent, other);
    param_set_free(&lent);
    assert_null(lent.data);
    assert_memory_equal(other, before, sizeof(before));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace),
        cmocka_unit_test(test_note_strict),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_write),
        cmocka_unit_test(test_limit_and_copy),
        cmocka_unit_test(test_shrink),
        cmocka_unit_test(test_lend),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("param_set", tests, NULL, NULL);
}
