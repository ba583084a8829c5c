/*
 * runner.c — migration steps, region by region (runner.h): up steps in a
 * transaction of their own with their history row, or statement by
 * statement (no-transaction) with the row recorded before and updated
 * after each; down scripts; RESOLVE and RETRY.
 *
 * One query is out at a time, on the lock connection or the step
 * connection; its answer goes to the handler of the phase (on_result),
 * which reads what it needs from the result and names the next query.
 * The next query is sent from an event of its own (a kept pgasync may not
 * be given a new query from inside its done callback), at once or, while
 * the lock is polled, after MIGRATE_LOCK_POLL_MS.
 */
#include "proxy/migrate/runner.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "protocol/pgasync.h"
#include "proxy/config.h"
#include "proxy/gate.h"
#include "proxy/log.h"
#include "proxy/migrate/history.h"
#include "proxy/migrate/status.h"
#include "proxy/pgconn.h"
#include "proxy/session.h"
#include "proxy/worker.h"
#include "routing/region.h"

enum { CONN_LOCK, CONN_STEP, NCONNS };

/*
 * What the next event does.  Closing connections and freeing the run
 * happen there too, never inside a pgasync callback (which still uses its
 * connection after the handler returns).
 */
enum run_action { ACT_SEND, ACT_REGION, ACT_FINISH };

struct migrate_run;
typedef void (*run_result_fn)(struct migrate_run *run, const PGresult *res, const char *error);

struct run_conn {
    struct migrate_run *run;
    struct pgasync *q; /* NULL until connected, and once closed */
};

#define RUN_PARAMS 9

struct migrate_run {
    struct worker *home;
    struct event_base *base;
    struct config *cfg;
    struct migrate_steps steps;
    const struct region *alone;
    struct migrate_run_what what;
    int64_t to;
    size_t settled; /* RESOLVE, RETRY: regions where the version was settled or run */
    int64_t resume; /* RETRY of a no-transaction step: its statements already done */
    /* DOWN: the step whose no-transaction down script stopped part way, and how far it went. */
    int64_t down_resume_version, down_resume;
    char run_by[MIGRATE_RUN_BY_MAX + 1];
    struct migrate_run_hooks hooks;
    struct migrate_run_outcome out;

    /* A pause step's gate: closing, then held while the step runs. */
    struct gate_close *closing;
    bool gate_held;
    struct gate_scope gate;
    int64_t hold_started_ms;

    /* MIGRATE ABORT (or Ctrl-C, or the admin's session ending). */
    bool aborting;
    bool cleaning;          /* a failure or an abort is being recorded: its queries still go */
    bool statement_out;     /* a statement of a step is running on the step connection */
    size_t statement;       /* which (from 1), for the progress NOTICEs */
    struct event *progress; /* every MIGRATE_PROGRESS_MS while a statement runs */
    char abort_who[128];
    char cancel_pid[16];

    size_t ri; /* the region, an index of migration_order_index */
    const struct region *region;
    char conninfo[2048];
    struct run_conn conns[NCONNS];
    struct event *next; /* does action: sends the query below, ... */
    enum run_action action;
    int conn; /* of the query to send */
    const char *sql;
    char sql_buf[128];
    int nparams;
    char params[RUN_PARAMS][MIGRATE_HISTORY_ERRMAX + 1];
    run_result_fn on_result;
    int64_t lock_deadline_ms;

