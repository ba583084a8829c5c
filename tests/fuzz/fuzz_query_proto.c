/*
 * fuzz_query_proto.c
 *    libFuzzer target for protocol/query_proto.c, query_values.c and
 *    query_float.c.  The first input byte selects what the rest is:
 *
 *    Q P B D E C S H X   the body of that frontend message, parsed from a
 *        heap copy of exactly its size (ASan sees any read past it).  A
 *        failure must come with a report PostgreSQL would send; a success
 *        must point inside the body, respect the limits (names of at most
 *        63 bytes, format codes 0 or 1, Bind's 0/1/n rule), walk Bind's
 *        values within them, and — built again from what was parsed with
 *        the pkt builders — give back exactly the body.
 *    i f n t   a value encoded as text and as binary: the text must read
 *        back as the value and agree with the binary.  int8 and float8:
 *        8 bytes; numeric: a float8 and a scale byte; timestamptz: 8 bytes
 *        of seconds, a byte of right shift, 3 bytes of microseconds.
 *    N   any bytes given to qp_binary_numeric as text.
 *
 *    Anything else traps on failure.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pg_error.h"
#include "protocol/pkt.h"
#include "protocol/query_proto.h"
#include "protocol/query_values.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

/* ---- messages ---- */

/* p lies inside the body, its string ends there, and a name is short enough. */
static void check_cstr(const char *p, const uint8_t *body, size_t len, size_t max)
{
    const uint8_t *u = (const uint8_t *)p;
    check(u >= body && u < body + len);
    const uint8_t *nul = memchr(u, 0, (size_t)(body + len - u));
    check(nul != NULL && (size_t)(nul - u) <= max);
}

static void check_failure(int rc, const struct qp_error *err)
{
    check(rc < 0 && err->code == rc);
    struct pg_error e;
    qp_error_pg(err, &e);
    check(strlen(e.sqlstate) == 5 && e.message[0] != '\0');
    check(strlen(e.message) < QP_ERRTEXT_MAX - 1);
    check(strcmp(qp_strerror(rc), "unknown query message error") != 0);
}

static void check_bind_params(const struct qp_bind *b, const uint8_t *body, size_t len)
{
    check(b->params >= body && b->params_len <= (size_t)(body + len - b->params));
    struct qp_param_iter it;
    struct qp_param v;
    size_t walked = 0;
    int n = 0;
    qp_param_iter_init(&it, b);
    while (qp_param_iter_next(&it, &v)) {
        check(v.index == n && (v.format == 0 || v.format == 1));
        check(v.is_null == (v.data == NULL));
        if (!v.is_null)
            check(v.data >= b->params + walked + 4 && v.data + v.len <= b->params + b->params_len);
        walked += 4 + v.len;
        n++;
    }
    check(n == b->nparams && walked == b->params_len);
    if (n > 0) {
        struct qp_param last;
        check(qp_bind_param(b, n - 1, &last) && last.len == v.len && last.data == v.data);
    }
    check(!qp_bind_param(b, n, &v));
}

/* Puts a Bind back together from what was parsed. */
static void rebuild_bind(struct pktbuf *pb, const struct qp_bind *b)
{
    pkt_put_cstr(pb, b->portal);
    pkt_put_cstr(pb, b->statement);
    pkt_put_u16(pb, (uint16_t)b->nparam_formats);
    for (int i = 0; i < b->nparam_formats; i++)
        pkt_put_u16(pb, (uint16_t)qp_bind_param_format(b, b->nparam_formats == 1 ? 0 : i));
    pkt_put_u16(pb, (uint16_t)b->nparams);
    struct qp_param_iter it;
    struct qp_param v;
    qp_param_iter_init(&it, b);
    while (qp_param_iter_next(&it, &v)) {
        pkt_put_u32(pb, v.is_null ? UINT32_MAX : (uint32_t)v.len);
        if (!v.is_null)
            pkt_put_bytes(pb, v.data, v.len);
    }
    pkt_put_u16(pb, (uint16_t)b->nresult_formats);
    for (int i = 0; i < b->nresult_formats; i++)
        pkt_put_u16(pb, (uint16_t)qp_bind_result_format(b, i));
}

static void check_bind(const struct qp_bind *b, const uint8_t *body, size_t len, struct pktbuf *pb)
{
    check_cstr(b->portal, body, len, QP_NAME_MAX);
    check_cstr(b->statement, body, len, QP_NAME_MAX);
    check(b->nparams >= 0 && b->nparam_formats >= 0 && b->nresult_formats >= 0);
    check(b->nparam_formats <= 1 || b->nparam_formats == b->nparams);
    for (int i = 0; i < b->nparams; i++) {
        int16_t f = qp_bind_param_format(b, i);
        check(f == 0 || f == 1);
    }
    for (int i = 0; i < b->nresult_formats; i++) {
        int16_t f = qp_bind_result_format(b, i);
        check(f == 0 || f == 1);
    }
    check(qp_bind_check_result_formats(b, b->nresult_formats, NULL) == QP_OK);
    check_bind_params(b, body, len);
    rebuild_bind(pb, b);
}

