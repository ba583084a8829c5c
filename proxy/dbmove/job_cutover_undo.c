/*
 * job_cutover_undo.c — what a cutover (job_cutover.c) does when a step
 * fails: before its commit, everything is put back as it was (the gate
 * opens, the leaving side takes writes again, the slot for the way back
 * goes, the records say the state before, with the error); after it, the
 * cutover stands, and the error is told and recorded (job_cut.h).  And
 * the steps the cutover shares with its undo: the database's read-only
 * setting, the slot for the way back dropped, the gate's opening measured.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"
#include "proxy/dbmove/job_cut.h"
#include "proxy/dbmove/job_city_steps.h"

#include <stdio.h>
#include <string.h>

#include "protocol/clock.h"
#include "protocol/sql_quote.h"
#include "proxy/session/gate.h"

/* REVERT, or settling a reverting record: the same steps, the sides swapped. */
static bool reverting(const struct dbmove_job *j)
{
    return j->cut.reverse;
}

/* ---- what the cutover and its undo share ---- */

/*
 * ALTER DATABASE db SET default_transaction_read_only = on, or RESET, on
 * ctl: new sessions of the database there refuse writes, or take them.
 */
int job_set_read_only(struct dbmove_job *j, const char *ctl, bool on, const char *what)
{
    char sql[256], db[160];
    if (!sql_quote_ident_into(db, sizeof(db), j->req.database)) {
        job_problem(j, "22023", "the database's name is too long");
        return JOB_FAIL;
    }
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s %s", db,
             on ? "SET default_transaction_read_only = on" : "RESET default_transaction_read_only");
    return job_query(j, ctl, what, sql, 0, NULL, job_take_nothing, NULL);
}

/* The gate is open: how long the sessions were held is measured here. */
void job_cut_gate_opened(void *arg)
{
    struct dbmove_job *j = arg;
    j->cut.hold_ms = monotonic_ms() - j->cut.held_at_ms;
    job_next(j);
}

/* ---- a failure before the commit: everything as it was ---- */

static const struct job_step undo_steps[];

/* The gate closed: the held sessions must be let go. */
static bool undo_wants_gate(const struct dbmove_job *j)
{
    return j->cut.gate_closed;
}

/* The held sessions go on where they were. */
static int undo_gate(struct dbmove_job *j)
{
    j->cut.gate_closed = false;
    if (gate_open(j->home, &j->cut.scope, job_cut_gate_opened, j) == 0)
        return JOB_WAIT;
    return JOB_NEXT;
}

/* The leaving side was made to refuse writes. */
static bool undo_wants_read_write(const struct dbmove_job *j)
{
    return j->cut.read_only_set;
}

/* A city's leaving side was made to refuse writes to its rows. */
static bool undo_wants_trigger(const struct dbmove_job *j)
{
    return j->cut.trigger_set;
}

/* The leaving side takes writes again. */
static int undo_read_write(struct dbmove_job *j)
{
    return job_set_read_only(j, j->cut.leave_ctl, false,
                             "letting the leaving region take writes again");
}

/* A REVERT's arriving side was let take writes. */
static bool undo_wants_arriving_read_only(const struct dbmove_job *j)
{
    return j->cut.arriving_reset && reverting(j); /* a cutover's target never refused writes */
}

/* The arriving side refuses writes again, as before the REVERT. */
static int undo_arriving_read_only(struct dbmove_job *j)
{
    return job_set_read_only(j, j->cut.arrive_ctl, true,
                             "making the arriving region refuse writes again");
}

/* The slot for the way back was made, and nothing uses it now. */
static bool undo_wants_slot(const struct dbmove_job *j)
{
    return j->cut.back_slot_made;
}

int job_cut_drop_back_slot(struct dbmove_job *j)
{
    return job_drop_slots(j, j->cut.arrive_db, "dropping the slot for the way back", j->cut.back,
                          NULL);
}

/* The records said the cutover runs: they must say it did not. */
static bool undo_wants_record(const struct dbmove_job *j)
{
    return j->cut.recorded;
}

/* The record keeps the cutover's first problem for SHOW MOVES. */
static void record_first_problem(struct dbmove_job *j)
{
    snprintf(j->move.last_error, sizeof(j->move.last_error), "%s: %s %s",
             reverting(j) ? "REVERT" : "CUTOVER", j->first_problem.sqlstate,
             j->first_problem.message);
}

/* The leaving side's record back to the state before, with the error. */
static int undo_record_leaving(struct dbmove_job *j)
{
    j->move.state = reverting(j) ? DBMOVE_MOVED : DBMOVE_STREAMING;
    record_first_problem(j);
    return job_write_record(j, j->cut.leave_ctl, "recording that the cutover did not happen");
}

/* The same on the arriving side. */
static int undo_record_arriving(struct dbmove_job *j)
{
    return job_write_record(j, j->cut.arrive_ctl, "recording that the cutover did not happen");
}

static const struct job_step undo_steps[] = {
    {"the cutover failed: the held sessions are let go", undo_wants_gate, undo_gate},
    {NULL, undo_wants_read_write, undo_read_write},
    {NULL, undo_wants_trigger, job_city_allow_writes},
    {NULL, undo_wants_arriving_read_only, undo_arriving_read_only},
    {NULL, undo_wants_slot, job_cut_drop_back_slot},
    {NULL, undo_wants_record, undo_record_leaving},
    {NULL, undo_wants_record, undo_record_arriving},
    {NULL, NULL, job_end_first_problem},
    {NULL, NULL, NULL},
};

/* The failure kept for the answer, then steps run, each failure among them passed over. */
static void clean_up_with(struct dbmove_job *j, const struct job_step *steps)
{
    j->first_problem = j->problem;
    j->failed = false;
    job_switch(j, steps);
    j->on_failure = job_pass_over;
    job_next(j);
}

void job_cut_failed(struct dbmove_job *j)
{
    clean_up_with(j, undo_steps);
}

/* ---- a failure after the commit: the cutover stands; the error is told and recorded ---- */

/* After the commit the cutover stands: the record keeps the error for SHOW MOVES. */
static int late_record_leaving(struct dbmove_job *j)
{
    record_first_problem(j);
    return job_write_record(j, j->cut.leave_ctl, "recording the cutover's error");
}

/* The same on the arriving side. */
static int late_record_arriving(struct dbmove_job *j)
{
    return job_write_record(j, j->cut.arrive_ctl, "recording the cutover's error");
}

/* The first problem is the answer, with a hint that the cutover is done all the same. */
static int late_end(struct dbmove_job *j)
{
    j->problem = j->first_problem;
    pg_error_hint(&j->problem,
                  "Database \"%s\" lives in region \"%s\" now: the cutover is done. SHOW MOVES "
                  "shows the move.",
                  j->req.database, j->cut.arriving->name);
    j->failed = true;
    j->on_failure = NULL;
    return JOB_FAIL;
}

static const struct job_step late_steps[] = {
    {NULL, undo_wants_gate, undo_gate},
    {NULL, NULL, late_record_leaving},
    {NULL, NULL, late_record_arriving},
    {NULL, NULL, late_end},
    {NULL, NULL, NULL},
};

void job_cut_failed_late(struct dbmove_job *j)
{
    clean_up_with(j, late_steps);
}