    size_t *planned; /* indices into steps of the region's plan */
    size_t nplanned, next_planned;
    size_t k, nqueries; /* the step's queries: BEGIN, SETs, statements, history row, COMMIT */
    size_t nsets;
    int64_t step_started_ms;
    struct migrate_plan_error step_err; /* the failed statement's, while rolling back */
    size_t failed_statement;
    char server_msg[MIGRATE_HISTORY_ERRMAX + 1]; /* "message (SQLSTATE)", for the history */
    char *stmt_copy;                             /* the statement being sent, NUL-terminated */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run_close_conns(struct migrate_run *run)
{
    for (int i = 0; i < NCONNS; i++) {
        pgasync_abandon(run->conns[i].q);
        run->conns[i].q = NULL;
    }
}

static void run_free(struct migrate_run *run)
{
    run_close_conns(run);
    if (run->next != NULL)
        event_free(run->next);
    if (run->progress != NULL)
        event_free(run->progress);
    migrate_steps_free(&run->steps);
    free(run->planned);
    free(run->stmt_copy);
    config_unref(run->cfg);
    free(run);
}

/* Does action from the loop, at once or after delay_ms. */
static void run_defer(struct migrate_run *run, enum run_action action, int delay_ms)
{
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    run->action = action;
    if (evtimer_add(run->next, &tv) != 0 && action != ACT_FINISH) {
        run->out.failed = true;
        snprintf(run->out.err.sqlstate, sizeof(run->out.err.sqlstate), "53200");
        snprintf(run->out.err.message, sizeof(run->out.err.message), "out of memory");
        run_defer(run, ACT_FINISH, 0);
    }
}

/* The end, from the loop: the lock released, then done told, then the run freed. */
static void run_finish(struct migrate_run *run)
{
    run_defer(run, ACT_FINISH, 0);
}

static void run_release_gate(struct migrate_run *run);

static void run_finish_now(struct migrate_run *run)
{
    run_close_conns(run);
    run_release_gate(run);
    run->hooks.done(run->hooks.arg, &run->out);
    run_free(run);
}

static void run_fail(struct migrate_run *run, const char *sqlstate, const char *detail,
                     const char *hint, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void run_fail(struct migrate_run *run, const char *sqlstate, const char *detail,
                     const char *hint, const char *fmt, ...)
{
    struct migrate_plan_error *e = &run->out.err;
    va_list ap;
    run->out.failed = true;
    snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", sqlstate);
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    snprintf(e->detail, sizeof(e->detail), "%s", detail != NULL ? detail : "");
    snprintf(e->hint, sizeof(e->hint), "%s", hint != NULL ? hint : "");
    run_finish(run);
}

static void run_note(struct migrate_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void run_note(struct migrate_run *run, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_info(0, "migration: %s", text);
    run->hooks.note(run->hooks.arg, text);
}

/* ---- sending ---- */

static void run_conn_closed(void *arg)
{
    struct run_conn *c = arg;
    /* The server went away while idle: the lock (if this held it) is gone. */
    pgasync_abandon(c->q);
    c->q = NULL;
}

static void run_query_done(void *arg, const PGresult *res, const char *error, bool answered)
{
    struct run_conn *c = arg;
    struct migrate_run *run = c->run;
    (void)answered;
    run->statement_out = false;
    evtimer_del(run->progress);
    if (!pgasync_keep_open(c->q, run_conn_closed, c))
        c->q = NULL; /* freed after this callback */
    run->on_result(run, res, error);
}

/* Queues sql (run->params[0..nparams)) on conn, for fn; sent after delay_ms from the loop. */
static void run_send(struct migrate_run *run, int conn, const char *sql, int nparams,
                     run_result_fn fn, int delay_ms)
{
    run->conn = conn;
    run->sql = sql;
    run->nparams = nparams;
    run->on_result = fn;
    run_defer(run, ACT_SEND, delay_ms);
}

static void run_region(struct migrate_run *run);
static void run_stop_for_abort(struct migrate_run *run);

static void run_send_now(struct migrate_run *run)
{
    struct run_conn *c = &run->conns[run->conn];
    const char *params[RUN_PARAMS];
    char why[256] = "the connection was lost";
    if (run->aborting && !run->cleaning) {
        run_stop_for_abort(run);
        return;
    }
    run->statement_out = run->conn == CONN_STEP && run->sql == run->stmt_copy;
    if (run->statement_out) {
        struct timeval tv = {MIGRATE_PROGRESS_MS / 1000, 0};
        evtimer_add(run->progress, &tv);
    }
    for (int i = 0; i < run->nparams; i++)
        params[i] = run->params[i];
    int timeout = run->cfg->server_connect_timeout_ms;
    if (run->conn == CONN_STEP && c->q != NULL)
        timeout = 24 * 3600 * 1000; /* a step's statement takes the time it takes */
    if (c->q != NULL) {
        if (pgasync_requery(c->q, run->sql, run->nparams, params, timeout, run_query_done, c) == 0)
            return;
        pgasync_abandon(c->q);
        c->q = NULL;
    } else if (run->conn == CONN_STEP && run->k > 0) {
        /* the step's transaction went with its connection */
    } else if ((c->q = pgasync_query(run->base, run->conninfo, run->sql, run->nparams, params,
                                     timeout, run_query_done, c, why, sizeof(why))) != NULL) {
        return;
    }
    run_fail(run, "08006", why, NULL, "lost the connection to region \"%s\"", run->region->name);
}

static void run_act(evutil_socket_t fd, short what, void *arg)
{
    struct migrate_run *run = arg;
    (void)fd;
    (void)what;
    switch (run->action) {
    case ACT_SEND:
        run_send_now(run);
        return;
    case ACT_REGION:
        run_close_conns(run); /* releases the last region's lock */
        run_region(run);
        return;
    case ACT_FINISH:
        run_finish_now(run);
        return;
    }
}

/* ---- one region ---- */

/*
 * The lock, and who holds it when it is not free: a bigint advisory lock
 * shows in pg_locks as classid (high 32 bits), objid (low 32), objsubid 1.
 */
static const char lock_sql[] =
    "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY "),"
    " (SELECT format('\"%s\" (server process %s, from %s, connected since %s)',"
    " a.application_name, a.pid, coalesce(host(a.client_addr), 'a Unix socket'),"
    " date_trunc('second', a.backend_start))"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.classid::bigint = (" MIGRATE_LOCK_KEY "::bigint >> 32)"
    " AND l.objid::bigint = (" MIGRATE_LOCK_KEY "::bigint & 4294967295)"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND a.pid <> pg_backend_pid() LIMIT 1)";

/* The history row of a step: $1 version ... $9 error_statement; state, done and error vary. */
static const char history_upsert_sql[] =
    "INSERT INTO " MIGRATE_HISTORY_TABLE
    " (version, name, checksum, state, statements_done, statements_total, started_at,"
    " finished_at, run_by, error, error_statement)"
    " VALUES ($1, $2, $3, $4, $5, $6, now(),"
    " CASE WHEN $4 = 'running' THEN NULL ELSE clock_timestamp() END, $7, NULLIF($8, ''),"
    " NULLIF($9, '')::integer)"
    " ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, checksum = EXCLUDED.checksum,"
    " state = EXCLUDED.state, statements_done = EXCLUDED.statements_done,"
    " statements_total = EXCLUDED.statements_total, started_at = EXCLUDED.started_at,"
    " finished_at = EXCLUDED.finished_at, run_by = EXCLUDED.run_by, error = EXCLUDED.error,"
    " error_statement = EXCLUDED.error_statement";

/* A no-transaction step: its count after each statement, then how it ended. */
static const char history_done_sql[] =
    "UPDATE " MIGRATE_HISTORY_TABLE " SET statements_done = $2 WHERE version = $1";
static const char history_end_sql[] =
    "UPDATE " MIGRATE_HISTORY_TABLE " SET state = $2, statements_done = $3,"
    " finished_at = clock_timestamp(), error = NULLIF($4, ''),"
    " error_statement = NULLIF($5, '')::integer WHERE version = $1";

static void run_step(struct migrate_run *run);

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

static bool step_notx(const struct migrate_run *run)
{
    return run_current_step(run)->up.directives.no_transaction;
}

/* The script a run runs of a step: its down script for MIGRATE DOWN, else its up one. */
static const struct migrate_script *script_of(const struct migrate_run *run,
                                              const struct migrate_step *step)
{
    return run->what.mode == MIGRATE_RUN_DOWN ? &step->down : &step->up;
}

/* A statement that runs long says so every MIGRATE_PROGRESS_MS. */
static void run_progress(evutil_socket_t fd, short what, void *arg)
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
             script_of(run, step)->sql.count, (double)(now_ms() - run->step_started_ms) / 1000.0);
    struct timeval tv = {MIGRATE_PROGRESS_MS / 1000, 0};
    evtimer_add(run->progress, &tv);
}

