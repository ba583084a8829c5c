/*
 * job_abort.c — MOVE DATABASE db ABORT: what a move made is removed, in
 * the reverse order of its making, each step safe to run again (IF
 * EXISTS), so that an ABORT that stops half-way can simply be run again
 * (job.h).
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"
#include "proxy/dbmove/job_city_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/sql_quote.h"
#include "proxy/base/config.h"
#include "routing/region.h"

/* ABORT comes before a cutover: the database still lives in the source. */
static int abort_source(struct dbmove_job *j)
{
    return job_find_source(j);
}

/* The source's record names the move and what it made (created_database). */
static int abort_read_records(struct dbmove_job *j)
{
    return job_read_records(j, j->src_ctl, "reading the source's record of moves");
}

/* The newest move of the database that is not aborted: the one to undo. */
static int abort_find_move(struct dbmove_job *j)
{
    char subject[JOB_COMMAND_MAX];
    job_subject(j, subject, sizeof(subject));
    for (size_t i = 0; i < j->nrecords; i++) {
        const struct dbmove_row *r = &j->records[i];
        if (!job_row_is_ours(j, r) || !dbmove_state_live(r->state))
            continue;
        j->move = *r;
        j->has_move = true;
        if (r->state != DBMOVE_COPYING && r->state != DBMOVE_STREAMING &&
            r->state != DBMOVE_FAILED) {
            char detail[160];
            snprintf(detail, sizeof(detail), "The move to region \"%s\" is %s.", r->to_region,
                     dbmove_state_name(r->state));
            job_problem(j, "55000", "the move of %s cannot be aborted now", subject);
            pg_error_detail(&j->problem, "%s", detail);
            pg_error_hint(&j->problem, "ABORT gives up a move before its cutover; after it, REVERT "
                                       "moves the database back, and FINISH ends the move.");
            return JOB_FAIL;
        }
        if ((j->to = region_set_find(&j->cfg->regions, r->to_region)) == NULL) {
            job_problem(j, "42704", "the move's target region \"%s\" is not configured",
                        r->to_region);
            pg_error_hint(&j->problem, "Configure the region again to abort the move.");
            return JOB_FAIL;
        }
        return job_target_conninfo(j);
    }
    job_problem(j, "55000", "%s is not being moved", subject);
    pg_error_hint(&j->problem, "SHOW MOVES shows the moves.");
    return JOB_FAIL;
}

/* Whether the target's catalog lists the database. */
static int take_target_db(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    j->target_has_db = res != NULL && PQntuples(res) == 1;
    return JOB_NEXT;
}

/*
 * A move killed before its CREATE DATABASE committed left no database on
 * the target, and a connection to it would fail with FATAL 3D000 before
 * any statement could be tolerated: ask the target's catalog first.
 */
static int abort_find_target_db(struct dbmove_job *j)
{
    const char *params[1] = {j->req.database};
    return job_query(j, j->dst_ctl, "looking for the database on the target",
                     "SELECT 1 FROM pg_database WHERE datname = $1", 1, params, take_target_db,
                     NULL);
}

/*
 * Without the database on the target there is no subscription to drop
 * there.  A whole database's goes; a city's may stay as the region's feed
 * (job_city_join.c).
 */
static bool target_has_database(const struct dbmove_job *j)
{
    return j->target_has_db;
}

/* Dropping the subscription drops its slot on the source too, when it can reach it. */
static int abort_subscription(struct dbmove_job *j)
{
    char sql[160], name[64];
    dbmove_subscription_name(j->move.id, name, sizeof(name));
    snprintf(sql, sizeof(sql), "DROP SUBSCRIPTION IF EXISTS %s", name);
    /* A database missing at login fails with 08001, not 3D000: whole_in_target skips that case. */
    return job_query(j, j->dst_db, "dropping the subscription on the target", sql, 0, NULL,
                     job_take_nothing, "3D000");
}

/* The slot a subscription could not drop (the source unreachable then, or the move killed). */
static int abort_slot(struct dbmove_job *j)
{
    char name[64];
    dbmove_subscription_name(j->move.id, name, sizeof(name));
    return job_drop_slots(j, j->src_ctl, "dropping the replication slot on the source", name, NULL);
}

/*
 * A cutover killed after it made the slot for the way back (on the target)
 * and before its record said so left it there.  DROP DATABASE drops it
 * with the database the move created; in one it did not, it would keep
 * the target's WAL for ever.
 */
static int abort_back_slot(struct dbmove_job *j)
{
    char name[64];
    dbmove_back_name(j->move.id, name, sizeof(name));
    return job_drop_slots(j, j->dst_ctl, "dropping the slot for the way back on the target", name,
                          NULL);
}

/* The cutover's publication for the way back, in a database the move did not create. */
static int abort_target_publication(struct dbmove_job *j)
{
    return job_drop_publication(j, j->dst_db, "dropping the publication on the target");
}

/* A database the move did not create keeps what the cutover added to it. */
static bool target_db_kept(const struct dbmove_job *j)
{
    return j->target_has_db && !j->move.created_database;
}

/* The feed's publication on the source, which nothing reads any more. */
static int abort_publication(struct dbmove_job *j)
{
    return job_drop_publication(j, j->src_db, "dropping the publication on the source");
}

