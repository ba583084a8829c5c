/*
 * test_sql_split.c
 *    Unit tests for proxy/migrate/sql_split.c (cmocka, TAP output): every
 *    quoting form with semicolons inside, comment nesting, dollar tags
 *    against $1 and words, E'' strings, parentheses and BEGIN ATOMIC
 *    bodies, offsets and line numbers, empty statements, unterminated
 *    constructs, NUL bytes, meta-commands and the limits.
 *
 *    psql_cases is a table of scripts with the statements psql 15 sends
 *    for them.  It was made by running each script through psql 15.18
 *    (psql -X -f) against a PostgreSQL 15 server with log_statement =
 *    'all' and comparing the logged texts with the splitter's: every
 *    statement matched, with psql's leading comments, trailing comments
 *    and ';' taken off, and psql's empty statements (only comments) left
 *    out, as sql_split drops them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/migrate/sql_split.h"

struct psql_case {
    const char *name;
    const char *script;
    const char *stmts[6]; /* as psql sends them, NULL after the last */
};

static const struct psql_case psql_cases[] = {
    {"two statements", "SELECT 1; SELECT 2;\n", {"SELECT 1", "SELECT 2"}},
    {"no final semicolon", "SELECT 1;\nSELECT 2\n", {"SELECT 1", "SELECT 2"}},
    {"empty statements", ";;; SELECT 1;;\n;\n", {"SELECT 1"}},
    {"comments only", "-- a\n/* b */\n;\n/* c */ -- d\n", {NULL}},
    {"semicolon in a string", "SELECT 'a;b';\n", {"SELECT 'a;b'"}},
    {"doubled quote", "SELECT 'it''s; here';  SELECT 2;\n", {"SELECT 'it''s; here'", "SELECT 2"}},
    {"backslash in a standard string", "SELECT 'a\\'; SELECT 2;\n", {"SELECT 'a\\'", "SELECT 2"}},
    {"E string escaped quote", "SELECT E'a\\';b'; SELECT 2;\n", {"SELECT E'a\\';b'", "SELECT 2"}},
    {"e string escaped backslash", "select e'\\\\'; select 2;\n", {"select e'\\\\'", "select 2"}},
    {"E string doubled quote", "SELECT E'x''; y'; SELECT 3;\n", {"SELECT E'x''; y'", "SELECT 3"}},
    {"E only at a token start", "SELECT abe'\\'; SELECT 1;\n", {"SELECT abe'\\'", "SELECT 1"}},
    {"quoted identifier",
     "SELECT 1 AS \"a;b\"; SELECT 2 AS \"a\"\";b\";\n",
     {"SELECT 1 AS \"a;b\"", "SELECT 2 AS \"a\"\";b\""}},
    {"U& strings and identifiers",
     "SELECT U&'d\\0061t\\+000061;' AS U&\"a;b\"; SELECT 2;\n",
     {"SELECT U&'d\\0061t\\+000061;' AS U&\"a;b\"", "SELECT 2"}},
    {"bit hex national strings",
     "SELECT B'101', X'1F', N'a;b'; SELECT 2;\n",
     {"SELECT B'101', X'1F', N'a;b'", "SELECT 2"}},
    {"dollar quote", "SELECT $$a;b$$; SELECT 2;\n", {"SELECT $$a;b$$", "SELECT 2"}},
    {"tagged dollar quote",
     "SELECT $fn$ $$ ; $x$ $fn$; SELECT 2;\n",
     {"SELECT $fn$ $$ ; $x$ $fn$", "SELECT 2"}},
    {"tag with digits and underscore",
     "SELECT $_1$;$_1$; SELECT 2;\n",
     {"SELECT $_1$;$_1$", "SELECT 2"}},
    {"parameter not a tag",
     "PREPARE p(int) AS SELECT $1; EXECUTE p(1);\n",
     {"PREPARE p(int) AS SELECT $1", "EXECUTE p(1)"}},
    {"parameter then dollar quote",
     "SELECT $1$x$;$x$; SELECT 2;\n",
     {"SELECT $1$x$;$x$", "SELECT 2"}},
    {"dollar inside a word", "SELECT 1 AS a$$b; SELECT 2;\n", {"SELECT 1 AS a$$b", "SELECT 2"}},
    {"dollar right after a keyword", "SELECT$$a;b$$;\n", {"SELECT$$a", "b$$"}},
    {"lone dollar", "SELECT $a b; SELECT 2;\n", {"SELECT $a b", "SELECT 2"}},
    {"tags are case sensitive",
     "SELECT $A$ $a$ ; $A$; SELECT 2;\n",
     {"SELECT $A$ $a$ ; $A$", "SELECT 2"}},
    {"a longer tag is another tag",
     "SELECT $ab$ $a$ ; $ab$; SELECT 2;\n",
     {"SELECT $ab$ $a$ ; $ab$", "SELECT 2"}},
    {"tag starting with a digit",
     "SELECT $1a$ x $1a$; SELECT 2;\n",
     {"SELECT $1a$ x $1a$", "SELECT 2"}},
    {"non-ASCII word with dollars",
     "SELECT 1 AS é$$x; SELECT 2;\n",
     {"SELECT 1 AS é$$x", "SELECT 2"}},
    {"line comment hides semicolon",
     "SELECT 1 -- ; not here\n; SELECT 2;\n",
     {"SELECT 1", "SELECT 2"}},
    {"quote in a line comment", "SELECT 1; -- it's\nSELECT 2;\n", {"SELECT 1", "SELECT 2"}},
    {"nested block comments",
     "/* a /* b; */ c; */ SELECT 1; SELECT 2 /* ; */;\n",
     {"SELECT 1", "SELECT 2"}},
    {"star after a comment",
     "SELECT 1 /* x */* 2; SELECT 3;\n",
     {"SELECT 1 /* x */* 2", "SELECT 3"}},
    {"slash star slash", "/*/ ; */ SELECT 1;\n", {"SELECT 1"}},
    {"comment start inside an operator",
     "SELECT 1 +-- c ;\n1; SELECT 2;\n",
     {"SELECT 1 +-- c ;\n1", "SELECT 2"}},
    {"parentheses hold semicolons", "SELECT (1;2); SELECT 3;\n", {"SELECT (1;2)", "SELECT 3"}},
    {"stray closing parenthesis", "SELECT 1); SELECT 2;\n", {"SELECT 1)", "SELECT 2"}},
    {"BEGIN ATOMIC function",
     "CREATE FUNCTION f1() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT "
     "2;\nEND;\nSELECT f1();\n",
     {"CREATE FUNCTION f1() RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT 2;\nEND",
      "SELECT f1()"}},
    {"CASE inside BEGIN ATOMIC",
     "CREATE OR REPLACE PROCEDURE p1(x int) LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 "
     "THEN 1 ELSE 2 END;\n  SELECT 3;\nEND;\nCALL p1(1);\n",
     {"CREATE OR REPLACE PROCEDURE p1(x int) LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 "
      "THEN 1 ELSE 2 END;\n  SELECT 3;\nEND",
      "CALL p1(1)"}},
    {"plpgsql body in dollars",
     "CREATE FUNCTION f2() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$;\nSELECT "
     "f2();\n",
     {"CREATE FUNCTION f2() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END; $$",
      "SELECT f2()"}},
    {"transaction BEGIN is not a body", "BEGIN; SELECT 1; END;\n", {"BEGIN", "SELECT 1", "END"}},
    {"CASE outside BEGIN",
     "CREATE FUNCTION f3(x int) RETURNS int LANGUAGE sql RETURN CASE WHEN x > 0 THEN 1 END; SELECT "
     "f3(1);\n",
     {"CREATE FUNCTION f3(x int) RETURNS int LANGUAGE sql RETURN CASE WHEN x > 0 THEN 1 END",
      "SELECT f3(1)"}},
    {"parentheses inside a body",
     "create function f4() returns int language sql begin atomic select (1); select 2; end; select "
     "f4();\n",
     {"create function f4() returns int language sql begin atomic select (1); select 2; end",
      "select f4()"}},
    {"quoted begin is not a keyword",
     "CREATE FUNCTION f5() RETURNS int LANGUAGE sql RETURN 1 AS \"begin\"; SELECT 1;\n",
     {"CREATE FUNCTION f5() RETURNS int LANGUAGE sql RETURN 1 AS \"begin\"", "SELECT 1"}},
    {"DO block",
     "DO $$BEGIN PERFORM 1; END$$; SELECT 1;\n",
     {"DO $$BEGIN PERFORM 1; END$$", "SELECT 1"}},
    {"number with letters", "SELECT 1ee'\\'; SELECT 2;\n", {"SELECT 1ee'\\'", "SELECT 2"}},
    {"CRLF", "SELECT 1;\r\nSELECT 'x;\r\ny';\r\n", {"SELECT 1", "SELECT 'x;\r\ny'"}},
    {"multi-line string",
     "SELECT 'multi\nline;\nstring'; SELECT 2;\n",
     {"SELECT 'multi\nline;\nstring'", "SELECT 2"}},
    {"psql variable syntax", "SELECT :'x'; SELECT 2;\n", {"SELECT :'x'", "SELECT 2"}},
    {"trailing blanks", "SELECT 1;   \n\n\n", {"SELECT 1"}},
    {"semicolons everywhere", "SELECT ';' AS \"x;\" /* ; */ -- ;\n;\n", {"SELECT ';' AS \"x;\""}},
    {"E string with backslash newline",
     "SELECT E'\\\n;'; SELECT 1;\n",
     {"SELECT E'\\\n;'", "SELECT 1"}},
    {"tab and form feed", "\tSELECT 1;\fSELECT 2;\n", {"SELECT 1", "SELECT 2"}},
    {"trigger executing a function is not a body",
     "CREATE TABLE t6 (x int);\nCREATE FUNCTION f6() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN "
     "RETURN NEW; END$$;\nCREATE TRIGGER t6 BEFORE INSERT ON t6 FOR EACH ROW EXECUTE FUNCTION "
     "f6();\nINSERT INTO t6 VALUES (1);\n",
     {"CREATE TABLE t6 (x int)",
      "CREATE FUNCTION f6() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
      "CREATE TRIGGER t6 BEFORE INSERT ON t6 FOR EACH ROW EXECUTE FUNCTION f6()",
      "INSERT INTO t6 VALUES (1)"}},
};

