/*
 * plan.h — what MIGRATE UP would run in a region, from the steps of
 * migrations_dir and the region's history; pure, so that it is tested
 * without a server and the runner decides exactly as MIGRATE PLAN shows.
 *
 * A step runs in a region when its version is at most the target and
 * the region has no row for it, or a row saying it was reverted.  Nothing
 * runs in a region whose history has a step that is running, failed or
 * uncertain, a step whose checksum differs from its file's (a changed
 * file whose version already ran), or a step with no file at all: UP
 * would refuse, and so does the plan, naming the region and the version.
 */
#ifndef PGNEAR_PROXY_MIGRATE_PLAN_H
#define PGNEAR_PROXY_MIGRATE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/pg_error.h"
#include "proxy/migrate/history.h"
#include "proxy/migrate/step_file.h"

#define MIGRATE_TO_ALL INT64_MAX

/*
 * The steps to run in region (its name, for messages) with history h, up
 * to version to: their indices into steps->steps, in order, in idx[0..*n)
 * (idx has room for steps->count).  0, or -1 with err filled in.
 */
int migrate_plan_region(const struct migrate_steps *steps, const struct migrate_history *h,
                        const char *region, int64_t to, size_t *idx, size_t *n,
                        struct pg_error *err);

/* The step of a version; NULL when migrations_dir has none. */
const struct migrate_step *migrate_step_find(const struct migrate_steps *steps, int64_t version);

#endif
