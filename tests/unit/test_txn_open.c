/*
 * test_txn_open.c
 *    Unit tests for protocol/txn_open.c (cmocka, TAP output): the words
 *    that begin a transaction block and its access mode, the statements
 *    that end one, what looks like them but is not (COMMIT PREPARED,
 *    ISOLATION LEVEL READ COMMITTED, SET SESSION CHARACTERISTICS, words in
 *    strings, quoted identifiers and comments), advisory-lock calls
 *    anywhere in the text, several statements, a statement after the
 *    first that is not a plain read, and every prefix of a few
 *    texts, each copied to a buffer of exactly its length for the
 *    sanitizer to watch.
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

#include "protocol/txn_open.h"

struct open_case {
    const char *sql;
    enum txn_first first;
    enum txn_access access;
    bool advisory_lock;
    bool several;
};

/* The scan of n bytes at sql, from a buffer of exactly n bytes. */
static struct txn_open scan_exact(const char *sql, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, sql, n);
    struct txn_open out;
    txn_open_scan(copy, n, &out);
    free(copy);
    return out;
}

static void check_cases(const struct open_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const struct open_case *c = &cases[i];
        struct txn_open got = scan_exact(c->sql, strlen(c->sql));
        if (got.first != c->first || got.access != c->access ||
            got.advisory_lock != c->advisory_lock || got.several != c->several)
            fail_msg("\"%s\": first %d access %d lock %d several %d, expected %d %d %d %d", c->sql,
                     got.first, got.access, got.advisory_lock, got.several, c->first, c->access,
                     c->advisory_lock, c->several);
    }
}

#define CHECK_CASES(cases) check_cases((cases), sizeof(cases) / sizeof((cases)[0]))

#define OTHER  TXN_FIRST_OTHER
#define BEGIN  TXN_FIRST_BEGIN
#define SETTX  TXN_FIRST_SET_TRANSACTION
#define END    TXN_FIRST_BLOCK_END
#define UNSAID TXN_ACCESS_UNSAID
#define RO     TXN_ACCESS_READ_ONLY
#define RW     TXN_ACCESS_READ_WRITE

static void test_begin(void **state)
{
    (void)state;
    static const struct open_case cases[] = {
        {"BEGIN", BEGIN, UNSAID, false, false},
        {"begin;", BEGIN, UNSAID, false, false},
        {"BEGIN WORK", BEGIN, UNSAID, false, false},
        {"BEGIN TRANSACTION", BEGIN, UNSAID, false, false},
        {"START TRANSACTION", BEGIN, UNSAID, false, false},
        {"start transaction read only", BEGIN, RO, false, false},
        {"BEGIN READ ONLY", BEGIN, RO, false, false},
        {"BEGIN TRANSACTION READ WRITE", BEGIN, RW, false, false},
        {"BEGIN ISOLATION LEVEL READ COMMITTED", BEGIN, UNSAID, false, false},
        {"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", BEGIN, RO, false, false},
        {"BEGIN READ ONLY, READ WRITE", BEGIN, RW, false, false},
        {"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", BEGIN, RO, false, false},
        {"  /* c */ -- x\n\tBeGiN rEaD oNlY", BEGIN, RO, false, false},
        {"BEGIN /* READ ONLY */", BEGIN, UNSAID, false, false},
        {"BEGIN; SELECT 1", BEGIN, UNSAID, false, true},
        {"BEGIN; INSERT INTO t VALUES (1); COMMIT", BEGIN, UNSAID, false, true},
        {";; BEGIN READ ONLY", BEGIN, RO, false, false},
        {"START", OTHER, UNSAID, false, false},
        {"START WORK", OTHER, UNSAID, false, false},
        {"\"begin\"", OTHER, UNSAID, false, false},
        {"'BEGIN'", OTHER, UNSAID, false, false},
        {"BEGINNING", OTHER, UNSAID, false, false},
    };
    CHECK_CASES(cases);
}

