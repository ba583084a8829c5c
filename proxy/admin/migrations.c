/*
 * migrations.c — SHOW MIGRATIONS, MIGRATE PLAN, MIGRATE NEXT and MIGRATE UP.
 *
 * Each loads the steps of migrations_dir (a few files, read at once: the
 * loader is bounded and a bad file is the admin's answer), then reads every
 * region's history on the admin session's loop (migrate/status.c).  SHOW
 * and PLAN answer through their wait once all regions have answered or
 * timed out, and write nothing; NEXT and UP, when every region's plan
 * allows it, hand the steps to the runner (migrate/runner.c), which reads
 * each history again under the region's lock.  Where migrations_db is
 * homed by city and cities of it live in other regions, the request hands
 * the runner the upkeep that keeps them in step after a run that ends
 * well (runner.h); NEXT and UP with nothing to run do the upkeep alone.
 *
 * One migration runs on a pgnear at a time (daemon->migrating names its
 * worker, whose ->migration is the request): a second is refused at
 * once, and MIGRATE ABORT (migrate_abort.c), on any worker, finds the one
 * to stop.  The
 * request lives until the run's end; Ctrl-C on the admin's session, or
 * the session ending, aborts it as MIGRATE ABORT would.
 */
#include "proxy/admin/migrations.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "pgnear-build.h"

#include "proxy/base/config.h"
#include "proxy/base/func_catalog.h"
#include "proxy/base/log.h"
#include "proxy/migrate/plan.h"
#include "proxy/migrate/runner.h"
#include "proxy/migrate/status.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/session.h"
#include "routing/region.h"

static const struct admin_column migrations_show_cols[] = {{"version", ADMIN_INT8, 0},
                                                           {"name", ADMIN_TEXT, 0},
                                                           {"region", ADMIN_TEXT, 0},
                                                           {"state", ADMIN_TEXT, 0},
                                                           {"checksum_ok", ADMIN_BOOL, 0},
                                                           {"started_at", ADMIN_TIMESTAMPTZ, 0},
                                                           {"finished_at", ADMIN_TIMESTAMPTZ, 0},
                                                           {"run_by", ADMIN_TEXT, 0},
                                                           {"error", ADMIN_TEXT, 0}};

static const struct admin_column migrations_plan_cols[] = {
    {"region", ADMIN_TEXT, 0},      {"version", ADMIN_INT8, 0}, {"name", ADMIN_TEXT, 0},
    {"transaction", ADMIN_TEXT, 0}, {"pause", ADMIN_BOOL, 0},   {"statements", ADMIN_INT8, 0}};

struct migrations_request {
    struct console_wait *wait;
    struct worker *home; /* the admin session's: the run goes on here */
    enum admin_cmd_kind kind;
    int64_t to;
    struct migrate_steps steps;
    const struct region *alone;
    struct region_subset only; /* the regions it works in */
    bool every;                /* ... or every region */
    bool has_upkeep;           /* migrations_db is homed by city, its cities live elsewhere too */
    struct migrate_upkeep upkeep;
    const char *resolve_as; /* MIGRATE RESOLVE: "applied", "failed" or "reverted" */
    bool force;
    char run_by[MIGRATE_RUN_BY_MAX + 1];
    /* The commands that run steps: */
    bool claimed;            /* this is the pgnear's one migration (daemon->migrating) */
    uint64_t id;             /* daemon->migrations_started when it began */
    struct migrate_run *run; /* once started, until its end */
    bool aborted;            /* the abort came before the run started */
    char abort_who[128];
};

/* The regions the request works in (NULL: every region). */
static const struct region_subset *request_only(const struct migrations_request *req)
{
    return req->every ? NULL : &req->only;
}

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

/* A follower region runs nothing itself: its standbys replay what its primary region ran. */
static void notice_follower(struct admin_result *res, const struct migrate_region_status *rs)
{
    result_notice(res,
                  "region \"%s\" follows region \"%s\": its standbys replay the steps run "
                  "there",
                  rs->region->name, rs->follows->name);
}

/* ---- SHOW MIGRATIONS ---- */

/*
 * The columns of one step in one region after its version and name; an
 * unreachable region says why in the error column.
 */
