/*
 * test_txn_pin.c
 *    Unit tests for protocol/txn_pin.c (cmocka, TAP output): each reason
 *    a client is pinned for, and each exception to it; keywords hidden in
 *    every kind of string, quoted identifier and comment; $1 against
 *    dollar quotes; several statements in one text; set_config's last
 *    argument, nested calls and which reason comes first; every prefix of
 *    a few texts (none may crash or read past its end: each is copied to
 *    a buffer of exactly its length, for the sanitizer to watch); NUL
 *    bytes; long texts, which must take linear time; and the quick look
 *    (txn_pin_rules_out): never ruling out a text any case pins, and ruling
 *    out the common queries.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/txn_pin.h"

#define SET        "a session-level SET"
#define SET_CONFIG "set_config() outside a transaction-local call"
#define TEMP       "a temporary object"
#define LISTEN     "LISTEN"
#define PREPARE    "a SQL PREPARE"
#define HOLD       "a WITH HOLD cursor"
#define ADVISORY   "a session advisory lock"
#define LOAD       "LOAD"

struct pin_case {
    const char *sql;
    const char *why; /* NULL: not pinned */
};

/* The scan of n bytes at sql, from a buffer of exactly n bytes. */
static const char *scan_exact(const char *sql, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, sql, n);
    const char *why = txn_pin_scan(copy, n);
    /* the quick look never rules out what pins */
    if (why != NULL && txn_pin_rules_out(copy, n))
        fail_msg("\"%.*s\": ruled out, but pins: %s", (int)n, sql, why);
    free(copy);
    return why;
}

static void expect_why(const char *sql, size_t n, const char *why)
{
    const char *got = scan_exact(sql, n);
    if (got == NULL && why == NULL)
        return;
    if (got == NULL || why == NULL || strcmp(got, why) != 0)
        fail_msg("\"%.*s\": %s%s%s, expected %s%s%s", (int)n, sql, got ? "\"" : "",
                 got ? got : "not pinned", got ? "\"" : "", why ? "\"" : "",
                 why ? why : "not pinned", why ? "\"" : "");
}

static void check_cases(const struct pin_case *cases, size_t count)
{
    for (size_t i = 0; i < count; i++)
        expect_why(cases[i].sql, strlen(cases[i].sql), cases[i].why);
}

#define CHECK_CASES(cases) check_cases((cases), sizeof(cases) / sizeof((cases)[0]))