static void check_parse(const struct qp_parse *p, const uint8_t *body, size_t len,
                        struct pktbuf *pb)
{
    check_cstr(p->name, body, len, QP_NAME_MAX);
    check_cstr(p->query, body, len, len);
    check(strlen(p->query) == p->query_len);
    check(p->nparam_types >= 0 && p->param_types >= body &&
          p->param_types + 4 * (size_t)p->nparam_types == body + len);
    pkt_put_cstr(pb, p->name);
    pkt_put_cstr(pb, p->query);
    pkt_put_u16(pb, (uint16_t)p->nparam_types);
    for (int i = 0; i < p->nparam_types; i++)
        pkt_put_u32(pb, qp_parse_param_type(p, i));
}

/* Every check of a parsed message, and its rebuilt body into pb. */
static void check_parsed(const struct qp_message *m, const uint8_t *body, size_t len,
                         struct pktbuf *pb)
{
    switch (m->type) {
    case 'Q':
        check(m->u.query.text == (const char *)body && m->u.query.text_len == len - 1);
        check(strlen(m->u.query.text) == m->u.query.text_len);
        pkt_put_cstr(pb, m->u.query.text);
        break;
    case 'P':
        check_parse(&m->u.parse, body, len, pb);
        break;
    case 'B':
        check_bind(&m->u.bind, body, len, pb);
        break;
    case 'D':
    case 'C':
        check(m->u.target.kind == 'S' || m->u.target.kind == 'P');
        check_cstr(m->u.target.name, body, len, QP_NAME_MAX);
        pkt_put_u8(pb, (uint8_t)m->u.target.kind);
        pkt_put_cstr(pb, m->u.target.name);
        break;
    case 'E':
        check_cstr(m->u.execute.portal, body, len, QP_NAME_MAX);
        pkt_put_cstr(pb, m->u.execute.portal);
        pkt_put_u32(pb, (uint32_t)m->u.execute.max_rows);
        break;
    default:
        check(len == 0);
        break;
    }
}

static void fuzz_message(char type, const uint8_t *data, size_t len)
{
    uint8_t *body = malloc(len ? len : 1);
    check(body != NULL);
    if (len > 0)
        memcpy(body, data, len);
    struct qp_message m;
    struct qp_error err;
    int rc = qp_parse_message(type, body, len, &m, &err);
    if (rc != QP_OK) {
        check_failure(rc, &err);
    } else {
        uint8_t *again = malloc(len + 1);
        check(again != NULL);
        struct pktbuf pb;
        pkt_init(&pb, again, len + 1);
        check_parsed(&m, body, len, &pb);
        check(pkt_ok(&pb) && pb.len == len && (len == 0 || memcmp(again, body, len) == 0));
        free(again);
    }
    free(body);
}

/* ---- values ---- */

static uint64_t load_be64(const uint8_t *p)
{
    return (uint64_t)pkt_be32(p) << 32 | pkt_be32(p + 4);
}

static void fuzz_int8(const uint8_t *p)
{
    int64_t v = (int64_t)load_be64(p);
    char text[QP_TEXT_MAX];
    uint8_t bin[8];
    int n = qp_text_int8(text, sizeof(text), v);
    check(n > 0 && (size_t)n == strlen(text) && strtoll(text, NULL, 10) == v);
    check(qp_binary_int8(bin, v) == 8 && memcmp(bin, p, 8) == 0);
    check((qp_text_int8_unsigned(text, sizeof(text), (uint64_t)v) < 0) == (v < 0));
}

/* The text reads back as the same double, and no shorter text of its digits would. */
static void fuzz_float8(const uint8_t *p)
{
    double v;
    uint64_t bits = load_be64(p);
    memcpy(&v, &bits, sizeof(v));
    char text[QP_TEXT_MAX];
    uint8_t bin[8];
    int n = qp_text_float8(text, sizeof(text), v);
    check(n > 0 && (size_t)n == strlen(text));
    check(qp_binary_float8(bin, v) == 8 && memcmp(bin, p, 8) == 0);
    double back = strtod(text, NULL);
    if (isnan(v))
        check(strcmp(text, "NaN") == 0);
    else
        check(memcmp(&back, &v, sizeof(v)) == 0);
    /* At most 17 significant digits (leading zeros and the point aside). */
    int significant = 0;
    bool leading = true;
    for (const char *c = text; *c != '\0' && *c != 'e'; c++) {
        if (*c == '.' || *c == '-' || (leading && *c == '0'))
            continue;
        leading = false;
        significant++;
    }
    check(significant <= 17);
}