static struct sql_script script;
static struct sql_split_error err;

static int split_n(const char *text, size_t len, sql_comment_fn on_comment, void *ctx)
{
    sql_script_free(&script);
    return sql_split(text, len, &script, &err, on_comment, ctx);
}

static int split(const char *text)
{
    return split_n(text, strlen(text), NULL, NULL);
}

/* The statement i of text as a new string. */
static char *stmt_text(const char *text, size_t i)
{
    static char buf[4096];
    assert_true(i < script.count);
    assert_true(script.stmts[i].length < sizeof(buf));
    memcpy(buf, text + script.stmts[i].offset, script.stmts[i].length);
    buf[script.stmts[i].length] = '\0';
    return buf;
}

/* text splits into exactly the statements given (NULL-terminated). */
static void expect_split(const char *text, const char *const *stmts)
{
    int rc = split(text);
    if (rc != SQL_SPLIT_OK)
        fail_msg("\"%s\": %d line %u %s", text, rc, err.line, err.message);
    size_t n = 0;
    while (stmts[n] != NULL)
        n++;
    if (script.count != n)
        fail_msg("\"%s\": %zu statements, expected %zu", text, script.count, n);
    for (size_t i = 0; i < n; i++)
        if (strcmp(stmt_text(text, i), stmts[i]) != 0)
            fail_msg("\"%s\": statement %zu is \"%s\", expected \"%s\"", text, i + 1,
                     stmt_text(text, i), stmts[i]);
}

