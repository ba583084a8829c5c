/*
 * query_float.c — float8 in text format, digit for digit as PostgreSQL
 * 12+ prints it with extra_float_digits 1 (its default).
 *
 * PostgreSQL's float8out uses Ryu built without STRICTLY_SHORTEST: the
 * shortest decimal that lies strictly inside the interval of reals that
 * round to the double.  A decimal exactly halfway to a neighbouring double
 * is refused even where round-half-even would read it back correctly, so
 * PostgreSQL sometimes prints a digit more than printf-based "shortest
 * round trip" code (3.0925352787701443e+18, not 3.092535278770144e+18).
 * Here each candidate from printf's correct rounding is compared exactly,
 * in integer arithmetic, with both ends of that interval.
 */
#include "protocol/query_values.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- exact comparison of a decimal with a binary fraction ---- */

/* 1536 bits: both sides stay under 1200 for any double and 17 digits. */
#define QP_BIG_WORDS 48

struct qp_big {
    uint32_t w[QP_BIG_WORDS]; /* little-endian words */
    int n;
    bool overflow;
};

/* b = v. */
static void qp_big_set(struct qp_big *b, uint64_t v)
{
    b->w[0] = (uint32_t)v;
    b->w[1] = (uint32_t)(v >> 32);
    b->n = b->w[1] != 0 ? 2 : 1;
    b->overflow = false;
}

/* b *= factor; a carry past QP_BIG_WORDS marks b overflowed instead of growing it. */
static void qp_big_mul(struct qp_big *b, uint32_t factor)
{
    uint64_t carry = 0;
    for (int i = 0; i < b->n; i++) {
        uint64_t p = (uint64_t)b->w[i] * factor + carry;
        b->w[i] = (uint32_t)p;
        carry = p >> 32;
    }
    if (carry == 0)
        return;
    if (b->n == QP_BIG_WORDS)
        b->overflow = true;
    else
        b->w[b->n++] = (uint32_t)carry;
}

/* b *= base^times, in steps of base^step that fit 32 bits. */
static void qp_big_mul_pow(struct qp_big *b, uint32_t base, int times, uint32_t step_factor,
                           int step)
{
    for (; times >= step; times -= step)
        qp_big_mul(b, step_factor);
    while (times-- > 0)
        qp_big_mul(b, base);
}

/* The sign of a - b. */
static int qp_big_cmp(const struct qp_big *a, const struct qp_big *b)
{
    if (a->n != b->n)
        return a->n < b->n ? -1 : 1;
    for (int i = a->n - 1; i >= 0; i--)
        if (a->w[i] != b->w[i])
            return a->w[i] < b->w[i] ? -1 : 1;
    return 0;
}

/* The sign of digits × 10^k − m × 2^e; 2 when the numbers grew too large to tell. */
static int qp_cmp_decimal_binary(uint64_t digits, int k, uint64_t m, int e)
{
    struct qp_big dec, bin;
    qp_big_set(&dec, digits);
    qp_big_set(&bin, m);
    /* Both sides times 10^max(-k, 0) × 2^max(-e, 0): integers. */
    qp_big_mul_pow(&dec, 10, k > 0 ? k : 0, 1000000000u, 9);
    qp_big_mul_pow(&bin, 10, k < 0 ? -k : 0, 1000000000u, 9);
    qp_big_mul_pow(&bin, 2, e > 0 ? e : 0, 1u << 31, 31);
    qp_big_mul_pow(&dec, 2, e < 0 ? -e : 0, 1u << 31, 31);
    if (dec.overflow || bin.overflow)
        return 2;
    return qp_big_cmp(&dec, &bin);
}

/* ---- the interval and its shortest decimal ---- */

/* |v| = m2 × 2^e2; it and its neighbours' midpoints are mp and mm × 2^(e2 - 2). */
struct qp_float_interval {
    uint64_t m2;
    int e2;
    uint64_t mp, mm;
};

/*
 * v's binary mantissa and exponent, and the bounds halfway to its neighbours:
 * every decimal strictly inside reads back as v.
 */
