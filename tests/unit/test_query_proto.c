/*
 * test_query_proto.c
 *    Unit tests for protocol/query_proto.c (frontend query messages parsed,
 *    backend replies built) and protocol/query_values.c (values in text and
 *    binary format); cmocka, TAP output.
 *
 *    Messages to parse are built with the pkt builders and parsed from a
 *    heap copy of exactly their body, so that ASan sees any read past it.
 *    Built messages and encoded values are compared with bytes written out
 *    by hand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pg_error.h"
#include "protocol/pkt.h"
#include "protocol/query_proto.h"
#include "protocol/query_values.h"

#define CANARY 0xEE

/* ---- building messages to parse ---- */

struct msg {
    uint8_t buf[4096];
    struct pktbuf pb;
    uint8_t *body; /* exact-size heap copy of the body, made by msg_finish */
    size_t len;
};

static void msg_begin(struct msg *m, char type)
{
    pkt_init(&m->pb, m->buf, sizeof(m->buf));
    pkt_begin(&m->pb, type);
    m->body = NULL;
}

/* Ends the message and copies its body (header checked) to the heap. */
static void msg_finish(struct msg *m)
{
    pkt_end(&m->pb);
    assert_true(pkt_ok(&m->pb));
    m->len = m->pb.len - PKT_HEADER_LEN;
    assert_int_equal(pkt_be32(m->buf + 1), m->len + 4);
    m->body = malloc(m->len ? m->len : 1);
    assert_non_null(m->body);
    if (m->len > 0)
        memcpy(m->body, m->buf + PKT_HEADER_LEN, m->len);
}

static void msg_free(struct msg *m)
{
    free(m->body);
    m->body = NULL;
}

/* A name of n 'n's. */
static const char *name_of(size_t n)
{
    static char name[256];
    assert_true(n < sizeof(name));
    memset(name, 'n', n);
    name[n] = '\0';
    return name;
}

/* Parses a prefix or any bytes from an exact-size heap copy. */
static int parse_bytes(char type, const uint8_t *p, size_t len, struct qp_error *err)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, p, len);
    struct qp_message m;
    int rc = qp_parse_message(type, copy, len, &m, err);
    free(copy);
    return rc;
}

/* The report for err: its SQLSTATE, message and detail must be these. */
static void assert_report(const struct qp_error *err, const char *sqlstate, const char *message,
                          const char *detail)
{
    struct pg_error e;
    qp_error_pg(err, &e);
    assert_string_equal(e.sqlstate, sqlstate);
    assert_string_equal(e.message, message);
    assert_string_equal(e.detail, detail != NULL ? detail : "");
    assert_string_equal(e.hint, "");
}

/* Bind with n values; lens[i] -1 is NULL, else vals[i] has lens[i] bytes. */
struct bind_spec {
    const char *portal, *statement;
    int nformats;
    const int16_t *formats;
    int nparams;
    const int32_t *lens;
    const char *const *vals;
    int nresults;
    const int16_t *results;
};

static void put_bind(struct msg *m, const struct bind_spec *b)
{
    msg_begin(m, 'B');
    pkt_put_cstr(&m->pb, b->portal);
    pkt_put_cstr(&m->pb, b->statement);
    pkt_put_u16(&m->pb, (uint16_t)b->nformats);
    for (int i = 0; i < b->nformats; i++)
        pkt_put_u16(&m->pb, (uint16_t)b->formats[i]);
    pkt_put_u16(&m->pb, (uint16_t)b->nparams);
    for (int i = 0; i < b->nparams; i++) {
        pkt_put_u32(&m->pb, (uint32_t)b->lens[i]);
        if (b->lens[i] > 0)
            pkt_put_bytes(&m->pb, b->vals[i], (size_t)b->lens[i]);
    }
    pkt_put_u16(&m->pb, (uint16_t)b->nresults);
    for (int i = 0; i < b->nresults; i++)
        pkt_put_u16(&m->pb, (uint16_t)b->results[i]);
}

/* The Bind of test_bind_valid: formats (1, 0, 1), an int8, a NULL, an empty string. */
static const int16_t bind_formats[] = {1, 0, 1};
static const int32_t bind_lens[] = {8, -1, 0};
static const char *const bind_vals[] = {"\0\0\0\0\0\0\0\x2a", NULL, ""};
static const int16_t bind_results[] = {1};
static const struct bind_spec bind_example = {"p1",      "s1",      3, bind_formats, 3,
                                              bind_lens, bind_vals, 1, bind_results};

static int parse_bind_spec(const struct bind_spec *b, struct msg *m, struct qp_bind *out,
                           struct qp_error *err)
{
    put_bind(m, b);
    msg_finish(m);
    return qp_parse_bind(m->body, m->len, out, err);
}

/* ---- Query ---- */

static void test_query_valid(void **state)
{
    struct msg m;
    msg_begin(&m, 'Q');
    pkt_put_cstr(&m.pb, "SELECT 1");
    msg_finish(&m);
    struct qp_query q;
    assert_int_equal(qp_parse_query(m.body, m.len, &q, NULL), QP_OK);
    assert_ptr_equal(q.text, m.body);
    assert_int_equal(q.text_len, 8);
    assert_string_equal(q.text, "SELECT 1");
    msg_free(&m);

    /* An empty query is a query (EmptyQueryResponse is the console's business). */
    msg_begin(&m, 'Q');
    pkt_put_cstr(&m.pb, "");
    msg_finish(&m);
    assert_int_equal(qp_parse_query(m.body, m.len, &q, NULL), QP_OK);
    assert_int_equal(q.text_len, 0);
    msg_free(&m);
}

static void test_query_malformed(void **state)
{
    struct qp_error err;
    assert_int_equal(parse_bytes('Q', (const uint8_t *)"SELECT 1", 8, &err), QP_ESTRING);
    assert_int_equal(err.code, QP_ESTRING);
    assert_report(&err, "08P01", "invalid string in message", NULL);
    assert_int_equal(parse_bytes('Q', (const uint8_t *)"", 0, &err), QP_ESTRING);
    /* The NUL must be the last byte. */
    assert_int_equal(parse_bytes('Q', (const uint8_t *)"SELECT 1\0x", 10, &err), QP_ETRAILING);
    assert_report(&err, "08P01", "invalid message format", NULL);
    assert_int_equal(parse_bytes('Q', (const uint8_t *)"A\0\0", 3, &err), QP_ETRAILING);
}

/* ---- Parse ---- */

