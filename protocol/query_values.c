/*
 * query_values.c — values in the text and binary formats of PostgreSQL's
 * output and send functions, for the types the console shows.
 *
 * Text follows what a PostgreSQL 15 server prints with DateStyle ISO,
 * TimeZone UTC and extra_float_digits 1 (the default since 12); binary
 * follows the send functions: big-endian integers, IEEE 754 float8,
 * timestamptz as int64 microseconds since 2000-01-01 00:00:00 UTC, numeric
 * as base-10000 digits.
 */
#include "protocol/query_values.h"

#include "protocol/pkt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

/* snprintf's result as an encoder's: the length, or -1 when it did not fit. */
static int qp_fitted(int n, size_t cap)
{
    return n >= 0 && (size_t)n < cap ? n : -1;
}

/* A big-endian int64 at out. */
static void qp_store_be64(uint8_t out[8], uint64_t v)
{
    pkt_store_be32(out, (uint32_t)(v >> 32));
    pkt_store_be32(out + 4, (uint32_t)v);
}

/* ---- types ---- */

int16_t qp_type_len(uint32_t oid)
{
    switch (oid) {
    case QP_OID_BOOL:
        return QP_TYPLEN_BOOL;
    case QP_OID_INT8:
        return QP_TYPLEN_INT8;
    case QP_OID_INT4:
        return QP_TYPLEN_INT4;
    case QP_OID_TEXT:
        return QP_TYPLEN_TEXT;
    case QP_OID_FLOAT8:
        return QP_TYPLEN_FLOAT8;
    case QP_OID_TIMESTAMPTZ:
        return QP_TYPLEN_TIMESTAMPTZ;
    case QP_OID_NUMERIC:
        return QP_TYPLEN_NUMERIC;
    }
    return 0;
}

/* ---- integers, bool ---- */

/* int8 as text; the length, or -1 when it does not fit (as every qp_text_* does). */
int qp_text_int8(char *buf, size_t cap, int64_t v)
{
    return qp_fitted(snprintf(buf, cap, "%lld", (long long)v), cap);
}

int qp_text_int8_unsigned(char *buf, size_t cap, uint64_t v)
{
    return v > INT64_MAX ? -1 : qp_text_int8(buf, cap, (int64_t)v);
}

/* int4 as text. */
int qp_text_int4(char *buf, size_t cap, int32_t v)
{
    return qp_fitted(snprintf(buf, cap, "%d", (int)v), cap);
}

/* bool as text: "t" or "f", as boolout writes it. */
int qp_text_bool(char *buf, size_t cap, bool v)
{
    return qp_fitted(snprintf(buf, cap, "%s", v ? "t" : "f"), cap);
}

int qp_binary_int8(uint8_t out[8], int64_t v)
{
    qp_store_be64(out, (uint64_t)v);
    return 8;
}

/* A counter as int8, the largest type PostgreSQL has; -1 past INT64_MAX. */
int qp_binary_int8_unsigned(uint8_t out[8], uint64_t v)
{
    return v > INT64_MAX ? -1 : qp_binary_int8(out, (int64_t)v);
}

/* int4 in binary: big-endian, 4 bytes. */
int qp_binary_int4(uint8_t out[4], int32_t v)
{
    pkt_store_be32(out, (uint32_t)v);
    return 4;
}

/* bool in binary: one byte, 1 or 0. */
int qp_binary_bool(uint8_t out[1], bool v)
{
    out[0] = v ? 1 : 0;
    return 1;
}

/* ---- float8 and numeric ---- */

/* NaN and the infinities as float8_out and numeric_out spell them; -1 for others. */
static int qp_text_special(char *buf, size_t cap, double v)
{
    if (isnan(v))
        return qp_fitted(snprintf(buf, cap, "NaN"), cap);
    if (isinf(v))
        return qp_fitted(snprintf(buf, cap, "%s", v > 0 ? "Infinity" : "-Infinity"), cap);
    return -1;
}

/*
 * The 15 significant digits PostgreSQL keeps when it casts float8 to
 * numeric (DBL_DIG, "%.15g"), as digits and the decimal exponent of the
 * first; their sign is the double's.
 */
struct qp_digits {
    int digit[16]; /* digit[15] only after a carry out of the first */
    int ndigits;
    int exponent;
};

