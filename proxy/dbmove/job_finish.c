/*
 * job_finish.c — MOVE DATABASE db FINISH: after a cutover, the move ends;
 * (MOVE CITY's FINISH: the same chain with job_city_cutover.c's steps;)
 * the replication back from the target and the publications go, the
 * record says 'finished', and the database lives in the target for good;
 * the cutover's marker schema goes from both sides.
 * The source's copy stays as the cutover left it, refusing writes, for
 * the admin to drop: pgnear never drops user data (job.h).  Each step is
 * safe to run again.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"
#include "proxy/dbmove/job_city_steps.h"

#include <stdio.h>
#include <string.h>

#include "proxy/base/config.h"
#include "routing/region.h"

/* Since the cutover the database lives in the target: the "source" found now is that side. */
static int finish_home(struct dbmove_job *j)
{
    return job_find_source(j); /* the target, where the database lives since the cutover */
}

/* The record, not the request, says which move FINISH ends and its slots' names. */
static int finish_read_records(struct dbmove_job *j)
{
    return job_read_records(j, j->src_ctl, "reading the record of moves");
}

/* Only a move that is cut over (moved) may be finished; REVERT is no longer possible after. */
static int finish_find_move(struct dbmove_job *j)
{
    return job_find_move_in(j, DBMOVE_MOVED, "finished");
}

/* The way back (the old source subscribed to the target) is what REVERT would have used. */
static int finish_back_subscription(struct dbmove_job *j)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP SUBSCRIPTION IF EXISTS %s", j->cut.back);
    return job_query(j, j->src_db, "dropping the replication back to the source", sql, 0, NULL,
                     job_take_nothing, NULL);
}

/* Slots a dropped subscription left on the source would keep its WAL forever. */
static int finish_slots(struct dbmove_job *j)
{
    /* The feed kept as the region's (job_city_join.c) keeps its slot. */
    return job_drop_slots(j, j->src_ctl, "dropping the slots left on the source", j->cut.back,
                          job_city_feed_dropped(j) ? j->cut.feed : NULL);
}

/* The same on the target, whose publication fed the way back. */
static int finish_target_slots(struct dbmove_job *j)
{
    return job_drop_slots(j, j->dst_ctl, "dropping the slots left on the target", j->cut.feed,
                          j->cut.back);
}

/* The feed's publication: nothing subscribes to it any more. */
static int finish_publication_source(struct dbmove_job *j)
{
    return job_drop_publication(j, j->src_db, "dropping the publication on the source");
}

/* The way back's publication. */
static int finish_publication_target(struct dbmove_job *j)
{
    return job_drop_publication(j, j->dst_db, "dropping the publication on the target");
}

/* The cutover's marker schema is pgnear's, not the user's: it goes from both sides. */
static int finish_marker_source(struct dbmove_job *j)
{
    return job_drop_marker(j, j->src_db, "dropping the cutover's marker on the source");
}

/* The same on the target. */
static int finish_marker_target(struct dbmove_job *j)
{
    return job_drop_marker(j, j->dst_db, "dropping the cutover's marker on the target");
}

/* The target's record first: the database lives there now. */
static int finish_record_target(struct dbmove_job *j)
{
    j->move.state = DBMOVE_FINISHED;
    j->move.last_error[0] = '\0';
    return job_write_record(j, j->dst_ctl, "recording the end of the move in the target region");
}

/* Then the source's, so that both regions agree the move is over. */
static int finish_record_source(struct dbmove_job *j)
{
    return job_write_record(j, j->src_ctl, "recording the end of the move in the source region");
}

/* The summary tells the admin the source's copy is left for them to drop. */
static int finish_done(struct dbmove_job *j)
{
    if (job_is_city(j)) {
        snprintf(j->summary, sizeof(j->summary),
                 "the move of city '%s' of database \"%s\" to region \"%s\" is finished: the "
                 "replication of its rows both ways is gone, and its %lld rows in region \"%s\" "
                 "are deleted; the tables without column %s %s",
                 j->req.city, j->req.database, j->to->name, (long long)j->city->rows, j->from->name,
                 j->city->column,
                 j->city->feed_kept ? "go on following the database's region there"
                                    : "follow the database's region there as before");
        return JOB_NEXT;
    }
    snprintf(j->summary, sizeof(j->summary),
             "the move of database \"%s\" to region \"%s\" is finished: the replication both ways "
             "is gone; the copy in region \"%s\" is left refusing writes "
             "(default_transaction_read_only) for you to drop there with DROP DATABASE when you "
             "no longer need it",
             j->req.database, j->to->name, j->from->name);
    return JOB_NEXT;
}

/* The sub-chains of FINISH, spliced below into a whole database's chain and a city's. */
static const struct job_step finish_first[] = {
    {NULL, NULL, finish_home},
    {NULL, NULL, job_take_lock},
    {NULL, NULL, finish_read_records},
    {NULL, NULL, finish_find_move},
    {"dropping the replication back to the source", NULL, finish_back_subscription},
    {NULL, NULL, NULL},
};
/* A city's: the move's subscription kept as the region's feed, or dropped. */
static const struct job_step finish_city_feed[] = {
    {NULL, NULL, job_city_read_feed},
    {NULL, NULL, job_city_end_feed},
    {NULL, NULL, NULL},
};
static const struct job_step finish_drops[] = {
    {NULL, NULL, finish_slots},
    {NULL, NULL, finish_target_slots},
    {"dropping the publications", NULL, finish_publication_source},
    {NULL, NULL, finish_publication_target},
    {NULL, NULL, NULL},
};
/* A city's: its rows deleted on the source, what refuses them kept there. */
static const struct job_step finish_city_rows[] = {
    {"deleting the city's rows on the source, 1000 a transaction", NULL, job_city_delete_function},
    {NULL, NULL, job_city_delete_batch},
    {NULL, NULL, job_city_finish_source},
    {NULL, NULL, job_city_finish_target},
    {NULL, NULL, NULL},
};
/* A whole database's: the marker dropped from both sides (a city's keeps its source's triggers). */
static const struct job_step finish_markers[] = {
    {NULL, NULL, finish_marker_source},
    {NULL, NULL, finish_marker_target},
    {NULL, NULL, NULL},
};
static const struct job_step finish_last[] = {
    {NULL, NULL, finish_record_target},
    {NULL, NULL, finish_record_source},
    {NULL, NULL, finish_done},
    {NULL, NULL, NULL},
};

static const struct job_step *const finish_chain[] = {
    finish_first, finish_drops, finish_markers, finish_last, NULL,
};
static const struct job_step *const finish_city_chain[] = {
    finish_first, finish_city_feed, finish_drops, finish_city_rows, finish_last, NULL,
};
const struct job_kind job_finish_kind = {finish_chain, finish_city_chain, NULL};