static void test_set(void **state)
{
    (void)state;
    static const struct pin_case cases[] = {
        {"SET search_path = app", SET},
        {"set statement_timeout to 5000", SET},
        {"SET SESSION statement_timeout = 1", SET},
        {"SET SESSION AUTHORIZATION bob", SET},
        {"SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE", SET},
        {"SET ROLE admin", SET},
        {"SET TIME ZONE 'UTC'", SET},
        {"  /* c */ -- x\n\tSeT x.y = 1", SET},
        {"SET \"local\".x = 1", SET},
        {"SET", SET},
        {"SET;", SET},
        {"SET LOCAL search_path = app", NULL},
        {"set local x.y = 1", NULL},
        {"SET /* c */ Local x.y = 1", NULL},
        {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", NULL},
        {"SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", NULL},
        {"SET CONSTRAINTS ALL DEFERRED", NULL},
        {"UPDATE t SET a = 1", NULL},
        {"ALTER ROLE r SET search_path = app", NULL},
        {"CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = app AS 'select 1'", NULL},
        {"RESET search_path", NULL},
    };
    CHECK_CASES(cases);
}

static void test_set_config(void **state)
{
    (void)state;
    static const struct pin_case cases[] = {
        {"SELECT set_config('search_path', 'app', false)", SET_CONFIG},
        {"SELECT pg_catalog.set_config('a.b', 'c', false)", SET_CONFIG},
        {"SELECT set_config('a', 'b', $3)", SET_CONFIG},
        {"SELECT set_config('a', 'b', 'off')", SET_CONFIG},
        {"SELECT set_config('a', 'b', true::boolean)", SET_CONFIG},
        {"SELECT set_config('a', 'b', (true))", SET_CONFIG},
        {"SELECT set_config('a', 'b', \"true\")", SET_CONFIG},
        {"SELECT set_config('a', 'b')", SET_CONFIG},
        {"SELECT set_config", SET_CONFIG},
        {"SELECT set_config('a', 'b', true", SET_CONFIG},
        {"SELECT set_config('a', 'b', true; SELECT 1)", SET_CONFIG},
        {"SELECT \"set_config\"('a', 'b', false)", SET_CONFIG},
        {"SELECT set_config('a.b', 'c', true)", NULL},
        {"select SET_CONFIG ( 'a.b' , 'c' , TRUE ) ", NULL},
        {"SELECT pg_catalog.set_config('a.b', 'c', 't')", NULL},
        {"SELECT set_config('a.b', 'c', 'true')", NULL},
        {"SELECT set_config('a.b', 'c', 'ON')", NULL},
        {"SELECT set_config('a.b', 'c', $$true$$)", NULL},
        {"SELECT set_config('a', upper('b'), /* local */ true)", NULL},
        {"SELECT set_config('a', 'b', true); SELECT 1", NULL},
        {"SELECT \"SET_CONFIG\"('a', 'b', false)", NULL},
        {"SELECT my_set_config('a', 'b', false), set_config_x('a', 'b', false)", NULL},
        {"SELECT 'set_config(''a'', ''b'', false)'", NULL},
        /* several calls, nested calls */
        {"SELECT set_config('a', 'b', true), set_config('c', 'd', false)", SET_CONFIG},
        {"SELECT set_config('a', set_config('b', 'c', true), true)", NULL},
        {"SELECT set_config('a', set_config('b', 'c', false), true)", SET_CONFIG},
        {"SELECT set_config(set_config('b', 'c', true), 'x', false)", SET_CONFIG},
        /* the first reason in the text: set_config before what its call holds */
        {"SELECT set_config('a', (SELECT 'x' FROM pg_advisory_lock(1)), false)", SET_CONFIG},
        {"SELECT set_config('a', (SELECT 'x' FROM pg_advisory_lock(1)), true)", ADVISORY},
        {"SELECT set_config('a', 'b', true) FROM pg_advisory_lock(1)", ADVISORY},
        {"SELECT pg_advisory_lock(1), set_config('a', 'b', false)", ADVISORY},
    };
    CHECK_CASES(cases);
}

/* n set_config calls, each the second argument of the one around it, all local. */
static void test_set_config_nesting(void **state)
{
    (void)state;
    char sql[1024];
    for (int n = 1; n <= 12; n++) {
        size_t off = (size_t)snprintf(sql, sizeof(sql), "SELECT ");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(sql + off, sizeof(sql) - off, "set_config('a', ");
        off += (size_t)snprintf(sql + off, sizeof(sql) - off, "'b'");
        for (int i = 0; i < n; i++)
            off += (size_t)snprintf(sql + off, sizeof(sql) - off, ", true)");
        /* eight open calls are followed; a ninth inside them pins, to be safe */
        expect_why(sql, off, n <= 8 ? NULL : SET_CONFIG);
    }
}

static void test_temp(void **state)
{
    (void)state;
    static const struct pin_case cases[] = {
        {"CREATE TEMP TABLE t (a int)", TEMP},
        {"create temporary view v as select 1", TEMP},
        {"CREATE GLOBAL TEMPORARY TABLE t (a int)", TEMP},
        {"CREATE LOCAL TEMP TABLE t (a int)", TEMP},
        {"CREATE OR REPLACE TEMP VIEW v AS SELECT 1", TEMP},
        {"CREATE TEMP SEQUENCE s", TEMP},
        {"CREATE /* x */ Temp TABLE t AS SELECT 1", TEMP},
        {"SELECT * INTO TEMP t FROM u", TEMP},
        {"SELECT 1 AS a INTO TEMPORARY TABLE t", TEMP},
        {"SELECT 1 AS a INTO LOCAL TEMP t", TEMP},
        {"CREATE TABLE pg_temp.t (a int)", TEMP},
        {"CREATE FUNCTION PG_TEMP.f() RETURNS int LANGUAGE sql AS 'select 1'", TEMP},
        {"CREATE TABLE pg_temp_3.t (a int)", TEMP},
        {"SELECT 1 INTO pg_temp.t", TEMP},
        {"select pg_temp.f()", NULL},
        {"SELECT * FROM pg_temp_3.t", NULL},
        {"CREATE FUNCTION f() RETURNS int LANGUAGE sql SET search_path = app, pg_temp "
         "AS 'select 1'",
         NULL},
        {"CREATE TABLE pg_tempx.t (a int)", NULL},
        {"SELECT temp FROM weather WHERE temp > 20", NULL},
        {"CREATE TABLE temp (a int)", NULL},
        {"CREATE TABLE \"temp\" (a int)", NULL},
        {"CREATE \"TEMP\" TABLE t (a int)", NULL},
        {"CREATE /* TEMP */ TABLE t (a int)", NULL},
        {"SELECT 'CREATE TEMP TABLE x'", NULL},
        {"DISCARD TEMP", NULL},
        {"SELECT temp_buffers, temporary_x FROM t", NULL},
    };
    CHECK_CASES(cases);
}

static void test_listen_prepare_load(void **state)
{
    (void)state;
    static const struct pin_case cases[] = {
        {"LISTEN chan", LISTEN},
        {"LiStEn \"Chan\"", LISTEN},
        {"UNLISTEN chan", NULL},
        {"NOTIFY chan, 'LISTEN'", NULL},
        {"SELECT 'LISTEN x'", NULL},
        {"PREPARE q(int) AS SELECT $1", PREPARE},
        {"pReParE q AS SELECT 1", PREPARE},
        {"PREPARE \"transaction\" AS SELECT 1", PREPARE},
        {"PREPARE", PREPARE},
        {"PREPARE TRANSACTION 'gid'", NULL},
        {"prepare transaction 'gid'", NULL},
        {"COMMIT PREPARED 'gid'", NULL},
        {"EXECUTE q(1)", NULL},
        {"DEALLOCATE q", NULL},
        {"LOAD 'auto_explain'", LOAD},
        {"load '$libdir/plugins/x'", LOAD},
        {"SELECT load FROM t", NULL},
        {"(LISTEN x)", NULL},
    };
    CHECK_CASES(cases);
}

static void test_cursor_and_advisory(void **state)
{
    (void)state;
    static const struct pin_case cases[] = {
        {"DECLARE c CURSOR WITH HOLD FOR SELECT 1", HOLD},
        {"declare c no scroll cursor with /* x */ hold for select 1", HOLD},
        {"DECLARE c CURSOR FOR SELECT 1", NULL},
        {"DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", NULL},
        {"DECLARE c CURSOR WITH \"hold\" FOR SELECT 1", NULL},
        {"WITH hold AS (SELECT 1) SELECT * FROM hold", NULL},
        {"SELECT pg_advisory_lock(1)", ADVISORY},
        {"SELECT pg_advisory_lock_shared(1)", ADVISORY},
        {"SELECT pg_try_advisory_lock(1, 2)", ADVISORY},
        {"select PG_CATALOG.PG_TRY_ADVISORY_LOCK_SHARED(7)", ADVISORY},
        {"SELECT \"pg_advisory_lock\"(1)", ADVISORY},
        {"SELECT U&\"pg\\005fadvisory_lock\"(1)", ADVISORY},
        {"SELECT u&\"pg_\\0061dvisory_lock\"(1)", ADVISORY},
        {"SELECT U&\"set\\005fconfig\"('a', 'b', false)", SET_CONFIG},
        {"SELECT U&\"pg\\005fadvisory_xact_lock\"(1)", NULL},
        {"SELECT pg_advisory_xact_lock(1)", NULL},
        {"SELECT pg_advisory_xact_lock_shared(1)", NULL},
        {"SELECT pg_try_advisory_xact_lock(1), pg_try_advisory_xact_lock_shared(1)", NULL},
        {"SELECT pg_advisory_unlock(1), pg_advisory_unlock_all()", NULL},
        {"SELECT pg_advisory_lockx(1)", NULL},
        {"SELECT '-- pg_advisory_lock(1)'", NULL},
    };
    CHECK_CASES(cases);
}

static void test_statements(void **state)
{
    (void)state;
    static const struct pin_case cases[] = {
        {"SELECT 1; SET x = 1", SET},
        {"SELECT 1;SET x = 1;", SET},
        {"BEGIN; SET LOCAL x = 1; COMMIT", NULL},
        {"BEGIN; SET x = 1; COMMIT", SET},
        {"SELECT 'a;b'; LISTEN x", LISTEN},
        {"SELECT (1; LISTEN x)", LISTEN},
        {";;; LISTEN x", LISTEN},
        {"SELECT 1 -- ;\n LISTEN x", NULL},
        {"SELECT 1 /* ; */ LISTEN x", NULL},
        {"SELECT 1 -- x\n; LISTEN y", LISTEN},
        /* the first reason in the text */
        {"LISTEN a; SET x = 1", LISTEN},
        {"SET x = 1; LISTEN a", SET},
        {"SELECT pg_advisory_lock(1); CREATE TEMP TABLE t (a int)", ADVISORY},
        {"CREATE TEMP TABLE t (a int); SELECT pg_advisory_lock(1)", TEMP},
    };
    CHECK_CASES(cases);
}

/* What a keyword inside a string, identifier or comment must not do. */
static void test_lexing(void **state)
{
    (void)state;
    static const struct pin_case cases[] = {
        {"SELECT 'SET x = 1; LISTEN y'", NULL},
        {"SELECT 'it''s; LISTEN x'", NULL},
        {"SELECT E'\\'; LISTEN x'", NULL},
        {"SELECT e'a\\\\'; LISTEN x", LISTEN},
        {"SELECT 'a\\'; LISTEN x", LISTEN},
        {"SELECT typee'\\'; LISTEN x", LISTEN},
        {"SELECT 1ee'\\'; LISTEN x", LISTEN},
        {"SELECT $$; LISTEN x$$", NULL},
        {"SELECT $f$ $$; LISTEN x $g$ $f$", NULL},
        {"SELECT $f$x$f$; LISTEN y", LISTEN},
        {"SELECT $F$ $f$; LISTEN x $F$", NULL},
        {"SELECT $1; LISTEN x", LISTEN},
        /* $1 with a word run into it is one token, as the server reads it (and refuses it) */
        {"SELECT $1set_config('a', 'b', false)", NULL},
        {"SELECT $1, $12 FROM t WHERE a = $1$x$; LISTEN y$x$", NULL},
        {"SELECT a$$b; LISTEN x", LISTEN},
        {"SELECT 1$$; LISTEN x$$", NULL},
        {"SELECT $ a; LISTEN x", LISTEN},
        {"DO $$BEGIN PERFORM set_config('a', 'b', false); END$$", NULL},
        {"SELECT \"temp\", \"LISTEN\" FROM t", NULL},
        {"SELECT \"a\"\"; LISTEN x\"", NULL},
        {"SELECT U&'d\\0061t; LISTEN' AS U&\"x; LISTEN\"", NULL},
        {"SELECT B'1;', X'1F;', N'; LISTEN'", NULL},
        {"SELECT 1 -- ; LISTEN x", NULL},
        {"/* /* */ LISTEN x */ SELECT 1", NULL},
        {"/* /* */ */ LISTEN x", LISTEN},
        {"SELECT 1 /*/ ; LISTEN x */", NULL},
        {"SELECT 1 +-- c ;\n1; LISTEN x", LISTEN},
        {"/* unterminated; LISTEN x", NULL},
        {"SELECT 'unterminated; LISTEN x", NULL},
        {"SELECT E'unterminated\\", NULL},
        {"SELECT $$unterminated; LISTEN x", NULL},
        {"SELECT $t$ $T$ $t", NULL},
        {"SELECT \"unterminated; LISTEN x", NULL},
        {"SELECT é$$x; LISTEN y", LISTEN},
        {"\xc3\xa9 SET x = 1; LISTEN y", LISTEN},
        {"", NULL},
        {" \t\r\n\f\v", NULL},
    };
    CHECK_CASES(cases);
}

static void test_len_and_nul(void **state)
{
    (void)state;
    assert_null(txn_pin_scan(NULL, 0));
    expect_why("SELECT 1; LISTEN x", 9, NULL);
    expect_why("SELECT 1; LISTEN x", 16, LISTEN);
    expect_why("SELECT 1; LISTE", 15, NULL);
    expect_why("SELECT 'x'; LISTEN", 10, NULL);
    /* a NUL is an ordinary byte: inside a string, and between tokens */
    static const char nul_in_string[] = "SELECT '\0; LISTEN x'";
    expect_why(nul_in_string, sizeof(nul_in_string) - 1, NULL);
    static const char nul_then_listen[] = "SELECT '\0'; LISTEN x";
    expect_why(nul_then_listen, sizeof(nul_then_listen) - 1, LISTEN);
    static const char nul_first[] = "\0SET x = 1";
    expect_why(nul_first, sizeof(nul_first) - 1, NULL);
    static const char nul_mid_word[] = "SELECT pg_advisory\0lock(1); LO\0AD 'x'";
    expect_why(nul_mid_word, sizeof(nul_mid_word) - 1, NULL);
    static const char nul_between[] = "SELECT 1;\0\0; SET x = 1";
    expect_why(nul_between, sizeof(nul_between) - 1, SET);
    /* the result is a static string, the same one each time */
    const uint8_t *sql = (const uint8_t *)"LOAD 'x'";
    assert_ptr_equal(txn_pin_scan(sql, 8), txn_pin_scan(sql, 8));
}

static bool known_reason(const char *why)
{
    static const char *const reasons[] = {SET,     SET_CONFIG, TEMP,     LISTEN,
                                          PREPARE, HOLD,       ADVISORY, LOAD};
    if (why == NULL)
        return true;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (strcmp(why, reasons[i]) == 0)
            return true;
    return false;
}

/* Every prefix: no crash, no byte read past it, an answer that is one of the reasons. */
static void test_prefixes(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "/* a /* b */ c */ SELECT E'x\\'y', $t$ $$ $t$, \"q\"\"i\", $1 -- c\n; SET LOCAL a = 1;"
        " SET b = 2",
        "SELECT set_config('a', set_config('b', 'c', true), 'on'), pg_temp.f(); "
        "CREATE TEMP TABLE t AS SELECT 1 INTO pg_temp.x",
        "DECLARE c CURSOR WITH HOLD FOR SELECT U&'\\0061' FROM b'1', x'2', n'3'; "
        "PREPARE TRANSACTION 'x'; PREPARE q AS SELECT pg_try_advisory_lock_shared(1)",
        "select $a$ $a $a$a$; listen x; load 'y'; select 1e5, 1.5e-3, 1ee'\\'",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        size_t len = strlen(texts[i]);
        for (size_t n = 0; n <= len; n++) {
            const char *why = scan_exact(texts[i], n);
            if (!known_reason(why))
                fail_msg("\"%.*s\": unknown reason \"%s\"", (int)n, texts[i], why);
        }
    }
    expect_why(texts[0], strlen(texts[0]), SET);
    expect_why(texts[1], strlen(texts[1]), TEMP);
    expect_why(texts[2], strlen(texts[2]), HOLD);
    expect_why(texts[3], strlen(texts[3]), LISTEN);
}