/* The 15 significant digits of |v| and the exponent of the first, from printf's %e. */
static void qp_digits_of(double v, struct qp_digits *d)
{
    char sci[32];
    snprintf(sci, sizeof(sci), "%.14e", fabs(v));
    d->ndigits = 0;
    for (const char *p = sci; *p != 'e'; p++)
        if (*p != '.')
            d->digit[d->ndigits++] = *p - '0';
    d->exponent = atoi(strchr(sci, 'e') + 1);
}

/* Keeps the digits before the point plus scale after it, rounding half away from zero. */
static void qp_digits_round(struct qp_digits *d, int scale)
{
    int keep = d->exponent + 1 + scale;
    if (keep >= d->ndigits)
        return;
    bool up = keep >= 0 && d->digit[keep] >= 5;
    d->ndigits = keep > 0 ? keep : 0;
    for (int i = d->ndigits - 1; up && i >= 0; i--) {
        up = d->digit[i] == 9;
        d->digit[i] = up ? 0 : d->digit[i] + 1;
    }
    if (up) {
        /* 9.99 became 10.0, or a first digit of 5 or more was dropped: a new first digit. */
        memmove(d->digit + 1, d->digit, sizeof(int) * (size_t)d->ndigits);
        d->digit[0] = 1;
        d->ndigits++;
        d->exponent++;
    }
}

/* The digit at position pos (0: the first significant one); zeros around them. */
static int qp_digit_at(const struct qp_digits *d, int pos)
{
    return pos >= 0 && pos < d->ndigits ? d->digit[pos] : 0;
}

/* Writes [-]int.frac of d, the sign only when a digit shown is not zero. */
static int qp_digits_print(const struct qp_digits *d, bool negative, int scale, char *buf,
                           size_t cap)
{
    bool nonzero = false;
    for (int i = 0; i < d->ndigits; i++)
        nonzero |= d->digit[i] != 0;
    bool sign = negative && nonzero;
    size_t int_digits = d->exponent >= 0 ? (size_t)d->exponent + 1 : 1;
    if (cap <= sign + int_digits + (scale > 0 ? 1 + (size_t)scale : 0))
        return -1;
    size_t n = 0;
    if (sign)
        buf[n++] = '-';
    if (d->exponent < 0)
        buf[n++] = '0';
    for (int pos = 0; pos <= d->exponent; pos++)
        buf[n++] = (char)('0' + qp_digit_at(d, pos));
    if (scale > 0)
        buf[n++] = '.';
    for (int j = 1; j <= scale; j++)
        buf[n++] = (char)('0' + qp_digit_at(d, d->exponent + j));
    buf[n] = '\0';
    return (int)n;
}

/*
 * v as numeric's text with scale decimals, from the 15 digits PostgreSQL would
 * keep; -1 when scale is out of range or it does not fit.
 */
int qp_text_numeric(char *buf, size_t cap, double v, int scale)
{
    if (isnan(v) || isinf(v))
        return qp_text_special(buf, cap, v);
    if (scale < 0 || scale > QP_NUMERIC_MAX_SCALE)
        return -1;
    struct qp_digits d;
    qp_digits_of(v, &d);
    qp_digits_round(&d, scale);
    return qp_digits_print(&d, signbit(v), scale, buf, cap);
}

/* float8 in binary: the IEEE 754 bits, big-endian. */
int qp_binary_float8(uint8_t out[8], double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof(bits));
    qp_store_be64(out, bits);
    return 8;
}

/* numeric's sign word (NUMERIC_POS, _NEG, _NAN, _PINF, _NINF). */
#define QP_NUMERIC_POS  0x0000
#define QP_NUMERIC_NEG  0x4000
#define QP_NUMERIC_NAN  0xC000
#define QP_NUMERIC_PINF 0xD000
#define QP_NUMERIC_NINF 0xF000
/* The largest display scale a numeric carries. */
#define QP_NUMERIC_DSCALE_MAX 0x3FFF

/* numeric's binary header: digits, weight, sign and display scale, each a big-endian int16. */
static void qp_numeric_header(uint8_t *out, int ndigits, int weight, uint16_t sign, int dscale)
{
    out[0] = (uint8_t)(ndigits >> 8);
    out[1] = (uint8_t)ndigits;
    out[2] = (uint8_t)((uint16_t)weight >> 8);
    out[3] = (uint8_t)weight;
    out[4] = (uint8_t)(sign >> 8);
    out[5] = (uint8_t)sign;
    out[6] = (uint8_t)(dscale >> 8);
    out[7] = (uint8_t)dscale;
}

/* The text's digits, integer part and fraction, laid out in groups of four from the point. */
struct qp_decimal {
    const char *int_digits;
    size_t n_int;
    const char *frac_digits;
    size_t n_frac;
    size_t lead_pad; /* zeros in front of the integer part to fill its first group */
};

