/*
 * commands.c — what each admin command does: a table from each kind of
 * command to its struct admin_command (command_def.h: its columns, for
 * Describe before it runs, and its handler), and the commands that change
 * things: DISABLE and ENABLE, KILL, SHUTDOWN, RELOAD and SET, RECONNECT.
 * The grammar (grammar_table.c) knows the words and the help text; the other
 * commands are defined beside their code: the SHOW commands in show.c,
 * PAUSE and RESUME in pause.c, MOVE CLIENT(S) and DRAIN in move_cmd.c,
 * MOVE DATABASE and SHOW MOVES in dbmove_cmd.c, the migrations in
 * migrations.c.
 *
 * Handlers run on the admin session's worker.  What belongs to other
 * workers (their sessions, their counters) is gathered by snapshot.c or
 * asked for with worker_call; what only worker 0 may touch (a reload, the
 * health checks' records) is asked of worker 0 the same way.  Such a
 * handler returns CMD_PENDING and answers later, through wait->answer.
 */
#include "proxy/admin/commands.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "proxy/admin/dbmove_cmd.h"
#include "proxy/admin/migrations.h"
#include "proxy/admin/move_cmd.h"
#include "proxy/admin/pause.h"
#include "proxy/admin/show.h"
#include "proxy/admin/snapshot.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/pool/pool.h"
#include "proxy/runtime/reload.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/session.h"
#include "routing/region.h"
#include "routing/registry.h"

/* ---- RECONNECT ---- */

struct reconnect_request {
    char region[SNAPSHOT_NAME_MAX]; /* "": every region */
    int closed, marked;             /* added up by the workers (atomically) */
    bool pool_none;                 /* pool_mode = none: connections close with their clients */
    struct console_wait *wait;
};

/* On each worker: its kept connections of the region closed, the others marked. */
static int reconnect_on_worker(struct worker *w, void *arg)
{
    struct reconnect_request *req = arg;
    int closed = 0, marked = 0;
    pool_reconnect(w, req->region[0] ? req->region : NULL, &closed, &marked);
    __atomic_add_fetch(&req->closed, closed, __ATOMIC_RELAXED);
    __atomic_add_fetch(&req->marked, marked, __ATOMIC_RELAXED);
    return 0;
}

/* Every worker has closed or marked its server connections: RECONNECT's NOTICE says how many. */
static void reconnect_answered(struct worker *from, const struct worker_reply *r)
{
    struct reconnect_request *req = r->arg;
    struct console_wait *wait = req->wait;
    (void)from;
    result_init(&wait->res, NULL, 0);
    if (req->pool_none)
        result_notice(
            &wait->res,
            "no pooling (pool_mode = none, or auth = passthrough): each server connection "
            "closes with its client; closed %d kept from before",
            req->closed);
    else
        result_notice(&wait->res,
                      "closed %d idle server connection%s; %d in use will be closed as their "
                      "clients leave",
                      req->closed, req->closed == 1 ? "" : "s", req->marked);
    result_set_tag(&wait->res, "RECONNECT");
    free(req);
    wait->answer(wait, CMD_DONE);
}

/*
 * RECONNECT [region]: no kept server connection outlives the command; the
 * ones in use are replaced after their client leaves (a changed password
 * or server takes effect without cutting anybody off).
 */
