/*
 * test_json.c
 *    Unit tests for protocol/json.c (cmocka, TAP output): every kind of
 *    value and how the helpers read it, escapes and UTF-8 (surrogate pairs
 *    into four bytes, lone surrogates and ill-formed sequences refused),
 *    the numbers' grammar and ranges, the limits on depth and on values,
 *    and malformed texts, each with the error and the byte it names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/json.h"

/* Parses s (NUL-terminated) with limits; asserts it parses. */
static void parse_ok(const char *s, const struct json_limits *limits, struct json_doc *doc)
{
    struct json_error err;
    int rc = json_parse(s, strlen(s), limits, doc, &err);

    if (rc != JSON_OK)
        fail_msg("json_parse(%s): %s at %zu", s, json_strerror(rc), err.pos);
    assert_int_equal(err.code, JSON_OK);
}

/* Asserts that len bytes at s fail with code at byte pos. */
static void parse_bad_n(const char *s, size_t len, int code, size_t pos)
{
    struct json_doc doc;
    struct json_error err;
    int rc = json_parse(s, len, NULL, &doc, &err);

    if (rc != code || err.pos != pos)
        fail_msg("json_parse(\"%.*s\"): got %d (%s) at %zu, want %d (%s) at %zu", (int)len, s, rc,
                 json_strerror(rc), err.pos, code, json_strerror(code), pos);
    assert_int_equal(err.code, code);
    assert_null(doc.nodes);
}

#define parse_bad(s, code, pos) parse_bad_n(s, strlen(s), code, pos)

static void test_scalars(void **state)
{
    struct json_doc doc;
    bool b;

    (void)state;
    parse_ok("true", NULL, &doc);
    assert_int_equal(doc.count, 1);
    assert_int_equal(json_type_of(&doc, 0), JSON_TRUE);
    assert_int_equal(json_bool(&doc, 0, &b), JSON_OK);
    assert_true(b);
    json_free(&doc);
    parse_ok(" \t\r\nfalse \n", NULL, &doc);
    assert_int_equal(json_bool(&doc, 0, &b), JSON_OK);
    assert_false(b);
    json_free(&doc);
    parse_ok("null", NULL, &doc);
    assert_int_equal(json_type_of(&doc, 0), JSON_NULL);
    assert_int_equal(json_bool(&doc, 0, &b), JSON_ETYPE);
    assert_int_equal(json_type_of(&doc, 1), -1);
    assert_int_equal(json_type_of(&doc, JSON_NONE), -1);
    assert_int_equal(json_first(&doc, 0), JSON_NONE);
    assert_int_equal(json_count(&doc, 0), 0);
    json_free(&doc);
    assert_null(doc.nodes);
}

static void test_object(void **state)
{
    const char *s = "{\"a\": 1, \"b\": [true, {\"c\": \"d\"}, []], \"e\": {}, \"a\": 2}";
    struct json_doc doc;
    uint32_t b, k, e;
    int64_t n;
    char buf[8];

    (void)state;
    parse_ok(s, NULL, &doc);
    assert_int_equal(json_type_of(&doc, 0), JSON_OBJECT);
    assert_int_equal(json_count(&doc, 0), 4);
    /* the first of two "a" */
    assert_int_equal(json_int64(&doc, json_get(&doc, 0, "a"), &n), JSON_OK);
    assert_int_equal(n, 1);
    assert_int_equal(json_get(&doc, 0, "x"), JSON_NONE);
    assert_int_equal(json_get(&doc, 0, ""), JSON_NONE);
    b = json_get(&doc, 0, "b");
    assert_int_equal(json_type_of(&doc, b), JSON_ARRAY);
    assert_int_equal(json_count(&doc, b), 3);
    e = json_first(&doc, b);
    assert_int_equal(json_type_of(&doc, e), JSON_TRUE);
    e = json_next(&doc, e);
    assert_int_equal(json_type_of(&doc, e), JSON_OBJECT);
    assert_int_equal(json_string_copy(&doc, json_get(&doc, e, "c"), buf, sizeof(buf), NULL),
                     JSON_OK);
    assert_string_equal(buf, "d");
    e = json_next(&doc, e);
    assert_int_equal(json_type_of(&doc, e), JSON_ARRAY);
    assert_int_equal(json_first(&doc, e), JSON_NONE);
    assert_int_equal(json_next(&doc, e), JSON_NONE);
    /* keys in order, each value after its key */
    k = json_first(&doc, 0);
    assert_true(json_string_eq(&doc, k, "a", 1));
    k = json_next(&doc, k);
    assert_true(json_string_eq(&doc, k, "b", 1));
    assert_int_equal(json_value_of(&doc, k), b);
    k = json_next(&doc, k);
    assert_int_equal(json_count(&doc, json_value_of(&doc, k)), 0);
    k = json_next(&doc, k);
    assert_int_equal(json_int64(&doc, json_value_of(&doc, k), &n), JSON_OK);
    assert_int_equal(n, 2);
    assert_int_equal(json_next(&doc, k), JSON_NONE);
    /* json_get on what is not an object */
    assert_int_equal(json_get(&doc, b, "a"), JSON_NONE);
    json_free(&doc);
}

