/*
 * run.h — a migration run as its files share it; nothing outside
 * proxy/migrate/ includes it (runner.h is the run's interface).  They
 * call one way, down: the runner (runner.c: the run made and freed, its
 * event, the abort, each region's history) runs RESOLVE, RETRY and DOWN
 * (run_settle.c), the steps (run_step.c) and the upkeep (run_upkeep.c),
 * and all of them stand on run_query.c (the queries, the end, a region's
 * primary and lock).  What goes back up goes through what the runner
 * hands down: each query's handler (run_result_fn) and its event
 * (run_defer's actions, done by the runner).
 *
 * One query is out at a time, on the lock connection or the step
 * connection; its answer goes to the handler of the phase (on_result),
 * which reads what it needs from the result and names the next query.
 * The next query is sent from an event of its own (a kept pgasync may not
 * be given a new query from inside its done callback), at once or, while
 * the lock is polled, after MIGRATE_LOCK_POLL_MS.
 */
#ifndef PGNEAR_PROXY_MIGRATE_RUN_H
#define PGNEAR_PROXY_MIGRATE_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>

#include "protocol/pgasync.h"
#include "proxy/migrate/history.h"
#include "proxy/migrate/plan.h"
#include "proxy/migrate/run_what.h"
#include "proxy/migrate/step_file.h"
#include "proxy/session/gate.h"
#include "routing/region.h"

struct config;
struct worker;

enum { CONN_LOCK, CONN_STEP, NCONNS };

/*
 * What the next event does.  Closing connections and freeing the run
 * happen there too, never inside a pgasync callback (which still uses its
 * connection after the handler returns).
 */
enum run_action { ACT_SEND, ACT_REGION, ACT_UPKEEP, ACT_FINISH };

struct migrate_run;
typedef void (*run_result_fn)(struct migrate_run *run, const PGresult *res, const char *error);

struct run_conn {
    struct migrate_run *run;
    struct pgasync *q; /* NULL until connected, and once closed */
};

#define RUN_PARAMS       9
#define UPKEEP_FEEDS_MAX 8 /* the subscriptions a region refreshes */

/* The upkeep after the run (runner.h's struct migrate_upkeep; run_upkeep.c). */
enum upkeep_pass { UPKEEP_READ, UPKEEP_ORIGIN, UPKEEP_CITIES, UPKEEP_END };

struct run_upkeep {
    bool wanted, running;
    struct migrate_upkeep what;
    enum upkeep_pass pass;
    size_t ri;            /* the region, an index of migration_order_index */
    size_t k;             /* the region's query */
    char *present;        /* tables without the column every region of cities has, a line each */
    char *published;      /* what the origin's pgnear_reference holds after the upkeep */
    char *to_copy;        /* a region of cities: the tables its feed starts to follow */
    char *to_refuse;      /* ... and those that lack the refusal */
    char *sql;            /* a query built for the region */
    char column_lit[140]; /* the column, as a literal */
    char *list_lit;       /* a list of tables, as a literal */
    char origin[64];      /* the region where the database lives, as the origin pass found it */
    char note[1024];      /* the region's NOTICE, said once its work is done */
    char feeds[UPKEEP_FEEDS_MAX][64];
    size_t nfeeds;
    int64_t deadline_ms; /* a table's writers keep its lock (55P03): tried again till then */
};

struct migrate_run {
    struct worker *home;
    struct event_base *base;
    struct config *cfg;
    struct migrate_steps steps;
    struct region_subset only; /* the regions it runs in */
    struct migrate_run_what what;
    int64_t to;
    size_t settled; /* RESOLVE, RETRY: regions where the version was settled or run */
    int64_t resume; /* RETRY of a no-transaction step: its statements already done */
    /* DOWN: the step whose no-transaction down script stopped part way, and how far it went. */
    int64_t down_resume_version, down_resume;
    char run_by[MIGRATE_RUN_BY_MAX + 1];
    struct migrate_run_hooks hooks;
    struct migrate_run_outcome out;

    /* A pause step's gate: closing, then held while the step runs. */
    struct gate_close *closing;
    bool gate_held;
    struct gate_scope gate;
    int64_t hold_started_ms;

