/*
 * job_start.c — MOVE DATABASE db TO REGION r: the checks, the record, the
 * target's database and schema, the publication and the subscription
 * (job.h).  Also the steps every command shares (job_steps.h): where the
 * database lives, the regions' primaries and connection strings, the
 * move lock, the reading and writing of the records.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"
#include "proxy/dbmove/job_city_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/pgasync.h"
#include "protocol/sql_quote.h"
#include "proxy/base/config.h"
#include "proxy/base/pgconn.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "routing/region.h"
#include "routing/route.h"

#define DBMOVE_SLOT_TIMEOUT_MS 300000 /* creating the slot waits for the source's transactions */
#define DBMOVE_LOCK_KEY        "1885826669" /* 'pgnm' */

/* ---- shared steps ---- */

/*
 * A database lives in one region's primary and, maybe, in regions whose
 * hosts are streaming standbys of it (regions = us-east, us-west: the
 * same cluster, read near its callers).  The move leaves from the region
 * whose primary is up; every other region's hosts that are up must belong
 * to that primary's cluster (the same system identifier), else the list
 * names two clusters and no one of them holds all of the database.
 */
static const struct region *leaving_region(struct dbmove_job *j, const struct region_subset *placed)
{
    const struct region *primary = NULL;
    for (size_t i = 0; i < placed->count; i++) {
        if (region_primary(placed->items[i], NULL) == NULL)
            continue;
        if (primary != NULL) {
            job_problem(j, "55000",
                        "database \"%s\" lives in two regions with a primary: %s and %s",
                        j->req.database, primary->name, placed->items[i]->name);
            pg_error_hint(&j->problem, "A database lives in one primary's cluster; list its "
                                       "standbys' regions beside it, and nothing else.");
            return NULL;
        }
        primary = placed->items[i];
    }
    if (primary == NULL || job_primary(j, primary) == NULL) {
        if (primary == NULL) /* job_primary tells why the first region has none */
            job_primary(j, placed->items[0]);
        return NULL;
    }
    uint64_t cluster = host_system_id(job_primary(j, primary));
    const struct region_host *up[REGION_SUBSET_MAX * REGION_MAX_HOSTS];
    size_t n = pgconn_hosts((const struct region *const *)placed->items, placed->count, PGCONN_UP,
                            up, REGION_SUBSET_MAX * REGION_MAX_HOSTS);
    for (size_t k = 0; k < n && cluster != 0; k++) {
        const struct region_host *h = up[k];
        uint64_t id = host_system_id(h);
        if (id == 0 || id == cluster)
            continue;
        char detail[200];
        snprintf(detail, sizeof(detail),
                 "Its system identifier is not that of the primary in region \"%s\".",
                 primary->name);
        job_problem(j, "55000",
                    "host %s:%d of region \"%s\" belongs to another cluster than "
                    "database \"%s\"'s primary",
                    h->name, h->port, h->region->name, j->req.database);
        pg_error_detail(&j->problem, "%s", detail);
        pg_error_hint(&j->problem,
                      "List only the regions whose hosts are streaming standbys of the primary.");
        return NULL;
    }
    return primary;
}

int job_find_source(struct dbmove_job *j)
{
    const struct region_subset *placed =
        placement_of(&j->home->shared->placement, j->cfg, j->req.database, &j->home_regions);
    if (placed == NULL || placed->count == 0) {
        job_problem(j, "55000", "database \"%s\" does not say where it lives", j->req.database);
        pg_error_detail(
            &j->problem,
            "A move takes a database from the primary that holds it; \"%s\" lives in every region.",
            j->req.database);
        pg_error_hint(&j->problem, "Say where it lives with a [database NAME] section: regions = "
                                   "the region whose primary holds it, and those of its standbys.");
        return JOB_FAIL;
    }
    if (placed != &j->home_regions)
        j->home_regions = *placed;
    if ((j->from = leaving_region(j, placed)) == NULL)
        return JOB_FAIL;
    j->from_host = job_primary(j, j->from);
    if (!job_conninfo(j, j->from_host, j->req.database, j->src_db, sizeof(j->src_db)) ||
        !job_conninfo(j, j->from_host, j->cfg->moves_db, j->src_ctl, sizeof(j->src_ctl)))
        return JOB_FAIL;
    return JOB_NEXT;
}

