/*
 * test_listen_sql.c
 *    Unit tests for protocol/listen_sql.c (cmocka, TAP output): LISTEN,
 *    UNLISTEN and UNLISTEN * read as the server reads them (folded and
 *    quoted names, comments, empty statements), and the texts left to the
 *    server (other statements, names it would truncate, reserved words, U& names, an
 *    unterminated quote), every prefix of one copied to a buffer of exactly
 *    its length for the sanitizer to watch.
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

#include "protocol/listen_sql.h"

static struct listen_op ops[LISTEN_SQL_OPS_MAX];

static size_t parse(const char *text)
{
    return listen_sql_parse(text, strlen(text), ops, LISTEN_SQL_OPS_MAX);
}

static void test_listen_folded(void **state)
{
    (void)state;
    assert_int_equal(parse("LISTEN Jobs"), 1);
    assert_int_equal(ops[0].kind, LISTEN_OP_LISTEN);
    assert_string_equal(ops[0].channel, "jobs");
    assert_int_equal(parse("  listen\tjobs_2$x ;"), 1);
    assert_string_equal(ops[0].channel, "jobs_2$x");
}

static void test_listen_quoted(void **state)
{
    (void)state;
    assert_int_equal(parse("LISTEN \"Jobs\"\"Q\""), 1);
    assert_string_equal(ops[0].channel, "Jobs\"Q");
    assert_int_equal(parse("LISTEN \"with space\";"), 1);
    assert_string_equal(ops[0].channel, "with space");
}

static void test_several(void **state)
{
    (void)state;
    assert_int_equal(parse("/* c */ LISTEN a; -- x\n UNLISTEN b;; UNLISTEN *;"), 3);
    assert_int_equal(ops[0].kind, LISTEN_OP_LISTEN);
    assert_string_equal(ops[0].channel, "a");
    assert_int_equal(ops[1].kind, LISTEN_OP_UNLISTEN);
    assert_string_equal(ops[1].channel, "b");
    assert_int_equal(ops[2].kind, LISTEN_OP_UNLISTEN_ALL);
    assert_string_equal(ops[2].channel, "");
}

static void test_left_to_the_server(void **state)
{
    (void)state;
    assert_int_equal(parse(""), 0);
    assert_int_equal(parse(";"), 0);
    assert_int_equal(parse("-- nothing"), 0);
    assert_int_equal(parse("LISTEN"), 0);
    assert_int_equal(parse("LISTEN a b"), 0);
    assert_int_equal(parse("LISTEN *"), 0);
    assert_int_equal(parse("LISTEN 'a'"), 0);
    assert_int_equal(parse("LISTEN \"\""), 0);
    assert_int_equal(parse("LISTEN U&\"a\""), 0);
    assert_int_equal(parse("LISTEN \"open"), 0);
    assert_int_equal(parse("LISTEN a; SELECT 1"), 0);
    assert_int_equal(parse("NOTIFY a"), 0);
    assert_int_equal(parse("BEGIN; LISTEN a; COMMIT"), 0);
    assert_int_equal(parse("LISTEN a.b"), 0);
    assert_int_equal(parse("LISTEN 1a"), 0);
    assert_int_equal(parse("LISTEN select"), 0); /* reserved: the server's syntax error */
    assert_int_equal(parse("UNLISTEN User"), 0);
    assert_int_equal(parse("LISTEN \"select\""), 1); /* quoted, a name */
    assert_int_equal(parse("LISTEN name"), 1);       /* unreserved keywords are names */
    /* 63 bytes are read; 64 the server truncates, with a NOTICE */
    char text[100];
    snprintf(text, sizeof(text), "LISTEN %.*s", 63,
             "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij");
    assert_int_equal(parse(text), 1);
    assert_int_equal(strlen(ops[0].channel), 63);
    snprintf(text, sizeof(text), "LISTEN %.*s", 64,
             "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij");
    assert_int_equal(parse(text), 0);
}