/* DOWN: the row of a step whose down script ran (in its transaction, when it has one). */
static const char history_revert_sql[] =
    "UPDATE " MIGRATE_HISTORY_TABLE " SET state = 'reverted', finished_at = clock_timestamp(),"
    " run_by = $2, error = NULL, error_statement = NULL WHERE version = $1";

/*
 * DOWN, a no-transaction down script: its row 'reverting' before its
 * first statement ($2: statements already done, when it goes on), its
 * count after each, 'reverted' at the end (history_revert_sql).
 */
static const char history_reverting_sql[] =
    "UPDATE " MIGRATE_HISTORY_TABLE " SET state = 'reverting', statements_done = $2,"
    " statements_total = $3, started_at = now(), finished_at = NULL, run_by = $4, error = NULL,"
    " error_statement = NULL WHERE version = $1";

/* The state a no-transaction script that stopped part way leaves its row in. */
static const char *notx_failed_state(const struct migrate_run *run)
{
    return run->what.mode == MIGRATE_RUN_DOWN ? "reverting" : "failed";
}

static void on_failure_recorded(struct migrate_run *run, const PGresult *res, const char *error)
{
    struct migrate_plan_error *e = &run->step_err;
    if (res == NULL && step_notx(run) && run->k > 0)
        snprintf(e->hint, sizeof(e->hint),
                 "Its history row could not be written (%s): it still says running, and "
                 "SHOW MIGRATIONS reports the step uncertain there.",
                 error);
    else if (res == NULL)
        snprintf(e->hint, sizeof(e->hint),
                 "Its history row could not be written (%s): the region's history does not "
                 "show this failure.",
                 error);
    run->out.failed = true;
    run->out.err = *e;
    run_finish(run);
}

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
    run_send(run, CONN_STEP, history_upsert_sql, RUN_PARAMS, on_failure_recorded, 0);
}

/*
 * The index in the step's statements of query k; SIZE_MAX when query k is
 * not one of them.  A transactional step sends BEGIN, its SETs, its
 * statements, its row, COMMIT; a no-transaction one its 'running' row, its
 * SETs, each statement followed by its count, RESET ALL, its end.
 */
static size_t step_statement_of(const struct migrate_run *run, const struct migrate_step *step)
{
    size_t first = 1 + run->nsets, n = script_of(run, step)->sql.count;
    if (run->k < first)
        return SIZE_MAX;
    size_t at = run->k - first;
    if (!script_of(run, step)->directives.no_transaction)
        return at < n ? at : SIZE_MAX;
    return at < 2 * n && at % 2 == 0 ? at / 2 : SIZE_MAX;
}

static void notx_failed(struct migrate_run *run);
static void step_aborted(struct migrate_run *run, size_t statement);

/* A query of the step failed: the error for the admin, then ROLLBACK and the 'failed' row. */
static void step_failed(struct migrate_run *run, const char *error)
{
    const struct migrate_step *step = run_current_step(run);
    const char *sqlstate;
    char why[MIGRATE_HISTORY_ERRMAX + 1];
    struct migrate_plan_error *e = &run->step_err;
    size_t at = step_statement_of(run, step);
    run->cleaning = true;
    if (run->aborting) { /* canceled by the abort, most likely: whatever it was, the run stops */
        step_aborted(run, at == SIZE_MAX ? 0 : at + 1);
        return;
    }
    server_error(run, error, why, sizeof(why), &sqlstate);
    run->failed_statement = at == SIZE_MAX ? 0 : at + 1;
    memset(e, 0, sizeof(*e));
    snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", sqlstate);
    snprintf(run->server_msg, sizeof(run->server_msg), "%.480s (%s)", why, sqlstate);
    if (run->failed_statement > 0)
        snprintf(e->message, sizeof(e->message),
                 "step %" PRId64 " (%s) failed in region \"%s\" at statement %zu: %.120s",
                 step->version, step->name, run->region->name, run->failed_statement, why);
    else
        snprintf(e->message, sizeof(e->message),
                 "step %" PRId64 " (%s) failed in region \"%s\": %.120s", step->version, step->name,
                 run->region->name, why);
    snprintf(e->detail, sizeof(e->detail),
             "Statement %zu of %zu (%s line %u). %s; earlier regions keep what they applied, "
             "later ones were not touched.",
             run->failed_statement, script_of(run, step)->sql.count, script_of(run, step)->file,
             run->failed_statement > 0
                 ? script_of(run, step)->sql.stmts[run->failed_statement - 1].line
                 : 0,
             script_of(run, step)->directives.no_transaction
                 ? "A no-transaction step is not rolled back: the statements before it stay done "
                   "there"
                 : "The step was rolled back there");
    if (run->conns[CONN_STEP].q == NULL) {
        on_failure_recorded(run, NULL, "the connection was lost");
        return;
    }
    if (script_of(run, step)->directives.no_transaction) {
        if (run->failed_statement > 0 && run->what.mode == MIGRATE_RUN_DOWN)
            snprintf(e->hint, sizeof(e->hint),
                     "Its history row says reverting: once the down script is fixed, MIGRATE DOWN "
                     "goes on from statement %zu; MIGRATE RESOLVE %" PRId64
                     " AS applied|reverted settles it.",
                     run->failed_statement, step->version);
        else if (run->failed_statement > 0)
            snprintf(e->hint, sizeof(e->hint),
                     "MIGRATE RETRY %" PRId64 " goes on from statement %zu; MIGRATE RESOLVE "
                     "settles it.",
                     step->version, run->failed_statement);
        notx_failed(run);
        return;
    }
    run_send(run, CONN_STEP, "ROLLBACK", 0, on_rolled_back, 0);
}