/* The cutover's marker schema, if a cutover undone before its commit left it on the source. */
static int abort_marker(struct dbmove_job *j)
{
    return job_drop_marker(j, j->src_db, "dropping the cutover's marker on the source");
}

/*
 * A city's: the source's marker schema goes whole unless other cities of
 * the database live away: it holds their refusal (pgnear_move.refused,
 * the function of the city triggers, which go with it), which stays; only
 * the cutover's marker goes then.
 */
static bool city_homes_left(const struct dbmove_job *j)
{
    return !job_city_no_homes(j);
}

/* Only a database the move created is dropped: pgnear never drops one it found. */
static bool move_created_database(const struct dbmove_job *j)
{
    return j->move.created_database;
}

/* WITH (FORCE): a connection left to it (a killed move's) would block a plain DROP. */
static int abort_database(struct dbmove_job *j)
{
    char sql[200], db[160];
    if (!sql_quote_ident_into(db, sizeof(db), j->req.database)) {
        job_problem(j, "22023", "the database's name is too long");
        return JOB_FAIL;
    }
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
    return job_query(j, j->dst_ctl, "dropping the database the move created on the target", sql, 0,
                     NULL, job_take_nothing, NULL);
}

/* The source's record first: the database lives there. */
static int abort_record_source(struct dbmove_job *j)
{
    j->move.state = DBMOVE_ABORTED;
    return job_write_record(j, j->src_ctl, "recording the abort in the source region");
}

/* The target's record of moves may not exist yet (the move failed before it). */
static int abort_record_target(struct dbmove_job *j)
{
    /* 42P01: the move failed before the target had a record. */
    return job_query(j, j->dst_ctl, "creating the target's record of moves", dbmove_create_sql, 0,
                     NULL, job_take_nothing, NULL);
}

/* Then the abort in the target's record, so both regions agree. */
static int abort_record_target_row(struct dbmove_job *j)
{
    return job_write_record(j, j->dst_ctl, "recording the abort in the target region");
}

/* The summary says what went, and that the source was not touched. */
static int abort_done(struct dbmove_job *j)
{
    char subject[JOB_COMMAND_MAX];
    snprintf(j->summary, sizeof(j->summary),
             "the move of %s to region \"%s\" is aborted: its subscription, slot and publication "
             "are gone%s; the source is as it was",
             job_subject(j, subject, sizeof(subject)), j->move.to_region,
             j->move.created_database ? ", and the database it created there"
             : job_is_city(j)         ? ", and the rows it copied there"
                                      : "");
    return JOB_NEXT;
}

/* The sub-chains of ABORT, spliced below into a whole database's chain and a city's. */
static const struct job_step abort_first[] = {
    {NULL, NULL, abort_source},         {NULL, NULL, job_take_lock},
    {NULL, NULL, abort_read_records},   {NULL, NULL, abort_find_move},
    {NULL, NULL, abort_find_target_db}, {NULL, NULL, NULL},
};
static const struct job_step abort_feed[] = {
    {"dropping the subscription on the target", target_has_database, abort_subscription},
    {NULL, NULL, NULL},
};
/* A city's: the move's subscription may stay as the region's feed. */
static const struct job_step abort_city_feed[] = {
    {NULL, NULL, job_city_joining},
    {NULL, target_has_database, job_city_read_feed},
    {"dropping the subscription on the target", target_has_database, job_city_end_feed},
    {NULL, NULL, NULL},
};
static const struct job_step abort_publications[] = {
    {NULL, job_city_feed_dropped, abort_slot},
    {NULL, NULL, abort_back_slot},
    {NULL, target_db_kept, abort_target_publication},
    {"dropping the publication on the source", NULL, abort_publication},
    {NULL, NULL, NULL},
};
static const struct job_step abort_marker_whole[] = {
    {NULL, NULL, abort_marker},
    {NULL, NULL, NULL},
};
static const struct job_step abort_city_marker[] = {
    {NULL, job_city_no_homes, job_city_drop_references},
    {NULL, job_city_no_homes, abort_marker},
    {NULL, city_homes_left, job_city_finish_source},
    {NULL, NULL, NULL},
};
static const struct job_step abort_database_made[] = {
    {"dropping the database the move created on the target", move_created_database, abort_database},
    {NULL, NULL, NULL},
};
/* A city's move into a database it did not create leaves what it copied there: deleted. */
static const struct job_step abort_city_copy[] = {
    {"deleting the rows the move copied to the target", target_db_kept, job_city_delete_copy},
    {NULL, job_city_joins, job_city_finish_target},
    {NULL, NULL, NULL},
};
static const struct job_step abort_last[] = {
    {NULL, NULL, abort_record_source},
    {NULL, NULL, abort_record_target},
    {NULL, NULL, abort_record_target_row},
    {NULL, NULL, abort_done},
    {NULL, NULL, NULL},
};

static const struct job_step *const abort_chain[] = {
    abort_first, abort_feed, abort_publications, abort_marker_whole, abort_database_made,
    abort_last,  NULL,
};
static const struct job_step *const abort_city_chain[] = {
    abort_first,         abort_city_feed, abort_publications, abort_city_marker,
    abort_database_made, abort_city_copy, abort_last,         NULL,
};
const struct job_kind job_abort_kind = {abort_chain, abort_city_chain, NULL};
