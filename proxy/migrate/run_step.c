/*
 * run_step.c — the steps of a region's plan: a transactional step (BEGIN,
 * its SET LOCALs, its statements, its history row, COMMIT) or a
 * no-transaction one (its row 'running', SETs, each statement followed by
 * its count, RESET ALL, its end), down scripts alike; a failed step's
 * ROLLBACK and 'failed' row, and what the abort leaves of a step; the
 * progress NOTICEs of a long statement; and a pause step's gate, closed
 * before it and opened after.
 */
#include "proxy/migrate/run.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "routing/region.h"

/* The server's error of the last query, as "message (SQLSTATE)". */
static void server_error(const struct migrate_run *run, const char *error, char *buf, size_t cap,
                         const char **sqlstate)
{
    const struct pgasync *q = run->conns[run->conn].q;
    const char *primary = pgasync_error_field(q, PG_DIAG_MESSAGE_PRIMARY);
    *sqlstate = pgasync_error_sqlstate(q);
    if (primary != NULL && *sqlstate != NULL)
        snprintf(buf, cap, "%s", primary);
    else
        snprintf(buf, cap, "%s", error != NULL ? error : "no result");
    if (*sqlstate == NULL)
        *sqlstate = "08006";
}

/* The parameters of migrate_history_upsert_sql (history.h), as text in run->params. */
static void step_params(struct migrate_run *run, const struct migrate_step *step, const char *state,
                        size_t done, const char *error, size_t statement)
{
    snprintf(run->params[0], sizeof(run->params[0]), "%" PRId64, step->version);
    snprintf(run->params[1], sizeof(run->params[1]), "%s", step->name);
    snprintf(run->params[2], sizeof(run->params[2]), "%s", step->up.checksum);
    snprintf(run->params[3], sizeof(run->params[3]), "%s", state);
    snprintf(run->params[4], sizeof(run->params[4]), "%zu", done);
    snprintf(run->params[5], sizeof(run->params[5]), "%zu", step->up.sql.count);
    snprintf(run->params[6], sizeof(run->params[6]), "%s", run->run_by);
    snprintf(run->params[7], sizeof(run->params[7]), "%s", error);
    if (statement > 0)
        snprintf(run->params[8], sizeof(run->params[8]), "%zu", statement);
    else
        run->params[8][0] = '\0';
}

/* The step of the plan being run. */
static const struct migrate_step *run_current_step(const struct migrate_run *run)
{
    return &run->steps.steps[run->planned[run->next_planned]];
}

/* Does the current step run without a transaction (pgnear: no-transaction)? */
static bool step_notx(const struct migrate_run *run)
{
    return run_current_step(run)->up.directives.no_transaction;
}

/* The script a run runs of a step: its down script for MIGRATE DOWN, else its up one. */
static const struct migrate_script *run_script_of(const struct migrate_run *run,
                                                  const struct migrate_step *step)
{
    return run->what.mode == MIGRATE_RUN_DOWN ? &step->down : &step->up;
}

/*
 * The index in the step's statements of query k; SIZE_MAX when query k is
 * not one of them.  A transactional step sends BEGIN, its SETs, its
 * statements, its row, COMMIT; a no-transaction one its 'running' row, its
 * SETs, each statement followed by its count, RESET ALL, its end.
 */
static size_t step_statement_of(const struct migrate_run *run, const struct migrate_step *step)
{
    size_t first = 1 + run->nsets, n = run_script_of(run, step)->sql.count;
    if (run->k < first)
        return SIZE_MAX;
    size_t at = run->k - first;
    if (!run_script_of(run, step)->directives.no_transaction)
        return at < n ? at : SIZE_MAX;
    return at < 2 * n && at % 2 == 0 ? at / 2 : SIZE_MAX;
}

/* A statement that runs long says so every MIGRATE_PROGRESS_MS. */
void run_progress(evutil_socket_t fd, short what, void *arg)
{
    struct migrate_run *run = arg;
    (void)fd;
    (void)what;
    if (!run->statement_out)
        return;
    const struct migrate_step *step = run_current_step(run);
    run_note(run,
             "region \"%s\": step %" PRId64 " (%s), statement %zu of %zu still running, %.1f s "
             "into the step",
             run->region->name, step->version, step->name, run->statement,
             run_script_of(run, step)->sql.count,
             (double)(monotonic_ms() - run->step_started_ms) / 1000.0);
    struct timeval tv = {MIGRATE_PROGRESS_MS / 1000, 0};
    evtimer_add(run->progress, &tv);
}

