/*
 * test_step_file.c
 *    Unit tests for proxy/migrate/step_file.c and step_dir.c (cmocka, TAP
 *    output): file names, text normalisation, header directives, whole
 *    files (statements, errors naming file and line, checksums that stay
 *    under CR LF and trailing blanks and change under a real edit), the
 *    directory loader on temporary directories (order, down scripts,
 *    duplicates, bad names, what is not a regular file), and the example
 *    steps of conf/migrations/ from $PGNEAR_SRCDIR.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proxy/migrate/step_file.h"

static char err[512];

/* ---- names ---- */

static void expect_name(const char *file, enum migrate_name_kind kind, int64_t version,
                        const char *name)
{
    struct migrate_name n;
    migrate_name_parse(file, strlen(file), &n);
    if (n.kind != kind)
        fail_msg("%s: kind %d, expected %d", file, n.kind, kind);
    if (kind == MIGRATE_NAME_UP || kind == MIGRATE_NAME_DOWN) {
        assert_int_equal(n.version, version);
        assert_string_equal(n.name, name);
    }
}

static void test_names(void **state)
{
    (void)state;
    expect_name("0001_users.sql", MIGRATE_NAME_UP, 1, "users");
    expect_name("0002_rides_by_city.sql", MIGRATE_NAME_UP, 2, "rides_by_city");
    expect_name("0002_set-locality.down.sql", MIGRATE_NAME_DOWN, 2, "set-locality");
    expect_name("7_X.sql", MIGRATE_NAME_UP, 7, "X");
    expect_name("20240131120000_add.sql", MIGRATE_NAME_UP, 20240131120000, "add");
    expect_name("999999999999999999_max.sql", MIGRATE_NAME_UP, 999999999999999999, "max");
    expect_name("0000000000000000001_a.sql", MIGRATE_NAME_BAD, 0, NULL); /* 19 digits */
    expect_name("0_zero.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("0000_zero.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("0001.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("0001_.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("0001-users.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("users.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("_users.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("0001_two words.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("0001_a.b.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("0001_a.up.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("0001_é.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name(".sql", MIGRATE_NAME_OTHER, 0, NULL);
    expect_name("0001_a.SQL", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("0001_a.Down.sql", MIGRATE_NAME_BAD, 0, NULL);
    expect_name("0001_a.down.SQL", MIGRATE_NAME_BAD, 0, NULL);
    struct migrate_name n;
    char longest[80];
    snprintf(longest, sizeof(longest), "1_%0*d.sql", MIGRATE_NAME_MAX, 0);
    migrate_name_parse(longest, strlen(longest), &n);
    assert_int_equal(n.kind, MIGRATE_NAME_UP);
    assert_int_equal(strlen(n.name), MIGRATE_NAME_MAX);
    snprintf(longest, sizeof(longest), "1_%0*d.sql", MIGRATE_NAME_MAX + 1, 0);
    expect_name(longest, MIGRATE_NAME_BAD, 0, NULL);
    /* not steps, and no error */
    expect_name("README.md", MIGRATE_NAME_OTHER, 0, NULL);
    expect_name("0001_users.sql~", MIGRATE_NAME_OTHER, 0, NULL);
    expect_name("0001_users.sql.orig", MIGRATE_NAME_OTHER, 0, NULL);
    expect_name(".0001_users.sql.swp", MIGRATE_NAME_OTHER, 0, NULL);
    expect_name(".#0001_users.sql", MIGRATE_NAME_OTHER, 0, NULL);
    expect_name("", MIGRATE_NAME_OTHER, 0, NULL);
    /* only len bytes are read */
    migrate_name_parse("0003_x.sqlite", 10, &n);
    assert_int_equal(n.kind, MIGRATE_NAME_UP);
    assert_int_equal(n.version, 3);
}

/* ---- normalisation ---- */

static void expect_normalised(const char *raw, size_t len, const char *expected)
{
    char *out;
    size_t out_len;
    assert_int_equal(migrate_text_normalise(raw, len, &out, &out_len), 0);
    if (out_len != strlen(expected) || memcmp(out, expected, out_len) != 0)
        fail_msg("normalised to \"%.*s\", expected \"%s\"", (int)out_len, out, expected);
    assert_int_equal(out[out_len], '\0');
    /* normalising again changes nothing */
    char *again;
    size_t again_len;
    assert_int_equal(migrate_text_normalise(out, out_len, &again, &again_len), 0);
    assert_int_equal(again_len, out_len);
    assert_memory_equal(again, out, out_len);
    free(again);
    free(out);
}

#define NORMALISED(raw, expected) expect_normalised((raw), strlen(raw), (expected))

static void test_normalise(void **state)
{
    (void)state;
    NORMALISED("SELECT 1;\n", "SELECT 1;\n");
    NORMALISED("SELECT 1;", "SELECT 1;\n");
    NORMALISED("SELECT 1;\r\n", "SELECT 1;\n");
    NORMALISED("a \t\r\nb  \r\n\r\n\r\n", "a\nb\n");
    NORMALISED("a\n\n\n \n\t\n", "a\n");
    NORMALISED("\n\na\n", "\n\na\n"); /* leading blank lines keep the line numbers */
    NORMALISED("a\rb\n", "a\rb\n");   /* a CR inside a line stays */
    NORMALISED("a \v\f\n", "a\n");
    NORMALISED("\xef\xbb\xbfSELECT 1;\r\n", "SELECT 1;\n");
    NORMALISED("\xef\xbb\xbf\xef\xbb\xbfSELECT 1;", "SELECT 1;\n");
    NORMALISED("", "");
    NORMALISED(" \r\n\n\t", "");
    NORMALISED("'a   \nb'\n", "'a\nb'\n");
    /* the length is respected: nothing past it is read */
    expect_normalised("ab  XYZ", 4, "ab\n");
}

/* ---- directives ---- */

static struct migrate_directives dirs;

static int directives(const char *text)
{
    err[0] = '\0';
    return migrate_directives_parse(text, strlen(text), "f.sql", &dirs, err, sizeof(err));
}

static void expect_directive_error(const char *text, const char *error)
{
    if (directives(text) != -1)
        fail_msg("\"%s\" was accepted", text);
    if (strcmp(err, error) != 0)
        fail_msg("\"%s\": \"%s\", expected \"%s\"", text, err, error);
}

static void expect_timeout(const char *value, int64_t ms)
{
    char text[128];
    snprintf(text, sizeof(text), "-- pgnear: lock_timeout = %s\nSELECT 1;", value);
    if (directives(text) != 0)
        fail_msg("\"%s\": %s", value, err);
    assert_int_equal(dirs.lock_timeout_ms, ms);
}

static void test_directives(void **state)
{
    (void)state;
    assert_int_equal(directives("SELECT 1;\n"), 0);
    assert_false(dirs.no_transaction);
    assert_false(dirs.pause);
    assert_int_equal(dirs.lock_timeout_ms, -1);
    assert_int_equal(dirs.statement_timeout_ms, -1);
    assert_int_equal(directives("-- about this step\n"
                                "\n"
                                "  -- pgnear: no-transaction\n"
                                "--pgnear:pause\n"
                                "-- PGNEAR : Lock_Timeout=5s\n"
                                "-- pgnear: statement_timeout = 10min  \n"
                                "-- pgnear is not a directive without its colon\n"
                                "CREATE INDEX CONCURRENTLY i ON t (x);\n"),
                     0);
    assert_true(dirs.no_transaction);
    assert_true(dirs.pause);
    assert_int_equal(dirs.lock_timeout_ms, 5000);
    assert_int_equal(dirs.statement_timeout_ms, 600000);
    /* the header ends at the first line that is not blank or a -- comment */
    assert_int_equal(directives("/* x */\n-- pgnear: pause\n"), 0);
    assert_false(dirs.pause);
    assert_int_equal(directives("SELECT 1; -- pgnear: nonsense\n"), 0);

    expect_timeout("0", 0);
    expect_timeout("250", 250);
    expect_timeout("250ms", 250);
    expect_timeout("3 s", 3000);
    expect_timeout("2min", 120000);
    expect_timeout("1h", 3600000);
    expect_timeout("2147483647", 2147483647);
    expect_timeout("596h", 2145600000);
}

static void test_directive_errors(void **state)
{
    (void)state;
    expect_directive_error("-- x\n-- pgnear: pasue\n",
                           "f.sql:2: unknown directive \"pasue\" (known: no-transaction, pause, "
                           "lock_timeout, statement_timeout)");
    expect_directive_error("-- pgnear: no_transaction\n",
                           "f.sql:1: unknown directive \"no_transaction\" (known: "
                           "no-transaction, pause, lock_timeout, statement_timeout)");
    expect_directive_error("\n\n-- pgnear: pause\n-- pgnear: pause\n",
                           "f.sql:4: directive \"pause\" is given twice");
    expect_directive_error("-- pgnear: pause = on\n",
                           "f.sql:1: directive \"pause\" takes no value");
    expect_directive_error("-- pgnear: lock_timeout\n",
                           "f.sql:1: directive \"lock_timeout\" needs a value, such as = 5s");
    expect_directive_error("-- pgnear: lock_timeout = 1s\n-- pgnear: lock_timeout = 2s\n",
                           "f.sql:2: directive \"lock_timeout\" is given twice");
    expect_directive_error("-- pgnear:\n",
                           "f.sql:1: expected a directive name after \"-- pgnear:\"");
    expect_directive_error("-- pgnear: +pause\n",
                           "f.sql:1: expected a directive name after \"-- pgnear:\"");
    expect_directive_error("-- pgnear: pause now\n", "f.sql:1: directive \"pause\" must be "
                                                     "followed by nothing, or by = and a value");
    const char *bad_values[] = {"",
                                "s",
                                "5 sec",
                                "5S",
                                "1.5s",
                                "-1s",
                                "5d",
                                "5us",
                                "'5s'",
                                "5s;",
                                "2147483648",
                                "597h",
                                "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "-- pgnear: statement_timeout = %s\n", bad_values[i]);
        if (directives(text) != -1)
            fail_msg("statement_timeout = %s was accepted", bad_values[i]);
        assert_string_equal(err, "f.sql:1: invalid value for \"statement_timeout\": a whole number "
                                 "with a unit ms, s, min or h, at most 2147483647 ms");
    }
}

/* ---- one file ---- */

static struct migrate_script scr;

#define FILE_NAME "dir/0001_x.sql"

static int parse_n(const char *raw, size_t len)
{
    migrate_script_free(&scr);
    err[0] = '\0';
    return migrate_script_parse(raw, len, FILE_NAME, &scr, err, sizeof(err));
}

static int parse(const char *raw)
{
    return parse_n(raw, strlen(raw));
}

static void expect_parse_error(const char *raw, const char *error)
{
    if (parse(raw) != -1)
        fail_msg("\"%s\" was accepted", raw);
    if (strcmp(err, error) != 0)
        fail_msg("\"%s\": \"%s\", expected \"%s\"", raw, err, error);
}

static const char *stmt(size_t i)
{
    static char buf[256];
    assert_true(i < scr.sql.count);
    snprintf(buf, sizeof(buf), "%.*s", (int)scr.sql.stmts[i].length,
             scr.text + scr.sql.stmts[i].offset);
    return buf;
}

/* The checksum of raw, which must parse. */
static const char *checksum_of(const char *raw)
{
    static char sum[MIGRATE_CHECKSUM_HEX + 1];
    if (parse(raw) != 0)
        fail_msg("\"%s\": %s", raw, err);
    memcpy(sum, scr.checksum, sizeof(sum));
    return sum;
}

#define SUM_SELECT_1 "b4e0497804e46e0a0b0b8c31975b062152d551bac49c3c2e80932567b4085dcd"

static void test_script(void **state)
{
    (void)state;
    assert_int_equal(parse("-- pgnear: pause\nSELECT 1;\n"), 0);
    assert_true(scr.directives.pause);
    assert_string_equal(scr.file, FILE_NAME);
    assert_int_equal(scr.sql.count, 1);
    assert_string_equal(stmt(0), "SELECT 1");
    assert_int_equal(scr.sql.stmts[0].line, 2);
    /* sha256sum of the two lines */
    assert_string_equal(scr.checksum,
                        "dec46cf56865e11a0c589e8f269fad3538e7e2c68392e436b5155d888cbfd578");
    /* statements are cut from the normalised text, with the file's line numbers */
    assert_int_equal(parse("SELECT 'a  \r\nb';\r\n\r\nSELECT 2;  \r\n"), 0);
    assert_int_equal(scr.sql.count, 2);
    assert_string_equal(stmt(0), "SELECT 'a\nb'");
    assert_string_equal(stmt(1), "SELECT 2");
    assert_int_equal(scr.sql.stmts[1].line, 4);
    assert_string_equal(scr.text, "SELECT 'a\nb';\n\nSELECT 2;\n");
    /* a directive-looking line inside a string is text */
    assert_int_equal(parse("SELECT '\n-- pgnear: pause\n';"), 0);
    assert_false(scr.directives.pause);
}

static void test_checksum(void **state)
{
    (void)state;
    assert_string_equal(checksum_of("SELECT 1;\n"), SUM_SELECT_1);
    /* what editors change on their own does not count */
    assert_string_equal(checksum_of("SELECT 1;"), SUM_SELECT_1);
    assert_string_equal(checksum_of("SELECT 1;\r\n"), SUM_SELECT_1);
    assert_string_equal(checksum_of("SELECT 1;  \t\n\n\n"), SUM_SELECT_1);
    assert_string_equal(checksum_of("SELECT 1;\r\n\r\n"), SUM_SELECT_1);
    assert_string_equal(checksum_of("\xef\xbb\xbfSELECT 1;\n"), SUM_SELECT_1);
    /* any real edit does */
    const char *edits[] = {"SELECT 2;",   "SELECT  1;",  "select 1;",  "SELECT 1;\n-- note",
                           "\nSELECT 1;", " SELECT 1;",  "SELECT 1;;", "SELECT\n1;",
                           "SELECT 1 ;",  "SELECT 1;\n;"};
    for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++)
        if (strcmp(checksum_of(edits[i]), SUM_SELECT_1) == 0)
            fail_msg("\"%s\" has the checksum of \"SELECT 1;\"", edits[i]);
    /* lower-case hex */
    for (size_t i = 0; i < MIGRATE_CHECKSUM_HEX; i++)
        assert_non_null(strchr("0123456789abcdef", scr.checksum[i]));
}

static void test_script_errors(void **state)
{
    (void)state;
    expect_parse_error("", FILE_NAME ": no SQL statement in the file");
    expect_parse_error("-- only a comment\n;\n/* and this */\n",
                       FILE_NAME ": no SQL statement in the file");
    expect_parse_error("SELECT 1;\nSELECT 'x;\n", FILE_NAME ":2: unterminated quoted string");
    expect_parse_error("-- pgnear: nope\nSELECT 1;",
                       FILE_NAME ":1: unknown directive \"nope\" (known: no-transaction, pause, "
                                 "lock_timeout, statement_timeout)");
    expect_parse_error("SELECT 1;\n-- pgnear: pause\n",
                       FILE_NAME ":2: a \"-- pgnear:\" directive must be in the comment lines at "
                                 "the top of the file, before any statement");
    expect_parse_error("SELECT 1; -- pgnear: pause\n",
                       FILE_NAME ":1: a \"-- pgnear:\" directive must be in the comment lines at "
                                 "the top of the file, before any statement");
    expect_parse_error("/* a block comment ends the header */\n-- pgnear: pause\nSELECT 1;\n",
                       FILE_NAME ":2: a \"-- pgnear:\" directive must be in the comment lines at "
                                 "the top of the file, before any statement");
    expect_parse_error("SELECT 1;\n\\i other.sql\n",
                       FILE_NAME ":2: backslash outside quotes: psql meta-commands cannot be run "
                                 "here");
    assert_int_equal(parse_n("SELECT 1;\n\0", 11), -1);
    assert_string_equal(err, FILE_NAME ":2: the script contains a NUL byte");
}

/* ---- the directory loader ---- */

static char tmp[256];
static bool tmp_made; /* tmp is a directory of ours, to remove */

static void make_tmp(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof(tmp), "%s/test_step_file.XXXXXX", base && *base ? base : "/tmp");
    assert_non_null(mkdtemp(tmp));
    tmp_made = true;
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmp, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* Removes tmp and what is in it (files, links, FIFOs, empty directories); false if it cannot. */
static bool try_remove_tmp(void)
{
    DIR *d = opendir(tmp);
    if (d == NULL)
        return false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", tmp, de->d_name);
        if (unlink(path) != 0)
            rmdir(path);
    }
    closedir(d);
    tmp_made = rmdir(tmp) != 0;
    return !tmp_made;
}

static void remove_tmp(void)
{
    assert_true(try_remove_tmp());
}

static struct migrate_steps steps;

static int load(void)
{
    migrate_steps_free(&steps);
    err[0] = '\0';
    return migrate_steps_load(tmp, &steps, err, sizeof(err));
}

/* The loader fails on tmp with the error pattern, in which each '@' stands for tmp. */
static void expect_load_error(const char *pattern)
{
    char expected[1024];
    size_t n = 0;
    for (const char *p = pattern; *p != '\0' && n + sizeof(tmp) < sizeof(expected); p++) {
        if (*p == '@')
            n += (size_t)snprintf(expected + n, sizeof(expected) - n, "%s", tmp);
        else
            expected[n++] = *p;
    }
    expected[n] = '\0';
    if (load() != -1)
        fail_msg("loaded, expected: %s", expected);
    if (strcmp(err, expected) != 0)
        fail_msg("\"%s\", expected \"%s\"", err, expected);
}

static void test_load(void **state)
{
    (void)state;
    make_tmp();
    assert_int_equal(load(), 0);
    assert_int_equal(steps.count, 0);
    write_file("0010_ten.sql", "SELECT 10;\n");
    write_file("0002_two.sql", "-- pgnear: no-transaction\nSELECT 2; SELECT 22;\n");
    write_file("0002_two.down.sql", "SELECT -2;\n");
    write_file("1_one.sql", "SELECT 1;");
    write_file("README.md", "not a step");
    write_file(".0003_hidden.sql", "not a step");
    write_file("0004_backup.sql~", "not a step");
    char target[512], link[512];
    snprintf(target, sizeof(target), "%s/elsewhere.txt", tmp);
    snprintf(link, sizeof(link), "%s/0005_linked.sql", tmp);
    write_file("elsewhere.txt", "SELECT 5;");
    assert_int_equal(symlink(target, link), 0);
    assert_int_equal(load(), 0);
    assert_int_equal(steps.count, 4);
    const int64_t versions[] = {1, 2, 5, 10};
    const char *names[] = {"one", "two", "linked", "ten"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(steps.steps[i].version, versions[i]);
        assert_string_equal(steps.steps[i].name, names[i]);
        assert_int_equal(steps.steps[i].has_down, i == 1);
        assert_int_equal(strlen(steps.steps[i].up.checksum), MIGRATE_CHECKSUM_HEX);
    }
    assert_string_equal(steps.steps[0].up.checksum, SUM_SELECT_1);
    assert_true(steps.steps[1].up.directives.no_transaction);
    assert_int_equal(steps.steps[1].up.sql.count, 2);
    assert_string_equal(steps.steps[1].down.text, "SELECT -2;\n");
    char path[512];
    snprintf(path, sizeof(path), "%s/0002_two.down.sql", tmp);
    assert_string_equal(steps.steps[1].down.file, path);
    assert_null(steps.steps[0].down.text);
    migrate_steps_free(&steps);
    remove_tmp();
}

static void test_load_errors(void **state)
{
    (void)state;
    make_tmp();
    write_file("0001_one.sql", "SELECT 1;");
    write_file("002_b.sql", "SELECT 2;");
    write_file("0002_a.sql", "SELECT 2;");
    expect_load_error("@/0002_a.sql and @/002_b.sql: two steps with version 2");
    remove_tmp();

    make_tmp();
    write_file("0001_one.sql", "SELECT 1;");
    write_file("0003_three.down.sql", "SELECT 3;");
    expect_load_error("@/0003_three.down.sql: a down script without its step "
                      "@/0003_three.sql");
    write_file("0003_other.sql", "SELECT 3;");
    expect_load_error("@/0003_three.down.sql: the step of version 3 is named \"other\", not "
                      "\"three\"");
    write_file("0003_three.sql", "SELECT 3;");
    expect_load_error("@/0003_other.sql and @/0003_three.sql: two steps with version 3");
    remove_tmp();

    make_tmp();
    write_file("0003_three.sql", "SELECT 3;");
    write_file("0003_three.down.sql", "SELECT 3;");
    write_file("03_three.down.sql", "SELECT 3;");
    expect_load_error("@/0003_three.down.sql and @/03_three.down.sql: two down scripts for "
                      "version 3");
    remove_tmp();

    make_tmp();
    write_file("0001_one.sql", "SELECT 1;");
    write_file("add_users.sql", "SELECT 1;");
    write_file("zz.SQL", "SELECT 1;");
    expect_load_error("@/add_users.sql: not a step file name: expected NNNN_name.sql or "
                      "NNNN_name.down.sql (NNNN: a version of 1 to 18 digits, not 0; name: "
                      "letters, digits, _ and -, at most 63)");
    remove_tmp();

    make_tmp();
    write_file("0001_one.sql", "SELECT 1;");
    write_file("0002_two.sql", "-- fine\n-- pgnear: puase\nSELECT 1;");
    expect_load_error("@/0002_two.sql:2: unknown directive \"puase\" (known: no-transaction, "
                      "pause, lock_timeout, statement_timeout)");
    remove_tmp();
}

static void test_load_file_kinds(void **state)
{
    (void)state;
    char path[512];
    make_tmp();
    snprintf(path, sizeof(path), "%s/0005_dir.sql", tmp);
    assert_int_equal(mkdir(path, 0700), 0);
    expect_load_error("@/0005_dir.sql: not a regular file");
    assert_int_equal(rmdir(path), 0);
    snprintf(path, sizeof(path), "%s/0006_fifo.sql", tmp);
    assert_int_equal(mkfifo(path, 0600), 0);
    expect_load_error("@/0006_fifo.sql: not a regular file"); /* and it did not block */
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/0007_big.sql", tmp);
    write_file("0007_big.sql", "SELECT 1;");
    assert_int_equal(truncate(path, (off_t)MIGRATE_MAX_FILE_BYTES + 1), 0);
    expect_load_error("@/0007_big.sql: too large (33554433 bytes; a step file may have "
                      "33554432, all of them 268435456)");
    assert_int_equal(truncate(path, 0), 0);
    expect_load_error("@/0007_big.sql: no SQL statement in the file");
    remove_tmp();

    snprintf(tmp, sizeof(tmp), "/nonexistent/test_step_file");
    expect_load_error("@: cannot open the migrations directory: No such file or directory");
}

/* ---- the example steps ---- */

static void test_example_steps(void **state)
{
    (void)state;
    const char *srcdir = getenv("PGNEAR_SRCDIR");
    if (srcdir == NULL || *srcdir == '\0')
        fail_msg("PGNEAR_SRCDIR is not set: run through the test runner, or set it to the "
                 "source tree (the directory holding conf/migrations)");
    snprintf(tmp, sizeof(tmp), "%s/conf/migrations", srcdir);
    if (load() != 0)
        fail_msg("%s", err);
    assert_int_equal(steps.count, 4);
    const char *names[] = {"users", "rides_by_city", "vehicle_indexes", "rename_credit_card"};
    const size_t counts[] = {2, 7, 2, 2};
    for (size_t i = 0; i < steps.count; i++) {
        const struct migrate_step *st = &steps.steps[i];
        assert_int_equal(st->version, (int64_t)i + 1);
        assert_string_equal(st->name, names[i]);
        assert_true(st->has_down);
        assert_int_equal(st->up.sql.count, counts[i]);
        assert_int_equal(st->up.directives.no_transaction, i == 2);
        assert_int_equal(st->down.directives.no_transaction, i == 2);
        assert_int_equal(st->up.directives.pause, i == 3);
        assert_int_equal(st->down.directives.pause, i == 3);
        print_message("# %" PRId64 "_%s: %zu statements, checksum %s\n", st->version, st->name,
                      st->up.sql.count, st->up.checksum);
    }
    assert_int_equal(steps.steps[0].up.directives.lock_timeout_ms, 5000);
    assert_int_equal(steps.steps[1].up.directives.statement_timeout_ms, 60000);
    assert_int_equal(steps.steps[2].up.directives.lock_timeout_ms, 10000);
    assert_int_equal(steps.steps[3].up.directives.statement_timeout_ms, 30000);
    /* the partitioned table, and the function whose body holds a ';' */
    const struct migrate_script *rides = &steps.steps[1].up;
    assert_non_null(strstr(rides->text + rides->sql.stmts[1].offset, "PARTITION BY LIST (city)"));
    const struct sql_statement *fn = &rides->sql.stmts[6];
    assert_memory_equal(rides->text + fn->offset, "CREATE FUNCTION city_revenue", 28);
    assert_memory_equal(rides->text + fn->offset + fn->length - 4, "\nEND", 4);
    migrate_steps_free(&steps);
}

static int teardown(void **state)
{
    (void)state;
    migrate_script_free(&scr);
    migrate_steps_free(&steps);
    if (tmp_made) /* a test that failed half-way */
        try_remove_tmp();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_normalise),
        cmocka_unit_test(test_directives),
        cmocka_unit_test(test_directive_errors),
        cmocka_unit_test_teardown(test_script, teardown),
        cmocka_unit_test_teardown(test_checksum, teardown),
        cmocka_unit_test_teardown(test_script_errors, teardown),
        cmocka_unit_test_teardown(test_load, teardown),
        cmocka_unit_test_teardown(test_load_errors, teardown),
        cmocka_unit_test_teardown(test_load_file_kinds, teardown),
        cmocka_unit_test_teardown(test_example_steps, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
