/*
 * test_log_json.c — proxy/base/log.c under log_format = json: whole lines
 * written to a file read back by protocol/json.c's strict reader with
 * their keys (the escaping itself, protocol/json_out.c, has test_json_out).
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
    log_at(LOG_WARNING, &f, "login refused: \"%s\"\tbad\x7f\xFF", "app");
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
    line_has(l1, (size_t)(l2 - l1 - 1), "message", "login refused: \"app\"\tbad\x7f\xEF\xBF\xBD");
    assert_null(memchr(l1, 0x7f, (size_t)(l2 - l1))); /* DEL escaped, not raw */
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
        cmocka_unit_test(test_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