/* ---- a failed step ---- */

static void run_step_aborted(struct migrate_run *run, size_t statement);

/* The state a no-transaction script that stopped part way leaves its row in. */
static const char *notx_failed_state(const struct migrate_run *run)
{
    return run->what.mode == MIGRATE_RUN_DOWN ? "reverting" : "failed";
}

/*
 * The failure is in the history (or could not be written, which the hint then
 * says): the run ends with the step's error.
 */
static void on_failure_recorded(struct migrate_run *run, const PGresult *res, const char *error)
{
    struct pg_error *e = &run->step_err;
    if (res == NULL && step_notx(run) && run->k > 0)
        pg_error_hint(e,
                      "Its history row could not be written (%s): it still says running, and "
                      "SHOW MIGRATIONS reports the step uncertain there.",
                      error);
    else if (res == NULL)
        pg_error_hint(e,
                      "Its history row could not be written (%s): the region's history does not "
                      "show this failure.",
                      error);
    run->out.failed = true;
    run->out.err = *e;
    run_finish(run);
}

/*
 * The failed step's transaction is rolled back: its history row says failed, in
 * a statement of its own.
 */
static void on_rolled_back(struct migrate_run *run, const PGresult *res, const char *error)
{
    const struct migrate_step *step = run_current_step(run);
    if (run->what.mode == MIGRATE_RUN_DOWN) {
        on_failure_recorded(run, res, error); /* the row stays applied: the step is still there */
        return;
    }
    (void)res;
    (void)error;
    step_params(run, step, "failed", 0, run->server_msg, run->failed_statement);
    run_send(run, CONN_STEP, migrate_history_upsert_sql, RUN_PARAMS, on_failure_recorded, 0);
}

/* The parameters of migrate_history_end_sql (history.h), from step_params' own. */
static void end_params(struct migrate_run *run, const struct migrate_step *step, const char *state,
                       size_t done, const char *error, size_t statement)
{
    step_params(run, step, state, done, error, statement);
    memcpy(run->params[1], run->params[3], sizeof(run->params[1]));
    memcpy(run->params[2], run->params[4], sizeof(run->params[2]));
    memcpy(run->params[3], run->params[7], sizeof(run->params[3]));
    memcpy(run->params[4], run->params[8], sizeof(run->params[4]));
}

/*
 * A no-transaction step failed part way: its row keeps how far it got, so RETRY
 * goes on from the failed statement.
 */
static void on_notx_reset(struct migrate_run *run, const PGresult *res, const char *error)
{
    const struct migrate_step *step = run_current_step(run);
    (void)res;
    (void)error;
    end_params(run, step, notx_failed_state(run), run->failed_statement - 1, run->server_msg,
               run->failed_statement);
    run_send(run, CONN_STEP, migrate_history_end_sql, 5, on_failure_recorded, 0);
}

/*
 * A no-transaction step stopped: after a failed statement, its timeouts
 * reset and its row 'failed' with the count of statements done; after any
 * other query (its row, a SET, a count) its row is left as it is, 'running'
 * (uncertain once this run ends), or absent when nothing ran.
 */
static void notx_failed(struct migrate_run *run)
{
    struct pg_error *e = &run->step_err;
    if (run->failed_statement > 0) {
        run_send(run, CONN_STEP, "RESET ALL", 0, on_notx_reset, 0);
        return;
    }
    if (run->k > 0 && run->what.mode == MIGRATE_RUN_DOWN)
        pg_error_hint(e,
                      "Its history row says reverting: MIGRATE DOWN goes on from there, or MIGRATE "
                      "RESOLVE settles it.");
    else if (run->k > 0)
        pg_error_hint(
            e, "Its history row says running: SHOW MIGRATIONS reports the step uncertain there "
               "until it is settled.");
    run->out.failed = true;
    run->out.err = *e;
    run_finish(run);
}

