/*
 * migrations_report.c — the rows of SHOW MIGRATIONS and MIGRATE PLAN, once
 * every region's history is in (migrations.c): each step against each
 * region's history, the history's rows without a file, and the steps each
 * region would run.  Both only read: an unreachable region is a NOTICE
 * (SHOW) or the error (PLAN, as MIGRATE UP would stop there), a follower
 * region a NOTICE.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/admin/migrations_int.h"
#include "proxy/migrate/plan.h"
#include "proxy/migrate/status.h"

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
void migrations_render_show(struct migrations_request *req, const struct migrate_status *st)
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
int migrations_render_plan(struct migrations_request *req, const struct migrate_status *st)
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