/* Texts of a MB that would take very long if any part of the scan were quadratic. */
static void test_long(void **state)
{
    (void)state;
    size_t n = 1u << 20;
    char *big = malloc(n);
    assert_non_null(big);
    static const char *const units[] = {"set_config(", "((((",   "pg_temp /**/ ",
                                        "$$ ",         "/* /* ", "'a', "};
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        size_t ulen = strlen(units[u]);
        size_t len = 0;
        memcpy(big, "CREATE x INTO ", 14);
        for (len = 14; len + ulen <= n; len += ulen)
            memcpy(big + len, units[u], ulen);
        const char *why = scan_exact(big, len);
        assert_true(known_reason(why));
    }
    free(big);
}

/* The carried scan of sql: the pinning reason it returns, and whether it saw a change. */
static void expect_carried(const char *sql, const char *why, bool changes)
{
    bool got_changes = false;
    const char *got = txn_pin_scan_carried((const uint8_t *)sql, strlen(sql), &got_changes);
    if ((got != NULL || got_changes) && txn_pin_rules_out((const uint8_t *)sql, strlen(sql)))
        fail_msg("\"%s\": ruled out, but pins or changes", sql);
    bool same = got == NULL || why == NULL ? got == why : strcmp(got, why) == 0;
    if (!same || got_changes != changes)
        fail_msg("\"%s\": %s, changes %d; expected %s, changes %d", sql, got ? got : "no pin",
                 got_changes, why ? why : "no pin", changes);
}