/* ---- abort ---- */

static void on_step_query(struct migrate_run *run, const PGresult *res, const char *error);

/* The run ends with the abort's error: what happened in the region is detail. */
static void run_aborted(struct migrate_run *run, const char *detail)
{
    run_fail(run, "57014", detail, "SHOW MIGRATIONS shows where each region stands.",
             "migration canceled by %s%s%s%s", run->abort_who,
             run->region != NULL ? " in region \"" : "",
             run->region != NULL ? run->region->name : "", run->region != NULL ? "\"" : "");
}

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
static void step_aborted(struct migrate_run *run, size_t statement)
{
    const struct migrate_step *step = run_current_step(run);
    const struct migrate_script *sc = script_of(run, step);
    struct migrate_plan_error *e = &run->step_err;
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
    memset(e, 0, sizeof(*e));
    snprintf(e->sqlstate, sizeof(e->sqlstate), "57014");
    snprintf(e->message, sizeof(e->message), "migration canceled by %s in region \"%s\"",
             run->abort_who, run->region->name);
    snprintf(e->detail, sizeof(e->detail),
             "Step %" PRId64 " (%s)%s runs without a transaction: its statements before statement "
             "%zu of %zu stay done there, and its history row says %s.",
             step->version, step->name, run->what.mode == MIGRATE_RUN_DOWN ? "'s down script" : "",
             statement, sc->sql.count, notx_failed_state(run));
    snprintf(e->hint, sizeof(e->hint),
             "MIGRATE %s goes on from statement %zu; MIGRATE RESOLVE settles it.",
             run->what.mode == MIGRATE_RUN_DOWN ? "DOWN" : "RETRY", statement);
    notx_failed(run);
}

/* The abort, met as the next query was about to go (run_send_now). */
static void run_stop_for_abort(struct migrate_run *run)
{
    if (run->on_result != on_step_query || run->k == 0) {
        run_aborted(run, run->region != NULL ? "No step was running there." : NULL);
        return;
    }
    const struct migrate_step *step = run_current_step(run);
    const struct migrate_script *sc = script_of(run, step);
    size_t first = 1 + run->nsets, n = sc->sql.count;
    if (!sc->directives.no_transaction) {
        step_aborted(run, 0);
        return;
    }
    if (run->k >= first + 2 * n) { /* every statement done: the step ends as applied */
        run->cleaning = true;
        run_send_now(run);
        return;
    }
    size_t at = run->k < first ? 0 : (run->k - first) / 2 + ((run->k - first) % 2);
    step_aborted(run, at + 1);
}

static void on_cancel_sent(void *arg, const PGresult *res, const char *error, bool answered)
{
    struct run_conn *c = arg;
    (void)res;
    (void)answered;
    if (error != NULL)
        log_warn(0, "migration: could not cancel the running statement: %s", error);
    if (!pgasync_keep_open(c->q, run_conn_closed, c))
        c->q = NULL;
}

/* The statement running on the step connection is canceled from the lock connection. */
static void run_cancel_statement(struct migrate_run *run)
{
    struct run_conn *lock = &run->conns[CONN_LOCK];
    int pid = pgasync_backend_pid(run->conns[CONN_STEP].q);
    const char *params[1] = {run->cancel_pid};
    snprintf(run->cancel_pid, sizeof(run->cancel_pid), "%d", pid);
    if (lock->q == NULL || pid == 0 ||
        pgasync_requery(lock->q, "SELECT pg_cancel_backend($1)", 1, params,
                        run->cfg->server_connect_timeout_ms, on_cancel_sent, lock) != 0)
        run_note(run, "could not cancel the running statement: the run stops once it ends");
}

void migrate_run_discard(struct migrate_run *run)
{
    run_free(run);
}

void migrate_run_abort(struct migrate_run *run, const char *who)
{
    if (run->aborting)
        return;
    run->aborting = true;
    snprintf(run->abort_who, sizeof(run->abort_who), "%s", who);
    log_info(0, "migration: stopping, asked by %s", who);
    if (run->closing != NULL)
        gate_close_cancel(run->closing); /* on_gate ends the run */
    else if (run->statement_out)
        run_cancel_statement(run);
}

/* ---- pause steps ---- */

