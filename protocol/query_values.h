/*
 * query_values.h — the types pgnear's console shows (bool, int4, int8,
 * float8, numeric, text, timestamptz): their OIDs and lengths for
 * RowDescription, and their values in the text and binary formats, as a
 * PostgreSQL 15 server writes them with DateStyle ISO, TimeZone UTC and
 * extra_float_digits 1 (its defaults but the time zone).  Nothing here
 * allocates.
 */
#ifndef PGNEAR_PROTOCOL_QUERY_VALUES_H
#define PGNEAR_PROTOCOL_QUERY_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* Type OIDs (pg_type.oid) and lengths (pg_type.typlen, -1: variable). */
#define QP_OID_BOOL           16
#define QP_OID_INT8           20
#define QP_OID_INT4           23
#define QP_OID_TEXT           25
#define QP_OID_FLOAT8         701
#define QP_OID_TIMESTAMPTZ    1184
#define QP_OID_NUMERIC        1700
#define QP_TYPLEN_BOOL        1
#define QP_TYPLEN_INT8        8
#define QP_TYPLEN_INT4        4
#define QP_TYPLEN_TEXT        (-1)
#define QP_TYPLEN_FLOAT8      8
#define QP_TYPLEN_TIMESTAMPTZ 8
#define QP_TYPLEN_NUMERIC     (-1)
/* atttypmod of a column without a modifier, and of numeric(precision, scale). */
#define QP_TYPMOD_NONE                 (-1)
#define QP_TYPMOD_NUMERIC(prec, scale) ((int32_t)((((prec) << 16) | (scale)) + 4))

/* The typlen of one of the types above; 0 for any other OID. */
int16_t qp_type_len(uint32_t oid);

/*
 * Text encoders write a NUL-terminated value into buf and return its
 * length without the NUL, or -1 when it does not fit in cap or cannot be
 * shown as that type.  QP_TEXT_MAX is enough for all but numeric.
 */
#define QP_TEXT_MAX 40
int qp_text_int8(char *buf, size_t cap, int64_t v);
/* -1 above INT64_MAX, which int8 cannot hold. */
int qp_text_int8_unsigned(char *buf, size_t cap, uint64_t v);
int qp_text_int4(char *buf, size_t cap, int32_t v);
int qp_text_bool(char *buf, size_t cap, bool v);
/*
 * As float8out: the shortest decimal strictly inside v's rounding interval,
 * plain or with an exponent as PostgreSQL chooses (0.1, 100, 1e+20,
 * 1.5e-05, -0, NaN, Infinity, -Infinity).
 */
int qp_text_float8(char *buf, size_t cap, double v);
/*
 * As PostgreSQL prints round(v::numeric, scale): v cut to 15 significant
 * digits (its float8 to numeric cast), rounded half away from zero to
 * scale digits after the point (0 to QP_NUMERIC_MAX_SCALE), no "-0";
 * NaN, Infinity and -Infinity as they are.  Needs up to 312 + scale bytes.
 */
#define QP_NUMERIC_MAX_SCALE 1000
int qp_text_numeric(char *buf, size_t cap, double v, int scale);
/*
 * As "2026-11-22 10:15:30.123456+00" (trailing zeros of the fraction
 * dropped, " BC" after years before 1); -1 outside PostgreSQL's range
 * (4714-11-24 BC to 294276 AD).
 */
int qp_text_timestamptz(char *buf, size_t cap, const struct timeval *tv);
int qp_text_timestamptz_time(char *buf, size_t cap, time_t t);

/*
 * Binary encoders write the value as PostgreSQL's send function does and
 * return its length, or -1 when it cannot be shown as that type.
 */
int qp_binary_int8(uint8_t out[8], int64_t v);
int qp_binary_int8_unsigned(uint8_t out[8], uint64_t v);
int qp_binary_int4(uint8_t out[4], int32_t v);
int qp_binary_bool(uint8_t out[1], bool v);
int qp_binary_float8(uint8_t out[8], double v);
/* Microseconds since 2000-01-01 00:00:00 UTC; -1 outside PostgreSQL's range. */
int qp_binary_timestamptz(uint8_t out[8], const struct timeval *tv);
/*
 * numeric_send's layout (base-10000 digits) of a numeric in the text form
 * qp_text_numeric writes: [-]digits[.digits], NaN, Infinity, -Infinity;
 * the digits after the point give the display scale.
 * Needs 8 + 2 * (digit groups) bytes; -1 for other text or when it does
 * not fit in cap.
 */
int qp_binary_numeric(uint8_t *out, size_t cap, const char *text, size_t len);

#endif
