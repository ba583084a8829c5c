/*
 * job_cutover_replication.c — a cutover's replication (job_cutover.c):
 * the wait for the arriving side (a token written to the move's marker on
 * the leaving side, polled for on the arriving side until it is there:
 * everything written before it has arrived), its sequences set past the
 * leaving side's, the slot for the way back made before the gate and moved
 * past what the feed applied, and after the commit the feed dropped and
 * the replication back started.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"
#include "proxy/dbmove/job_cut.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/clock.h"
#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "routing/region.h"

#define DBMOVE_REPLAY_POLL_MS 10
#define DBMOVE_CATCH_UP_MS    60000 /* the catch-up before the gate, at the least */

/* ---- the wait for the arriving side ---- */

/* A token written on the leaving side: once the arriving side has it, it has all before it. */
int job_cut_mark(struct dbmove_job *j)
{
    /* Unique to this cutover: the move, the job, the clock. */
    snprintf(j->cut.token, sizeof(j->cut.token), "%lld-%lld-%lld", (long long)j->move.id,
             (long long)j->id, (long long)monotonic_ms());
    const char *params[1] = {j->cut.token};
    /*
     * Before the gate nobody waits on the catch-up but the admin, and a
     * replication just started (the way back after a cutover) may take
     * PostgreSQL's launcher some seconds to run: a longer bound there.
     */
    int bound = j->cut.gate_closed || j->cfg->move_timeout_ms > DBMOVE_CATCH_UP_MS
                    ? j->cfg->move_timeout_ms
                    : DBMOVE_CATCH_UP_MS;
    j->cut.deadline_ms = monotonic_ms() + bound;
    return job_query(j, j->cut.leave_db, "writing the cutover's marker", dbmove_marker_write_sql, 1,
                     params, job_take_nothing, NULL);
}

/* The token replayed: the next step; not yet: poll again, until the deadline. */
static int take_marked(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    if (PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't')
        return 0;
    if (monotonic_ms() >= j->cut.deadline_ms) {
        char detail[200];
        snprintf(detail, sizeof(detail),
                 "Region \"%s\" had not received the last write of region \"%s\".",
                 j->cut.arriving->name, j->cut.leaving->name);
        if (j->cut.gate_closed) {
            job_problem(j, "57014",
                        "the replication of database \"%s\" did not catch up within "
                        "move_timeout (%d ms); nothing was changed",
                        j->req.database, j->cfg->move_timeout_ms);
            pg_error_detail(&j->problem, "%s", detail);
            pg_error_hint(&j->problem, "Run it again when SHOW MOVES shows a smaller lag.");
        } else {
            job_problem(j, "57014",
                        "the replication of database \"%s\" did not catch up within %d ms; "
                        "nothing was changed",
                        j->req.database,
                        DBMOVE_CATCH_UP_MS > j->cfg->move_timeout_ms ? DBMOVE_CATCH_UP_MS
                                                                     : j->cfg->move_timeout_ms);
            pg_error_detail(&j->problem, "%s", detail);
            pg_error_hint(&j->problem, "Run it again when SHOW MOVES shows a smaller lag.");
        }
        return 0;
    }
    j->cut.poll_again = true;
    return 0;
}

/* Whether the arriving side has replayed the token. */
int job_cut_wait_replay(struct dbmove_job *j)
{
    const char *params[1] = {j->cut.token};
    return job_query(j, j->cut.arrive_db, "waiting for the arriving region to replay",
                     dbmove_marker_read_sql, 1, params, take_marked, NULL);
}

/*
 * Runs the step before again after DBMOVE_REPLAY_POLL_MS while the answer
 * is no: job_cut_wait_replay, or a fleet's job_cut_wait_peers.
 */
int job_cut_replay_poll(struct dbmove_job *j)
{
    if (!j->cut.poll_again)
        return JOB_NEXT;
    j->cut.poll_again = false;
    j->step -= 2;
    job_next_soon(j, DBMOVE_REPLAY_POLL_MS);
    return JOB_WAIT;
}

