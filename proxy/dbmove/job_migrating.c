/*
 * job_migrating.c — a move's start and its cutover refuse while a
 * migration of the database runs on any pgnear of the fleet.  A migration
 * holds, in each region it migrates, the session-level advisory lock of
 * the migrations (MIGRATE_LOCK_KEY, migrate/history.h) in migrations_db on
 * the region's primary: the source's and the target's primaries are asked
 * whether a session holds it there.  The lock is taken region by region,
 * so a run between two regions is not seen; the admin's own runs are
 * refused before the job starts (admin/dbmove_cmd.c).
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"

#include <stdio.h>
#include <string.h>

#include "proxy/base/config.h"
#include "proxy/migrate/history.h"
#include "routing/region.h"

/* The holder of the migrations' lock in migrations_db ($1): who, which process, since when. */
static const char migrating_sql[] =
    "SELECT coalesce(nullif(a.application_name, ''), 'a session'), l.pid,"
    " coalesce(host(a.client_addr), 'a local socket'),"
    " coalesce(to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '?')"
    " FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
    " LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND d.datname = $1"
    "   AND (l.classid::int8 << 32 | l.objid::int8) = " MIGRATE_LOCK_KEY " LIMIT 1";

bool job_moves_migrations_db(const struct dbmove_job *j)
{
    return strcmp(j->cfg->migrations_db, j->req.database) == 0;
}

/* A row: a migration holds the lock in region; the problem names it. */
static int take_migrating(struct dbmove_job *j, const PGresult *res, const struct region *region)
{
    if (PQntuples(res) == 0)
        return 0;
    job_problem(j, "55006", "a migration of database \"%s\" is running in region \"%s\"",
                j->req.database, region->name);
    pg_error_detail(&j->problem,
                    "%s (server process %s, from %s, since %s UTC) holds the migrations' lock "
                    "there. Logical replication carries no schema change: a step run during the "
                    "move would stop its replication.",
                    PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                    PQgetvalue(res, 0, 3));
    pg_error_hint(&j->problem, "Move it once the migration ends (SHOW MIGRATIONS on the pgnear "
                               "that runs it shows where it stands).");
    return 0;
}

static int take_source(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    return take_migrating(j, res, j->from);
}

static int take_target(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    return take_migrating(j, res, j->to);
}

int job_refuse_migrating_source(struct dbmove_job *j)
{
    const char *params[1] = {j->req.database};
    return job_query(j, j->src_ctl, "asking the source whether a migration runs", migrating_sql, 1,
                     params, take_source, NULL);
}

int job_refuse_migrating_target(struct dbmove_job *j)
{
    const char *params[1] = {j->req.database};
    return job_query(j, j->dst_ctl, "asking the target whether a migration runs", migrating_sql, 1,
                     params, take_target, NULL);
}
