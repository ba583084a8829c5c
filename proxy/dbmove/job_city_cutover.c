/*
 * job_city_cutover.c — MOVE CITY 'c' OF DATABASE db CUTOVER, REVERT and
 * FINISH: the steps of their own in the city's chains that job_cutover.c
 * and job_finish.c splice (job_city_steps.h).
 *
 * Where a database's cutover makes its whole leaving side refuse writes,
 * a city's makes it refuse writes to that city's rows alone: a trigger on
 * each homed table, its function in the marker's schema, refuses an
 * INSERT, UPDATE or DELETE whose old or new row has a city listed in
 * pgnear_move.refused (25006), for every session but the replication's (a
 * trigger does not fire in a subscription's apply, whose
 * session_replication_role is replica: the way back writes through it).
 * The triggers are made before the gate; the gate holds the city's
 * sessions alone.  After a CUTOVER's commit, the feed (source -> target)
 * is narrowed to the tables without the column, which go on following the
 * database's region (the target refuses the application's writes to
 * them), and the target publishes the city's rows and the marker for the
 * way back; a REVERT drops the way back and widens the feed again.
 * FINISH deletes the city's rows in the source, whose triggers and
 * refusal stay; ABORT drops the marker's schema, and the triggers with it.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_city_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/clock.h"
#include "protocol/pgasync.h"
#include "protocol/sql_quote.h"
#include "proxy/migrate/history.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "routing/cities.h"
#include "routing/region.h"

/* CREATE TRIGGER waits CITY_LOCK_WAIT a try, tried again till TRIGGER_TRIES_MS have passed. */
#define TRIGGER_TRIES_MS 60000

bool job_city_key(struct dbmove_job *j, char *key, size_t cap)
{
    if (city_fold(j->req.city, key, cap) && key[0] != '\0')
        return true;
    job_problem(j, "22023", "invalid city name: '%s'", j->req.city);
    pg_error_detail(&j->problem, "It folds to nothing the city table could match.");
    return false;
}

/*
 * The way back's publication on the arriving side: the city's rows and the
 * marker (a REVERT's token goes that way).  Made once per move.
 */
#define BACK_PUBLICATION_BLOCK                                                                     \
    "DO $pgnear$ DECLARE tables text; BEGIN\n"                                                     \
    "IF EXISTS (SELECT FROM pg_publication WHERE pubname = '" DBMOVE_OBJECT_NAME "') THEN\n"       \
    "  RETURN;\n"                                                                                  \
    "END IF;\n"                                                                                    \
    "SELECT string_agg(format('%%I.%%I WHERE (%%I = %%L)', n.nspname, c.relname, a.attname, "      \
    "%2$s), ', ' ORDER BY n.nspname, c.relname) INTO tables" JOB_TABLES_WITH_COLUMN(               \
        "%1$s") "   AND a.attnum IS NOT NULL;\n"                                                   \
                "EXECUTE 'CREATE PUBLICATION " DBMOVE_OBJECT_NAME " FOR TABLE ' || tables"         \
                " || ', " DBMOVE_MARKER_SCHEMA ".cutover';\n"                                      \
                "END $pgnear$"

/*
 * The leaving side's triggers, made before the gate (CREATE TRIGGER waits
 * for the transactions writing the table, of every city, and new writers
 * queue behind it: not while sessions are held): they refuse nothing
 * until the city is in the table refused (job_city_refuse_writes), which
 * the cutover writes once its sessions are held, without a lock on the
 * application's tables.  One trigger a table serves every city moved
 * away (the first move's makes it): it reads the row's city in refused,
 * with pgnear's rights (SECURITY DEFINER: the application's role may
 * not read pgnear's schema; a fixed search_path, so that it cannot be
 * led to another table).  Its triggers pass it the column alone (those of
 * an older pgnear passed the city too, which it does not read).
 * %1$s the column, as a literal.
 */
