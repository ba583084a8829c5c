/*
 * pgconn.h — the libpq conninfo of pgnear's own connections (auth_query,
 * health checks, migrations) to one host.
 */
#ifndef PGNEAR_PROXY_PGCONN_H
#define PGNEAR_PROXY_PGCONN_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct region_host;

/*
 * dbname first, then server_conninfo (which may override it), then the
 * host's address.  purpose is the application_name, so that a DBA sees in
 * pg_stat_activity what each of pgnear's connections is for.
 */
bool pgconn_conninfo(const struct config *cfg, const struct region_host *h, const char *dbname,
                     const char *purpose, char *buf, size_t cap);

#endif