#define EXPECT_SPLIT(text, ...)                                                                    \
    do {                                                                                           \
        const char *const expected_[] = {__VA_ARGS__, NULL};                                       \
        expect_split((text), expected_);                                                           \
    } while (0)

static void expect_error(const char *text, int code, unsigned line, const char *message_part)
{
    int rc = split(text);
    if (rc != code)
        fail_msg("\"%s\": %d (%s), expected %d", text, rc, err.message, code);
    if (err.line != line)
        fail_msg("\"%s\": error at line %u, expected %u", text, err.line, line);
    if (strstr(err.message, message_part) == NULL)
        fail_msg("\"%s\": \"%s\" does not say \"%s\"", text, err.message, message_part);
}

static void test_psql_equivalence(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(psql_cases) / sizeof(psql_cases[0]); i++) {
        print_message("# %s\n", psql_cases[i].name);
        expect_split(psql_cases[i].script, psql_cases[i].stmts);
    }
}

static void test_quotes(void **state)
{
    (void)state;
    EXPECT_SPLIT("select ';'", "select ';'");
    EXPECT_SPLIT("select '';select ''''", "select ''", "select ''''");
    EXPECT_SPLIT("select 'a\\';select 2", "select 'a\\'", "select 2");
    EXPECT_SPLIT("select E'\\';'", "select E'\\';'");
    EXPECT_SPLIT("select E'\\'';x", "select E'\\''", "x");
    EXPECT_SPLIT("select e'\\\\';select 2", "select e'\\\\'", "select 2");
    EXPECT_SPLIT("select E'\\\\\\';';x", "select E'\\\\\\';'", "x");
    EXPECT_SPLIT("select \"a;\"\";\"", "select \"a;\"\";\"");
    EXPECT_SPLIT("select u&\"a;\", U&'b;';x", "select u&\"a;\", U&'b;'", "x");
    EXPECT_SPLIT("select x'a;', B'1;', n'2;'", "select x'a;', B'1;', n'2;'");
    /* a word ending in E, then a standard string */
    EXPECT_SPLIT("select typee'\\';2", "select typee'\\'", "2");
    /* quotes in comments are not quotes */
    EXPECT_SPLIT("select 1 -- it's\n;select \"2\" /* \" */", "select 1", "select \"2\"");
}

