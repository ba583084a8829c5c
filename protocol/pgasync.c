/*
 * pgasync.c — libpq on the event loop (pgasync.h): a connection, one query
 * and its deadline; the connection may be kept idle for the next query.
 */
#include "protocol/pgasync.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

struct pgasync {
    struct event_base *base;
    PGconn *conn;
    struct event *ev;
    struct event *timer;
    char *sql;
    int nparams;
    char **params;
    bool sent;
    bool script; /* several statements, sent as one simple Query (PGASYNC_SCRIPT) */
    PGresult *last;
    pgasync_done_fn done;
    void *arg;
    bool in_callback;         /* pgasync_keep() is allowed only from the done callback */
    bool kept;                /* the owner keeps the connection after the callback */
    bool timed_out;           /* the query's timer ended it */
    bool on_kept;             /* the query runs on a connection logged in before it */
    pgasync_closed_fn closed; /* while idle: the server went away */
    void *closed_arg;
    pgasync_notify_fn notify; /* each NotificationResponse, whenever it comes; NULL: dropped */
    void *notify_arg;
    pgasync_notice_fn notice; /* each NoticeResponse's text; NULL: dropped */
    void *notice_arg;
};

/* libpq's notice processor: the owner's hook instead of libpq's default, stderr. */
static void pgasync_notice(void *arg, const char *message)
{
    struct pgasync *q = arg;
    if (q->notice != NULL)
        q->notice(q->notice_arg, message);
}

void pgasync_set_notice(struct pgasync *q, pgasync_notice_fn notice, void *arg)
{
    q->notice = notice;
    q->notice_arg = arg;
}

/* The notifications libpq has read, to the owner's hook in the order they came. */
static void pgasync_drain_notifies(struct pgasync *q)
{
    PGnotify *n;
    while (q->conn != NULL && (n = PQnotifies(q->conn)) != NULL) {
        if (q->notify != NULL)
            q->notify(q->notify_arg, n);
        PQfreemem(n);
    }
}

void pgasync_set_notify(struct pgasync *q, pgasync_notify_fn notify, void *arg)
{
    q->notify = notify;
    q->notify_arg = arg;
}

/* What one query owns; the connection and its timer outlive it when kept. */
static void pgasync_clear_query(struct pgasync *q)
{
    if (q->ev) {
        event_free(q->ev);
        q->ev = NULL;
    }
    if (q->last) {
        PQclear(q->last);
        q->last = NULL;
    }
    for (int i = 0; i < q->nparams; i++)
        free(q->params[i]);
    free(q->params);
    q->params = NULL;
    q->nparams = 0;
    free(q->sql);
    q->sql = NULL;
    q->sent = false;
    q->timed_out = false;
}

/* Frees the query, its timer and its connection (closing it). */
static void pgasync_free(struct pgasync *q)
{
    pgasync_clear_query(q);
    if (q->timer)
        event_free(q->timer);
    if (q->conn)
        PQfinish(q->conn);
    free(q);
}

static void pgasync_idle_cb(evutil_socket_t fd, short what, void *arg);

/* After a kept query: no timer, and a watch for the server closing the connection. */
static void pgasync_go_idle(struct pgasync *q)
{
    evtimer_del(q->timer);
    pgasync_clear_query(q);
    q->kept = false;
    q->done = NULL;
    q->arg = NULL;
    q->ev = event_new(q->base, PQsocket(q->conn), EV_READ | EV_PERSIST, pgasync_idle_cb, q);
    if (q->ev == NULL || event_add(q->ev, NULL) != 0)
        q->closed(q->closed_arg); /* the owner finds out now rather than never */
}

bool pgasync_connection_ok(const struct pgasync *q)
{
    return q->conn != NULL && PQstatus(q->conn) == CONNECTION_OK &&
           PQtransactionStatus(q->conn) == PQTRANS_IDLE;
}

/*
 * Tells done once, with the last result or the error on one line; answered says
 * the server got as far as asking for a password. Then the query is freed, or
 * kept idle if done asked for it.
 */
static void pgasync_finish(struct pgasync *q, const char *error)
{
    char msg[512];
    if (error == NULL && q->last == NULL)
        error = "no result";
    if (error != NULL) {
        snprintf(msg, sizeof(msg), "%s", error);
        /* libpq messages end with a newline; logs want one line. */
        size_t n = strlen(msg);
        while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
            msg[--n] = '\0';
    }
    pgasync_drain_notifies(q);
    /* A kept connection's password was asked for at its login, not now: a timeout is silence. */
    bool answered = error != NULL && q->conn != NULL && !(q->on_kept && q->timed_out) &&
                    (PQconnectionNeedsPassword(q->conn) || PQconnectionUsedPassword(q->conn));
    q->in_callback = true;
    q->done(q->arg, error ? NULL : q->last, error ? msg : NULL, answered);
    q->in_callback = false;
    if (q->kept)
        pgasync_go_idle(q);
    else
        pgasync_free(q);
}

