/*
 * migrations_request.c — a migrations command's request: made with the
 * steps of migrations_dir loaded, the regions it works in (where
 * migrations_db lives, its cities' regions, or the one region named) and,
 * for a command that runs steps, the pgnear's one migration claimed
 * (daemon->migrating names its worker, whose ->migration it is); aborted
 * by Ctrl-C, the admin's hanging up or MIGRATE ABORT; freed at its end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pgnear-build.h"

#include "proxy/admin/migrations_int.h"
#include "proxy/base/config.h"
#include "proxy/migrate/plan.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"

/* The request's end: the claim given back, the command's hooks unset, freed. */
void migrations_request_free(struct migrations_request *req)
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
bool migrations_regions(struct worker *w, const struct admin_cmd *cmd,
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
void migrations_request_abort(struct migrations_request *req, const char *who)
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
    migrations_request_abort(arg, "a cancel request (Ctrl-C)");
}

/* on_session_end: an admin who hangs up aborts the migration too. */
static void request_session_ended(void *arg)
{
    migrations_request_abort(arg, "the end of the admin's session");
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
struct migrations_request *migrations_request_new(struct session *s, const struct admin_cmd *cmd,
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
        migrations_request_free(req);
        return NULL;
    }
    if (runs_steps(cmd->kind) && !request_claim(req, s)) {
        migrations_request_free(req);
        return NULL;
    }
    return req;
}
