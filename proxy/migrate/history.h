/*
 * history.h — pgnear_schema_history, the record each region keeps of the
 * steps run on its migrations_db.
 *
 * Each region has a database of its own, so the table holds one row per
 * version: the key is the version.  The row says what the step was (name,
 * checksum of its normalised text), how far it got (state,
 * statements_done of statements_total), when, by which pgnear, and on a
 * failure the server's error and the number, from 1, of the statement
 * that failed.
 *
 * The states:
 *   running    a no-transaction step began and has not said how it ended
 *   applied    every statement ran (a transactional step commits this row
 *              with its SQL)
 *   failed     a statement failed; error and error_statement say which
 *   uncertain  a step found running after pgnear stopped: nobody knows
 *              how far it went until an admin says.  Only reported: a
 *              'running' row read while the region's migration lock is
 *              free (or by a run that holds it) is uncertain
 *   reverted   its down script ran
 *   reverting  its down script runs, or ran in part, without a transaction:
 *              statements_done of its statements_total are done (and
 *              error says why it stopped, if it did).  MIGRATE DOWN goes
 *              on from there; MIGRATE RESOLVE settles it as applied or
 *              reverted
 *
 * Here is only the text of the table, of its writes and of the region's
 * migration lock, and the reading of its rows; the queries are run by
 * others (status.c, the runner).
 */
#ifndef PGNEAR_PROXY_MIGRATE_HISTORY_H
#define PGNEAR_PROXY_MIGRATE_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "proxy/migrate/step_file.h"

#define MIGRATE_HISTORY_TABLE  "pgnear_schema_history"
#define MIGRATE_RUN_BY_MAX     127 /* run_by as kept in a row; longer is cut */
#define MIGRATE_HISTORY_ERRMAX 511 /* error as kept in a row; longer is cut */
/* The session-level advisory lock a run holds in a region, pg_try_advisory_lock(bigint). */
#define MIGRATE_LOCK_KEY "7236842019847731201"

/* A step's state in one region; PENDING is no row at all. */
enum migrate_state {
    MIGRATE_PENDING,
    MIGRATE_RUNNING,
    MIGRATE_APPLIED,
    MIGRATE_FAILED,
    MIGRATE_UNCERTAIN,
    MIGRATE_REVERTED,
    MIGRATE_REVERTING, /* a no-transaction down script ran in part: statements_done of it */
};

struct migrate_history_row {
    int64_t version;
    char name[MIGRATE_NAME_MAX + 1];
    char checksum[MIGRATE_CHECKSUM_HEX + 1];
    enum migrate_state state;
    int64_t statements_done, statements_total;
    int64_t started_at_us;  /* microseconds since the Unix epoch */
    int64_t finished_at_us; /* 0: not finished (NULL) */
    char run_by[MIGRATE_RUN_BY_MAX + 1];
    bool has_error;
    char error[MIGRATE_HISTORY_ERRMAX + 1];
    int64_t error_statement; /* 0: none (NULL) */
};

struct migrate_history {
    struct migrate_history_row *rows; /* by version, ascending */
    size_t count;
};

/* The table, created on first use (CREATE TABLE IF NOT EXISTS). */
extern const char migrate_history_create_sql[];

/*
 * Whether the table exists: one row, one boolean column.  Unqualified, as
 * the table is created: both follow the connection's search_path.
 */
extern const char migrate_history_exists_sql[];

/* Every row, by version; its result is what migrate_history_parse reads. */
extern const char migrate_history_select_sql[];

/*
 * The same rows, but a 'running' row reads 'uncertain' when nobody holds
 * the region's migration lock (taken and released at once to see): no run
 * is going on, so the pgnear that ran the step stopped in it.  While a run
 * holds the lock its row reads 'running'.  The table itself is not changed.
 */
extern const char migrate_history_select_live_sql[];

/*
 * The writes of a run, each with its parameters as text:
 *   upsert     a step's whole row: $1 version, $2 name, $3 checksum,
 *              $4 state, $5 statements_done, $6 statements_total,
 *              $7 run_by, $8 error ('' for none), $9 error_statement
 *              ('' for none); finished_at is set unless $4 is 'running'
 *   done       a no-transaction step's count: $1 version, $2 statements_done
 *   end        how it ended: $1 version, $2 state, $3 statements_done,
 *              $4 error, $5 error_statement
 *   revert     DOWN, a down script ran: $1 version, $2 run_by
 *   reverting  DOWN, a no-transaction down script begins or goes on:
 *              $1 version, $2 statements_done, $3 statements_total, $4 run_by
 *   resolve    RESOLVE, a row not settled ('running', 'uncertain', 'failed',
 *              'reverting'): $1 version, $2 state, $3 run_by (in its error)
 */
extern const char migrate_history_upsert_sql[];
extern const char migrate_history_done_sql[];
extern const char migrate_history_end_sql[];
extern const char migrate_history_revert_sql[];
extern const char migrate_history_reverting_sql[];
extern const char migrate_history_resolve_sql[];

/*
 * The region's migration lock, tried (pg_try_advisory_lock of
 * MIGRATE_LOCK_KEY), and who holds it when it is not free: one row, the
 * boolean and a description of the holder's session (NULL if none is seen).
 */
extern const char migrate_lock_try_sql[];

/* "applied"; "pending" for PENDING. */
const char *migrate_state_name(enum migrate_state state);

/*
 * MIGRATE DOWN TO target: a row 'reverting' above target is a down script
 * to go on with, so it counts as applied (for the plan's checks and the
 * steps to revert); the newest such row's version and statements_done
 * are returned (*version 0: none).
 */
void migrate_history_down_resumable(struct migrate_history *h, int64_t target, int64_t *version,
                                    int64_t *done);
/* A state as the table spells it; false for anything else ("pending" included). */
bool migrate_state_parse(const char *text, enum migrate_state *out);

/*
 * Reads the rows of migrate_history_select_sql's result: 0, or -1 with err
 * saying which row and column is wrong (a table pgnear did not make, or
 * one edited by hand past its checks).  *out is freed with
 * migrate_history_free either way.
 */
int migrate_history_parse(const PGresult *res, struct migrate_history *out, char *err,
                          size_t errcap);
void migrate_history_free(struct migrate_history *h);

/* The row of a version; NULL when the step never ran there. */
const struct migrate_history_row *migrate_history_find(const struct migrate_history *h,
                                                       int64_t version);

#endif
