/*
 * run_what.h — what a migration run is asked and what it reports: its
 * mode and version, the upkeep it may end with, the hooks it reports
 * through and its outcome, with the timings of its lock and its progress.
 * runner.h (the run's interface) and run.h (what the run's files share)
 * both include it, so that the files under the runner need nothing of
 * runner.h and the runner stays above them.
 */
#ifndef PGNEAR_PROXY_MIGRATE_RUN_WHAT_H
#define PGNEAR_PROXY_MIGRATE_RUN_WHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pg_error.h"
#include "proxy/migrate/step_file.h"
#include "routing/region.h"

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

/* Why MIGRATE DOWN cannot run step's down script (NULL: it can); step may be NULL. */
const char *migrate_down_refusal(const struct migrate_step *step);

#endif
