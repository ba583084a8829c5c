/*
 * test_json_out.c — protocol/json_out.c, the one writer of a JSON string:
 * quotes and backslashes, every control character and DEL, well-formed
 * UTF-8 kept and each ill-formed byte U+FFFD, the HTML-safe flag, empty
 * input, a cut at the capacity that never splits an escape or a UTF-8
 * sequence, and the evbuffer form read back by protocol/json.c's strict
 * reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "protocol/json.h"
#include "protocol/json_out.h"

/* json_out_escape of the n bytes at in (with flags) is want. */
static void escapes_with(const char *in, size_t n, unsigned flags, const char *want)
{
    char out[256];
    memset(out, 'X', sizeof(out));
    size_t len = json_out_escape(out, sizeof(out), in, n, flags);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
}

static void escapes(const char *in, size_t n, const char *want)
{
    escapes_with(in, n, 0, want);
}

static void test_plain_and_specials(void **state)
{
    (void)state;
    escapes("", 0, "");
    escapes("login ok", 8, "login ok");
    escapes("say \"hi\"", 8, "say \\\"hi\\\"");
    escapes("C:\\dir", 6, "C:\\\\dir");
    escapes("\\\"", 2, "\\\\\\\"");
    escapes("/ <a&b>", 7, "/ <a&b>"); /* no escape without JSON_OUT_HTML */
    escapes("DEL \x7f", 5, "DEL \\u007f");
    escapes_with("<a&b>\"", 6, JSON_OUT_HTML, "\\u003ca\\u0026b\\u003e\\\"");
}