/* Group g (0 = leftmost) of the padded digit string, as a base-10000 digit. */
static int qp_decimal_group(const struct qp_decimal *d, size_t g)
{
    int value = 0;
    for (size_t p = 4 * g; p < 4 * g + 4; p++) {
        size_t at = p - d->lead_pad; /* wraps for the padding: checked first */
        int digit = 0;
        if (p >= d->lead_pad && at < d->n_int)
            digit = d->int_digits[at] - '0';
        else if (p >= d->lead_pad && at - d->n_int < d->n_frac)
            digit = d->frac_digits[at - d->n_int] - '0';
        value = value * 10 + digit;
    }
    return value;
}

/* [-]digits[.digits] into *d; false for anything else. */
static bool qp_decimal_scan(const char *text, size_t len, bool *negative, struct qp_decimal *d)
{
    size_t i = 0;
    *negative = len > 0 && text[0] == '-';
    i += *negative;
    d->int_digits = text + i;
    while (i < len && text[i] >= '0' && text[i] <= '9')
        i++;
    d->n_int = (size_t)(text + i - d->int_digits);
    d->frac_digits = text + len;
    d->n_frac = 0;
    if (i < len && text[i] == '.') {
        d->frac_digits = text + ++i;
        while (i < len && text[i] >= '0' && text[i] <= '9')
            i++;
        d->n_frac = (size_t)(text + i - d->frac_digits);
        if (d->n_frac == 0)
            return false;
    }
    d->lead_pad = (4 - d->n_int % 4) % 4;
    return i == len && d->n_int > 0;
}

/*
 * PostgreSQL 15 sends the special values' header bits as if they were a
 * short numeric's: the infinities come out with dscale 32, NaN with 0.
 */
static int qp_binary_numeric_special(uint8_t *out, size_t cap, uint16_t sign)
{
    if (cap < 8)
        return -1;
    qp_numeric_header(out, 0, 0, sign, (sign & 0x1F80) >> 7);
    return 8;
}

int qp_binary_numeric(uint8_t *out, size_t cap, const char *text, size_t len)
{
    if (len == 3 && memcmp(text, "NaN", 3) == 0)
        return qp_binary_numeric_special(out, cap, QP_NUMERIC_NAN);
    if (len == 8 && memcmp(text, "Infinity", 8) == 0)
        return qp_binary_numeric_special(out, cap, QP_NUMERIC_PINF);
    if (len == 9 && memcmp(text, "-Infinity", 9) == 0)
        return qp_binary_numeric_special(out, cap, QP_NUMERIC_NINF);
    bool negative;
    struct qp_decimal d;
    if (!qp_decimal_scan(text, len, &negative, &d) || d.n_frac > QP_NUMERIC_DSCALE_MAX ||
        d.n_int > 4 * (size_t)INT16_MAX)
        return -1;
    size_t int_groups = (d.lead_pad + d.n_int) / 4;
    size_t ngroups = int_groups + (d.n_frac + 3) / 4;
    size_t first = 0, last = ngroups;
    while (first < ngroups && qp_decimal_group(&d, first) == 0)
        first++;
    while (last > first && qp_decimal_group(&d, last - 1) == 0)
        last--;
    size_t ndigits = last - first;
    if (cap < 8 || ndigits > (cap - 8) / 2)
        return -1;
    /* Zero has no sign and weight 0, as numeric's own zero. */
    int weight = ndigits == 0 ? 0 : (int)int_groups - 1 - (int)first;
    uint16_t sign = negative && ndigits > 0 ? QP_NUMERIC_NEG : QP_NUMERIC_POS;
    qp_numeric_header(out, (int)ndigits, weight, sign, (int)d.n_frac);
    for (size_t g = first; g < last; g++) {
        int group = qp_decimal_group(&d, g);
        out[8 + 2 * (g - first)] = (uint8_t)(group >> 8);
        out[9 + 2 * (g - first)] = (uint8_t)group;
    }
    return (int)(8 + 2 * ndigits);
}

/* ---- timestamptz ---- */

