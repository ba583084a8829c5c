/*
 * job.c — the engine of a database move's commands: steps, queries, the
 * end (job.h).  The steps themselves are in job_start.c, job_abort.c and
 * job_show.c.
 */
#include "proxy/dbmove/job_int.h"

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
#include "routing/region.h"

void job_problem(struct dbmove_job *j, const char *sqlstate, const char *hint, const char *detail,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dbmove_problem_setv(&j->problem, sqlstate, hint, detail, fmt, ap);
    va_end(ap);
    j->failed = true;
}

void job_notice(struct dbmove_job *j, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_info(0, "MOVE DATABASE %s: %s", j->req.database, text);
    if (j->notice != NULL)
        j->notice(j->arg, text);
}

const struct region_host *job_primary(struct dbmove_job *j, const struct region *r)
{
    bool standby = false;
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct region_host *h = &r->hosts[i];
        if (host_is_up(h) && !host_is_standby(h))
            return h;
        standby = standby || host_is_up(h);
    }
    if (standby)
        job_problem(j, "25006", "Move the database when the region's primary is up.",
                    "Every host of the region that is up is a standby.",
                    "region \"%s\" has no writable primary", r->name);
    else
        job_problem(j, "08001", "SHOW REGIONS shows the hosts' health.", NULL,
                    "no host of region \"%s\" is up", r->name);
    return NULL;
}

bool job_conninfo(struct dbmove_job *j, const struct region_host *h, const char *dbname, char *buf,
                  size_t cap)
{
    if (pgconn_conninfo(j->cfg, h, dbname, DBMOVE_APPLICATION_NAME, buf, cap))
        return true;
    job_problem(j, "53200", NULL, NULL, "the connection string to %s:%d is too long", h->name,
                h->port);
    return false;
}

/* The end: tells the admin (unless gone), frees the job. */
static void job_finish(struct dbmove_job *j)
{
    if (j->done != NULL)
        j->done(j->arg, j->failed ? &j->problem : NULL, j->summary, j->rows, j->nrows);
    if (j->query != NULL)
        pgasync_abandon(j->query);
    if (j->lock != NULL)
        pgasync_abandon(j->lock); /* the server lets the lock go with the connection */
    job_free_extra(j);
    if (j->kick != NULL)
        event_free(j->kick);
    free(j->rows);
    free(j->records);
    config_unref(j->cfg);
    free(j);
}

/* Runs the next wanted step; ends the job after the last or a failure. */
void job_next(struct dbmove_job *j)
{
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
    if (j->failed && j->on_failure != NULL) {
        void (*then)(struct dbmove_job *) = j->on_failure;
        j->on_failure = NULL;
        then(j); /* records the failure; calls job_next again, or waits */
        return;
    }
    job_finish(j);
}

static void job_kick_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    job_next(arg);
}

/* A query's answer: its taker reads it, then the chain goes on. */
static void job_answer(void *arg, const PGresult *res, const char *error, bool server_answered)
{
    struct dbmove_job *j = arg;
    (void)server_answered;
    const char *sqlstate = j->query ? pgasync_error_sqlstate(j->query) : NULL;
    job_take_fn take = j->take;
    j->take = NULL;
    if (res != NULL) {
        take(j, res, NULL);
    } else if (sqlstate != NULL && j->tolerated != NULL && strstr(j->tolerated, sqlstate)) {
        take(j, NULL, sqlstate);
    } else {
        char detail[600];
        snprintf(detail, sizeof(detail), "%s%s", error ? error : "",
                 j->query && pgasync_timed_out(j->query) ? " (no answer in time)" : "");
        job_problem(j, sqlstate ? sqlstate : "08001", j->query_hint, detail, "%s failed",
                    j->query_what);
    }
    j->query = NULL;
    job_next(j);
}

int job_query(struct dbmove_job *j, const char *conninfo, const char *what, const char *sql,
              int nparams, const char *const *params, job_take_fn take, const char *tolerated)
{
    char error[256];
    j->take = take;
    j->tolerated = tolerated;
    snprintf(j->query_what, sizeof(j->query_what), "%s", what);
    j->query = pgasync_query(j->base, conninfo, sql, nparams, params, j->timeout_ms, job_answer, j,
                             error, sizeof(error));
    if (j->query != NULL)
        return JOB_WAIT;
    job_problem(j, "08001", NULL, error, "%s could not start", what);
    return JOB_FAIL;
}

int job_take_nothing(struct dbmove_job *j, const PGresult *res, const char *sqlstate)
{
    (void)j;
    (void)res;
    (void)sqlstate;
    return 0;
}

struct dbmove_job *dbmove_job_start(struct event_base *base, struct config *cfg,
                                    const struct dbmove_request *req, dbmove_notice_fn notice,
                                    dbmove_done_fn done, void *arg, struct dbmove_problem *problem)
{
    struct dbmove_job *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->kick = evtimer_new(base, job_kick_cb, j)) == NULL) {
        free(j);
        snprintf(problem->sqlstate, sizeof(problem->sqlstate), "53200");
        snprintf(problem->message, sizeof(problem->message), "out of memory");
        return NULL;
    }
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
    j->steps = req->action == DBMOVE_START   ? job_start_steps
               : req->action == DBMOVE_ABORT ? job_abort_steps
                                             : job_show_steps;
    struct timeval at_once = {0, 0};
    evtimer_add(j->kick, &at_once);
    return j;
}

void dbmove_job_abandon(struct dbmove_job *job)
{
    job->notice = NULL;
    job->done = NULL;
}
