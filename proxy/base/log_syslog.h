/*
 * log_syslog.h — log.c's lines handed to syslog(3).  Apart from log.h,
 * whose level names <syslog.h> would redefine: this file and its .c
 * speak of a level by log.h's number.
 */
#ifndef PGNEAR_PROXY_LOG_SYSLOG_H
#define PGNEAR_PROXY_LOG_SYSLOG_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Opens (on) or closes (off) the connection to syslog, under ident and
 * facility ("daemon", "user", "local0" .. "local7", as PgBouncer names
 * them); -1 for an unknown facility, which leaves it closed.
 */
int log_syslog_configure(bool on, const char *ident, const char *facility);

/* Whether facility names one log_syslog_configure takes. */
bool log_syslog_facility_known(const char *facility);

/* One line (len bytes, no newline) at log.h's level (enum log_level's number). */
void log_syslog_line(int level, const char *line, size_t len);

#endif