int job_target_conninfo(struct dbmove_job *j)
{
    if ((j->to_host = job_primary(j, j->to)) == NULL)
        return JOB_FAIL;
    if (!job_conninfo(j, j->to_host, j->req.database, j->dst_db, sizeof(j->dst_db)) ||
        !job_conninfo(j, j->to_host, j->cfg->moves_db, j->dst_ctl, sizeof(j->dst_ctl)))
        return JOB_FAIL;
    return JOB_NEXT;
}

/* The lock went with its connection: told, as another command on the database may now run. */
static void lock_lost(void *arg)
{
    struct dbmove_job *j = arg;
    pgasync_abandon(j->lock);
    j->lock = NULL;
    job_notice(j, "the connection that held the move lock of database \"%s\" was lost",
               j->req.database);
}

/* pg_try_advisory_lock's answer; its connection is kept idle, for the lock lives as long as it. */
static int take_lock(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    if (PQntuples(res) != 1 || PQgetvalue(res, 0, 0)[0] != 't') {
        job_problem(j, "55006", "database \"%s\" is being worked on by another move command",
                    j->req.database);
        pg_error_detail(
            &j->problem,
            "Another MOVE DATABASE or MOVE CITY command on it is running, on this pgnear or "
            "another.");
        pg_error_hint(&j->problem, "Wait for it to end; SHOW MOVES shows the moves.");
        return 0;
    }
    if (pgasync_keep(j->query, lock_lost, j))
        j->lock = j->query;
    else
        job_problem(j, "08006", "the connection that took the move lock closed");
    return 0;
}

int job_take_lock(struct dbmove_job *j)
{
    return job_take_lock_at(j, j->src_ctl);
}

int job_take_lock_at(struct dbmove_job *j, const char *ctl)
{
    const char *params[1] = {j->req.database};
    return job_query(j, ctl, "taking the database's move lock on the source",
                     "SELECT pg_try_advisory_lock(" DBMOVE_LOCK_KEY ", hashtext($1))", 1, params,
                     take_lock, NULL);
}

/*
 * No record table (42P01) is no move ever made there: no rows, not a
 * failure.  An older pgnear's record has no city moves' table: the step
 * runs again (the step before the one next) and reads the database moves.
 */
static int take_records(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    char why[256];
    free(j->records);
    j->records = NULL;
    j->nrecords = 0;
    if (res == NULL && sqlstate != NULL && !j->records_old) {
        j->records_old = true;
        j->step--;
        return 0;
    }
    j->records_old = false;
    if (res == NULL) /* 42P01: no table, no move ever */
        return sqlstate != NULL ? 0 : -1;
    if (dbmove_rows_parse(res, &j->records, &j->nrecords, why, sizeof(why)) != 0) {
        job_problem(j, "XX000", "the record of moves could not be read");
        pg_error_detail(&j->problem, "%s", why);
    }
    return 0;
}

int job_read_records(struct dbmove_job *j, const char *ctl, const char *what)
{
    return job_query(j, ctl, what, j->records_old ? dbmove_select_database_sql : dbmove_select_sql,
                     0, NULL, take_records, "42P01");
}

/* The upsert has nothing to read: only whether it failed. */
static int take_record_created(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)res;
    (void)sqlstate;
    return j->failed ? -1 : 0;
}

int job_write_record(struct dbmove_job *j, const char *ctl, const char *what)
{
    char id[24], version[16];
    struct dbmove_row *m = &j->move;
    /* Said at once on this pgnear; the reading of the records says it on the others. */
    placement_set_flag(&j->home->shared->placement, m->database, PLACEMENT_MOVING,
                       dbmove_state_live(m->state));
    if (!j->version_bumped || j->version_state != m->state) { /* a new state: a new version */
        m->version++;
        j->version_bumped = true;
        j->version_state = m->state;
    }
    snprintf(id, sizeof(id), "%lld", (long long)m->id);
    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[10] = {id,
                              m->database,
                              m->from_region,
                              m->to_region,
                              dbmove_state_name(m->state),
                              m->created_database ? "t" : "f",
                              m->started_by,
                              m->last_error,
                              version,
                              m->city};
    if (m->city[0] != '\0')
        return job_query(j, ctl, what, dbmove_city_upsert_sql, 10, params, take_record_created,
                         NULL);
    return job_query(j, ctl, what, dbmove_upsert_sql, 9, params, take_record_created, NULL);
}