static int reconnect_servers(struct session *s, const struct admin_cmd *cmd,
                             struct console_wait *wait)
{
    if (cmd->has_region && region_set_find(&s->w->cfg->regions, cmd->region) == NULL) {
        pg_error_set(&wait->err, "42704", "region \"%s\" does not exist", cmd->region);
        pg_error_hint(&wait->err, "SHOW REGIONS lists them.");
        return CMD_ERROR;
    }
    struct reconnect_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    if (cmd->has_region)
        snprintf(req->region, sizeof(req->region), "%s", cmd->region);
    req->wait = wait;
    req->pool_none = !config_pooling(s->w->cfg);
    slog_info(s, "admin %s asked for RECONNECT%s%s", s->user, cmd->has_region ? " " : "",
              cmd->has_region ? cmd->region : "");
    if (worker_call_all(s->w, reconnect_on_worker, req, reconnect_answered, NULL) != 0) {
        free(req);
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

static const struct admin_command reconnect_command = {.run = reconnect_servers};

/* ---- DISABLE, ENABLE ---- */

/* The region of the current configuration by that name; NULL and the error set when none. */
static struct region *find_region(struct session *s, const char *name, struct pg_error *err)
{
    struct region_set *set = &s->w->cfg->regions;
    struct region *r = region_set_find(set, name);
    if (r != NULL)
        return r;
    char names[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < set->count && used < sizeof(names); i++)
        used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                                 set->items[i].name);
    char hint[600];
    snprintf(hint, sizeof(hint), "The regions are: %s.", names);
    pg_error_set(err, "42704", "region \"%s\" does not exist", name);
    pg_error_hint(err, "%s", hint);
    return NULL;
}

/*
 * DISABLE and ENABLE: the admin state is shared by every worker, so it is set
 * here, once; setting the state it has is a NOTICE, not an error.
 */
static int set_region_state(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait, enum region_admin_state state,
                            const char *tag)
{
    struct region *r = find_region(s, cmd->region, &wait->err);
    if (r == NULL)
        return CMD_ERROR;
    enum region_admin_state was = registry_admin_state(r->runtime);
    registry_set_admin_state(r->runtime, state);
    slog_info(s, "admin %s: %s region %s (was %s)", s->user, tag, r->name,
              snapshot_admin_state_name((int)was));
    result_init(&wait->res, NULL, 0);
    if (was == state)
        result_notice(&wait->res, "region \"%s\" was already %s", r->name,
                      snapshot_admin_state_name((int)state));
    result_set_tag(&wait->res, tag);
    return CMD_DONE;
}

/* DISABLE REGION: new sessions go elsewhere; those in it stay. */
static int disable_region(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    return set_region_state(s, cmd, wait, REGION_DISABLED, "DISABLE");
}

/* ENABLE REGION: the region takes new sessions again. */
static int enable_region(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    return set_region_state(s, cmd, wait, REGION_ENABLED, "ENABLE");
}

static const struct admin_command disable_command = {.run = disable_region};
static const struct admin_command enable_command = {.run = enable_region};

/* ---- KILL ---- */

struct kill_request {
    uint64_t id;
    char admin[SNAPSHOT_NAME_MAX];
    struct console_wait *wait;
};

/* On the worker that owns the client: 1 when it was there. */
static int kill_on_worker(struct worker *w, void *arg)
{
    struct kill_request *req = arg;
    struct session *s = session_find(w, req->id);
    if (s == NULL || s->phase == PHASE_CLOSING)
        return 0;
    slog_info(s, "killed by admin %s", req->admin);
    struct pg_error err;
    pg_error_set(&err, "57P01", "terminating connection due to administrator command");
    pg_error_detail(&err, "The pgnear admin console ran KILL for this client.");
    session_fail(s, &err);
    return 1;
}

/* The owning worker's answer: the client closed, or no client of that id (42704). */
static void kill_answered(struct worker *from, const struct worker_reply *r)
{
    struct kill_request *req = r->arg;
    struct console_wait *wait = req->wait;
    int rc = CMD_DONE;
    if (r->ran == 1 && r->result == 1) {
        result_init(&wait->res, NULL, 0);
        result_set_tag(&wait->res, "KILL");
    } else {
        pg_error_set(&wait->err, "42704", "no client with id %llu", (unsigned long long)req->id);
        pg_error_hint(&wait->err, "SHOW CLIENTS lists the clients and their ids.");
        rc = CMD_ERROR;
    }
    free(req);
    wait->answer(wait, rc);
}

/* KILL: asks only the worker that owns the id, found from the id itself; answers when it has. */
static int kill_client(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct shared *sh = s->w->shared;
    struct kill_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    req->id = cmd->client_id;
    req->wait = wait;
    snprintf(req->admin, sizeof(req->admin), "%.*s", SNAPSHOT_NAME_MAX - 1, s->user);
    /* Ids interleave the workers: the owner is known without asking all. */
    int owner = shared_client_worker(sh, cmd->client_id);
    if (worker_call(s->w, sh->workers[owner], kill_on_worker, req, kill_answered, NULL) != 0) {
        free(req);
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

static const struct admin_command kill_command = {.run = kill_client};

/* ---- SHUTDOWN ---- */

/* SHUTDOWN [WAIT]: signals pgnear itself, so an admin's shutdown and a signal's are one path. */
static int shutdown_proxy(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    bool wait_all = cmd->kind == ADMIN_SHUTDOWN_WAIT;
    slog_info(s, "admin %s asked for SHUTDOWN%s", s->user, wait_all ? " WAIT" : "");
    /* Exactly what SIGTERM (SIGUSR2) does, by the same path: worker 0 gets the signal. */
    if (kill(getpid(), wait_all ? SIGUSR2 : SIGTERM) != 0) {
        pg_error_set(&wait->err, "58000", "could not signal pgnear: %m");
        return CMD_ERROR;
    }
    result_init(&wait->res, NULL, 0);
    result_set_tag(&wait->res, "SHUTDOWN");
    return CMD_DONE;
}

/* SHUTDOWN and SHUTDOWN WAIT. */
static const struct admin_command shutdown_command = {.run = shutdown_proxy};

/* ---- RELOAD ---- */

/*
 * A reload runs on worker 0 and answers later: the request goes to worker
 * 0, waits there for the reload's outcome, and comes back to the admin's
 * worker with it.
 */
struct reload_request {
    struct worker *asker;
    struct console_wait *wait;
    const char *tag;                 /* RELOAD or SET */
    struct config_override override; /* SET's */
    bool ok;
    char error[1024];
    int nfixed;
    const char *fixed[16]; /* static names from the settings table */
};

/*
 * On the admin's worker: the reload's outcome as RELOAD's or SET's answer; a
 * refused SET names the setting.
 */
static int reload_deliver(struct worker *w, void *arg)
{
    struct reload_request *req = arg;
    struct console_wait *wait = req->wait;
    int rc = CMD_DONE;
    if (req->ok) {
        result_init(&wait->res, NULL, 0);
        for (int i = 0; i < req->nfixed; i++)
            result_notice(&wait->res,
                          "setting \"%s\" changed but takes effect only after a restart",
                          req->fixed[i]);
        result_set_tag(&wait->res, req->tag);
    } else if (strcmp(req->tag, "SET") == 0) {
        pg_error_set(&wait->err, "22023", "invalid value for parameter \"%s\": \"%s\"",
                     req->override.name, req->override.value);
        pg_error_detail(&wait->err, "%s", req->error);
        pg_error_hint(&wait->err, "The running configuration is unchanged.");
        rc = CMD_ERROR;
    } else {
        pg_error_set(&wait->err, "F0000", "could not reload the configuration");
        pg_error_detail(&wait->err, "%s", req->error);
        pg_error_hint(&wait->err,
                      "The running configuration is unchanged; pgnear's log has the details.");
        rc = CMD_ERROR;
    }
    free(req);
    wait->answer(wait, rc);
    return 0;
}

/* The admin's worker ended before the answer came back: nobody waits any more. */
static void reload_undelivered(struct worker *from, const struct worker_reply *r)
{
    if (r->ran == 0) {
        struct reload_request *req = r->arg;
        req->wait->abandon(req->wait);
        free(req);
    }
}

/*
 * On worker 0: the reload ended; its outcome is copied and sent to the admin's
 * worker, or the wait abandoned when it cannot be.
 */
static void reload_told(struct shared *sh, const struct reload_outcome *o, void *arg)
{
    struct reload_request *req = arg;
    req->ok = o->ok;
    snprintf(req->error, sizeof(req->error), "%s", o->error);
    req->nfixed = o->nfixed;
    memcpy(req->fixed, o->fixed, sizeof(req->fixed));
    if (worker_call(sh->workers[0], req->asker, reload_deliver, req, reload_undelivered, NULL) !=
        0) {
        req->wait->abandon(req->wait);
        free(req);
    }
}

/* Reloads run on worker 0 only (reload.h); SET reloads with one setting overridden. */
static int reload_on_worker0(struct worker *w, void *arg)
{
    struct reload_request *req = arg;
    int rc = strcmp(req->tag, "SET") == 0
                 ? reload_override_then(w->shared->reload, req->override.name, req->override.value,
                                        reload_told, req)
                 : reload_then(w->shared->reload, reload_told, req);
    if (rc != 0)
        reload_told(w->shared, &(struct reload_outcome){.error = "out of memory"}, req);
    return 0;
}

/* Runs on the admin's worker: worker 0 had ended, so the process is stopping. */
static void reload_unsent(struct worker *from, const struct worker_reply *r)
{
    if (r->ran != 0)
        return;
    struct reload_request *req = r->arg;
    snprintf(req->error, sizeof(req->error), "pgnear is shutting down");
    reload_deliver(from, req);
}

/* RELOAD, or SET (a reload with one more value on top of the file). */
static int reload_config(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct reload_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    req->asker = s->w;
    req->wait = wait;
    req->tag = cmd->kind == ADMIN_SET ? "SET" : "RELOAD";
    if (cmd->kind == ADMIN_SET) {
        snprintf(req->override.name, sizeof(req->override.name), "%s", cmd->setting);
        snprintf(req->override.value, sizeof(req->override.value), "%s", cmd->value);
        slog_info(s, "admin %s: SET %s = '%s'", s->user, cmd->setting, cmd->value);
    } else {
        slog_info(s, "admin %s asked for RELOAD", s->user);
    }
    if (worker_call(s->w, s->w->shared->workers[0], reload_on_worker0, req, reload_unsent, NULL) !=
        0) {
        free(req);
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

/* SET: known and reloadable settings only; then as RELOAD. */
static int set_setting(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    /* Session parameters some drivers SET as they connect (JDBC: extra_float_digits). */
    static const char *const session_params[] = {
        "application_name", "extra_float_digits", "client_encoding",   "datestyle",
        "timezone",         "search_path",        "statement_timeout", "intervalstyle",
    };
    for (size_t i = 0; i < sizeof(session_params) / sizeof(session_params[0]); i++)
        if (strcasecmp(cmd->setting, session_params[i]) == 0) {
            result_init(&wait->res, NULL, 0);
            result_notice(&wait->res,
                          "\"%s\" is a PostgreSQL session parameter: the admin console does not "
                          "use it, and changes nothing",
                          session_params[i]);
            result_set_tag(&wait->res, "SET");
            return CMD_DONE;
        }
    bool reloadable;
    if (!config_setting_known(cmd->setting, &reloadable)) {
        pg_error_set(&wait->err, "42704", "unrecognized configuration parameter \"%s\"",
                     cmd->setting);
        pg_error_hint(&wait->err, "SHOW CONFIG lists the settings.");
        return CMD_ERROR;
    }
    if (!reloadable) {
        pg_error_set(&wait->err, "55P02",
                     "parameter \"%s\" cannot be changed without restarting pgnear", cmd->setting);
        pg_error_hint(&wait->err, "Change it in the configuration file and restart pgnear.");
        return CMD_ERROR;
    }
    return reload_config(s, cmd, wait);
}

static const struct admin_command reload_command = {.run = reload_config};
static const struct admin_command set_command = {.run = set_setting};

/* ---- the table ---- */

/* Every kind of command the grammar knows, by its kind. */
static const struct admin_command *const commands[] = {
    [ADMIN_SHOW_HELP] = &show_help_command,
    [ADMIN_SHOW_VERSION] = &show_version_command,
    [ADMIN_SHOW_CONFIG] = &show_config_command,
    [ADMIN_SHOW_REGIONS] = &show_regions_command,
    [ADMIN_SHOW_CLIENTS] = &show_clients_command,
    [ADMIN_SHOW_SERVERS] = &show_servers_command,
    [ADMIN_SHOW_POOLS] = &show_pools_command,
    [ADMIN_SHOW_STATS] = &show_stats_command,
    [ADMIN_SHOW_LISTS] = &show_lists_command,
    [ADMIN_SHOW_ROUTE] = &show_route_command,
    [ADMIN_SHOW_PEERS] = &show_peers_command,
    [ADMIN_SHOW_USERS] = &show_users_command,
    [ADMIN_SHOW_DATABASES] = &show_databases_command,
    [ADMIN_SHOW_RTT] = &show_rtt_command,
    [ADMIN_SHOW_HOMES] = &show_homes_command,
    [ADMIN_RELOAD] = &reload_command,
    [ADMIN_SET] = &set_command,
    [ADMIN_RECONNECT] = &reconnect_command,
    [ADMIN_PAUSE] = &pause_command,
    [ADMIN_RESUME] = &resume_command,
    [ADMIN_DISABLE] = &disable_command,
    [ADMIN_ENABLE] = &enable_command,
    [ADMIN_DRAIN] = &drain_command,
    [ADMIN_KILL] = &kill_command,
    [ADMIN_SHUTDOWN] = &shutdown_command,
    [ADMIN_SHUTDOWN_WAIT] = &shutdown_command,
    [ADMIN_SHOW_MIGRATIONS] = &migrations_show_command,
    [ADMIN_MIGRATE_PLAN] = &migrations_plan_command,
    [ADMIN_MIGRATE_NEXT] = &migrations_next_command,
    [ADMIN_MIGRATE_UP] = &migrations_up_command,
    [ADMIN_MIGRATE_RESOLVE] = &migrations_settle_command,
    [ADMIN_MIGRATE_RETRY] = &migrations_settle_command,
    [ADMIN_MIGRATE_DOWN] = &migrations_down_command,
    [ADMIN_MIGRATE_ABORT] = &migrations_abort_command,
    [ADMIN_MOVE_CLIENT] = &move_clients_command,
    [ADMIN_MOVE_CLIENTS] = &move_clients_command,
    [ADMIN_MOVE_DATABASE] = &move_database_command,
    [ADMIN_SHOW_MOVES] = &show_moves_command,
    [ADMIN_MOVE_CITY] = &move_database_command,
};
/* A kind added after the last one must have its row; one in the middle is checked by the tests. */
_Static_assert(sizeof(commands) / sizeof(commands[0]) == ADMIN_CMD_KINDS,
               "a row of commands[] for every enum admin_cmd_kind");

const struct admin_command *command_find(enum admin_cmd_kind kind)
{
    return (unsigned)kind < ADMIN_CMD_KINDS ? commands[kind] : NULL;
}

/*
 * Parses an admin command once, for Parse or a Query: CMD_DONE, CMD_EMPTY
 * (blanks only) or CMD_ERROR with err set.
 */
int command_prepare(const char *text, size_t len, struct command_plan *plan, struct pg_error *err)
{
    int rc = admin_parse(text, len, &plan->cmd, err);
    if (rc == ADMIN_PARSE_EMPTY)
        return CMD_EMPTY;
    return rc == ADMIN_PARSE_OK ? CMD_DONE : CMD_ERROR;
}

void command_columns(const struct command_plan *plan, const struct admin_column **cols, int *ncols)
{
    const struct admin_command *def = command_find(plan->cmd.kind);
    *cols = def != NULL ? def->cols : NULL;
    *ncols = def != NULL ? def->ncols : 0;
    if (def != NULL && def->columns != NULL)
        def->columns(&plan->cmd, cols, ncols);
}

int command_run(struct session *s, const struct command_plan *plan, struct console_wait *wait)
{
    const struct admin_command *def = command_find(plan->cmd.kind);
    if (def == NULL) {
        char name[64];
        pg_error_set(&wait->err, "0A000", "%s is not available in this build of pgnear",
                     admin_command_name(plan->cmd.kind, name, sizeof(name)));
        pg_error_hint(&wait->err, "SHOW HELP lists what this build can do.");
        return CMD_ERROR;
    }
    if (def->render != NULL)
        return show_snapshot(s, def->snapshot, def->render, wait);
    return def->run(s, &plan->cmd, wait);
}
