/*
 * test_near_legs.c
 *    Unit tests for proxy/session/near_legs.c (cmocka, TAP output): the
 *    table of a nearest transaction's legs, which near.c checks on every
 *    change (near_leg_enter), declares exactly the moves nearest makes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/session/near_legs.h"

/* The moves near.c and near_hold.c make, and no other. */
static const struct {
    enum near_leg from, to;
} declared[] = {
    {NEAR_BETWEEN, NEAR_HELD},    /* near_begin: on a standby, held */
    {NEAR_BETWEEN, NEAR_SHOWN},   /* near_begin: a READ ONLY block; a message too long to keep */
    {NEAR_BETWEEN, NEAR_PRIMARY}, /* near_begin on a primary, run again; following its question */
    {NEAR_HELD, NEAR_SHOWN},      /* the hold given up, or delivered */
    {NEAR_HELD, NEAR_BETWEEN},    /* put back to run again; a new connection attached */
    {NEAR_SHOWN, NEAR_BETWEEN},   /* its ReadyForQuery 'I'; a new connection attached */
    {NEAR_PRIMARY, NEAR_BETWEEN}, /* its ReadyForQuery 'I'; a new connection attached */
};

static bool is_declared(enum near_leg from, enum near_leg to)
{
    for (size_t i = 0; i < sizeof(declared) / sizeof(declared[0]); i++)
        if (declared[i].from == from && declared[i].to == to)
            return true;
    return false;
}

static void test_table_is_the_declared_moves(void **state)
{
    (void)state;
    for (int from = 0; from < NEAR_LEGS; from++)
        for (int to = 0; to < NEAR_LEGS; to++) {
            bool want = from == to || is_declared(from, to);
            if (near_leg_may(from, to) != want)
                fail_msg("%s -> %s: the table says %d, nearest makes %d", near_leg_name(from),
                         near_leg_name(to), near_leg_may(from, to), want);
        }
}

static void test_undeclared_moves_refused(void **state)
{
    (void)state;
    /* A transaction never changes host: held or shown on a standby, never then on a primary. */
    assert_false(near_leg_may(NEAR_HELD, NEAR_PRIMARY));
    assert_false(near_leg_may(NEAR_SHOWN, NEAR_PRIMARY));
    assert_false(near_leg_may(NEAR_PRIMARY, NEAR_HELD));
    assert_false(near_leg_may(NEAR_PRIMARY, NEAR_SHOWN));
    /* An answer shown cannot be held again. */
    assert_false(near_leg_may(NEAR_SHOWN, NEAR_HELD));
}

static void test_every_leg_ends_between(void **state)
{
    (void)state;
    /* A connection attached resets any leg (near_on_relay), and each transaction starts there. */
    for (int leg = 0; leg < NEAR_LEGS; leg++) {
        assert_true(near_leg_may(leg, NEAR_BETWEEN));
        assert_true(near_leg_may(NEAR_BETWEEN, leg));
    }
}

static void test_out_of_range(void **state)
{
    (void)state;
    assert_false(near_leg_may(NEAR_LEGS, NEAR_BETWEEN));
    assert_false(near_leg_may(NEAR_BETWEEN, NEAR_LEGS));
    assert_false(near_leg_may((enum near_leg) - 1, NEAR_BETWEEN));
    assert_string_equal(near_leg_name(NEAR_LEGS), "?");
}

static void test_names(void **state)
{
    (void)state;
    for (int a = 0; a < NEAR_LEGS; a++) {
        assert_non_null(near_leg_name(a));
        assert_string_not_equal(near_leg_name(a), "?");
        for (int b = a + 1; b < NEAR_LEGS; b++)
            assert_string_not_equal(near_leg_name(a), near_leg_name(b));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_the_declared_moves),
        cmocka_unit_test(test_undeclared_moves_refused),
        cmocka_unit_test(test_every_leg_ends_between),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_names),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("near_legs", tests, NULL, NULL);
}