/* ---- MOVE DATABASE db TO REGION r ---- */

/* The regions come first: every later query needs both primaries' connection strings. */
static int start_regions(struct dbmove_job *j)
{
    if (strcmp(j->req.database, j->cfg->moves_db) == 0) {
        job_problem(j, "0A000", "database \"%s\" cannot be moved", j->req.database);
        pg_error_detail(&j->problem, "pgnear keeps the record of moves in it (moves_db).");
        pg_error_hint(&j->problem, "Set moves_db to another database.");
        return JOB_FAIL;
    }
    if ((j->to = region_set_find(&j->cfg->regions, j->req.to_region)) == NULL) {
        job_problem(j, "42704", "region \"%s\" does not exist", j->req.to_region);
        pg_error_hint(&j->problem, "SHOW REGIONS lists them.");
        return JOB_FAIL;
    }
    if (job_is_city(j) && !job_city_homed(j))
        return JOB_FAIL;
    if (job_find_source(j) != JOB_NEXT)
        return JOB_FAIL;
    if (job_is_city(j)) {
        if (!job_city_may_leave(j))
            return JOB_FAIL;
    } else if (region_subset_has(&j->home_regions, j->to)) {
        job_problem(j, "55000", "database \"%s\" lives in region \"%s\" already", j->req.database,
                    j->to->name);
        return JOB_FAIL;
    }
    return job_target_conninfo(j);
}

/* The facts the judgement weighs (preflight.h), parsed from the source's one row. */
static int take_source_facts(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    char why[256];
    (void)sqlstate;
    if (dbmove_source_parse(res, &j->src, why, sizeof(why)) != 0) {
        job_problem(j, "XX000", "the source's facts could not be read");
        pg_error_detail(&j->problem, "%s", why);
    }
    return 0;
}

/* What the source's database is (owner, encoding, size, extensions, roles). */
static int start_source_facts(struct dbmove_job *j)
{
    j->query_hint = "The database must exist in the source region, and pgnear reach it.";
    return job_query(j, j->src_db, "reading the source's facts", dbmove_source_sql, 0, NULL,
                     take_source_facts, NULL);
}

/* The same for the target, parsed from its one row. */
static int take_target_facts(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    char why[256];
    (void)sqlstate;
    if (dbmove_target_parse(res, &j->dst, why, sizeof(why)) != 0) {
        job_problem(j, "XX000", "the target's facts could not be read");
        pg_error_detail(&j->problem, "%s", why);
    }
    return 0;
}

/* Whether the target can take the database: read in moves_db, since db may not exist there. */
static int start_target_facts(struct dbmove_job *j)
{
    const char *params[3] = {j->req.database, j->src.extensions, j->src.roles};
    j->query_hint = "pgnear must reach moves_db on the target's primary.";
    return job_query(j, j->dst_ctl, "reading the target's facts", dbmove_target_sql, 3, params,
                     take_target_facts, NULL);
}

/* An existing database on the target must be empty to be moved into. */
static bool target_has_database(const struct dbmove_job *j)
{
    return j->dst.has_database;
}

/* The target database's relation count, which the judgement wants at 0. */
static int take_relations(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    j->dst.relations = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    return 0;
}

/* Counted inside the target's database, which only a connection to it can see. */
static int start_target_relations(struct dbmove_job *j)
{
    return job_query(j, j->dst_db, "counting the target database's relations",
                     dbmove_target_relations_sql, 0, NULL, take_relations, NULL);
}

/*
 * A move of the database that is not aborted nor finished, in what was
 * read last, of the whole database or of one of its cities: one move of a
 * database at a time (55006).
 */
static int refuse_live_move(struct dbmove_job *j)
{
    for (size_t i = 0; i < j->nrecords; i++) {
        const struct dbmove_row *r = &j->records[i];
        if (strcmp(r->database, j->req.database) != 0 || !dbmove_state_live(r->state))
            continue;
        char detail[400], what[DBMOVE_NAME_MAX + 24] = "A move";
        if (r->city[0] != '\0')
            snprintf(what, sizeof(what), "A move of city '%s'", r->city);
        snprintf(detail, sizeof(detail), "%s to region \"%s\" is %s (started by %s).", what,
                 r->to_region, dbmove_state_name(r->state), r->started_by);
        job_problem(j, "55006", "database \"%s\" is being moved already", j->req.database);
        pg_error_detail(&j->problem, "%s", detail);
        pg_error_hint(&j->problem,
                      "A database has one move at a time, of it whole or of one city's rows: "
                      "SHOW MOVES shows it; its ABORT, or FINISH after its cutover, ends it.");
        return JOB_FAIL;
    }
    return JOB_NEXT;
}

