/*
 * test_sql_calls.c
 *    Unit tests for protocol/sql_calls.c (cmocka, TAP output): DO and
 *    CALL as a statement's first word, each name called as a function as
 *    the catalog spells it (folded, quoted, U& escapes with and without
 *    UESCAPE, a schema left off, cut at 63 bytes), what is not a call
 *    (names in strings, comments, quoted text, the grammar's words, column
 *    lists), where each other name stands (relations after FROM, JOIN, a
 *    FROM list's comma and TABLE, a WITH's names left out; operators as
 *    PostgreSQL cuts them; types after ::), the first found in the text's
 *    order, NOTIFY and pg_notify, the statements that change
 *    routines, and every prefix
 *    of a few texts, each copied to a buffer of exactly its length for the
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

#include "protocol/sql_calls.h"

/*
 * The names called, joined by ' ', each as given to the wanted callback;
 * and every name given, each with its use's letter (c call, r relation,
 * o operator, t type, n name).
 */
struct seen {
    char names[512];
    char uses[1024];
    const char *want; /* the name wanted; NULL: none */
};

static bool note_call(void *arg, enum sql_use use, const char *name, size_t len)
{
    struct seen *sn = arg;
    assert_int_equal(strlen(name), len);
    size_t u = strlen(sn->uses);
    snprintf(sn->uses + u, sizeof(sn->uses) - u, "%s%c:%s", u ? " " : "", "crotnk"[use], name);
    if (use != SQL_USE_CALL)
        return false;
    size_t n = strlen(sn->names);
    snprintf(sn->names + n, sizeof(sn->names) - n, "%s%s", n ? " " : "", name);
    return sn->want != NULL && strcmp(sn->want, name) == 0;
}

/* The scan of sql from a buffer of exactly its length. */
static struct sql_calls scan(const char *sql, size_t n, struct seen *sn)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, sql, n);
    struct sql_calls out;
    sql_calls_scan(copy, n, note_call, sn, &out);
    free(copy);
    return out;
}

static void expect_calls(const char *sql, const char *names)
{
    struct seen sn = {.names = ""};
    struct sql_calls out = scan(sql, strlen(sql), &sn);
    if (strcmp(sn.names, names) != 0)
        fail_msg("%s: called \"%s\", expected \"%s\"", sql, sn.names, names);
    assert_int_equal(out.found, SQL_ROUTINE_NONE);
}

static void test_names_called(void **state)
{
    (void)state;
    expect_calls("SELECT count(*) FROM t", "count");
    expect_calls("SELECT Log_Visit(1), myschema.note(2)", "log_visit note");
    expect_calls("SELECT \"Mixed\"(1), \"a\"\"b\"(2)", "Mixed a\"b");
    expect_calls("SELECT U&\"d\\0061t\\+000061\"(1)", "data");
    expect_calls("SELECT U&\"pg!005fadvisory_lock\" UESCAPE '!' (77)", "pg_advisory_lock");
    expect_calls("SELECT U&\"x\\\\y\"()", "x\\y");
    expect_calls("SELECT f (1), g\n(2), h /* c */ (3)", "f g h");
    expect_calls("SELECT 'f(1)', $$g(2)$$, \"h\" -- i(3)\n", "");
    expect_calls("SELECT x FROM t WHERE id IN (1, 2)", ""); /* the grammar's own words */
    expect_calls("SELECT (1), 2 + (3), float(8), \"in\"(1)", "in");
    expect_calls("WITH w(a) AS (SELECT 1) SELECT * FROM generate_series(1, 2) g(i), w",
                 "generate_series");
    expect_calls("SELECT x FROM t AS a(b), f(1) AS c(d int)", "f");
    expect_calls("", "");
    char longname[100], expect[64];
    memset(longname, 'a', 70);
    strcpy(longname + 70, "(1)");
    memset(expect, 'a', 63);
    expect[63] = '\0';
    expect_calls(longname, expect);
}

static void expect_uses(const char *sql, const char *uses)
{
    struct seen sn = {.names = ""};
    (void)scan(sql, strlen(sql), &sn);
    if (strcmp(sn.uses, uses) != 0)
        fail_msg("%s: gave \"%s\", expected \"%s\"", sql, sn.uses, uses);
}

/* Where each name stands: relations, operators, types, other names. */
static void test_uses(void **state)
{
    (void)state;
    expect_uses("SELECT a FROM s.t x, u JOIN LATERAL v ON w.k = 1",
                "n:a n:s r:t n:x r:u r:v n:w n:k o:=");
    expect_uses("WITH q AS (SELECT 1) SELECT * FROM q, ONLY r", "n:q o:* n:q r:r");
    expect_uses("SELECT extract(year FROM ts), substring(s FROM 2) FROM t", "n:year n:ts n:s r:t");
    expect_uses("SELECT a IS DISTINCT FROM b FROM (SELECT 1) x, y WHERE z", "n:a n:b n:x r:y n:z");
    expect_uses("SELECT x::tag, y::pg_catalog.\"char\", z::int[] FROM t",
                "n:x t:tag n:y n:pg_catalog t:char n:z r:t");
    expect_uses("SELECT a ~=~ b, c!=d, e=-1, f => 1, g->>'k'",
                "n:a o:~=~ n:b n:c o:<> n:d n:e o:- o:= n:f n:g o:->>");
    expect_uses("TABLE v; FETCH 1 FROM c; COPY t FROM STDIN", "r:v n:c n:copy n:t n:stdin");
    expect_uses("SELECT * FROM a WHERE b IN (SELECT c FROM d), e", "o:* r:a n:b n:c r:d n:e");
    /* a word of the grammar that a function may be named too: checked, no catalog need know it */
    expect_uses("SELECT a FROM t GROUP BY CUBE (a), hash(b) LEFT JOIN u ON true",
                "n:a r:t n:by k:cube n:a k:hash n:b r:u");
}

