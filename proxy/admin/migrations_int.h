/*
 * migrations_int.h — what the parts of the migrations commands share, and
 * the rest of pgnear does not see: the request a command lives in while
 * every region's history is read and its run goes on, and the columns of
 * the two that answer rows.  migrations.c starts each command and sends
 * the first reading on; migrations_run.c checks the plans and hands the
 * steps to the runner; migrations_report.c renders SHOW MIGRATIONS and
 * MIGRATE PLAN; migrations_request.c makes the request (its steps, its
 * regions, the pgnear's one migration claimed) and ends it.  Each calls
 * only the parts named after it: nothing calls back up.
 */
#ifndef PGNEAR_PROXY_ADMIN_MIGRATIONS_INT_H
#define PGNEAR_PROXY_ADMIN_MIGRATIONS_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/admin/command_def.h"
#include "proxy/migrate/history.h"
#include "proxy/migrate/runner.h"
#include "proxy/migrate/step_file.h"
#include "routing/region.h"

struct migrate_status;
struct session;
struct worker;

/* SHOW MIGRATIONS' columns: its command (migrations.c) and its rows (migrations_report.c). */
static const struct admin_column migrations_show_cols[] = {{"version", ADMIN_INT8, 0},
                                                           {"name", ADMIN_TEXT, 0},
                                                           {"region", ADMIN_TEXT, 0},
                                                           {"state", ADMIN_TEXT, 0},
                                                           {"checksum_ok", ADMIN_BOOL, 0},
                                                           {"started_at", ADMIN_TIMESTAMPTZ, 0},
                                                           {"finished_at", ADMIN_TIMESTAMPTZ, 0},
                                                           {"run_by", ADMIN_TEXT, 0},
                                                           {"error", ADMIN_TEXT, 0}};

/* MIGRATE PLAN's, the same two ways. */
static const struct admin_column migrations_plan_cols[] = {
    {"region", ADMIN_TEXT, 0},      {"version", ADMIN_INT8, 0}, {"name", ADMIN_TEXT, 0},
    {"transaction", ADMIN_TEXT, 0}, {"pause", ADMIN_BOOL, 0},   {"statements", ADMIN_INT8, 0}};

/* One migrations command, from its first reading of the regions to its answer. */
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
static inline const struct region_subset *request_only(const struct migrations_request *req)
{
    return req->every ? NULL : &req->only;
}

/* Whether the command runs steps (and so must be this pgnear's only migration). */
static inline bool runs_steps(enum admin_cmd_kind kind)
{
    return kind != ADMIN_SHOW_MIGRATIONS && kind != ADMIN_MIGRATE_PLAN;
}

/* ---- migrations_request.c */

/* A request for cmd, its steps loaded; NULL with the error set. */
struct migrations_request *migrations_request_new(struct session *s, const struct admin_cmd *cmd,
                                                  struct console_wait *wait);
/* The request's end: the claim given back, the command's hooks unset, freed. */
void migrations_request_free(struct migrations_request *req);
/* Ctrl-C on the admin's session, the session's end, MIGRATE ABORT: the run stops. */
void migrations_request_abort(struct migrations_request *req, const char *who);
/*
 * The regions the command works in, set in req; false with the error when
 * it names a region migrations_db does not live in.
 */
bool migrations_regions(struct worker *w, const struct admin_cmd *cmd,
                        struct migrations_request *req, struct pg_error *err);

/* ---- migrations_report.c */

/* SHOW MIGRATIONS: one row per step and region, then the history's rows without a file. */
void migrations_render_show(struct migrations_request *req, const struct migrate_status *st);
/* MIGRATE PLAN: CMD_DONE with the rows, or CMD_ERROR for the first region where UP would stop. */
int migrations_render_plan(struct migrations_request *req, const struct migrate_status *st);

/* ---- migrations_run.c: CMD_PENDING while the runner runs, CMD_DONE or CMD_ERROR */

/* MIGRATE NEXT and UP: nothing to do, an error, or the run. */
int migrations_start_run(struct migrations_request *req, const struct migrate_status *st);
/* MIGRATE RESOLVE and RETRY. */
int migrations_start_settle(struct migrations_request *req, const struct migrate_status *st);
/* MIGRATE DOWN: every region checked before anything runs. */
int migrations_start_down(struct migrations_request *req, struct migrate_status *st);

#endif