static void test_parse_valid(void **state)
{
    struct msg m;
    msg_begin(&m, 'P');
    pkt_put_cstr(&m.pb, "stmt1");
    pkt_put_cstr(&m.pb, "SELECT $1::int8, $2");
    pkt_put_u16(&m.pb, 2);
    pkt_put_u32(&m.pb, 20);
    pkt_put_u32(&m.pb, 0);
    msg_finish(&m);
    struct qp_parse p;
    assert_int_equal(qp_parse_parse(m.body, m.len, &p, NULL), QP_OK);
    assert_ptr_equal(p.name, m.body);
    assert_string_equal(p.name, "stmt1");
    assert_string_equal(p.query, "SELECT $1::int8, $2");
    assert_int_equal(p.query_len, strlen("SELECT $1::int8, $2"));
    assert_int_equal(p.nparam_types, 2);
    assert_int_equal(qp_parse_param_type(&p, 0), 20);
    assert_int_equal(qp_parse_param_type(&p, 1), 0);
    assert_int_equal(qp_parse_param_type(&p, 2), 0);
    assert_int_equal(qp_parse_param_type(&p, -1), 0);
    msg_free(&m);

    msg_begin(&m, 'P');
    pkt_put_cstr(&m.pb, "");
    pkt_put_cstr(&m.pb, "SHOW POOLS");
    pkt_put_u16(&m.pb, 0);
    msg_finish(&m);
    assert_int_equal(qp_parse_parse(m.body, m.len, &p, NULL), QP_OK);
    assert_string_equal(p.name, "");
    assert_int_equal(p.nparam_types, 0);
    msg_free(&m);
}

static void test_parse_counts(void **state)
{
    struct msg m;
    struct qp_parse p;
    struct qp_error err;
    /* Negative: -1 and -32768. */
    static const uint16_t negative[] = {0xFFFF, 0x8000};
    for (size_t i = 0; i < 2; i++) {
        msg_begin(&m, 'P');
        pkt_put_cstr(&m.pb, "");
        pkt_put_cstr(&m.pb, "SELECT 1");
        pkt_put_u16(&m.pb, negative[i]);
        pkt_put_u32(&m.pb, 23);
        msg_finish(&m);
        assert_int_equal(qp_parse_parse(m.body, m.len, &p, &err), QP_ECOUNT);
        assert_int_equal(err.arg1, (int16_t)negative[i]);
        msg_free(&m);
    }
    assert_report(&err, "08P01", "invalid message format",
                  "The message has a negative count (-32768).");

    /* 32767 OIDs announced, two sent. */
    msg_begin(&m, 'P');
    pkt_put_cstr(&m.pb, "");
    pkt_put_cstr(&m.pb, "SELECT 1");
    pkt_put_u16(&m.pb, 0x7FFF);
    pkt_put_u32(&m.pb, 23);
    pkt_put_u32(&m.pb, 23);
    msg_finish(&m);
    assert_int_equal(qp_parse_parse(m.body, m.len, &p, &err), QP_ETRUNCATED);
    assert_report(&err, "08P01", "insufficient data left in message", NULL);
    msg_free(&m);

    /* One OID announced, two sent. */
    msg_begin(&m, 'P');
    pkt_put_cstr(&m.pb, "");
    pkt_put_cstr(&m.pb, "SELECT 1");
    pkt_put_u16(&m.pb, 1);
    pkt_put_u32(&m.pb, 23);
    pkt_put_u32(&m.pb, 23);
    msg_finish(&m);
    assert_int_equal(qp_parse_parse(m.body, m.len, &p, &err), QP_ETRAILING);
    msg_free(&m);
}

static void test_parse_names(void **state)
{
    struct msg m;
    struct qp_parse p;
    struct qp_error err;
    msg_begin(&m, 'P');
    pkt_put_cstr(&m.pb, name_of(QP_NAME_MAX));
    pkt_put_cstr(&m.pb, "SELECT 1");
    pkt_put_u16(&m.pb, 0);
    msg_finish(&m);
    assert_int_equal(qp_parse_parse(m.body, m.len, &p, &err), QP_OK);
    assert_int_equal(strlen(p.name), 63);
    msg_free(&m);

    msg_begin(&m, 'P');
    pkt_put_cstr(&m.pb, name_of(QP_NAME_MAX + 1));
    pkt_put_cstr(&m.pb, "SELECT 1");
    pkt_put_u16(&m.pb, 0);
    msg_finish(&m);
    assert_int_equal(qp_parse_parse(m.body, m.len, &p, &err), QP_ENAMETOOLONG);
    assert_report(&err, "42622", "prepared statement name is too long",
                  "The name is 64 bytes long; the limit is 63 bytes.");
    msg_free(&m);

    /* The query string lacks its NUL. */
    static const uint8_t body[] = {'s', 0, 'S', 'E', 'L'};
    assert_int_equal(parse_bytes('P', body, sizeof(body), &err), QP_ESTRING);
}

/* ---- Bind ---- */

static void test_bind_valid(void **state)
{
    struct msg m;
    struct qp_bind b;
    assert_int_equal(parse_bind_spec(&bind_example, &m, &b, NULL), QP_OK);
    assert_string_equal(b.portal, "p1");
    assert_string_equal(b.statement, "s1");
    assert_int_equal(b.nparam_formats, 3);
    assert_int_equal(b.nparams, 3);
    assert_int_equal(b.nresult_formats, 1);
    assert_int_equal(b.params_len, 4 + 8 + 4 + 4);
    assert_true(b.params >= m.body && b.params + b.params_len <= m.body + m.len);

    struct qp_param_iter it;
    struct qp_param v;
    qp_param_iter_init(&it, &b);
    assert_true(qp_param_iter_next(&it, &v));
    assert_int_equal(v.index, 0);
    assert_false(v.is_null);
    assert_int_equal(v.len, 8);
    assert_int_equal(v.format, QP_FORMAT_BINARY);
    assert_memory_equal(v.data, "\0\0\0\0\0\0\0\x2a", 8);
    assert_true(qp_param_iter_next(&it, &v));
    assert_int_equal(v.index, 1);
    assert_true(v.is_null);
    assert_null(v.data);
    assert_int_equal(v.format, QP_FORMAT_TEXT);
    assert_true(qp_param_iter_next(&it, &v));
    assert_false(v.is_null);
    assert_int_equal(v.len, 0);
    assert_int_equal(v.format, QP_FORMAT_BINARY);
    assert_false(qp_param_iter_next(&it, &v));
    assert_false(qp_param_iter_next(&it, &v));

    /* By index, walking from the start. */
    assert_true(qp_bind_param(&b, 1, &v));
    assert_true(v.is_null);
    assert_true(qp_bind_param(&b, 0, &v));
    assert_int_equal(v.len, 8);
    assert_false(qp_bind_param(&b, 3, &v));
    assert_false(qp_bind_param(&b, -1, &v));
    for (int col = 0; col < 5; col++)
        assert_int_equal(qp_bind_result_format(&b, col), QP_FORMAT_BINARY);
    msg_free(&m);
}