static void qp_float_interval(double v, struct qp_float_interval *fi)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    uint64_t mantissa = bits & ((UINT64_C(1) << 52) - 1);
    int exponent = (int)((bits >> 52) & 0x7FF);
    fi->m2 = exponent == 0 ? mantissa : mantissa | (UINT64_C(1) << 52);
    fi->e2 = (exponent == 0 ? 1 : exponent) - 1075;
    fi->mp = 4 * fi->m2 + 2;
    /* Just above a power of two the double below is half as far. */
    fi->mm = 4 * fi->m2 - (mantissa == 0 && exponent > 1 ? 1 : 2);
}

/*
 * Does digits × 10^k lie strictly between the halfway bounds, so that it reads
 * back as v? False also when that could not be told.
 */
static bool qp_float_inside(const struct qp_float_interval *fi, uint64_t digits, int k)
{
    return qp_cmp_decimal_binary(digits, k, fi->mm, fi->e2 - 2) == 1 &&
           qp_cmp_decimal_binary(digits, k, fi->mp, fi->e2 - 2) == -1;
}

/* |v| correctly rounded to n significant digits, as digits × 10^k. */
static uint64_t qp_float_round(double v, int n, int *k)
{
    char sci[40];
    snprintf(sci, sizeof(sci), "%.*e", n - 1, fabs(v));
    uint64_t digits = 0;
    const char *p;
    for (p = sci; *p != 'e'; p++)
        if (*p != '.')
            digits = digits * 10 + (uint64_t)(*p - '0');
    *k = atoi(p + 1) - (n - 1);
    return digits;
}

/*
 * The shortest digits × 10^k strictly inside |v|'s interval, the nearest
 * to |v| among those as short: printf's rounding, or the n-digit number on
 * the other side of |v| where the rounding left the interval.
 */
static uint64_t qp_float_shortest(double v, int *k)
{
    struct qp_float_interval fi;
    qp_float_interval(v, &fi);
    for (int n = 1; n <= 17; n++) {
        uint64_t digits = qp_float_round(v, n, k);
        if (qp_float_inside(&fi, digits, *k))
            return digits;
        int below = qp_cmp_decimal_binary(digits, *k, fi.m2, fi.e2) < 0;
        uint64_t other = below ? digits + 1 : digits - 1;
        if (other != 0 && qp_float_inside(&fi, other, *k))
            return other;
    }
    return qp_float_round(v, 17, k);
}

/* ---- layout ---- */

/*
 * Ryu's layout in PostgreSQL: plain when the first digit's exponent is in
 * [-4, 15), else d.ddde+XX with at least two exponent digits.
 */
static int qp_float_layout(char *buf, size_t cap, bool negative, uint64_t digits, int k)
{
    while (digits % 10 == 0) {
        digits /= 10;
        k++;
    }
    char d[24];
    int nd = snprintf(d, sizeof(d), "%llu", (unsigned long long)digits);
    int exp10 = k + nd - 1;
    const char *sign = negative ? "-" : "";
    int n;
    if (exp10 < -4 || exp10 >= 15)
        n = snprintf(buf, cap, "%s%c%s%.*se%c%02d", sign, d[0], nd > 1 ? "." : "", nd - 1, d + 1,
                     exp10 < 0 ? '-' : '+', abs(exp10));
    else if (exp10 < 0)
        n = snprintf(buf, cap, "%s0.%.*s%s", sign, -exp10 - 1, "0000", d);
    else if (k >= 0)
        n = snprintf(buf, cap, "%s%s%.*s", sign, d, k, "00000000000000");
    else
        n = snprintf(buf, cap, "%s%.*s.%s", sign, exp10 + 1, d, d + exp10 + 1);
    return n >= 0 && (size_t)n < cap ? n : -1;
}

int qp_text_float8(char *buf, size_t cap, double v)
{
    const char *word = NULL;
    if (isnan(v))
        word = "NaN";
    else if (isinf(v))
        word = v > 0 ? "Infinity" : "-Infinity";
    else if (v == 0)
        word = signbit(v) ? "-0" : "0";
    if (word != NULL) {
        int n = snprintf(buf, cap, "%s", word);
        return n >= 0 && (size_t)n < cap ? n : -1;
    }
    int k;
    uint64_t digits = qp_float_shortest(v, &k);
    return qp_float_layout(buf, cap, signbit(v), digits, k);
}
