/*
 * test_scram_fit.c
 *    Unit tests for proxy/base/scram_fit.c, what SHOW USERS shows: whether
 *    pgnear's SCRAM key for a user fits each region's server (cmocka, TAP).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/base/scram_fit.h"

/* A misfit is news once; a fit clears the error; the rows come by user and region. */
static void test_note_and_copy(void **state)
{
    (void)state;
    struct scram_fits t;
    struct scram_fit rows[4];
    assert_int_equal(scram_fits_init(&t), 0);
    assert_false(scram_fits_note(&t, "app", "us-east", true, NULL, 100));
    assert_true(scram_fits_note(&t, "app", "eu-west", false, "differs", 101));
    assert_false(scram_fits_note(&t, "app", "eu-west", false, "differs again", 102));
    assert_false(scram_fits_note(&t, "", "eu-west", false, "no user", 103)); /* not kept */
    assert_int_equal(scram_fits_copy(&t, rows, 4), 2);
    assert_string_equal(rows[0].region, "eu-west");
    assert_false(rows[0].fits);
    assert_string_equal(rows[0].last_error, "differs again");
    assert_int_equal(rows[0].logins, 2);
    assert_int_equal(rows[0].at, 102);
    assert_string_equal(rows[1].region, "us-east");
    assert_true(rows[1].fits);
    /* The role got pgnear's secret: fits again, no error; a later misfit is news again. */
    assert_false(scram_fits_note(&t, "app", "eu-west", true, NULL, 104));
    assert_int_equal(scram_fits_copy(&t, rows, 4), 2);
    assert_true(rows[0].fits);
    assert_string_equal(rows[0].last_error, "");
    assert_true(scram_fits_note(&t, "app", "eu-west", false, "differs", 105));
    scram_fits_destroy(&t);
}

/* Full: the pair seen longest ago makes room. */
static void test_full_forgets_oldest(void **state)
{
    (void)state;
    struct scram_fits t;
    char user[32];
    assert_int_equal(scram_fits_init(&t), 0);
    for (int i = 0; i < SCRAM_FIT_MAX; i++) {
        snprintf(user, sizeof(user), "u%d", i);
        scram_fits_note(&t, user, "r", true, NULL, 1000 + i);
    }
    scram_fits_note(&t, "u0", "r", true, NULL, 5000); /* u1 is now the oldest */
    scram_fits_note(&t, "newcomer", "r", false, "differs", 5001);
    struct scram_fit *rows = calloc(SCRAM_FIT_MAX, sizeof(*rows));
    assert_non_null(rows);
    assert_int_equal(scram_fits_copy(&t, rows, SCRAM_FIT_MAX), SCRAM_FIT_MAX);
    bool u0 = false, u1 = false, newcomer = false;
    for (int i = 0; i < SCRAM_FIT_MAX; i++) {
        u0 |= strcmp(rows[i].user, "u0") == 0;
        u1 |= strcmp(rows[i].user, "u1") == 0;
        newcomer |= strcmp(rows[i].user, "newcomer") == 0;
    }
    assert_true(u0);
    assert_false(u1);
    assert_true(newcomer);
    free(rows);
    scram_fits_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_note_and_copy),
        cmocka_unit_test(test_full_forgets_oldest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
