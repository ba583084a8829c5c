/*
 * job_engine.h — the engine of a database move's commands (job.c): the
 * job, a kind's table of steps and what a step's run returns, the run
 * loop, the queries a step sends and the problem it sets.  Each action's
 * file defines a kind over it; the steps several kinds share are in
 * job_steps.h, a cutover's parts in job_cut.h, MOVE CITY's in
 * job_city_steps.h.
 */
#ifndef PGNEAR_PROXY_DBMOVE_JOB_ENGINE_H
#define PGNEAR_PROXY_DBMOVE_JOB_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "proxy/dbmove/job_request.h"
#include "proxy/session/gate.h"
#include "routing/region.h"

struct event;
struct job_city;
struct job_schema_copy;
struct pgasync;

#define DBMOVE_QUERY_TIMEOUT_MS 30000
#define DBMOVE_CONNINFO_MAX     2048
#define JOB_KEPT_MAX            4 /* the source's and target's database and moves_db */

/* What a step's run returns. */
#define JOB_NEXT 0  /* done at once: the next step */
#define JOB_WAIT 1  /* a query (or the schema copy) is out; its answer goes on */
#define JOB_FAIL -1 /* the problem is set */

struct dbmove_job;
/*
 * Reads a query's answer: res, or NULL with the SQLSTATE of an error the
 * query tolerates.  May set the problem (job_problem) to stop the chain.
 */
typedef int (*job_take_fn)(struct dbmove_job *j, const PGresult *res, const char *sqlstate);

struct job_step {
    const char *notice;                         /* a NOTICE as it starts; NULL none */
    bool (*wanted)(const struct dbmove_job *j); /* NULL: always */
    int (*run)(struct dbmove_job *j);           /* JOB_NEXT, JOB_WAIT or JOB_FAIL */
};

/*
 * What one command is: the steps it runs and what it frees at its end
 * beyond what the engine (job.c) frees.  Each action's file defines its
 * own; job_kinds.c picks one by the action.  A chain is a list of step
 * tables (sub-chains), each ending with a row whose run is NULL, run in
 * turn: a whole database's, and MOVE CITY's, spliced from the same
 * sub-chains and its own, where the request names a city.
 */
struct job_kind {
    const struct job_step *const *chain;      /* ends with NULL */
    const struct job_step *const *city_chain; /* NULL: chain */
    void (*free)(struct dbmove_job *j);       /* NULL: nothing of its own */
};

struct dbmove_job {
    struct worker *home; /* the admin's worker: the loop, the gate, the moves of sessions */
    struct event_base *base;
    struct config *cfg; /* a reference */
    struct dbmove_request req;
    dbmove_notice_fn notice;
    dbmove_done_fn done;
    void *arg;
    int64_t id; /* a new move's */
    int timeout_ms;
    const struct job_kind *kind;
    const struct job_step *steps; /* the sub-chain running, or a chain switched to (an undo) */
    size_t step;
    const struct job_step *const *chain; /* the kind's sub-chains still to run; NULL none */
    struct event *kick;
    /* the query out, and the connection string it went to */
    struct pgasync *query;
    char query_conninfo[DBMOVE_CONNINFO_MAX];
    /* connections kept idle between the job's queries, one per connection string */
    struct job_kept {
        struct dbmove_job *j;
        char conninfo[DBMOVE_CONNINFO_MAX];
        struct pgasync *conn; /* NULL: none */
    } kept[JOB_KEPT_MAX];
    struct pgasync *lock; /* kept, idle: holds the database's move lock until the end */
    job_take_fn take;
    const char *tolerated; /* SQLSTATEs the taker reads as an answer ("42P01 3D000") */
    char query_what[128];
    const char *query_hint;
    /* the end */
    bool failed;
    struct pg_error problem;
    struct pg_error first_problem;            /* kept while a failure is recorded */
    void (*on_failure)(struct dbmove_job *j); /* once: record the failure before the end */
    char summary[512];
    struct dbmove_status *rows; /* SHOW MOVES */
    size_t nrows;
    /* the regions and their primaries */
    const struct region *from, *to;
    const struct region_host *from_host, *to_host;
    struct region_subset home_regions; /* where it lives as the job began: from and its standbys' */
    char src_db[DBMOVE_CONNINFO_MAX], src_ctl[DBMOVE_CONNINFO_MAX];
    char settle_ctl[DBMOVE_CONNINFO_MAX]; /* SETTLE: the leaving side's, where the lock is */
    char dst_db[DBMOVE_CONNINFO_MAX], dst_ctl[DBMOVE_CONNINFO_MAX];
    /*
     * The passwords pgnear's logins to src_db and dst_db used (a passfile's,
     * PGPASSWORD's): a subscription to that side carries it, since its server
     * cannot read them (job_publisher.c).  NULL: none.
     */
    char *src_password, *dst_password;
    /* what the queries found */
    struct dbmove_source_facts src;
    struct dbmove_target_facts dst;
    struct job_secrets {                    /* job_secrets.c */
        char names[DBMOVE_ARRAY_MAX];       /* the source's login roles of the database, a text[] */
        char secrets[4 * DBMOVE_ARRAY_MAX]; /* their pg_authid.rolpassword, a text[] */
        char differ[DBMOVE_LIST_MAX];       /* those whose secret differs in the target */
        char fix[1024];                     /* the statements that give them the source's */
    } secrets;
    /* MOVE CITY's own (job_city_state.h): made by job_begin for a city, freed at the end; else NULL
     */
    struct job_city *city;
    struct dbmove_row *records; /* read from a region: the database's and cities' moves */
    size_t nrecords;
    bool records_old; /* the region's record has no city moves' table: read again without it */
    struct dbmove_row move; /* the move this command works on */
    bool has_move;
    bool target_has_db;  /* ABORT: the target holds the database (the move may have died first) */
    bool version_bumped; /* for version_state: both regions' rows get one version */
    enum dbmove_state version_state;
    struct job_schema_copy *copy; /* MOVE DATABASE's schema copy (job_schema.c); NULL before */
    /* SHOW MOVES: the region whose records are read next, the status filled next */
    size_t region_index, status_index;
    /* CUTOVER and REVERT (job_cutover.c) */
    struct cutover {
        const struct region *leaving, *arriving;
        const char *leave_db, *leave_ctl, *arrive_db, *arrive_ctl; /* src_* or dst_* */
        char feed[64]; /* the subscription on the arriving side, fed by the leaving side */
        char back[64]; /* the one the leaving side gets afterwards, and its slot */
        struct gate_scope scope;
        struct gate_close *gate; /* while closing */
        bool recorded, gate_closed, read_only_set, back_slot_made, committed, poll_again;
        bool pids_made, arriving_reset, local_set;
        bool reverse;          /* REVERT, or settling a 'reverting' record */
        bool trigger_set;      /* MOVE CITY: the leaving side refuses writes to the city's rows */
        bool found;            /* SETTLE: an interrupted cutover was found */
        bool copying;          /* SETTLE: a move said 'copying' */
        bool copy_lost;        /* ... and the target has no subscription for it */
        struct gate_pids pids; /* the held sessions' server processes, and the job's */
        char token[80];        /* the marker written on the leaving side */
        int64_t deadline_ms, held_at_ms, hold_ms;
        int64_t lag_bytes; /* at the start */
        char *sequences;   /* setval script for the arriving side */
    } cut;
    struct move_result *moves; /* the held sessions' moves */
    size_t nmoves;
};

