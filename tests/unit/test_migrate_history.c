/*
 * test_migrate_history.c
 *    Unit tests for proxy/migrate/history.c (cmocka, TAP output): the
 *    states' names, and the reading of pgnear_schema_history's rows from
 *    results built with libpq's PQmakeEmptyPGresult and PQsetvalue, as a
 *    server would return them, good rows and every kind of bad one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/migrate/history.h"

#define SUM_A "3f1c8a2b9d0e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c"
#define SUM_B "0000000000000000000000000000000000000000000000000000000000000000"

/* A result with the select's 11 columns and these rows (NULL for SQL NULL). */
static PGresult *make_result(const char *const rows[][11], int nrows, int ncols)
{
    static const char *const names[] = {"version", "name",  "checksum",        "state",
                                        "done",    "total", "started_at",      "finished_at",
                                        "run_by",  "error", "error_statement", "extra"};
    PGresAttDesc attrs[12];
    memset(attrs, 0, sizeof(attrs));
    for (int i = 0; i < ncols; i++) {
        attrs[i].name = (char *)names[i];
        attrs[i].typlen = -1;
        attrs[i].atttypmod = -1;
    }
    PGresult *res = PQmakeEmptyPGresult(NULL, PGRES_TUPLES_OK);
    assert_non_null(res);
    assert_int_equal(PQsetResultAttrs(res, ncols, attrs), 1);
    for (int r = 0; r < nrows; r++)
        for (int c = 0; c < ncols && c < 11; c++) {
            const char *v = rows[r][c];
            assert_int_equal(PQsetvalue(res, r, c, (char *)v, v ? (int)strlen(v) : -1), 1);
        }
    return res;
}

static void test_state_names(void **state)
{
    static const char *const names[] = {"running",   "applied",  "failed",
                                        "uncertain", "reverted", "reverting"};
    for (size_t i = 0; i < 6; i++) {
        enum migrate_state s;
        assert_true(migrate_state_parse(names[i], &s));
        assert_string_equal(migrate_state_name(s), names[i]);
    }
    enum migrate_state s;
    assert_false(migrate_state_parse("pending", &s)); /* no row says pending */
    assert_false(migrate_state_parse("Applied", &s));
    assert_false(migrate_state_parse("", &s));
    assert_string_equal(migrate_state_name(MIGRATE_PENDING), "pending");
}

static const char *const good_rows[][11] = {
    {"1", "users", SUM_A, "applied", "3", "3", "1700000000000000", "1700000001500000",
     "pgnear 1.0 on db1 pid 42", NULL, NULL},
    {"2", "rides_by_city", SUM_B, "failed", "1", "4", "1700000002000000", "1700000003000000",
     "pgnear", "relation \"x\" does not exist (42P01)", "2"},
    {"10", "indexes", SUM_A, "running", "0", "2", "-5000000", NULL, "p", NULL, NULL},
};

static void test_parse_rows(void **state)
{
    PGresult *res = make_result(good_rows, 3, 11);
    struct migrate_history h;
    char err[256] = "";
    assert_int_equal(migrate_history_parse(res, &h, err, sizeof(err)), 0);
    assert_int_equal(h.count, 3);
    const struct migrate_history_row *r = &h.rows[0];
    assert_int_equal(r->version, 1);
    assert_string_equal(r->name, "users");
    assert_string_equal(r->checksum, SUM_A);
    assert_int_equal(r->state, MIGRATE_APPLIED);
    assert_int_equal(r->statements_done, 3);
    assert_int_equal(r->statements_total, 3);
    assert_int_equal(r->started_at_us, 1700000000000000LL);
    assert_int_equal(r->finished_at_us, 1700000001500000LL);
    assert_string_equal(r->run_by, "pgnear 1.0 on db1 pid 42");
    assert_false(r->has_error);
    assert_int_equal(r->error_statement, 0);
    r = &h.rows[1];
    assert_int_equal(r->state, MIGRATE_FAILED);
    assert_true(r->has_error);
    assert_string_equal(r->error, "relation \"x\" does not exist (42P01)");
    assert_int_equal(r->error_statement, 2);
    r = &h.rows[2];
    assert_int_equal(r->state, MIGRATE_RUNNING);
    assert_int_equal(r->finished_at_us, 0);
    assert_int_equal(r->started_at_us, -5000000); /* before 1970 is still a time */
    assert_ptr_equal(migrate_history_find(&h, 10), &h.rows[2]);
    assert_ptr_equal(migrate_history_find(&h, 1), &h.rows[0]);
    assert_null(migrate_history_find(&h, 3));
    assert_null(migrate_history_find(&h, 11));
    migrate_history_free(&h);
    PQclear(res);

    res = make_result(good_rows, 0, 11); /* the table is there, empty */
    assert_int_equal(migrate_history_parse(res, &h, err, sizeof(err)), 0);
    assert_int_equal(h.count, 0);
    assert_null(migrate_history_find(&h, 1));
    migrate_history_free(&h);
    PQclear(res);
}