    /* MIGRATE ABORT (or Ctrl-C, or the admin's session ending). */
    bool aborting;
    bool cleaning;          /* a failure or an abort is being recorded: its queries still go */
    bool statement_out;     /* a statement of a step is running on the step connection */
    size_t statement;       /* which (from 1), for the progress NOTICEs */
    struct event *progress; /* every MIGRATE_PROGRESS_MS while a statement runs */
    char abort_who[128];
    char cancel_pid[16];

    size_t ri; /* the region, an index of migration_order_index */
    const struct region *region;
    char conninfo[2048];
    struct run_conn conns[NCONNS];
    struct event *next; /* does action: sends the query below, ... */
    enum run_action action;
    int conn; /* of the query to send */
    const char *sql;
    char sql_buf[128];
    int nparams;
    char params[RUN_PARAMS][MIGRATE_HISTORY_ERRMAX + 1];
    run_result_fn on_result;
    int64_t lock_deadline_ms;
    void (*after_lock)(struct migrate_run *run); /* the region's lock is taken */

    size_t *planned; /* indices into steps of the region's plan */
    size_t nplanned, next_planned;
    size_t k, nqueries; /* the step's queries: BEGIN, SETs, statements, history row, COMMIT */
    size_t nsets;
    int64_t step_started_ms;
    struct pg_error step_err; /* the failed statement's, while rolling back */
    size_t failed_statement;
    char server_msg[MIGRATE_HISTORY_ERRMAX + 1]; /* "message (SQLSTATE)", for the history */
    char *stmt_copy;                             /* the statement being sent, NUL-terminated */
    struct run_upkeep up;
};

/* ---- run_query.c: what the runner and its parts stand on (it calls none of them) ---- */

/* Both connections go; closing the lock's connection is what releases the advisory lock. */
void run_close_conns(struct migrate_run *run);

/* Does action from the loop (the runner's event), at once or after delay_ms. */
void run_defer(struct migrate_run *run, enum run_action action, int delay_ms);

/* The end, from the loop: the lock released, then done told, then the run freed. */
void run_finish(struct migrate_run *run);

/* The run ends with the error pg_error_set put in run->out.err. */
void run_fail(struct migrate_run *run);

/* The run ends with the abort's error: what happened in the region is detail. */
void run_aborted(struct migrate_run *run, const char *detail);

/* A line of progress for the admin (hooks.note), also logged. */
void run_note(struct migrate_run *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Queues sql (run->params[0..nparams)) on conn, for fn; sent after delay_ms from the loop. */
void run_send(struct migrate_run *run, int conn, const char *sql, int nparams, run_result_fn fn,
              int delay_ms);

/* Sends the query queued by run_send, now (the runner meets an abort before it). */
void run_send_now(struct migrate_run *run);

/* A kept connection's server went away while idle (pgasync_keep_open's callback). */
void run_conn_closed(void *arg);

/*
 * run->region's primary into run->conninfo: 1; 0 when the region follows
 * another (nothing runs there); -1 with the run failed.
 */
int run_open_region(struct migrate_run *run);

/* run->region's migration lock, polled; then fn (on CONN_STEP, under the lock). */
void run_lock_region(struct migrate_run *run, void (*fn)(struct migrate_run *run));

/* ---- run_step.c: the steps of a region ---- */

/* The region's next step, or the next region. */
void run_step(struct migrate_run *run);

/* The abort, met as the next query was about to go: the step stopped where it safely can. */
void run_stop_for_abort(struct migrate_run *run);

/* A statement that runs long says so every MIGRATE_PROGRESS_MS (run->progress's event). */
void run_progress(evutil_socket_t fd, short what, void *arg);

/* The gate of a pause step opens again, once the step has ended (or the run). */
void run_release_gate(struct migrate_run *run);

/* ---- run_settle.c: RESOLVE, RETRY, DOWN (over run_step.c) ---- */

/* RESOLVE, RETRY in a region, with the version's row there (NULL: none). */
void run_settle(struct migrate_run *run, const struct migrate_history_row *row);

/* DOWN in a region, with its history. */
void run_down(struct migrate_run *run, struct migrate_history *h);

/* ---- run_upkeep.c: a database homed by city kept in step after the run ---- */

/* After the last region: the upkeep when the run wants one, else the end. */
void run_upkeep_start(struct migrate_run *run);

/* The upkeep's next region (ACT_UPKEEP), or its end. */
void run_upkeep_next(struct migrate_run *run);

/* Frees what the upkeep holds. */
void run_upkeep_free(struct migrate_run *run);

#endif