static void test_found(void **state)
{
    (void)state;
    struct seen sn = {.names = "", .want = "log_visit"};
    struct sql_calls out = scan("SELECT now(), LOG_VISIT(1), log_visit(2)", 40, &sn);
    assert_int_equal(out.found, SQL_ROUTINE_FUNCTION);
    assert_string_equal(out.name, "log_visit");
    assert_string_equal(sn.names, "now log_visit log_visit"); /* each asked: the first found */

    const char *dos[] = {"DO $$BEGIN END$$", "do 'x'", "SELECT 1; /* c */ DO $$ $$",
                         "  DO LANGUAGE plpgsql $$ $$"};
    for (size_t i = 0; i < sizeof(dos) / sizeof(dos[0]); i++) {
        sn = (struct seen){.names = ""};
        assert_int_equal(scan(dos[i], strlen(dos[i]), &sn).found, SQL_ROUTINE_DO);
    }
    sn = (struct seen){.names = ""};
    assert_int_equal(scan("CALL p(1)", 9, &sn).found, SQL_ROUTINE_CALL);
    const char *not_do[] = {"INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", "SELECT 'DO'",
                            "SELECT do FROM t", "SELECT call FROM t"};
    for (size_t i = 0; i < sizeof(not_do) / sizeof(not_do[0]); i++) {
        sn = (struct seen){.names = ""};
        assert_int_equal(scan(not_do[i], strlen(not_do[i]), &sn).found, SQL_ROUTINE_NONE);
    }
}

static void test_notifies(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool notifies;
    } cases[] = {
        {"NOTIFY ch", true},
        {"notify ch, 'x'", true},
        {"SELECT pg_notify('ch', 'x')", true},
        {"SELECT pg_catalog.PG_NOTIFY('ch', 'x')", true},
        {"SELECT 1; NOTIFY ch", true},
        {"LISTEN ch", false},
        {"SELECT 'NOTIFY ch'", false},
        {"SELECT notify FROM t", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct seen sn = {.names = ""};
        struct sql_calls out = scan(cases[i].sql, strlen(cases[i].sql), &sn);
        if (out.notifies != cases[i].notifies)
            fail_msg("%s: notifies %d", cases[i].sql, out.notifies);
    }
}

static void test_changes_routines(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        bool changes;
    } cases[] = {
        {"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", true},
        {"create or replace function f() returns int as $$ select 1 $$ language sql", true},
        {"ALTER FUNCTION f() VOLATILE", true},
        {"DROP PROCEDURE p", true},
        {"CREATE EXTENSION dblink", true},
        {"ALTER EXTENSION dblink UPDATE", true},
        {"SELECT 1; DROP ROUTINE r", true},
        {"CREATE TABLE function (x int)", true},
        {"CREATE TABLE t (function int)", false},
        {"SELECT 'CREATE FUNCTION'", false},
        {"INSERT INTO function VALUES (1)", false},
        {"CREATE INDEX ON t (x)", false},
        {"CREATE OR REPLACE VIEW v AS SELECT 1", true},
        {"CREATE OPERATOR ~=~ (FUNCTION = f, LEFTARG = int, RIGHTARG = int)", true},
        {"CREATE CAST (text AS tag) WITH FUNCTION tag_of(text)", true},
        {"ALTER DOMAIN d ADD CHECK (f(VALUE))", true},
        {"CREATE POLICY p ON t USING (f())", true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct seen sn = {.names = ""};
        struct sql_calls out = scan(cases[i].sql, strlen(cases[i].sql), &sn);
        if (out.changes_routines != cases[i].changes)
            fail_msg("%s: changes_routines %d", cases[i].sql, out.changes_routines);
    }
}

/* Every prefix of a few texts, from buffers of exactly their length: no crash, no overread. */
static void test_prefixes(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "SELECT U&\"d\\0061t\\+000061\" UESCAPE '\\' (1); DO $$ BEGIN END $$",
        "CREATE OR REPLACE FUNCTION f() RETURNS int AS $q$ SELECT g(1) $q$ LANGUAGE sql",
        "CALL p(\"x\"\"y\"(1), E'a\\'b') /* /* */ */ -- f(1)\n",
        "SELECT U&\"\\+10FFFF\\FFFF\\0000\\zz\"()",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        for (size_t n = 0; n <= strlen(texts[i]); n++) {
            struct seen sn = {.names = ""};
            (void)scan(texts[i], n, &sn);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_called),
        cmocka_unit_test(test_uses),
        cmocka_unit_test(test_found),
        cmocka_unit_test(test_notifies),
        cmocka_unit_test(test_changes_routines),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
