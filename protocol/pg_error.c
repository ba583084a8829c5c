/*
 * pg_error.c — a PostgreSQL error as one value: filled by named parts,
 * read from a server's report, written as an ErrorResponse.
 */
#include "protocol/pg_error.h"

#include <stdio.h>
#include <string.h>

/* Starts an error afresh: sqlstate and message set, detail and hint emptied; returns e. */
struct pg_error *pg_error_setv(struct pg_error *e, const char *sqlstate, const char *fmt,
                               va_list ap)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", sqlstate);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    return e;
}

struct pg_error *pg_error_set(struct pg_error *e, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pg_error_setv(e, sqlstate, fmt, ap);
    va_end(ap);
    return e;
}

void pg_error_detail(struct pg_error *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->detail, sizeof(e->detail), fmt, ap);
    va_end(ap);
}

/* errhint(): the hint, replacing any before. */
void pg_error_hint(struct pg_error *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->hint, sizeof(e->hint), fmt, ap);
    va_end(ap);
}

/* One field of a report into its buffer, when the report has it. */
static void report_field_copy(const uint8_t *body, size_t len, char code, char *out, size_t cap)
{
    const char *v = pkt_report_field(body, len, code);
    if (v != NULL)
        snprintf(out, cap, "%s", v);
}

void pg_error_from_report(struct pg_error *e, const uint8_t *body, size_t len)
{
    memset(e, 0, sizeof(*e));
    report_field_copy(body, len, 'C', e->sqlstate, sizeof(e->sqlstate));
    report_field_copy(body, len, 'M', e->message, sizeof(e->message));
    report_field_copy(body, len, 'D', e->detail, sizeof(e->detail));
    report_field_copy(body, len, 'H', e->hint, sizeof(e->hint));
}

void pg_error_put(struct pktbuf *pb, char type, const char *severity, const struct pg_error *e)
{
    struct pkt_report r = {.severity = severity,
                           .sqlstate = e->sqlstate,
                           .message = e->message,
                           .detail = e->detail[0] ? e->detail : NULL,
                           .hint = e->hint[0] ? e->hint : NULL};
    pkt_put_report(pb, type, &r);
    if (e->position <= 0 || !pkt_ok(pb))
        return;
    /* The report ends with its terminating NUL: the P field goes before it. */
    char pos[16];
    snprintf(pos, sizeof(pos), "%d", e->position);
    pb->len--;
    pkt_put_u8(pb, 'P');
    pkt_put_cstr(pb, pos);
    pkt_put_u8(pb, 0);
    pkt_end(pb);
}
