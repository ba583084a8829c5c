/*
 * test_migrate_plan.c
 *    Unit tests for proxy/migrate/plan.c (cmocka, TAP output): which steps
 *    MIGRATE UP would run in a region for a given history and target, and
 *    every history that makes it refuse (running, failed, uncertain, a
 *    checksum mismatch, a step with no file), each naming region and
 *    version.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "proxy/migrate/plan.h"

#define SUM(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

static struct migrate_step step_array[3];
static struct migrate_steps steps = {step_array, 3};
static struct migrate_history_row row_array[4];
static struct migrate_history history = {row_array, 0};

/* Steps 1, 2 and 5 with checksums "11..", "22..", "55..". */
static int setup(void **state)
{
    static const int64_t versions[] = {1, 2, 5};
    static const char *const sums[] = {SUM("11"), SUM("22"), SUM("55")};
    static char files[3][32];
    memset(step_array, 0, sizeof(step_array));
    for (int i = 0; i < 3; i++) {
        step_array[i].version = versions[i];
        snprintf(step_array[i].name, sizeof(step_array[i].name), "step%d", i);
        snprintf(step_array[i].up.checksum, sizeof(step_array[i].up.checksum), "%s", sums[i]);
        snprintf(files[i], sizeof(files[i]), "dir/%04d_step%d.sql", (int)versions[i], i);
        step_array[i].up.file = files[i];
    }
    history.count = 0;
    return 0;
}

static void add_row(int64_t version, const char *checksum, enum migrate_state state)
{
    struct migrate_history_row *r = &row_array[history.count++];
    memset(r, 0, sizeof(*r));
    r->version = version;
    snprintf(r->name, sizeof(r->name), "v%d", (int)version);
    snprintf(r->checksum, sizeof(r->checksum), "%s", checksum);
    r->state = state;
}

/* The plan as "1,2,5". */
static void expect_plan(int64_t to, const char *expected)
{
    size_t idx[3], n;
    struct pg_error err;
    char got[64] = "";
    size_t used = 0;
    assert_int_equal(migrate_plan_region(&steps, &history, "eu", to, idx, &n, &err), 0);
    for (size_t i = 0; i < n; i++)
        used += (size_t)snprintf(got + used, sizeof(got) - used, "%s%d", i ? "," : "",
                                 (int)steps.steps[idx[i]].version);
    assert_string_equal(got, expected);
}

static void expect_refusal(const char *needle1, const char *needle2)
{
    size_t idx[3], n = 99;
    struct pg_error err;
    assert_int_equal(migrate_plan_region(&steps, &history, "eu", MIGRATE_TO_ALL, idx, &n, &err),
                     -1);
    assert_string_equal(err.sqlstate, "55000");
    assert_int_equal(n, 0);
    if (strstr(err.message, needle1) == NULL || strstr(err.message, "region \"eu\"") == NULL ||
        (needle2 != NULL && strstr(err.detail, needle2) == NULL))
        fail_msg("\"%s\" (%s) does not say \"%s\"", err.message, err.detail, needle1);
}

static void test_pending(void **state)
{
    expect_plan(MIGRATE_TO_ALL, "1,2,5");
    expect_plan(2, "1,2");
    expect_plan(4, "1,2");
    expect_plan(0, "");
    add_row(1, SUM("11"), MIGRATE_APPLIED);
    expect_plan(MIGRATE_TO_ALL, "2,5");
    add_row(2, SUM("22"), MIGRATE_REVERTED);
    expect_plan(MIGRATE_TO_ALL, "2,5"); /* reverted runs again */
    expect_plan(1, "");
    add_row(5, SUM("55"), MIGRATE_APPLIED);
    expect_plan(MIGRATE_TO_ALL, "2");
    assert_ptr_equal(migrate_step_find(&steps, 5), &step_array[2]);
    assert_null(migrate_step_find(&steps, 3));
}

static void test_reverted_changed_file(void **state)
{
    add_row(1, SUM("ab"), MIGRATE_REVERTED); /* the file may change once undone */
    expect_plan(MIGRATE_TO_ALL, "1,2,5");
}

static void test_refusals(void **state)
{
    static const enum migrate_state blocking[] = {MIGRATE_RUNNING, MIGRATE_FAILED,
                                                  MIGRATE_UNCERTAIN};
    static const char *const words[] = {"step 2 (v2) is running", "step 2 (v2) is failed",
                                        "step 2 (v2) is uncertain"};
    for (int i = 0; i < 3; i++) {
        history.count = 0;
        add_row(1, SUM("11"), MIGRATE_APPLIED);
        add_row(2, SUM("22"), blocking[i]);
        expect_refusal(words[i], NULL);
    }
    history.count = 0;
    add_row(2, SUM("22"), MIGRATE_FAILED);
    snprintf(row_array[0].error, sizeof(row_array[0].error), "division by zero");
    row_array[0].has_error = true;
    expect_refusal("is failed", "division by zero");

    history.count = 0;
    add_row(1, SUM("11"), MIGRATE_APPLIED);
    add_row(2, SUM("2f"), MIGRATE_APPLIED);
    expect_refusal("checksum mismatch for step 2 (v2)", "dir/0002_step1.sql has " SUM("22"));

    history.count = 0;
    add_row(3, SUM("33"), MIGRATE_APPLIED);
    expect_refusal("step 3 (v3) ran", "no file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_pending, setup),
        cmocka_unit_test_setup(test_reverted_changed_file, setup),
        cmocka_unit_test_setup(test_refusals, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
