/*
 * job_int.h — what the files of a database move's commands share: the
 * job, its steps, its queries (job.c) and the steps common to them.
 */
#ifndef PGNEAR_PROXY_DBMOVE_JOB_INT_H
#define PGNEAR_PROXY_DBMOVE_JOB_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "proxy/dbmove/job_request.h"
#include "proxy/migrate/city_sql.h"
#include "proxy/session/gate.h"
#include "routing/region.h"

struct event;
struct pgasync;

#define DBMOVE_APPLICATION_NAME "pgnear database move"
#define DBMOVE_QUERY_TIMEOUT_MS 30000
#define DBMOVE_SLOT_TIMEOUT_MS  300000 /* creating the slot waits for the source's transactions */
#define DBMOVE_CONNINFO_MAX     2048
#define JOB_KEPT_MAX            4          /* the source's and target's database and moves_db */
#define DBMOVE_CUTOVER_MAX_LAG  (16 << 20) /* bytes behind: more, and CUTOVER waits for less */
#define DBMOVE_REPLAY_POLL_MS   10
#define DBMOVE_CATCH_UP_MS      60000 /* the catch-up before the gate, at the least */

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
 * own; job_kinds.c picks one by the action.
 */
struct job_kind {
    const struct job_step *steps;       /* ends with a row whose run is NULL */
    void (*free)(struct dbmove_job *j); /* NULL: nothing of its own */
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
    const struct job_step *steps; /* the kind's, or a chain it switches to (an undo) */
    size_t step;
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
    /* MOVE CITY (job_city.c): what the source's tables are, for the checks */
    struct job_city {
        char column[DBMOVE_NAME_MAX + 1];       /* [database] home_by */
        int64_t homed;                          /* the tables that have it */
        int64_t rows;                           /* the city's rows in them */
        char no_identity[DBMOVE_LIST_MAX];      /* homed tables whose replica identity lacks it */
        char foreign_keys[2 * DBMOVE_LIST_MAX]; /* keys that would leave the city */
        char sequences[DBMOVE_LIST_MAX];        /* homed tables' columns drawn from sequences */
        char partitioned[DBMOVE_LIST_MAX];      /* partitioned tables, which it does not move */
        int64_t trigger_deadline_ms;            /* the triggers' tries end (job_city_triggers) */
        bool joining; /* other cities of the database live in the target (job_city_join.c) */
        bool feeds_references; /* the move's subscription takes the tables without the column too */
        bool feed_kept;        /* FINISH or ABORT keeps it as the region's feed of those */
        char *tables; /* the source's tables, a line each, compared with a joined target's */
    } city;
    struct dbmove_row *records; /* read from a region: the database's and cities' moves */
    size_t nrecords;
    bool records_old; /* the region's record has no city moves' table: read again without it */
    struct dbmove_row move; /* the move this command works on */
    bool has_move;
    bool target_has_db;  /* ABORT: the target holds the database (the move may have died first) */
    bool version_bumped; /* for version_state: both regions' rows get one version */
    enum dbmove_state version_state;
    /* the schema copy (job_schema.c) */
    pid_t dump_pid;
    int dump_out, dump_err;
    struct event *dump_poll;
    int dump_polls;
    char *schema;
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

extern const struct job_kind job_start_kind;
extern const struct job_kind job_abort_kind;
extern const struct job_kind job_cutover_kind; /* CUTOVER and REVERT */
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
/*
 * job_migrating.c: the database is migrations_db; the step that refuses
 * (55006) when a migration holds the migrations' lock on the source's, or
 * the target's, primary.
 */
bool job_moves_migrations_db(const struct dbmove_job *j);
int job_refuse_migrating_source(struct dbmove_job *j);
int job_refuse_migrating_target(struct dbmove_job *j);
/* Whether a record's row is a move of what the job works on: its database, and its city folded. */
bool job_row_is_ours(const struct dbmove_job *j, const struct dbmove_row *r);
/* The command as the admin writes it, for messages: "MOVE CITY 'x' OF DATABASE db"; buf. */
const char *job_command(const struct dbmove_job *j, char *buf, size_t cap);
/* What moves, for messages: city 'x' of database "db", or database "db"; buf. */
const char *job_subject(const struct dbmove_job *j, char *buf, size_t cap);

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

/* The first host of r that is up and not a standby; NULL with the problem set. */
const struct region_host *job_primary(struct dbmove_job *j, const struct region *r);
bool job_conninfo(struct dbmove_job *j, const struct region_host *h, const char *dbname, char *buf,
                  size_t cap);

/*
 * The check that the database's login roles hold the same SCRAM secret
 * in the target as in the source (job_secrets.c): wanted under auth =
 * scram; the source's roles and secrets, the target's differences, then
 * 55000 naming the roles that differ.
 */
bool job_secrets_wanted(const struct dbmove_job *j);
int job_source_secrets(struct dbmove_job *j);
int job_target_secrets(struct dbmove_job *j);
int job_judge_secrets(struct dbmove_job *j);

/* The region the database lives in (the source) and its primary's connection strings. */
int job_find_source(struct dbmove_job *j);
/* The target region's primary and its connection strings (j->to set). */
int job_target_conninfo(struct dbmove_job *j);
/*
 * Takes the database's move lock on the source's primary (a session-level
 * advisory lock in moves_db, DBMOVE_LOCK_KEY and the name's hash), held by
 * a connection kept idle until the job ends: two commands on the same
 * database, from two admins or two pgnear of a fleet, never run at once.
 * 55006 when another holds it.
 */
int job_take_lock(struct dbmove_job *j);
/* The same on another region's moves_db (ctl). */
int job_take_lock_at(struct dbmove_job *j, const char *ctl);
#define DBMOVE_LOCK_KEY "1885826669" /* 'pgnm' */

/* Reads the records of a region (ctl: its moves_db) into j->records. */
int job_read_records(struct dbmove_job *j, const char *ctl, const char *what);
/* Writes j->move, as it is now, to the record of a region. */
int job_write_record(struct dbmove_job *j, const char *ctl, const char *what);

/* The schema copy: pg_dump of the source, then the script on the target (job_schema.c). */
int job_copy_schema(struct dbmove_job *j);
/* What the schema copy holds at the end (MOVE DATABASE's kind). */
void job_schema_free(struct dbmove_job *j);
/* What a cutover holds at the end: its script, the moves, the pids (CUTOVER, REVERT, SETTLE). */
void job_cutover_free(struct dbmove_job *j);
/*
 * The live move of the database in j->records, which must be in state
 * wanted (else 55000 naming the command its state waits for; verb says
 * what was asked: "cut over"), with both regions' connection strings and
 * the cutover's sides (j->cut) set.
 */
int job_find_move_in(struct dbmove_job *j, enum dbmove_state wanted, const char *verb);

/*
 * A cutover's failure (job_cutover_undo.c): before the commit everything is
 * undone, after it the error is recorded; either answers the first problem.
 * job_cut_gate_opened: the gate's done, which measures the hold.
 */
void job_cut_failed(struct dbmove_job *j);
void job_cut_failed_late(struct dbmove_job *j);
void job_cut_gate_opened(void *arg);

/* The sides of j->move (j->cut, both regions' connection strings), reverse set. */
int job_cut_sides(struct dbmove_job *j);
/* ALTER DATABASE SET default_transaction_read_only = on, or RESET, on ctl. */
int job_set_read_only(struct dbmove_job *j, const char *ctl, bool on, const char *what);
/* After the commit: the feed dropped, the replication back started (made already: fine). */
int job_cut_drop_feed(struct dbmove_job *j);
int job_cut_back_subscription(struct dbmove_job *j);
/* The arriving side's slot for the way back, if no subscription uses it yet. */
int job_cut_drop_back_slot(struct dbmove_job *j);

/*
 * job_publisher.c: what a subscription connects to its publisher with.
 * job_publisher_literal makes, from src_db or dst_db, the CONNECTION
 * literal of a subscription: the conninfo pgnear uses, with the password
 * its own login there used (j->src_password, j->dst_password, kept by
 * job.c from each answer) when the conninfo lacks one.
 */
bool job_publisher_literal(const struct dbmove_job *j, const char *conninfo, char *buf, size_t cap);
/*
 * CREATE SUBSCRIPTION name, on sub_db, of publications (a list), over
 * conn (job_publisher_literal's) WITH (with); job_query's what and
 * tolerated.  The statement is wiped once sent: it may hold a password.
 */
int job_create_subscription(struct dbmove_job *j, const char *sub_db, const char *name,
                            const char *conn, const char *publications, const char *with,
                            const char *what, const char *tolerated);
/*
 * The checks that a server can connect as the subscription will: the
 * target's to the source (MOVE DATABASE), the leaving side's to the
 * arriving side for the replication back (CUTOVER, REVERT, before the gate).
 */
int job_check_publisher(struct dbmove_job *j);
int job_check_way_back(struct dbmove_job *j);

/*
 * job_city.c: MOVE CITY's own steps, in the chains of MOVE DATABASE's
 * commands (wanted where job_is_city).  job_city_homed: the database is
 * homed by a column and the city can be written into the move's SQL;
 * job_city_may_leave: the city lives where the database does, not in the
 * target (after job_find_source); the facts of the source's tables and
 * the refusals they give; the NOTICE of how many rows match; the
 * publication of the city's rows and of the tables without the column;
 * the summary; ABORT's delete of what was copied into a database the
 * move did not create.
 */
/* MOVE CITY's SQL: the user tables of a side with their home column (migrate/city_sql.h). */
#define JOB_TABLES_WITH_COLUMN(col) CITY_TABLES_WITH_COLUMN(col)

/*
 * The home column's and the city's literals, for a DO block's body, which
 * the city may not end (job_city_homed refuses "$pgnear$"); false, with
 * the problem set, when they do not fit cap.  The column is read from
 * the configuration (job_city_homed) by a command that has not yet.
 */
bool job_city_quote(struct dbmove_job *j, char *column, char *city, size_t cap);
bool job_city_homed(struct dbmove_job *j);
bool job_city_may_leave(struct dbmove_job *j);
int job_city_facts(struct dbmove_job *j);
int job_city_judge(struct dbmove_job *j);
int job_city_count_rows(struct dbmove_job *j);
int job_city_publication(struct dbmove_job *j);
int job_city_done(struct dbmove_job *j);
int job_city_delete_copy(struct dbmove_job *j);
/*
 * A city's CUTOVER (job_city.c), in job_cutover.c's chain: the city folded
 * (the gate's and the move batch's key; false with the problem set); the
 * arriving side's publication for the way back (the city's rows and the
 * marker); the leaving side's triggers (before the gate), its refusal of
 * the city's writes (after it), and the end of that refusal (undo); the commit of the city's home
 * on this pgnear; the feed narrowed after the commit to the tables without the column, which go on
 * following the database's region.
 */
bool job_city_key(struct dbmove_job *j, char *key, size_t cap);
int job_city_back_publication(struct dbmove_job *j);
int job_city_triggers(struct dbmove_job *j);
/* The arriving side's refusal of writes to the tables without the column (before the gate). */
int job_city_reference_triggers(struct dbmove_job *j);
int job_city_refuse_writes(struct dbmove_job *j);
int job_city_allow_writes(struct dbmove_job *j);
int job_city_allow_arriving(struct dbmove_job *j);
void job_city_commit_home(struct dbmove_job *j);
int job_city_narrow_feed(struct dbmove_job *j);
/*
 * A city's REVERT (job_city_cutover.c), after its commit, the sessions
 * held: the way back dropped (the arriving side's subscription, the
 * leaving side's publication), the feed widened again to the city's rows
 * and the marker, the leaving side's subscription refreshed to them
 * (copying nothing); then the arriving side takes the city's writes.
 */
int job_city_drop_way_back(struct dbmove_job *j);
int job_city_drop_leaving_publication(struct dbmove_job *j);
int job_city_widen_feed(struct dbmove_job *j);
int job_city_refresh_feed(struct dbmove_job *j);
/*
 * A city's FINISH (job_city_cutover.c), in job_finish.c's chain: the feed
 * of the tables without the column dropped (the target's subscription),
 * the city's rows deleted on the source a batch a transaction (a function
 * made for it, then called until a call finds nothing left; j->city.rows
 * counts them), the marker dropped there and on the target; the city's
 * triggers and its refusal stay on the source, the target's refusal of
 * writes to the tables without the column there.
 */
int job_city_delete_function(struct dbmove_job *j);
int job_city_delete_batch(struct dbmove_job *j);
int job_city_finish_source(struct dbmove_job *j);
int job_city_finish_target(struct dbmove_job *j);
/*
 * job_city_join.c: a city moving into a region where others live, and the
 * region's feed of the tables without the column (the publication
 * JOB_REFERENCE_PUBLICATION).  START: job_city_joining (from the records
 * read last; sets dst.holds_cities), the tables compared (source's, then
 * target's: 55000 naming the first that differs), whether the region's
 * feed exists, the target's copies emptied where it does not
 * (job_city_refeeds), the marker made there; job_city_publications, what
 * the move's subscription takes.  FINISH and ABORT: job_city_read_feed
 * decides whether the subscription stays as the region's feed
 * (job_city_end_feed keeps or drops it; job_city_feed_dropped, whether its
 * slot may go); ABORT drops the reference publication where no city lives
 * away from the database's region (job_city_no_homes).
 */
#define JOB_REFERENCE_PUBLICATION CITY_REFERENCE_PUBLICATION
int job_city_joining(struct dbmove_job *j);
/* MOVE DATABASE refuses (0A000) while cities of the database live away from it (source's records).
 */
int job_refuse_cities_away(struct dbmove_job *j);
bool job_city_joins(const struct dbmove_job *j);
bool job_city_first(const struct dbmove_job *j);
bool job_city_no_homes(const struct dbmove_job *j);
bool job_city_refeeds(const struct dbmove_job *j);
bool job_city_feed_dropped(const struct dbmove_job *j);
int job_city_source_tables(struct dbmove_job *j);
int job_city_target_tables(struct dbmove_job *j);
int job_city_reference_feed(struct dbmove_job *j);
int job_city_empty_references(struct dbmove_job *j);
int job_city_target_marker(struct dbmove_job *j);
const char *job_city_publications(const struct dbmove_job *j);
int job_city_read_feed(struct dbmove_job *j);
int job_city_end_feed(struct dbmove_job *j);
int job_city_drop_references(struct dbmove_job *j);

/* job_fleet.c: whether peers take part in a cutover, their holds table, their word. */
bool job_in_fleet(const struct dbmove_job *j);
int job_cut_holds_table(struct dbmove_job *j);
int job_cut_wait_peers(struct dbmove_job *j);

#endif