/* The gate of a pause step opens again, once the step has ended (or the run). */
static void run_release_gate(struct migrate_run *run)
{
    if (!run->gate_held)
        return;
    run->gate_held = false;
    int64_t held = now_ms() - run->hold_started_ms;
    if (held > run->out.longest_hold_ms)
        run->out.longest_hold_ms = held;
    if (gate_open(run->home, &run->gate, NULL, NULL) != 0)
        log_error(0, "migration: could not let the held sessions go: out of memory");
    run_note(run, "region \"%s\": the sessions of database \"%s\" go on, held %" PRId64 " ms",
             run->gate.region, run->gate.database, held);
}

static void on_gate(const struct gate_outcome *o, void *arg)
{
    struct migrate_run *run = arg;
    const struct migrate_step *step = run_current_step(run);
    run->closing = NULL;
    if (o->end == GATE_HELD) {
        run->gate_held = true;
        run->hold_started_ms = now_ms();
        run_note(run,
                 "region \"%s\": the sessions of database \"%s\" are held (%" PRId64
                 " ms to close the gate%s)",
                 run->gate.region, run->gate.database, o->waited_ms,
                 o->forced > 0 ? ", busy sessions ended by FORCE" : "");
        run_step(run);
    } else if (run->aborting) {
        run_aborted(run, "The step's gate was opening again; the step was not started.");
    } else if (o->end == GATE_LATE) {
        run_fail(run, "55P03", o->busy,
                 "Those clients must end their transactions: run it again, raise "
                 "migration_hold_timeout, or add FORCE to end them.",
                 "could not hold the sessions of database \"%s\" in region \"%s\" within "
                 "migration_hold_timeout (%d ms): step %" PRId64 " (%s) was not started",
                 run->gate.database, run->gate.region, run->cfg->migration_hold_timeout_ms,
                 step->version, step->name);
    } else {
        run_fail(run, "53200", NULL, NULL,
                 "could not hold the sessions of database \"%s\" in region \"%s\": step %" PRId64
                 " (%s) was not started",
                 run->gate.database, run->gate.region, step->version, step->name);
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
    if (run->closing == NULL)
        run_fail(run, "53200", NULL, NULL, "out of memory");
}

/* $1 version, $2 state, $3 statements_done, $4 error, $5 error_statement: history_end_sql's. */
static void end_params(struct migrate_run *run, const struct migrate_step *step, const char *state,
                       size_t done, const char *error, size_t statement)
{
    step_params(run, step, state, done, error, statement);
    memcpy(run->params[1], run->params[3], sizeof(run->params[1]));
    memcpy(run->params[2], run->params[4], sizeof(run->params[2]));
    memcpy(run->params[3], run->params[7], sizeof(run->params[3]));
    memcpy(run->params[4], run->params[8], sizeof(run->params[4]));
}

static void on_notx_reset(struct migrate_run *run, const PGresult *res, const char *error)
{
    const struct migrate_step *step = run_current_step(run);
    (void)res;
    (void)error;
    end_params(run, step, notx_failed_state(run), run->failed_statement - 1, run->server_msg,
               run->failed_statement);
    run_send(run, CONN_STEP, history_end_sql, 5, on_failure_recorded, 0);
}

/*
 * A no-transaction step stopped: after a failed statement, its timeouts
 * reset and its row 'failed' with the count of statements done; after any
 * other query (its row, a SET, a count) its row is left as it is, 'running'
 * (uncertain once this run ends), or absent when nothing ran.
 */
static void notx_failed(struct migrate_run *run)
{
    struct migrate_plan_error *e = &run->step_err;
    if (run->failed_statement > 0) {
        run_send(run, CONN_STEP, "RESET ALL", 0, on_notx_reset, 0);
        return;
    }
    if (run->k > 0 && run->what.mode == MIGRATE_RUN_DOWN)
        snprintf(e->hint, sizeof(e->hint),
                 "Its history row says reverting: MIGRATE DOWN goes on from there, or MIGRATE "
                 "RESOLVE settles it.");
    else if (run->k > 0)
        snprintf(e->hint, sizeof(e->hint),
                 "Its history row says running: SHOW MIGRATIONS reports the step uncertain there "
                 "until it is settled.");
    run->out.failed = true;
    run->out.err = *e;
    run_finish(run);
}

/* The step's k-th SET (k from 1): its lock_timeout, then its statement_timeout. */
static void set_query(struct migrate_run *run, const struct migrate_step *step, const char *set)
{
    const struct migrate_directives *d = &script_of(run, step)->directives;
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
    size_t k = run->k, first = 1 + run->nsets, n = script_of(run, step)->sql.count;
    run->nparams = 0;
    if (k == 0 && run->what.mode == MIGRATE_RUN_DOWN) {
        snprintf(run->params[0], sizeof(run->params[0]), "%" PRId64, step->version);
        snprintf(run->params[1], sizeof(run->params[1]), "%" PRId64, run->resume);
        snprintf(run->params[2], sizeof(run->params[2]), "%zu", n);
        snprintf(run->params[3], sizeof(run->params[3]), "%s", run->run_by);
        run->sql = history_reverting_sql;
        run->nparams = 4;
    } else if (k == 0) {
        step_params(run, step, "running", (size_t)run->resume, "", 0);
        run->sql = history_upsert_sql;
        run->nparams = RUN_PARAMS;
    } else if (k < first) {
        set_query(run, step, "SET");
    } else if (k < first + 2 * n && (k - first) % 2 == 0) {
        run->sql = NULL; /* the statement: copied by run_step_next */
    } else if (k < first + 2 * n) {
        snprintf(run->params[0], sizeof(run->params[0]), "%" PRId64, step->version);
        snprintf(run->params[1], sizeof(run->params[1]), "%zu", (k - first) / 2 + 1);
        run->sql = history_done_sql;
        run->nparams = 2;
    } else if (k == first + 2 * n) {
        run->sql = "RESET ALL";
    } else if (run->what.mode == MIGRATE_RUN_DOWN) {
        snprintf(run->params[0], sizeof(run->params[0]), "%" PRId64, step->version);
        snprintf(run->params[1], sizeof(run->params[1]), "%s", run->run_by);
        run->sql = history_revert_sql;
        run->nparams = 2;
    } else {
        end_params(run, step, "applied", n, "", 0);
        run->sql = history_end_sql;
        run->nparams = 5;
    }
}

/* Query k of the current step into run->sql (and its params). */
static void step_query(struct migrate_run *run, const struct migrate_step *step)
{
    size_t k = run->k, first = 1 + run->nsets;
    run->nparams = 0;
    if (script_of(run, step)->directives.no_transaction) {
        notx_query(run, step);
    } else if (k == 0) {
        run->sql = "BEGIN";
    } else if (k < first) {
        set_query(run, step, "SET LOCAL");
    } else if (k < first + script_of(run, step)->sql.count) {
        run->sql = NULL; /* the statement: copied by run_step_next */
    } else if (k == first + script_of(run, step)->sql.count) {
        if (run->what.mode == MIGRATE_RUN_DOWN) {
            snprintf(run->params[0], sizeof(run->params[0]), "%" PRId64, step->version);
            snprintf(run->params[1], sizeof(run->params[1]), "%s", run->run_by);
            run->sql = history_revert_sql;
            run->nparams = 2;
            return;
        }
        step_params(run, step, "applied", step->up.sql.count, "", 0);
        run->sql = history_upsert_sql;
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
            &script_of(run, step)->sql.stmts[step_statement_of(run, step)];
        free(run->stmt_copy);
        run->stmt_copy = strndup(script_of(run, step)->text + st->offset, st->length);
        if (run->stmt_copy == NULL) {
            run_fail(run, "53200", NULL, NULL, "out of memory");
            return;
        }
        run->sql = run->stmt_copy;
        run->statement = step_statement_of(run, step) + 1;
        run_note(run,
                 "region \"%s\": step %" PRId64 " (%s), statement %zu of %zu (line %u), %.1f s "
                 "into the step",
                 run->region->name, step->version, step->name, step_statement_of(run, step) + 1,
                 script_of(run, step)->sql.count, st->line,
                 (double)(now_ms() - run->step_started_ms) / 1000.0);
    }
    run_send(run, CONN_STEP, run->sql, run->nparams, on_step_query, 0);
}

static void on_step_query(struct migrate_run *run, const PGresult *res, const char *error)
{
    const struct migrate_step *step = run_current_step(run);
    if (res == NULL) {
        step_failed(run, error);
        return;
    }
    if (++run->k == 1 + run->nsets && script_of(run, step)->directives.no_transaction &&
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
             script_of(run, step)->sql.count, script_of(run, step)->sql.count == 1 ? "" : "s",
             script_of(run, step)->directives.no_transaction ? " (no transaction)" : "",
             now_ms() - run->step_started_ms);
    run_release_gate(run);
    run->next_planned++;
    if (run->aborting) {
        run_aborted(run, "The step running when it was asked ended first and stays applied; "
                         "no later step was started.");
        return;
    }
    run_step(run);
}

/* The region's next step, or the next region. */
static void run_step(struct migrate_run *run)
{
    if (run->next_planned == run->nplanned) {
        if (run->nplanned == 0)
            run_note(run, "region \"%s\" has nothing to run", run->region->name);
        run->ri++;
        run_defer(run, ACT_REGION, 0);
        return;
    }
    const struct migrate_step *step = run_current_step(run);
    const struct migrate_directives *d = &script_of(run, step)->directives;
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
        1 + run->nsets + script_of(run, step)->sql.count * (d->no_transaction ? 2 : 1) + 2;
    run->step_started_ms = now_ms();
    run_step_next(run);
}

const char *migrate_down_refusal(const struct migrate_step *step)
{
    if (step == NULL || !step->has_down)
        return "It has no down file (NNNN_name.down.sql) in migrations_dir.";
    return NULL;
}

/* RESOLVE: "resolved as applied by <run_by> at <time>", after the error the row had. */
static const char history_resolve_sql[] =
    "UPDATE " MIGRATE_HISTORY_TABLE " SET state = $2, finished_at = clock_timestamp(),"
    " error = concat_ws('; ', error, 'resolved as ' || $2 || ' by ' || $3 || ' at ' ||"
    " clock_timestamp()::text) WHERE version = $1 AND state IN ('running', 'uncertain', 'failed', "
    "'reverting')";

static void on_resolved(struct migrate_run *run, const PGresult *res, const char *error)
{
    if (res == NULL) {
        run_fail(run, "08006", error, NULL, "could not resolve step %" PRId64 " in region \"%s\"",
                 run->what.version, run->region->name);
        return;
    }
    run->settled++;
    run_note(run, "region \"%s\": step %" PRId64 " resolved as %s", run->region->name,
             run->what.version, run->what.resolve_as);
    run->ri++;
    run_defer(run, ACT_REGION, 0);
}

/*
 * RESOLVE, RETRY: may the row be settled here?  An uncertain row, or a
 * failed one of a no-transaction step (RETRY also takes a failed
 * transactional step, rolled back, to run it whole).  Else a NOTICE, and
 * on to the next region.
 */
static bool settle_allowed(struct migrate_run *run, const struct migrate_history_row *row,
                           const struct migrate_step *step)
{
    bool notx = step == NULL || step->up.directives.no_transaction;
    bool retry = run->what.mode == MIGRATE_RUN_RETRY;
    bool as_reverted = !retry && strcmp(run->what.resolve_as, "reverted") == 0;
    /* A half-reverted step is settled as applied or reverted, or goes on by MIGRATE DOWN. */
    bool ok =
        row != NULL && (row->state == MIGRATE_REVERTING
                            ? !retry && strcmp(run->what.resolve_as, "failed") != 0
                            : !as_reverted && (row->state == MIGRATE_UNCERTAIN ||
                                               (row->state == MIGRATE_FAILED && (notx || retry))));
    if (ok)
        return true;
    run_note(run, "region \"%s\": step %" PRId64 " is %s there: nothing to %s", run->region->name,
             run->what.version, row != NULL ? migrate_state_name(row->state) : "pending",
             run->what.mode == MIGRATE_RUN_RESOLVE ? "resolve" : "retry");
    run->ri++;
    run_defer(run, ACT_REGION, 0);
    return false;
}

/* RETRY: the step again, from where it stopped when it runs without a transaction. */
static void run_retry(struct migrate_run *run, const struct migrate_history_row *row,
                      const struct migrate_step *step)
{
    if (step == NULL) {
        run_fail(run, "55000", "The history records it, but migrations_dir has no file for it.",
                 "Put the step's file back in migrations_dir.",
                 "step %" PRId64 " has no step file: it cannot be retried in region \"%s\"",
                 run->what.version, run->region->name);
        return;
    }
    run->resume = 0;
    if (step->up.directives.no_transaction) {
        if (strcmp(step->up.checksum, row->checksum) != 0) {
            run_fail(run, "55000",
                     "The statements done ran from the file as it was; the file changed since.",
                     "Restore the file, or settle the step with MIGRATE RESOLVE.",
                     "checksum mismatch for step %" PRId64 " (%s) in region \"%s\"", step->version,
                     step->name, run->region->name);
            return;
        }
        run->resume = row->statements_done;
    }
    run->planned[0] = (size_t)(step - run->steps.steps);
    run->nplanned = 1;
    run->next_planned = 0;
    run->settled++;
    if (run->resume > 0)
        run_note(run, "region \"%s\": step %" PRId64 " (%s) goes on from statement %" PRId64,
                 run->region->name, step->version, step->name, run->resume + 1);
    run_step(run);
}

static void run_settle(struct migrate_run *run, const struct migrate_history_row *row)
{
    const struct migrate_step *step = migrate_step_find(&run->steps, run->what.version);
    if (!settle_allowed(run, row, step))
        return;
    if (run->what.mode == MIGRATE_RUN_RETRY) {
        run_retry(run, row, step);
        return;
    }
    snprintf(run->params[0], sizeof(run->params[0]), "%" PRId64, run->what.version);
    snprintf(run->params[1], sizeof(run->params[1]), "%s", run->what.resolve_as);
    snprintf(run->params[2], sizeof(run->params[2]), "%s", run->run_by);
    run_send(run, CONN_STEP, history_resolve_sql, 3, on_resolved, 0);
}

/*
 * DOWN: the region's applied steps above the version, newest first, each
 * by its down script in a transaction; the checks of MIGRATE PLAN first,
 * and every down script there, or nothing runs in the region.
 */
static void run_down(struct migrate_run *run, struct migrate_history *h)
{
    struct migrate_plan_error perr;
    size_t n;
    run->down_resume_version = 0;
    migrate_history_down_resumable(h, run->what.version, &run->down_resume_version,
                                   &run->down_resume);
    if (migrate_plan_region(&run->steps, h, run->region->name, MIGRATE_TO_ALL, run->planned, &n,
                            &perr) != 0) {
        run->out.failed = true;
        run->out.err = perr;
        run_finish(run);
        return;
    }
    run->nplanned = 0;
    for (size_t i = h->count; i-- > 0;) {
        const struct migrate_history_row *row = &h->rows[i];
        if (row->version <= run->what.version || row->state != MIGRATE_APPLIED)
            continue;
        const struct migrate_step *step = migrate_step_find(&run->steps, row->version);
        const char *why = migrate_down_refusal(step);
        if (why != NULL) {
            run_fail(run, "55000", why, "MIGRATE DOWN runs only steps with a down script.",
                     "step %" PRId64 " (%s) cannot go down in region \"%s\"", row->version,
                     row->name, run->region->name);
            return;
        }
        run->planned[run->nplanned++] = (size_t)(step - run->steps.steps);
    }
    run->next_planned = 0;
    run_step(run);
}

static void on_history(struct migrate_run *run, const PGresult *res, const char *error)
{
    struct migrate_history h;
    struct migrate_plan_error perr;
    char why[256];
    if (res == NULL || migrate_history_parse(res, &h, why, sizeof(why)) != 0) {
        if (res != NULL)
            migrate_history_free(&h);
        run_fail(run, "08006", res == NULL ? error : why, NULL,
                 "could not read the migration history of region \"%s\"", run->region->name);
        return;
    }
    /* Under the lock no run goes on here: a running step was left by a pgnear that stopped. */
    for (size_t i = 0; i < h.count; i++)
        if (h.rows[i].state == MIGRATE_RUNNING)
            h.rows[i].state = MIGRATE_UNCERTAIN;
    if (run->what.mode == MIGRATE_RUN_DOWN) {
        run_down(run, &h);
        migrate_history_free(&h);
        return;
    }
    if (run->what.mode != MIGRATE_RUN_UP) {
        run_settle(run, migrate_history_find(&h, run->what.version));
        migrate_history_free(&h);
        return;
    }
    int rc = migrate_plan_region(&run->steps, &h, run->region->name, run->to, run->planned,
                                 &run->nplanned, &perr);
    migrate_history_free(&h);
    if (rc != 0) {
        run->out.failed = true;
        run->out.err = perr;
        run_finish(run);
        return;
    }
    run->next_planned = 0;
    run_step(run);
}

static void on_created(struct migrate_run *run, const PGresult *res, const char *error)
{
    if (res == NULL) {
        run_fail(run, "08006", error, NULL,
                 "could not create the migration history table in region \"%s\"",
                 run->region->name);
        return;
    }
    run_send(run, CONN_STEP, migrate_history_select_sql, 0, on_history, 0);
}

static void on_lock(struct migrate_run *run, const PGresult *res, const char *error)
{
    if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 2) {
        run_fail(run, "08006", error, NULL, "could not take the migration lock of region \"%s\"",
                 run->region->name);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
        run_send(run, CONN_STEP, migrate_history_create_sql, 0, on_created, 0);
        return;
    }
    if (now_ms() >= run->lock_deadline_ms) {
        char detail[512];
        const char *who = PQgetisnull(res, 0, 1) ? NULL : PQgetvalue(res, 0, 1);
        if (who != NULL) /* "pgnear migrations" is how another pgnear shows */
            snprintf(detail, sizeof(detail),
                     "pg_advisory_lock(%s) in migrations_db there is held by %.300s.",
                     MIGRATE_LOCK_KEY, who);
        else
            snprintf(detail, sizeof(detail),
                     "Another session holds pg_advisory_lock(%s) in migrations_db there.",
                     MIGRATE_LOCK_KEY);
        run_fail(run, "55P03", detail,
                 "A pgnear migrating shows as \"pgnear migrations\"; wait for its run to end, "
                 "then try again.",
                 "could not take the migration lock of region \"%s\" within %d ms",
                 run->region->name, MIGRATE_LOCK_WAIT_MS);
        return;
    }
    run_send(run, CONN_LOCK, lock_sql, 0, on_lock, MIGRATE_LOCK_POLL_MS);
}