static void test_dollar_quotes(void **state)
{
    (void)state;
    EXPECT_SPLIT("select $$;$$;x", "select $$;$$", "x");
    EXPECT_SPLIT("select $f$ $$ ; $g$ $f$;x", "select $f$ $$ ; $g$ $f$", "x");
    EXPECT_SPLIT("select $_a1$;$_a1$;x", "select $_a1$;$_a1$", "x");
    EXPECT_SPLIT("select $é$;$é$;x", "select $é$;$é$", "x");
    /* the closing tag must be the same, case and length */
    EXPECT_SPLIT("select $T$ $t$; $tt$; $T$;x", "select $T$ $t$; $tt$; $T$", "x");
    /* $1 is a parameter, $1$ not a tag; $x$ after it opens one */
    EXPECT_SPLIT("select $1;select $12", "select $1", "select $12");
    EXPECT_SPLIT("select $1$x$;$x$;y", "select $1$x$;$x$", "y");
    /* a '$' in a word is part of the word */
    EXPECT_SPLIT("select a$$b;select c$d$;x", "select a$$b", "select c$d$", "x");
    EXPECT_SPLIT("select$$a;b$$", "select$$a", "b$$");
    /* a number ends before a '$' */
    EXPECT_SPLIT("select 1$$;$$;x", "select 1$$;$$", "x");
    /* a '$' that opens nothing */
    EXPECT_SPLIT("select $;select $a b;select $", "select $", "select $a b", "select $");
    /* the tag of the closing quote may follow the body at once */
    EXPECT_SPLIT("select $a$x$a$;y", "select $a$x$a$", "y");
    EXPECT_SPLIT("select $a$$$a$;y", "select $a$$$a$", "y");
}

