/*
 * migrations.c — SHOW MIGRATIONS, MIGRATE PLAN, MIGRATE NEXT and MIGRATE UP.
 *
 * Each loads the steps of migrations_dir (a few files, read at once: the
 * loader is bounded and a bad file is the admin's answer), then reads every
 * region's history on the admin session's loop (migrate/status.c).  SHOW
 * and PLAN answer through console_command_done once all regions have
 * answered or timed out, and write nothing; NEXT and UP, when every
 * region's plan allows it, hand the steps to the runner (migrate/runner.c),
 * which reads each history again under the region's lock.
 */
#include "proxy/admin/migrations.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgnear-build.h"

#include "proxy/admin/console.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/migrate/plan.h"
#include "proxy/migrate/runner.h"
#include "proxy/migrate/status.h"
#include "proxy/session.h"
#include "proxy/worker.h"
#include "routing/region.h"

const struct admin_column migrations_show_cols[9] = {{"version", ADMIN_INT8, 0},
                                                     {"name", ADMIN_TEXT, 0},
                                                     {"region", ADMIN_TEXT, 0},
                                                     {"state", ADMIN_TEXT, 0},
                                                     {"checksum_ok", ADMIN_BOOL, 0},
                                                     {"started_at", ADMIN_TIMESTAMPTZ, 0},
                                                     {"finished_at", ADMIN_TIMESTAMPTZ, 0},
                                                     {"run_by", ADMIN_TEXT, 0},
                                                     {"error", ADMIN_TEXT, 0}};

const struct admin_column migrations_plan_cols[6] = {
    {"region", ADMIN_TEXT, 0},      {"version", ADMIN_INT8, 0}, {"name", ADMIN_TEXT, 0},
    {"transaction", ADMIN_TEXT, 0}, {"pause", ADMIN_BOOL, 0},   {"statements", ADMIN_INT8, 0}};

#define NCOLS(a) (int)(sizeof(a) / sizeof(a[0]))

struct migrations_request {
    struct console_wait *wait;
    enum admin_cmd_kind kind;
    int64_t to;
    struct migrate_steps steps;
    struct event_base *base; /* MIGRATE NEXT: where the run goes on */
    const struct region *alone;
    bool resolve_applied; /* MIGRATE RESOLVE */
    char run_by[MIGRATE_RUN_BY_MAX + 1];
};

/* ---- SHOW MIGRATIONS ---- */

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