/* [-]int[.frac] with exactly scale digits after the point, and its binary agrees. */
static void fuzz_numeric(const uint8_t *p)
{
    double v;
    uint64_t bits = load_be64(p);
    memcpy(&v, &bits, sizeof(v));
    int scale = p[8] % 40;
    char text[400];
    uint8_t bin[8 + 2 * 200];
    int n = qp_text_numeric(text, sizeof(text), v, scale);
    check(n > 0 && (size_t)n == strlen(text));
    int b = qp_binary_numeric(bin, sizeof(bin), text, (size_t)n);
    check(b >= 8);
    if (isnan(v) || isinf(v))
        return;
    const char *dot = strchr(text, '.');
    check(scale == 0 ? dot == NULL : dot != NULL && strlen(dot + 1) == (size_t)scale);
    check(text[0] != '-' || strpbrk(text, "123456789") != NULL); /* no -0 */
    int dscale = bin[6] << 8 | bin[7];
    check(dscale == scale);
    /* Rounded to 15 significant digits, then to scale places: close to v (which,
     * near DBL_MAX, rounds beyond a double's range: hence long double). */
    long double back = strtold(text, NULL);
    check(fabsl(back - v) <= fabsl((long double)v) * 1e-14L + 0.5L * powl(10, -scale) * 1.0000001L);
}

/* Days from 1970-01-01 of a proleptic Gregorian date: the inverse, written independently. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    static const int before_month[] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    /* Leap days before year y, counted from year 0 (a leap year), via floor division. */
    int64_t yp = y - 1;
    int64_t leaps_before = (y > 0) ? 1 + yp / 4 - yp / 100 + yp / 400 : 0;
    if (y <= 0) {
        int64_t n = -y; /* years 0 down to y+1 */
        leaps_before = -(n / 4 - n / 100 + n / 400);
    }
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    int64_t doy = before_month[m - 1] + d - 1 + (leap && m > 2);
    return y * 365 + leaps_before + doy - 719528;
}

static void fuzz_timestamptz(const uint8_t *p)
{
    struct timeval tv;
    /* Seconds shifted right by 0 to 39 bits, so that many land in PostgreSQL's range. */
    tv.tv_sec = (time_t)((int64_t)load_be64(p) >> (p[8] % 40));
    tv.tv_usec = (suseconds_t)(((uint32_t)p[9] << 16 | p[10] << 8 | p[11]) % 1100000);
    char text[QP_TEXT_MAX];
    uint8_t bin[8];
    int n = qp_text_timestamptz(text, sizeof(text), &tv);
    int b = qp_binary_timestamptz(bin, &tv);
    check((n < 0) == (b < 0));
    if (n < 0)
        return;
    check(b == 8 && (size_t)n == strlen(text));
    long long y;
    int mo, d, h, mi, s, used = 0;
    check(sscanf(text, "%lld-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) == 6);
    int usec = 0;
    const char *rest = text + used;
    if (*rest == '.') {
        char frac[7] = "000000";
        size_t k = strspn(rest + 1, "0123456789");
        check(k >= 1 && k <= 6 && rest[k] != '0');
        memcpy(frac, rest + 1, k);
        usec = atoi(frac);
        rest += 1 + k;
    }
    bool bc = strcmp(rest, "+00 BC") == 0;
    check(bc || strcmp(rest, "+00") == 0);
    check(mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 24 && mi < 60 && s < 60);
    int64_t days = days_from_civil(bc ? 1 - y : y, mo, d);
    int64_t secs = days * 86400 + h * 3600 + mi * 60 + s;
    check(secs == (int64_t)tv.tv_sec && usec == (int)tv.tv_usec);
    int64_t pg = (int64_t)load_be64(bin);
    check(pg == (secs - INT64_C(946684800)) * 1000000 + usec);
}

/* Whatever bytes: -1, or a well-formed numeric_send layout. */
static void fuzz_numeric_text(const uint8_t *p, size_t len)
{
    char *text = malloc(len ? len : 1);
    check(text != NULL);
    if (len > 0)
        memcpy(text, p, len);
    uint8_t out[8 + 2 * 64];
    int n = qp_binary_numeric(out, sizeof(out), text, len);
    if (n >= 0) {
        int ndigits = out[0] << 8 | out[1];
        check(n == 8 + 2 * ndigits);
        for (int i = 0; i < ndigits; i++)
            check((out[8 + 2 * i] << 8 | out[9 + 2 * i]) < 10000);
        check(ndigits == 0 || (out[9] | out[8]) != 0);
        check(ndigits == 0 || (out[7 + 2 * ndigits] | out[6 + 2 * ndigits]) != 0);
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char selector = (char)data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (selector) {
    case 'i':
        if (n >= 8)
            fuzz_int8(p);
        return 0;
    case 'f':
        if (n >= 8)
            fuzz_float8(p);
        return 0;
    case 'n':
        if (n >= 9)
            fuzz_numeric(p);
        return 0;
    case 't':
        if (n >= 12)
            fuzz_timestamptz(p);
        return 0;
    case 'N':
        fuzz_numeric_text(p, n);
        return 0;
    }
    fuzz_message(selector, p, n);
    return 0;
}