static void test_every_control(void **state)
{
    (void)state;
    escapes("\b\f\n\r\t", 5, "\\b\\f\\n\\r\\t");
    for (int c = 0; c < 0x20; c++) {
        char in[1] = {(char)c}, out[16], want[8];
        if (c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
            continue;
        snprintf(want, sizeof(want), "\\u%04x", c);
        assert_int_equal(json_out_escape(out, sizeof(out), in, 1, 0), 6);
        assert_string_equal(out, want);
    }
    escapes("a\0b", 3, "a\\u0000b"); /* a NUL inside the length is escaped too */
}

static void test_utf8(void **state)
{
    (void)state;
    escapes("S\xC3\xA3o Paulo", 10, "S\xC3\xA3o Paulo");
    escapes("\xE2\x82\xAC \xF0\x9F\x98\x80", 8, "\xE2\x82\xAC \xF0\x9F\x98\x80");
    escapes_with("\xE2\x82\xAC", 3, JSON_OUT_HTML, "\xE2\x82\xAC");
    /* Each ill-formed byte alone: a lone continuation, 0xFF, an overlong NUL, a surrogate. */
    escapes("a\x80z", 3, "a\xEF\xBF\xBDz");
    escapes("\xFF", 1, "\xEF\xBF\xBD");
    escapes("\xC0\x80", 2, "\xEF\xBF\xBD\xEF\xBF\xBD");
    escapes("\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    escapes("\xF4\x90\x80\x80", 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    /* A sequence cut by the end of the text (a message cut at its size). */
    escapes("ok\xE2\x82", 4, "ok\xEF\xBF\xBD\xEF\xBF\xBD");
}

static void test_cut_whole(void **state)
{
    (void)state;
    char out[8];
    /* 5 bytes and the NUL: "ab", \n (2), then \" would pass the end: cut before it. */
    assert_int_equal(json_out_escape(out, 6, "ab\n\"cd", 6, 0), 4);
    assert_string_equal(out, "ab\\n");
    assert_int_equal(json_out_escape(out, 6, "abc\x01", 4, 0), 3); /* \u0001 does not fit */
    assert_string_equal(out, "abc");
    assert_int_equal(json_out_escape(out, 6, "abc<", 4, JSON_OUT_HTML), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(json_out_escape(out, 5, "ab\xE2\x82\xAC", 5, 0), 2); /* nor the euro sign */
    assert_string_equal(out, "ab");
    assert_int_equal(json_out_escape(out, 5, "ab\xFF", 3, 0), 2); /* nor U+FFFD */
    assert_string_equal(out, "ab");
    assert_int_equal(json_out_escape(out, 1, "x", 1, 0), 0);
    assert_string_equal(out, "");
    out[0] = 'X';
    assert_int_equal(json_out_escape(out, 0, "x", 1, 0), 0); /* cap 0: nothing written */
    assert_int_equal(out[0], 'X');
    assert_int_equal(json_out_escape(out, sizeof(out), "", 0, 0), 0);
    assert_string_equal(out, "");
}

/* Every capacity over a text of 1- to 4-byte characters: a whole prefix, never more. */
static void test_cut_multibyte(void **state)
{
    (void)state;
    const char *in = "a\xC3\xA3\xE2\x82\xAC\xF0\x9F\x98\x80\x01";
    const size_t ends[] = {0, 1, 3, 6, 10, 16}; /* where each whole piece of the output ends */
    char full[64];
    size_t fulln = json_out_escape(full, sizeof(full), in, strlen(in), 0);
    assert_int_equal(fulln, 16);
    for (size_t cap = 1; cap <= fulln + 1; cap++) {
        char out[64];
        memset(out, 'X', sizeof(out));
        size_t n = json_out_escape(out, cap, in, strlen(in), 0), want = 0;
        for (size_t k = 0; k < sizeof(ends) / sizeof(ends[0]); k++)
            if (ends[k] <= cap - 1)
                want = ends[k];
        assert_int_equal(n, want);
        assert_memory_equal(out, full, n);
        assert_int_equal(out[n], '\0');
        assert_int_equal(out[cap], 'X'); /* nothing past the capacity */
    }
}

/* json_out_add of in (n bytes) reads back with json.c as the string want. */
static void adds(const char *in, size_t n, unsigned flags, const char *want, size_t wantn)
{
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    assert_int_equal(json_out_add(b, in, n, flags), 0);
    size_t len = evbuffer_get_length(b);
    const char *text = (const char *)evbuffer_pullup(b, -1);
    struct json_doc doc;
    assert_int_equal(json_parse(text, len, NULL, &doc, NULL), JSON_OK);
    assert_int_equal(json_type_of(&doc, 0), JSON_STRING);
    assert_true(json_string_eq(&doc, 0, want, wantn));
    json_free(&doc);
    evbuffer_free(b);
}

static void test_evbuffer(void **state)
{
    (void)state;
    adds("", 0, 0, "", 0);
    adds("say \"hi\"\\\n\x7f", 11, 0, "say \"hi\"\\\n\x7f", 11);
    adds("a\0b\xFF", 4, JSON_OUT_HTML, "a\0b\xEF\xBF\xBD", 6);
    adds("<&>", 3, JSON_OUT_HTML, "<&>", 3);
    /* Longer than the escaper's chunk, with a 4-byte character across each chunk's end. */
    static char big[4000], want[4000];
    for (size_t i = 0; i + 4 <= sizeof(big); i += 4)
        memcpy(big + i, i % 20 == 16 ? "\xF0\x9F\x98\x80" : "ab\"\x01", 4);
    memcpy(want, big, sizeof(big));
    adds(big, sizeof(big), 0, want, sizeof(want));
    struct evbuffer *b = evbuffer_new();
    assert_non_null(b);
    assert_int_equal(json_out_add(b, "x\ty", 3, 0), 0);
    assert_int_equal(evbuffer_get_length(b), 6);
    assert_memory_equal(evbuffer_pullup(b, -1), "\"x\\ty\"", 6);
    evbuffer_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_specials),
        cmocka_unit_test(test_every_control),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_cut_whole),
        cmocka_unit_test(test_cut_multibyte),
        cmocka_unit_test(test_evbuffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
