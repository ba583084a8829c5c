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
 *
 * Here: the move found (1), the records, the commit (5), and the chains.
 * The sessions (2, 3's ending of those not held, 6) are job_cutover_hold.c's;
 * the replication (the marker's wait, 4, 7) job_cutover_replication.c's.
 * A city's cutover (MOVE CITY) runs chains of its own, spliced from the
 * same sub-chains and job_city_cutover.c's steps: the leaving side refuses
 * the city's rows by a trigger instead of the whole database by a setting,
 * the gate holds the city's sessions alone, and its REVERT makes no way
 * back (the feed carries the city's rows again).
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_steps.h"
#include "proxy/dbmove/job_cut.h"
#include "proxy/dbmove/job_city_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/gate.h"
#include "proxy/session/move_batch.h"
#include "routing/region.h"

#define DBMOVE_CUTOVER_MAX_LAG (16 << 20) /* bytes behind: more, and CUTOVER waits for less */

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

/* ---- armed: a failure from here is undone ---- */

/*
 * From here a failure is undone (job_cut_failed); this pgnear marks the
 * database as its own cutover.
 */
static int cut_armed(struct dbmove_job *j)
{
    j->on_failure = job_cut_failed;
    /* This pgnear runs it: its follower does not hold sessions as a peer would. */
    if (placement_set_local(&j->home->shared->placement, j->req.database, true) == 0)
        j->cut.local_set = true;
    return JOB_NEXT;
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
    return JOB_NEXT;
}

/* A whole database's commit on this pgnear: it lives in the arriving region for every worker. */
static int cut_place(struct dbmove_job *j)
{
    struct placement_table *t = &j->home->shared->placement;
    if (placement_set_region(t, j->req.database, j->cut.arriving->name) != 0)
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

/*
 * The sub-chains of CUTOVER and REVERT, spliced below into a whole
 * database's chain (one for both: j->cut.reverse swaps the sides) and a
 * city's, one each way (job_city_cutover.c's steps: the city's triggers
 * instead of the read-only database, no way back made by its REVERT).
 */
static const struct job_step cut_first[] = {
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
    {NULL, NULL, NULL},
};
/* The arriving side's publication for the way back, checked: else it fails after the commit. */
static const struct job_step whole_way_back[] = {
    {NULL, NULL, cut_publication},
    {NULL, NULL, job_check_way_back},
    {NULL, NULL, NULL},
};
static const struct job_step city_way_back[] = {
    {NULL, NULL, job_city_back_publication},
    {NULL, NULL, job_check_way_back},
    {NULL, NULL, NULL},
};
static const struct job_step cut_armed_steps[] = {
    {NULL, job_in_fleet, job_cut_holds_table},
    {NULL, NULL, cut_armed},
    {NULL, NULL, NULL},
};
static const struct job_step cut_back_slot[] = {
    /* One a cutover killed before its record left behind: 42710 else. */
    {"creating the slot for the way back", NULL, job_cut_drop_back_slot},
    {NULL, NULL, job_cut_back_slot},
    {NULL, NULL, job_cut_back_slot_skip}, /* most of its skipping now, not while waiting */
    {NULL, NULL, NULL},
};
static const struct job_step city_triggers[] = {
    {"creating the triggers that will refuse the city's writes in the leaving region", NULL,
     job_city_triggers},
    {NULL, NULL, NULL},
};
static const struct job_step city_reference_triggers[] = {
    {NULL, NULL, job_city_reference_triggers},
    {NULL, NULL, NULL},
};
/* Last before the gate: what the sessions would wait for is what they write from here. */
static const struct job_step cut_catch_up[] = {
    {"letting the arriving region catch up before holding the sessions", NULL, job_cut_mark},
    {NULL, NULL, job_cut_wait_replay},
    {NULL, NULL, job_cut_replay_poll},
    {NULL, NULL, cut_record_begin_leaving},
    {NULL, NULL, cut_record_begin_arriving},
    {NULL, NULL, NULL},
};
static const struct job_step whole_hold[] = {
    {"holding the database's sessions at their next transaction boundary", NULL, job_cut_gate},
    {NULL, NULL, job_cut_held_pids},
    {NULL, NULL, NULL},
};
static const struct job_step city_hold[] = {
    {"holding the city's sessions at their next transaction boundary", NULL, job_cut_city_gate},
    {NULL, NULL, job_cut_city_pids},
    {NULL, NULL, NULL},
};
static const struct job_step cut_peers[] = {
    {NULL, job_in_fleet, job_cut_wait_peers},
    {NULL, job_in_fleet, job_cut_replay_poll},
    {NULL, NULL, NULL},
};
static const struct job_step whole_refuse[] = {
    {"making the leaving region refuse writes to the database", NULL, job_cut_read_only},
    {NULL, NULL, job_cut_end_others},
    {NULL, NULL, NULL},
};
static const struct job_step city_refuse[] = {
    {"making the leaving region refuse writes to the city's rows", NULL, job_city_refuse_writes},
    {NULL, NULL, NULL},
};
static const struct job_step cut_last_write[] = {
    {"waiting for the arriving region to replay the last write", NULL, job_cut_mark},
    {NULL, NULL, job_cut_wait_replay},
    {NULL, NULL, job_cut_replay_poll},
    {NULL, NULL, NULL},
};
static const struct job_step whole_arriving[] = {
    {NULL, NULL, job_cut_read_sequences},
    {"setting the arriving region's sequences past the leaving region's", job_cut_has_sequences,
     job_cut_set_sequences},
    {NULL, NULL, job_cut_back_slot_skip},
    {NULL, NULL, cut_arriving_read_write},
    {NULL, NULL, NULL},
};
static const struct job_step city_arriving[] = {
    {NULL, NULL, job_cut_back_slot_skip},
    {NULL, NULL, NULL},
};
static const struct job_step cut_commit[] = {
    {NULL, NULL, cut_commit_arriving},
    {NULL, NULL, cut_committed},
    {NULL, NULL, NULL},
};
static const struct job_step whole_committed[] = {
    {NULL, NULL, cut_place},
    {NULL, NULL, NULL},
};
static const struct job_step city_forward_committed[] = {
    {NULL, NULL, job_city_commit_home},
    {NULL, NULL, job_city_allow_arriving},
    {NULL, NULL, NULL},
};
/* A city's REVERT: the way back goes, the feed carries the city's rows again. */
static const struct job_step city_back_committed[] = {
    {NULL, NULL, job_city_commit_home},
    {"the replication from the source carries the city's rows again", NULL, job_city_drop_way_back},
    {NULL, NULL, job_city_drop_leaving_publication},
    {NULL, NULL, job_city_widen_feed},
    {NULL, NULL, job_city_refresh_feed},
    {NULL, NULL, job_city_allow_arriving},
    {NULL, NULL, NULL},
};
static const struct job_step cut_sessions[] = {
    {"moving the held sessions", NULL, job_cut_move_sessions},
    {NULL, NULL, job_cut_open_gate},
    {NULL, NULL, NULL},
};
static const struct job_step whole_feeds[] = {
    {"starting the replication back", NULL, job_cut_drop_feed},
    {NULL, NULL, job_cut_back_subscription},
    {NULL, NULL, NULL},
};
static const struct job_step city_feeds[] = {
    {"narrowing the replication to the tables without the city's column", NULL,
     job_city_narrow_feed},
    {NULL, NULL, job_cut_back_subscription},
    {NULL, NULL, NULL},
};
static const struct job_step cut_last[] = {
    {NULL, NULL, cut_commit_leaving},
    {NULL, NULL, cut_done},
    {NULL, NULL, NULL},
};

/* The chains: the numbers are the steps of the head comment. */
static const struct job_step *const whole_chain[] = {
    cut_first,       /* 1. the move, its lag, the secrets */
    whole_way_back,  /* 1. the publication for the way back */
    cut_armed_steps, /* a failure from here is undone */
    cut_back_slot,   /* 4. made before the gate */
    cut_catch_up,    /* 1. the first token; the records say it runs */
    whole_hold,      /* 2. */
    cut_peers,       /* 2. a fleet's */
    whole_refuse,    /* 3. */
    cut_last_write,  /* 3. */
    whole_arriving,  /* 4. */
    cut_commit,      /* 5. */
    whole_committed, /* 5. */
    cut_sessions,    /* 6. */
    whole_feeds,     /* 7. */
    cut_last,        /* 7. */
    NULL,
};
static const struct job_step *const city_cutover_chain[] = {
    cut_first,
    city_way_back,
    cut_armed_steps,
    cut_back_slot,
    city_triggers, /* before the gate: they refuse nothing yet */
    city_reference_triggers,
    cut_catch_up,
    city_hold,
    cut_peers,
    city_refuse,
    cut_last_write,
    city_arriving, /* no sequences set: both regions keep writing the database */
    cut_commit,
    city_forward_committed,
    cut_sessions,
    city_feeds,
    cut_last,
    NULL,
};
/* A city's REVERT makes no way back: the feed carries its rows again. */
static const struct job_step *const city_revert_chain[] = {
    cut_first,           /* 1. */
    cut_armed_steps,     /* a failure from here is undone */
    city_triggers,       /* on the leaving side, here the target */
    cut_catch_up,        /* 1. */
    city_hold,           /* 2. */
    cut_peers,           /* 2. */
    city_refuse,         /* 3. */
    cut_last_write,      /* 3. */
    cut_commit,          /* 5. */
    city_back_committed, /* 5., then the way back goes and the feed widens */
    cut_sessions,        /* 6. */
    cut_last,            /* 7. */
    NULL,
};
const struct job_kind job_cutover_kind = {whole_chain, city_cutover_chain, job_cutover_free};
const struct job_kind job_revert_kind = {whole_chain, city_revert_chain, job_cutover_free};

void job_cutover_free(struct dbmove_job *j)
{
    free(j->cut.sequences);
    free(j->moves);
    if (j->cut.pids_made)
        gate_pids_destroy(&j->cut.pids);
    if (j->cut.local_set)
        placement_set_local(&j->home->shared->placement, j->req.database, false);
}