static void pgasync_cb(evutil_socket_t fd, short what, void *arg);

/* libpq may change the socket while connecting (another host), so re-create the event. */
static int pgasync_wait(struct pgasync *q, short what)
{
    if (q->ev)
        event_free(q->ev);
    q->ev = event_new(q->base, PQsocket(q->conn), what, pgasync_cb, q);
    return q->ev && event_add(q->ev, NULL) == 0 ? 0 : -1;
}

/* A COPY's start: none of pgnear's own statements copies (a script's COPY ... FROM stdin). */
static bool pgasync_is_copy(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH;
}

/*
 * Reads what has come; the last result is kept (a script's last statement's),
 * and done is told once libpq has no more.
 */
static void pgasync_read_results(struct pgasync *q)
{
    if (!PQconsumeInput(q->conn)) {
        pgasync_finish(q, PQerrorMessage(q->conn));
        return;
    }
    pgasync_drain_notifies(q);
    while (!PQisBusy(q->conn)) {
        PGresult *res = PQgetResult(q->conn);
        if (res == NULL) {
            ExecStatusType st = q->last ? PQresultStatus(q->last) : PGRES_FATAL_ERROR;
            bool ok = st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK;
            pgasync_finish(
                q, ok ? NULL : (q->last ? PQresultErrorMessage(q->last) : PQerrorMessage(q->conn)));
            return;
        }
        if (pgasync_is_copy(res)) {
            /* libpq would hand this result back for ever, and the loop would never wake again. */
            PQclear(res);
            pgasync_finish(q, "the server started a COPY that pgnear did not ask for");
            return;
        }
        if (q->last)
            PQclear(q->last);
        q->last = res;
    }
    if (pgasync_wait(q, EV_READ) != 0)
        pgasync_finish(q, "out of memory");
}

/*
 * A script goes by the simple protocol (several statements); a query with
 * parameters by the extended one.
 */
static bool pgasync_send_query(struct pgasync *q)
{
    if (q->script)
        return PQsendQuery(q->conn, q->sql) == 1;
    return PQsendQueryParams(q->conn, q->sql, q->nparams, NULL, (const char *const *)q->params,
                             NULL, NULL, 0) == 1;
}

/* Sends the query once, then flushes until libpq has written all of it; then waits for results. */
static void pgasync_send(struct pgasync *q)
{
    if (!q->sent) {
        if (!pgasync_send_query(q)) {
            pgasync_finish(q, PQerrorMessage(q->conn));
            return;
        }
        q->sent = true;
    }
    int rc = PQflush(q->conn);
    if (rc < 0) {
        pgasync_finish(q, PQerrorMessage(q->conn));
        return;
    }
    if (pgasync_wait(q, rc == 1 ? EV_WRITE : EV_READ) != 0)
        pgasync_finish(q, "out of memory");
}

/* The socket is ready: connecting goes on, or sending, or reading results. */
static void pgasync_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pgasync *q = arg;
    if (PQstatus(q->conn) != CONNECTION_OK) {
        switch (PQconnectPoll(q->conn)) {
        case PGRES_POLLING_READING:
            if (pgasync_wait(q, EV_READ) != 0)
                pgasync_finish(q, "out of memory");
            return;
        case PGRES_POLLING_WRITING:
            if (pgasync_wait(q, EV_WRITE) != 0)
                pgasync_finish(q, "out of memory");
            return;
        case PGRES_POLLING_OK:
            pgasync_send(q);
            return;
        default:
            pgasync_finish(q, PQerrorMessage(q->conn));
            return;
        }
    }
    if (!q->sent || (what & EV_WRITE))
        pgasync_send(q);
    else
        pgasync_read_results(q);
}

/* The query's deadline passed: done is told "timeout", and pgasync_timed_out says so after. */
static void pgasync_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct pgasync *q = arg;
    q->timed_out = true;
    pgasync_finish(q, "timeout");
}

/*
 * The parameters copied, since the caller's may not outlive the call;
 * PGASYNC_SCRIPT for none and the simple protocol.
 */
static bool pgasync_copy_params(struct pgasync *q, int nparams, const char *const *params)
{
    q->script = nparams == PGASYNC_SCRIPT;
    if (q->script)
        nparams = 0;
    q->params = calloc((size_t)(nparams > 0 ? nparams : 1), sizeof(char *));
    if (q->params == NULL)
        return false;
    q->nparams = nparams;
    for (int i = 0; i < nparams; i++)
        if ((q->params[i] = strdup(params[i])) == NULL)
            return false;
    return true;
}

