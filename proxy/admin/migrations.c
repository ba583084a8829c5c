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
 *
 * This file starts each command and sends the first reading on; the
 * request is migrations_request.c's, SHOW's and PLAN's rows are
 * migrations_report.c's, the runs migrations_run.c's (migrations_int.h).
 */
#include "proxy/admin/migrations.h"

#include <inttypes.h>
#include <stdio.h>

#include "proxy/admin/migrations_int.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/migrate/runner.h"
#include "proxy/migrate/status.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"

/* ---- the first reading ---- */

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
        migrations_render_show(req, st);
    else if (req->kind == ADMIN_MIGRATE_PLAN)
        rc = migrations_render_plan(req, st);
    else if (req->kind == ADMIN_MIGRATE_DOWN)
        rc = migrations_start_down(req, st);
    else if (req->kind == ADMIN_MIGRATE_RESOLVE || req->kind == ADMIN_MIGRATE_RETRY)
        rc = migrations_start_settle(req, st);
    else
        rc = migrations_start_run(req, st);
    struct console_wait *wait = req->wait;
    migrate_status_free(st);
    if (rc == CMD_PENDING)
        return;
    migrations_request_free(req);
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
    struct migrations_request *req = migrations_request_new(s, cmd, wait);
    if (req == NULL)
        return CMD_ERROR;
    if (!migrations_regions(s->w, cmd, req, &wait->err) ||
        !migrations_not_moving(s->w, cmd, wait)) {
        migrations_request_free(req);
        return CMD_ERROR;
    }
    if (migrate_status_start(s->w->base, cfg, request_only(req), cfg->server_connect_timeout_ms,
                             migrations_answer, req) == NULL) {
        migrations_request_free(req);
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
    slog_info(s, "admin %s: MIGRATE NEXT%s%s", s->user, cmd->has_region ? " IN REGION " : "",
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
    slog_info(s, "admin %s: MIGRATE UP%s%s%s", s->user, to, cmd->has_region ? " IN REGION " : "",
              cmd->has_region ? cmd->region : "");
    return migrations_start(s, cmd, wait);
}

const struct admin_command migrations_up_command = {.run = migrate_up_run};

/* MIGRATE RESOLVE and RETRY: logged with the version and the verdict asked for. */
static int migrate_settle_run(struct session *s, const struct admin_cmd *cmd,
                              struct console_wait *wait)
{
    slog_info(s, "admin %s: MIGRATE %s %" PRId64 "%s%s%s", s->user,
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
    slog_info(s, "admin %s: MIGRATE DOWN TO %" PRId64 "%s%s", s->user, cmd->version,
              cmd->has_region ? " IN REGION " : "", cmd->has_region ? cmd->region : "");
    return migrations_start(s, cmd, wait);
}

const struct admin_command migrations_down_command = {.run = migrate_down_run};

/* ---- MIGRATE ABORT (migrate_abort.c), the worker's part ---- */

uint64_t migrations_stop(struct worker *w, const char *who)
{
    struct migrations_request *req = w->migration;
    if (req == NULL)
        return 0;
    log_info(0, "migration %llu: %s", (unsigned long long)req->id, who);
    uint64_t id = req->id;
    migrations_request_abort(req, who);
    return id;
}

bool migrations_running(const struct worker *w, uint64_t id)
{
    return w->migration != NULL && w->migration->id == id;
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
    migrations_request_free(req);
    /* Its admin session has gone (else it would have been closed first): nobody to answer. */
    if (wait != NULL && wait->s == NULL)
        wait->answer(wait, CMD_ERROR);
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
