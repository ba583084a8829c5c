/*
 * job_cutover.c — MOVE DATABASE db CUTOVER, and REVERT, which is the same
 * cutover the other way (job.h).
 *
 * The database leaves one region (the source at CUTOVER, the target at
 * REVERT) for the other, which already has every row by replication (the
 * feed: the subscription on the arriving side).  In order:
 *
 *   1. the move is found in the record of the region the database lives
 *      in, in the state the step needs (streaming for CUTOVER, moved for
 *      REVERT), its feed's lag small; the arriving side gets a publication
 *      (for the replication back), and the record says 'cutting over' or
 *      'reverting';
 *      Then a first token through the marker (see 3) while the sessions
 *      still run: the arriving side catches up now, not while they wait;
 *   2. the gate: the database's sessions, on every worker, are held at
 *      their next transaction boundary, new ones as they start (HOLD_DBMOVE);
 *      past move_timeout the gate opens again and nothing has changed;
 *   3. the leaving side refuses writes to the database
 *      (default_transaction_read_only for new sessions; the sessions
 *      pgnear does not hold are ended), a token is written to the move's
 *      marker there (record.h), and the arriving side is waited for until
 *      the token is there: everything written before it has arrived
 *      (bounded by move_timeout too; the slot's confirmed position is not
 *      enough: it was seen ahead of what the target had applied);
 *   4. the sequences of the arriving side are set past the leaving side's,
 *      and the slot for the replication back, made there before the gate
 *      (making one waits for the cluster's writing transactions), is moved
 *      past what the feed applied: it starts where nobody has written yet;
 *   5. the commit: the record says 'moved' (or 'streaming' again) in the
 *      arriving region; the database lives there for every worker
 *      (runtime/placement.h);
 *   6. the held sessions move to the arriving region (session/move_batch.h);
 *      those that cannot are ended with 57P01 and named; the gate opens;
 *   7. the feed is dropped and the replication back starts (a subscription
 *      on the leaving side from the slot of step 4, copying nothing); the
 *      leaving region's record says what the arriving one does, last.
 *
 * A failure before 5 undoes 2-4 (the gate opens, the leaving side takes
 * writes again, the slot goes) and the record is as before, with the
 * error; after 5 the cutover is done, and a failure is told and recorded.
 * A pgnear that stops half-way leaves the leaving region's record saying
 * 'cutting over' and its move lock free: job_settle.c then finishes or
 * undoes the cutover by the arriving region's record.  One that stops
 * before that record may leave the publication of step 1 and the slot
 * for the way back (step 4, made before the gate): the next cutover takes
 * the publication as it is and drops the slot before it makes its own;
 * ABORT removes both.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"
#include "proxy/dbmove/job_cut.h"
#include "proxy/dbmove/job_city_steps.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/clock.h"
#include "protocol/pgasync.h"
#include "protocol/sql_quote.h"
#include "proxy/base/config.h"
#include "proxy/base/list.h"
#include "proxy/dbmove/held.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/gate.h"
#include "proxy/session/move_batch.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/region.h"

#define DBMOVE_CUTOVER_MAX_LAG (16 << 20) /* bytes behind: more, and CUTOVER waits for less */
#define DBMOVE_REPLAY_POLL_MS  10
#define DBMOVE_CATCH_UP_MS     60000 /* the catch-up before the gate, at the least */

/* REVERT, or settling a reverting record: the same steps, the sides swapped. */
static bool reverting(const struct dbmove_job *j)
{
    return j->cut.reverse;
}

/* ---- 1. the move, its sides, its lag ---- */

/* The cutover leaves from where the database lives now. */
static int cut_home(struct dbmove_job *j)
{
    return job_find_source(j); /* where the database lives now: the leaving side */
}

/* The record there names the move and its state. */
static int cut_read_records(struct dbmove_job *j)
{
    return job_read_records(j, j->src_ctl, "reading the record of moves");
}

