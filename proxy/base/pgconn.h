/*
 * pgconn.h — pgnear's own connections (auth_query, the routines' catalog,
 * LISTEN, health checks, migrations, moves): which hosts they go to, in
 * what order, and the libpq conninfo of each.
 *
 * Where a database lives is placement_of's (runtime/placement.h, through
 * placement_hosts); which of those regions' hosts a connection takes is
 * pgconn_hosts' alone, and a region's primary region_primary's
 * (routing/region.h): no other file restates the choice
 * (tests/doc/own_hosts.t), so that after a failover or a move every one
 * of pgnear's own connections lands where the database's sessions do.
 */
#ifndef PGNEAR_PROXY_PGCONN_H
#define PGNEAR_PROXY_PGCONN_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct region;
struct region_host;

/* Which hosts of pgnear's own connection, in what order. */
enum pgconn_pick {
    PGCONN_PRIMARIES,       /* the primaries up: what writes, or listens where writes notify */
    PGCONN_PRIMARIES_FIRST, /* those, then the standbys up: a read of what the primary holds */
    PGCONN_UP,              /* every host up, primary or standby */
    PGCONN_UP_FIRST,        /* those, then the hosts down: a read any host answers, where a
                               host not yet checked or thought down may answer still */
};

/*
 * The hosts of regions[0..nregions) that pick takes, into out (at most
 * cap), in pick's order; within each group region by region, each
 * region's hosts as configured.  Returns the count.  Health is read as
 * each host is looked at: one that changes meanwhile may be left out or
 * listed twice, harmless for a connection that tries them in turn.
 */
size_t pgconn_hosts(const struct region *const *regions, size_t nregions, enum pgconn_pick pick,
                    const struct region_host **out, size_t cap);

/*
 * The hosts pick takes of the regions database lives in now, as
 * pgconn_hosts orders them: placement_hosts (runtime/placement.h), handed
 * down to what lies under it by the worker.
 */
typedef size_t (*pgconn_placed_fn)(void *arg, const struct config *cfg, const char *database,
                                   enum pgconn_pick pick, const struct region_host **out,
                                   size_t cap);

/*
 * dbname first, then server_conninfo (which may override it), then the
 * host's address.  purpose is the application_name, so that a DBA sees in
 * pg_stat_activity what each of pgnear's connections is for.
 */
bool pgconn_conninfo(const struct config *cfg, const struct region_host *h, const char *dbname,
                     const char *purpose, char *buf, size_t cap);

#endif
