/*
 * job.c — the engine of a database move's commands (job_engine.h): it runs
 * a kind's steps in turn, sends their queries over connections it keeps
 * per place, keeps the passwords those logins used, and ends the job.
 * The kinds, each an action's steps and cleanup, are the action files'
 * (job_start.c, job_cutover.c, ...); the engine names none of them.
 */
#include "proxy/dbmove/job_engine.h"
#include "proxy/dbmove/job_city_state.h"
#include "proxy/dbmove/job.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/pgconn.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/worker.h"
#include "routing/cities.h"
#include "routing/region.h"

#define DBMOVE_APPLICATION_NAME "pgnear database move"

void job_problem(struct dbmove_job *j, const char *sqlstate, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pg_error_setv(&j->problem, sqlstate, fmt, ap);
    va_end(ap);
    j->failed = true;
}

bool job_is_city(const struct dbmove_job *j)
{
    return j->req.city[0] != '\0';
}

bool job_row_is_ours(const struct dbmove_job *j, const struct dbmove_row *r)
{
    char mine[PLACEMENT_KEY_MAX + 1], theirs[PLACEMENT_KEY_MAX + 1];
    if (strcmp(r->database, j->req.database) != 0 || (r->city[0] == '\0') != !job_is_city(j))
        return false;
    if (!job_is_city(j) || strcmp(r->city, j->req.city) == 0)
        return true;
    return city_fold(r->city, theirs, sizeof(theirs)) &&
           city_fold(j->req.city, mine, sizeof(mine)) && strcmp(mine, theirs) == 0;
}

const char *job_command(const struct dbmove_job *j, char *buf, size_t cap)
{
    if (job_is_city(j))
        snprintf(buf, cap, "MOVE CITY '%s' OF DATABASE %s", j->req.city, j->req.database);
    else
        snprintf(buf, cap, "MOVE DATABASE %s", j->req.database);
    return buf;
}

const char *job_subject(const struct dbmove_job *j, char *buf, size_t cap)
{
    if (job_is_city(j))
        snprintf(buf, cap, "city '%s' of database \"%s\"", j->req.city, j->req.database);
    else
        snprintf(buf, cap, "database \"%s\"", j->req.database);
    return buf;
}

/* A step's progress: logged, and a NOTICE for the admin while one waits. */
void job_notice(struct dbmove_job *j, const char *fmt, ...)
{
    char prefix[JOB_COMMAND_MAX];
    job_command(j, prefix, sizeof(prefix));
    va_list ap;
    va_start(ap, fmt);
    log_progress(prefix, j->notice, j->arg, fmt, ap);
    va_end(ap);
}

const struct region_host *job_primary(struct dbmove_job *j, const struct region *r)
{
    const struct region_host *standby;
    const struct region_host *h = region_primary(r, &standby);
    if (h != NULL)
        return h;
    if (standby != NULL) {
        job_problem(j, "25006", "region \"%s\" has no writable primary", r->name);
        pg_error_detail(&j->problem, "Every host of the region that is up is a standby.");
        pg_error_hint(&j->problem, "Move the database when the region's primary is up.");
    } else {
        job_problem(j, "08001", "no host of region \"%s\" is up", r->name);
        pg_error_hint(&j->problem, "SHOW REGIONS shows the hosts' health.");
    }
    return NULL;
}

bool job_conninfo(struct dbmove_job *j, const struct region_host *h, const char *dbname, char *buf,
                  size_t cap)
{
    /*
     * The job writes where a cutover made the database refuse writes by
     * default; and its writes are flushed at commit whatever the server's
     * synchronous_commit: a WAL sender sends only flushed WAL, so the
     * cutover's token would otherwise wait for the WAL writer (up to
     * wal_writer_delay, twice) while the sessions are held.
     */
    if (pgconn_conninfo(j->cfg, h, dbname, DBMOVE_APPLICATION_NAME, buf, cap) &&
        pgasync_conninfo_add(buf, cap, "options",
                             "-c default_transaction_read_only=off -c synchronous_commit=on"))
        return true;
    job_problem(j, "53200", "the connection string to %s:%d is too long", h->name, h->port);
    return false;
}

/* The password kept for a conninfo of the job's: src_db's or dst_db's slot, or NULL. */
static char **password_slot(struct dbmove_job *j, const char *conninfo)
{
    if (strcmp(conninfo, j->src_db) == 0)
        return &j->src_password;
    if (strcmp(conninfo, j->dst_db) == 0)
        return &j->dst_password;
    return NULL;
}

/* Keeps the password a query to src_db or dst_db logged in with, for job_publisher_literal. */
static bool remember_password(struct dbmove_job *j, const struct pgasync *q)
{
    char **slot = password_slot(j, j->query_conninfo);
    const char *password = pgasync_password(q);
    if (slot == NULL || *slot != NULL || password == NULL)
        return true;
    *slot = strdup(password);
    return *slot != NULL;
}

/* A password never lingers in freed memory. */
static void forget(char **password)
{
    if (*password != NULL)
        explicit_bzero(*password, strlen(*password));
    free(*password);
    *password = NULL;
}