/* The step each state is waiting for, for the hint of a refusal. */
static const char *next_command(enum dbmove_state state)
{
    switch (state) {
    case DBMOVE_COPYING:
        return "CUTOVER moves it once every table is copied (SHOW MOVES says streaming); ABORT "
               "gives it up.";
    case DBMOVE_STREAMING:
        return "CUTOVER moves it; ABORT gives it up.";
    case DBMOVE_MOVED:
        return "REVERT moves it back; FINISH ends the move.";
    case DBMOVE_FAILED:
        return "ABORT removes what the move made; SHOW MOVES shows the error.";
    default:
        return "SHOW MOVES shows the move.";
    }
}

int job_cut_sides(struct dbmove_job *j)
{
    if ((j->from = region_set_find(&j->cfg->regions, j->move.from_region)) == NULL ||
        (j->to = region_set_find(&j->cfg->regions, j->move.to_region)) == NULL) {
        job_problem(j, "42704", "a region of the move of database \"%s\" is not configured",
                    j->req.database);
        pg_error_hint(&j->problem, "Configure both regions of the move again.");
        return JOB_FAIL;
    }
    if ((j->from_host = job_primary(j, j->from)) == NULL ||
        !job_conninfo(j, j->from_host, j->req.database, j->src_db, sizeof(j->src_db)) ||
        !job_conninfo(j, j->from_host, j->cfg->moves_db, j->src_ctl, sizeof(j->src_ctl)) ||
        job_target_conninfo(j) != JOB_NEXT)
        return JOB_FAIL;
    struct cutover *c = &j->cut;
    bool back = reverting(j);
    c->leaving = back ? j->to : j->from;
    c->arriving = back ? j->from : j->to;
    c->leave_db = back ? j->dst_db : j->src_db;
    c->leave_ctl = back ? j->dst_ctl : j->src_ctl;
    c->arrive_db = back ? j->src_db : j->dst_db;
    c->arrive_ctl = back ? j->src_ctl : j->dst_ctl;
    /* The feed runs on the arriving side; the way back will run on the leaving side. */
    if (back) {
        dbmove_back_name(j->move.id, c->feed, sizeof(c->feed));
        dbmove_subscription_name(j->move.id, c->back, sizeof(c->back));
    } else {
        dbmove_subscription_name(j->move.id, c->feed, sizeof(c->feed));
        dbmove_back_name(j->move.id, c->back, sizeof(c->back));
    }
    return JOB_NEXT;
}

int job_find_move_in(struct dbmove_job *j, enum dbmove_state wanted, const char *verb)
{
    for (size_t i = 0; i < j->nrecords; i++) {
        const struct dbmove_row *r = &j->records[i];
        if (!job_row_is_ours(j, r) || !dbmove_state_live(r->state))
            continue;
        j->move = *r;
        j->has_move = true;
        /* The record says copying until a cutover finds every table copied. */
        bool copying_ok = wanted == DBMOVE_STREAMING && r->state == DBMOVE_COPYING;
        if (r->state != wanted && !copying_ok) {
            char detail[200];
            snprintf(detail, sizeof(detail), "The move to region \"%s\" is %s.", r->to_region,
                     dbmove_state_name(r->state));
            job_problem(j, "55000", "database \"%s\" cannot be %s now", j->req.database, verb);
            pg_error_detail(&j->problem, "%s", detail);
            pg_error_hint(&j->problem, "%s", next_command(r->state));
            return JOB_FAIL;
        }
        return job_cut_sides(j);
    }
    job_problem(j, "55000", "database \"%s\" is not being moved", j->req.database);
    pg_error_hint(&j->problem, "MOVE DATABASE db TO REGION r starts a move.");
    return JOB_FAIL;
}

/* The record says copying until a cutover finds every table copied. */
static bool still_copying(const struct dbmove_job *j)
{
    return j->move.state == DBMOVE_COPYING;
}

/* Every table copied (none left but ready): the move is streaming, and may be cut over. */
static int take_copied(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    long long left = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    long long total = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    if (left == 0 && total > 0) {
        j->move.state = DBMOVE_STREAMING;
        return 0;
    }
    char detail[200];
    snprintf(detail, sizeof(detail), "The move to region \"%s\" is copying: %lld of %lld tables.",
             j->move.to_region, total - left, total);
    job_problem(j, "55000", "database \"%s\" cannot be cut over now", j->req.database);
    pg_error_detail(&j->problem, "%s", detail);
    pg_error_hint(&j->problem, "%s", next_command(DBMOVE_COPYING));
    return 0;
}