#define QP_USECS_PER_SEC      INT64_C(1000000)
#define QP_USECS_PER_DAY      INT64_C(86400000000)
#define QP_UNIX_EPOCH_PG_SECS INT64_C(-946684800) /* 1970-01-01 in seconds from 2000-01-01 */
#define QP_PG_EPOCH_UNIX_DAYS 10957               /* 2000-01-01 in days from 1970-01-01 */
/* PostgreSQL's range, MIN_TIMESTAMP (4714-11-24 BC) to END_TIMESTAMP (294277-01-01), µs. */
#define QP_TIMESTAMP_MIN INT64_C(-211813488000000000)
#define QP_TIMESTAMP_END INT64_C(9223371331200000000)

/* tv as microseconds since 2000-01-01 UTC; false outside PostgreSQL's range. */
static bool qp_timestamp_usecs(const struct timeval *tv, int64_t *usecs)
{
    /* Bounds in seconds first, so that the multiplication cannot overflow. */
    const int64_t min_sec = QP_TIMESTAMP_MIN / QP_USECS_PER_SEC - 1 - QP_UNIX_EPOCH_PG_SECS;
    const int64_t max_sec = QP_TIMESTAMP_END / QP_USECS_PER_SEC + 1 - QP_UNIX_EPOCH_PG_SECS;
    if (tv->tv_usec < 0 || tv->tv_usec >= QP_USECS_PER_SEC || tv->tv_sec < min_sec ||
        tv->tv_sec > max_sec)
        return false;
    int64_t t = ((int64_t)tv->tv_sec + QP_UNIX_EPOCH_PG_SECS) * QP_USECS_PER_SEC + tv->tv_usec;
    if (t < QP_TIMESTAMP_MIN || t >= QP_TIMESTAMP_END)
        return false;
    *usecs = t;
    return true;
}

struct qp_civil {
    int64_t year; /* astronomical: 0 is 1 BC */
    int month, day;
};

/*
 * The proleptic Gregorian date of a day counted from 1970-01-01.  Days are
 * shifted to count from 0000-03-01, so that the leap day ends each year,
 * and cut into 400-year eras of 146097 days.
 */
static struct qp_civil qp_civil_from_days(int64_t days)
{
    int64_t z = days + 719468; /* 0000-03-01 to 1970-01-01 */
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t day_of_era = z - era * 146097;
    int64_t year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
    int64_t day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    int64_t month_from_march = (5 * day_of_year + 2) / 153;
    struct qp_civil c;
    c.day = (int)(day_of_year - (153 * month_from_march + 2) / 5 + 1);
    c.month = (int)(month_from_march < 10 ? month_from_march + 3 : month_from_march - 9);
    c.year = year_of_era + era * 400 + (c.month <= 2);
    return c;
}

/* As timestamptz_out writes it under DateStyle ISO and TimeZone UTC. */
static int qp_text_timestamp_usecs(char *buf, size_t cap, int64_t t)
{
    int64_t days = t / QP_USECS_PER_DAY;
    int64_t time_of_day = t % QP_USECS_PER_DAY;
    if (time_of_day < 0) {
        days--;
        time_of_day += QP_USECS_PER_DAY;
    }
    struct qp_civil c = qp_civil_from_days(days + QP_PG_EPOCH_UNIX_DAYS);
    int64_t secs = time_of_day / QP_USECS_PER_SEC;
    int usecs = (int)(time_of_day % QP_USECS_PER_SEC);
    /* The fraction, if any, without its trailing zeros. */
    char fraction[8] = "";
    if (usecs != 0) {
        int digits = 6;
        for (; usecs % 10 == 0; usecs /= 10)
            digits--;
        snprintf(fraction, sizeof(fraction), ".%0*d", digits, usecs);
    }
    bool bc = c.year <= 0;
    return qp_fitted(snprintf(buf, cap, "%04lld-%02d-%02d %02d:%02d:%02d%s+00%s",
                              (long long)(bc ? 1 - c.year : c.year), c.month, c.day,
                              (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), fraction,
                              bc ? " BC" : ""),
                     cap);
}

int qp_text_timestamptz(char *buf, size_t cap, const struct timeval *tv)
{
    int64_t t;
    return qp_timestamp_usecs(tv, &t) ? qp_text_timestamp_usecs(buf, cap, t) : -1;
}

/* A timestamptz of whole seconds as text. */
int qp_text_timestamptz_time(char *buf, size_t cap, time_t t)
{
    struct timeval tv = {.tv_sec = t, .tv_usec = 0};
    return qp_text_timestamptz(buf, cap, &tv);
}

int qp_binary_timestamptz(uint8_t out[8], const struct timeval *tv)
{
    int64_t t;
    if (!qp_timestamp_usecs(tv, &t))
        return -1;
    qp_store_be64(out, (uint64_t)t);
    return 8;
}
