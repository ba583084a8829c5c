/*
 * session_log.h — a log line about a session: its id, the caller's
 * address, the region and host it is served from (its server connection's,
 * else the region being tried) and a SQLSTATE where the line has one, as
 * log.h's structured fields, which log_format = json writes as keys;
 * and the caller's address as text.
 */
#ifndef PGNEAR_PROXY_SESSION_LOG_H
#define PGNEAR_PROXY_SESSION_LOG_H

#include "proxy/base/log.h"

struct session;

/*
 * Who the client is, for logs and SHOW CLIENTS: its address (the real
 * caller's behind a trusted proxy) as "host:port", "unix socket", or an
 * internal session's label; "" when none is known.  Made as it is asked
 * for, so that an idle client carries no text: session_peer(s).text
 * lives until the end of the full expression that asks.
 */
struct peer_text {
    char text[64];
};
struct peer_text session_peer(const struct session *s);

/* A line about s; sqlstate NULL when it has none.  Nothing is worked out below the log level. */
void session_log(enum log_level level, const struct session *s, const char *sqlstate,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* As log.h's macros, with the session instead of its id. */
#define slog_debug(s, ...)                                                                         \
    do {                                                                                           \
        if (log_wants(LOG_DEBUG))                                                                  \
            session_log(LOG_DEBUG, s, NULL, __VA_ARGS__);                                          \
    } while (0)
#define slog_info(s, ...)  session_log(LOG_INFO, s, NULL, __VA_ARGS__)
#define slog_warn(s, ...)  session_log(LOG_WARNING, s, NULL, __VA_ARGS__)
#define slog_error(s, ...) session_log(LOG_ERROR, s, NULL, __VA_ARGS__)

#endif