/* A query of the step failed: the error for the admin, then ROLLBACK and the 'failed' row. */
static void step_failed(struct migrate_run *run, const char *error)
{
    const struct migrate_step *step = run_current_step(run);
    const char *sqlstate;
    char why[MIGRATE_HISTORY_ERRMAX + 1];
    struct pg_error *e = &run->step_err;
    size_t at = step_statement_of(run, step);
    run->cleaning = true;
    if (run->aborting) { /* canceled by the abort, most likely: whatever it was, the run stops */
        run_step_aborted(run, at == SIZE_MAX ? 0 : at + 1);
        return;
    }
    server_error(run, error, why, sizeof(why), &sqlstate);
    run->failed_statement = at == SIZE_MAX ? 0 : at + 1;
    snprintf(run->server_msg, sizeof(run->server_msg), "%.480s (%s)", why, sqlstate);
    if (run->failed_statement > 0)
        pg_error_set(e, sqlstate,
                     "step %" PRId64 " (%s) failed in region \"%s\" at statement %zu: %.120s",
                     step->version, step->name, run->region->name, run->failed_statement, why);
    else
        pg_error_set(e, sqlstate, "step %" PRId64 " (%s) failed in region \"%s\": %.120s",
                     step->version, step->name, run->region->name, why);
    pg_error_detail(
        e,
        "Statement %zu of %zu (%s line %u). %s; earlier regions keep what they applied, "
        "later ones were not touched.",
        run->failed_statement, run_script_of(run, step)->sql.count, run_script_of(run, step)->file,
        run->failed_statement > 0
            ? run_script_of(run, step)->sql.stmts[run->failed_statement - 1].line
            : 0,
        run_script_of(run, step)->directives.no_transaction
            ? "A no-transaction step is not rolled back: the statements before it stay done "
              "there"
            : "The step was rolled back there");
    if (run->conns[CONN_STEP].q == NULL) {
        on_failure_recorded(run, NULL, "the connection was lost");
        return;
    }
    if (run_script_of(run, step)->directives.no_transaction) {
        if (run->failed_statement > 0 && run->what.mode == MIGRATE_RUN_DOWN)
            pg_error_hint(
                e,
                "Its history row says reverting: once the down script is fixed, MIGRATE DOWN "
                "goes on from statement %zu; MIGRATE RESOLVE %" PRId64
                " AS applied|reverted settles it.",
                run->failed_statement, step->version);
        else if (run->failed_statement > 0)
            pg_error_hint(e,
                          "MIGRATE RETRY %" PRId64 " goes on from statement %zu; MIGRATE RESOLVE "
                          "settles it.",
                          step->version, run->failed_statement);
        notx_failed(run);
        return;
    }
    run_send(run, CONN_STEP, "ROLLBACK", 0, on_rolled_back, 0);
}

/* ---- a step the abort stops ---- */

/* An aborted step's transaction is rolled back: the run ends saying nothing of that step stays. */
static void on_abort_rolled_back(struct migrate_run *run, const PGresult *res, const char *error)
{
    const struct migrate_step *step = run_current_step(run);
    char detail[256];
    (void)res;
    (void)error;
    snprintf(detail, sizeof(detail),
             "Step %" PRId64 " (%s) was rolled back there and its history is unchanged; the steps "
             "before it stay done.",
             step->version, step->name);
    run_aborted(run, detail);
}

/*
 * The abort stops the current step before its statement (1-based)
 * statement: a transactional step is rolled back; a no-transaction one
 * keeps the statements before it and its row says failed at it.
 */
static void run_step_aborted(struct migrate_run *run, size_t statement)
{
    const struct migrate_step *step = run_current_step(run);
    const struct migrate_script *sc = run_script_of(run, step);
    struct pg_error *e = &run->step_err;
    run->cleaning = true;
    if (!sc->directives.no_transaction || run->conns[CONN_STEP].q == NULL) {
        if (run->conns[CONN_STEP].q == NULL)
            on_abort_rolled_back(run, NULL, NULL); /* its connection went, and the transaction */
        else
            run_send(run, CONN_STEP, "ROLLBACK", 0, on_abort_rolled_back, 0);
        return;
    }
    if (statement == 0)
        statement = 1;
    run->failed_statement = statement;
    snprintf(run->server_msg, sizeof(run->server_msg), "canceled by %s (57014)", run->abort_who);
    pg_error_set(e, "57014", "migration canceled by %s in region \"%s\"", run->abort_who,
                 run->region->name);
    pg_error_detail(
        e,
        "Step %" PRId64 " (%s)%s runs without a transaction: its statements before statement "
        "%zu of %zu stay done there, and its history row says %s.",
        step->version, step->name, run->what.mode == MIGRATE_RUN_DOWN ? "'s down script" : "",
        statement, sc->sql.count, notx_failed_state(run));
    pg_error_hint(e, "MIGRATE %s goes on from statement %zu; MIGRATE RESOLVE settles it.",
                  run->what.mode == MIGRATE_RUN_DOWN ? "DOWN" : "RETRY", statement);
    notx_failed(run);
}

