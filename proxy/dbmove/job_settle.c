/*
 * job_settle.c — a cutover whose pgnear stopped (kill -9, a crash, a lost
 * machine) is finished or undone, never left half made.
 *
 * The pgnear running a CUTOVER or REVERT holds the database's move lock
 * (job_take_lock) on the leaving side for the whole command, and the
 * server lets the lock go with that pgnear's connection.  So when the
 * record still says 'cutting over' or 'reverting' and the lock can be
 * taken, nobody runs that cutover any more: the follower (follow.c) of
 * any pgnear of the fleet, the restarted one included, starts this job.
 *
 * The commit of a cutover is the arriving side's record saying where the
 * database lives (job_cutover.c, step 5): a newer row there in the
 * committed state ('moved', or 'streaming' for a REVERT) means it was
 * made, and what followed it is done now (the leaving side's record, the
 * feed dropped, the replication back started: each safe to run again).
 * Otherwise the cutover did not happen and is undone as a failure before
 * the commit is: the leaving side takes writes again (the arriving side
 * refuses them again after a REVERT), the slot made for the way back goes,
 * and both records say the state before, with the reason.  The sessions
 * that pgnear held died with it; those the peers hold are let go or moved
 * when they read the new record.
 *
 * The same lock guards MOVE DATABASE TO REGION until its copy runs: a move
 * that says 'copying' with the lock free and no subscription on the
 * target was cut short before its copy started, and is recorded 'failed'
 * for ABORT to clean up.  The subscription is looked for first without
 * the lock, so that a move whose copy runs (nearly always) never has an
 * admin's command meet this job's lock.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"
#include "proxy/dbmove/job_cut.h"
#include "proxy/dbmove/job_city_steps.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <string.h>

#include "proxy/base/config.h"
#include "routing/region.h"

/* The leaving side, named by the follower (req.to_region), and its move lock. */
static int settle_home(struct dbmove_job *j)
{
    j->from = region_set_find(&j->cfg->regions, j->req.to_region);
    if (j->from == NULL) {
        job_problem(j, "42704", "region \"%s\" is not configured", j->req.to_region);
        return JOB_FAIL;
    }
    const struct region_host *h = job_primary(j, j->from);
    if (h == NULL || !job_conninfo(j, h, j->cfg->moves_db, j->settle_ctl, sizeof(j->settle_ctl)))
        return JOB_FAIL;
    return JOB_NEXT;
}

/* The leaving side's record: read first without the lock, then again under it. */
static int settle_read_leaving(struct dbmove_job *j)
{
    return job_read_records(j, j->settle_ctl, "reading the record of moves");
}

/*
 * Where the command that left the record held it: the leaving side (a
 * move's source); a city's commands take it where the database lives,
 * the move's source, whichever way the city goes.
 */
static int settle_take_lock(struct dbmove_job *j)
{
    return job_take_lock_at(j, job_is_city(j) ? j->src_ctl : j->settle_ctl);
}

/*
 * The interrupted cutover, if the record (read under the lock) still says
 * one runs; or a move that says 'copying', whose copy must have started.
 */
static int settle_find(struct dbmove_job *j)
{
    j->cut.found = j->cut.copying = j->cut.copy_lost = false;
    for (size_t i = 0; i < j->nrecords; i++) {
        const struct dbmove_row *r = &j->records[i];
        if (!job_row_is_ours(j, r) || (r->state != DBMOVE_CUTTING_OVER &&
                                       r->state != DBMOVE_REVERTING && r->state != DBMOVE_COPYING))
            continue;
        j->move = *r;
        j->has_move = true;
        j->cut.reverse = r->state == DBMOVE_REVERTING;
        j->cut.copying = r->state == DBMOVE_COPYING;
        j->cut.found = !j->cut.copying;
        return job_cut_sides(j);
    }
    snprintf(j->summary, sizeof(j->summary), "no cutover of database \"%s\" to settle",
             j->req.database);
    return JOB_NEXT;
}

/* An interrupted cutover was found: the rest of the job is for it. */
static bool found(const struct dbmove_job *j)
{
    return j->cut.found;
}

/*
 * What the records say is read again under the lock, which the pgnear
 * running a command holds: only then is it known that nobody else acts on
 * it.  A copy that runs is told without the lock, so that an admin's
 * command at that moment does not meet it.
 */
static bool needs_lock(const struct dbmove_job *j)
{
    return j->cut.found || j->cut.copy_lost;
}

/* The lock is taken: what was read without it is read again. */
static bool locked(const struct dbmove_job *j)
{
    return j->lock != NULL;
}

/* A copying move, looked at again under the lock. */
static bool locked_copying(const struct dbmove_job *j)
{
    return j->lock != NULL && j->cut.copying;
}

/* The arriving side's record holds the commit, if there was one. */
static int settle_read_arriving(struct dbmove_job *j)
{
    return job_read_records(j, j->cut.arrive_ctl, "reading the arriving region's record");
}

