/*
 * move_cmd.c — MOVE CLIENT, MOVE CLIENTS and DRAIN (move_cmd.h): the
 * commands' words and answers; the moves themselves are a batch on every
 * worker (session/move_batch.h).
 */
#include "proxy/admin/move_cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/move_batch.h"
#include "proxy/session/session.h"
#include "routing/region.h"
#include "routing/registry.h"

static const struct admin_column move_cols[] = {
    {"client_id", ADMIN_INT8, 0}, {"from_region", ADMIN_TEXT, 0}, {"to_region", ADMIN_TEXT, 0},
    {"result", ADMIN_TEXT, 0},    {"reason", ADMIN_TEXT, 0},      {"hold_ms", ADMIN_NUMERIC, 3},
};

struct move_answer {
    struct console_wait *wait;
    const char *tag;
    bool one; /* MOVE CLIENT: no row is an error */
    uint64_t client_id;
};

/* The columns MOVE CLIENT(S), DRAIN, and MOVE DATABASE CUTOVER and REVERT share. */
void move_rows_columns(const struct admin_column **cols, int *ncols)
{
    *cols = move_cols;
    *ncols = ADMIN_NCOLS(move_cols);
}

/*
 * One row per session the batch tried: where it went, or why it did not, and
 * how long it was held.
 */
void move_rows_result(struct admin_result *res, const struct move_result *rows, size_t nrows)
{
    result_init(res, ADMIN_COLS(move_cols));
    for (size_t i = 0; i < nrows; i++) {
        const struct move_result *r = &rows[i];
        result_int(res, (int64_t)r->client_id);
        result_text(res, r->from);
        if (r->to[0] != '\0')
            result_text(res, r->to);
        else
            result_null(res);
        result_text(res, r->moved ? "moved" : "not moved");
        if (r->moved)
            result_null(res);
        else
            result_text(res, r->reason);
        result_numeric(res, (double)r->hold_us / 1000.0);
    }
}

/*
 * The batch ended: its rows, tagged "MOVE n" as libpq counts rows; MOVE CLIENT
 * of an unknown id is an error (42704).
 */
static void batch_answer(const struct move_result *rows, size_t nrows, bool out_of_memory,
                         void *arg)
{
    struct move_answer *a = arg;
    struct console_wait *wait = a->wait;
    if (a->one && nrows == 0) {
        pg_error_set(&wait->err, "42704", "no client with id %llu",
                     (unsigned long long)a->client_id);
        pg_error_hint(&wait->err, "SHOW CLIENTS lists the clients and their ids.");
        wait->answer(wait, CMD_ERROR);
        free(a);
        return;
    }
    struct admin_result *res = &wait->res;
    move_rows_result(res, rows, nrows);
    if (out_of_memory)
        result_notice(res, "out of memory: some moves are missing from this answer");
    char tag[64];
    snprintf(tag, sizeof(tag), "%s %zu", a->tag, nrows);
    result_set_tag(res, tag);
    wait->answer(wait, CMD_DONE);
    free(a);
}

/* Starts the batch on every worker; CMD_PENDING, or CMD_ERROR with the error filled. */
static int batch_start(struct session *s, const struct move_batch_spec *spec, const char *tag,
                       struct console_wait *wait)
{
    struct move_answer *a = calloc(1, sizeof(*a));
    if (a != NULL) {
        *a = (struct move_answer){.wait = wait,
                                  .tag = tag,
                                  .one = spec->scope == MOVE_BATCH_ONE,
                                  .client_id = spec->client_id};
        if (move_batch_start(s->w, spec, batch_answer, a) == 0)
            return CMD_PENDING;
        free(a);
    }
    admin_error_oom(&wait->err);
    return CMD_ERROR;
}

/* A region the command names: its name as configured, into out; false with err set. */
static bool batch_region(struct session *s, const char *name, char *out, size_t cap,
                         struct pg_error *err)
{
    const struct region *r = region_set_find(&s->w->cfg->regions, name);
    if (r == NULL) {
        pg_error_set(err, "42704", "region \"%s\" does not exist", name);
        pg_error_hint(err, "SHOW REGIONS lists them.");
        return false;
    }
    snprintf(out, cap, "%s", r->name);
    return true;
}

/*
 * MOVE CLIENT, MOVE CLIENTS FROM and MOVE CLIENTS HOME: the regions checked,
 * the command logged, then one batch.
 */
static int move_clients_run(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait)
{
    struct move_batch_spec spec = {.client_id = cmd->client_id};
    spec.scope = cmd->kind == ADMIN_MOVE_CLIENT ? MOVE_BATCH_ONE
                 : cmd->move_home               ? MOVE_BATCH_HOME
                                                : MOVE_BATCH_FROM;
    if ((cmd->to_region[0] != '\0' &&
         !batch_region(s, cmd->to_region, spec.to, sizeof(spec.to), &wait->err)) ||
        (spec.scope == MOVE_BATCH_FROM &&
         !batch_region(s, cmd->region, spec.from, sizeof(spec.from), &wait->err)))
        return CMD_ERROR;
    if (spec.scope == MOVE_BATCH_ONE)
        slog_info(s, "admin %s: MOVE CLIENT %llu TO REGION %s", s->user,
                  (unsigned long long)spec.client_id, spec.to);
    else if (spec.scope == MOVE_BATCH_FROM)
        slog_info(s, "admin %s: MOVE CLIENTS FROM REGION %s%s%s", s->user, spec.from,
                  spec.to[0] ? " TO REGION " : "", spec.to);
    else
        slog_info(s, "admin %s: MOVE CLIENTS HOME", s->user);
    return batch_start(s, &spec, "MOVE", wait);
}

/* MOVE CLIENT and MOVE CLIENTS. */
const struct admin_command move_clients_command = {
    .cols = move_cols,
    .ncols = ADMIN_NCOLS(move_cols),
    .run = move_clients_run,
};

/*
 * DRAIN region: no new session goes there; every movable session of it
 * moves to its next region by its own route, and those that cannot are
 * ended at their next safe point with 57P01, as before moves existed.
 */
static int drain_run(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct move_batch_spec spec = {.scope = MOVE_BATCH_FROM, .end_the_rest = true};
    if (!batch_region(s, cmd->region, spec.from, sizeof(spec.from), &wait->err))
        return CMD_ERROR;
    slog_info(s, "admin %s: DRAIN %s", s->user, spec.from);
    registry_set_admin_state(region_set_find(&s->w->cfg->regions, spec.from)->runtime,
                             REGION_DRAINING);
    return batch_start(s, &spec, "DRAIN", wait);
}

const struct admin_command drain_command = {
    .cols = move_cols,
    .ncols = ADMIN_NCOLS(move_cols),
    .run = drain_run,
};
