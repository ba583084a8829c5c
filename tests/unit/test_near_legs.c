/*
 * test_near_legs.c
 *    Unit tests for proxy/session/near_legs.c (cmocka, TAP output): the
 *    table of a nearest transaction's legs, which near.c checks on every
 *    change (near_leg_enter), declares exactly the moves nearest makes,
 *    and refuses the ones that matter: a put-back request placed on a
 *    standby, a stand-in's Sync delivered as the request's answer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "proxy/session/near_legs.h"

/* The moves near.c makes, and no other. */
static const struct {
    enum near_leg from, to;
} declared[] = {
    {NEAR_BETWEEN, NEAR_HELD},              /* near_begin: on a standby, held */
    {NEAR_BETWEEN, NEAR_STANDING_IN},       /* near_begin: its request for a primary stood in for */
    {NEAR_BETWEEN, NEAR_SHOWN},             /* near_begin: a READ ONLY block; a message too long */
    {NEAR_BETWEEN, NEAR_PRIMARY},           /* near_begin on a primary, for what it runs */
    {NEAR_BETWEEN, NEAR_PRIMARY_NEAREST},   /* near_begin on a primary, the nearest host */
    {NEAR_HELD, NEAR_HELD_SENT},            /* its request sent whole */
    {NEAR_HELD, NEAR_HELD_FLUSHING},        /* a Flush */
    {NEAR_HELD, NEAR_SHOWN},                /* the hold given up */
    {NEAR_HELD, NEAR_BETWEEN},              /* a new connection attached */
    {NEAR_HELD_SENT, NEAR_FORWARDING},      /* put back to run again */
    {NEAR_HELD_SENT, NEAR_SHOWN},           /* given up; delivered in a block */
    {NEAR_HELD_SENT, NEAR_BETWEEN},         /* delivered at its end */
    {NEAR_HELD_FLUSHING, NEAR_HELD},        /* the next request read whole, held on */
    {NEAR_HELD_FLUSHING, NEAR_STANDING_IN}, /* ... for a primary: stood in for */
    {NEAR_HELD_FLUSHING, NEAR_SHOWN},       /* a result flushed gives the hold up */
    {NEAR_HELD_FLUSHING, NEAR_BETWEEN},     /* a new connection attached */
    {NEAR_STANDING_IN, NEAR_STOOD_IN},      /* pgnear's Sync goes */
    {NEAR_STANDING_IN, NEAR_SHOWN},         /* the server ended the connection */
    {NEAR_STANDING_IN, NEAR_BETWEEN},       /* a new connection attached */
    {NEAR_STOOD_IN, NEAR_FORWARDING},       /* put back to run on a primary */
    {NEAR_STOOD_IN, NEAR_SHOWN},            /* runs where it is after all, unheld */
    {NEAR_STOOD_IN, NEAR_BETWEEN},          /* canceled: it ran nowhere */
    {NEAR_FORWARDING, NEAR_RERUN},          /* a primary's connection attached */
    {NEAR_FORWARDING, NEAR_BETWEEN},        /* canceled before it ran again */
    {NEAR_RERUN, NEAR_RERUN_FAILED},        /* the primary answered with an error */
    {NEAR_RERUN, NEAR_BETWEEN},             /* its ReadyForQuery 'I'; a new connection */
    {NEAR_RERUN_FAILED, NEAR_BETWEEN},      /* its ReadyForQuery 'I'; a new connection */
    {NEAR_SHOWN, NEAR_BETWEEN},             /* its ReadyForQuery 'I'; a new connection */
    {NEAR_PRIMARY, NEAR_BETWEEN},           /* its ReadyForQuery 'I'; a new connection */
    {NEAR_PRIMARY_NEAREST, NEAR_BETWEEN},   /* its ReadyForQuery 'I'; a new connection */
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
    /* A put-back request runs again (on a primary, or where it is pinned), never held. */
    for (int to = 0; to < NEAR_LEGS; to++)
        if (to != NEAR_FORWARDING && to != NEAR_RERUN && to != NEAR_BETWEEN)
            assert_false(near_leg_may(NEAR_FORWARDING, to));
    /* Only a put-back request runs again: no other leg leads there. */
    for (int from = 0; from < NEAR_LEGS; from++)
        if (from != NEAR_FORWARDING && from != NEAR_RERUN)
            assert_false(near_leg_may(from, NEAR_RERUN));
    /* A stand-in's answer is pgnear's own Sync's: never delivered as the request's. */
    assert_false(near_leg_delivers(NEAR_STANDING_IN));
    assert_false(near_leg_delivers(NEAR_STOOD_IN));
    assert_true(near_leg_delivers(NEAR_HELD));
    assert_true(near_leg_delivers(NEAR_HELD_SENT));
    /* A stand-in never becomes a plain hold, whose answer would be delivered. */
    assert_false(near_leg_may(NEAR_STANDING_IN, NEAR_HELD));
    assert_false(near_leg_may(NEAR_STOOD_IN, NEAR_HELD_SENT));
}

/* What the legs are: held, the client waiting; none holds but a standby's. */
static void test_what_legs_are(void **state)
{
    (void)state;
    for (int leg = 0; leg < NEAR_LEGS; leg++) {
        bool holds = leg == NEAR_HELD || leg == NEAR_HELD_SENT || leg == NEAR_HELD_FLUSHING ||
                     leg == NEAR_STANDING_IN || leg == NEAR_STOOD_IN;
        assert_int_equal(near_leg_holds(leg), holds);
        assert_int_equal(near_leg_asked(leg), leg == NEAR_HELD_SENT || leg == NEAR_STOOD_IN);
        if (near_leg_delivers(leg))
            assert_true(holds);
    }
    assert_false(near_leg_holds(NEAR_LEGS));
}

static void test_every_leg_ends_between(void **state)
{
    (void)state;
    /* A connection attached resets any leg (near_on_relay). */
    for (int leg = 0; leg < NEAR_LEGS; leg++)
        assert_true(near_leg_may(leg, NEAR_BETWEEN));
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
        cmocka_unit_test(test_what_legs_are),
        cmocka_unit_test(test_every_leg_ends_between),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_names),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("near_legs", tests, NULL, NULL);
}