/* The feed's tables not yet ready on the arriving side, of all. */
static int cut_copied(struct dbmove_job *j)
{
    const char *params[1] = {j->cut.feed};
    return job_query(j, j->dst_db, "reading the copy's progress",
                     "SELECT count(*) FILTER (WHERE r.srsubstate <> 'r'), count(*)"
                     " FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid"
                     " WHERE s.subname = $1",
                     1, params, take_copied, NULL);
}

/* A lag over DBMOVE_CUTOVER_MAX_LAG refuses now, before the sessions would wait for it. */
static int take_lag(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0)) {
        job_problem(j, "55000", "the replication slot \"%s\" that feeds region \"%s\" is missing",
                    j->cut.feed, j->cut.arriving->name);
        pg_error_hint(&j->problem, "SHOW MOVES shows the move; ABORT gives it up.");
        return 0;
    }
    j->cut.lag_bytes = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    if (j->cut.lag_bytes > DBMOVE_CUTOVER_MAX_LAG) {
        char detail[200];
        snprintf(detail, sizeof(detail),
                 "Region \"%s\" is %lld bytes behind; a cutover starts at %d or less.",
                 j->cut.arriving->name, (long long)j->cut.lag_bytes, DBMOVE_CUTOVER_MAX_LAG);
        job_problem(j, "55000",
                    "the replication of database \"%s\" is too far behind for a cutover",
                    j->req.database);
        pg_error_detail(&j->problem, "%s", detail);
        pg_error_hint(&j->problem, "Run it again when SHOW MOVES shows a smaller lag.");
    }
    return 0;
}

/* How far the feed's slot is behind the leaving side's WAL. */
static int cut_lag(struct dbmove_job *j)
{
    const char *params[1] = {j->cut.feed};
    return job_query(j, j->cut.leave_ctl, "reading the replication's lag",
                     "SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::int8"
                     " FROM pg_replication_slots WHERE slot_name = $1",
                     1, params, take_lag, NULL);
}

/* The arriving side publishes too, for the replication back after the commit. */
static int cut_publication(struct dbmove_job *j)
{
    /* 42710: made by an earlier cutover of the same move. */
    return job_query(j, j->cut.arrive_db, "creating the publication for the way back",
                     "CREATE PUBLICATION " DBMOVE_OBJECT_NAME " FOR ALL TABLES", 0, NULL,
                     job_take_nothing, "42710");
}

/* Writes the move in state to ctl's record. */
static int cut_record(struct dbmove_job *j, enum dbmove_state state, const char *ctl)
{
    j->move.state = state;
    return job_write_record(j, ctl, "recording the cutover");
}

/* The leaving side's record says the cutover runs: a stopped pgnear's is settled from it. */
static int cut_record_begin_leaving(struct dbmove_job *j)
{
    j->cut.recorded = true;
    return cut_record(j, reverting(j) ? DBMOVE_REVERTING : DBMOVE_CUTTING_OVER, j->cut.leave_ctl);
}

/* The same on the arriving side, so either region tells it. */
static int cut_record_begin_arriving(struct dbmove_job *j)
{
    return cut_record(j, j->move.state, j->cut.arrive_ctl);
}

/* CUTOVER wants a streaming move, REVERT a moved one. */
static int cut_find_move(struct dbmove_job *j)
{
    j->cut.reverse = j->req.action == DBMOVE_REVERT;
    return reverting(j) ? job_find_move_in(j, DBMOVE_MOVED, "reverted")
                        : job_find_move_in(j, DBMOVE_STREAMING, "cut over");
}

/* ---- 2. the gate ---- */

/* The gate's outcome: held, told to the admin; late or out of memory, the problem. */
static void gate_done(const struct gate_outcome *o, void *arg)
{
    struct dbmove_job *j = arg;
    j->cut.gate = NULL;
    if (o->end == GATE_HELD) {
        j->cut.gate_closed = true;
        j->cut.held_at_ms = monotonic_ms();
        char subject[JOB_COMMAND_MAX];
        job_notice(j, "the sessions of %s are held (%lld ms to hold them all)",
                   job_subject(j, subject, sizeof(subject)), (long long)o->waited_ms);
    } else if (o->end == GATE_LATE) {
        job_problem(j, "55P03",
                    "could not hold the sessions of database \"%s\" within move_timeout (%d ms); "
                    "nothing was changed",
                    j->req.database, j->cfg->move_timeout_ms);
        pg_error_detail(&j->problem, "%s", o->busy);
        pg_error_hint(&j->problem, "Those clients must end their transactions: run it again.");
    } else {
        job_problem(j, "53200", "could not hold the sessions of database \"%s\"", j->req.database);
    }
    job_next(j);
}

