/*
 * pg_error.h — a PostgreSQL error (or notice) as one value: the fields of
 * an ErrorResponse, filled by named parts in the spirit of PostgreSQL's
 * ereport(errcode, errmsg, errdetail, errhint), so that a detail cannot
 * stand where a hint goes.  Fixed buffers: filling it never allocates.
 */
#ifndef PGNEAR_PROTOCOL_PG_ERROR_H
#define PGNEAR_PROTOCOL_PG_ERROR_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pkt.h"

#define PG_ERROR_MESSAGE_MAX 256 /* with its NUL */

struct pg_error {
    char sqlstate[6];
    char message[PG_ERROR_MESSAGE_MAX];
    char detail[1024]; /* "": none */
    char hint[1024];   /* "": none; room for the statements that fix differing secrets */
    int position;      /* 1-based byte position in the command text (field P); 0: none */
};

/* Starts e anew: its SQLSTATE and message, no detail, hint or position. */
struct pg_error *pg_error_set(struct pg_error *e, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct pg_error *pg_error_setv(struct pg_error *e, const char *sqlstate, const char *fmt,
                               va_list ap) __attribute__((format(printf, 3, 0)));

/* The detail and the hint, full sentences. */
void pg_error_detail(struct pg_error *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void pg_error_hint(struct pg_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether e holds an error (pg_error_set ran since it was zeroed). */
static inline bool pg_error_is_set(const struct pg_error *e)
{
    return e->sqlstate[0] != '\0';
}

/* e from a received ErrorResponse or NoticeResponse body; the fields it lacks stay empty. */
void pg_error_from_report(struct pg_error *e, const uint8_t *body, size_t len);

/* Appends e as an ErrorResponse ('E') or NoticeResponse ('N') of severity ("ERROR", "FATAL"). */
void pg_error_put(struct pktbuf *pb, char type, const char *severity, const struct pg_error *e);

#endif