/* ---- the sequences, the slot for the way back ---- */

/* The setval script for the arriving side; logical replication does not carry sequences. */
static int take_sequences(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    free(j->cut.sequences);
    j->cut.sequences = NULL;
    if (PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) && PQgetvalue(res, 0, 0)[0] != '\0' &&
        (j->cut.sequences = strdup(PQgetvalue(res, 0, 0))) == NULL)
        job_problem(j, "53200", "out of memory");
    return 0;
}

/* The leaving side's sequences, which the feed does not replicate. */
int job_cut_read_sequences(struct dbmove_job *j)
{
    return job_query(j, j->cut.leave_db, "reading the leaving region's sequences",
                     "SELECT string_agg(format('SELECT setval(%L, %s, true);',"
                     " format('%I.%I', schemaname, sequencename), last_value), E'\\n')"
                     " FROM pg_sequences WHERE last_value IS NOT NULL",
                     0, NULL, take_sequences, NULL);
}

/* Only a database with sequences has a script to run. */
bool job_cut_has_sequences(const struct dbmove_job *j)
{
    return j->cut.sequences != NULL;
}

/* The arriving side's sequences set past the leaving side's, before anyone writes there. */
int job_cut_set_sequences(struct dbmove_job *j)
{
    return job_query(j, j->cut.arrive_db, "setting the arriving region's sequences",
                     j->cut.sequences, PGASYNC_SCRIPT, NULL, job_take_nothing, NULL);
}

/*
 * The slot for the way back is made before the sessions are held: making
 * a logical slot waits for every transaction that has written in the
 * arriving cluster (any database) to end, which must not happen while the
 * sessions wait.  What it would decode before the commit (the rows the
 * feed applies, which must not go back) it skips: job_cut_back_slot_skip.
 */
int job_cut_back_slot(struct dbmove_job *j)
{
    const char *params[1] = {j->cut.back};
    j->cut.back_slot_made = true;
    return job_query(j, j->cut.arrive_db, "creating the slot for the way back",
                     "SELECT pg_create_logical_replication_slot($1, 'pgoutput')", 1, params,
                     job_take_nothing, NULL);
}

/*
 * The arriving side has every write of the leaving side, and nobody has
 * written to it yet: the way back starts here, past the rows the feed
 * applied (PostgreSQL 15 cannot filter them by origin).
 */
int job_cut_back_slot_skip(struct dbmove_job *j)
{
    const char *params[1] = {j->cut.back};
    return job_query(j, j->cut.arrive_db, "starting the slot for the way back at the commit",
                     "SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())", 1, params,
                     job_take_nothing, NULL);
}

/* ---- after the commit: the feed goes, the way back starts ---- */

int job_cut_drop_feed(struct dbmove_job *j)
{
    char sql[160];
    snprintf(sql, sizeof(sql), "DROP SUBSCRIPTION IF EXISTS %s", j->cut.feed);
    return job_query(j, j->cut.arrive_db, "dropping the replication that fed the arriving region",
                     sql, 0, NULL, job_take_nothing, NULL);
}

int job_cut_back_subscription(struct dbmove_job *j)
{
    char with[256], conn[DBMOVE_CONNINFO_MAX * 2];
    if (!job_publisher_literal(j, j->cut.arrive_db, conn, sizeof(conn))) {
        job_problem(j, "22023", "the connection string is too long");
        return JOB_FAIL;
    }
    snprintf(with, sizeof(with),
             "create_slot = false, slot_name = %s, copy_data = false, synchronous_commit = on",
             j->cut.back);
    /* 42710: made already, before a pgnear that was running the cutover stopped */
    int rc = job_create_subscription(j, j->cut.leave_db, j->cut.back, conn, DBMOVE_OBJECT_NAME,
                                     with, "starting the replication back", "42710");
    explicit_bzero(conn, sizeof(conn)); /* it may hold a password */
    return rc;
}
