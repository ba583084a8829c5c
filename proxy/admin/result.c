/*
 * result.c — building an admin command's rows (result.h).
 */
#include "proxy/admin/result.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void result_init(struct admin_result *r, const struct admin_column *cols, int ncols)
{
    memset(r, 0, sizeof(*r));
    r->cols = cols;
    r->ncols = ncols;
}

/* Frees the rows and the text; r may be filled again after result_init. */
void result_free(struct admin_result *r)
{
    free(r->values);
    free(r->text);
    r->values = NULL;
    r->text = NULL;
    r->nvalues = r->cap = r->text_len = r->text_cap = 0;
}

/* The CommandComplete tag; a longer one is cut to fit. */
void result_set_tag(struct admin_result *r, const char *tag)
{
    snprintf(r->tag, sizeof(r->tag), "%s", tag);
}

/* The slot of the next value, when it has the column's type; NULL (and failed) otherwise. */
static struct admin_value *result_next(struct admin_result *r, enum admin_type type)
{
    if (r->failed || r->ncols == 0)
        goto fail;
    if (r->cols[r->nvalues % (size_t)r->ncols].type != type)
        goto fail; /* a command's bug: its values and its columns disagree */
    if (r->nvalues == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        struct admin_value *grown = realloc(r->values, cap * sizeof(*grown));
        if (grown == NULL)
            goto fail;
        r->values = grown;
        r->cap = cap;
    }
    struct admin_value *v = &r->values[r->nvalues++];
    memset(v, 0, sizeof(*v));
    return v;
fail:
    r->failed = true;
    return NULL;
}

void result_null(struct admin_result *r)
{
    if (r->failed || r->ncols == 0) {
        r->failed = true;
        return;
    }
    /* NULL fits any column: take the slot with the column's own type. */
    struct admin_value *v = result_next(r, r->cols[r->nvalues % (size_t)r->ncols].type);
    if (v != NULL)
        v->is_null = true;
}

/* Copies n bytes and a NUL into the text storage; the offset, or (size_t)-1. */
static size_t result_store_text(struct admin_result *r, const char *s, size_t n)
{
    if (r->text_len + n + 1 > r->text_cap) {
        size_t cap = r->text_cap ? r->text_cap : 1024;
        while (cap < r->text_len + n + 1)
            cap *= 2;
        char *grown = realloc(r->text, cap);
        if (grown == NULL)
            return (size_t)-1;
        r->text = grown;
        r->text_cap = cap;
    }
    size_t off = r->text_len;
    memcpy(r->text + off, s, n);
    r->text[off + n] = '\0';
    r->text_len += n + 1;
    return off;
}

void result_notice(struct admin_result *r, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || r->nnotices == (int)(sizeof(r->notices) / sizeof(r->notices[0])))
        return;
    size_t off = result_store_text(r, buf, strlen(buf));
    if (off == (size_t)-1)
        r->failed = true;
    else
        r->notices[r->nnotices++] = off;
}

/* A text value of n bytes, copied; out of memory marks the result failed (result_ok). */
static void result_text_n(struct admin_result *r, const char *s, size_t n)
{
    struct admin_value *v = result_next(r, ADMIN_TEXT);
    if (v == NULL)
        return;
    v->u.off = result_store_text(r, s, n);
    v->len = n;
    if (v->u.off == (size_t)-1)
        r->failed = true;
}

/* A NULL string is a NULL value, so callers pass optional fields as they are. */
void result_text(struct admin_result *r, const char *s)
{
    if (s == NULL)
        result_null(r);
    else
        result_text_n(r, s, strlen(s));
}

/* An empty name as NULL: SQL's way of saying "none". */
void result_text_or_null(struct admin_result *r, const char *s)
{
    if (s[0] == '\0')
        result_null(r);
    else
        result_text(r, s);
}

/* A formatted text value; longer than 1 kB it is cut, not refused. */
void result_textf(struct admin_result *r, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0) {
        r->failed = true;
        return;
    }
    result_text_n(r, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* An int8 value; a column of another type marks the result failed, as every adder does. */
void result_int(struct admin_result *r, int64_t v)
{
    struct admin_value *slot = result_next(r, ADMIN_INT8);
    if (slot != NULL)
        slot->u.i = v;
}

/* A numeric value; its column's scale says how many decimals it is sent with. */
void result_numeric(struct admin_result *r, double v)
{
    struct admin_value *slot = result_next(r, ADMIN_NUMERIC);
    if (slot != NULL)
        slot->u.d = v;
}

/* A bool value. */
void result_bool(struct admin_result *r, bool v)
{
    struct admin_value *slot = result_next(r, ADMIN_BOOL);
    if (slot != NULL)
        slot->u.b = v;
}

/* A timestamptz value from Unix microseconds. */
void result_time_us(struct admin_result *r, int64_t unix_microseconds)
{
    struct admin_value *slot = result_next(r, ADMIN_TIMESTAMPTZ);
    if (slot != NULL)
        slot->u.i = unix_microseconds;
}

void result_time(struct admin_result *r, int64_t unix_seconds)
{
    if (unix_seconds == 0)
        result_null(r);
    else
        result_time_us(r, unix_seconds * 1000000);
}
