/*
 * log.h — one line per event, with the client id when there is one.
 */
#ifndef PGNEAR_PROXY_LOG_H
#define PGNEAR_PROXY_LOG_H

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

#define log_debug(id, ...) log_msg(LOG_DEBUG, id, __VA_ARGS__)
#define log_info(id, ...)  log_msg(LOG_INFO, id, __VA_ARGS__)
#define log_warn(id, ...)  log_msg(LOG_WARNING, id, __VA_ARGS__)
#define log_error(id, ...) log_msg(LOG_ERROR, id, __VA_ARGS__)

#endif
