/*
 * job_cutover_hold.c — a cutover's sessions (job_cutover.c): the gate
 * holds them at their next transaction boundary (steps 2 and 3 there),
 * the leaving side refuses new sessions' writes and ends the sessions
 * pgnear does not hold, whose server processes it lists first; after the
 * commit the held sessions move to the arriving region as one batch
 * (session/move_batch.h) and the gate opens (step 6).  A city's cutover
 * holds the sessions of its city alone (job_city_key) and ends none.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_cut.h"
#include "proxy/dbmove/job_city_steps.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/clock.h"
#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "proxy/dbmove/held.h"
#include "proxy/session/gate.h"
#include "proxy/session/move_batch.h"
#include "routing/region.h"

/* ---- the gate ---- */

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

/* The gate's scope: every session of the database, held for a move. */
static void cut_scope(struct dbmove_job *j)
{
    struct gate_scope *scope = &j->cut.scope;
    memset(scope, 0, sizeof(*scope));
    scope->all = true;
    snprintf(scope->database, sizeof(scope->database), "%s", j->req.database);
    scope->reason = HOLD_DBMOVE;
}

/* The sessions of the scope held at their next transaction boundary; gate_done tells it. */
static int close_gate(struct dbmove_job *j)
{
    j->cut.gate = gate_close(j->home, &j->cut.scope, j->cfg->move_timeout_ms, NULL, gate_done, j);
    if (j->cut.gate != NULL)
        return JOB_WAIT;
    job_problem(j, "53200", "out of memory");
    return JOB_FAIL;
}

int job_cut_gate(struct dbmove_job *j)
{
    cut_scope(j);
    return close_gate(j);
}

/*
 * A city's move: the gate holds only the sessions of the city's key
 * (job_city_key) on the database.
 */
int job_cut_city_gate(struct dbmove_job *j)
{
    cut_scope(j);
    if (!job_city_key(j, j->cut.scope.city_key, sizeof(j->cut.scope.city_key)))
        return JOB_FAIL;
    return close_gate(j);
}

/* ---- the leaving side: no writer left but the held ---- */

/*
 * The leaving region's server refuses writes from here on (undone on
 * failure: read_only_set says it was done).
 */
int job_cut_read_only(struct dbmove_job *j)
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
int job_cut_held_pids(struct dbmove_job *j)
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
 * A city's move: the list of held processes made but left empty (the
 * workers are not asked), and the deadline the fleet's word needs.
 */
int job_cut_city_pids(struct dbmove_job *j)
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
int job_cut_end_others(struct dbmove_job *j)
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

/* ---- after the commit: the held sessions move; the gate opens ---- */

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
int job_cut_move_sessions(struct dbmove_job *j)
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
int job_cut_open_gate(struct dbmove_job *j)
{
    j->cut.gate_closed = false;
    if (gate_open(j->home, &j->cut.scope, job_cut_gate_opened, j) == 0)
        return JOB_WAIT;
    j->cut.hold_ms = monotonic_ms() - j->cut.held_at_ms;
    return JOB_NEXT; /* out of memory: the flag is down all the same */
}