#define TRIGGER_BLOCK                                                                              \
    "DO $pgnear$ DECLARE t record; BEGIN\n"                                                        \
    "PERFORM set_config('lock_timeout', '" CITY_LOCK_WAIT "', true);\n"                            \
    "CREATE TABLE IF NOT EXISTS " CITY_REFUSED_TABLE                                               \
    " (city text PRIMARY KEY, region text NOT NULL);\n"                                            \
    "CREATE OR REPLACE FUNCTION " DBMOVE_MARKER_SCHEMA ".refuse_city_write() RETURNS trigger\n"    \
    "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp\n"                    \
    "AS $f$ DECLARE home text; row_city text; BEGIN\n"                                             \
    "  IF TG_OP <> 'INSERT' THEN\n"                                                                \
    "    row_city := to_jsonb(OLD) ->> TG_ARGV[0];\n"                                              \
    "    SELECT r.region INTO home FROM " CITY_REFUSED_TABLE " r WHERE r.city = row_city;\n"       \
    "  END IF;\n"                                                                                  \
    "  IF home IS NULL AND TG_OP <> 'DELETE' THEN\n"                                               \
    "    row_city := to_jsonb(NEW) ->> TG_ARGV[0];\n"                                              \
    "    SELECT r.region INTO home FROM " CITY_REFUSED_TABLE " r WHERE r.city = row_city;\n"       \
    "  END IF;\n"                                                                                  \
    "  IF home IS NOT NULL THEN\n"                                                                 \
    "    RAISE EXCEPTION 'the rows of city ''%%'' live in region \"%%\" now', row_city, home\n"    \
    "      USING ERRCODE = '25006',\n"                                                             \
    "      DETAIL = format('Database %%I moved them there; %%I.%%I here keeps a copy, written "    \
    "only by the replication back.', current_database(), TG_TABLE_SCHEMA, TG_TABLE_NAME),\n"       \
    "      HINT = 'Write them through pgnear, which sends a session of that city to its "          \
    "home.';\n"                                                                                    \
    "  END IF;\n"                                                                                  \
    "  IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;\n"                                             \
    "  RETURN NEW;\n"                                                                              \
    "END $f$;\n" CITY_TRIGGERS_LOOP "END $pgnear$"

/*
 * The feed narrowed: the homed tables and the marker leave the leaving
 * side's publication, which keeps the tables without the column (the way
 * back now carries the city's rows and the marker; both ways would send
 * each row back and forth).  %1$s the column.
 */
#define NARROW_BLOCK                                                                               \
    "DO $pgnear$ DECLARE t record; BEGIN\n"                                                        \
    "FOR t IN SELECT p.schemaname, p.tablename FROM pg_publication_tables p\n"                     \
    "  WHERE p.pubname = '" DBMOVE_OBJECT_NAME "' AND (p.schemaname = '" DBMOVE_MARKER_SCHEMA      \
    "' OR EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = format('%%I.%%I', p.schemaname,"   \
    " p.tablename)::regclass AND a.attname = %1$s AND a.attnum > 0 AND NOT a.attisdropped)) "      \
    "LOOP\n"                                                                                       \
    "  EXECUTE format('ALTER PUBLICATION " DBMOVE_OBJECT_NAME " DROP TABLE %%I.%%I',"              \
    " t.schemaname, t.tablename);\n"                                                               \
    "END LOOP; END $pgnear$"

int job_city_back_publication(struct dbmove_job *j)
{
    char column[2 * DBMOVE_NAME_MAX + 8], city[2 * DBMOVE_NAME_MAX + 8], sql[4096];
    if (!job_city_quote(j, column, city, sizeof(column)))
        return JOB_FAIL;
    snprintf(sql, sizeof(sql), BACK_PUBLICATION_BLOCK, column, city);
    return job_query(j, j->cut.arrive_db, "creating the publication for the way back", sql, 0, NULL,
                     job_take_nothing, NULL);
}

/* A table's writers kept the lock past CITY_LOCK_WAIT (55P03): again, till the tries' end. */
static int take_triggers(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)res;
    if (sqlstate == NULL)
        return 0;
    if (monotonic_ms() < j->city->trigger_deadline_ms) {
        j->step--;
        return 0;
    }
    job_problem(j, "55P03", "could not lock the tables of city '%s' to create its triggers",
                j->req.city);
    pg_error_detail(&j->problem, "Transactions kept writing them for %d ms.", TRIGGER_TRIES_MS);
    pg_error_hint(&j->problem, "Run it again when long transactions on them have ended.");
    return 0;
}