static void show_row_of(struct admin_result *res, const struct migrate_region_status *rs,
                        const struct migrate_history_row *row, const struct migrate_step *step)
{
    result_text(res, rs->region->name);
    if (!rs->reached) {
        result_text(res, "unknown");
        for (int i = 0; i < 4; i++)
            result_null(res);
        result_textf(res, "region cannot be reached: %s", rs->error);
        return;
    }
    result_text(res, migrate_state_name(row != NULL ? row->state : MIGRATE_PENDING));
    if (row != NULL && step != NULL)
        result_bool(res, strcmp(row->checksum, step->up.checksum) == 0);
    else
        result_null(res);
    if (row == NULL) {
        for (int i = 0; i < 4; i++)
            result_null(res);
        return;
    }
    result_time_us(res, row->started_at_us);
    if (row->finished_at_us != 0)
        result_time_us(res, row->finished_at_us);
    else
        result_null(res);
    result_text(res, row->run_by);
    if (row->has_error)
        result_text(res, row->error);
    else
        result_null(res);
}

/* Rows the history has and migrations_dir has not: shown after the steps, region by region. */
static void show_orphans(struct admin_result *res, const struct migrate_status *st,
                         const struct migrate_steps *steps)
{
    for (size_t r = 0; r < st->count; r++) {
        const struct migrate_region_status *rs = &st->regions[r];
        for (size_t i = 0; rs->reached && i < rs->history.count; i++) {
            const struct migrate_history_row *row = &rs->history.rows[i];
            if (migrate_step_find(steps, row->version) != NULL)
                continue;
            result_int(res, row->version);
            result_text(res, row->name);
            show_row_of(res, rs, row, NULL);
            result_notice(res,
                          "step %" PRId64 " (%s) is in the history of region \"%s\" but "
                          "has no file in migrations_dir",
                          row->version, row->name, rs->region->name);
        }
    }
}

/*
 * SHOW MIGRATIONS: one row per step and region, then the orphans; unreachable
 * regions and followers as NOTICEs first.
 */
static void render_show(struct migrations_request *req, const struct migrate_status *st)
{
    struct admin_result *res = &req->wait->res;
    result_init(res, migrations_show_cols, ADMIN_NCOLS(migrations_show_cols));
    for (size_t r = 0; r < st->count; r++)
        if (!st->regions[r].reached)
            result_notice(res, "region \"%s\" cannot be reached: %s", st->regions[r].region->name,
                          st->regions[r].error);
        else if (st->regions[r].follows != NULL)
            notice_follower(res, &st->regions[r]);
    for (size_t i = 0; i < req->steps.count; i++) {
        const struct migrate_step *step = &req->steps.steps[i];
        for (size_t r = 0; r < st->count; r++) {
            const struct migrate_region_status *rs = &st->regions[r];
            result_int(res, step->version);
            result_text(res, step->name);
            show_row_of(res, rs, migrate_history_find(&rs->history, step->version), step);
        }
    }
    show_orphans(res, st, &req->steps);
    result_set_tag(res, "SHOW");
}

/* ---- MIGRATE PLAN ---- */

/* MIGRATE PLAN's rows for one region: the steps it would run, in order, idx indexing steps. */
static void plan_rows(struct admin_result *res, const struct migrate_region_status *rs,
                      const struct migrate_steps *steps, const size_t *idx, size_t n)
{
    if (n == 0)
        result_notice(res, "region \"%s\" has nothing to run", rs->region->name);
    for (size_t i = 0; i < n; i++) {
        const struct migrate_step *step = &steps->steps[idx[i]];
        result_text(res, rs->region->name);
        result_int(res, step->version);
        result_text(res, step->name);
        result_text(res, step->up.directives.no_transaction ? "no-transaction" : "transaction");
        result_bool(res, step->up.directives.pause);
        result_int(res, (int64_t)step->up.sql.count);
    }
}