struct pgasync *pgasync_query(struct event_base *base, const char *conninfo, const char *sql,
                              int nparams, const char *const *params, int timeout_ms,
                              pgasync_done_fn done, void *arg, char *error, size_t errcap)
{
    struct pgasync *q = calloc(1, sizeof(*q));
    if (q == NULL || (q->sql = strdup(sql)) == NULL || !pgasync_copy_params(q, nparams, params)) {
        snprintf(error, errcap, "out of memory");
        if (q)
            pgasync_free(q);
        return NULL;
    }
    q->base = base;
    q->done = done;
    q->arg = arg;
    q->conn = PQconnectStart(conninfo);
    if (q->conn == NULL || PQstatus(q->conn) == CONNECTION_BAD) {
        snprintf(error, errcap, "%s", q->conn ? PQerrorMessage(q->conn) : "out of memory");
        pgasync_free(q);
        return NULL;
    }
    PQsetnonblocking(q->conn, 1);
    PQsetNoticeProcessor(q->conn, pgasync_notice, q);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    q->timer = evtimer_new(base, pgasync_timeout, q);
    if (q->timer == NULL || evtimer_add(q->timer, &tv) != 0 || pgasync_wait(q, EV_WRITE) != 0) {
        snprintf(error, errcap, "out of memory");
        pgasync_free(q);
        return NULL;
    }
    return q;
}

/*
 * Only from within done, and only for a usable connection: it is then kept idle
 * instead of freed.
 */
static bool pgasync_keep_if(struct pgasync *q, bool usable, pgasync_closed_fn closed, void *arg)
{
    if (!q->in_callback || !usable)
        return false;
    q->kept = true;
    q->closed = closed;
    q->closed_arg = arg;
    return true;
}

bool pgasync_keep(struct pgasync *q, pgasync_closed_fn closed, void *arg)
{
    return pgasync_keep_if(q, pgasync_connection_ok(q), closed, arg);
}

bool pgasync_keep_open(struct pgasync *q, pgasync_closed_fn closed, void *arg)
{
    return pgasync_keep_if(q, q->conn != NULL && PQstatus(q->conn) == CONNECTION_OK, closed, arg);
}

/* While idle the server may still talk (ParameterStatus, a FATAL at shutdown, EOF). */
static void pgasync_idle_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pgasync *q = arg;
    (void)fd;
    (void)what;
    if (PQconsumeInput(q->conn) && PQstatus(q->conn) == CONNECTION_OK) {
        pgasync_drain_notifies(q);
        return;
    }
    q->closed(q->closed_arg);
}

int pgasync_requery(struct pgasync *q, const char *sql, int nparams, const char *const *params,
                    int timeout_ms, pgasync_done_fn done, void *arg)
{
    pgasync_clear_query(q);
    if ((q->sql = strdup(sql)) == NULL || !pgasync_copy_params(q, nparams, params))
        return -1;
    q->done = done;
    q->arg = arg;
    q->on_kept = true;
    /* Queued here, flushed from the loop: done is never called before we return. */
    if (!pgasync_send_query(q))
        return -1;
    q->sent = true;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (evtimer_add(q->timer, &tv) != 0 || pgasync_wait(q, EV_WRITE) != 0)
        return -1;
    return 0;
}

bool pgasync_timed_out(const struct pgasync *q)
{
    return q != NULL && q->timed_out;
}

const char *pgasync_error_field(const struct pgasync *q, int field)
{
    if (q == NULL || q->last == NULL || PQresultStatus(q->last) != PGRES_FATAL_ERROR)
        return NULL;
    return PQresultErrorField(q->last, field);
}

const char *pgasync_error_sqlstate(const struct pgasync *q)
{
    return pgasync_error_field(q, PG_DIAG_SQLSTATE);
}

int pgasync_backend_pid(const struct pgasync *q)
{
    return q != NULL && q->conn != NULL ? PQbackendPID(q->conn) : 0;
}

const char *pgasync_password(const struct pgasync *q)
{
    const char *password = q != NULL && q->conn != NULL ? PQpass(q->conn) : NULL;
    return password != NULL && password[0] != '\0' ? password : NULL;
}

void *pgasync_arg(const struct pgasync *q)
{
    return q->arg;
}

void pgasync_abandon(struct pgasync *q)
{
    if (q != NULL)
        pgasync_free(q);
}

bool pgasync_conninfo_add(char *buf, size_t cap, const char *key, const char *value)
{
    size_t n = strlen(buf);
    int w = snprintf(buf + n, cap - n, "%s%s='", n > 0 ? " " : "", key);
    if (w < 0 || (size_t)w >= cap - n)
        return false;
    n += (size_t)w;
    for (const char *p = value; *p; p++) {
        if (n + 3 >= cap)
            return false;
        if (*p == '\'' || *p == '\\')
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    if (n + 2 > cap)
        return false;
    buf[n++] = '\'';
    buf[n] = '\0';
    return true;
}
