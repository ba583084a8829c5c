/*
 * plan.c — the steps MIGRATE UP would run in one region (plan.h).
 */
#include "proxy/migrate/plan.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bsearch's order on the steps, sorted by version. */
static int step_version_cmp(const void *key, const void *elem)
{
    int64_t k = *(const int64_t *)key, v = ((const struct migrate_step *)elem)->version;
    return (k > v) - (k < v);
}

const struct migrate_step *migrate_step_find(const struct migrate_steps *steps, int64_t version)
{
    if (steps->count == 0)
        return NULL;
    return bsearch(&version, steps->steps, steps->count, sizeof(steps->steps[0]), step_version_cmp);
}

/* 0 when the row lets the region go on; -1 with err set when it stops it. */
static int plan_check_row(const struct migrate_steps *steps, const struct migrate_history_row *row,
                          const char *region, struct pg_error *err)
{
    char detail[512];
    if (row->state == MIGRATE_RUNNING || row->state == MIGRATE_FAILED ||
        row->state == MIGRATE_UNCERTAIN) {
        snprintf(detail, sizeof(detail), "%s%.400s",
                 row->has_error ? "Its error: " : "SHOW MIGRATIONS shows its row.",
                 row->has_error ? row->error : "");
        pg_error_set(err, "55000", "step %" PRId64 " (%s) is %s in region \"%s\"", row->version,
                     row->name, migrate_state_name(row->state), region);
        pg_error_detail(err, "%s", detail);
        pg_error_hint(err, "Nothing runs in a region until its history says how every step "
                           "ended; settle the step there first.");
        return -1;
    }
    if (row->state == MIGRATE_REVERTING) {
        pg_error_set(err, "55000", "step %" PRId64 " (%s) is half reverted in region \"%s\"",
                     row->version, row->name, region);
        pg_error_detail(err, "Its down script runs without a transaction and did not finish: "
                             "SHOW MIGRATIONS shows its row.");
        pg_error_hint(err, "MIGRATE DOWN goes on with the down script from its first statement "
                           "not done; MIGRATE RESOLVE settles it as applied or reverted.");
        return -1;
    }
    if (row->state == MIGRATE_REVERTED)
        return 0;
    const struct migrate_step *step = migrate_step_find(steps, row->version);
    if (step == NULL) {
        pg_error_set(err, "55000",
                     "step %" PRId64 " (%s) ran in region \"%s\" but has no step file",
                     row->version, row->name, region);
        pg_error_detail(err, "The history records it, but migrations_dir has no file for it.");
        pg_error_hint(err, "Put the step's file back in migrations_dir.");
        return -1;
    }
    if (strcmp(step->up.checksum, row->checksum) != 0) {
        snprintf(detail, sizeof(detail), "The history records checksum %s; the file %s has %s now.",
                 row->checksum, step->up.file, step->up.checksum);
        pg_error_set(err, "55000", "checksum mismatch for step %" PRId64 " (%s) in region \"%s\"",
                     row->version, row->name, region);
        pg_error_detail(err, "%s", detail);
        pg_error_hint(err, "A step that ran must not change: restore the file, and write the "
                           "change as a new step.");
        return -1;
    }
    return 0;
}

int migrate_plan_region(const struct migrate_steps *steps, const struct migrate_history *h,
                        const char *region, int64_t to, size_t *idx, size_t *n,
                        struct pg_error *err)
{
    *n = 0;
    for (size_t i = 0; i < h->count; i++)
        if (plan_check_row(steps, &h->rows[i], region, err) != 0)
            return -1;
    for (size_t i = 0; i < steps->count && steps->steps[i].version <= to; i++) {
        const struct migrate_history_row *row = migrate_history_find(h, steps->steps[i].version);
        if (row == NULL || row->state == MIGRATE_REVERTED)
            idx[(*n)++] = i;
    }
    return 0;
}
