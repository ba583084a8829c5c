/*
 * result.h — the rows an admin command answers with.
 *
 * A command fills a result with typed values, row by row, in column
 * order; the console encodes each value in the format the client asked
 * for (text, or binary for a Bind that says so) only when it sends the
 * row, so one result serves the simple protocol, the extended protocol
 * and an Execute that fetches it a few rows at a time.  Like the packet
 * builder, it carries a sticky error: a command adds values freely and the
 * console checks result_ok() once.
 */
#ifndef PGNEAR_PROXY_ADMIN_RESULT_H
#define PGNEAR_PROXY_ADMIN_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum admin_type {
    ADMIN_TEXT,
    ADMIN_INT8,
    ADMIN_NUMERIC, /* a double shown with column scale digits after the point */
    ADMIN_TIMESTAMPTZ,
    ADMIN_BOOL,
};

struct admin_column {
    const char *name;
    enum admin_type type;
    int scale; /* ADMIN_NUMERIC only */
};

/* One value: a number, a flag, a time, or text kept in the result's own storage. */
struct admin_value {
    bool is_null;
    union {
        int64_t i;  /* INT8; TIMESTAMPTZ as microseconds since the Unix epoch */
        double d;   /* NUMERIC */
        bool b;     /* BOOL */
        size_t off; /* TEXT: offset into text */
    } u;
    size_t len; /* TEXT */
};

struct admin_result {
    const struct admin_column *cols; /* NULL: the command returns no rows */
    int ncols;
    struct admin_value *values; /* nrows * ncols, row by row */
    size_t nvalues, cap;
    char *text; /* the text values, back to back */
    size_t text_len, text_cap;
    size_t notices[8]; /* offsets into text of NOTICE messages sent before the rows */
    int nnotices;
    bool failed;  /* out of memory, or a value added past a row's end */
    char tag[64]; /* CommandComplete: "SHOW", "PAUSE", ...; SELECT-like ones get the count */
};

/* An empty result for cols (may be NULL, ncols 0). */
void result_init(struct admin_result *r, const struct admin_column *cols, int ncols);
void result_free(struct admin_result *r);
void result_set_tag(struct admin_result *r, const char *tag);

static inline bool result_ok(const struct admin_result *r)
{
    return !r->failed;
}

static inline size_t result_rows(const struct admin_result *r)
{
    return r->ncols > 0 ? r->nvalues / (size_t)r->ncols : 0;
}

/* The value of row, col. */
static inline const struct admin_value *result_value(const struct admin_result *r, size_t row,
                                                     int col)
{
    return &r->values[row * (size_t)r->ncols + (size_t)col];
}

static inline const char *result_text_of(const struct admin_result *r, const struct admin_value *v)
{
    return r->text + v->u.off;
}

/* A NOTICE the client gets with the result (at most 8; more are dropped). */
void result_notice(struct admin_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends the next value of the current row (rows start by themselves). */
void result_null(struct admin_result *r);
void result_text(struct admin_result *r, const char *s);
/* An empty name as NULL: SQL's way of saying "none". */
void result_text_or_null(struct admin_result *r, const char *s);
void result_textf(struct admin_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void result_int(struct admin_result *r, int64_t v);
void result_numeric(struct admin_result *r, double v);
void result_bool(struct admin_result *r, bool v);
/* Seconds since the Unix epoch; 0 is shown as NULL (never happened). */
void result_time(struct admin_result *r, int64_t unix_seconds);
void result_time_us(struct admin_result *r, int64_t unix_microseconds);

#endif