/* The handler of each query of a step (run_stop_for_abort knows a step by it). */
static void run_on_step_query(struct migrate_run *run, const PGresult *res, const char *error);

/* The abort, met as the next query was about to go (the runner's ACT_SEND). */
void run_stop_for_abort(struct migrate_run *run)
{
    if (run->on_result != run_on_step_query || run->k == 0) {
        run_aborted(run, run->region != NULL ? "No step was running there." : NULL);
        return;
    }
    const struct migrate_step *step = run_current_step(run);
    const struct migrate_script *sc = run_script_of(run, step);
    size_t first = 1 + run->nsets, n = sc->sql.count;
    if (!sc->directives.no_transaction) {
        run_step_aborted(run, 0);
        return;
    }
    if (run->k >= first + 2 * n) { /* every statement done: the step ends as applied */
        run->cleaning = true;
        run_send_now(run);
        return;
    }
    size_t at = run->k < first ? 0 : (run->k - first) / 2 + ((run->k - first) % 2);
    run_step_aborted(run, at + 1);
}

/* ---- pause steps ---- */

/* The gate of a pause step opens again, once the step has ended (or the run). */
void run_release_gate(struct migrate_run *run)
{
    if (!run->gate_held)
        return;
    run->gate_held = false;
    int64_t held = monotonic_ms() - run->hold_started_ms;
    if (held > run->out.longest_hold_ms)
        run->out.longest_hold_ms = held;
    if (gate_open(run->home, &run->gate, NULL, NULL) != 0)
        log_error(0, "migration: could not let the held sessions go: out of memory");
    run_note(run, "region \"%s\": the sessions of database \"%s\" go on, held %" PRId64 " ms",
             run->gate.region, run->gate.database, held);
}

/*
 * The pause step's gate: held, the step starts; late, the run fails naming the
 * busy sessions (55P03); an abort ends it.
 */
static void on_gate(const struct gate_outcome *o, void *arg)
{
    struct migrate_run *run = arg;
    const struct migrate_step *step = run_current_step(run);
    run->closing = NULL;
    if (o->end == GATE_HELD) {
        run->gate_held = true;
        run->hold_started_ms = monotonic_ms();
        run_note(run,
                 "region \"%s\": the sessions of database \"%s\" are held (%" PRId64
                 " ms to close the gate%s)",
                 run->gate.region, run->gate.database, o->waited_ms,
                 o->forced > 0 ? ", busy sessions ended by FORCE" : "");
        run_step(run);
    } else if (run->aborting) {
        run_aborted(run, "The step's gate was opening again; the step was not started.");
    } else if (o->end == GATE_LATE) {
        pg_error_set(&run->out.err, "55P03",
                     "could not hold the sessions of database \"%s\" in region \"%s\" within "
                     "migration_hold_timeout (%d ms): step %" PRId64 " (%s) was not started",
                     run->gate.database, run->gate.region, run->cfg->migration_hold_timeout_ms,
                     step->version, step->name);
        pg_error_detail(&run->out.err, "%s", o->busy);
        pg_error_hint(&run->out.err,
                      "Those clients must end their transactions: run it again, raise "
                      "migration_hold_timeout, or add FORCE to end them.");
        run_fail(run);
    } else {
        pg_error_set(
            &run->out.err, "53200",
            "could not hold the sessions of database \"%s\" in region \"%s\": step %" PRId64
            " (%s) was not started",
            run->gate.database, run->gate.region, step->version, step->name);
        run_fail(run);
    }
}

/* A pause step: the gate of migrations_db in the region closes before the step starts. */
static void run_hold(struct migrate_run *run, const struct migrate_step *step)
{
    char detail[512];
    memset(&run->gate, 0, sizeof(run->gate));
    snprintf(run->gate.region, sizeof(run->gate.region), "%s", run->region->name);
    snprintf(run->gate.database, sizeof(run->gate.database), "%s", run->cfg->migrations_db);
    run->gate.reason = HOLD_MIGRATION;
    snprintf(detail, sizeof(detail),
             "Migration step %" PRId64 " (%s) holds the sessions of database \"%s\" in region "
             "\"%s\" while it runs; this session was still busy after migration_hold_timeout "
             "(%d ms), and the migration was run with FORCE.",
             step->version, step->name, run->gate.database, run->gate.region,
             run->cfg->migration_hold_timeout_ms);
    run_note(run,
             "region \"%s\": step %" PRId64 " (%s) is a pause step: holding the sessions of "
             "database \"%s\" there",
             run->region->name, step->version, step->name, run->gate.database);
    run->closing = gate_close(run->home, &run->gate, run->cfg->migration_hold_timeout_ms,
                              run->what.force ? detail : NULL, on_gate, run);
    if (run->closing == NULL) {
        pg_error_set(&run->out.err, "53200", "out of memory");
        run_fail(run);
    }
}