/*
 * The kinds, each defined by its action's file; job_kinds.c picks one by
 * the action (the engine names none).
 */
extern const struct job_kind job_start_kind;
extern const struct job_kind job_abort_kind;
extern const struct job_kind job_cutover_kind; /* CUTOVER */
extern const struct job_kind job_revert_kind;  /* REVERT: a whole database's chain, a city's own */
extern const struct job_kind job_finish_kind;
extern const struct job_kind job_show_kind;
extern const struct job_kind job_settle_kind;

/*
 * A job of kind, started on home's loop (dbmove_job_start, job.h, with
 * the kind of req's action).  NULL with *problem filled: out of memory.
 */
struct dbmove_job *job_begin(struct worker *home, struct config *cfg,
                             const struct dbmove_request *req, const struct job_kind *kind,
                             dbmove_notice_fn notice, dbmove_done_fn done, void *arg,
                             struct pg_error *problem);

#define JOB_COMMAND_MAX (2 * DBMOVE_NAME_MAX + 48)
/* Whether the job moves one city's rows (MOVE CITY) rather than the whole database. */
bool job_is_city(const struct dbmove_job *j);
/* Whether a record's row is a move of what the job works on: its database, and its city folded. */
bool job_row_is_ours(const struct dbmove_job *j, const struct dbmove_row *r);
/* The command as the admin writes it, for messages: "MOVE CITY 'x' OF DATABASE db"; buf. */
const char *job_command(const struct dbmove_job *j, char *buf, size_t cap);
/* What moves, for messages: city 'x' of database "db", or database "db"; buf. */
const char *job_subject(const struct dbmove_job *j, char *buf, size_t cap);

/* The first host of r that is up and not a standby; NULL with the problem set. */
const struct region_host *job_primary(struct dbmove_job *j, const struct region *r);
bool job_conninfo(struct dbmove_job *j, const struct region_host *h, const char *dbname, char *buf,
                  size_t cap);

/* The job fails with this error; pg_error_detail and pg_error_hint on j->problem add the rest. */
void job_problem(struct dbmove_job *j, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void job_notice(struct dbmove_job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Starts sql on a connection of its own; take reads the answer.  what
 * names it in an error ("reading the source's facts").  JOB_WAIT, or
 * JOB_FAIL with the problem set.
 */
int job_query(struct dbmove_job *j, const char *conninfo, const char *what, const char *sql,
              int nparams, const char *const *params, job_take_fn take, const char *tolerated);
int job_take_nothing(struct dbmove_job *j, const PGresult *res, const char *sqlstate);
/* The move's objects dropped where they are, each safe to run again (b: a second slot, or NULL). */
int job_drop_slots(struct dbmove_job *j, const char *conninfo, const char *what, const char *a,
                   const char *b);
int job_drop_publication(struct dbmove_job *j, const char *db, const char *what);
int job_drop_marker(struct dbmove_job *j, const char *db, const char *what);
void job_next(struct dbmove_job *j);
/* Runs steps from the next job_next on, instead of what the kind's chain has left. */
void job_switch(struct dbmove_job *j, const struct job_step *steps);
/*
 * The clean-up after a failure (the record, an undo): each step that fails
 * there is told as a NOTICE and passed over (job_pass_over, set as
 * on_failure), and the last step ends the job with the problem that
 * started it, kept in first_problem (job_end_first_problem).
 */
void job_pass_over(struct dbmove_job *j);
int job_end_first_problem(struct dbmove_job *j);
/* job_next from the loop, delay_ms from now (a step that polls runs again: j->step-- first). */
void job_next_soon(struct dbmove_job *j, int delay_ms);

#endif