/* Both sides' passwords, at the end of the job. */
static void forget_passwords(struct dbmove_job *j)
{
    forget(&j->src_password);
    forget(&j->dst_password);
}

/* The end: tells the admin (unless gone), frees the job. */
static void job_finish(struct dbmove_job *j)
{
    if (j->done != NULL)
        j->done(j->arg, j->req.action, j->failed ? &j->problem : NULL, j->summary, j->rows,
                j->nrows, j->moves, j->nmoves);
    if (j->query != NULL)
        pgasync_abandon(j->query);
    if (j->lock != NULL)
        pgasync_abandon(j->lock); /* the server lets the lock go with the connection */
    for (size_t i = 0; i < JOB_KEPT_MAX; i++)
        if (j->kept[i].conn != NULL)
            pgasync_abandon(j->kept[i].conn);
    if (j->kind->free != NULL)
        j->kind->free(j);
    forget_passwords(j);
    if (j->kick != NULL)
        event_free(j->kick);
    free(j->rows);
    free(j->records);
    if (j->city != NULL)
        free(j->city->tables); /* a joining city's comparison (job_city_join.c) */
    free(j->city);
    config_unref(j->cfg);
    free(j);
}

void job_pass_over(struct dbmove_job *j)
{
    job_notice(j, "%s (%s)", j->problem.message, j->problem.detail);
    j->failed = false;
    j->on_failure = job_pass_over;
    job_next(j);
}

int job_end_first_problem(struct dbmove_job *j)
{
    j->on_failure = NULL;
    j->problem = j->first_problem;
    j->failed = true;
    return JOB_FAIL;
}

/* The kind's next sub-chain, where the one running has ended; false: none. */
static bool job_next_sub_chain(struct dbmove_job *j)
{
    if (j->failed || j->chain == NULL || *j->chain == NULL)
        return false;
    j->steps = *j->chain++;
    j->step = 0;
    return true;
}

void job_switch(struct dbmove_job *j, const struct job_step *steps)
{
    j->steps = steps;
    j->step = 0;
    j->chain = NULL;
}

/*
 * Runs the next wanted step, sub-chain after sub-chain; ends the job
 * after the last or a failure.
 */
void job_next(struct dbmove_job *j)
{
    do {
        while (!j->failed && j->steps[j->step].run != NULL) {
            const struct job_step *st = &j->steps[j->step++];
            if (st->wanted != NULL && !st->wanted(j))
                continue;
            if (st->notice != NULL)
                job_notice(j, "%s", st->notice);
            int rc = st->run(j);
            if (rc == JOB_WAIT)
                return;
        }
    } while (job_next_sub_chain(j));
    if (j->failed && j->on_failure != NULL) {
        void (*then)(struct dbmove_job *) = j->on_failure;
        j->on_failure = NULL;
        then(j); /* records the failure; calls job_next again, or waits */
        return;
    }
    job_finish(j);
}

/* job_next from the loop (job_next_soon): never from inside a query's callback. */
static void job_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job_next(arg);
}

/* A kept connection the server ended while it was idle. */
static void kept_closed(void *arg)
{
    struct job_kept *k = arg;
    pgasync_abandon(k->conn);
    k->conn = NULL;
}

/* The answered query's connection is kept for the next query to the same place. */
static void keep_connection(struct dbmove_job *j, struct pgasync *q)
{
    struct job_kept *free_slot = NULL;
    for (size_t i = 0; i < JOB_KEPT_MAX; i++) {
        struct job_kept *k = &j->kept[i];
        if (k->conn == NULL && (free_slot == NULL || strcmp(k->conninfo, j->query_conninfo) == 0))
            free_slot = k;
    }
    if (free_slot == NULL || !pgasync_keep(q, kept_closed, free_slot))
        return;
    free_slot->j = j;
    free_slot->conn = q;
    snprintf(free_slot->conninfo, sizeof(free_slot->conninfo), "%s", j->query_conninfo);
}

/* A kept connection to conninfo, taken out of the cache; NULL when none. */
static struct pgasync *take_kept(struct dbmove_job *j, const char *conninfo)
{
    for (size_t i = 0; i < JOB_KEPT_MAX; i++) {
        struct job_kept *k = &j->kept[i];
        if (k->conn != NULL && strcmp(k->conninfo, conninfo) == 0) {
            struct pgasync *q = k->conn;
            k->conn = NULL;
            return q;
        }
    }
    return NULL;
}

