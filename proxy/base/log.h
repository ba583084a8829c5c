/*
 * log.h — one line per event, with the client id when there is one: as
 * text, or as one JSON object a line (log_format = json), and to syslog
 * besides (syslog = on).
 */
#ifndef PGNEAR_PROXY_LOG_H
#define PGNEAR_PROXY_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL };

/* log_format's values, in the order of its choices (config.c). */
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/*
 * What a line is about besides its text, each NULL (0) when it is about
 * none: written as JSON keys under log_format = json, and not in a text
 * line, whose message already says what it needs to.  The strings are
 * only read during the call.
 */
struct log_fields {
    uint64_t client_id;      /* the session, as cN in a text line */
    const char *client_addr; /* the caller's address, as the session has it */
    const char *region;
    const char *host; /* "name:port" */
    const char *sqlstate;
};

/* level: messages below it are dropped; path NULL or "" means stderr. */
int log_open(const char *path, enum log_level level);
void log_set_level(enum log_level level);
void log_close(void);
/* The form of every line from now on; a reload sets it again. */
void log_set_format(enum log_format format);
enum log_format log_get_format(void);
/*
 * syslog = on: every line logged is also sent to syslog(3) with ident and
 * facility (PgBouncer's syslog_ident and syslog_facility: "daemon",
 * "user", "local0" .. "local7"); off closes it.  -1 for an unknown
 * facility (the configuration's check refuses one first).
 */
int log_set_syslog(bool on, const char *ident, const char *facility);
/* The worker whose thread this is, for the lines it logs (-1: not a worker's thread). */
void log_set_thread_worker(int index);

/* client_id 0: not about one client. */
void log_msg(enum log_level level, uint64_t client_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A line with what it is about (struct log_fields); f NULL: about nothing in particular. */
void log_at(enum log_level level, const struct log_fields *f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_vat(enum log_level level, const struct log_fields *f, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/*
 * A notice or warning a server sent to one of pgnear's own connections,
 * as libpq words it, logged as "what: NOTICE: ..." (what: a C string, the
 * connection's purpose); the hook of libpq's notice processor, so that
 * nothing reaches stderr past the log.
 */
void log_server_notice(void *what, const char *message);

/* Whether a line of level is logged now. */
bool log_wants(enum log_level level);

/*
 * Asked before the line's arguments are worked out (some call the owner's
 * log_id) and before log_msg's variadic call: a few lie on every
 * transaction's path and are dropped at the usual levels.
 */
#define log_debug(id, ...)                                                                         \
    do {                                                                                           \
        if (log_wants(LOG_DEBUG))                                                                  \
            log_msg(LOG_DEBUG, id, __VA_ARGS__);                                                   \
    } while (0)
#define log_info(id, ...)  log_msg(LOG_INFO, id, __VA_ARGS__)
#define log_warn(id, ...)  log_msg(LOG_WARNING, id, __VA_ARGS__)
#define log_error(id, ...) log_msg(LOG_ERROR, id, __VA_ARGS__)

/*
 * A line of a long command's progress (a migration, a database move),
 * logged at INFO after "prefix: " and handed to tell (a NOTICE for the
 * admin who asked), unless tell is NULL.  Cut at 511 bytes.
 */
void log_progress(const char *prefix, void (*tell)(void *arg, const char *text), void *arg,
                  const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

/*
 * A limit on lines about one kind of event that a client or the system
 * can repeat as fast as it likes (failed accepts, throttled logins): at
 * most burst lines per window, for all workers together, and the next
 * line allowed says how many were left out.  One lock, taken only on
 * those rare paths.
 */
struct log_limit {
    pthread_mutex_t lock;
    int64_t window_start_ms; /* monotonic */
    uint32_t lines;          /* allowed in the current window */
    uint64_t left_out;       /* refused since the last line allowed */
};

void log_limit_init(struct log_limit *l);
void log_limit_destroy(struct log_limit *l);
/* Whether one more line may be logged now; if so, *left_out is how many were refused before it. */
bool log_limit_allow(struct log_limit *l, uint32_t burst, int64_t window_ms, uint64_t *left_out);

#endif
