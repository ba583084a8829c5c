/*
 * dbmove_cmd.c — MOVE DATABASE, MOVE CITY and SHOW MOVES on the console
 * (dbmove_cmd.h).
 */
#include "proxy/admin/dbmove_cmd.h"

#include "proxy/admin/move_cmd.h"

#include <stdio.h>
#include <string.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/dbmove/job.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"

static const struct admin_column show_moves_cols[] = {
    {"database", ADMIN_TEXT, 0},
    {"city", ADMIN_TEXT, 0},
    {"from_region", ADMIN_TEXT, 0},
    {"to_region", ADMIN_TEXT, 0},
    {"state", ADMIN_TEXT, 0},
    {"tables_copied", ADMIN_INT8, 0},
    {"tables_total", ADMIN_INT8, 0},
    {"bytes", ADMIN_INT8, 0},
    {"lag_bytes", ADMIN_INT8, 0},
    {"lag_seconds", ADMIN_NUMERIC, 3},
    {"started_at", ADMIN_TIMESTAMPTZ, 0},
    {"started_by", ADMIN_TEXT, 0},
    {"last_error", ADMIN_TEXT, 0},
};

/* The columns of a MOVE DATABASE command: CUTOVER's and REVERT's rows, else none. */
static void move_database_columns(const struct admin_cmd *cmd, const struct admin_column **cols,
                                  int *ncols)
{
    *cols = NULL;
    *ncols = 0;
    if (cmd->db_action == ADMIN_DB_CUTOVER || cmd->db_action == ADMIN_DB_REVERT)
        move_rows_columns(cols, ncols);
}

/* A job's progress as a NOTICE sent while MOVE DATABASE still runs. */
static void job_notice_cb(void *arg, const char *text)
{
    struct console_wait *wait = arg;
    wait->notice(wait, text);
}

/* The jobs say "not known" with a negative number; SHOW MOVES says it with NULL. */
static void int_or_null(struct admin_result *res, int64_t v)
{
    if (v < 0)
        result_null(res);
    else
        result_int(res, v);
}

/* SHOW MOVES: one row per database move on record, tagged with their count. */
static void show_moves_rows(struct admin_result *res, const struct dbmove_status *rows,
                            size_t nrows)
{
    result_init(res, ADMIN_COLS(show_moves_cols));
    for (size_t i = 0; i < nrows; i++) {
        const struct dbmove_status *st = &rows[i];
        result_text(res, st->row.database);
        if (st->row.city[0] != '\0')
            result_text(res, st->row.city);
        else
            result_null(res); /* a move of the whole database */
        result_text(res, st->row.from_region);
        result_text(res, st->row.to_region);
        result_text(res, st->state);
        int_or_null(res, st->tables_copied);
        int_or_null(res, st->tables_total);
        int_or_null(res, st->bytes);
        int_or_null(res, st->lag_bytes);
        if (st->lag_seconds < 0)
            result_null(res);
        else
            result_numeric(res, st->lag_seconds);
        result_time_us(res, st->row.started_at_us);
        result_text(res, st->row.started_by);
        if (st->row.last_error[0] != '\0')
            result_text(res, st->row.last_error);
        else
            result_null(res);
    }
    char tag[32];
    snprintf(tag, sizeof(tag), "SHOW %zu", nrows);
    result_set_tag(res, tag);
}

/*
 * A job's end: its error, or CUTOVER's and REVERT's held sessions as MOVE
 * CLIENTS shows them, or a NOTICE, or SHOW MOVES' rows.
 */
static void job_done_cb(void *arg, enum dbmove_action action, const struct pg_error *problem,
                        const char *summary, const struct dbmove_status *rows, size_t nrows,
                        const struct move_result *moves, size_t nmoves)
{
    struct console_wait *wait = arg;
    if (problem != NULL) {
        wait->err = *problem;
        wait->answer(wait, CMD_ERROR);
        return;
    }
    if (action == DBMOVE_CUTOVER || action == DBMOVE_REVERT) {
        /* CUTOVER, REVERT: a row per session held, as MOVE CLIENTS answers */
        move_rows_result(&wait->res, moves, nmoves);
        result_notice(&wait->res, "%s", summary);
        char tag[48]; /* "MOVE n", as MOVE CLIENTS: libpq reads n as the rows (PQcmdTuples) */
        snprintf(tag, sizeof(tag), "MOVE %zu", nmoves);
        result_set_tag(&wait->res, tag);
    } else if (wait->res.cols == NULL && rows == NULL) {
        result_init(&wait->res, NULL, 0);
        if (summary[0] != '\0')
            result_notice(&wait->res, "%s", summary);
        result_set_tag(&wait->res, "MOVE"); /* "MOVE " and no number: a libpq notice */
    } else {
        show_moves_rows(&wait->res, rows, nrows);
    }
    wait->answer(wait, CMD_DONE);
}