static void test_comments(void **state)
{
    (void)state;
    EXPECT_SPLIT("/* a /* b; */ c; */ select 1", "select 1");
    EXPECT_SPLIT("select /* /* /* ; */ */ */ 1; x", "select /* /* /* ; */ */ */ 1", "x");
    EXPECT_SPLIT("select 1 /**/;x", "select 1", "x");
    EXPECT_SPLIT("select 1 /*/ ; */;x", "select 1", "x");
    EXPECT_SPLIT("select 2 /* */* 3;x", "select 2 /* */* 3", "x");
    EXPECT_SPLIT("select 1 -- ; /*\n;x", "select 1", "x");
    EXPECT_SPLIT("select 1 --", "select 1");
    EXPECT_SPLIT("select 4 / 2 /", "select 4 / 2 /");
    EXPECT_SPLIT("select 1 /* -- */;x", "select 1", "x");
    EXPECT_SPLIT("select 1 +-- c\n1", "select 1 +-- c\n1");
    EXPECT_SPLIT("select 4 /-- c\n2", "select 4 /-- c\n2");
    EXPECT_SPLIT("select $$--$$;select '/*'", "select $$--$$", "select '/*'");
}

static void test_parentheses_and_bodies(void **state)
{
    (void)state;
    EXPECT_SPLIT("select (1;(2;)3);x", "select (1;(2;)3)", "x");
    EXPECT_SPLIT("select 1);x", "select 1)", "x");
    EXPECT_SPLIT(
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; "
        "END; SELECT 3",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
        "SELECT 3");
    EXPECT_SPLIT("create or replace procedure p() begin atomic select case when true then 1 "
                 "end; end;x",
                 "create or replace procedure p() begin atomic select case when true then 1 end; "
                 "end",
                 "x");
    /* only CREATE [OR REPLACE] FUNCTION|PROCEDURE statements have bodies */
    EXPECT_SPLIT("begin; select 1; end;", "begin", "select 1", "end");
    EXPECT_SPLIT("create table t (begin int); select 1", "create table t (begin int)", "select 1");
    EXPECT_SPLIT("create or replace view v as select 1 as begin; select 2",
                 "create or replace view v as select 1 as begin", "select 2");
    /* CASE counts only inside a body */
    EXPECT_SPLIT("create function f(x int) returns int return case when x > 0 then 1 end; x",
                 "create function f(x int) returns int return case when x > 0 then 1 end", "x");
    /* BEGIN in parentheses or quotes does not open a body */
    EXPECT_SPLIT("create function f(begin int) returns int as 'begin'; x",
                 "create function f(begin int) returns int as 'begin'", "x");
    EXPECT_SPLIT("create function \"begin\"() returns int return 1; x",
                 "create function \"begin\"() returns int return 1", "x");
    /* a body that nests */
    EXPECT_SPLIT("create procedure p() begin atomic begin; end; end; x",
                 "create procedure p() begin atomic begin; end; end", "x");
    /* the words are counted afresh after a ';' */
    EXPECT_SPLIT("select 1; create function f() begin atomic select 1; end; x", "select 1",
                 "create function f() begin atomic select 1; end", "x");
}

static void test_offsets_and_lines(void **state)
{
    (void)state;
    const char *text = "-- header\n"         /* line 1 */
                       "\n"                  /* 2 */
                       "SELECT 1; SELECT\n"  /* 3 */
                       "  2;\n"              /* 4 */
                       "/* a\n"              /* 5 */
                       "   b */ SELECT 'x\n" /* 6 */
                       "y'; ;\n"             /* 7 */
                       "\n"                  /* 8 */
                       "SELECT $$\n"         /* 9 */
                       "$$";                 /* 10 */
    assert_int_equal(split(text), SQL_SPLIT_OK);
    assert_int_equal(script.count, 4);
    assert_int_equal(script.stmts[0].offset, 11);
    assert_int_equal(script.stmts[0].length, 8);
    assert_int_equal(script.stmts[0].line, 3);
    assert_int_equal(script.stmts[1].offset, 21);
    assert_string_equal(stmt_text(text, 1), "SELECT\n  2");
    assert_int_equal(script.stmts[1].line, 3);
    assert_string_equal(stmt_text(text, 2), "SELECT 'x\ny'");
    assert_int_equal(script.stmts[2].line, 6);
    assert_string_equal(stmt_text(text, 3), "SELECT $$\n$$");
    assert_int_equal(script.stmts[3].line, 9);
    /* CR LF endings count the same lines */
    assert_int_equal(split("\r\n\r\nSELECT 1;\r\nSELECT 2\r\n"), SQL_SPLIT_OK);
    assert_int_equal(script.stmts[0].line, 3);
    assert_int_equal(script.stmts[1].line, 4);
    assert_string_equal(stmt_text("\r\n\r\nSELECT 1;\r\nSELECT 2\r\n", 1), "SELECT 2");
}

