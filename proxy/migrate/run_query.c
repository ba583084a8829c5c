/*
 * run_query.c — what every part of a migration run stands on: its
 * queries, one at a time, each sent from an event of its own (run.h) on
 * the lock or the step connection; its end (failed or not) and its
 * NOTICEs; and a region's primary and migration lock (polled).  The
 * runner (runner.c) and the parts it runs call down into it; it calls
 * nothing of theirs but the handler each query names, and the runner's
 * event (run_defer) does the rest.
 */
#include "proxy/migrate/run.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/pgconn.h"
#include "proxy/migrate/status.h"
#include "routing/region.h"

/* Both connections go; closing the lock's connection is what releases the advisory lock. */
void run_close_conns(struct migrate_run *run)
{
    for (int i = 0; i < NCONNS; i++) {
        pgasync_abandon(run->conns[i].q);
        run->conns[i].q = NULL;
    }
}

/* Does action from the loop, at once or after delay_ms. */
void run_defer(struct migrate_run *run, enum run_action action, int delay_ms)
{
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    run->action = action;
    if (evtimer_add(run->next, &tv) != 0 && action != ACT_FINISH) {
        run->out.failed = true;
        pg_error_set(&run->out.err, "53200", "out of memory");
        run_defer(run, ACT_FINISH, 0);
    }
}

/* The end, from the loop: the lock released, then done told, then the run freed. */
void run_finish(struct migrate_run *run)
{
    run_defer(run, ACT_FINISH, 0);
}

void run_fail(struct migrate_run *run)
{
    run->out.failed = true;
    run_finish(run);
}

void run_note(struct migrate_run *run, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_progress("migration", run->hooks.note, run->hooks.arg, fmt, ap);
    va_end(ap);
}

/* ---- sending ---- */

void run_conn_closed(void *arg)
{
    struct run_conn *c = arg;
    /* The server went away while idle: the lock (if this held it) is gone. */
    pgasync_abandon(c->q);
    c->q = NULL;
}

/*
 * pgasync's callback: the connection is kept open for the next statement, then
 * the result goes to the waiting step.
 */
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
void run_send(struct migrate_run *run, int conn, const char *sql, int nparams, run_result_fn fn,
              int delay_ms)
{
    run->conn = conn;
    run->sql = sql;
    run->nparams = nparams;
    run->on_result = fn;
    run_defer(run, ACT_SEND, delay_ms);
}

void run_send_now(struct migrate_run *run)
{
    struct run_conn *c = &run->conns[run->conn];
    const char *params[RUN_PARAMS];
    char why[256] = "the connection was lost";
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
        pgasync_set_notice(c->q, log_server_notice, (void *)"migration");
        return;
    }
    pg_error_set(&run->out.err, "08006", "lost the connection to region \"%s\"", run->region->name);
    pg_error_detail(&run->out.err, "%s", why);
    run_fail(run);
}

/*
 * The region's advisory lock: taken, or tried again until MIGRATE_LOCK_WAIT_MS,
 * then 55P03 naming who holds it.
 */
static void on_lock(struct migrate_run *run, const PGresult *res, const char *error)
{
    if (res == NULL || PQntuples(res) != 1 || PQnfields(res) != 2) {
        pg_error_set(&run->out.err, "08006", "could not take the migration lock of region \"%s\"",
                     run->region->name);
        pg_error_detail(&run->out.err, "%s", error);
        run_fail(run);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
        run->after_lock(run);
        return;
    }
    if (monotonic_ms() >= run->lock_deadline_ms) {
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
        pg_error_set(&run->out.err, "55P03",
                     "could not take the migration lock of region \"%s\" within %d ms",
                     run->region->name, MIGRATE_LOCK_WAIT_MS);
        pg_error_detail(&run->out.err, "%s", detail);
        pg_error_hint(&run->out.err,
                      "A pgnear migrating shows as \"pgnear migrations\"; wait for its run to end, "
                      "then try again.");
        run_fail(run);
        return;
    }
    run_send(run, CONN_LOCK, migrate_lock_try_sql, 0, on_lock, MIGRATE_LOCK_POLL_MS);
}

int run_open_region(struct migrate_run *run)
{
    const struct config *cfg = run->cfg;
    char why[256];
    const struct region *follows;
    const struct region_host *h = migrate_target(cfg, run->region, &follows, why, sizeof(why));
    if (h == NULL) {
        pg_error_set(&run->out.err, "08001", "cannot migrate region \"%s\"", run->region->name);
        pg_error_detail(&run->out.err, "%s", why);
        run_fail(run);
        return -1;
    }
    if (follows != NULL) {
        if (!run->up.running)
            run_note(run,
                     "region \"%s\" follows region \"%s\": its standbys replay the steps run there",
                     run->region->name, follows->name);
        return 0;
    }
    if (!pgconn_conninfo(cfg, h, cfg->migrations_db, MIGRATE_APPLICATION_NAME, run->conninfo,
                         sizeof(run->conninfo))) {
        pg_error_set(&run->out.err, "08001", "cannot migrate region \"%s\"", run->region->name);
        pg_error_detail(&run->out.err, "Its connection string is too long.");
        run_fail(run);
        return -1;
    }
    return 1;
}

void run_lock_region(struct migrate_run *run, void (*fn)(struct migrate_run *run))
{
    run->after_lock = fn;
    run->lock_deadline_ms = monotonic_ms() + MIGRATE_LOCK_WAIT_MS;
    run->k = 0;
    run_send(run, CONN_LOCK, migrate_lock_try_sql, 0, on_lock, 0);
}

/* The run ends with the abort's error: what happened in the region is detail. */
void run_aborted(struct migrate_run *run, const char *detail)
{
    pg_error_set(&run->out.err, "57014", "migration canceled by %s%s%s%s", run->abort_who,
                 run->region != NULL ? " in region \"" : "",
                 run->region != NULL ? run->region->name : "", run->region != NULL ? "\"" : "");
    if (detail != NULL)
        pg_error_detail(&run->out.err, "%s", detail);
    pg_error_hint(&run->out.err, "SHOW MIGRATIONS shows where each region stands.");
    run_fail(run);
}