/* The quick look: what it rules out without a scan, and what it must leave to the scan. */
static void test_quick_look(void **state)
{
    (void)state;
    static const char *const ruled_out[] = {
        "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;",
        "SELECT abalance FROM pgbench_accounts WHERE aid = $1",
        "UPDATE pgbench_accounts SET abalance = abalance + -4 WHERE aid = 7;",
        "UPDATE \"T\"\n\tSET a = 1 WHERE b = 2",
        "update t1 set a = $1 where b = 3",
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, now());",
        "BEGIN;",
        "END;",
        "SELECT b.offset, xlisten, preset FROM t a, u b /* c */",
    };
    for (size_t i = 0; i < sizeof(ruled_out) / sizeof(ruled_out[0]); i++)
        if (!txn_pin_rules_out((const uint8_t *)ruled_out[i], strlen(ruled_out[i])))
            fail_msg("\"%s\": not ruled out", ruled_out[i]);
    static const struct pin_case cases[] = {
        /* a SET after a name begins a statement when a line comment ends before it */
        {"SELECT 1; -- note\nSET work_mem = '1MB'", SET},
        {"SELECT 1; -- note\n  set work_mem = '1MB'", SET},
        {"UPDATE t SET a = 1; SET b = 2", SET},
        {"UPDATE t SET a = 1;/* c */SET b = 2", SET},
        {"UPDATE t SET a = 1 -- c\n", NULL},
        /* a word begins right after a dollar quote, a '$', a digit or a quote */
        {"SELECT $a$x$a$pg_advisory_lock(1)", ADVISORY},
        {"SELECT 1$$x$$; LISTEN y", LISTEN},
        {"SELECT \"pg_advisory_lock\"(1)", ADVISORY},
        {"SELECT x.\"set_config\"('a', 'b', false)", SET_CONFIG},
        {"SELECT 'a'||set_config('a', 'b', false)", SET_CONFIG},
        {"SeLeCt Pg_AdViSoRy_LoCk(1)", ADVISORY},
        {"select 1;LiStEn x", LISTEN},
        {"SELECT 'LISTEN x', $$SET x$$ /* pg_advisory_lock */ -- load\n", NULL},
        {"SELECT 1; SELECT 2; CREATE TEMPORARY TABLE t (a int)", TEMP},
        {"SELECT 1;\vSET x = 1", SET},
    };
    CHECK_CASES(cases);
    expect_carried("UPDATE t SET a = 1; -- c\nRESET ALL", NULL, true);
    expect_carried("UPDATE t SET a = 1; DiScArD ALL", NULL, true);
}