static void render_show(struct migrations_request *req, const struct migrate_status *st)
{
    struct admin_result *res = &req->wait->res;
    result_init(res, migrations_show_cols, NCOLS(migrations_show_cols));
    for (size_t r = 0; r < st->count; r++)
        if (!st->regions[r].reached)
            result_notice(res, "region \"%s\" cannot be reached: %s", st->regions[r].region->name,
                          st->regions[r].error);
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
        admin_error_set(&req->wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    result_init(res, migrations_plan_cols, NCOLS(migrations_plan_cols));
    for (size_t r = 0; r < st->count; r++) {
        const struct migrate_region_status *rs = &st->regions[r];
        struct migrate_plan_error perr;
        size_t n;
        if (!rs->reached) {
            admin_error_set(&req->wait->err, "08001", rs->error,
                            "MIGRATE UP would stop there too; SHOW REGIONS shows its hosts.",
                            "could not read the migration history of region \"%s\"",
                            rs->region->name);
        } else if (migrate_plan_region(&req->steps, &rs->history, rs->region->name, req->to, idx,
                                       &n, &perr) != 0) {
            admin_error_set(&req->wait->err, perr.sqlstate, perr.detail, perr.hint, "%s",
                            perr.message);
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

static void run_done(const struct migrate_run_outcome *out, struct console_wait *wait,
                     const char *tag)
{
    if (out->failed) {
        admin_error_set(&wait->err, out->err.sqlstate, out->err.detail, out->err.hint, "%s",
                        out->err.message);
        console_command_done(wait, CMD_ERROR);
        return;
    }
    result_init(&wait->res, NULL, 0);
    for (int i = 0; i < out->nnotes; i++)
        result_notice(&wait->res, "%s", out->notes[i]);
    result_set_tag(&wait->res, tag);
    console_command_done(wait, CMD_DONE);
}

static void next_done(const struct migrate_run_outcome *out, void *arg)
{
    run_done(out, arg, "MIGRATE NEXT");
}

static void up_done(const struct migrate_run_outcome *out, void *arg)
{
    run_done(out, arg, "MIGRATE");
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
        admin_error_set(&req->wait->err, "53200", NULL, NULL, "out of memory");
        return -1;
    }
    for (size_t r = 0; r < st->count; r++) {
        const struct migrate_region_status *rs = &st->regions[r];
        struct migrate_plan_error perr;
        if (!rs->reached) {
            admin_error_set(&req->wait->err, "08001", rs->error, NULL,
                            "could not read the migration history of region \"%s\"",
                            rs->region->name);
        } else if (migrate_plan_region(&req->steps, &rs->history, rs->region->name, to, idx, &n,
                                       &perr) != 0) {
            admin_error_set(&req->wait->err, perr.sqlstate, perr.detail, perr.hint, "%s",
                            perr.message);
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
    if (v == 0) {
        result_init(&req->wait->res, NULL, 0);
        result_notice(&req->wait->res, "every step%s is applied: nothing to run",
                      up && req->to != MIGRATE_TO_ALL ? " up to the version" : "");
        result_set_tag(&req->wait->res, tag);
        return CMD_DONE;
    }
    struct migrate_run_what what = {MIGRATE_RUN_UP, up ? req->to : v, false};
    if (migrate_run_start(req->base, st->cfg, &req->steps, req->alone, &what, req->run_by,
                          up ? up_done : next_done, req->wait) != 0) {
        admin_error_set(&req->wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

/* ---- MIGRATE RESOLVE, MIGRATE RETRY ---- */

/* The runner checks each region's row under its lock; the first reading only shows all answer. */
static int start_settle(struct migrations_request *req, const struct migrate_status *st)
{
    for (size_t r = 0; r < st->count; r++)
        if (!st->regions[r].reached) {
            admin_error_set(&req->wait->err, "08001", st->regions[r].error, NULL,
                            "could not read the migration history of region \"%s\"",
                            st->regions[r].region->name);
            return CMD_ERROR;
        }
    struct migrate_run_what what = {req->kind == ADMIN_MIGRATE_RESOLVE ? MIGRATE_RUN_RESOLVE
                                                                       : MIGRATE_RUN_RETRY,
                                    req->to, req->resolve_applied};
    if (migrate_run_start(req->base, st->cfg, &req->steps, req->alone, &what, req->run_by, up_done,
                          req->wait) != 0) {
        admin_error_set(&req->wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

/* ---- MIGRATE DOWN ---- */

/*
 * Steps to revert in one region: 1 when there are; 0 when none; -1 with
 * the error set when the region would stop the run (its plan's checks, or
 * a step without a down script).
 */
static int down_region(struct migrations_request *req, const struct migrate_region_status *rs,
                       size_t *idx)
{
    struct migrate_plan_error perr;
    size_t n;
    int found = 0;
    if (!rs->reached) {
        admin_error_set(&req->wait->err, "08001", rs->error, NULL,
                        "could not read the migration history of region \"%s\"", rs->region->name);
        return -1;
    }
    if (migrate_plan_region(&req->steps, &rs->history, rs->region->name, MIGRATE_TO_ALL, idx, &n,
                            &perr) != 0) {
        admin_error_set(&req->wait->err, perr.sqlstate, perr.detail, perr.hint, "%s", perr.message);
        return -1;
    }
    for (size_t i = 0; i < rs->history.count; i++) {
        const struct migrate_history_row *row = &rs->history.rows[i];
        if (row->version <= req->to || row->state != MIGRATE_APPLIED)
            continue;
        const char *why = migrate_down_refusal(migrate_step_find(&req->steps, row->version));
        if (why != NULL) {
            admin_error_set(&req->wait->err, "55000", why,
                            "MIGRATE DOWN runs only steps with a down script; nothing was run.",
                            "step %" PRId64 " (%s) cannot go down in region \"%s\"", row->version,
                            row->name, rs->region->name);
            return -1;
        }
        found = 1;
    }
    return found;
}

/* Every region checked first: one that would stop the run stops it before anything runs. */
static int start_down(struct migrations_request *req, const struct migrate_status *st)
{
    size_t *idx = calloc(req->steps.count > 0 ? req->steps.count : 1, sizeof(*idx));
    int any = 0;
    if (idx == NULL) {
        admin_error_set(&req->wait->err, "53200", NULL, NULL, "out of memory");
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
    struct migrate_run_what what = {MIGRATE_RUN_DOWN, req->to, false};
    if (migrate_run_start(req->base, st->cfg, &req->steps, req->alone, &what, req->run_by, up_done,
                          req->wait) != 0) {
        admin_error_set(&req->wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

/* ---- all ---- */

static void migrations_answer(struct migrate_status *st, void *arg)
{
    struct migrations_request *req = arg;
    int rc = CMD_DONE;
    if (req->kind == ADMIN_SHOW_MIGRATIONS)
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
    migrate_steps_free(&req->steps);
    free(req);
    if (rc != CMD_PENDING)
        console_command_done(wait, rc);
}

/* migrations_dir and migrations_db are set; false with the error when not. */
static bool migrations_configured(const struct config *cfg, struct admin_error *err)
{
    const char *missing = cfg->migrations_dir[0] == '\0'  ? "migrations_dir"
                          : cfg->migrations_db[0] == '\0' ? "migrations_db"
                                                          : NULL;
    if (missing == NULL)
        return true;
    char hint[160];
    snprintf(hint, sizeof(hint), "Set %s in pgnear's configuration, then RELOAD.", missing);
    admin_error_set(err, "55000", NULL, hint, "%s is not set: pgnear has no migrations", missing);
    return false;
}

/* The region named by IN REGION, or NULL for all; false with the error when there is none. */
static bool migrations_region(const struct config *cfg, const struct admin_cmd *cmd,
                              const struct region **out, struct admin_error *err)
{
    *out = NULL;
    if (!cmd->has_region)
        return true;
    *out = region_set_find(&cfg->regions, cmd->region);
    if (*out == NULL)
        admin_error_set(err, "42704", NULL, "SHOW REGIONS lists them.",
                        "region \"%s\" does not exist", cmd->region);
    return *out != NULL;
}

static int migrations_start(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait)
{
    struct config *cfg = s->w->cfg;
    const struct region *alone;
    if (!migrations_configured(cfg, &wait->err) || !migrations_region(cfg, cmd, &alone, &wait->err))
        return CMD_ERROR;
    struct migrations_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    char why[512];
    if (migrate_steps_load(cfg->migrations_dir, &req->steps, why, sizeof(why)) != 0) {
        admin_error_set(&wait->err, "F0000", NULL,
                        "Fix the step file; nothing was read from any region.",
                        "could not load the steps of migrations_dir: %s", why);
        migrate_steps_free(&req->steps);
        free(req);
        return CMD_ERROR;
    }
    req->wait = wait;
    req->kind = cmd->kind;
    req->to = cmd->has_version ? cmd->version : MIGRATE_TO_ALL;
    req->base = s->w->base;
    req->alone = alone;
    req->resolve_applied = cmd->resolve_applied;
    char host[64] = "?";
    gethostname(host, sizeof(host) - 1);
    snprintf(req->run_by, sizeof(req->run_by), "pgnear %s on %s pid %d, admin %.32s",
             PACKAGE_VERSION, host, (int)getpid(), s->user);
    if (migrate_status_start(s->w->base, cfg, alone, cfg->server_connect_timeout_ms,
                             migrations_answer, req) == NULL) {
        migrate_steps_free(&req->steps);
        free(req);
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

int migrations_show_command(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait)
{
    return migrations_start(s, cmd, wait);
}

int migrations_plan_command(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait)
{
    return migrations_start(s, cmd, wait);
}

int migrations_next_command(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait)
{
    log_info(s->id, "admin %s: MIGRATE NEXT%s%s", s->user, cmd->has_region ? " IN REGION " : "",
             cmd->has_region ? cmd->region : "");
    return migrations_start(s, cmd, wait);
}

int migrations_up_command(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    char to[32] = "";
    if (cmd->has_version)
        snprintf(to, sizeof(to), " TO %" PRId64, cmd->version);
    log_info(s->id, "admin %s: MIGRATE UP%s%s%s", s->user, to, cmd->has_region ? " IN REGION " : "",
             cmd->has_region ? cmd->region : "");
    return migrations_start(s, cmd, wait);
}

int migrations_settle_command(struct session *s, const struct admin_cmd *cmd,
                              struct console_wait *wait)
{
    log_info(s->id, "admin %s: MIGRATE %s %" PRId64 "%s%s%s", s->user,
             cmd->kind == ADMIN_MIGRATE_RESOLVE ? "RESOLVE" : "RETRY", cmd->version,
             cmd->kind != ADMIN_MIGRATE_RESOLVE ? ""
             : cmd->resolve_applied             ? " AS applied"
                                                : " AS failed",
             cmd->has_region ? " IN REGION " : "", cmd->has_region ? cmd->region : "");
    return migrations_start(s, cmd, wait);
}

int migrations_down_command(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait)
{
    log_info(s->id, "admin %s: MIGRATE DOWN TO %" PRId64 "%s%s", s->user, cmd->version,
             cmd->has_region ? " IN REGION " : "", cmd->has_region ? cmd->region : "");
    return migrations_start(s, cmd, wait);
}
