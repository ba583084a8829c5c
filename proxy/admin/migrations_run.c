/*
 * migrations_run.c — MIGRATE NEXT, UP, RESOLVE, RETRY and DOWN after the
 * first reading of every region's history (migrations.c): each region's
 * plan checked first, so that one which would stop the run stops it
 * before anything runs anywhere, then the steps handed to the runner
 * (migrate/runner.c), whose notes and outcome come back here; the request
 * ends with the run.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "proxy/admin/migrations_int.h"
#include "proxy/base/config.h"
#include "proxy/base/func_catalog.h"
#include "proxy/migrate/plan.h"
#include "proxy/migrate/status.h"
#include "proxy/runtime/worker.h"

/*
 * A region whose hosts are standbys of another region's primary runs
 * nothing itself (migrate_target): 1 when the command passes it by, -1
 * with the error set when it is the one region the command names, 0 for
 * a region of its own.
 */
static int follower_passed(struct migrations_request *req, const struct migrate_region_status *rs)
{
    if (rs->follows == NULL)
        return 0;
    if (req->alone == NULL)
        return 1;
    pg_error_set(&req->wait->err, "55000",
                 "region \"%s\" follows region \"%s\": nothing runs in it", rs->region->name,
                 rs->follows->name);
    pg_error_detail(
        &req->wait->err,
        "Its hosts are standbys of that region's primary: they replay what runs there.");
    pg_error_hint(&req->wait->err, "Run the command for the region that follows none.");
    return -1;
}

static void run_note(void *arg, const char *text)
{
    struct migrations_request *req = arg;
    req->wait->notice(req->wait, text);
}

/*
 * The runner's outcome: MIGRATE's tag (and the longest pause as a NOTICE) or
 * its error; the request ends here.
 */
static void run_done(void *arg, const struct migrate_run_outcome *out)
{
    struct migrations_request *req = arg;
    struct console_wait *wait = req->wait;
    const char *tag = req->kind == ADMIN_MIGRATE_NEXT ? "MIGRATE NEXT" : "MIGRATE";
    int rc = CMD_DONE;
    req->run = NULL;
    /* Its steps may have made or changed functions: nearest's catalogs are read again. */
    func_catalog_changed(&req->home->funcs);
    if (out->failed) {
        wait->err = out->err;
        rc = CMD_ERROR;
    } else {
        result_init(&wait->res, NULL, 0);
        if (out->longest_hold_ms > 0)
            result_notice(&wait->res, "the longest a pause step held its sessions: %" PRId64 " ms",
                          out->longest_hold_ms);
        result_set_tag(&wait->res, tag);
    }
    migrations_request_free(req);
    wait->answer(wait, rc);
}