/*
 * The quick look reads eight bytes a step: a word begins after each byte
 * that ends one, wherever the step's edges fall, and only there.
 */
/*
 * The quick look against the scan's keyword table: each word it must find
 * is found, in either case, first or after a statement; each it need not
 * find is what the table says (ruled out after SELECT).  A word added to
 * the table alone fails here, not silently in a session that goes unpinned.
 */
static void test_quick_look_table(void **state)
{
    (void)state;
    bool looked_for;
    const char *word;
    for (size_t i = 0; (word = txn_pin_keyword(i, &looked_for)) != NULL; i++) {
        char text[3][64];
        snprintf(text[0], sizeof(text[0]), "%s x", word);
        snprintf(text[1], sizeof(text[1]), "SELECT 1; %s x", word);
        for (size_t j = 0; j <= strlen(word); j++) /* the longest has 27 letters */
            text[2][j] = (char)toupper((unsigned char)word[j]);
        for (size_t k = 0; looked_for && k < 3; k++)
            if (txn_pin_rules_out((const uint8_t *)text[k], strlen(text[k])))
                fail_msg("\"%s\": a word of the table, ruled out", text[k]);
        snprintf(text[0], sizeof(text[0]), "SELECT %s", word);
        if (!looked_for && !txn_pin_rules_out((const uint8_t *)text[0], strlen(text[0])))
            fail_msg("\"%s\": not looked for, yet not ruled out", text[0]);
    }
}