/* A live move of the database in either region refuses a second one. */
static int start_source_records(struct dbmove_job *j)
{
    return job_read_records(j, j->src_ctl, "reading the source's record of moves");
}

/* The target's record too: a move may have died before the source's said so. */
static int start_target_records(struct dbmove_job *j)
{
    return job_read_records(j, j->dst_ctl, "reading the target's record of moves");
}

/* The first reason not to move is the answer, before anything is changed. */
static int start_judge(struct dbmove_job *j)
{
    if (!dbmove_judge(j->req.database, j->from->name, j->to->name, &j->src, &j->dst, &j->problem))
        return JOB_NEXT;
    j->failed = true;
    return JOB_FAIL;
}

/* From here on, a failure is recorded in both regions before the answer. */
static void record_failure(struct dbmove_job *j);

/* The move's row is made here, and the source's record table if it lacks one. */
static int start_create_tables(struct dbmove_job *j)
{
    j->move = (struct dbmove_row){.id = j->id, .state = DBMOVE_COPYING};
    snprintf(j->move.database, sizeof(j->move.database), "%s", j->req.database);
    snprintf(j->move.from_region, sizeof(j->move.from_region), "%s", j->from->name);
    snprintf(j->move.to_region, sizeof(j->move.to_region), "%s", j->to->name);
    snprintf(j->move.started_by, sizeof(j->move.started_by), "%s", j->req.by);
    snprintf(j->move.city, sizeof(j->move.city), "%s", j->req.city);
    j->move.created_database = !j->dst.has_database;
    j->has_move = true;
    return job_query(j, j->src_ctl, "creating the source's record of moves", dbmove_create_sql, 0,
                     NULL, job_take_nothing, NULL);
}

/* The target's record table, for the same row. */
static int start_create_target_table(struct dbmove_job *j)
{
    return job_query(j, j->dst_ctl, "creating the target's record of moves", dbmove_create_sql, 0,
                     NULL, job_take_nothing, NULL);
}

/* From this write on, a failure is recorded in both regions (record_failure). */
static int start_record_source(struct dbmove_job *j)
{
    j->on_failure = record_failure;
    return job_write_record(j, j->src_ctl, "recording the move in the source region");
}

/* Both regions record the move, so that either alone can tell where the database is. */
static int start_record_target(struct dbmove_job *j)
{
    return job_write_record(j, j->dst_ctl, "recording the move in the target region");
}

/* Whether the move creates the database (and ABORT may drop it). */
static bool target_lacks_database(const struct dbmove_job *j)
{
    return !j->dst.has_database;
}

/* The source's owner, encoding and locale, from template0: the schema copy loads into it. */
static int start_create_database(struct dbmove_job *j)
{
    char sql[2048], db[160], owner[160], enc[160], collate[300], ctype[300];
    if (!sql_quote_ident_into(db, sizeof(db), j->req.database) ||
        !sql_quote_ident_into(owner, sizeof(owner), j->src.owner) ||
        !sql_quote_literal_into(enc, sizeof(enc), j->src.encoding) ||
        !sql_quote_literal_into(collate, sizeof(collate), j->src.collate) ||
        !sql_quote_literal_into(ctype, sizeof(ctype), j->src.ctype)) {
        job_problem(j, "22023", "a name of the source's database is too long");
        return JOB_FAIL;
    }
    snprintf(sql, sizeof(sql),
             "CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING %s LC_COLLATE %s "
             "LC_CTYPE %s",
             db, owner, enc, collate, ctype);
    return job_query(j, j->dst_ctl, "creating the database in the target region", sql, 0, NULL,
                     job_take_nothing, NULL);
}

/* The marker schema a cutover writes its token into, made now so that it replicates. */
static int start_marker(struct dbmove_job *j)
{
    return job_query(j, j->src_db, "creating the cutover's marker on the source",
                     dbmove_marker_create_sql, PGASYNC_SCRIPT, NULL, job_take_nothing, NULL);
}

