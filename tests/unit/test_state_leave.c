/*
 * test_state_leave.c
 *    Unit tests for protocol/state_leave.c (cmocka, TAP output): which
 *    client messages may leave state in a server's session, as the relay
 *    passes them (what an idle session's move after its server ended may
 *    trust): a Query or an unnamed Parse whose text pins (SET, a temporary
 *    table) and one that does not (INSERT, RESET, DISCARD); a named Parse;
 *    a FunctionCall; Bind, Execute and Sync; a message cut at the end of
 *    the bytes; the bytes that end a message begun before (skip); a
 *    length below 4; and every prefix of a run of messages, each copied to
 *    a buffer of exactly its length for the sanitizer to watch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "protocol/state_leave.h"

/* One message: type, then its length and body (len bytes), appended at buf+*n. */
static void put_msg(uint8_t *buf, size_t *n, char type, const void *body, size_t len)
{
    uint32_t l = (uint32_t)len + 4;
    buf[(*n)++] = (uint8_t)type;
    buf[(*n)++] = (uint8_t)(l >> 24);
    buf[(*n)++] = (uint8_t)(l >> 16);
    buf[(*n)++] = (uint8_t)(l >> 8);
    buf[(*n)++] = (uint8_t)l;
    memcpy(buf + *n, body, len);
    *n += len;
}

static void put_query(uint8_t *buf, size_t *n, const char *sql)
{
    put_msg(buf, n, 'Q', sql, strlen(sql) + 1);
}

/* A Parse of name and sql, no parameter types. */
static void put_parse(uint8_t *buf, size_t *n, const char *name, const char *sql)
{
    uint8_t body[512];
    size_t len = 0;
    memcpy(body, name, strlen(name) + 1);
    len += strlen(name) + 1;
    memcpy(body + len, sql, strlen(sql) + 1);
    len += strlen(sql) + 1;
    body[len++] = 0;
    body[len++] = 0;
    put_msg(buf, n, 'P', body, len);
}

/* The scan of buf's first n bytes, from a buffer of exactly that length. */
static const char *scan(const uint8_t *buf, size_t n, size_t skip)
{
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, buf, n);
    const char *why = state_leave_scan(copy, n, skip);
    free(copy);
    return why;
}

static void test_queries(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t n = 0;
    put_query(buf, &n, "INSERT INTO t VALUES (1)");
    assert_null(scan(buf, n, 0));
    put_query(buf, &n, "RESET ALL; DISCARD ALL; DEALLOCATE ALL");
    assert_null(scan(buf, n, 0));
    put_query(buf, &n, "SET application_name = 'x'");
    assert_string_equal(scan(buf, n, 0), "a session-level SET");
    n = 0;
    put_query(buf, &n, "CREATE TEMP TABLE t (x int)");
    assert_string_equal(scan(buf, n, 0), "a temporary object");
    n = 0;
    put_query(buf, &n, "SET LOCAL work_mem = '1MB'");
    assert_null(scan(buf, n, 0));
}

static void test_extended(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t n = 0;
    put_parse(buf, &n, "", "INSERT INTO t VALUES ($1)");
    put_msg(buf, &n, 'B', "\0\0\0\0\0\0\0\0", 8);
    put_msg(buf, &n, 'E', "\0\0\0\0\0", 5);
    put_msg(buf, &n, 'S', "", 0);
    assert_null(scan(buf, n, 0));
    put_parse(buf, &n, "", "SELECT set_config('a', 'b', false)");
    assert_string_equal(scan(buf, n, 0), "set_config() outside a transaction-local call");
    n = 0;
    put_parse(buf, &n, "s1", "SELECT 1");
    assert_string_equal(scan(buf, n, 0), "a named prepared statement");
    n = 0;
    put_msg(buf, &n, 'F', "\0\0\0\1\0\0\0\0\0\0", 10);
    assert_string_equal(scan(buf, n, 0), "a FunctionCall message");
    n = 0;
    put_msg(buf, &n, 'P', "", 0); /* an empty Parse: no name to read */
    assert_string_equal(scan(buf, n, 0), "a named prepared statement");
    n = 0;
    put_msg(buf, &n, 'P', "\0SELECT 1", 9); /* its text never ends */
    assert_string_equal(scan(buf, n, 0), "a Parse pgnear could not read");
}

static void test_cut_and_skip(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t n = 0;
    put_query(buf, &n, "SELECT 1");
    size_t first = n;
    put_query(buf, &n, "SELECT 2");
    /* The second Query cut in its body: not read, it may leave state. */
    assert_string_equal(scan(buf, n - 3, 0), "a query longer than pgnear reads at once");
    /* Its header cut: the relay keeps it for the next read; nothing to say yet. */
    assert_null(scan(buf, first + 3, 0));
    /* The bytes that end a message begun before are not a header. */
    n = 0;
    memcpy(buf, "SET x = 1;", 10);
    n = 10;
    put_query(buf, &n, "SELECT 3");
    assert_null(scan(buf, n, 10));
    /* A cut Parse. */
    n = 0;
    put_parse(buf, &n, "", "SELECT 1");
    assert_string_equal(scan(buf, n - 1, 0), "a Parse longer than pgnear reads at once");
    /* A length below 4 stops the scan (the framing refuses it). */
    memcpy(buf, "Q\0\0\0\2SET x = 1", 15);
    assert_null(scan(buf, 15, 0));
}

static void test_prefixes(void **state)
{
    (void)state;
    uint8_t buf[1024];
    size_t n = 0;
    put_parse(buf, &n, "", "INSERT INTO t VALUES ($1)");
    put_msg(buf, &n, 'B', "\0\0\0\0\0\0\0\0", 8);
    put_msg(buf, &n, 'E', "\0\0\0\0\0", 5);
    put_msg(buf, &n, 'S', "", 0);
    put_query(buf, &n, "SELECT 1");
    put_parse(buf, &n, "named", "SELECT 2");
    for (size_t len = 0; len <= n; len++)
        for (size_t skip = 0; skip <= len; skip += 7)
            (void)scan(buf, len, skip);
    assert_string_equal(scan(buf, n, 0), "a named prepared statement");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queries),
        cmocka_unit_test(test_extended),
        cmocka_unit_test(test_cut_and_skip),
        cmocka_unit_test(test_prefixes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