/* No format codes: all text; one: for all. */
static void test_bind_format_rules(void **state)
{
    static const int32_t lens[] = {1, 1};
    static const char *const vals[] = {"a", "b"};
    static const int16_t one_binary[] = {1};
    struct msg m;
    struct qp_bind b;

    struct bind_spec none = {"", "", 0, NULL, 2, lens, vals, 0, NULL};
    assert_int_equal(parse_bind_spec(&none, &m, &b, NULL), QP_OK);
    assert_int_equal(qp_bind_param_format(&b, 0), QP_FORMAT_TEXT);
    assert_int_equal(qp_bind_param_format(&b, 1), QP_FORMAT_TEXT);
    assert_int_equal(qp_bind_result_format(&b, 0), QP_FORMAT_TEXT);
    assert_int_equal(qp_bind_check_result_formats(&b, 7, NULL), QP_OK);
    msg_free(&m);

    struct bind_spec one = {"", "", 1, one_binary, 2, lens, vals, 1, one_binary};
    assert_int_equal(parse_bind_spec(&one, &m, &b, NULL), QP_OK);
    assert_int_equal(qp_bind_param_format(&b, 0), QP_FORMAT_BINARY);
    assert_int_equal(qp_bind_param_format(&b, 1), QP_FORMAT_BINARY);
    assert_int_equal(qp_bind_check_result_formats(&b, 3, NULL), QP_OK);
    msg_free(&m);

    /* One format and no parameters is fine too. */
    struct bind_spec no_params = {"", "", 1, one_binary, 0, NULL, NULL, 0, NULL};
    assert_int_equal(parse_bind_spec(&no_params, &m, &b, NULL), QP_OK);
    struct qp_param_iter it;
    struct qp_param v;
    qp_param_iter_init(&it, &b);
    assert_false(qp_param_iter_next(&it, &v));
    msg_free(&m);
}

static void test_bind_format_count_mismatch(void **state)
{
    static const int16_t two[] = {0, 1};
    static const int32_t lens[] = {1, 1, 1};
    static const char *const vals[] = {"a", "b", "c"};
    struct msg m;
    struct qp_bind b;
    struct qp_error err;
    struct bind_spec spec = {"", "", 2, two, 3, lens, vals, 0, NULL};
    assert_int_equal(parse_bind_spec(&spec, &m, &b, &err), QP_EFORMATCOUNT);
    assert_report(&err, "08P01", "bind message has 2 parameter formats but 3 parameters", NULL);
    msg_free(&m);

    /* Result formats are checked against the columns once they are known. */
    struct bind_spec results = {"", "", 0, NULL, 0, NULL, NULL, 2, two};
    assert_int_equal(parse_bind_spec(&results, &m, &b, &err), QP_OK);
    assert_int_equal(qp_bind_result_format(&b, 0), QP_FORMAT_TEXT);
    assert_int_equal(qp_bind_result_format(&b, 1), QP_FORMAT_BINARY);
    assert_int_equal(qp_bind_check_result_formats(&b, 2, &err), QP_OK);
    assert_int_equal(qp_bind_check_result_formats(&b, 3, &err), QP_ERESULTFORMATS);
    assert_report(&err, "08P01", "bind message has 2 result formats but query has 3 columns", NULL);
    msg_free(&m);
}

static void test_bind_bad_format_codes(void **state)
{
    static const int16_t bad[][1] = {{2}, {-1}, {0x7FFF}};
    static const char *const messages[] = {"unsupported format code: 2",
                                           "unsupported format code: -1",
                                           "unsupported format code: 32767"};
    static const int32_t lens[] = {1};
    static const char *const vals[] = {"a"};
    struct msg m;
    struct qp_bind b;
    struct qp_error err;
    for (size_t i = 0; i < 3; i++) {
        struct bind_spec params = {"", "", 1, bad[i], 1, lens, vals, 0, NULL};
        assert_int_equal(parse_bind_spec(&params, &m, &b, &err), QP_EFORMATCODE);
        assert_report(&err, "22023", messages[i], NULL);
        msg_free(&m);
        struct bind_spec results = {"", "", 0, NULL, 1, lens, vals, 1, bad[i]};
        assert_int_equal(parse_bind_spec(&results, &m, &b, &err), QP_EFORMATCODE);
        assert_int_equal(err.arg1, bad[i][0]);
        msg_free(&m);
    }
}

/* Bind up to its parameter count, then the given raw bytes. */
static int bind_with_tail(const uint8_t *tail, size_t n, struct qp_error *err)
{
    struct msg m;
    msg_begin(&m, 'B');
    pkt_put_cstr(&m.pb, "");
    pkt_put_cstr(&m.pb, "");
    pkt_put_u16(&m.pb, 0);
    pkt_put_bytes(&m.pb, tail, n);
    msg_finish(&m);
    struct qp_bind b;
    int rc = qp_parse_bind(m.body, m.len, &b, err);
    msg_free(&m);
    return rc;
}

static void test_bind_bad_lengths(void **state)
{
    struct qp_error err;
    /* One parameter of length -2. */
    static const uint8_t minus_two[] = {0, 1, 0xFF, 0xFF, 0xFF, 0xFE, 0, 0};
    assert_int_equal(bind_with_tail(minus_two, sizeof(minus_two), &err), QP_EVALUELEN);
    assert_report(&err, "08P01", "insufficient data left in message",
                  "Bind parameter 1 has length -2.");
    /* INT32_MIN. */
    static const uint8_t most_negative[] = {0, 1, 0x80, 0, 0, 0, 0, 0};
    assert_int_equal(bind_with_tail(most_negative, sizeof(most_negative), &err), QP_EVALUELEN);
    /* Longer than the message: by one byte, and by 2 GiB. */
    static const uint8_t one_short[] = {0, 1, 0, 0, 0, 3, 'a', 'b', 0, 0};
    assert_int_equal(bind_with_tail(one_short, sizeof(one_short), &err), QP_ETRUNCATED);
    static const uint8_t huge[] = {0, 1, 0x7F, 0xFF, 0xFF, 0xFF, 'a', 0, 0};
    assert_int_equal(bind_with_tail(huge, sizeof(huge), &err), QP_ETRUNCATED);
    /* Two parameters announced, one sent. */
    static const uint8_t missing[] = {0, 2, 0, 0, 0, 1, 'a', 0, 0};
    assert_int_equal(bind_with_tail(missing, sizeof(missing), &err), QP_ETRUNCATED);
    /* 32767 parameters announced, all NULL, but only three there. */
    static const uint8_t many[] = {0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
                                   0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0,    0};
    assert_int_equal(bind_with_tail(many, sizeof(many), &err), QP_ETRUNCATED);
    /* Negative parameter count, negative result format count. */
    static const uint8_t negative_params[] = {0xFF, 0xFF, 0, 0};
    assert_int_equal(bind_with_tail(negative_params, sizeof(negative_params), &err), QP_ECOUNT);
    assert_int_equal(err.arg1, -1);
    static const uint8_t negative_results[] = {0, 0, 0x80, 0x00};
    assert_int_equal(bind_with_tail(negative_results, sizeof(negative_results), &err), QP_ECOUNT);
    assert_int_equal(err.arg1, -32768);
    /* Trailing garbage after the result formats. */
    static const uint8_t trailing[] = {0, 0, 0, 0, 0x42};
    assert_int_equal(bind_with_tail(trailing, sizeof(trailing), &err), QP_ETRAILING);
    static const uint8_t fine[] = {0, 0, 0, 0};
    assert_int_equal(bind_with_tail(fine, sizeof(fine), &err), QP_OK);
}