int job_city_triggers(struct dbmove_job *j)
{
    char column[2 * DBMOVE_NAME_MAX + 8], city[2 * DBMOVE_NAME_MAX + 8], sql[6144];
    if (!job_city_quote(j, column, city, sizeof(column)))
        return JOB_FAIL;
    if (j->city->trigger_deadline_ms == 0)
        j->city->trigger_deadline_ms = monotonic_ms() + TRIGGER_TRIES_MS;
    snprintf(sql, sizeof(sql), TRIGGER_BLOCK, column);
    /* START's source is the leaving side of its CUTOVER. */
    return job_query(j, j->cut.leave_db != NULL ? j->cut.leave_db : j->src_db,
                     "creating the triggers that will refuse the city's writes", sql, 0, NULL,
                     take_triggers, "55P03");
}

/*
 * The arriving side's tables without the column: copies that the feed
 * keeps, written where the database lives, refused to the application
 * (migrate/city_sql.h; the migrations' upkeep makes it on the tables
 * their steps add).
 */
int job_city_reference_triggers(struct dbmove_job *j)
{
    char column[2 * DBMOVE_NAME_MAX + 8], city[2 * DBMOVE_NAME_MAX + 8];
    char region[2 * DBMOVE_NAME_MAX + 8], sql[4096];
    if (!job_city_quote(j, column, city, sizeof(column)) ||
        !sql_quote_literal_into(region, sizeof(region), j->cut.leaving->name))
        return JOB_FAIL;
    if (j->city->trigger_deadline_ms == 0)
        j->city->trigger_deadline_ms = monotonic_ms() + TRIGGER_TRIES_MS;
    snprintf(sql, sizeof(sql), CITY_REFERENCE_TRIGGERS_BLOCK, column, region);
    return job_query(j, j->cut.arrive_db,
                     "making the arriving region refuse writes to the tables without the city", sql,
                     0, NULL, take_triggers, "55P03");
}

int job_city_refuse_writes(struct dbmove_job *j)
{
    const char *params[2] = {j->req.city, j->cut.arriving->name};
    j->cut.trigger_set = true;
    return job_query(j, j->cut.leave_db, "making the leaving region refuse writes to the city",
                     "INSERT INTO " CITY_REFUSED_TABLE " VALUES ($1, $2)"
                     " ON CONFLICT (city) DO UPDATE SET region = EXCLUDED.region",
                     2, params, job_take_nothing, NULL);
}

/* The city no longer refused on db: 42P01, 3F000, no table or schema there, nothing refuses. */
static int allow_writes(struct dbmove_job *j, const char *db, const char *what)
{
    const char *params[1] = {j->req.city};
    return job_query(j, db, what, "DELETE FROM " CITY_REFUSED_TABLE " WHERE city = $1", 1, params,
                     job_take_nothing, "42P01 3F000");
}

int job_city_allow_writes(struct dbmove_job *j)
{
    return allow_writes(j, j->cut.leave_db,
                        "letting the leaving region take the city's writes again");
}

int job_city_allow_arriving(struct dbmove_job *j)
{
    return allow_writes(j, j->cut.arrive_db, "letting the arriving region take the city's writes");
}

int job_city_commit_home(struct dbmove_job *j)
{
    struct placement_table *t = &j->home->shared->placement;
    struct placement_home h = {.move_id = j->move.id, .since_us = wall_clock_us()};
    snprintf(h.database, sizeof(h.database), "%s", j->req.database);
    snprintf(h.city, sizeof(h.city), "%s", j->move.city);
    snprintf(h.key, sizeof(h.key), "%s", j->cut.scope.city_key);
    snprintf(h.region, sizeof(h.region), "%s", j->cut.arriving->name);
    snprintf(h.target, sizeof(h.target), "%s", j->move.to_region);
    snprintf(h.state, sizeof(h.state), "%s", dbmove_state_name(j->move.state));
    placement_set_home(t, &h);
    /* A round of the follower read before this commit must not put the old home back. */
    placement_set_local(t, j->req.database, true);
    return JOB_NEXT;
}