static void test_too_many(void **state)
{
    (void)state;
    char text[2048] = "";
    for (int i = 0; i <= LISTEN_SQL_OPS_MAX; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "LISTEN c%d;", i);
    assert_int_equal(parse(text), 0);
    struct listen_op few[2];
    assert_int_equal(listen_sql_parse("LISTEN a; LISTEN b", 18, few, 2), 2);
    assert_int_equal(listen_sql_parse("LISTEN a; LISTEN b; LISTEN c", 28, few, 2), 0);
}

static void test_prefixes(void **state)
{
    (void)state;
    const char *text = "LISTEN \"a\"\"b\"; /* x */ UNLISTEN c; UNLISTEN *";
    size_t len = strlen(text);
    for (size_t n = 0; n <= len; n++) {
        char *copy = malloc(n > 0 ? n : 1);
        assert_non_null(copy);
        memcpy(copy, text, n);
        (void)listen_sql_parse(copy, n, ops, LISTEN_SQL_OPS_MAX);
        free(copy);
    }
}

static void test_unlistens(void **state)
{
    (void)state;
    struct listen_op u[8];
    const char *reset = "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;";
    assert_int_equal(listen_sql_unlistens(reset, strlen(reset), u, 8), 1);
    assert_int_equal(u[0].kind, LISTEN_OP_UNLISTEN_ALL);
    const char *mixed = "BEGIN; unlisten \"A\"; SELECT 'UNLISTEN x'; /* UNLISTEN y */ LISTEN z; "
                        "Discard All; DISCARD TEMP; UNLISTEN b c; UNLISTEN d";
    assert_int_equal(listen_sql_unlistens(mixed, strlen(mixed), u, 8), 3);
    assert_int_equal(u[0].kind, LISTEN_OP_UNLISTEN);
    assert_string_equal(u[0].channel, "A");
    assert_int_equal(u[1].kind, LISTEN_OP_DISCARD_ALL);
    assert_int_equal(u[2].kind, LISTEN_OP_UNLISTEN);
    assert_string_equal(u[2].channel, "d");
    assert_int_equal(listen_sql_unlistens(mixed, strlen(mixed), u, 1), 1); /* more left out */
    assert_int_equal(listen_sql_unlistens("SELECT 1", 8, u, 8), 0);
    assert_true(listen_sql_may_unlisten(mixed, strlen(mixed)));
    assert_true(listen_sql_may_unlisten("discard all", 11));
    assert_false(listen_sql_may_unlisten("LISTEN a; SELECT 1", 18));
    assert_false(listen_sql_may_unlisten("UNLISTE", 7));
}

/*
 * listen_sql_may_begin never says no to a first byte that listen_sql_parse
 * reads as LISTEN or UNLISTEN: each byte before the rest of a statement,
 * of a keyword, or of a comment; every blank the lexer skips included.
 */
static void test_may_begin(void **state)
{
    (void)state;
    static const char *const rests[] = {"LISTEN a",        "ISTEN a",       "NLISTEN a",
                                        "* x */ LISTEN a", "- x\nLISTEN a", "; LISTEN a"};
    struct listen_op read[2];
    for (int c = 0; c < 256; c++)
        for (size_t i = 0; i < sizeof(rests) / sizeof(rests[0]); i++) {
            char text[32];
            size_t len = strlen(rests[i]);
            text[0] = (char)c;
            memcpy(text + 1, rests[i], len);
            if (listen_sql_parse(text, len + 1, read, 2) > 0 && !listen_sql_may_begin((uint8_t)c))
                fail_msg("byte 0x%02x before \"%s\" is read, but may_begin says no", c, rests[i]);
        }
    assert_true(listen_sql_may_begin('\f'));
    assert_true(listen_sql_may_begin('\v'));
    assert_false(listen_sql_may_begin('S'));
    assert_false(listen_sql_may_begin('\0'));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_folded), cmocka_unit_test(test_listen_quoted),
        cmocka_unit_test(test_several),       cmocka_unit_test(test_left_to_the_server),
        cmocka_unit_test(test_too_many),      cmocka_unit_test(test_prefixes),
        cmocka_unit_test(test_unlistens),     cmocka_unit_test(test_may_begin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
