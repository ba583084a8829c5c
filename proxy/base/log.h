/*
 * log.h — one line per event, with the client id when there is one.
 */
#ifndef PGNEAR_PROXY_LOG_H
#define PGNEAR_PROXY_LOG_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERROR, LOG_FATAL };

/* level: messages below it are dropped; path NULL or "" means stderr. */
int log_open(const char *path, enum log_level level);
void log_set_level(enum log_level level);
void log_close(void);

/* client_id 0: not about one client. */
void log_msg(enum log_level level, uint64_t client_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

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
