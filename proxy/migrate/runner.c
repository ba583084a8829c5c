/*
 * runner.c — a migration run (runner.h) and its regions: the run made,
 * ended and freed; its queries sent, one at a time, from an event of
 * their own (run.h); and each region in turn: its primary, the migration
 * lock (polled), the history table created and read under it, then the
 * plan handed to the steps (run_step.c) or to RESOLVE, RETRY and DOWN
 * (run_settle.c).
 */
#include "proxy/migrate/run.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/pgconn.h"
#include "proxy/migrate/status.h"
#include "proxy/runtime/worker.h"
#include "routing/region.h"

/* Both connections go; closing the lock's connection is what releases the advisory lock. */
static void run_close_conns(struct migrate_run *run)
{
    for (int i = 0; i < NCONNS; i++) {
        pgasync_abandon(run->conns[i].q);
        run->conns[i].q = NULL;
    }
}

/*
 * Frees the run and all it holds, the configuration's reference included; the
 * caller has told done.
 */
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
    run_upkeep_free(run);
    config_unref(run->cfg);
    free(run);
}

void migrate_run_discard(struct migrate_run *run)
{
    run_free(run);
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

/*
 * The run's end: connections closed, the gate opened, done told, the run freed;
 * nothing may touch run after.
 */
static void run_finish_now(struct migrate_run *run)
{
    run_close_conns(run);
    run_release_gate(run);
    run->hooks.done(run->hooks.arg, &run->out);
    run_free(run);
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

static void run_region(struct migrate_run *run);

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
    pg_error_set(&run->out.err, "08006", "lost the connection to region \"%s\"", run->region->name);
    pg_error_detail(&run->out.err, "%s", why);
    run_fail(run);
}

/* The deferred action (run_defer), from the loop, so a callback never re-enters the run. */
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
    case ACT_UPKEEP:
        run_close_conns(run);
        run_upkeep_next(run);
        return;
    case ACT_FINISH:
        run_finish_now(run);
        return;
    }
}

/* ---- one region: its lock, its history, its plan ---- */

/*
 * The region's history, read under its lock: a step left running becomes
 * uncertain, then the run goes down, settles or plans up.
 */
static void on_history(struct migrate_run *run, const PGresult *res, const char *error)
{
    struct migrate_history h;
    struct pg_error perr;
    char why[256];
    if (res == NULL || migrate_history_parse(res, &h, why, sizeof(why)) != 0) {
        if (res != NULL)
            migrate_history_free(&h);
        pg_error_set(&run->out.err, "08006",
                     "could not read the migration history of region \"%s\"", run->region->name);
        pg_error_detail(&run->out.err, "%s", res == NULL ? error : why);
        run_fail(run);
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

/* The history table exists (created if it was missing): its rows next. */
static void on_created(struct migrate_run *run, const PGresult *res, const char *error)
{
    if (res == NULL) {
        pg_error_set(&run->out.err, "08006",
                     "could not create the migration history table in region \"%s\"",
                     run->region->name);
        pg_error_detail(&run->out.err, "%s", error);
        run_fail(run);
        return;
    }
    run_send(run, CONN_STEP, migrate_history_select_sql, 0, on_history, 0);
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

/* The index in cfg->regions of the ri-th region to run: DOWN takes them in reverse order. */
static size_t region_at(const struct migrate_run *run)
{
    size_t n = run->cfg->regions.count;
    return run->cfg
        ->migration_order_index[run->what.mode == MIGRATE_RUN_DOWN ? n - 1 - run->ri : run->ri];
}

/* The region's lock is taken: its history next. */
static void history_under_lock(struct migrate_run *run)
{
    run_send(run, CONN_STEP, migrate_history_create_sql, 0, on_created, 0);
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

/* Region ri: its primary, its lock; or, after the last, the upkeep and the end. */
static void run_region(struct migrate_run *run)
{
    const struct config *cfg = run->cfg;
    if (run->what.mode == MIGRATE_RUN_UPKEEP)
        run->ri = cfg->regions.count; /* no region runs anything */
    while (run->ri < cfg->regions.count &&
           !region_subset_has(&run->only, &cfg->regions.items[region_at(run)]))
        run->ri++;
    if (run->ri == cfg->regions.count) {
        if ((run->what.mode == MIGRATE_RUN_RESOLVE || run->what.mode == MIGRATE_RUN_RETRY) &&
            run->settled == 0) {
            pg_error_set(&run->out.err, "55000",
                         "step %" PRId64 " is neither uncertain nor failed in any region %s",
                         run->what.version,
                         run->what.mode == MIGRATE_RUN_RESOLVE ? "where it can be resolved"
                                                               : "where it can be retried");
            pg_error_detail(&run->out.err,
                            "SHOW MIGRATIONS shows the step's state in each region.");
            run_fail(run);
        } else
            run_upkeep_start(run);
        return;
    }
    run->region = &cfg->regions.items[region_at(run)];
    int open = run_open_region(run);
    if (open == 0) {
        run->ri++;
        run_region(run);
    } else if (open > 0) {
        run_lock_region(run, history_under_lock);
    }
}

struct migrate_run *migrate_run_start(struct worker *home, struct config *cfg,
                                      struct migrate_steps *steps, const struct region_subset *only,
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
    migrate_regions_only(cfg, only, &run->only);
    run->what = *what;
    run->what.upkeep = NULL;
    if (what->upkeep != NULL) {
        run->up.wanted = true;
        run->up.what = *what->upkeep;
    }
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