/* The index in cfg->regions of the ri-th region to run: DOWN takes them in reverse order. */
static size_t region_at(const struct migrate_run *run)
{
    size_t n = run->cfg->regions.count;
    return run->cfg
        ->migration_order_index[run->what.mode == MIGRATE_RUN_DOWN ? n - 1 - run->ri : run->ri];
}

/* Region ri: its primary, its lock; or the end. */
static void run_region(struct migrate_run *run)
{
    const struct config *cfg = run->cfg;
    while (run->ri < cfg->regions.count && run->alone != NULL &&
           &cfg->regions.items[region_at(run)] != run->alone)
        run->ri++;
    if (run->ri == cfg->regions.count) {
        if ((run->what.mode == MIGRATE_RUN_RESOLVE || run->what.mode == MIGRATE_RUN_RETRY) &&
            run->settled == 0)
            run_fail(run, "55000", "SHOW MIGRATIONS shows the step's state in each region.", NULL,
                     "step %" PRId64 " is neither uncertain nor failed in any region %s",
                     run->what.version,
                     run->what.mode == MIGRATE_RUN_RESOLVE ? "where it can be resolved"
                                                           : "where it can be retried");
        else
            run_finish(run);
        return;
    }
    run->region = &cfg->regions.items[region_at(run)];
    char why[256];
    const struct region_host *h = migrate_primary(run->region, why, sizeof(why));
    if (h == NULL) {
        run_fail(run, "08001", why, NULL, "cannot migrate region \"%s\"", run->region->name);
        return;
    }
    if (!pgconn_conninfo(cfg, h, cfg->migrations_db, MIGRATE_APPLICATION_NAME, run->conninfo,
                         sizeof(run->conninfo))) {
        run_fail(run, "08001", "Its connection string is too long.", NULL,
                 "cannot migrate region \"%s\"", run->region->name);
        return;
    }
    run->lock_deadline_ms = now_ms() + MIGRATE_LOCK_WAIT_MS;
    run->k = 0;
    run_send(run, CONN_LOCK, lock_sql, 0, on_lock, 0);
}