/*
 * A move's start, its CUTOVER and its REVERT wait for a migration of the
 * database running on this pgnear: logical replication carries no schema
 * change, so a step run while the move copies or streams would stop its
 * replication (and MIGRATE refuses while a move lives).  The job asks the
 * servers besides, for a migration of another pgnear (job_migrating.c).
 * False with the error set.
 */
static bool no_migration_running(struct worker *w, const struct admin_cmd *cmd,
                                 struct pg_error *err)
{
    struct shared *sh = w->shared;
    char run[sizeof(sh->migrating_what)], step[sizeof(sh->migrating_step)];
    if ((cmd->db_action != ADMIN_DB_MOVE && cmd->db_action != ADMIN_DB_CUTOVER &&
         cmd->db_action != ADMIN_DB_REVERT) ||
        __atomic_load_n(&sh->migrating, __ATOMIC_ACQUIRE) == 0 ||
        strcmp(w->cfg->migrations_db, cmd->database) != 0)
        return true;
    pthread_mutex_lock(&sh->migrating_lock);
    memcpy(run, sh->migrating_what, sizeof(run));
    memcpy(step, sh->migrating_step, sizeof(step));
    pthread_mutex_unlock(&sh->migrating_lock);
    if (step[0] == '\0')
        snprintf(step, sizeof(step), "no step has started yet");
    pg_error_set(err, "55006", "a migration of database \"%s\" is running", cmd->database);
    pg_error_detail(err,
                    "%s Now: %s. Logical replication carries no schema change: a step run "
                    "during the move would stop its replication.",
                    run, step);
    pg_error_hint(err, "Move it once the migration ends (SHOW MIGRATIONS shows where it stands), "
                       "or stop the migration with MIGRATE ABORT.");
    return false;
}

/* MOVE DATABASE, MOVE CITY and SHOW MOVES: a job of proxy/dbmove, answered when it ends. */
static int dbmove_run(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    static const enum dbmove_action actions[] = {
        [ADMIN_DB_MOVE] = DBMOVE_START,    [ADMIN_DB_CUTOVER] = DBMOVE_CUTOVER,
        [ADMIN_DB_REVERT] = DBMOVE_REVERT, [ADMIN_DB_FINISH] = DBMOVE_FINISH,
        [ADMIN_DB_ABORT] = DBMOVE_ABORT,
    };
    static const char *const words[] = {
        [DBMOVE_CUTOVER] = "CUTOVER",
        [DBMOVE_REVERT] = "REVERT",
        [DBMOVE_FINISH] = "FINISH",
        [DBMOVE_ABORT] = "ABORT",
    };
    struct dbmove_request req = {.action = cmd->kind == ADMIN_SHOW_MOVES ? DBMOVE_SHOW
                                                                         : actions[cmd->db_action]};
    struct pg_error problem;
    char what[DBMOVE_NAME_MAX * 2 + 32];
    snprintf(req.database, sizeof(req.database), "%s", cmd->database);
    snprintf(req.to_region, sizeof(req.to_region), "%s", cmd->to_region);
    snprintf(req.by, sizeof(req.by), "%s from %s", s->user, session_peer(s).text);
    if (cmd->kind == ADMIN_MOVE_CITY) {
        snprintf(req.city, sizeof(req.city), "%s", cmd->city);
        snprintf(what, sizeof(what), "CITY '%s' OF DATABASE %s", req.city, req.database);
    } else {
        snprintf(what, sizeof(what), "DATABASE %s", req.database);
    }
    if (cmd->kind != ADMIN_SHOW_MOVES && !no_migration_running(s->w, cmd, &wait->err))
        return CMD_ERROR;
    if (req.action == DBMOVE_START)
        slog_info(s, "admin %s: MOVE %s TO REGION %s", s->user, what, req.to_region);
    else if (req.action != DBMOVE_SHOW)
        slog_info(s, "admin %s: MOVE %s %s", s->user, what, words[req.action]);
    if (dbmove_job_start(s->w, s->w->cfg, &req, job_notice_cb, job_done_cb, wait, &problem) ==
        NULL) {
        wait->err = problem;
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

const struct admin_command move_database_command = {
    .run = dbmove_run,
    .columns = move_database_columns,
};

const struct admin_command show_moves_command = {
    .cols = show_moves_cols,
    .ncols = ADMIN_NCOLS(show_moves_cols),
    .run = dbmove_run,
};
