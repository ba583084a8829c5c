/*
 * runner.c — a migration run (runner.h) and its regions, the top of the
 * run's files (run.h): the run made, ended and freed; its event, which
 * does what the parts below defer to it (a query to send, the next
 * region, the upkeep's next region, the end) and meets MIGRATE ABORT
 * before a query goes; the abort itself; and each region in turn: its
 * primary and migration lock (run_query.c), the history table created
 * and read under it, then the plan handed to the steps (run_step.c) or to
 * RESOLVE, RETRY and DOWN (run_settle.c).
 */
#include "proxy/migrate/run.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/migrate/status.h"
#include "proxy/runtime/worker.h"
#include "routing/region.h"

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

static void run_region(struct migrate_run *run);

/* The deferred action (run_defer), from the loop, so a callback never re-enters the run. */
static void run_act(evutil_socket_t fd, short what, void *arg)
{
    struct migrate_run *run = arg;
    (void)fd;
    (void)what;
    switch (run->action) {
    case ACT_SEND:
        if (run->aborting && !run->cleaning)
            run_stop_for_abort(run); /* the abort, met as the next query was about to go */
        else
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

/* ---- MIGRATE ABORT ---- */

/*
 * pg_cancel_backend's answer; a failure is only logged, since the run then
 * stops once the statement ends.
 */
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