/* ISOLATION LEVEL SERIALIZABLE, which a standby refuses, in the first statement only. */
static void test_serializable(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool serializable;
    } cases[] = {
        {"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE", true},
        {"start transaction isolation level serializable", true},
        {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", true},
        {"BEGIN ISOLATION LEVEL REPEATABLE READ", false},
        {"BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", false},
        {"SELECT 'level serializable'", false},
        {"SELECT level serializable FROM t", false},
        {"BEGIN /* level serializable */", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct txn_open got = scan_exact(cases[i].sql, strlen(cases[i].sql));
        if (got.serializable != cases[i].serializable)
            fail_msg("\"%s\": serializable %d, expected %d", cases[i].sql, got.serializable,
                     cases[i].serializable);
    }
}

static void test_set_transaction_and_end(void **state)
{
    (void)state;
    static const struct open_case cases[] = {
        {"SET TRANSACTION READ ONLY", SETTX, RO, false, false},
        {"set transaction isolation level serializable", SETTX, UNSAID, false, false},
        {"SET TRANSACTION READ WRITE", SETTX, RW, false, false},
        {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", OTHER, UNSAID, false, false},
        {"SET LOCAL statement_timeout = 5", OTHER, UNSAID, false, false},
        {"SET default_transaction_read_only = on", OTHER, UNSAID, false, false},
        {"COMMIT", END, UNSAID, false, false},
        {"commit work", END, UNSAID, false, false},
        {"END", END, UNSAID, false, false},
        {"ROLLBACK", END, UNSAID, false, false},
        {"ABORT", END, UNSAID, false, false},
        {"ROLLBACK TO SAVEPOINT a", END, UNSAID, false, false},
        {"COMMIT PREPARED 'x'", OTHER, UNSAID, false, false},
        {"ROLLBACK PREPARED 'x'", OTHER, UNSAID, false, false},
        {"PREPARE TRANSACTION 'x'", OTHER, UNSAID, false, false},
        {"SELECT 'read only'", OTHER, UNSAID, false, false},
        {"SELECT read, only FROM t", OTHER, UNSAID, false, false},
        {"", OTHER, UNSAID, false, false},
        {"   ", OTHER, UNSAID, false, false},
        {";", OTHER, UNSAID, false, false},
    };
    CHECK_CASES(cases);
}

static void test_advisory_and_statements(void **state)
{
    (void)state;
    static const struct open_case cases[] = {
        {"SELECT pg_advisory_lock(1)", OTHER, UNSAID, true, false},
        {"SELECT pg_advisory_xact_lock(1)", OTHER, UNSAID, true, false},
        {"SELECT PG_TRY_ADVISORY_LOCK_SHARED(1)", OTHER, UNSAID, true, false},
        {"SELECT pg_catalog.pg_advisory_unlock_all()", OTHER, UNSAID, true, false},
        {"SELECT \"pg_advisory_lock\"(1)", OTHER, UNSAID, true, false},
        {"SELECT U&\"pg\\005fadvisory_lock\"(77)", OTHER, UNSAID, true, false},
        {"SELECT U&\"pg_try_\\0061dvisory_xact_lock\"(77)", OTHER, UNSAID, true, false},
        {"SELECT \"PG_ADVISORY_LOCK\"(1)", OTHER, UNSAID, false, false},
        {"SELECT 'pg_advisory_lock(1)'", OTHER, UNSAID, false, false},
        {"SELECT 1 -- pg_advisory_lock(1)", OTHER, UNSAID, false, false},
        {"SELECT pg_advisory_", OTHER, UNSAID, false, false},
        {"BEGIN; SELECT pg_advisory_xact_lock(7); UPDATE t SET x = 1", BEGIN, UNSAID, true, true},
        {"SELECT 1; SELECT 2", OTHER, UNSAID, false, true},
        {"SELECT 1;", OTHER, UNSAID, false, false},
        {"SELECT 1; ; ", OTHER, UNSAID, false, false},
        {"SELECT ';'; BEGIN", OTHER, UNSAID, false, true},
        {"SELECT $$;$$", OTHER, UNSAID, false, false},
    };
    CHECK_CASES(cases);
}

/* Whether a statement after the first is not a plain read (later_writes). */
static void test_later_writes(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool later_writes;
    } cases[] = {
        {"INSERT INTO t VALUES (1)", false},
        {"INSERT INTO t VALUES (1); SELECT 1", false},
        {"SELECT 1; SELECT 2", false},
        {"SELECT repeat('x', 100000); VALUES (1); TABLE t; SHOW work_mem", false},
        {"SELECT 1; WITH a AS (SELECT 1) SELECT * FROM a", false},
        {"SELECT 1; select 'insert into t', \"update\" FROM t -- delete", false},
        {"SELECT 1; ; SELECT 2;", false},
        {"SELECT 1; INSERT INTO t VALUES (1)", true},
        {"SELECT 1;update t SET x = 1", true},
        {"SELECT 1; DELETE FROM t", true},
        {"SELECT 1; MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE", true},
        {"SELECT 1; WITH a AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM a", true},
        {"SELECT 1; SELECT * INTO t2 FROM t", true},
        {"SELECT 1; SELECT * FROM t FOR UPDATE", true},
        {"SELECT 1; SELECT * FROM t FOR KEY SHARE", true},
        {"SELECT 1; SELECT nextval('s')", true},
        {"SELECT 1; SELECT pg_catalog.setval('s', 1)", true},
        {"SELECT 1; BEGIN", true},
        {"SELECT 1; COMMIT", true},
        {"SELECT 1; SET x = 1", true},
        {"SELECT 1; CREATE TABLE t (a int)", true},
        {"SELECT 1; COPY t FROM STDIN", true},
        {"SELECT 1; (SELECT 2)", true},
        {"SELECT 1; SELECT 2; INSERT INTO t VALUES (1)", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct txn_open got = scan_exact(cases[i].sql, strlen(cases[i].sql));
        if (got.later_writes != cases[i].later_writes)
            fail_msg("\"%s\": later_writes %d, expected %d", cases[i].sql, got.later_writes,
                     cases[i].later_writes);
    }
}

/* txn_open_lock_refused from a buffer of exactly the text's length. */
static const char *lock_exact(const char *sql, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, sql, n);
    const char *mode = txn_open_lock_refused(copy, n);
    free(copy);
    return mode;
}

/* The LOCK modes a standby refuses, as PostgreSQL names them; the others, and no LOCK: NULL. */
static void test_lock_refused(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        const char *mode;
    } cases[] = {
        {"LOCK TABLE t IN SHARE MODE", "SHARE"},
        {"lock t", "ACCESS EXCLUSIVE"},
        {"LOCK TABLE ONLY a, b * IN share row exclusive MODE NOWAIT", "SHARE ROW EXCLUSIVE"},
        {"LOCK t IN SHARE UPDATE EXCLUSIVE MODE", "SHARE UPDATE EXCLUSIVE"},
        {"LOCK t IN EXCLUSIVE MODE", "EXCLUSIVE"},
        {"LOCK t IN ACCESS EXCLUSIVE MODE;", "ACCESS EXCLUSIVE"},
        {"SELECT 1; LOCK t IN SHARE MODE", "SHARE"},
        {"LOCK t IN ACCESS SHARE MODE; LOCK u", "ACCESS EXCLUSIVE"},
        {"LOCK /* c */ t IN ROW EXCLUSIVE MODE", NULL},
        {"LOCK t IN ROW SHARE MODE", NULL},
        {"LOCK t IN ACCESS SHARE MODE", NULL},
        {"LOCK \"in\" IN ACCESS SHARE MODE", NULL},
        {"LOCK t IN BOGUS MODE", NULL},
        {"LOCK t IN SHARE", NULL},
        {"SELECT 'LOCK t'", NULL},
        {"SELECT 1 FROM lock", NULL},
        {"-- LOCK t\nSELECT 1", NULL},
        {"", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *got = lock_exact(cases[i].sql, strlen(cases[i].sql));
        if ((got == NULL) != (cases[i].mode == NULL) ||
            (got != NULL && strcmp(got, cases[i].mode) != 0))
            fail_msg("\"%s\": %s, expected %s", cases[i].sql, got ? got : "NULL",
                     cases[i].mode ? cases[i].mode : "NULL");
    }
    for (size_t n = 0; n <= strlen(cases[2].sql); n++)
        (void)lock_exact(cases[2].sql, n);
}

/* Every prefix of a few texts, from buffers of exactly their length: no crash, no overread. */
static void test_prefixes(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SELECT pg_advisory_lock(1)",
        "START TRANSACTION READ WRITE; SELECT E'a\\'b', $q$x$q$, \"id\" /* /* */ */ -- c\n",
        "SET TRANSACTION READ ONLY; COMMIT PREPARED 'x'; SELECT \"pg_try_advisory_lock\"(2)",
        "SELECT 1; WITH a AS (SELECT 2) SELECT * FROM a FOR SHARE; INSERT INTO t VALUES (3)",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        for (size_t n = 0; n <= strlen(texts[i]); n++)
            (void)scan_exact(texts[i], n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_begin),
        cmocka_unit_test(test_serializable),
        cmocka_unit_test(test_set_transaction_and_end),
        cmocka_unit_test(test_advisory_and_statements),
        cmocka_unit_test(test_later_writes),
        cmocka_unit_test(test_lock_refused),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
