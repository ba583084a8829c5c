/*
 * test_log_json.c — proxy/base/log.c under log_format = json: the escaping
 * of a message into a JSON string (quotes, backslashes, every control
 * character, well-formed UTF-8 kept, each ill-formed byte U+FFFD, nothing
 * cut in the middle of an escape or a character), and whole lines written
 * to a file read back by protocol/json.c's strict reader with their keys.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "protocol/json.h"
#include "proxy/base/log.h"

/* log_json_escape of the n bytes at in is want. */
static void escapes(const char *in, size_t n, const char *want)
{
    char out[256];
    size_t len = log_json_escape(out, sizeof(out), in, n);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
}

static void test_plain_and_specials(void **state)
{
    (void)state;
    escapes("", 0, "");
    escapes("login ok", 8, "login ok");
    escapes("say \"hi\"", 8, "say \\\"hi\\\"");
    escapes("C:\\dir", 6, "C:\\\\dir");
    escapes("/ and \x7f", 7, "/ and \x7f"); /* neither needs an escape */
}

static void test_every_control(void **state)
{
    (void)state;
    escapes("\b\f\n\r\t", 5, "\\b\\f\\n\\r\\t");
    for (int c = 1; c < 0x20; c++) {
        char in[1] = {(char)c}, out[16], want[8];
        if (c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            continue;
        snprintf(want, sizeof(want), "\\u%04x", c);
        log_json_escape(out, sizeof(out), in, 1);
        assert_string_equal(out, want);
    }
    escapes("a\0b", 3, "a\\u0000b"); /* a NUL inside the length is escaped too */
}

static void test_utf8(void **state)
{
    (void)state;
    escapes("S\xC3\xA3o Paulo", 10, "S\xC3\xA3o Paulo");
    escapes("\xE2\x82\xAC \xF0\x9F\x98\x80", 8, "\xE2\x82\xAC \xF0\x9F\x98\x80");
    /* Each ill-formed byte alone: a lone continuation, 0xFF, an overlong NUL, a surrogate. */
    escapes("a\x80z", 3, "a\xEF\xBF\xBDz");
    escapes("\xFF", 1, "\xEF\xBF\xBD");
    escapes("\xC0\x80", 2, "\xEF\xBF\xBD\xEF\xBF\xBD");
    escapes("\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    /* A sequence cut by the end of the text (a message cut at its size). */
    escapes("ok\xE2\x82", 4, "ok\xEF\xBF\xBD\xEF\xBF\xBD");
}

static void test_cut_whole(void **state)
{
    (void)state;
    char out[8];
    /* 5 bytes and the NUL: "ab", \n (2), then \" would pass the end: cut before it. */
    assert_int_equal(log_json_escape(out, 6, "ab\n\"cd", 6), 4);
    assert_string_equal(out, "ab\\n");
    assert_int_equal(log_json_escape(out, 6, "abc\x01", 4), 3); /* \u0001 does not fit */
    assert_string_equal(out, "abc");
    assert_int_equal(log_json_escape(out, 5, "ab\xE2\x82\xAC", 5), 2); /* nor the euro sign */
    assert_string_equal(out, "ab");
    assert_int_equal(log_json_escape(out, 1, "x", 1), 0);
    assert_string_equal(out, "");
}

/* The lines of path, read whole into buf. */
static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return n;
}

/* Line (len bytes) parses as one JSON object whose key is the string want (NULL: absent). */
static void line_has(const char *line, size_t len, const char *key, const char *want)
{
    struct json_doc doc;
    assert_int_equal(json_parse(line, len, NULL, &doc, NULL), JSON_OK);
    uint32_t v = json_get(&doc, 0, key);
    if (want == NULL) {
        assert_int_equal(v, JSON_NONE);
    } else {
        char got[4096];
        assert_int_not_equal(v, JSON_NONE);
        assert_int_equal(json_string_copy(&doc, v, got, sizeof(got), NULL), JSON_OK);
        assert_string_equal(got, want);
    }
    json_free(&doc);
}

static void test_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/pgnear-test-log-json-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(log_open(path, LOG_INFO), 0);
    log_set_format(LOG_FORMAT_JSON);
    struct log_fields f = {.client_id = 42,
                           .client_addr = "127.0.0.1:5555",
                           .region = "eu",
                           .host = "10.0.0.1:5432",
                           .sqlstate = "28P01"};
    log_at(LOG_WARNING, &f, "login refused: \"%s\"\tbad\xFF", "app");
    log_info(0, "plain");
    char big[3000];
    memset(big, '\x01', sizeof(big) - 1); /* every byte six when escaped: the record still ends */
    big[sizeof(big) - 1] = '\0';
    log_info(7, "%s", big);
    log_set_format(LOG_FORMAT_TEXT);
    log_info(0, "text again");
    log_close();
    static char buf[65536];
    read_file(path, buf, sizeof(buf));
    unlink(path);
    char *l1 = buf, *l2 = strchr(l1, '\n') + 1, *l3 = strchr(l2, '\n') + 1,
         *l4 = strchr(l3, '\n') + 1;
    line_has(l1, (size_t)(l2 - l1 - 1), "message", "login refused: \"app\"\tbad\xEF\xBF\xBD");
    line_has(l1, (size_t)(l2 - l1 - 1), "level", "WARNING");
    line_has(l1, (size_t)(l2 - l1 - 1), "client_addr", "127.0.0.1:5555");
    line_has(l1, (size_t)(l2 - l1 - 1), "region", "eu");
    line_has(l1, (size_t)(l2 - l1 - 1), "host", "10.0.0.1:5432");
    line_has(l1, (size_t)(l2 - l1 - 1), "sqlstate", "28P01");
    assert_non_null(strstr(l1, "\"session_id\":42,"));
    assert_memory_equal(l1, "{\"time\":\"", 9);
    assert_true(l1[9 + 19] == '.' && l1[9 + 26] == 'Z'); /* 2026-11-28T08:33:05.123456Z */
    line_has(l2, (size_t)(l3 - l2 - 1), "message", "plain");
    line_has(l2, (size_t)(l3 - l2 - 1), "sqlstate", NULL);
    assert_null(memchr(l2, '\t', (size_t)(l3 - l2))); /* no raw control character */
    line_has(l3, (size_t)(l4 - l3 - 1), "level", "LOG");
    assert_non_null(strstr(l4, " UTC LOG text again\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_specials),
        cmocka_unit_test(test_every_control),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_cut_whole),
        cmocka_unit_test(test_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