/* good_rows[0] with column col set to value; parsing must fail naming needle. */
static void expect_bad(int col, const char *value, const char *needle)
{
    const char *rows[1][11];
    memcpy(rows[0], good_rows[0], sizeof(rows[0]));
    rows[0][col] = value;
    PGresult *res = make_result(rows, 1, 11);
    struct migrate_history h;
    char err[256] = "";
    assert_int_equal(migrate_history_parse(res, &h, err, sizeof(err)), -1);
    if (strstr(err, needle) == NULL)
        fail_msg("column %d = %s: error \"%s\" does not name \"%s\"", col, value ? value : "NULL",
                 err, needle);
    migrate_history_free(&h);
    PQclear(res);
}

static void test_bad_rows(void **state)
{
    expect_bad(0, "0", "invalid version");
    expect_bad(0, "12x", "invalid version");
    expect_bad(0, "99999999999999999999", "invalid version");
    expect_bad(0, NULL, "invalid version: \"NULL\"");
    expect_bad(1, "", "invalid name");
    expect_bad(1, "a234567890123456789012345678901234567890123456789012345678901234",
               "invalid name");
    expect_bad(2, "ABC", "invalid checksum");
    expect_bad(2, SUM_A "0", "invalid checksum");
    expect_bad(2, "3F1C8A2B9D0E4F5A6B7C8D9E0F1A2B3C4D5E6F708192A3B4C5D6E7F8091A2B3C",
               "invalid checksum"); /* lower case only, as pgnear writes it */
    expect_bad(3, "pending", "invalid state");
    expect_bad(3, NULL, "invalid state");
    expect_bad(4, "-1", "invalid statements_done");
    expect_bad(5, NULL, "invalid statements_total");
    expect_bad(6, NULL, "invalid started_at");
    expect_bad(7, "soon", "invalid finished_at");
    expect_bad(8, NULL, "invalid run_by");
    expect_bad(10, "0", "invalid error_statement");
}

static void test_bad_results(void **state)
{
    struct migrate_history h;
    char err[256] = "";
    PGresult *res = make_result(good_rows, 1, 10); /* a column short */
    assert_int_equal(migrate_history_parse(res, &h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "11 columns"));
    migrate_history_free(&h);
    PQclear(res);

    res = PQmakeEmptyPGresult(NULL, PGRES_COMMAND_OK);
    assert_non_null(res);
    assert_int_equal(migrate_history_parse(res, &h, err, sizeof(err)), -1);
    migrate_history_free(&h);
    PQclear(res);

    const char *rows[2][11];
    memcpy(rows[0], good_rows[1], sizeof(rows[0]));
    memcpy(rows[1], good_rows[0], sizeof(rows[1]));
    res = make_result(rows, 2, 11);
    assert_int_equal(migrate_history_parse(res, &h, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "ascending order"));
    migrate_history_free(&h);
    PQclear(res);
}

/* The table's text has every column the select reads, and the states' check. */
static void test_sql_text(void **state)
{
    static const char *const columns[] = {"version bigint PRIMARY KEY",
                                          "name text",
                                          "checksum text",
                                          "state text",
                                          "statements_done integer",
                                          "statements_total integer",
                                          "started_at timestamptz",
                                          "finished_at timestamptz",
                                          "run_by text",
                                          "error text",
                                          "error_statement integer"};
    for (size_t i = 0; i < sizeof(columns) / sizeof(columns[0]); i++)
        if (strstr(migrate_history_create_sql, columns[i]) == NULL)
            fail_msg("the table has no \"%s\"", columns[i]);
    assert_non_null(strstr(migrate_history_create_sql,
                           "'running', 'applied', 'failed', 'uncertain', 'reverted'"));
    assert_non_null(strstr(migrate_history_create_sql, "'reverting'"));
    assert_non_null(strstr(migrate_history_create_sql, "IF NOT EXISTS pgnear_schema_history"));
    assert_non_null(strstr(migrate_history_select_sql, "ORDER BY version"));
    assert_non_null(strstr(migrate_history_exists_sql, "to_regclass('pgnear_schema_history')"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names), cmocka_unit_test(test_parse_rows),
        cmocka_unit_test(test_bad_rows),    cmocka_unit_test(test_bad_results),
        cmocka_unit_test(test_sql_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