/* ---- the queries of a step ---- */

/* The step's k-th SET (k from 1): its lock_timeout, then its statement_timeout. */
static void set_query(struct migrate_run *run, const struct migrate_step *step, const char *set)
{
    const struct migrate_directives *d = &run_script_of(run, step)->directives;
    bool lock = d->lock_timeout_ms >= 0 && run->k == 1;
    snprintf(run->sql_buf, sizeof(run->sql_buf), "%s %s = %" PRId64, set,
             lock ? "lock_timeout" : "statement_timeout",
             lock ? d->lock_timeout_ms : d->statement_timeout_ms);
    run->sql = run->sql_buf;
}

/*
 * Query k of a no-transaction step: each statement runs on its own, with
 * the timeouts SET on the connection (then RESET), and the history row,
 * in statements of its own, says 'running' before and the count after each.
 */
static void notx_query(struct migrate_run *run, const struct migrate_step *step)
{
    size_t k = run->k, first = 1 + run->nsets, n = run_script_of(run, step)->sql.count;
    run->nparams = 0;
    if (k == 0 && run->what.mode == MIGRATE_RUN_DOWN) {
        snprintf(run->params[0], sizeof(run->params[0]), "%" PRId64, step->version);
        snprintf(run->params[1], sizeof(run->params[1]), "%" PRId64, run->resume);
        snprintf(run->params[2], sizeof(run->params[2]), "%zu", n);
        snprintf(run->params[3], sizeof(run->params[3]), "%s", run->run_by);
        run->sql = migrate_history_reverting_sql;
        run->nparams = 4;
    } else if (k == 0) {
        step_params(run, step, "running", (size_t)run->resume, "", 0);
        run->sql = migrate_history_upsert_sql;
        run->nparams = RUN_PARAMS;
    } else if (k < first) {
        set_query(run, step, "SET");
    } else if (k < first + 2 * n && (k - first) % 2 == 0) {
        run->sql = NULL; /* the statement: copied by run_step_next */
    } else if (k < first + 2 * n) {
        snprintf(run->params[0], sizeof(run->params[0]), "%" PRId64, step->version);
        snprintf(run->params[1], sizeof(run->params[1]), "%zu", (k - first) / 2 + 1);
        run->sql = migrate_history_done_sql;
        run->nparams = 2;
    } else if (k == first + 2 * n) {
        run->sql = "RESET ALL";
    } else if (run->what.mode == MIGRATE_RUN_DOWN) {
        snprintf(run->params[0], sizeof(run->params[0]), "%" PRId64, step->version);
        snprintf(run->params[1], sizeof(run->params[1]), "%s", run->run_by);
        run->sql = migrate_history_revert_sql;
        run->nparams = 2;
    } else {
        end_params(run, step, "applied", n, "", 0);
        run->sql = migrate_history_end_sql;
        run->nparams = 5;
    }
}

/* Query k of the current step into run->sql (and its params). */
static void step_query(struct migrate_run *run, const struct migrate_step *step)
{
    size_t k = run->k, first = 1 + run->nsets;
    run->nparams = 0;
    if (run_script_of(run, step)->directives.no_transaction) {
        notx_query(run, step);
    } else if (k == 0) {
        run->sql = "BEGIN";
    } else if (k < first) {
        set_query(run, step, "SET LOCAL");
    } else if (k < first + run_script_of(run, step)->sql.count) {
        run->sql = NULL; /* the statement: copied by run_step_next */
    } else if (k == first + run_script_of(run, step)->sql.count) {
        if (run->what.mode == MIGRATE_RUN_DOWN) {
            snprintf(run->params[0], sizeof(run->params[0]), "%" PRId64, step->version);
            snprintf(run->params[1], sizeof(run->params[1]), "%s", run->run_by);
            run->sql = migrate_history_revert_sql;
            run->nparams = 2;
            return;
        }
        step_params(run, step, "applied", step->up.sql.count, "", 0);
        run->sql = migrate_history_upsert_sql;
        run->nparams = RUN_PARAMS;
    } else {
        run->sql = "COMMIT";
    }
}