static void test_bind_negative_format_count(void **state)
{
    static const uint8_t body[] = {0, 0, 0xFF, 0xFE, 0, 0, 0, 0};
    struct qp_error err;
    assert_int_equal(parse_bytes('B', body, sizeof(body), &err), QP_ECOUNT);
    assert_int_equal(err.arg1, -2);
}

static void test_bind_names(void **state)
{
    struct msg m;
    struct qp_bind b;
    struct qp_error err;
    struct bind_spec spec = {name_of(QP_NAME_MAX + 1), "", 0, NULL, 0, NULL, NULL, 0, NULL};
    assert_int_equal(parse_bind_spec(&spec, &m, &b, &err), QP_ENAMETOOLONG);
    assert_report(&err, "42622", "portal name is too long",
                  "The name is 64 bytes long; the limit is 63 bytes.");
    msg_free(&m);
    struct bind_spec stmt = {"", name_of(200), 0, NULL, 0, NULL, NULL, 0, NULL};
    assert_int_equal(parse_bind_spec(&stmt, &m, &b, &err), QP_ENAMETOOLONG);
    assert_report(&err, "42622", "prepared statement name is too long",
                  "The name is 200 bytes long; the limit is 63 bytes.");
    msg_free(&m);
    struct bind_spec longest = {name_of(63), "", 0, NULL, 0, NULL, NULL, 0, NULL};
    assert_int_equal(parse_bind_spec(&longest, &m, &b, &err), QP_OK);
    msg_free(&m);
    /* The statement name runs to the end without a NUL. */
    static const uint8_t body[] = {'p', 0, 's', 't'};
    assert_int_equal(parse_bytes('B', body, sizeof(body), &err), QP_ESTRING);
}

/* ---- Describe, Close, Execute, Sync, Flush, Terminate ---- */

static void test_describe_close(void **state)
{
    struct qp_target t;
    struct qp_error err;
    static const uint8_t statement[] = {'S', 's', '1', 0};
    assert_int_equal(qp_parse_describe(statement, sizeof(statement), &t, NULL), QP_OK);
    assert_int_equal(t.kind, 'S');
    assert_ptr_equal(t.name, statement + 1);
    static const uint8_t portal[] = {'P', 0};
    assert_int_equal(qp_parse_close(portal, sizeof(portal), &t, NULL), QP_OK);
    assert_int_equal(t.kind, 'P');
    assert_string_equal(t.name, "");

    static const uint8_t other[] = {'X', 0};
    assert_int_equal(qp_parse_describe(other, sizeof(other), &t, &err), QP_ESUBTYPE);
    assert_report(&err, "08P01", "invalid DESCRIBE message subtype 88", NULL);
    assert_int_equal(qp_parse_close(other, sizeof(other), &t, &err), QP_ESUBTYPE);
    assert_report(&err, "08P01", "invalid CLOSE message subtype 88", NULL);
    static const uint8_t high[] = {0xC8, 0};
    assert_int_equal(qp_parse_close(high, sizeof(high), &t, &err), QP_ESUBTYPE);
    assert_int_equal(err.arg1, 200);

    assert_int_equal(parse_bytes('D', NULL, 0, &err), QP_ETRUNCATED);
    assert_int_equal(parse_bytes('C', (const uint8_t *)"S", 1, &err), QP_ESTRING);
    assert_int_equal(parse_bytes('D', (const uint8_t *)"Sab", 3, &err), QP_ESTRING);
    assert_int_equal(parse_bytes('D', (const uint8_t *)"Sa\0\0", 4, &err), QP_ETRAILING);
}

static void test_describe_close_names(void **state)
{
    struct msg m;
    struct qp_target t;
    struct qp_error err;
    msg_begin(&m, 'C');
    pkt_put_u8(&m.pb, 'P');
    pkt_put_cstr(&m.pb, name_of(64));
    msg_finish(&m);
    assert_int_equal(qp_parse_close(m.body, m.len, &t, &err), QP_ENAMETOOLONG);
    assert_report(&err, "42622", "portal name is too long",
                  "The name is 64 bytes long; the limit is 63 bytes.");
    msg_free(&m);
    msg_begin(&m, 'D');
    pkt_put_u8(&m.pb, 'S');
    pkt_put_cstr(&m.pb, name_of(64));
    msg_finish(&m);
    assert_int_equal(qp_parse_describe(m.body, m.len, &t, &err), QP_ENAMETOOLONG);
    assert_string_equal(err.what, "prepared statement");
    msg_free(&m);
}

static void test_execute(void **state)
{
    struct msg m;
    struct qp_execute e;
    struct qp_error err;
    static const int32_t rows[] = {0, 100, -1, INT32_MAX};
    for (size_t i = 0; i < 4; i++) {
        msg_begin(&m, 'E');
        pkt_put_cstr(&m.pb, "cur");
        pkt_put_u32(&m.pb, (uint32_t)rows[i]);
        msg_finish(&m);
        assert_int_equal(qp_parse_execute(m.body, m.len, &e, NULL), QP_OK);
        assert_string_equal(e.portal, "cur");
        assert_int_equal(e.max_rows, rows[i]);
        msg_free(&m);
    }
    assert_int_equal(parse_bytes('E', (const uint8_t *)"\0\0\0\0", 4, &err), QP_ETRUNCATED);
    assert_int_equal(parse_bytes('E', (const uint8_t *)"\0\0\0\0\0\0", 6, &err), QP_ETRAILING);
    assert_int_equal(parse_bytes('E', (const uint8_t *)"cur", 3, &err), QP_ESTRING);
    msg_begin(&m, 'E');
    pkt_put_cstr(&m.pb, name_of(64));
    pkt_put_u32(&m.pb, 0);
    msg_finish(&m);
    assert_int_equal(qp_parse_execute(m.body, m.len, &e, &err), QP_ENAMETOOLONG);
    assert_string_equal(err.what, "portal");
    msg_free(&m);
}

static void test_empty_messages(void **state)
{
    static const char types[] = {'S', 'H', 'X'};
    struct qp_error err;
    for (size_t i = 0; i < sizeof(types); i++) {
        assert_int_equal(parse_bytes(types[i], NULL, 0, &err), QP_OK);
        assert_int_equal(parse_bytes(types[i], (const uint8_t *)"", 1, &err), QP_ETRAILING);
    }
    assert_int_equal(qp_parse_empty((const uint8_t *)"x", 0, NULL), QP_OK);
}