static void test_empty(void **state)
{
    (void)state;
    const char *const none[] = {NULL};
    expect_split("", none);
    expect_split(" \t\r\n\f\v", none);
    expect_split(";;;", none);
    expect_split("-- x\n/* y */;\n-- z", none);
    expect_split("/* a */ ; /* b */", none);
    assert_int_equal(split_n(NULL, 0, NULL, NULL), SQL_SPLIT_OK);
    assert_int_equal(script.count, 0);
    /* only len bytes are read */
    const char *text = "SELECT 1; SELECT 2";
    assert_int_equal(split_n(text, 8, NULL, NULL), SQL_SPLIT_OK);
    assert_int_equal(script.count, 1);
    assert_int_equal(script.stmts[0].length, 8);
    /* a ' beyond len is not read */
    assert_int_equal(split_n("x 'abc'", 3, NULL, NULL), SQL_SPLIT_UNTERMINATED);
}

static void test_unterminated(void **state)
{
    (void)state;
    expect_error("select 1;\nselect 'a;\n\n", SQL_SPLIT_UNTERMINATED, 2, "quoted string");
    expect_error("select 'it''", SQL_SPLIT_UNTERMINATED, 1, "quoted string");
    expect_error("\n\nselect E'a\\'", SQL_SPLIT_UNTERMINATED, 3, "quoted string");
    expect_error("select E'a\\", SQL_SPLIT_UNTERMINATED, 1, "quoted string");
    expect_error("select 1 as \"a\n\n", SQL_SPLIT_UNTERMINATED, 1, "quoted identifier");
    expect_error("select U&\"a", SQL_SPLIT_UNTERMINATED, 1, "quoted identifier");
    expect_error("select 1;\n\nselect $$\n;", SQL_SPLIT_UNTERMINATED, 3, "dollar-quoted");
    expect_error("select $t$ $T$ $t", SQL_SPLIT_UNTERMINATED, 1, "dollar-quoted");
    expect_error("select 1;\n/* a */ /* b /* c */\n", SQL_SPLIT_UNTERMINATED, 2, "/* comment");
    expect_error("select 1 /*/", SQL_SPLIT_UNTERMINATED, 1, "/* comment");
    expect_error("select (1,\n(2);\nselect 3;", SQL_SPLIT_UNTERMINATED, 1, "parentheses");
    expect_error("select 1;\nselect ((1)\n", SQL_SPLIT_UNTERMINATED, 2, "parentheses");
    expect_error("create function f() begin atomic\nselect 1;\n", SQL_SPLIT_UNTERMINATED, 1,
                 "BEGIN");
    expect_error("\ncreate procedure p()\nbegin atomic select case when true then 1 end;\n",
                 SQL_SPLIT_UNTERMINATED, 3, "BEGIN");
}

static void test_refused(void **state)
{
    (void)state;
    char with_nul[] = "select 1;\nselect '\0';";
    assert_int_equal(split_n(with_nul, sizeof(with_nul) - 1, NULL, NULL), SQL_SPLIT_NUL);
    assert_int_equal(err.line, 2);
    expect_error("select 1;\n\\set x 1\n", SQL_SPLIT_META_COMMAND, 2, "meta-command");
    expect_error("select 1 \\; select 2", SQL_SPLIT_META_COMMAND, 1, "meta-command");
    /* backslashes where they are text are fine */
    EXPECT_SPLIT("select '\\', $$\\$$, \"\\\" -- \\\n/* \\ */", "select '\\', $$\\$$, \"\\\"");
}

