/*
 * show_users.c — SHOW USERS: per user and region, whether pgnear's SCRAM
 * key for the user fits that region's server, as the logins there told
 * (proxy/base/scram_fit.h); and per user its client sessions and server
 * connections now, with the limits they are held to (client_limits.h,
 * pool_limits.h).  A user whose key does not fit a region can neither log
 * in there nor follow a move there.  SHOW DATABASES: per database its
 * client sessions and max_db_client_connections.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/show.h"
#include "proxy/base/client_limits.h"
#include "proxy/base/config.h"
#include "proxy/base/scram_fit.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"

/* Client and server counts copied at most: a row each. */
#define SHOW_COUNTS_MAX 4096

static const struct admin_column show_users_cols[] = {
    {"user", ADMIN_TEXT, 0},
    {"region", ADMIN_TEXT, 0},
    {"secret_fits", ADMIN_BOOL, 0},
    {"logins", ADMIN_INT8, 0},
    {"last_login", ADMIN_TIMESTAMPTZ, 0},
    {"last_error", ADMIN_TEXT, 0},
    {"clients", ADMIN_INT8, 0},
    {"servers", ADMIN_INT8, 0},
    {"max_user_client_connections", ADMIN_INT8, 0},
    {"max_user_connections", ADMIN_INT8, 0}};

/* The user's counts and limits, the last columns of each of its rows. */
static void user_counts(struct session *s, struct admin_result *res, const char *user)
{
    struct shared *sh = s->w->shared;
    const struct config *cfg = s->w->cfg;
    result_int(res, client_limits_of(&sh->client_limits, true, user));
    result_int(res, pool_limits_user_servers(&sh->pool_limits, user));
    /* A [database] section's may differ for some of its sessions: the user's own, else global. */
    result_int(res, config_section_value(cfg, SECTION_MAX_USER_CLIENT_CONNECTIONS, user, ""));
    result_int(res, config_section_value(cfg, SECTION_MAX_USER_CONNECTIONS, user, ""));
}

static bool fits_have_user(const struct scram_fit *rows, size_t n, const char *user)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].user, user) == 0)
            return true;
    return false;
}

/* Users with sessions now and no SCRAM row (auth = passthrough, or none yet): one row each. */
static bool users_without_fits(struct session *s, struct admin_result *res,
                               const struct scram_fit *rows, size_t nrows)
{
    struct client_count *counts = calloc(SHOW_COUNTS_MAX, sizeof(*counts));
    if (counts == NULL)
        return false;
    size_t n = client_limits_copy(&s->w->shared->client_limits, counts, SHOW_COUNTS_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!counts[i].is_user || fits_have_user(rows, nrows, counts[i].name))
            continue;
        result_text(res, counts[i].name);
        for (int c = 0; c < 5; c++)
            result_null(res);
        user_counts(s, res, counts[i].name);
    }
    free(counts);
    return true;
}

/*
 * SHOW USERS: a copy of the shared fit table, taken under its lock
 * (scram_fits_copy), then rendered unlocked.
 */
static int show_users(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    (void)cmd;
    struct admin_result *res = &wait->res;
    struct scram_fit *rows = calloc(SCRAM_FIT_MAX, sizeof(*rows));
    if (rows == NULL) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    size_t n = scram_fits_copy(&s->w->shared->scram_fits, rows, SCRAM_FIT_MAX);
    result_init(res, ADMIN_COLS(show_users_cols));
    for (size_t i = 0; i < n; i++) {
        const struct scram_fit *f = &rows[i];
        result_text(res, f->user);
        result_text(res, f->region);
        result_bool(res, f->fits);
        result_int(res, (int64_t)f->logins);
        result_time(res, f->at);
        if (f->last_error[0] != '\0')
            result_text(res, f->last_error);
        else
            result_null(res);
        user_counts(s, res, f->user);
    }
    bool done = users_without_fits(s, res, rows, n);
    free(rows);
    if (!done) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    result_set_tag(res, "SHOW");
    return CMD_DONE;
}

const struct admin_command show_users_command = {
    .cols = show_users_cols,
    .ncols = ADMIN_NCOLS(show_users_cols),
    .run = show_users,
};

static const struct admin_column show_databases_cols[] = {
    {"database", ADMIN_TEXT, 0},
    {"clients", ADMIN_INT8, 0},
    {"max_db_client_connections", ADMIN_INT8, 0}};

/* A database with sessions now, or with a [database] section: its count and its limit. */
static void database_row(struct session *s, struct admin_result *res, const char *database,
                         int clients)
{
    result_text(res, database);
    result_int(res, clients);
    /* A [user] section's may differ for its sessions: the database's own, else global. */
    result_int(res,
               config_section_value(s->w->cfg, SECTION_MAX_DB_CLIENT_CONNECTIONS, "", database));
}

static int show_databases(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    (void)cmd;
    struct admin_result *res = &wait->res;
    struct client_count *counts = calloc(SHOW_COUNTS_MAX, sizeof(*counts));
    if (counts == NULL) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    size_t n = client_limits_copy(&s->w->shared->client_limits, counts, SHOW_COUNTS_MAX);
    result_init(res, ADMIN_COLS(show_databases_cols));
    for (size_t i = 0; i < n; i++)
        if (!counts[i].is_user)
            database_row(s, res, counts[i].name, counts[i].clients);
    const struct config *cfg = s->w->cfg;
    for (size_t r = 0; r < cfg->n_need_rules; r++) {
        const struct need_rule *rule = &cfg->need_rules[r];
        bool listed = false;
        for (size_t i = 0; i < n && !listed; i++)
            listed = !counts[i].is_user && strcmp(counts[i].name, rule->name) == 0;
        if (!rule->is_user && !listed)
            database_row(s, res, rule->name, 0);
    }
    free(counts);
    result_set_tag(res, "SHOW");
    return CMD_DONE;
}

const struct admin_command show_databases_command = {
    .cols = show_databases_cols,
    .ncols = ADMIN_NCOLS(show_databases_cols),
    .run = show_databases,
};