static void test_unknown_type(void **state)
{
    struct qp_error err;
    assert_int_equal(parse_bytes('Z', (const uint8_t *)"I", 1, &err), QP_ETYPE);
    assert_report(&err, "08P01", "invalid frontend message type 90", NULL);
    assert_int_equal(parse_bytes('F', NULL, 0, &err), QP_ETYPE);
    assert_int_equal(parse_bytes((char)0xFF, NULL, 0, &err), QP_ETYPE);
    assert_int_equal(err.arg1, 255);
}

/* ---- every prefix, every suffix ---- */

/* One valid message of each kind with a body, built into m (body on the heap). */
static char build_example(int which, struct msg *m)
{
    switch (which) {
    case 0:
        msg_begin(m, 'Q');
        pkt_put_cstr(&m->pb, "SHOW STATS");
        break;
    case 1:
        msg_begin(m, 'P');
        pkt_put_cstr(&m->pb, "s1");
        pkt_put_cstr(&m->pb, "SELECT $1");
        pkt_put_u16(&m->pb, 1);
        pkt_put_u32(&m->pb, 25);
        break;
    case 2:
        put_bind(m, &bind_example);
        break;
    case 3:
        msg_begin(m, 'D');
        pkt_put_u8(&m->pb, 'P');
        pkt_put_cstr(&m->pb, "p1");
        break;
    case 4:
        msg_begin(m, 'E');
        pkt_put_cstr(&m->pb, "p1");
        pkt_put_u32(&m->pb, 10);
        break;
    default:
        msg_begin(m, 'C');
        pkt_put_u8(&m->pb, 'S');
        pkt_put_cstr(&m->pb, "s1");
        break;
    }
    msg_finish(m);
    return (char)m->buf[0];
}

/* Cut anywhere, a message is always short of a NUL or of a field. */
static void test_truncated_everywhere(void **state)
{
    int checked = 0;
    for (int which = 0; which < 6; which++) {
        struct msg m;
        char type = build_example(which, &m);
        struct qp_error err;
        assert_int_equal(parse_bytes(type, m.body, m.len, &err), QP_OK);
        for (size_t cut = 0; cut < m.len; cut++) {
            int rc = parse_bytes(type, m.body, cut, &err);
            if (rc != QP_ETRUNCATED && rc != QP_ESTRING)
                fail_msg("%c cut at %zu of %zu: %s", type, cut, m.len, qp_strerror(rc));
            checked++;
        }
        msg_free(&m);
    }
    assert_true(checked > 60);
}

/* One byte more, of any value, is always left over. */
static void test_trailing_everywhere(void **state)
{
    for (int which = 0; which < 6; which++) {
        struct msg m;
        char type = build_example(which, &m);
        uint8_t longer[512];
        assert_true(m.len + 1 <= sizeof(longer));
        memcpy(longer, m.body, m.len);
        static const uint8_t extra[] = {0, 1, 'S', 0xFF};
        for (size_t i = 0; i < sizeof(extra); i++) {
            longer[m.len] = extra[i];
            struct qp_error err;
            assert_int_equal(parse_bytes(type, longer, m.len + 1, &err), QP_ETRAILING);
        }
        msg_free(&m);
    }
}

static void test_strerror(void **state)
{
    for (int code = QP_ETYPE; code <= QP_OK; code++) {
        assert_non_null(qp_strerror(code));
        assert_string_not_equal(qp_strerror(code), "unknown query message error");
    }
    assert_string_equal(qp_strerror(-99), "unknown query message error");
}

/* ---- backend messages ---- */

static void test_row_description(void **state)
{
    uint8_t buf[128];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    const struct qp_column cols[] = {
        {"id", 20, 8, -1, QP_FORMAT_TEXT},
        {"at", 1184, 8, -1, QP_FORMAT_BINARY},
        {"avg", 1700, -1, (10 << 16 | 2) + 4, QP_FORMAT_TEXT},
    };
    qp_put_row_description(&pb, cols, 3);
    /* Each column: name, table OID 0, attnum 0, type OID, typlen, typmod, format. */
    static const uint8_t want[] = {
        'T',  0,    0,    0,    70,   0, 3,                                  /* header, 3 columns */
        'i',  'd',  0,    0,    0,    0, 0, 0, 0, 0, 0, 0,    20,   0,    8, /* id int8 */
        0xFF, 0xFF, 0xFF, 0xFF, 0,    0,                                     /* typmod -1, text */
        'a',  't',  0,    0,    0,    0, 0, 0, 0, 0, 0, 0x04, 0xA0, 0,    8, /* at timestamptz */
        0xFF, 0xFF, 0xFF, 0xFF, 0,    1,                                     /* typmod -1, binary */
        'a',  'v',  'g',  0,    0,    0, 0, 0, 0, 0, 0, 0,    0x06, 0xA4, 0xFF, /* avg numeric */
        0xFF, 0,    0x0A, 0,    0x06, 0, 0, /* typmod (10,2), text */
    };
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_data_row(void **state)
{
    uint8_t buf[64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    const struct qp_datum vals[] = {
        {"42", 2, false},
        {NULL, 0, true},
        {"", 0, false},
        {"\x00\x01", 2, false},
    };
    qp_put_data_row(&pb, vals, 4);
    static const uint8_t want[] = {
        'D',  0,    0,    0,    26,   0,    4, /* header, 4 values */
        0,    0,    0,    2,    '4',  '2',     /* "42" */
        0xFF, 0xFF, 0xFF, 0xFF,                /* NULL */
        0,    0,    0,    0,                   /* "" */
        0,    0,    0,    2,    0x00, 0x01,    /* two binary bytes */
    };
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));

    pkt_init(&pb, buf, sizeof(buf));
    qp_put_data_row(&pb, NULL, 0);
    static const uint8_t empty[] = {'D', 0, 0, 0, 6, 0, 0};
    assert_int_equal(pb.len, sizeof(empty));
    assert_memory_equal(buf, empty, sizeof(empty));
}