/* Every session of the database is held at its next transaction boundary. */
static int cut_gate(struct dbmove_job *j)
{
    struct gate_scope *scope = &j->cut.scope;
    memset(scope, 0, sizeof(*scope));
    scope->all = true;
    snprintf(scope->database, sizeof(scope->database), "%s", j->req.database);
    scope->reason = HOLD_DBMOVE;
    /* A city's: only the sessions of that city (job_city_key); the others never wait. */
    if (job_is_city(j) && !job_city_key(j, scope->city_key, sizeof(scope->city_key)))
        return JOB_FAIL;
    j->cut.gate = gate_close(j->home, scope, j->cfg->move_timeout_ms, NULL, gate_done, j);
    if (j->cut.gate != NULL)
        return JOB_WAIT;
    job_problem(j, "53200", "out of memory");
    return JOB_FAIL;
}

/* ---- 3. the leaving side refuses writes; the arriving side catches up ---- */

/* New sessions on the leaving side refuse writes: no write lands there after the marker. */
static int cut_read_only(struct dbmove_job *j)
{
    j->cut.read_only_set = true;
    return job_set_read_only(j, j->cut.leave_ctl, true, "making the leaving region refuse writes");
}

/* Every worker told its held sessions' server processes: the cutover goes on. */
static void held_pids_read(void *arg)
{
    job_next(arg);
}

/*
 * The server processes of the sessions the gate holds, and the job's own:
 * they are not ended (pgnear's kept connections there close first).
 */
static int cut_held_pids(struct dbmove_job *j)
{
    gate_pids_init(&j->cut.pids, &j->cut.scope);
    j->cut.pids_made = true;
    j->cut.deadline_ms = monotonic_ms() + j->cfg->move_timeout_ms; /* for the fleet's word */
    for (size_t i = 0; i < JOB_KEPT_MAX; i++) {
        int pid = j->kept[i].conn != NULL ? pgasync_backend_pid(j->kept[i].conn) : 0;
        if (pid > 0)
            gate_pids_add(&j->cut.pids, pid);
    }
    if (dbmove_collect_held(j->home, &j->cut.pids, j->cut.leaving->name, j->req.database,
                            held_pids_read, j) == 0)
        return JOB_WAIT;
    job_problem(j, "53200", "out of memory");
    return JOB_FAIL;
}

/*
 * A city's cutover ends no session on the leaving side: the pids list only
 * takes the fleet's word (job_cut_wait_peers), from now to move_timeout.
 */
static int cut_city_pids(struct dbmove_job *j)
{
    gate_pids_init(&j->cut.pids, &j->cut.scope);
    j->cut.pids_made = true;
    j->cut.deadline_ms = monotonic_ms() + j->cfg->move_timeout_ms;
    return JOB_NEXT;
}

/* How many sessions pgnear does not hold were ended on the leaving side: told. */
static int take_ended(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)sqlstate;
    long long n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    if (n > 0)
        job_notice(j,
                   "%lld sessions of database \"%s\" in region \"%s\" that pgnear does not "
                   "hold were ended",
                   n, j->req.database, j->cut.leaving->name);
    return 0;
}

/* Sessions on the leaving side that pgnear does not hold could still write: they end. */
static int cut_end_others(struct dbmove_job *j)
{
    if (j->cut.pids.overflow) {
        job_problem(j, "54000", "too many sessions to list the ones held");
        return JOB_FAIL;
    }
    char array[sizeof(j->cut.pids.list) + 2];
    snprintf(array, sizeof(array), "{%s}", j->cut.pids.list);
    const char *params[2] = {j->req.database, array};
    return job_query(j, j->cut.leave_ctl, "ending the sessions pgnear does not hold",
                     "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                     " WHERE datname = $1 AND backend_type = 'client backend'"
                     " AND pid <> pg_backend_pid() AND pid <> ALL ($2::int[])",
                     2, params, take_ended, NULL);
}