/* A city joining a region where others live finds its schema there (job_city_join.c). */
static bool copies_schema(const struct dbmove_job *j)
{
    return !job_city_joins(j);
}

/* Every table of the source, for the subscription that copies them and streams their changes. */
static int start_publication(struct dbmove_job *j)
{
    return job_query(j, j->src_db, "creating the publication on the source",
                     "CREATE PUBLICATION " DBMOVE_OBJECT_NAME " FOR ALL TABLES", 0, NULL,
                     job_take_nothing, NULL);
}

/* The target copies the tables, then streams the source's changes until the cutover. */
static int start_subscription(struct dbmove_job *j)
{
    char name[64], conn[DBMOVE_CONNINFO_MAX * 2];
    dbmove_subscription_name(j->move.id, name, sizeof(name));
    if (!job_publisher_literal(j, j->src_db, conn, sizeof(conn))) {
        job_problem(j, "22023", "the source's connection string is too long");
        return JOB_FAIL;
    }
    /* synchronous_commit: the target confirms a commit once it is on its disk, not up to a
     * second later, which is what a cutover waits for while the sessions are held. */
    j->query_hint = "The target's server connects to the source's at the address pgnear uses.";
    /* Its slot waits until every transaction running on the source has ended (twice, under
     * load, and the second is seen at the next snapshot the source logs, every 15 s). */
    j->timeout_ms = DBMOVE_SLOT_TIMEOUT_MS;
    int rc = job_create_subscription(j, j->dst_db, name, conn,
                                     job_is_city(j) ? job_city_publications(j) : DBMOVE_OBJECT_NAME,
                                     "copy_data = true, synchronous_commit = on",
                                     "creating the subscription on the target", NULL);
    explicit_bzero(conn, sizeof(conn)); /* it may hold a password */
    j->timeout_ms = DBMOVE_QUERY_TIMEOUT_MS;
    return rc;
}

/* The summary says how the admin follows the copy and how to undo it. */
static int start_done(struct dbmove_job *j)
{
    j->on_failure = NULL;
    if (job_is_city(j))
        return job_city_done(j);
    snprintf(j->summary, sizeof(j->summary),
             "copying %lld tables (%lld MB) of database \"%s\" from region \"%s\" to region "
             "\"%s\"; SHOW MOVES shows the copy, MOVE DATABASE %s ABORT undoes the move",
             (long long)j->src.tables, (long long)(j->src.bytes >> 20), j->req.database,
             j->from->name, j->to->name, j->req.database);
    return JOB_NEXT;
}

/* A step after the record failed: the record says so in both regions, then the answer. */
static const struct job_step failure_steps[];

/* The failure goes into both regions' records (failed, with the error), then is the answer. */
static void record_failure(struct dbmove_job *j)
{
    j->first_problem = j->problem;
    j->on_failure = job_pass_over; /* a failed write of it is told and passed over */
    j->move.state = DBMOVE_FAILED;
    if (snprintf(j->move.last_error, sizeof(j->move.last_error), "%s %s: %s", j->problem.sqlstate,
                 j->problem.message, j->problem.detail) >= (int)sizeof(j->move.last_error))
        memcpy(j->move.last_error + sizeof(j->move.last_error) - 4, "...", 4); /* cut */
    char command[JOB_COMMAND_MAX];
    pg_error_hint(&j->first_problem, "%s ABORT removes what the move made.",
                  job_command(j, command, sizeof(command)));
    job_switch(j, failure_steps);
    j->failed = false; /* for the two writes; the problem stays for the answer */
    j->has_move = true;
    job_next(j);
}

/* The source's record says failed, with the error. */
static int fail_record_source(struct dbmove_job *j)
{
    return job_write_record(j, j->src_ctl, "recording the failure in the source region");
}

/* The target's too, so either region tells the same. */
static int fail_record_target(struct dbmove_job *j)
{
    return job_write_record(j, j->dst_ctl, "recording the failure in the target region");
}

static const struct job_step failure_steps[] = {
    {NULL, NULL, fail_record_source},
    {NULL, NULL, fail_record_target},
    {NULL, NULL, job_end_first_problem},
    {NULL, NULL, NULL},
};

/*
 * The sub-chains of MOVE DATABASE and MOVE CITY, spliced below: the
 * checks, the record, the copy, the replication; a city's own between.
 */