static void test_command_complete(void **state)
{
    uint8_t buf[64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    qp_put_command_complete(&pb, "SELECT 3");
    qp_put_command_complete(&pb, "SET");
    static const uint8_t want[] = {'C', 0, 0,   0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ',
                                   '3', 0, 'C', 0, 0,  0,   8,   'S', 'E', 'T', 0};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_small_messages(void **state)
{
    uint8_t buf[64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    qp_put_empty_query_response(&pb);
    qp_put_parse_complete(&pb);
    qp_put_bind_complete(&pb);
    qp_put_close_complete(&pb);
    qp_put_no_data(&pb);
    qp_put_portal_suspended(&pb);
    static const uint8_t want[] = {'I', 0, 0, 0, 4, '1', 0, 0, 0, 4, '2', 0, 0, 0, 4,
                                   '3', 0, 0, 0, 4, 'n', 0, 0, 0, 4, 's', 0, 0, 0, 4};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

static void test_parameter_description(void **state)
{
    uint8_t buf[64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    static const uint32_t oids[] = {20, 25};
    qp_put_parameter_description(&pb, oids, 2);
    qp_put_parameter_description(&pb, NULL, 0);
    static const uint8_t want[] = {'t', 0, 0, 0,  14,  0, 2, 0, 0, 0, 20,
                                   0,   0, 0, 25, 't', 0, 0, 0, 6, 0, 0};
    assert_true(pkt_ok(&pb));
    assert_int_equal(pb.len, sizeof(want));
    assert_memory_equal(buf, want, sizeof(want));
}

/* Counts an int16 cannot hold, values over 2 GiB and full buffers fail the builder. */
static void test_builder_limits(void **state)
{
    uint8_t storage[64];
    struct pktbuf pb;
    memset(storage, CANARY, sizeof(storage));

    pkt_init(&pb, storage, sizeof(storage));
    qp_put_data_row(&pb, NULL, -1);
    assert_false(pkt_ok(&pb));
    pkt_init(&pb, storage, sizeof(storage));
    qp_put_parameter_description(&pb, NULL, 32768);
    assert_false(pkt_ok(&pb));
    pkt_init(&pb, storage, sizeof(storage));
    qp_put_row_description(&pb, NULL, 40000);
    assert_false(pkt_ok(&pb));

    const struct qp_datum huge = {NULL, (size_t)INT32_MAX + 1, false};
    pkt_init(&pb, storage, sizeof(storage));
    qp_put_data_row(&pb, &huge, 1);
    assert_false(pkt_ok(&pb));

    /* Room for 20 bytes only: nothing past them is touched. */
    const struct qp_column col = {"a_rather_long_column_name", 25, -1, -1, 0};
    memset(storage, CANARY, sizeof(storage));
    pkt_init(&pb, storage, 20);
    qp_put_row_description(&pb, &col, 1);
    assert_false(pkt_ok(&pb));
    for (size_t i = 20; i < sizeof(storage); i++)
        assert_int_equal(storage[i], CANARY);
}

/* ---- values ---- */

/*
 * The expected texts are what PostgreSQL 15.18 printed for the same values
 * with TimeZone UTC (psql -At; numeric as round(v::float8::numeric, s)),
 * and the numeric bytes what its COPY ... (FORMAT binary) sent.
 */

/* text encoder's output for one value must be want, and fit exactly strlen(want) + 1 bytes. */
#define ASSERT_TEXT(call_with_buf_cap, want)                                                       \
    do {                                                                                           \
        char buf[400];                                                                             \
        size_t cap = sizeof(buf);                                                                  \
        int n_ = (call_with_buf_cap);                                                              \
        assert_int_equal(n_, strlen(want));                                                        \
        assert_string_equal(buf, want);                                                            \
        cap = strlen(want) + 1;                                                                    \
        assert_int_equal((call_with_buf_cap), (int)strlen(want));                                  \
        cap = strlen(want);                                                                        \
        assert_int_equal((call_with_buf_cap), -1);                                                 \
    } while (0)

static void test_text_integers(void **state)
{
    ASSERT_TEXT(qp_text_int8(buf, cap, 0), "0");
    ASSERT_TEXT(qp_text_int8(buf, cap, -42), "-42");
    ASSERT_TEXT(qp_text_int8(buf, cap, INT64_MIN), "-9223372036854775808");
    ASSERT_TEXT(qp_text_int8(buf, cap, INT64_MAX), "9223372036854775807");
    ASSERT_TEXT(qp_text_int8_unsigned(buf, cap, (uint64_t)INT64_MAX), "9223372036854775807");
    char text[QP_TEXT_MAX];
    assert_int_equal(qp_text_int8_unsigned(text, sizeof(text), (uint64_t)INT64_MAX + 1), -1);
    assert_int_equal(qp_text_int8_unsigned(text, sizeof(text), UINT64_MAX), -1);
    ASSERT_TEXT(qp_text_int4(buf, cap, INT32_MIN), "-2147483648");
    ASSERT_TEXT(qp_text_int4(buf, cap, 7), "7");
    ASSERT_TEXT(qp_text_bool(buf, cap, true), "t");
    ASSERT_TEXT(qp_text_bool(buf, cap, false), "f");
}

static double double_of_bits(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof(v));
    return v;
}

static void test_text_float8(void **state)
{
    ASSERT_TEXT(qp_text_float8(buf, cap, 0.1), "0.1");
    ASSERT_TEXT(qp_text_float8(buf, cap, 1e20), "1e+20");
    ASSERT_TEXT(qp_text_float8(buf, cap, 1.5e-5), "1.5e-05");
    ASSERT_TEXT(qp_text_float8(buf, cap, 1e-5), "1e-05");
    ASSERT_TEXT(qp_text_float8(buf, cap, 100), "100");
    ASSERT_TEXT(qp_text_float8(buf, cap, 1e15), "1e+15");
    ASSERT_TEXT(qp_text_float8(buf, cap, 1e14), "100000000000000");
    ASSERT_TEXT(qp_text_float8(buf, cap, 0.0001), "0.0001");
    ASSERT_TEXT(qp_text_float8(buf, cap, -2.5), "-2.5");
    ASSERT_TEXT(qp_text_float8(buf, cap, 123456.789), "123456.789");
    ASSERT_TEXT(qp_text_float8(buf, cap, 0.1 + 0.2), "0.30000000000000004");
    ASSERT_TEXT(qp_text_float8(buf, cap, NAN), "NaN");
    ASSERT_TEXT(qp_text_float8(buf, cap, INFINITY), "Infinity");
    ASSERT_TEXT(qp_text_float8(buf, cap, -INFINITY), "-Infinity");
    ASSERT_TEXT(qp_text_float8(buf, cap, -0.0), "-0");
    ASSERT_TEXT(qp_text_float8(buf, cap, 0.0), "0");
    ASSERT_TEXT(qp_text_float8(buf, cap, double_of_bits(1)), "5e-324");
    ASSERT_TEXT(qp_text_float8(buf, cap, double_of_bits(0x7FEFFFFFFFFFFFFFu)),
                "1.7976931348623157e+308");
    /*
     * 3092535278770144000 lies exactly halfway between this double and the
     * next one below: printf-style shortest round trip takes it (16
     * digits), PostgreSQL's Ryu does not.
     */
    ASSERT_TEXT(qp_text_float8(buf, cap, double_of_bits(0x43C5757239BD3AA2u)),
                "3.0925352787701443e+18");
    /* Powers of two: the double below is half as far as the one above. */
    ASSERT_TEXT(qp_text_float8(buf, cap, 18446744073709551616.0), "1.8446744073709552e+19");
    ASSERT_TEXT(qp_text_float8(buf, cap, 0x1p-24), "5.960464477539063e-08");
    ASSERT_TEXT(qp_text_float8(buf, cap, 0x1p-44), "5.684341886080802e-14");
}

static void test_text_numeric(void **state)
{
    ASSERT_TEXT(qp_text_numeric(buf, cap, 0.125, 2), "0.13");
    ASSERT_TEXT(qp_text_numeric(buf, cap, 2.675, 2), "2.68"); /* 2.67499999... as a double */
    ASSERT_TEXT(qp_text_numeric(buf, cap, -0.001, 2), "0.00");
    ASSERT_TEXT(qp_text_numeric(buf, cap, 1.5, 4), "1.5000");
    ASSERT_TEXT(qp_text_numeric(buf, cap, 0.5, 0), "1");
    ASSERT_TEXT(qp_text_numeric(buf, cap, -0.5, 0), "-1");
    ASSERT_TEXT(qp_text_numeric(buf, cap, 999.995, 2), "1000.00");
    ASSERT_TEXT(qp_text_numeric(buf, cap, 1e20, 2), "100000000000000000000.00");
    ASSERT_TEXT(qp_text_numeric(buf, cap, 0.1, 20), "0.10000000000000000000");
    ASSERT_TEXT(qp_text_numeric(buf, cap, 1.0 / 3, 18), "0.333333333333333000");
    ASSERT_TEXT(qp_text_numeric(buf, cap, 1e-20, 3), "0.000");
    ASSERT_TEXT(qp_text_numeric(buf, cap, 123456789.987654321, 9), "123456789.987654000");
    ASSERT_TEXT(qp_text_numeric(buf, cap, NAN, 2), "NaN");
    ASSERT_TEXT(qp_text_numeric(buf, cap, -INFINITY, 2), "-Infinity");
    char text[QP_TEXT_MAX];
    assert_int_equal(qp_text_numeric(text, sizeof(text), 1, -1), -1);
    assert_int_equal(qp_text_numeric(text, sizeof(text), 1, QP_NUMERIC_MAX_SCALE + 1), -1);
    /* The largest double at the largest scale fits the documented room. */
    static char big[312 + QP_NUMERIC_MAX_SCALE];
    int n = qp_text_numeric(big, sizeof(big), -1.7976931348623157e308, QP_NUMERIC_MAX_SCALE);
    assert_int_equal(n, 1 + 309 + 1 + QP_NUMERIC_MAX_SCALE);
    assert_memory_equal(big, "-179769313486232000000", 22);
}

/* Days from 1970-01-01 to 2026-11-22: 56 years with 14 leap days, then Jan to Oct and 21. */
#define DAYS_TO_2026_11_22     (56 * 365 + 14 + (31 + 28 + 31 + 30 + 31 + 30 + 31 + 31 + 30 + 31) + 21)
#define SECS_2026_11_22_101530 ((int64_t)DAYS_TO_2026_11_22 * 86400 + 10 * 3600 + 15 * 60 + 30)
/* 2000-01-01: 30 years with 7 leap days (1972 to 1996). */
#define SECS_2000_01_01 ((int64_t)(30 * 365 + 7) * 86400)

static void test_text_timestamptz(void **state)
{
    assert_int_equal(SECS_2026_11_22_101530, 1795342530); /* as PostgreSQL's extract(epoch) */
    struct timeval tv = {SECS_2026_11_22_101530, 123456};
    ASSERT_TEXT(qp_text_timestamptz(buf, cap, &tv), "2026-11-22 10:15:30.123456+00");
    tv.tv_usec = 120000;
    ASSERT_TEXT(qp_text_timestamptz(buf, cap, &tv), "2026-11-22 10:15:30.12+00");
    tv.tv_usec = 0;
    ASSERT_TEXT(qp_text_timestamptz(buf, cap, &tv), "2026-11-22 10:15:30+00");
    ASSERT_TEXT(qp_text_timestamptz_time(buf, cap, SECS_2026_11_22_101530),
                "2026-11-22 10:15:30+00");
    ASSERT_TEXT(qp_text_timestamptz_time(buf, cap, 0), "1970-01-01 00:00:00+00");
    ASSERT_TEXT(qp_text_timestamptz_time(buf, cap, SECS_2000_01_01), "2000-01-01 00:00:00+00");
    /* 2000-02-29 23:59:59.5: 59 days into 2000. */
    struct timeval leap = {SECS_2000_01_01 + 60 * 86400 - 1, 500000};
    ASSERT_TEXT(qp_text_timestamptz(buf, cap, &leap), "2000-02-29 23:59:59.5+00");
    struct timeval before_epoch = {-1, 999999};
    ASSERT_TEXT(qp_text_timestamptz(buf, cap, &before_epoch), "1969-12-31 23:59:59.999999+00");
    /* 1 BC (year 0) began 719528 days before 1970: 1970 years of 365.2425 days. */
    ASSERT_TEXT(qp_text_timestamptz_time(buf, cap, -(time_t)719528 * 86400),
                "0001-01-01 00:00:00+00 BC");
}

/* PostgreSQL's range: 4714-11-24 00:00 BC to 294276-12-31 23:59:59.999999. */
static void test_timestamptz_range(void **state)
{
    /* Its ends in microseconds from 2000-01-01, from PostgreSQL's timestamp.h. */
    const int64_t min_pg = INT64_C(-211813488000000000);
    const int64_t end_pg = INT64_C(9223371331200000000);
    struct timeval first = {min_pg / 1000000 + SECS_2000_01_01, 0};
    ASSERT_TEXT(qp_text_timestamptz(buf, cap, &first), "4714-11-24 00:00:00+00 BC");
    struct timeval last = {end_pg / 1000000 + SECS_2000_01_01 - 1, 999999};
    ASSERT_TEXT(qp_text_timestamptz(buf, cap, &last), "294276-12-31 23:59:59.999999+00");

    char text[QP_TEXT_MAX];
    uint8_t bin[8];
    struct timeval outside[] = {
        {first.tv_sec - 1, 999999},
        {last.tv_sec + 1, 0},
        {INT64_MAX, 0},
        {INT64_MIN, 0},
        {0, 1000000},
        {0, -1},
    };
    for (size_t i = 0; i < sizeof(outside) / sizeof(outside[0]); i++) {
        assert_int_equal(qp_text_timestamptz(text, sizeof(text), &outside[i]), -1);
        assert_int_equal(qp_binary_timestamptz(bin, &outside[i]), -1);
    }
}

/* An int64 big-endian, for the expected bytes. */
static void be64(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        out[i] = (uint8_t)v;
}

static void test_binary_values(void **state)
{
    uint8_t out[8];
    assert_int_equal(qp_binary_int8(out, -2), 8);
    assert_memory_equal(out, "\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFE", 8);
    assert_int_equal(qp_binary_int8_unsigned(out, 0x0102030405060708u), 8);
    assert_memory_equal(out, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(qp_binary_int8_unsigned(out, UINT64_MAX), -1);
    assert_int_equal(qp_binary_int4(out, 0x11223344), 4);
    assert_memory_equal(out, "\x11\x22\x33\x44", 4);
    assert_int_equal(qp_binary_bool(out, true), 1);
    assert_int_equal(out[0], 1);
    assert_int_equal(qp_binary_bool(out, false), 1);
    assert_int_equal(out[0], 0);
    assert_int_equal(qp_binary_float8(out, 1.0), 8);
    assert_memory_equal(out, "\x3F\xF0\0\0\0\0\0\0", 8);
    assert_int_equal(qp_binary_float8(out, -0.1), 8);
    assert_memory_equal(out, "\xBF\xB9\x99\x99\x99\x99\x99\x9A", 8);
}

static void test_binary_timestamptz(void **state)
{
    uint8_t out[8], want[8];
    struct timeval y2k = {SECS_2000_01_01, 0};
    assert_int_equal(qp_binary_timestamptz(out, &y2k), 8);
    assert_memory_equal(out, "\0\0\0\0\0\0\0\0", 8);

    struct timeval tv = {SECS_2026_11_22_101530, 123456};
    int64_t usecs = (SECS_2026_11_22_101530 - SECS_2000_01_01) * 1000000 + 123456;
    assert_true(usecs == INT64_C(848657730123456));
    be64(want, (uint64_t)usecs);
    assert_int_equal(qp_binary_timestamptz(out, &tv), 8);
    assert_memory_equal(out, want, 8);

    struct timeval epoch = {0, 0};
    be64(want, (uint64_t)INT64_C(-946684800000000));
    assert_int_equal(qp_binary_timestamptz(out, &epoch), 8);
    assert_memory_equal(out, want, 8);
}

/* numeric_send: ndigits, weight, sign, dscale, then base-10000 digits, all int16. */
static void assert_numeric(const char *text, const uint8_t *want, size_t want_len)
{
    uint8_t out[64];
    assert_int_equal(qp_binary_numeric(out, sizeof(out), text, strlen(text)), (int)want_len);
    assert_memory_equal(out, want, want_len);
    assert_int_equal(qp_binary_numeric(out, want_len - 1, text, strlen(text)), -1);
}

static void test_binary_numeric(void **state)
{
    static const uint8_t n013[] = {0, 1, 0xFF, 0xFF, 0, 0, 0, 2, 0x05, 0x14};
    assert_numeric("0.13", n013, sizeof(n013));
    static const uint8_t neg[] = {0, 3, 0, 1, 0x40, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1A, 0x7C};
    assert_numeric("-12345.678", neg, sizeof(neg));
    static const uint8_t zero[] = {0, 0, 0, 0, 0, 0, 0, 2};
    assert_numeric("0.00", zero, sizeof(zero));
    assert_numeric("-0.00", zero, sizeof(zero));
    static const uint8_t nan[] = {0, 0, 0, 0, 0xC0, 0, 0, 0};
    assert_numeric("NaN", nan, sizeof(nan));
    static const uint8_t inf[] = {0, 0, 0, 0, 0xD0, 0, 0, 0x20};
    assert_numeric("Infinity", inf, sizeof(inf));
    static const uint8_t ninf[] = {0, 0, 0, 0, 0xF0, 0, 0, 0x20};
    assert_numeric("-Infinity", ninf, sizeof(ninf));
    static const uint8_t e20[] = {0, 1, 0, 5, 0, 0, 0, 2, 0, 1};
    assert_numeric("100000000000000000000.00", e20, sizeof(e20));
    static const uint8_t tiny[] = {0, 1, 0xFF, 0xFF, 0x40, 0, 0, 4, 0, 1};
    assert_numeric("-0.0001", tiny, sizeof(tiny));
    static const uint8_t ten_thousand[] = {0, 1, 0, 1, 0, 0, 0, 0, 0, 1};
    assert_numeric("10000", ten_thousand, sizeof(ten_thousand));
    static const uint8_t one[] = {0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_numeric("1", one, sizeof(one));

    uint8_t out[64];
    static const char *const bad[] = {"", "-", "1.", ".5", "1e5", "abc", "1.2.3", "--1", " 1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(qp_binary_numeric(out, sizeof(out), bad[i], strlen(bad[i])), -1);
}

/* What qp_text_numeric writes, qp_binary_numeric reads. */
static void test_numeric_text_to_binary(void **state)
{
    char text[64];
    uint8_t out[64];
    int n = qp_text_numeric(text, sizeof(text), -1234.5678, 6);
    assert_string_equal(text, "-1234.567800");
    static const uint8_t want[] = {0, 2, 0, 0, 0x40, 0, 0, 6, 0x04, 0xD2, 0x16, 0x2E};
    assert_int_equal(qp_binary_numeric(out, sizeof(out), text, (size_t)n), sizeof(want));
    assert_memory_equal(out, want, sizeof(want));
}

static void test_type_len(void **state)
{
    assert_int_equal(qp_type_len(QP_OID_INT8), 8);
    assert_int_equal(qp_type_len(QP_OID_INT4), 4);
    assert_int_equal(qp_type_len(QP_OID_BOOL), 1);
    assert_int_equal(qp_type_len(QP_OID_FLOAT8), 8);
    assert_int_equal(qp_type_len(QP_OID_TIMESTAMPTZ), 8);
    assert_int_equal(qp_type_len(QP_OID_TEXT), -1);
    assert_int_equal(qp_type_len(QP_OID_NUMERIC), -1);
    assert_int_equal(qp_type_len(0), 0);
    assert_int_equal(QP_TYPMOD_NUMERIC(10, 2), 0x000A0006);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_query_valid),
        cmocka_unit_test(test_query_malformed),
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_counts),
        cmocka_unit_test(test_parse_names),
        cmocka_unit_test(test_bind_valid),
        cmocka_unit_test(test_bind_format_rules),
        cmocka_unit_test(test_bind_format_count_mismatch),
        cmocka_unit_test(test_bind_bad_format_codes),
        cmocka_unit_test(test_bind_bad_lengths),
        cmocka_unit_test(test_bind_negative_format_count),
        cmocka_unit_test(test_bind_names),
        cmocka_unit_test(test_describe_close),
        cmocka_unit_test(test_describe_close_names),
        cmocka_unit_test(test_execute),
        cmocka_unit_test(test_empty_messages),
        cmocka_unit_test(test_unknown_type),
        cmocka_unit_test(test_truncated_everywhere),
        cmocka_unit_test(test_trailing_everywhere),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_row_description),
        cmocka_unit_test(test_data_row),
        cmocka_unit_test(test_command_complete),
        cmocka_unit_test(test_small_messages),
        cmocka_unit_test(test_parameter_description),
        cmocka_unit_test(test_builder_limits),
        cmocka_unit_test(test_text_integers),
        cmocka_unit_test(test_text_float8),
        cmocka_unit_test(test_text_numeric),
        cmocka_unit_test(test_text_timestamptz),
        cmocka_unit_test(test_timestamptz_range),
        cmocka_unit_test(test_binary_values),
        cmocka_unit_test(test_binary_timestamptz),
        cmocka_unit_test(test_binary_numeric),
        cmocka_unit_test(test_numeric_text_to_binary),
        cmocka_unit_test(test_type_len),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("query_proto", tests, NULL, NULL);
}
