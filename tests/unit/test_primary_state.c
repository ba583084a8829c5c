/*
 * test_primary_state.c
 *    Unit tests for protocol/primary_state.c (cmocka, TAP output): the
 *    views and functions that answer for the primary alone, found as a
 *    word in any case, schema-qualified, called or not, and as a quoted
 *    identifier spelled exactly; not found inside strings, comments or
 *    dollar quotes, as part of a longer name, or quoted in another case;
 *    every prefix of a text, each copied to a buffer of exactly its
 *    length for the sanitizer to watch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/primary_state.h"

/* primary_state_read of n bytes of sql, from a buffer of exactly n bytes. */
static const char *read_exact(const char *sql, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, sql, n);
    const char *name = primary_state_read(copy, n);
    free(copy);
    return name;
}

static const char *read_of(const char *sql)
{
    return read_exact(sql, strlen(sql));
}

static void test_found(void **state)
{
    (void)state;
    assert_string_equal(read_of("SELECT gid FROM pg_prepared_xacts"), "pg_prepared_xacts");
    assert_string_equal(read_of("select * from PG_CATALOG.Pg_Prepared_Xacts"), "pg_prepared_xacts");
    assert_string_equal(read_of("SELECT * FROM \"pg_prepared_xacts\""), "pg_prepared_xacts");
    assert_string_equal(read_of("SELECT * FROM pg_prepared_xact()"), "pg_prepared_xact");
    assert_string_equal(read_of("SELECT count(*) FROM pg_stat_replication"), "pg_stat_replication");
    assert_string_equal(read_of("SELECT slot_name FROM pg_replication_slots"),
                        "pg_replication_slots");
    assert_string_equal(read_of("SELECT 1; SELECT pid FROM pg_stat_activity"), "pg_stat_activity");
    assert_string_equal(read_of("SELECT * FROM pg_locks WHERE locktype = 'advisory'"), "pg_locks");
    assert_string_equal(read_of("SELECT xact_commit FROM pg_stat_database"), "pg_stat_database");
    assert_string_equal(read_of("SELECT txid_current_snapshot()"), "txid_current_snapshot");
    assert_string_equal(read_of("SELECT pg_current_snapshot()"), "pg_current_snapshot");
    assert_string_equal(read_of("SELECT * FROM pg_last_committed_xact()"),
                        "pg_last_committed_xact");
    assert_string_equal(read_of("SELECT pg_blocking_pids(42)"), "pg_blocking_pids");
}

static void test_not_found(void **state)
{
    (void)state;
    assert_null(read_of("SELECT 1"));
    assert_null(read_of("SELECT 'pg_prepared_xacts'"));
    assert_null(read_of("SELECT 1 -- pg_locks"));
    assert_null(read_of("SELECT 1 /* pg_stat_activity /* nested */ */"));
    assert_null(read_of("SELECT $x$pg_locks$x$"));
    assert_null(read_of("SELECT * FROM pg_prepared_xacts_copy"));
    assert_null(read_of("SELECT * FROM my_pg_locks"));
    assert_null(read_of("SELECT * FROM \"PG_LOCKS\""));
    assert_null(read_of("SELECT * FROM pg_stat_wal_receiver"));
    assert_null(read_of(""));
}

static void test_prefixes(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "SELECT gid FROM pg_prepared_xacts WHERE gid = 'x' -- c",
        "SELECT \"pg_locks\" FROM $$pg_locks$$ /* pg_locks",
        "SELECT E'\\'pg_locks', U&\"pg_locks\"",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        for (size_t n = 0; n <= strlen(texts[i]); n++)
            (void)read_exact(texts[i], n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_found),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests_name("primary_state", tests, NULL, NULL);
}
