/*
 * migrations.h — SHOW MIGRATIONS, MIGRATE PLAN, NEXT, UP, DOWN, RESOLVE,
 * RETRY and ABORT (migrations.c): the steps of migrations_dir against
 * each region's history.
 */
#ifndef PGNEAR_PROXY_ADMIN_MIGRATIONS_H
#define PGNEAR_PROXY_ADMIN_MIGRATIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/admin/command_def.h"

struct worker;

/*
 * The worker's loop has ended with a migration still stopping (a shutdown
 * while it was aborted): what is left of it is freed.
 */
void migrations_worker_end(struct worker *w);

extern const struct admin_command migrations_show_command;
extern const struct admin_command migrations_plan_command;
extern const struct admin_command migrations_next_command;
extern const struct admin_command migrations_up_command;
extern const struct admin_command migrations_down_command;
/* MIGRATE RESOLVE and MIGRATE RETRY. */
extern const struct admin_command migrations_settle_command;
/* MIGRATE ABORT (migrate_abort.c): stops the migration running on this pgnear. */
extern const struct admin_command migrations_abort_command;

/*
 * On the worker that runs it, tells w's migration to stop (who: for the
 * log and the admin who started it); its id, or 0 when w runs none.
 */
uint64_t migrations_stop(struct worker *w, const char *who);
/* Whether the migration id still runs on w. */
bool migrations_running(const struct worker *w, uint64_t id);

/*
 * Migrations' life on a worker: a run from this worker keeps its draining
 * loop up (sessions of other workers may be held by its pause step until
 * it ends), and is discarded when the worker is freed.
 */
extern const struct worker_part migrations_part;

#endif