/* A query's answer: its taker reads it, then the chain goes on. */
static void job_answer(void *arg, const PGresult *res, const char *error, bool server_answered)
{
    struct dbmove_job *j = arg;
    (void)server_answered;
    const char *sqlstate = j->query ? pgasync_error_sqlstate(j->query) : NULL;
    job_take_fn take = j->take;
    j->take = NULL;
    struct pgasync *q = j->query;
    /* What it logged in with, whatever the answer (a tolerated error too). */
    if (q != NULL && !remember_password(j, q))
        job_problem(j, "53200", "out of memory");
    if (res != NULL) {
        take(j, res, NULL);
        if (j->query == q && q != j->lock) /* not taken by the taker (the move lock) */
            keep_connection(j, q);
    } else if (sqlstate != NULL && j->tolerated != NULL && strstr(j->tolerated, sqlstate)) {
        take(j, NULL, sqlstate);
    } else {
        char detail[600];
        snprintf(detail, sizeof(detail), "%s%s", error ? error : "",
                 j->query && pgasync_timed_out(j->query) ? " (no answer in time)" : "");
        job_problem(j, sqlstate ? sqlstate : "08001", "%s failed", j->query_what);
        pg_error_detail(&j->problem, "%s", detail);
        if (j->query_hint != NULL)
            pg_error_hint(&j->problem, "%s", j->query_hint);
    }
    j->query = NULL;
    /* From the loop, not from inside the callback: the next query may reuse this connection. */
    job_next_soon(j, 0);
}

void job_next_soon(struct dbmove_job *j, int delay_ms)
{
    struct timeval tv = {delay_ms / 1000, (delay_ms % 1000) * 1000};
    evtimer_add(j->kick, &tv);
}

int job_query(struct dbmove_job *j, const char *conninfo, const char *what, const char *sql,
              int nparams, const char *const *params, job_take_fn take, const char *tolerated)
{
    char error[256];
    j->take = take;
    j->tolerated = tolerated;
    snprintf(j->query_what, sizeof(j->query_what), "%s", what);
    snprintf(j->query_conninfo, sizeof(j->query_conninfo), "%s", conninfo);
    struct pgasync *kept = take_kept(j, conninfo);
    if (kept != NULL) {
        if (pgasync_requery(kept, sql, nparams, params, j->timeout_ms, job_answer, j) == 0) {
            j->query = kept;
            return JOB_WAIT;
        }
        pgasync_abandon(kept);
    }
    j->query = pgasync_query(j->base, conninfo, sql, nparams, params, j->timeout_ms, job_answer, j,
                             error, sizeof(error));
    if (j->query != NULL) {
        pgasync_set_notice(j->query, log_server_notice, (void *)"database move");
        return JOB_WAIT;
    }
    job_problem(j, "08001", "%s could not start", what);
    pg_error_detail(&j->problem, "%s", error);
    return JOB_FAIL;
}

int job_drop_slots(struct dbmove_job *j, const char *conninfo, const char *what, const char *a,
                   const char *b)
{
    const char *params[2] = {a, b != NULL ? b : a};
    return job_query(j, conninfo, what,
                     "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                     " WHERE slot_name IN ($1, $2) AND NOT active",
                     2, params, job_take_nothing, NULL);
}

int job_drop_publication(struct dbmove_job *j, const char *db, const char *what)
{
    return job_query(j, db, what, "DROP PUBLICATION IF EXISTS " DBMOVE_OBJECT_NAME, 0, NULL,
                     job_take_nothing, NULL);
}

int job_drop_marker(struct dbmove_job *j, const char *db, const char *what)
{
    return job_query(j, db, what, dbmove_marker_drop_sql, 0, NULL, job_take_nothing, NULL);
}

int job_take_nothing(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)j;
    (void)res;
    (void)sqlstate;
    return 0;
}

struct dbmove_job *job_begin(struct worker *home, struct config *cfg,
                             const struct dbmove_request *req, const struct job_kind *kind,
                             dbmove_notice_fn notice, dbmove_done_fn done, void *arg,
                             struct pg_error *problem)
{
    struct event_base *base = home->base;
    struct dbmove_job *j = calloc(1, sizeof(*j));
    /* MOVE CITY's own state, beside the job's (job_city_state.h) */
    struct job_city *city = req->city[0] != '\0' ? calloc(1, sizeof(*city)) : NULL;
    if (j == NULL || (req->city[0] != '\0' && city == NULL) ||
        (j->kick = evtimer_new(base, job_kick_cb, j)) == NULL) {
        free(city);
        free(j);
        pg_error_set(problem, "53200", "out of memory");
        return NULL;
    }
    j->city = city;
    j->home = home;
    j->base = base;
    j->cfg = config_ref(cfg);
    j->req = *req;
    j->notice = notice;
    j->done = done;
    j->arg = arg;
    j->timeout_ms = DBMOVE_QUERY_TIMEOUT_MS;
    struct timeval now;
    gettimeofday(&now, NULL);
    j->id = (int64_t)now.tv_sec * 1000000 + now.tv_usec;
    j->kind = kind;
    const struct job_step *const *chain =
        city != NULL && kind->city_chain != NULL ? kind->city_chain : kind->chain;
    j->steps = chain[0];
    j->chain = chain + 1;
    struct timeval at_once = {0, 0};
    evtimer_add(j->kick, &at_once);
    return j;
}

void dbmove_job_abandon(struct dbmove_job *job)
{
    job->notice = NULL;
    job->done = NULL;
}