/* Whether the arriving side's record holds the commit: the cutover was made. */
static int settle_judge(struct dbmove_job *j)
{
    enum dbmove_state done = j->cut.reverse ? DBMOVE_STREAMING : DBMOVE_MOVED;
    for (size_t i = 0; i < j->nrecords; i++) {
        const struct dbmove_row *r = &j->records[i];
        if (r->id == j->move.id && r->version > j->move.version && r->state == done) {
            j->move = *r;
            j->cut.committed = true;
            /* The leaving side gets the commit's own version, not a newer one. */
            j->version_bumped = true;
            j->version_state = r->state;
        }
    }
    char subject[JOB_COMMAND_MAX];
    job_notice(j,
               "the %s of %s to region \"%s\" was interrupted (the pgnear running it stopped) %s "
               "the commit: %s",
               j->cut.reverse ? "REVERT" : "CUTOVER", job_subject(j, subject, sizeof(subject)),
               j->cut.arriving->name, j->cut.committed ? "after" : "before",
               j->cut.committed ? "finishing it" : "undoing it");
    return JOB_NEXT;
}

/* The commit was made: what followed it is finished. */
static bool committed(const struct dbmove_job *j)
{
    return j->cut.found && j->cut.committed;
}

/* No commit: the cutover is undone. */
static bool not_committed(const struct dbmove_job *j)
{
    return j->cut.found && !j->cut.committed;
}

/* A whole database's undone REVERT: its arriving side (the source) refused writes before it. */
static bool not_committed_revert(const struct dbmove_job *j)
{
    return not_committed(j) && j->cut.reverse;
}

/*
 * A city's cutover is settled by its own steps (job_city_cutover.c): made,
 * its CUTOVER's feed narrowed and way back started, or its REVERT's way
 * back dropped and feed widened; not made, its leaving side's refusal of
 * the city lifted (a REVERT made no slot for the way back).
 */
static bool committed_forward(const struct dbmove_job *j)
{
    return committed(j) && !j->cut.reverse;
}

static bool committed_back(const struct dbmove_job *j)
{
    return committed(j) && j->cut.reverse;
}

/* An undone cutover's slot for the way back: every one but a city's REVERT made one. */
static bool undo_back_slot(const struct dbmove_job *j)
{
    return not_committed(j) && !(job_is_city(j) && j->cut.reverse);
}

/* ---- made: what followed the commit ---- */

/* The leaving side's record last, as the cutover writes it. */
static int settle_record_leaving(struct dbmove_job *j)
{
    return job_write_record(j, j->cut.leave_ctl, "recording the cutover in the leaving region");
}

/* The summary says the cutover was finished by this pgnear. */
static int settle_finished(struct dbmove_job *j)
{
    char subject[JOB_COMMAND_MAX];
    snprintf(j->summary, sizeof(j->summary),
             "%s lives in region \"%s\": the interrupted %s had been committed, and is finished; "
             "changes stream back to region \"%s\"",
             job_subject(j, subject, sizeof(subject)), j->cut.arriving->name,
             j->cut.reverse ? "REVERT" : "CUTOVER", j->cut.leaving->name);
    return JOB_NEXT;
}

/* ---- not made: everything as it was ---- */

/* The leaving side takes writes again. */
static int settle_leaving_read_write(struct dbmove_job *j)
{
    return job_set_read_only(j, j->cut.leave_ctl, false,
                             "letting the leaving region take writes again");
}

/* The arriving side refuses writes again, as before the REVERT. */
static int settle_arriving_read_only(struct dbmove_job *j)
{
    /* Before a REVERT, the source (arriving again) refused writes since the cutover. */
    return job_set_read_only(j, j->cut.arrive_ctl, true,
                             "making the arriving region refuse writes again");
}

/* ctl's record back to the state before the cutover, with why. */
static int settle_undo_record(struct dbmove_job *j, const char *ctl)
{
    j->move.state = j->cut.reverse ? DBMOVE_MOVED : DBMOVE_STREAMING;
    snprintf(j->move.last_error, sizeof(j->move.last_error),
             "%s: interrupted before the commit (the pgnear running it stopped); undone",
             j->cut.reverse ? "REVERT" : "CUTOVER");
    return job_write_record(j, ctl, "recording that the cutover did not happen");
}

/* The leaving side's record says the cutover did not happen. */
static int settle_undo_record_leaving(struct dbmove_job *j)
{
    return settle_undo_record(j, j->cut.leave_ctl);
}

/* The arriving side's too. */
static int settle_undo_record_arriving(struct dbmove_job *j)
{
    return settle_undo_record(j, j->cut.arrive_ctl);
}

/* The summary says the cutover was undone by this pgnear. */
static int settle_undone(struct dbmove_job *j)
{
    char subject[JOB_COMMAND_MAX];
    snprintf(j->summary, sizeof(j->summary),
             "%s lives in region \"%s\": the interrupted %s had not been committed, and is undone",
             job_subject(j, subject, sizeof(subject)), j->cut.leaving->name,
             j->cut.reverse ? "REVERT" : "CUTOVER");
    return JOB_NEXT;
}