/* CMD_DONE with the rows, or CMD_ERROR for the first region where UP would stop. */
static int render_plan(struct migrations_request *req, const struct migrate_status *st)
{
    struct admin_result *res = &req->wait->res;
    size_t *idx = calloc(req->steps.count > 0 ? req->steps.count : 1, sizeof(*idx));
    if (idx == NULL) {
        admin_error_oom(&req->wait->err);
        return CMD_ERROR;
    }
    result_init(res, migrations_plan_cols, ADMIN_NCOLS(migrations_plan_cols));
    for (size_t r = 0; r < st->count; r++) {
        const struct migrate_region_status *rs = &st->regions[r];
        struct pg_error perr;
        size_t n;
        if (rs->reached && rs->follows != NULL) {
            notice_follower(res, rs);
            continue;
        }
        if (!rs->reached) {
            pg_error_set(&req->wait->err, "08001",
                         "could not read the migration history of region \"%s\"", rs->region->name);
            pg_error_detail(&req->wait->err, "%s", rs->error);
            pg_error_hint(&req->wait->err,
                          "MIGRATE UP would stop there too; SHOW REGIONS shows its hosts.");
        } else if (migrate_plan_region(&req->steps, &rs->history, rs->region->name, req->to, idx,
                                       &n, &perr) != 0) {
            req->wait->err = perr;
        } else {
            plan_rows(res, rs, &req->steps, idx, n);
            continue;
        }
        free(idx);
        result_free(res);
        return CMD_ERROR;
    }
    free(idx);
    result_set_tag(res, "MIGRATE PLAN");
    return CMD_DONE;
}

/* ---- MIGRATE NEXT ---- */

/* The request's end: the claim given back, the command's hooks unset, freed. */
static void request_free(struct migrations_request *req)
{
    if (req->claimed) {
        req->home->migration = NULL;
        __atomic_store_n(&req->home->shared->migrating, 0, __ATOMIC_RELEASE);
        worker_check_drained(req->home); /* a shutdown may have waited for the run to stop */
    }
    if (req->wait != NULL) {
        req->wait->on_cancel = NULL;
        req->wait->on_session_end = NULL;
    }
    migrate_steps_free(&req->steps);
    free(req);
}

