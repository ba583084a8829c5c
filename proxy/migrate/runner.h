/*
 * runner.h — running steps in each region, on the event
 * loop (MIGRATE NEXT and MIGRATE UP).
 *
 * Region by region in migration order, each fully before the next:
 *
 *   1. a connection of its own to the region's primary takes the
 *      session-level advisory lock MIGRATE_LOCK_KEY with
 *      pg_try_advisory_lock, polled every MIGRATE_LOCK_POLL_MS for up to
 *      MIGRATE_LOCK_WAIT_MS (never the blocking form: a step's connection
 *      never waits on the lock holder);
 *   2. a second connection creates the history table if needed and reads
 *      it again under the lock, so that two pgnear instances never run a
 *      step twice, and plans the region's steps up to the target;
 *   3. each step: BEGIN, its lock_timeout and statement_timeout as SET
 *      LOCAL, its statements one by one, its history row 'applied', COMMIT
 *      — the row commits with the SQL or not at all.  A statement that
 *      fails: ROLLBACK, a 'failed' row naming the statement, and the run
 *      stops there;
 *   4. both connections closed, which releases the lock.
 *
 * A no-transaction step runs without BEGIN: its row 'running' first, its
 * timeouts as plain SET, each statement followed by the row's count of
 * statements done, RESET ALL, its row 'applied'; a failed statement leaves
 * the row 'failed' with the count done.  Under the lock, a row still
 * 'running' was left by a pgnear that stopped: it is uncertain, and the
 * region's plan refuses it.
 *
 * A pause step first closes the gate (gate.h) of migrations_db in its
 * region: the sessions there finish their transaction and their next
 * request waits.  If the gate cannot close within migration_hold_timeout
 * the step is not started (55P03, naming the sessions still busy), unless
 * the run was asked with FORCE, which ends those sessions with 57P01.  The
 * gate opens again as the step ends, however it ends.
 *
 * migrate_run_abort stops a run: a statement running is canceled
 * (pg_cancel_backend on the idle lock connection, which never waits on
 * the step's), a transactional step is rolled back and leaves its history
 * as it was, a no-transaction one is recorded failed with the statements
 * it did, a gate closing or closed opens, and the run ends with 57014.
 */
#ifndef PGNEAR_PROXY_MIGRATE_RUNNER_H
#define PGNEAR_PROXY_MIGRATE_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/migrate/plan.h"
#include "proxy/migrate/run_what.h"
#include "proxy/migrate/step_file.h"
#include "routing/region.h"

struct config;
struct region;
struct worker;
struct migrate_run;

/*
 * Does what in each region of cfg in migration order that only holds
 * (NULL: every region), on home's loop.  Takes steps (the caller's copy is emptied).
 * NULL when out of memory (steps are freed).
 */
struct migrate_run *migrate_run_start(struct worker *home, struct config *cfg,
                                      struct migrate_steps *steps, const struct region_subset *only,
                                      const struct migrate_run_what *what, const char *run_by,
                                      const struct migrate_run_hooks *hooks);

/*
 * Stops run as soon as it safely can (see above); who says why, for the
 * error ("MIGRATE ABORT by admin x").  The end comes through done, later.
 */
void migrate_run_abort(struct migrate_run *run, const char *who);

/*
 * Frees a run whose loop has ended (pgnear exiting while it stopped):
 * its connections are abandoned, done is not called.
 */
void migrate_run_discard(struct migrate_run *run);

#endif
