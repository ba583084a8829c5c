/*
 * run_settle.c — what a run does in a region besides running the plan
 * up: RESOLVE and RETRY of a step uncertain or failed there, and DOWN,
 * the applied steps above a version reverted by their down scripts.  The
 * runner (runner.c) hands it the region's history; it plans, and hands
 * the steps to run_step.c.
 */
#include "proxy/migrate/run.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "proxy/base/config.h"
#include "routing/region.h"

/* ---- RESOLVE and RETRY ---- */

/* RESOLVE wrote the verdict in this region's history: on to the next region. */
static void on_resolved(struct migrate_run *run, const PGresult *res, const char *error)
{
    if (res == NULL) {
        pg_error_set(&run->out.err, "08006", "could not resolve step %" PRId64 " in region \"%s\"",
                     run->what.version, run->region->name);
        pg_error_detail(&run->out.err, "%s", error);
        run_fail(run);
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
        pg_error_set(&run->out.err, "55000",
                     "step %" PRId64 " has no step file: it cannot be retried in region \"%s\"",
                     run->what.version, run->region->name);
        pg_error_detail(&run->out.err,
                        "The history records it, but migrations_dir has no file for it.");
        pg_error_hint(&run->out.err, "Put the step's file back in migrations_dir.");
        run_fail(run);
        return;
    }
    run->resume = 0;
    if (step->up.directives.no_transaction) {
        if (strcmp(step->up.checksum, row->checksum) != 0) {
            pg_error_set(&run->out.err, "55000",
                         "checksum mismatch for step %" PRId64 " (%s) in region \"%s\"",
                         step->version, step->name, run->region->name);
            pg_error_detail(
                &run->out.err,
                "The statements done ran from the file as it was; the file changed since.");
            pg_error_hint(&run->out.err,
                          "Restore the file, or settle the step with MIGRATE RESOLVE.");
            run_fail(run);
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

void run_settle(struct migrate_run *run, const struct migrate_history_row *row)
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
    run_send(run, CONN_STEP, migrate_history_resolve_sql, 3, on_resolved, 0);
}

/* ---- DOWN ---- */

const char *migrate_down_refusal(const struct migrate_step *step)
{
    if (step == NULL || !step->has_down)
        return "It has no down file (NNNN_name.down.sql) in migrations_dir.";
    return NULL;
}

/*
 * DOWN: the region's applied steps above the version, newest first, each
 * by its down script in a transaction; the checks of MIGRATE PLAN first,
 * and every down script there, or nothing runs in the region.
 */
void run_down(struct migrate_run *run, struct migrate_history *h)
{
    struct pg_error perr;
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
            pg_error_set(&run->out.err, "55000",
                         "step %" PRId64 " (%s) cannot go down in region \"%s\"", row->version,
                         row->name, run->region->name);
            pg_error_detail(&run->out.err, "%s", why);
            pg_error_hint(&run->out.err, "MIGRATE DOWN runs only steps with a down script.");
            run_fail(run);
            return;
        }
        run->planned[run->nplanned++] = (size_t)(step - run->steps.steps);
    }
    run->next_planned = 0;
    run_step(run);
}
