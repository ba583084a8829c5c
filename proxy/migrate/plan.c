/*
 * plan.c — the steps MIGRATE UP would run in one region (plan.h).
 */
#include "proxy/migrate/plan.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int plan_refuse(struct migrate_plan_error *err, const char *detail, const char *hint,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int plan_refuse(struct migrate_plan_error *err, const char *detail, const char *hint,
                       const char *fmt, ...)
{
    va_list ap;
    memset(err, 0, sizeof(*err));
    memcpy(err->sqlstate, "55000", 6);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    snprintf(err->detail, sizeof(err->detail), "%s", detail);
    snprintf(err->hint, sizeof(err->hint), "%s", hint);
    return -1;
}

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
                          const char *region, struct migrate_plan_error *err)
{
    char detail[512];
    if (row->state == MIGRATE_RUNNING || row->state == MIGRATE_FAILED ||
        row->state == MIGRATE_UNCERTAIN) {
        snprintf(detail, sizeof(detail), "%s%.400s",
                 row->has_error ? "Its error: " : "SHOW MIGRATIONS shows its row.",
                 row->has_error ? row->error : "");
        return plan_refuse(err, detail,
                           "Nothing runs in a region until its history says how every step "
                           "ended; settle the step there first.",
                           "step %" PRId64 " (%s) is %s in region \"%s\"", row->version, row->name,
                           migrate_state_name(row->state), region);
    }
    if (row->state == MIGRATE_REVERTING)
        return plan_refuse(err,
                           "Its down script runs without a transaction and did not finish: "
                           "SHOW MIGRATIONS shows its row.",
                           "MIGRATE DOWN goes on with the down script from its first statement "
                           "not done; MIGRATE RESOLVE settles it as applied or reverted.",
                           "step %" PRId64 " (%s) is half reverted in region \"%s\"", row->version,
                           row->name, region);
    if (row->state == MIGRATE_REVERTED)
        return 0;
    const struct migrate_step *step = migrate_step_find(steps, row->version);
    if (step == NULL)
        return plan_refuse(err, "The history records it, but migrations_dir has no file for it.",
                           "Put the step's file back in migrations_dir.",
                           "step %" PRId64 " (%s) ran in region \"%s\" but has no step file",
                           row->version, row->name, region);
    if (strcmp(step->up.checksum, row->checksum) != 0) {
        snprintf(detail, sizeof(detail), "The history records checksum %s; the file %s has %s now.",
                 row->checksum, step->up.file, step->up.checksum);
        return plan_refuse(err, detail,
                           "A step that ran must not change: restore the file, and write the "
                           "change as a new step.",
                           "checksum mismatch for step %" PRId64 " (%s) in region \"%s\"",
                           row->version, row->name, region);
    }
    return 0;
}

int migrate_plan_region(const struct migrate_steps *steps, const struct migrate_history *h,
                        const char *region, int64_t to, size_t *idx, size_t *n,
                        struct migrate_plan_error *err)
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