/* Sends query k of the current step. */
static void run_step_next(struct migrate_run *run)
{
    const struct migrate_step *step = run_current_step(run);
    step_query(run, step);
    if (run->sql == NULL) {
        const struct sql_statement *st =
            &run_script_of(run, step)->sql.stmts[step_statement_of(run, step)];
        free(run->stmt_copy);
        run->stmt_copy = strndup(run_script_of(run, step)->text + st->offset, st->length);
        if (run->stmt_copy == NULL) {
            pg_error_set(&run->out.err, "53200", "out of memory");
            run_fail(run);
            return;
        }
        run->sql = run->stmt_copy;
        run->statement = step_statement_of(run, step) + 1;
        run_note(run,
                 "region \"%s\": step %" PRId64 " (%s), statement %zu of %zu (line %u), %.1f s "
                 "into the step",
                 run->region->name, step->version, step->name, step_statement_of(run, step) + 1,
                 run_script_of(run, step)->sql.count, st->line,
                 (double)(monotonic_ms() - run->step_started_ms) / 1000.0);
    }
    run_send(run, CONN_STEP, run->sql, run->nparams, run_on_step_query, 0);
}

/* A query of the step answered: the next one, or the step's end (applied, failed). */
static void run_on_step_query(struct migrate_run *run, const PGresult *res, const char *error)
{
    const struct migrate_step *step = run_current_step(run);
    if (res == NULL) {
        step_failed(run, error);
        return;
    }
    if (++run->k == 1 + run->nsets && run_script_of(run, step)->directives.no_transaction &&
        run->resume > 0) {
        run->k += 2 * (size_t)run->resume; /* RETRY: on from the first statement not done */
        run->resume = 0;
    }
    if (run->k < run->nqueries) {
        run_step_next(run);
        return;
    }
    run->out.applied++;
    run_note(run, "region \"%s\": step %" PRId64 " (%s) %s, %zu statement%s%s in %" PRId64 " ms",
             run->region->name, step->version, step->name,
             run->what.mode == MIGRATE_RUN_DOWN ? "reverted" : "applied",
             run_script_of(run, step)->sql.count,
             run_script_of(run, step)->sql.count == 1 ? "" : "s",
             run_script_of(run, step)->directives.no_transaction ? " (no transaction)" : "",
             monotonic_ms() - run->step_started_ms);
    run_release_gate(run);
    run->next_planned++;
    if (run->aborting) {
        run_aborted(run, "The step running when it was asked ended first and stays applied; "
                         "no later step was started.");
        return;
    }
    run_step(run);
}

/* The step starting, for the 55006 of a move asked meanwhile (shared->migrating_step). */
static void tell_step_started(struct migrate_run *run, const struct migrate_step *step)
{
    struct shared *sh = run->home->shared;
    pthread_mutex_lock(&sh->migrating_lock);
    snprintf(sh->migrating_step, sizeof(sh->migrating_step),
             "step %" PRId64 " (%.64s) %s in region \"%.63s\"", step->version, step->name,
             run->what.mode == MIGRATE_RUN_DOWN ? "goes down" : "runs", run->region->name);
    pthread_mutex_unlock(&sh->migrating_lock);
}

/* The region's next step, or the next region. */
void run_step(struct migrate_run *run)
{
    if (run->next_planned == run->nplanned) {
        if (run->nplanned == 0)
            run_note(run, "region \"%s\" has nothing to run", run->region->name);
        run->ri++;
        run_defer(run, ACT_REGION, 0);
        return;
    }
    const struct migrate_step *step = run_current_step(run);
    const struct migrate_directives *d = &run_script_of(run, step)->directives;
    if (d->pause && !run->gate_held) {
        run_hold(run, step);
        return;
    }
    if (run->what.mode == MIGRATE_RUN_DOWN) { /* a down script that stopped goes on */
        run->resume = step->version == run->down_resume_version ? run->down_resume : 0;
        if (run->resume > 0 && d->no_transaction)
            run_note(run,
                     "region \"%s\": the down script of step %" PRId64 " (%s) goes on from "
                     "statement %" PRId64,
                     run->region->name, step->version, step->name, run->resume + 1);
    }
    run->k = 0;
    run->nsets = (d->lock_timeout_ms >= 0) + (d->statement_timeout_ms >= 0);
    run->nqueries =
        1 + run->nsets + run_script_of(run, step)->sql.count * (d->no_transaction ? 2 : 1) + 2;
    run->step_started_ms = monotonic_ms();
    tell_step_started(run, step);
    run_step_next(run);
}