void migrations_worker_end(struct worker *w)
{
    struct migrations_request *req = w->migration;
    if (req == NULL)
        return;
    if (req->run != NULL)
        migrate_run_discard(req->run);
    req->run = NULL;
    struct console_wait *wait = req->wait;
    request_free(req);
    /* Its admin session has gone (else it would have been closed first): nobody to answer. */
    if (wait != NULL && wait->s == NULL)
        wait->answer(wait, CMD_ERROR);
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
    request_free(req);
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
static int start_run(struct migrations_request *req, const struct migrate_status *st)
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
static int start_settle(struct migrations_request *req, const struct migrate_status *st)
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
static int start_down(struct migrations_request *req, struct migrate_status *st)
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

/* ---- all ---- */

/*
 * Every region's status is in: SHOW and PLAN answer now; the others start their
 * run and answer when it ends.
 */
static void migrations_answer(struct migrate_status *st, void *arg)
{
    struct migrations_request *req = arg;
    int rc = CMD_DONE;
    if (req->aborted) {
        pg_error_set(&req->wait->err, "57014", "migration canceled by %s", req->abort_who);
        pg_error_detail(&req->wait->err, "Nothing was run in any region.");
    }
    if (req->aborted)
        rc = CMD_ERROR;
    else if (req->kind == ADMIN_SHOW_MIGRATIONS)
        render_show(req, st);
    else if (req->kind == ADMIN_MIGRATE_PLAN)
        rc = render_plan(req, st);
    else if (req->kind == ADMIN_MIGRATE_DOWN)
        rc = start_down(req, st);
    else if (req->kind == ADMIN_MIGRATE_RESOLVE || req->kind == ADMIN_MIGRATE_RETRY)
        rc = start_settle(req, st);
    else
        rc = start_run(req, st);
    struct console_wait *wait = req->wait;
    migrate_status_free(st);
    if (rc == CMD_PENDING)
        return;
    request_free(req);
    wait->answer(wait, rc);
}

/* migrations_dir and migrations_db are set; false with the error when not. */
static bool migrations_configured(const struct config *cfg, struct pg_error *err)
{
    const char *missing = cfg->migrations_dir[0] == '\0'  ? "migrations_dir"
                          : cfg->migrations_db[0] == '\0' ? "migrations_db"
                                                          : NULL;
    if (missing == NULL)
        return true;
    char hint[160];
    snprintf(hint, sizeof(hint), "Set %s in pgnear's configuration, then RELOAD.", missing);
    pg_error_set(err, "55000", "%s is not set: pgnear has no migrations", missing);
    pg_error_hint(err, "%s", hint);
    return false;
}

/*
 * The upkeep after a run (runner.h) where migrations_db is homed by city
 * and the regions of its cities (in only) are not all where it lives.
 */
static void upkeep_of(const struct config *cfg, struct migrations_request *req,
                      const struct region_subset *lives)
{
    const char *column = config_database_home_by(cfg, cfg->migrations_db);
    struct migrate_upkeep *up = &req->upkeep;
    if (column == NULL || req->only.count == lives->count)
        return;
    snprintf(up->column, sizeof(up->column), "%s", column);
    up->origin = *lives;
    up->cities.count = 0;
    for (size_t i = 0; i < req->only.count; i++)
        if (!region_subset_has(lives, req->only.items[i]))
            up->cities.items[up->cities.count++] = req->only.items[i];
    req->has_upkeep = true;
}

/*
 * The regions a command works in: those where migrations_db lives (its
 * [database] section's, or where a move put it; every region when neither
 * says) and, homed by city, those holding a city's rows besides (a city
 * moved there, or being moved there); or the one it names, which must be
 * one of them.  False with the error when it names none of them.
 */
static bool migrations_regions(struct worker *w, const struct admin_cmd *cmd,
                               struct migrations_request *req, struct pg_error *err)
{
    const struct config *cfg = w->cfg;
    const struct region_subset *lives =
        placement_of(&w->shared->placement, cfg, cfg->migrations_db, &req->only);
    req->every = lives == NULL;
    if (lives != NULL && lives != &req->only)
        req->only = *lives;
    if (!req->every) {
        struct region_subset lives_alone = req->only;
        placement_add_city_regions(&w->shared->placement, cfg, cfg->migrations_db, &req->only);
        upkeep_of(cfg, req, &lives_alone);
    }
    if (!cmd->has_region)
        return true;
    req->alone = region_set_find(&cfg->regions, cmd->region);
    if (req->alone == NULL) {
        pg_error_set(err, "42704", "region \"%s\" does not exist", cmd->region);
        pg_error_hint(err, "SHOW REGIONS lists them.");
        return false;
    }
    if (!req->every && !region_subset_has(&req->only, req->alone)) {
        char list[256], detail[300];
        region_subset_format(&req->only, list, sizeof(list));
        snprintf(detail, sizeof(detail), "It lives in: %s.", list);
        pg_error_set(err, "55000", "migrations_db \"%s\" does not live in region \"%s\"",
                     cfg->migrations_db, req->alone->name);
        pg_error_detail(err, "%s", detail);
        return false;
    }
    req->every = false;
    req->only.count = 1;
    req->only.items[0] = (struct region *)req->alone;
    return true;
}

/* Ctrl-C on the admin's session, the session's end, MIGRATE ABORT: the run stops. */
static void request_abort(struct migrations_request *req, const char *who)
{
    if (req->run != NULL) {
        migrate_run_abort(req->run, who);
    } else if (!req->aborted) {
        req->aborted = true; /* migrations_answer says so */
        snprintf(req->abort_who, sizeof(req->abort_who), "%s", who);
    }
}

/* on_cancel of the admin's session: Ctrl-C aborts the migration. */
static void request_canceled(void *arg)
{
    request_abort(arg, "a cancel request (Ctrl-C)");
}

/* on_session_end: an admin who hangs up aborts the migration too. */
static void request_session_ended(void *arg)
{
    request_abort(arg, "the end of the admin's session");
}

/* Whether the command runs steps (and so must be this pgnear's only migration). */
static bool runs_steps(enum admin_cmd_kind kind)
{
    return kind != ADMIN_SHOW_MIGRATIONS && kind != ADMIN_MIGRATE_PLAN;
}

/* "MIGRATE UP by admin x, started 2026-11-23 03:12:44 UTC.": the errdetail of a second one. */
static void describe_run(char *buf, size_t cap, enum admin_cmd_kind kind, const char *user)
{
    char name[64];
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
    snprintf(buf, cap, "%s by admin %.32s, started %s.",
             admin_command_name(kind, name, sizeof(name)), user, when);
}

/* The pgnear's one migration is this request's; false with the error when another runs. */
static bool request_claim(struct migrations_request *req, struct session *s)
{
    struct shared *sh = s->w->shared;
    int none = 0;
    char other[sizeof(sh->migrating_what)];
    pthread_mutex_lock(&sh->migrating_lock);
    bool mine = __atomic_compare_exchange_n(&sh->migrating, &none, s->w->index + 1, false,
                                            __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
    if (mine) {
        describe_run(sh->migrating_what, sizeof(sh->migrating_what), req->kind, s->user);
        sh->migrating_step[0] = '\0';
    } else {
        memcpy(other, sh->migrating_what, sizeof(other));
    }
    pthread_mutex_unlock(&sh->migrating_lock);
    if (!mine) {
        pg_error_set(&req->wait->err, "55006", "a migration is already running on this pgnear");
        pg_error_detail(&req->wait->err, "%s", other);
        pg_error_hint(&req->wait->err, "Wait for it to end, or stop it with MIGRATE ABORT.");
        return false;
    }
    req->claimed = true;
    req->id = __atomic_add_fetch(&s->w->shared->migrations_started, 1, __ATOMIC_RELAXED);
    s->w->migration = req;
    req->wait->on_cancel = request_canceled;
    req->wait->on_session_end = request_session_ended;
    req->wait->hook_arg = req;
    return true;
}

/* A request for cmd, its steps loaded; NULL with the error set. */
static struct migrations_request *request_new(struct session *s, const struct admin_cmd *cmd,
                                              struct console_wait *wait)
{
    struct migrations_request *req = calloc(1, sizeof(*req));
    char why[512], host[64] = "?";
    if (req == NULL) {
        admin_error_oom(&wait->err);
        return NULL;
    }
    req->wait = wait;
    req->home = s->w;
    req->kind = cmd->kind;
    req->to = cmd->has_version ? cmd->version : MIGRATE_TO_ALL;
    req->resolve_as = cmd->resolve_applied    ? "applied"
                      : cmd->resolve_reverted ? "reverted"
                                              : "failed";
    req->force = cmd->force;
    gethostname(host, sizeof(host) - 1);
    snprintf(req->run_by, sizeof(req->run_by), "pgnear %s on %s pid %d, admin %.32s",
             PACKAGE_VERSION, host, (int)getpid(), s->user);
    if (migrate_steps_load(s->w->cfg->migrations_dir, &req->steps, why, sizeof(why)) != 0) {
        pg_error_set(&wait->err, "F0000", "could not load the steps of migrations_dir: %s", why);
        pg_error_hint(&wait->err, "Fix the step file; nothing was read from any region.");
        request_free(req);
        return NULL;
    }
    if (runs_steps(cmd->kind) && !request_claim(req, s)) {
        request_free(req);
        return NULL;
    }
    return req;
}

/*
 * Logical replication does not carry schema changes: a step run while
 * migrations_db is being moved would stop the move's replication, one way
 * or the other.  Steps wait for its FINISH or ABORT; reading is fine.
 */
static bool migrations_not_moving(struct worker *w, const struct admin_cmd *cmd,
                                  struct console_wait *wait)
{
    const char *db = w->cfg->migrations_db;
    if (!runs_steps(cmd->kind) || !placement_flag(&w->shared->placement, db, PLACEMENT_MOVING))
        return true;
    pg_error_set(&wait->err, "55006", "database \"%s\" is being moved", db);
    pg_error_detail(&wait->err, "Logical replication does not carry schema changes: a step run on "
                                "either side would stop the move's replication.");
    pg_error_hint(&wait->err,
                  "Run it after MOVE DATABASE ... FINISH or ABORT; SHOW MOVES shows the move.");
    return false;
}

/* Every migrations command starts by reading each region's status; CMD_PENDING until it is in. */
static int migrations_start(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait)
{
    struct config *cfg = s->w->cfg;
    if (!migrations_configured(cfg, &wait->err))
        return CMD_ERROR;
    struct migrations_request *req = request_new(s, cmd, wait);
    if (req == NULL)
        return CMD_ERROR;
    if (!migrations_regions(s->w, cmd, req, &wait->err) ||
        !migrations_not_moving(s->w, cmd, wait)) {
        request_free(req);
        return CMD_ERROR;
    }
    if (migrate_status_start(s->w->base, cfg, request_only(req), cfg->server_connect_timeout_ms,
                             migrations_answer, req) == NULL) {
        request_free(req);
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

const struct admin_command migrations_show_command = {
    .cols = migrations_show_cols,
    .ncols = ADMIN_NCOLS(migrations_show_cols),
    .run = migrations_start,
};

const struct admin_command migrations_plan_command = {
    .cols = migrations_plan_cols,
    .ncols = ADMIN_NCOLS(migrations_plan_cols),
    .run = migrations_start,
};

/* MIGRATE NEXT: logged with who ran it, then one step, as MIGRATE UP would. */
static int migrate_next_run(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait)
{
    log_info(s->id, "admin %s: MIGRATE NEXT%s%s", s->user, cmd->has_region ? " IN REGION " : "",
             cmd->has_region ? cmd->region : "");
    return migrations_start(s, cmd, wait);
}

const struct admin_command migrations_next_command = {.run = migrate_next_run};

/* MIGRATE UP: logged with who ran it and to which version. */
static int migrate_up_run(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    char to[32] = "";
    if (cmd->has_version)
        snprintf(to, sizeof(to), " TO %" PRId64, cmd->version);
    log_info(s->id, "admin %s: MIGRATE UP%s%s%s", s->user, to, cmd->has_region ? " IN REGION " : "",
             cmd->has_region ? cmd->region : "");
    return migrations_start(s, cmd, wait);
}

const struct admin_command migrations_up_command = {.run = migrate_up_run};

/* MIGRATE RESOLVE and RETRY: logged with the version and the verdict asked for. */
static int migrate_settle_run(struct session *s, const struct admin_cmd *cmd,
                              struct console_wait *wait)
{
    log_info(s->id, "admin %s: MIGRATE %s %" PRId64 "%s%s%s", s->user,
             cmd->kind == ADMIN_MIGRATE_RESOLVE ? "RESOLVE" : "RETRY", cmd->version,
             cmd->kind != ADMIN_MIGRATE_RESOLVE ? ""
             : cmd->resolve_applied             ? " AS applied"
             : cmd->resolve_reverted            ? " AS reverted"
                                                : " AS failed",
             cmd->has_region ? " IN REGION " : "", cmd->has_region ? cmd->region : "");
    return migrations_start(s, cmd, wait);
}

const struct admin_command migrations_settle_command = {.run = migrate_settle_run};

/* MIGRATE DOWN: logged with the version it goes back to. */
static int migrate_down_run(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait)
{
    log_info(s->id, "admin %s: MIGRATE DOWN TO %" PRId64 "%s%s", s->user, cmd->version,
             cmd->has_region ? " IN REGION " : "", cmd->has_region ? cmd->region : "");
    return migrations_start(s, cmd, wait);
}

const struct admin_command migrations_down_command = {.run = migrate_down_run};

/* ---- MIGRATE ABORT (migrate_abort.c) ---- */

uint64_t migrations_stop(struct worker *w, const char *who)
{
    struct migrations_request *req = w->migration;
    if (req == NULL)
        return 0;
    log_info(0, "migration %llu: %s", (unsigned long long)req->id, who);
    uint64_t id = req->id;
    request_abort(req, who);
    return id;
}

bool migrations_running(const struct worker *w, uint64_t id)
{
    return w->migration != NULL && w->migration->id == id;
}

/* worker_part's busy: a migration running holds the worker's draining loop up until it ends. */
static bool migrations_busy(const struct worker *w)
{
    return w->migration != NULL;
}

const struct worker_part migrations_part = {
    .name = "migrations",
    .busy = migrations_busy,
    .free = migrations_worker_end,
};