static const struct job_step start_first[] = {
    {NULL, NULL, start_regions},
    {NULL, NULL, job_take_lock},
    {NULL, job_moves_migrations_db, job_refuse_migrating_source},
    {NULL, job_moves_migrations_db, job_refuse_migrating_target},
    {NULL, NULL, start_source_facts},
    {NULL, NULL, start_target_facts},
    {NULL, target_has_database, start_target_relations},
    {NULL, NULL, start_source_records},
    {NULL, NULL, refuse_live_move},
    {NULL, NULL, NULL},
};
/* A whole database's: not while cities of it live away from it. */
static const struct job_step start_no_cities_away[] = {
    {NULL, NULL, job_refuse_cities_away},
    {NULL, NULL, NULL},
};
static const struct job_step start_target_read[] = {
    {NULL, NULL, start_target_records},
    {NULL, NULL, refuse_live_move},
    {NULL, NULL, NULL},
};
/* A city's: whether other cities of the database live in the target. */
static const struct job_step start_city_joining[] = {
    {NULL, NULL, job_city_joining},
    {NULL, NULL, NULL},
};
static const struct job_step start_judged[] = {
    {NULL, NULL, start_judge},
    {NULL, NULL, NULL},
};
/* A city's: the source's tables homed by it; a joining city's compared with the target's. */
static const struct job_step start_city_checks[] = {
    {NULL, NULL, job_city_facts},
    {NULL, NULL, job_city_judge},
    {NULL, NULL, job_city_count_rows},
    {NULL, job_city_joins, job_city_source_tables},
    {NULL, job_city_joins, job_city_target_tables},
    {NULL, job_city_joins, job_city_reference_feed},
    {NULL, NULL, NULL},
};
static const struct job_step start_recorded[] = {
    {NULL, job_secrets_wanted, job_source_secrets},
    {NULL, job_secrets_wanted, job_target_secrets},
    {NULL, job_secrets_wanted, job_judge_secrets},
    {NULL, NULL, job_check_publisher},
    {"checks passed: recording the move in both regions", NULL, start_create_tables},
    {NULL, NULL, start_create_target_table},
    {NULL, NULL, start_record_source},
    {NULL, NULL, start_record_target},
    {"creating the database in the target region", target_lacks_database, start_create_database},
    {NULL, NULL, start_marker},
    {"copying the schema (pg_dump --schema-only)", copies_schema, job_copy_schema},
    {NULL, NULL, NULL},
};
/* A joining city's: the marker where the schema was not copied, the tables without it anew. */
static const struct job_step start_city_joined[] = {
    {NULL, job_city_joins, job_city_target_marker},
    {"emptying the target's copies of the tables without the city, to copy them anew",
     job_city_refeeds, job_city_empty_references},
    {NULL, NULL, NULL},
};
/* A whole database's move publishes every table. */
static const struct job_step start_publication_all[] = {
    {"creating the publication on the source and the subscription on the target", NULL,
     start_publication},
    {NULL, NULL, NULL},
};
static const struct job_step start_city_publication[] = {
    {"creating the publication of the city's rows and the tables without its column on the "
     "source, and the subscription on the target",
     NULL, job_city_publication},
    {NULL, NULL, NULL},
};
static const struct job_step start_subscribed[] = {
    {NULL, NULL, start_subscription},
    {NULL, NULL, NULL},
};
/* A city's: what will refuse its writes on the source at its cutover. */
static const struct job_step start_city_triggers[] = {
    {"creating the triggers that will refuse the city's writes on the source at its cutover", NULL,
     job_city_triggers},
    {NULL, NULL, NULL},
};
static const struct job_step start_last[] = {
    {NULL, NULL, start_done},
    {NULL, NULL, NULL},
};

static const struct job_step *const start_chain[] = {
    start_first,           start_no_cities_away, start_target_read, start_judged, start_recorded,
    start_publication_all, start_subscribed,     start_last,        NULL,
};
static const struct job_step *const start_city_chain[] = {
    start_first,       start_target_read,   start_city_joining, start_judged,
    start_city_checks, start_recorded,      start_city_joined,  start_city_publication,
    start_subscribed,  start_city_triggers, start_last,         NULL,
};
const struct job_kind job_start_kind = {start_chain, start_city_chain, job_schema_free};