/* A token written on the leaving side: once the arriving side has it, it has all before it. */
static int cut_mark(struct dbmove_job *j)
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
static int cut_wait_replay(struct dbmove_job *j)
{
    const char *params[1] = {j->cut.token};
    return job_query(j, j->cut.arrive_db, "waiting for the arriving region to replay",
                     dbmove_marker_read_sql, 1, params, take_marked, NULL);
}

/* Runs cut_wait_replay again after DBMOVE_REPLAY_POLL_MS while the answer is no. */
static int cut_replay_poll(struct dbmove_job *j)
{
    if (!j->cut.poll_again)
        return JOB_NEXT;
    j->cut.poll_again = false;
    j->step -= 2;
    job_next_soon(j, DBMOVE_REPLAY_POLL_MS);
    return JOB_WAIT;
}

/* ---- 4. sequences, the slot for the way back ---- */

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
static int cut_read_sequences(struct dbmove_job *j)
{
    return job_query(j, j->cut.leave_db, "reading the leaving region's sequences",
                     "SELECT string_agg(format('SELECT setval(%L, %s, true);',"
                     " format('%I.%I', schemaname, sequencename), last_value), E'\\n')"
                     " FROM pg_sequences WHERE last_value IS NOT NULL",
                     0, NULL, take_sequences, NULL);
}

/* Only a database with sequences has a script to run. */
static bool has_sequences(const struct dbmove_job *j)
{
    return j->cut.sequences != NULL;
}

/* The arriving side's sequences set past the leaving side's, before anyone writes there. */
static int cut_set_sequences(struct dbmove_job *j)
{
    return job_query(j, j->cut.arrive_db, "setting the arriving region's sequences",
                     j->cut.sequences, PGASYNC_SCRIPT, NULL, job_take_nothing, NULL);
}

/*
 * The slot for the way back is made before the sessions are held: making
 * a logical slot waits for every transaction that has written in the
 * arriving cluster (any database) to end, which must not happen while the
 * sessions wait.  What it would decode before the commit (the rows the
 * feed applies, which must not go back) it skips: cut_back_slot_skip.
 */
static int cut_back_slot(struct dbmove_job *j)
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
static int cut_back_slot_skip(struct dbmove_job *j)
{
    const char *params[1] = {j->cut.back};
    return job_query(j, j->cut.arrive_db, "starting the slot for the way back at the commit",
                     "SELECT pg_replication_slot_advance($1, pg_current_wal_lsn())", 1, params,
                     job_take_nothing, NULL);
}

/* ---- 5. the commit ---- */

/* The arriving side takes writes (after a cutover, the source refused them). */
static int cut_arriving_read_write(struct dbmove_job *j)
{
    j->cut.arriving_reset = true;
    return job_set_read_only(j, j->cut.arrive_ctl, false,
                             "letting the arriving region take writes");
}

/* The commit: the arriving side's record says the database lives there. */
static int cut_commit_arriving(struct dbmove_job *j)
{
    j->move.last_error[0] = '\0';
    return cut_record(j, reverting(j) ? DBMOVE_STREAMING : DBMOVE_MOVED, j->cut.arrive_ctl);
}

/* From here a failure no longer undoes: the database lives in the arriving region. */
static int cut_committed(struct dbmove_job *j)
{
    /* The arriving region's record says it: the cutover is done, whatever follows. */
    j->cut.committed = true;
    j->on_failure = job_cut_failed_late;
    if (job_is_city(j))
        job_city_commit_home(j);
    else if (placement_set_region(&j->home->shared->placement, j->req.database,
                                  j->cut.arriving->name) != 0)
        job_notice(j, "this pgnear cannot track more than %d moved databases", PLACEMENT_MAX);
    return JOB_NEXT;
}

/*
 * The leaving region's record last: while it still says 'cutting over',
 * what follows the commit may be unfinished, and a pgnear that finds the
 * move lock free finishes it (job_settle.c).
 */
static int cut_commit_leaving(struct dbmove_job *j)
{
    return job_write_record(j, j->cut.leave_ctl, "recording the cutover");
}