int job_city_narrow_feed(struct dbmove_job *j)
{
    char column[2 * DBMOVE_NAME_MAX + 8], city[2 * DBMOVE_NAME_MAX + 8], sql[2048];
    if (!job_city_quote(j, column, city, sizeof(column)))
        return JOB_FAIL;
    snprintf(sql, sizeof(sql), NARROW_BLOCK, column);
    return job_query(j, j->cut.leave_db, "narrowing the replication to the tables without the city",
                     sql, 0, NULL, job_take_nothing, NULL);
}

/*
 * FINISH's delete of the city's rows on the source, a batch a call (a
 * transaction each), the tables that reference others first: the number
 * of rows deleted, 0 once none is left.  As the replication's role: the
 * triggers (the city's refusal, foreign keys) do not fire.
 */
#define DELETE_BATCH_FUNCTION                                                                      \
    "CREATE OR REPLACE FUNCTION " DBMOVE_MARKER_SCHEMA ".delete_city_batch(col text, city text,"   \
    " n int) RETURNS bigint LANGUAGE plpgsql AS $f$\n"                                             \
    "DECLARE t record; deleted bigint;\n"                                                          \
    "BEGIN\n"                                                                                      \
    "  PERFORM set_config('session_replication_role', 'replica', true);\n"                         \
    "  FOR t IN WITH RECURSIVE homed AS (SELECT c.oid, n.nspname, "                                \
    "c.relname" JOB_TABLES_WITH_COLUMN(                                                            \
        "col") " AND a.attnum IS NOT NULL),\n"                                                     \
               "    depth(rel, d) AS (SELECT oid, 0 FROM homed UNION ALL SELECT k.confrelid, "     \
               "depth.d + 1"                                                                       \
               "      FROM depth JOIN pg_constraint k ON k.contype = 'f' AND k.conrelid = "        \
               "depth.rel"                                                                         \
               "      AND k.confrelid <> k.conrelid WHERE depth.d < 32)\n"                         \
               "    SELECT h.nspname, h.relname FROM homed h JOIN depth ON depth.rel = h.oid"      \
               "    GROUP BY h.nspname, h.relname ORDER BY max(depth.d), 1, 2 LOOP\n"              \
               "    EXECUTE format('DELETE FROM %I.%I WHERE ctid = ANY (ARRAY(SELECT ctid FROM "   \
               "%I.%I"                                                                             \
               " WHERE %I = %L LIMIT %s))', t.nspname, t.relname, t.nspname, t.relname, col, "     \
               "city, n);\n"                                                                       \
               "    GET DIAGNOSTICS deleted = ROW_COUNT;\n"                                        \
               "    IF deleted > 0 THEN RETURN deleted; END IF;\n"                                 \
               "  END LOOP;\n"                                                                     \
               "  RETURN 0;\n"                                                                     \
               "END $f$"

#define DELETE_BATCH_ROWS "1000"

int job_city_drop_feed(struct dbmove_job *j)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP SUBSCRIPTION IF EXISTS %s", j->cut.feed);
    return job_query(j, j->dst_db, "dropping the replication of the tables without the city", sql,
                     0, NULL, job_take_nothing, NULL);
}

int job_city_delete_function(struct dbmove_job *j)
{
    j->city->rows = 0;
    return job_query(j, j->src_db, "creating the function that deletes the city's rows",
                     DELETE_BATCH_FUNCTION, 0, NULL, job_take_nothing, NULL);
}

/* A batch deleted: another, until one finds nothing left. */
static int take_batch(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    long long n = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    j->city->rows += n;
    if (n > 0)
        j->step--;
    return 0;
}

int job_city_delete_batch(struct dbmove_job *j)
{
    char column[DBMOVE_NAME_MAX + 1];
    if (j->city->column[0] == '\0' && !job_city_homed(j))
        return JOB_FAIL;
    snprintf(column, sizeof(column), "%s", j->city->column);
    const char *params[3] = {column, j->req.city, DELETE_BATCH_ROWS};
    return job_query(j, j->src_db, "deleting a batch of the city's rows on the source",
                     "SELECT " DBMOVE_MARKER_SCHEMA ".delete_city_batch($1, $2, $3)", 3, params,
                     take_batch, NULL);
}

