/*
 * fuzz_bytes.h
 *    What the fuzz targets that run a whole pgnear (fuzz_login, fuzz_server)
 *    share to read their input and build the bytes they send: a cursor over
 *    the input (bytes past its end read as 0) and an output buffer that
 *    cuts off what does not fit; and the clock they time themselves by.
 */
#ifndef PGNEAR_TESTS_FUZZ_BYTES_H
#define PGNEAR_TESTS_FUZZ_BYTES_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void nap_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- reading the input ---- */

struct cursor {
    const uint8_t *p;
    size_t n;
};

static inline uint8_t take_u8(struct cursor *c)
{
    if (c->n == 0)
        return 0;
    c->n--;
    return *c->p++;
}

static inline uint32_t take_u32(struct cursor *c)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 8 | take_u8(c);
    return v;
}

/* A length byte, then that many bytes (fewer at the end of the input). */
static inline size_t take_chunk(struct cursor *c, const uint8_t **out)
{
    size_t len = take_u8(c);
    len = MIN(len, c->n);
    *out = c->p;
    c->p += len;
    c->n -= len;
    return len;
}

/* ---- building bytes: what does not fit is cut off ---- */

struct out {
    uint8_t *b;
    size_t len, cap;
};

static inline struct out out_on(uint8_t *b, size_t cap)
{
    return (struct out){b, 0, cap};
}

#define OUT_ON(array) out_on((array), sizeof(array))

static inline void out_put(struct out *o, const void *p, size_t n)
{
    n = MIN(n, o->cap - o->len);
    memcpy(o->b + o->len, p, n);
    o->len += n;
}

static inline void out_u8(struct out *o, uint8_t v)
{
    out_put(o, &v, 1);
}

static inline void out_u16(struct out *o, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    out_put(o, b, 2);
}

static inline void out_u32(struct out *o, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    out_put(o, b, 4);
}

static inline void out_str(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

/* With its NUL, as startup packets and SASL mechanisms carry strings. */
static inline void out_cstr(struct out *o, const char *s)
{
    out_put(o, s, strlen(s) + 1);
}

static inline void out_printf(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void out_printf(struct out *o, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        out_put(o, buf, MIN((size_t)n, sizeof(buf) - 1));
}

static inline void out_chunk(struct out *o, struct cursor *c)
{
    const uint8_t *p;
    size_t n = take_chunk(c, &p);
    out_put(o, p, n);
}

static inline void patch_u32(struct out *o, size_t at, uint32_t v)
{
    if (at + 4 <= o->len)
        for (int i = 0; i < 4; i++)
            o->b[at + (size_t)i] = (uint8_t)(v >> (24 - 8 * i));
}

#endif