static void test_limits(void **state)
{
    (void)state;
    size_t n = (size_t)SQL_SPLIT_MAX_BYTES + 1;
    char *big = malloc(n);
    assert_non_null(big);
    memset(big, ' ', n);
    memcpy(big, "select 1", 8);
    assert_int_equal(split_n(big, n, NULL, NULL), SQL_SPLIT_TOO_LARGE);
    assert_non_null(strstr(err.message, "bytes"));
    assert_int_equal(split_n(big, n - 1, NULL, NULL), SQL_SPLIT_OK);
    assert_int_equal(script.count, 1);
    free(big);

    size_t count = SQL_SPLIT_MAX_STATEMENTS;
    char *many = malloc(count * 3 + 2);
    assert_non_null(many);
    for (size_t i = 0; i < count; i++)
        memcpy(many + 3 * i, i % 1000 == 999 ? "x;\n" : "x; ", 3);
    assert_int_equal(split_n(many, count * 3, NULL, NULL), SQL_SPLIT_OK);
    assert_int_equal(script.count, count);
    assert_int_equal(script.stmts[count - 1].offset, 3 * (count - 1));
    assert_int_equal(script.stmts[count - 1].line, count / 1000);
    memcpy(many + count * 3, "y;", 2);
    assert_int_equal(split_n(many, count * 3 + 2, NULL, NULL), SQL_SPLIT_TOO_MANY);
    assert_int_equal(err.line, count / 1000 + 1);
    free(many);
}

struct seen_comments {
    size_t count;
    size_t offsets[8];
    size_t lengths[8];
    unsigned lines[8];
    int stop_at; /* stop with 7 at this comment (from 1), 0: never */
};

static int note_comment(void *ctx, size_t offset, size_t length, unsigned line)
{
    struct seen_comments *seen = ctx;
    if (seen->count < 8) {
        seen->offsets[seen->count] = offset;
        seen->lengths[seen->count] = length;
        seen->lines[seen->count] = line;
    }
    seen->count++;
    return seen->stop_at > 0 && seen->count == (size_t)seen->stop_at ? 7 : 0;
}

static void test_comment_callback(void **state)
{
    (void)state;
    const char *text = "-- one\n"
                       "select '-- no', $$\n-- no$$, \"--\" /* -- no */ -- two\n"
                       "-- three";
    struct seen_comments seen = {0};
    assert_int_equal(split_n(text, strlen(text), note_comment, &seen), SQL_SPLIT_OK);
    assert_int_equal(seen.count, 3);
    assert_int_equal(seen.offsets[0], 0);
    assert_int_equal(seen.lengths[0], 6);
    assert_int_equal(seen.lines[0], 1);
    assert_int_equal(seen.lines[1], 3);
    assert_memory_equal(text + seen.offsets[1], "-- two", 6);
    assert_int_equal(seen.lengths[1], 6);
    assert_int_equal(seen.lines[2], 4);
    assert_int_equal(seen.lengths[2], 8);
    struct seen_comments stop = {.stop_at = 2};
    assert_int_equal(split_n(text, strlen(text), note_comment, &stop), 7);
    assert_int_equal(stop.count, 2);
}

static int teardown(void **state)
{
    (void)state;
    sql_script_free(&script);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_psql_equivalence, teardown),
        cmocka_unit_test_teardown(test_quotes, teardown),
        cmocka_unit_test_teardown(test_dollar_quotes, teardown),
        cmocka_unit_test_teardown(test_comments, teardown),
        cmocka_unit_test_teardown(test_parentheses_and_bodies, teardown),
        cmocka_unit_test_teardown(test_offsets_and_lines, teardown),
        cmocka_unit_test_teardown(test_empty, teardown),
        cmocka_unit_test_teardown(test_unterminated, teardown),
        cmocka_unit_test_teardown(test_refused, teardown),
        cmocka_unit_test_teardown(test_limits, teardown),
        cmocka_unit_test_teardown(test_comment_callback, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
