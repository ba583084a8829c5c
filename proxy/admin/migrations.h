/*
 * migrations.h — SHOW MIGRATIONS, MIGRATE PLAN, NEXT and UP (migrations.c):
 * the steps of migrations_dir against each region's history.
 */
#ifndef PGNEAR_PROXY_ADMIN_MIGRATIONS_H
#define PGNEAR_PROXY_ADMIN_MIGRATIONS_H

#include "proxy/admin/command_wait.h"

struct worker;

extern const struct admin_column migrations_show_cols[9];
extern const struct admin_column migrations_plan_cols[6];

/*
 * The worker's loop has ended with a migration still stopping (a shutdown
 * while it was aborted): what is left of it is freed.
 */
void migrations_worker_end(struct worker *w);

int migrations_show_command(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait);
int migrations_plan_command(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait);

int migrations_next_command(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait);
int migrations_up_command(struct session *s, const struct admin_cmd *cmd,
                          struct console_wait *wait);
int migrations_down_command(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait);
/* MIGRATE RESOLVE and MIGRATE RETRY. */
int migrations_settle_command(struct session *s, const struct admin_cmd *cmd,
                              struct console_wait *wait);
/* MIGRATE ABORT: stops the migration running on this pgnear, whichever worker runs it. */
int migrations_abort_command(struct session *s, const struct admin_cmd *cmd,
                             struct console_wait *wait);

/*
 * Migrations' life on a worker: a run from this worker keeps its draining
 * loop up (sessions of other workers may be held by its pause step until
 * it ends), and is discarded when the worker is freed.
 */
extern const struct worker_part migrations_part;

#endif