static void test_quick_look_steps(void **state)
{
    (void)state;
    char text[40];
    for (int b = 1; b < 256; b++) {
        bool goes_on = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b == '_' || b >= 0x80;
        for (size_t pad = 0; pad <= 17; pad++) {
            memset(text, 'x', pad);
            text[pad] = (char)b;
            memcpy(text + pad + 1, "listen y", 8);
            size_t n = pad + 9;
            uint8_t *copy = malloc(n);
            assert_non_null(copy);
            memcpy(copy, text, n);
            if (txn_pin_rules_out(copy, n) != goes_on)
                fail_msg("byte 0x%02x after %zu bytes: LISTEN %s", b, pad,
                         goes_on ? "found inside a word" : "not found");
            free(copy);
        }
    }
    /* a word at the text's very end, whatever its length */
    for (size_t pad = 0; pad <= 17; pad++) {
        memset(text, ' ', pad);
        memcpy(text + pad, "LiStEn", 6);
        uint8_t *copy = malloc(pad + 6);
        assert_non_null(copy);
        memcpy(copy, text, pad + 6);
        if (txn_pin_rules_out(copy, pad + 6))
            fail_msg("LISTEN after %zu blanks: ruled out", pad);
        free(copy);
    }
}

/* Settings, roles and SQL PREPAREs are carried; what lives on one server still pins. */
static void test_carried(void **state)
{
    (void)state;
    expect_carried("SELECT 1", NULL, false);
    expect_carried("SET search_path = a", NULL, true);
    expect_carried("set role alice", NULL, true);
    expect_carried("SET LOCAL x = 1", NULL, false);
    expect_carried("SELECT set_config('work_mem', '64MB', false)", NULL, true);
    expect_carried("SELECT set_config('a.b', 'c', true)", NULL, false);
    expect_carried("PREPARE p AS SELECT 1", NULL, true);
    expect_carried("RESET ALL", NULL, true);
    expect_carried("discard all", NULL, true);
    expect_carried("DEALLOCATE p", NULL, true);
    expect_carried("SELECT 1; RESET search_path", NULL, true);
    expect_carried("SELECT 'RESET'", NULL, false);
    /* A pin after a carried change in the same text is still found. */
    expect_carried("SET work_mem = 1; CREATE TEMP TABLE t (x int)", TEMP, true);
    expect_carried("SELECT set_config('work_mem', '1MB', false); LISTEN ch", LISTEN, true);
    expect_carried("SELECT set_config('a.b', pg_advisory_lock(1)::text, false)", ADVISORY, false);
    expect_carried("SELECT set_config(set_config('a', 'b', false), 'c', true), pg_advisory_lock(1)",
                   ADVISORY, true);
    expect_carried("DECLARE c CURSOR WITH HOLD FOR SELECT 1; SET x = 1", HOLD, false);
    /* Custom settings cannot be read back: they pin (the plain scan says SET, set_config). */
#define CUSTOM "a session-level custom setting (a name with a dot)"
    expect_carried("SET app.tenant = 'acme'", CUSTOM, false);
    expect_carried("set session \"app\".tenant to 'acme'", CUSTOM, true);
    expect_carried("SET LOCAL app.tenant = 'acme'", NULL, false);
    expect_carried("SET SESSION search_path = a", NULL, true);
    expect_carried("SET SESSION AUTHORIZATION DEFAULT", NULL, true);
    /* Another user cannot be carried: the session stays where it ran it (a primary's, near.h). */
    expect_carried("SET SESSION AUTHORIZATION bob", "SET SESSION AUTHORIZATION", true);
    expect_carried("set session authorization 'bob'; SELECT 1", "SET SESSION AUTHORIZATION", true);
    expect_carried("SELECT set_config('app.tenant', 'acme', false)", CUSTOM, false);
    expect_carried("SELECT set_config('app.tenant', 'acme', true)", NULL, false);
    expect_carried("SELECT set_config($1, $2, false)", CUSTOM, false);
    expect_carried("SELECT set_config('search' || '_path', 'a', false)", CUSTOM, false);
    expect_carried("SELECT set_config('work_mem', '64MB', false), set_config('a.b', 'c', true)",
                   NULL, true);
    expect_why("SET app.tenant = 'acme'", 23, SET);
    expect_why("SELECT set_config('app.tenant', 'acme', false)", 46, SET_CONFIG);
    /* The plain scan never counts RESET and the like. */
    expect_why("RESET ALL", 9, NULL);
    expect_why("DISCARD ALL", 11, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_set_config),
        cmocka_unit_test(test_set_config_nesting),
        cmocka_unit_test(test_temp),
        cmocka_unit_test(test_listen_prepare_load),
        cmocka_unit_test(test_cursor_and_advisory),
        cmocka_unit_test(test_statements),
        cmocka_unit_test(test_lexing),
        cmocka_unit_test(test_len_and_nul),
        cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_long),
        cmocka_unit_test(test_carried),
        cmocka_unit_test(test_quick_look),
        cmocka_unit_test(test_quick_look_steps),
        cmocka_unit_test(test_quick_look_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