static void test_strings(void **state)
{
    const char *s = "[\"plain\", \"q\\\"b\\\\s\\/n\\nt\\tr\\rb\\bf\\f\", \"\\u00e9\\u20AC\", "
                    "\"\\ud83d\\ude00\", \"caf\xc3\xa9 \xf0\x9f\x98\x80\", \"a\\u0000b\", \"\"]";
    struct json_doc doc;
    uint32_t e;
    char buf[64];
    size_t len;

    (void)state;
    parse_ok(s, NULL, &doc);
    e = json_first(&doc, 0);
    assert_int_equal(json_string_copy(&doc, e, buf, sizeof(buf), &len), JSON_OK);
    assert_string_equal(buf, "plain");
    assert_int_equal(len, 5);
    e = json_next(&doc, e);
    assert_int_equal(json_string_copy(&doc, e, buf, sizeof(buf), &len), JSON_OK);
    assert_string_equal(buf, "q\"b\\s/n\nt\tr\rb\bf\f");
    assert_true(json_string_eq(&doc, e, "q\"b\\s/n\nt\tr\rb\bf\f", 16));
    assert_false(json_string_eq(&doc, e, "q\"b\\s/n\nt\tr\rb\bf", 15));
    e = json_next(&doc, e);
    assert_int_equal(json_string_copy(&doc, e, buf, sizeof(buf), &len), JSON_OK);
    assert_string_equal(buf, "\xc3\xa9\xe2\x82\xac");
    e = json_next(&doc, e);
    assert_int_equal(json_string_copy(&doc, e, buf, sizeof(buf), &len), JSON_OK);
    assert_string_equal(buf, "\xf0\x9f\x98\x80"); /* U+1F600 */
    assert_true(json_string_eq(&doc, e, "\xf0\x9f\x98\x80", 4));
    e = json_next(&doc, e);
    assert_int_equal(json_string_copy(&doc, e, buf, sizeof(buf), &len), JSON_OK);
    assert_string_equal(buf, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    e = json_next(&doc, e);
    assert_int_equal(json_string_copy(&doc, e, buf, sizeof(buf), &len), JSON_ENUL);
    assert_string_equal(buf, "");
    assert_int_equal(len, 3);
    assert_true(json_string_eq(&doc, e, "a\0b", 3));
    e = json_next(&doc, e);
    assert_int_equal(json_string_copy(&doc, e, buf, sizeof(buf), &len), JSON_OK);
    assert_string_equal(buf, "");
    assert_true(json_string_eq(&doc, e, "", 0));
    assert_int_equal(json_string_copy(&doc, 0, buf, sizeof(buf), &len), JSON_ETYPE);
    assert_false(json_string_eq(&doc, 0, "", 0));
    json_free(&doc);
}

static void test_string_cap(void **state)
{
    struct json_doc doc;
    char buf[5];
    size_t len;

    (void)state;
    parse_ok("\"abcd\\u00e9\"", NULL, &doc);
    assert_int_equal(json_string_copy(&doc, 0, buf, 5, &len), JSON_ETRUNC);
    assert_string_equal(buf, "");
    assert_int_equal(len, 6);
    assert_int_equal(json_string_copy(&doc, 0, buf, 0, &len), JSON_ETRUNC);
    json_free(&doc);
    parse_ok("\"abcd\"", NULL, &doc);
    assert_int_equal(json_string_copy(&doc, 0, buf, 5, NULL), JSON_OK);
    assert_string_equal(buf, "abcd");
    json_free(&doc);
}

static void test_numbers(void **state)
{
    const char *s = "[0, -0, 42, -17, 9223372036854775807, -9223372036854775808, "
                    "9223372036854775808, -9223372036854775809, 1.5, -2.5e3, 1E+2, 3e-2, "
                    "1e400, 1e-400, 100000000000000000000]";
    struct json_doc doc;
    int64_t n;
    double d;
    const char *t;
    size_t len;
    uint32_t e;

    (void)state;
    parse_ok(s, NULL, &doc);
    e = json_first(&doc, 0);
    static const int64_t ints[] = {0, 0, 42, -17, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++, e = json_next(&doc, e)) {
        assert_int_equal(json_int64(&doc, e, &n), JSON_OK);
        assert_true(n == ints[i]);
    }
    for (int i = 0; i < 2; i++, e = json_next(&doc, e)) /* one past each end */
        assert_int_equal(json_int64(&doc, e, &n), JSON_ERANGE);
    static const double dbls[] = {1.5, -2500.0, 100.0, 0.03};
    for (size_t i = 0; i < sizeof(dbls) / sizeof(dbls[0]); i++, e = json_next(&doc, e)) {
        assert_int_equal(json_int64(&doc, e, &n), JSON_ERANGE);
        assert_int_equal(json_double(&doc, e, &d), JSON_OK);
        assert_true(fabs(d - dbls[i]) < 1e-12);
    }
    assert_int_equal(json_number_text(&doc, e, &t, &len), JSON_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(t, "1e400", 5);
    assert_int_equal(json_double(&doc, e, &d), JSON_ERANGE);
    e = json_next(&doc, e);
    assert_int_equal(json_double(&doc, e, &d), JSON_OK); /* underflow reads as 0 */
    assert_true(d == 0.0);
    e = json_next(&doc, e);
    assert_int_equal(json_int64(&doc, e, &n), JSON_ERANGE);
    assert_int_equal(json_double(&doc, e, &d), JSON_OK);
    assert_true(d == 1e20);
    assert_int_equal(json_int64(&doc, 0, &n), JSON_ETYPE);
    assert_int_equal(json_double(&doc, 0, &d), JSON_ETYPE);
    json_free(&doc);
}

/* A number longer than json_double's stack buffer. */
static void test_long_number(void **state)
{
    char s[700];
    struct json_doc doc;
    double d;

    (void)state;
    strcpy(s, "0.");
    memset(s + 2, '0', 600);
    strcpy(s + 602, "125");
    parse_ok(s, NULL, &doc);
    assert_int_equal(json_double(&doc, 0, &d), JSON_OK);
    assert_true(d == 0.0);
    json_free(&doc);
    memset(s, '9', 400);
    s[400] = '\0';
    parse_ok(s, NULL, &doc);
    assert_int_equal(json_double(&doc, 0, &d), JSON_ERANGE);
    json_free(&doc);
}

static void test_bad_numbers(void **state)
{
    (void)state;
    parse_bad("01", JSON_ENUMBER, 1);
    parse_bad("-01", JSON_ENUMBER, 2);
    parse_bad("-", JSON_EEND, 1);
    parse_bad("-a", JSON_ENUMBER, 1);
    parse_bad("+1", JSON_ESYNTAX, 0);
    parse_bad("1.", JSON_EEND, 2);
    parse_bad("1.e3", JSON_ENUMBER, 2);
    parse_bad(".5", JSON_ESYNTAX, 0);
    parse_bad("1e", JSON_EEND, 2);
    parse_bad("1e+", JSON_EEND, 3);
    parse_bad("1e+x", JSON_ENUMBER, 3);
    parse_bad("[1.]", JSON_ENUMBER, 3);
    parse_bad("0x10", JSON_ETRAILING, 1);
    parse_bad("NaN", JSON_ESYNTAX, 0);
    parse_bad("-Infinity", JSON_ENUMBER, 1);
    parse_bad("[00]", JSON_ENUMBER, 2);
}

static void test_bad_strings(void **state)
{
    (void)state;
    parse_bad("\"abc", JSON_EEND, 4);
    parse_bad("\"a\nb\"", JSON_ECONTROL, 2);
    parse_bad("\"a\tb\"", JSON_ECONTROL, 2);
    parse_bad_n("\"a\0b\"", 5, JSON_ECONTROL, 2);
    parse_bad("\"\\x\"", JSON_EESCAPE, 1);
    parse_bad("\"\\'\"", JSON_EESCAPE, 1);
    parse_bad_n("\"\\\0\"", 4, JSON_EESCAPE, 1);
    parse_bad("\"\\", JSON_EEND, 2);
    parse_bad("\"\\u12\"", JSON_EESCAPE, 5);
    parse_bad("\"\\u12", JSON_EEND, 5);
    parse_bad("\"\\u12G4\"", JSON_EESCAPE, 5);
    /* lone surrogates: a low half, a high half alone or before another escape */
    parse_bad("\"\\udc00\"", JSON_ESURROGATE, 1);
    parse_bad("\"\\ud800\"", JSON_ESURROGATE, 1);
    parse_bad("\"\\ud800x\"", JSON_ESURROGATE, 1);
    parse_bad("\"\\ud800\\n\"", JSON_ESURROGATE, 1);
    parse_bad("\"\\ud800\\ud800\"", JSON_ESURROGATE, 1);
    parse_bad("\"\\ud800\\u0041\"", JSON_ESURROGATE, 1);
    parse_bad("\"\\ud800", JSON_EEND, 7);
    parse_bad("\"\\ud800\\", JSON_EEND, 8);
    parse_bad("\"\\ud800\\udc", JSON_EEND, 11);
    /* ill-formed UTF-8: overlong, an encoded surrogate, past U+10FFFF, cut short, stray */
    parse_bad("\"a\xc0\xaf\"", JSON_EUTF8, 2);
    parse_bad("\"\xed\xa0\x80\"", JSON_EUTF8, 1);
    parse_bad("\"\xf4\x90\x80\x80\"", JSON_EUTF8, 1);
    parse_bad("\"\xe2\x82\"", JSON_EUTF8, 1);
    parse_bad("\"\xe2\x82", JSON_EUTF8, 1);
    parse_bad("\"\x80\"", JSON_EUTF8, 1);
    parse_bad("\"\xff\"", JSON_EUTF8, 1);
    parse_bad("'a'", JSON_ESYNTAX, 0);
}

static void test_bad_structure(void **state)
{
    (void)state;
    parse_bad("", JSON_EEND, 0);
    parse_bad("   ", JSON_EEND, 3);
    parse_bad("\xef\xbb\xbf{}", JSON_ESYNTAX, 0); /* a byte order mark */
    parse_bad("{} x", JSON_ETRAILING, 3);
    parse_bad("1 2", JSON_ETRAILING, 2);
    parse_bad("[1,]", JSON_ESYNTAX, 3);
    parse_bad("[,1]", JSON_ESYNTAX, 1);
    parse_bad("[1 2]", JSON_ESYNTAX, 3);
    parse_bad("[1", JSON_EEND, 2);
    parse_bad("[", JSON_EEND, 1);
    parse_bad("]", JSON_ESYNTAX, 0);
    parse_bad("{\"a\":1,}", JSON_ESYNTAX, 7);
    parse_bad("{\"a\" 1}", JSON_ESYNTAX, 5);
    parse_bad("{\"a\":}", JSON_ESYNTAX, 5);
    parse_bad("{a:1}", JSON_ESYNTAX, 1);
    parse_bad("{1:1}", JSON_ESYNTAX, 1);
    parse_bad("{\"a\":1", JSON_EEND, 6);
    parse_bad("{\"a\"", JSON_EEND, 4);
    parse_bad("{\"a\":1]", JSON_ESYNTAX, 6);
    parse_bad("[1}", JSON_ESYNTAX, 2);
    parse_bad("tru", JSON_EEND, 3);
    parse_bad("trux", JSON_ESYNTAX, 3);
    parse_bad("True", JSON_ESYNTAX, 0);
    parse_bad("nul", JSON_EEND, 3);
    parse_bad("falsey", JSON_ETRAILING, 5);
    parse_bad("[true false]", JSON_ESYNTAX, 6);
    parse_bad("/* c */ 1", JSON_ESYNTAX, 0);
    parse_bad("\f1", JSON_ESYNTAX, 0); /* form feed is no JSON whitespace */
    parse_bad("[1]\xc2\xa0", JSON_ETRAILING, 3);
}

/* depth nested arrays around an empty one: "[[...[]...]]" */
static char *nested(unsigned depth)
{
    char *s = malloc(2 * depth + 1);

    assert_non_null(s);
    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = '\0';
    return s;
}

static void test_depth(void **state)
{
    struct json_limits lim = {.max_depth = 4};
    struct json_doc doc;
    struct json_error err;
    char *s;

    (void)state;
    s = nested(JSON_DEPTH_DEFAULT);
    parse_ok(s, NULL, &doc);
    assert_int_equal(doc.count, JSON_DEPTH_DEFAULT);
    json_free(&doc);
    free(s);
    s = nested(JSON_DEPTH_DEFAULT + 1);
    assert_int_equal(json_parse(s, strlen(s), NULL, &doc, &err), JSON_EDEPTH);
    assert_int_equal(err.pos, JSON_DEPTH_DEFAULT);
    free(s);
    assert_int_equal(json_parse("[{\"a\":[[1]]}]", 13, &lim, &doc, &err), JSON_OK);
    json_free(&doc);
    assert_int_equal(json_parse("[{\"a\":[[[1]]]}]", 15, &lim, &doc, &err), JSON_EDEPTH);
    assert_int_equal(err.pos, 8);
    /* far past any limit: refused at the limit, without recursing deeper */
    s = nested(100000);
    assert_int_equal(json_parse(s, strlen(s), NULL, &doc, &err), JSON_EDEPTH);
    free(s);
    lim.max_depth = 100000; /* capped at JSON_DEPTH_MAX */
    s = nested(JSON_DEPTH_MAX + 1);
    assert_int_equal(json_parse(s, strlen(s), &lim, &doc, &err), JSON_EDEPTH);
    assert_int_equal(err.pos, JSON_DEPTH_MAX);
    free(s);
}

static void test_values_limit(void **state)
{
    struct json_limits lim = {.max_values = 4};
    struct json_doc doc;
    struct json_error err;

    (void)state;
    assert_int_equal(json_parse("[1,2,3]", 7, &lim, &doc, &err), JSON_OK);
    assert_int_equal(doc.count, 4);
    json_free(&doc);
    assert_int_equal(json_parse("[1,2,3,4]", 9, &lim, &doc, &err), JSON_EVALUES);
    assert_int_equal(err.pos, 7);
    assert_int_equal(json_parse("{\"a\":1,\"b\":2}", 13, &lim, &doc, &err), JSON_EVALUES);
    assert_int_equal(err.pos, 11);
    assert_int_equal(json_parse("[true,null,false,\"x\"]", 21, &lim, &doc, &err), JSON_EVALUES);
}

/* The densest texts fill the node array that the length allows, and no more. */
static void test_densest(void **state)
{
    static const char *const texts[] = {"1",
                                        "[]",
                                        "[1]",
                                        "[1,2,3,4,5,6,7,8,9]",
                                        "{\"\":1}",
                                        "{\"\":{\"\":[]},\"\":0}",
                                        "[[],[],[[]]]",
                                        "[{},[],\"\"]"};
    struct json_doc doc;

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        parse_ok(texts[i], NULL, &doc);
        assert_true(doc.count <= (strlen(texts[i]) + 1) / 2);
        json_free(&doc);
    }
}

/* Strings and containers keep the place of their text in the buffer. */
static void test_positions(void **state)
{
    const char *s = " {\"k\" : [ \"v\\n\" , 12 ] } ";
    struct json_doc doc;
    uint32_t a, e;

    (void)state;
    parse_ok(s, NULL, &doc);
    assert_int_equal(doc.nodes[0].start, 1);
    assert_int_equal(doc.nodes[0].len, strlen(s) - 2);
    a = json_get(&doc, 0, "k");
    assert_memory_equal(s + doc.nodes[a].start, "[ \"v\\n\" , 12 ]", doc.nodes[a].len);
    e = json_first(&doc, a);
    assert_int_equal(doc.nodes[e].len, 3);
    assert_int_equal(doc.nodes[e].count, 1);
    assert_memory_equal(s + doc.nodes[e].start, "v\\n", 3);
    json_free(&doc);
}

static void test_strerror(void **state)
{
    (void)state;
    for (int c = JSON_ENUL; c <= JSON_OK; c++)
        assert_string_not_equal(json_strerror(c), "unknown error");
    assert_string_equal(json_strerror(1), "unknown error");
    assert_string_equal(json_strerror(JSON_ESURROGATE), "unpaired surrogate in a string");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars),       cmocka_unit_test(test_object),
        cmocka_unit_test(test_strings),       cmocka_unit_test(test_string_cap),
        cmocka_unit_test(test_numbers),       cmocka_unit_test(test_long_number),
        cmocka_unit_test(test_bad_numbers),   cmocka_unit_test(test_bad_strings),
        cmocka_unit_test(test_bad_structure), cmocka_unit_test(test_depth),
        cmocka_unit_test(test_values_limit),  cmocka_unit_test(test_densest),
        cmocka_unit_test(test_positions),     cmocka_unit_test(test_strerror),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