/* ---- 6. the held sessions move; the gate opens ---- */

/* The held sessions moved (or ended): kept for the answer, then the next step. */
static void sessions_moved(const struct move_result *rows, size_t nrows, bool out_of_memory,
                           void *arg)
{
    struct dbmove_job *j = arg;
    if (nrows > 0 && (j->moves = malloc(nrows * sizeof(*rows))) != NULL) {
        memcpy(j->moves, rows, nrows * sizeof(*rows));
        j->nmoves = nrows;
    }
    if (out_of_memory || (nrows > 0 && j->moves == NULL))
        job_notice(j, "out of memory: some moved sessions are missing from this answer");
    job_next(j);
}

/* The held sessions move as one batch to the arriving region; those that cannot, end. */
static int cut_move_sessions(struct dbmove_job *j)
{
    struct move_batch_spec spec = {.scope = MOVE_BATCH_DATABASE, .end_the_rest = true};
    snprintf(spec.from, sizeof(spec.from), "%s", j->cut.leaving->name);
    snprintf(spec.to, sizeof(spec.to), "%s", j->cut.arriving->name);
    snprintf(spec.database, sizeof(spec.database), "%s", j->req.database);
    snprintf(spec.city_key, sizeof(spec.city_key), "%s", j->cut.scope.city_key);
    if (move_batch_start(j->home, &spec, sessions_moved, j) == 0)
        return JOB_WAIT;
    job_notice(j, "out of memory: the held sessions were not moved; they are ended");
    return JOB_NEXT;
}

/* The moved sessions go on, now against the arriving region. */
static int cut_open_gate(struct dbmove_job *j)
{
    j->cut.gate_closed = false;
    if (gate_open(j->home, &j->cut.scope, job_cut_gate_opened, j) == 0)
        return JOB_WAIT;
    j->cut.hold_ms = monotonic_ms() - j->cut.held_at_ms;
    return JOB_NEXT; /* out of memory: the flag is down all the same */
}

/* ---- 7. the feed goes, the way back starts ---- */

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

/* The summary: where it lives, how many sessions moved, how long they were held. */
static int cut_done(struct dbmove_job *j)
{
    size_t moved = 0;
    char subject[JOB_COMMAND_MAX];
    for (size_t i = 0; i < j->nmoves; i++)
        moved += j->moves[i].moved;
    snprintf(j->summary, sizeof(j->summary),
             "%s lives in region \"%s\" now: %zu sessions moved there, %zu ended; "
             "the sessions were held %lld ms, the replication was %lld bytes behind at the start; "
             "changes stream back to region \"%s\". %s",
             job_subject(j, subject, sizeof(subject)), j->cut.arriving->name, moved,
             j->nmoves - moved, (long long)j->cut.hold_ms, (long long)j->cut.lag_bytes,
             j->cut.leaving->name,
             reverting(j) ? "CUTOVER moves it again; ABORT gives the move up."
                          : "REVERT moves it back; FINISH ends the move.");
    return JOB_NEXT;
}

/* The steps of a whole database's cutover alone (a city's: job_city.c's, where job_is_city). */
static bool whole(const struct dbmove_job *j)
{
    return !job_is_city(j);
}

/* A city's CUTOVER; its REVERT (job_city_cutover.c: the feed widened again, no way back made). */
static bool city_forward(const struct dbmove_job *j)
{
    return job_is_city(j) && !reverting(j);
}

static bool city_back(const struct dbmove_job *j)
{
    return job_is_city(j) && reverting(j);
}

/* Every cutover but a city's REVERT makes the replication back. */
static bool makes_way_back(const struct dbmove_job *j)
{
    return !city_back(j);
}

/* From here a failure is undone (job_cut_failed); this pgnear marks the database as its own
 * cutover. */
static int cut_armed(struct dbmove_job *j)
{
    j->on_failure = job_cut_failed;
    /* This pgnear runs it: its follower does not hold sessions as a peer would. */
    if (placement_set_local(&j->home->shared->placement, j->req.database, true) == 0)
        j->cut.local_set = true;
    return JOB_NEXT;
}