int job_city_finish_target(struct dbmove_job *j)
{
    /* Its refusal of writes to the tables without the column stays with the copy they are. */
    return job_query(j, j->dst_db, "dropping the cutover's marker on the target",
                     "DROP TABLE IF EXISTS " DBMOVE_MARKER_SCHEMA ".cutover", 0, NULL,
                     job_take_nothing, NULL);
}

int job_city_finish_source(struct dbmove_job *j)
{
    /* The triggers and the refusal stay: the city's rows are written in its home now. */
    return job_query(j, j->src_db, "dropping the cutover's marker on the source",
                     "DROP TABLE IF EXISTS " DBMOVE_MARKER_SCHEMA ".cutover;"
                     " DROP FUNCTION IF EXISTS " DBMOVE_MARKER_SCHEMA ".delete_city_batch",
                     PGASYNC_SCRIPT, NULL, job_take_nothing, NULL);
}

/*
 * A city's REVERT, after its commit, its sessions still held: the way
 * back (the leaving side's publication, the arriving side's subscription
 * to it) goes, and the feed carries the city's rows and the marker again,
 * as before the cutover: they are added back to the arriving side's
 * publication (%1$s the column, %2$s the city) and the leaving side's
 * subscription learns them, copying nothing (it has every row).  Both ways
 * at once would send each row back and forth.
 */
#define WIDEN_BLOCK                                                                                \
    "DO $pgnear$ DECLARE t record; BEGIN\n"                                                        \
    "FOR t IN SELECT n.nspname, c.relname, a.attname" JOB_TABLES_WITH_COLUMN(                      \
        "%1$s") "   AND (a.attnum IS NOT NULL OR n.nspname = '" DBMOVE_MARKER_SCHEMA "')"          \
                "   AND NOT EXISTS (SELECT FROM pg_publication_tables p WHERE p.pubname = "        \
                "'" DBMOVE_OBJECT_NAME                                                             \
                "'     AND p.schemaname = n.nspname AND p.tablename = c.relname) LOOP\n"           \
                "  IF t.attname IS NULL THEN\n"                                                    \
                "    EXECUTE format('ALTER PUBLICATION " DBMOVE_OBJECT_NAME                        \
                " ADD TABLE %%I.%%I', t.nspname,"                                                  \
                " t.relname);\n"                                                                   \
                "  ELSE\n"                                                                         \
                "    EXECUTE format('ALTER PUBLICATION " DBMOVE_OBJECT_NAME                        \
                " ADD TABLE %%I.%%I WHERE (%%I ="                                                  \
                " %%L)', t.nspname, t.relname, t.attname, %2$s);\n"                                \
                "  END IF;\n"                                                                      \
                "END LOOP; END $pgnear$"

int job_city_drop_way_back(struct dbmove_job *j)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP SUBSCRIPTION IF EXISTS %s", j->cut.feed);
    return job_query(j, j->cut.arrive_db, "dropping the replication back", sql, 0, NULL,
                     job_take_nothing, NULL);
}

int job_city_drop_leaving_publication(struct dbmove_job *j)
{
    return job_drop_publication(j, j->cut.leave_db, "dropping the publication of the way back");
}

int job_city_widen_feed(struct dbmove_job *j)
{
    char column[2 * DBMOVE_NAME_MAX + 8], city[2 * DBMOVE_NAME_MAX + 8], sql[4096];
    if (!job_city_quote(j, column, city, sizeof(column)))
        return JOB_FAIL;
    snprintf(sql, sizeof(sql), WIDEN_BLOCK, column, city);
    return job_query(j, j->cut.arrive_db, "publishing the city's rows from the source again", sql,
                     0, NULL, job_take_nothing, NULL);
}

int job_city_refresh_feed(struct dbmove_job *j)
{
    char sql[200];
    snprintf(sql, sizeof(sql), "ALTER SUBSCRIPTION %s REFRESH PUBLICATION WITH (copy_data = false)",
             j->cut.back);
    return job_query(j, j->cut.leave_db, "subscribing to the city's rows from the source again",
                     sql, 0, NULL, job_take_nothing, NULL);
}
