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
#include "proxy/migrate/step_file.h"
#include "routing/region.h"

struct config;
struct region;
struct worker;
struct migrate_run;

#define MIGRATE_LOCK_POLL_MS 100
#define MIGRATE_LOCK_WAIT_MS 10000
#define MIGRATE_PROGRESS_MS  10000 /* a NOTICE this often while a statement runs */

/* What a run did, and its error when it stopped. */
struct migrate_run_outcome {
    bool failed;
    struct pg_error err;     /* sqlstate, message, detail, hint */
    size_t applied;          /* steps applied (or reverted), in all regions */
    int64_t longest_hold_ms; /* the longest a pause step held its sessions */
};

/*
 * What a run does in each region, under its lock:
 *   UP       the steps of the region's plan up to version;
 *   RESOLVE  a row of version that is uncertain (or running: no run holds
 *            the lock), or failed in a no-transaction step, becomes
 *            applied or failed as the admin says, the error saying who
 *            and when;
 *   RETRY    the step of version, uncertain or failed there, runs again:
 *            a no-transaction step from its first statement not done
 *            (statements_done + 1, when its file is unchanged), a
 *            transactional one whole.
 *   DOWN     the applied steps above version, newest first, each by its
 *            down script in a transaction with its row set 'reverted';
 *            the regions in reverse migration order.
 *   UPKEEP   nothing in any region: the upkeep below alone (MIGRATE UP or
 *            NEXT with nothing to run).
 * RESOLVE and RETRY pass over the regions where the version is in no such
 * state (a NOTICE says so) and fail with 55000 when there is none.
 */
enum migrate_run_mode {
    MIGRATE_RUN_UP,
    MIGRATE_RUN_RESOLVE,
    MIGRATE_RUN_RETRY,
    MIGRATE_RUN_DOWN,
    MIGRATE_RUN_UPKEEP
};

/*
 * A database homed by city whose cities live in other regions than its
 * own: once a run has ended well in every region, its steps may have made
 * or dropped tables that the regions must keep in step (run_upkeep.c):
 *   1. in each region of cities, the tables without the column are read;
 *   2. where the database lives (origin), those every region of cities
 *      has too are added to pgnear_reference (a table some region lacks
 *      would stop that region's feed: it waits for the steps to run
 *      there), and each homed table gets the city trigger where a city
 *      moved away (pgnear_move.refused exists);
 *   3. in each region of cities, the tables without the column get the
 *      refusal of the application's writes, those the feed starts to
 *      follow are emptied (as the replication's role), and each
 *      subscription following pgnear_reference is refreshed, copying them.
 * Each region under its migration lock, told with a NOTICE; a failure ends
 * the run with its error, the steps staying as they ran.
 */
struct migrate_upkeep {
    char column[64];             /* [database] home_by of migrations_db */
    struct region_subset origin; /* where the database lives */
    struct region_subset cities; /* where its cities live besides */
};

struct migrate_run_what {
    enum migrate_run_mode mode;
    int64_t version;        /* UP: up to it; else the step's */
    const char *resolve_as; /* RESOLVE: "applied", "failed" or "reverted" (a static string) */
    bool force;             /* pause steps end the sessions that keep the gate open */
    const struct migrate_upkeep *upkeep; /* NULL: none (copied by migrate_run_start) */
};

/* Where a run reports, on its worker's loop. */
struct migrate_run_hooks {
    /* A line of progress, as it happens (also logged). */
    void (*note)(void *arg, const char *text);
    /* Once, at the end; the run frees itself after it. */
    void (*done)(void *arg, const struct migrate_run_outcome *out);
    void *arg;
};

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

/* Why MIGRATE DOWN cannot run step's down script (NULL: it can); step may be NULL. */
const char *migrate_down_refusal(const struct migrate_step *step);

#endif
