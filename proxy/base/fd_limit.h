/*
 * fd_limit.h — the open-files limit (RLIMIT_NOFILE) against
 * max_client_conn.
 *
 * PostgreSQL serves each connection from a process of its own; pgnear
 * serves them all from one: two descriptors per client session under
 * pool_mode = session (the client's and its server's), one under
 * transaction pooling, whose server connections are its pools' (pool_size
 * a host for one database and user; each further pair may take as many:
 * the model counts one, a section's pool_mode of its own is not counted).
 * Many systems start a service with a soft
 * limit of 1024, which would stop pgnear at about 500 sessions where the
 * server would take more: at start pgnear raises its soft limit to the
 * hard one, and says so when even that is below what max_client_conn
 * needs.
 */
#ifndef PGNEAR_PROXY_FD_LIMIT_H
#define PGNEAR_PROXY_FD_LIMIT_H

#include <stdbool.h>
#include <stddef.h>

struct config;

/* The descriptors max_client_conn sessions may hold, with pgnear's own (listeners, workers). */
long long fd_limit_needed(const struct config *cfg);

/* Descriptors a client session holds: 2 under pool_mode = session, 1 under transaction. */
int fd_limit_per_client(const struct config *cfg);

/* Server connections counted apart from the clients: a transaction-mode pool's (0 otherwise). */
long long fd_limit_servers(const struct config *cfg);

/* The process's limits now (LLONG_MAX: none); false when they cannot be read. */
bool fd_limit_get(long long *soft, long long *hard);

/*
 * Raises the soft limit to the hard one (to what cfg needs when there is
 * no hard limit).  Returns the soft limit in force afterwards (LLONG_MAX:
 * none), -1 when it cannot be read.
 */
long long fd_limit_raise(const struct config *cfg);

/* About how many client sessions a limit of soft descriptors leaves room for. */
long long fd_limit_sessions(const struct config *cfg, long long soft);

/*
 * A warning when the limit soft leaves fewer client sessions than
 * max_client_conn: written to buf, true.  False (buf untouched) when it is
 * enough.
 */
bool fd_limit_short(const struct config *cfg, long long soft, char *buf, size_t cap);

/* Raises the limit (fd_limit_raise) and logs a warning when it is short or unreadable. */
void fd_limit_check(const struct config *cfg);

#endif