/* ---- a copy that never started ---- */

/* A move that says copying: its subscription must exist on the target. */
static bool copying(const struct dbmove_job *j)
{
    return j->cut.copying;
}

/* No subscription on the target: the MOVE DATABASE stopped before its copy began. */
static int take_subscribed(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    j->cut.copy_lost = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "0") == 0;
    return 0;
}

/* pg_subscription is shared by the cluster's databases: the target's moves_db sees it. */
static int settle_copy_check(struct dbmove_job *j)
{
    char name[64];
    dbmove_subscription_name(j->move.id, name, sizeof(name));
    const char *params[1] = {name};
    return job_query(j, j->dst_ctl, "looking for the move's subscription on the target",
                     "SELECT count(*) FROM pg_subscription WHERE subname = $1", 1, params,
                     take_subscribed, NULL);
}

/* A copy that never began is recorded failed, for ABORT to clean up. */
static bool copy_lost(const struct dbmove_job *j)
{
    return j->cut.copying && j->cut.copy_lost;
}

/* ctl's record says failed, with why. */
static int settle_copy_failed(struct dbmove_job *j, const char *ctl)
{
    j->move.state = DBMOVE_FAILED;
    snprintf(j->move.last_error, sizeof(j->move.last_error),
             "MOVE DATABASE was interrupted (the pgnear running it stopped) before the copy "
             "started; ABORT removes what it made");
    return job_write_record(j, ctl, "recording that the copy never started");
}

/* The source's record. */
static int settle_copy_failed_source(struct dbmove_job *j)
{
    return settle_copy_failed(j, j->src_ctl);
}

/* The target's record. */
static int settle_copy_failed_target(struct dbmove_job *j)
{
    return settle_copy_failed(j, j->dst_ctl);
}

/* The summary says the copy never began. */
static int settle_copy_told(struct dbmove_job *j)
{
    snprintf(j->summary, sizeof(j->summary),
             "the move of database \"%s\" to region \"%s\" was interrupted before its copy "
             "started: it is recorded as failed; MOVE DATABASE %s ABORT removes what it made",
             j->req.database, j->move.to_region, j->req.database);
    return JOB_NEXT;
}

/* The sub-chains of SETTLE, spliced below into a whole database's chain and a city's. */
static const struct job_step settle_first[] = {
    {NULL, NULL, settle_home},
    {NULL, NULL, settle_read_leaving},
    {NULL, NULL, settle_find},
    {NULL, copying, settle_copy_check},
    {NULL, needs_lock, settle_take_lock},
    {NULL, locked, settle_read_leaving},
    {NULL, locked, settle_find},
    {NULL, locked_copying, settle_copy_check},
    {NULL, copy_lost, settle_copy_failed_source},
    {NULL, copy_lost, settle_copy_failed_target},
    {NULL, copy_lost, settle_copy_told},
    {NULL, found, settle_read_arriving},
    {NULL, found, settle_judge},
    {NULL, NULL, NULL},
};
static const struct job_step settle_made[] = {
    {NULL, committed, job_cut_drop_feed},
    {NULL, committed, job_cut_back_subscription},
    {NULL, NULL, NULL},
};
static const struct job_step settle_city_made[] = {
    {NULL, committed_forward, job_city_allow_arriving},
    {NULL, committed_forward, job_city_narrow_feed},
    {NULL, committed_back, job_city_drop_way_back},
    {NULL, committed_back, job_city_drop_leaving_publication},
    {NULL, committed_back, job_city_widen_feed},
    {NULL, committed_back, job_city_refresh_feed},
    {NULL, committed_back, job_city_allow_arriving},
    {NULL, committed_forward, job_cut_back_subscription},
    {NULL, NULL, NULL},
};
static const struct job_step settle_made_recorded[] = {
    {NULL, committed, settle_record_leaving}, /* last, as the cutover does it */
    {NULL, committed, settle_finished},
    {NULL, NULL, NULL},
};
static const struct job_step settle_undo[] = {
    {NULL, not_committed, settle_leaving_read_write},
    {NULL, not_committed_revert, settle_arriving_read_only},
    {NULL, NULL, NULL},
};
static const struct job_step settle_city_undo[] = {
    {NULL, not_committed, job_city_allow_writes},
    {NULL, NULL, NULL},
};
static const struct job_step settle_last[] = {
    {NULL, undo_back_slot, job_cut_drop_back_slot},
    {NULL, not_committed, settle_undo_record_leaving},
    {NULL, not_committed, settle_undo_record_arriving},
    {NULL, not_committed, settle_undone},
    {NULL, NULL, NULL},
};

static const struct job_step *const settle_chain[] = {
    settle_first, settle_made, settle_made_recorded, settle_undo, settle_last, NULL,
};
static const struct job_step *const settle_city_chain[] = {
    settle_first, settle_city_made, settle_made_recorded, settle_city_undo, settle_last, NULL,
};
const struct job_kind job_settle_kind = {settle_chain, settle_city_chain, job_cutover_free};