static const struct job_step cutover_steps[] = {
    {NULL, NULL, cut_home},
    {NULL, NULL, job_take_lock},
    {NULL, NULL, cut_read_records},
    {NULL, NULL, cut_find_move},
    {NULL, job_moves_migrations_db, job_refuse_migrating_source},
    {NULL, job_moves_migrations_db, job_refuse_migrating_target},
    {NULL, still_copying, cut_copied},
    {NULL, NULL, cut_lag},
    {NULL, job_secrets_wanted, job_source_secrets}, /* before anything changes */
    {NULL, job_secrets_wanted, job_target_secrets},
    {NULL, job_secrets_wanted, job_judge_secrets},
    {NULL, whole, cut_publication},
    {NULL, city_forward, job_city_back_publication},
    /* else the replication back fails after the commit */
    {NULL, makes_way_back, job_check_way_back},
    {NULL, job_in_fleet, job_cut_holds_table},
    {NULL, NULL, cut_armed},
    /* One a cutover killed before its record left behind: 42710 else. */
    {"creating the slot for the way back", makes_way_back, job_cut_drop_back_slot},
    {NULL, makes_way_back, cut_back_slot},
    {NULL, makes_way_back, cut_back_slot_skip}, /* most of its skipping now, not while waiting */
    {"creating the triggers that will refuse the city's writes in the leaving region", job_is_city,
     job_city_triggers},
    {NULL, city_forward, job_city_reference_triggers},
    /* Last before the gate: what the sessions would wait for is what they write from here. */
    {"letting the arriving region catch up before holding the sessions", NULL, cut_mark},
    {NULL, NULL, cut_wait_replay},
    {NULL, NULL, cut_replay_poll},
    {NULL, NULL, cut_record_begin_leaving},
    {NULL, NULL, cut_record_begin_arriving},
    {"holding the database's sessions at their next transaction boundary", whole, cut_gate},
    {"holding the city's sessions at their next transaction boundary", job_is_city, cut_gate},
    {NULL, whole, cut_held_pids},
    {NULL, job_is_city, cut_city_pids},
    {NULL, job_in_fleet, job_cut_wait_peers},
    {NULL, job_in_fleet, cut_replay_poll},
    {"making the leaving region refuse writes to the database", whole, cut_read_only},
    {NULL, whole, cut_end_others},
    {"making the leaving region refuse writes to the city's rows", job_is_city,
     job_city_refuse_writes},
    {"waiting for the arriving region to replay the last write", NULL, cut_mark},
    {NULL, NULL, cut_wait_replay},
    {NULL, NULL, cut_replay_poll},
    {NULL, whole, cut_read_sequences},
    {"setting the arriving region's sequences past the leaving region's", has_sequences,
     cut_set_sequences},
    {NULL, makes_way_back, cut_back_slot_skip},
    {NULL, whole, cut_arriving_read_write},
    {NULL, NULL, cut_commit_arriving},
    {NULL, NULL, cut_committed},
    {NULL, city_forward, job_city_allow_arriving},
    {"the replication from the source carries the city's rows again", city_back,
     job_city_drop_way_back},
    {NULL, city_back, job_city_drop_leaving_publication},
    {NULL, city_back, job_city_widen_feed},
    {NULL, city_back, job_city_refresh_feed},
    {NULL, city_back, job_city_allow_arriving},
    {"moving the held sessions", NULL, cut_move_sessions},
    {NULL, NULL, cut_open_gate},
    {"starting the replication back", whole, job_cut_drop_feed},
    {"narrowing the replication to the tables without the city's column", city_forward,
     job_city_narrow_feed},
    {NULL, makes_way_back, job_cut_back_subscription},
    {NULL, NULL, cut_commit_leaving},
    {NULL, NULL, cut_done},
    {NULL, NULL, NULL},
};

static const struct job_step *const cutover_chain[] = {cutover_steps, NULL};
const struct job_kind job_cutover_kind = {cutover_chain, NULL, job_cutover_free};

void job_cutover_free(struct dbmove_job *j)
{
    free(j->cut.sequences);
    free(j->moves);
    if (j->cut.pids_made)
        gate_pids_destroy(&j->cut.pids);
    if (j->cut.local_set)
        placement_set_local(&j->home->shared->placement, j->req.database, false);
}