/* Starts the runner with the request's steps; CMD_PENDING, or CMD_ERROR when out of memory. */
static int run_start(struct migrations_request *req, struct config *cfg,
                     const struct migrate_run_what *what)
{
    struct migrate_run_hooks hooks = {run_note, run_done, req};
    struct migrate_run_what with = *what;
    with.upkeep = req->has_upkeep ? &req->upkeep : NULL; /* after any run that ends well */
    req->run = migrate_run_start(req->home, cfg, &req->steps, request_only(req), &with, req->run_by,
                                 &hooks);
    if (req->run == NULL) {
        admin_error_oom(&req->wait->err);
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

/*
 * The lowest version up to to pending in any region (the plans checked
 * first, as MIGRATE PLAN does, so that a region which would refuse stops
 * the run before anything runs anywhere); 0 when none is; -1 with the
 * error set.
 */
static int64_t lowest_pending(struct migrations_request *req, const struct migrate_status *st,
                              int64_t to)
{
    int64_t lowest = 0;
    size_t n, *idx = calloc(req->steps.count > 0 ? req->steps.count : 1, sizeof(*idx));
    if (idx == NULL) {
        admin_error_oom(&req->wait->err);
        return -1;
    }
    for (size_t r = 0; r < st->count; r++) {
        const struct migrate_region_status *rs = &st->regions[r];
        struct pg_error perr;
        int passed = rs->reached ? follower_passed(req, rs) : 0;
        if (passed > 0)
            continue;
        if (!rs->reached) {
            pg_error_set(&req->wait->err, "08001",
                         "could not read the migration history of region \"%s\"", rs->region->name);
            pg_error_detail(&req->wait->err, "%s", rs->error);
        } else if (passed < 0)
            ; /* follower_passed set the error */
        else if (migrate_plan_region(&req->steps, &rs->history, rs->region->name, to, idx, &n,
                                     &perr) != 0) {
            req->wait->err = perr;
        } else {
            if (n > 0 && (lowest == 0 || req->steps.steps[idx[0]].version < lowest))
                lowest = req->steps.steps[idx[0]].version;
            continue;
        }
        free(idx);
        return -1;
    }
    free(idx);
    return lowest;
}

/*
 * After the first reading: nothing to do, an error, or the run.  NEXT runs
 * up to the lowest pending version, UP up to its target: the same runner.
 */
int migrations_start_run(struct migrations_request *req, const struct migrate_status *st)
{
    bool up = req->kind == ADMIN_MIGRATE_UP;
    const char *tag = up ? "MIGRATE" : "MIGRATE NEXT";
    int64_t v = lowest_pending(req, st, up ? req->to : MIGRATE_TO_ALL);
    if (v < 0)
        return CMD_ERROR;
    const char *none = up && req->to != MIGRATE_TO_ALL
                           ? "every step up to the version is applied: nothing to run"
                           : "every step is applied: nothing to run";
    if (v == 0 && req->has_upkeep) { /* the upkeep alone: a way to run it again */
        req->wait->notice(req->wait, none);
        struct migrate_run_what what = {.mode = MIGRATE_RUN_UPKEEP, .force = req->force};
        return run_start(req, st->cfg, &what);
    }
    if (v == 0) {
        result_init(&req->wait->res, NULL, 0);
        result_notice(&req->wait->res, "%s", none);
        result_set_tag(&req->wait->res, tag);
        return CMD_DONE;
    }
    struct migrate_run_what what = {
        .mode = MIGRATE_RUN_UP, .version = up ? req->to : v, .force = req->force};
    return run_start(req, st->cfg, &what);
}

/* ---- MIGRATE RESOLVE, MIGRATE RETRY ---- */

/* The runner checks each region's row under its lock; the first reading only shows all answer. */
int migrations_start_settle(struct migrations_request *req, const struct migrate_status *st)
{
    for (size_t r = 0; r < st->count; r++) {
        if (!st->regions[r].reached) {
            pg_error_set(&req->wait->err, "08001",
                         "could not read the migration history of region \"%s\"",
                         st->regions[r].region->name);
            pg_error_detail(&req->wait->err, "%s", st->regions[r].error);
            return CMD_ERROR;
        }
        if (follower_passed(req, &st->regions[r]) < 0)
            return CMD_ERROR;
    }
    struct migrate_run_what what = {.mode = req->kind == ADMIN_MIGRATE_RESOLVE ? MIGRATE_RUN_RESOLVE
                                                                               : MIGRATE_RUN_RETRY,
                                    .version = req->to,
                                    .resolve_as = req->resolve_as,
                                    .force = req->force};
    return run_start(req, st->cfg, &what);
}

/* ---- MIGRATE DOWN ---- */

/*
 * Steps to revert in one region: 1 when there are; 0 when none; -1 with
 * the error set when the region would stop the run (its plan's checks, or
 * a step without a down script).
 */
static int down_region(struct migrations_request *req, struct migrate_region_status *rs,
                       size_t *idx)
{
    struct pg_error perr;
    size_t n;
    int found = 0;
    int64_t resume_version, resume_done;
    if (!rs->reached) {
        pg_error_set(&req->wait->err, "08001",
                     "could not read the migration history of region \"%s\"", rs->region->name);
        pg_error_detail(&req->wait->err, "%s", rs->error);
        return -1;
    }
    int passed = follower_passed(req, rs);
    if (passed != 0)
        return passed > 0 ? 0 : -1;
    /* A down script that stopped part way goes on: its step is still to revert. */
    migrate_history_down_resumable(&rs->history, req->to, &resume_version, &resume_done);
    if (migrate_plan_region(&req->steps, &rs->history, rs->region->name, MIGRATE_TO_ALL, idx, &n,
                            &perr) != 0) {
        req->wait->err = perr;
        return -1;
    }
    for (size_t i = 0; i < rs->history.count; i++) {
        const struct migrate_history_row *row = &rs->history.rows[i];
        if (row->version <= req->to || row->state != MIGRATE_APPLIED)
            continue;
        const char *why = migrate_down_refusal(migrate_step_find(&req->steps, row->version));
        if (why != NULL) {
            pg_error_set(&req->wait->err, "55000",
                         "step %" PRId64 " (%s) cannot go down in region \"%s\"", row->version,
                         row->name, rs->region->name);
            pg_error_detail(&req->wait->err, "%s", why);
            pg_error_hint(&req->wait->err,
                          "MIGRATE DOWN runs only steps with a down script; nothing was run.");
            return -1;
        }
        found = 1;
    }
    return found;
}

/* Every region checked first: one that would stop the run stops it before anything runs. */
int migrations_start_down(struct migrations_request *req, struct migrate_status *st)
{
    size_t *idx = calloc(req->steps.count > 0 ? req->steps.count : 1, sizeof(*idx));
    int any = 0;
    if (idx == NULL) {
        admin_error_oom(&req->wait->err);
        return CMD_ERROR;
    }
    for (size_t r = 0; r < st->count && any >= 0; r++) {
        int rc = down_region(req, &st->regions[r], idx);
        any = rc < 0 ? -1 : any | rc;
    }
    free(idx);
    if (any < 0)
        return CMD_ERROR;
    if (any == 0) {
        result_init(&req->wait->res, NULL, 0);
        result_notice(&req->wait->res,
                      "no step above version %" PRId64 " is applied: nothing to "
                      "revert",
                      req->to);
        result_set_tag(&req->wait->res, "MIGRATE");
        return CMD_DONE;
    }
    struct migrate_run_what what = {
        .mode = MIGRATE_RUN_DOWN, .version = req->to, .force = req->force};
    return run_start(req, st->cfg, &what);
}