struct migrate_run *migrate_run_start(struct worker *home, struct config *cfg,
                                      struct migrate_steps *steps, const struct region *alone,
                                      const struct migrate_run_what *what, const char *run_by,
                                      const struct migrate_run_hooks *hooks)
{
    struct migrate_run *run = calloc(1, sizeof(*run));
    if (run == NULL) {
        migrate_steps_free(steps);
        return NULL;
    }
    run->steps = *steps;
    memset(steps, 0, sizeof(*steps));
    run->cfg = config_ref(cfg);
    run->home = home;
    run->base = home->base;
    run->alone = alone;
    run->what = *what;
    run->to = what->mode == MIGRATE_RUN_UP ? what->version : MIGRATE_TO_ALL;
    snprintf(run->run_by, sizeof(run->run_by), "%s", run_by);
    run->hooks = *hooks;
    for (int i = 0; i < NCONNS; i++)
        run->conns[i].run = run;
    run->planned = calloc(run->steps.count > 0 ? run->steps.count : 1, sizeof(*run->planned));
    run->next = evtimer_new(run->base, run_act, run);
    run->progress = evtimer_new(run->base, run_progress, run);
    if (run->planned == NULL || run->next == NULL || run->progress == NULL) {
        run_free(run);
        return NULL;
    }
    run_defer(run, ACT_REGION, 0);
    return run;
}
