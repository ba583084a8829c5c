/*
 * pgasync.h — one libpq connection running one query, driven by the
 * event loop (PQconnectStart/PQconnectPoll, PQsendQueryParams,
 * PQconsumeInput): pgnear's own connections never block the loop.
 */
#ifndef PGNEAR_PROTOCOL_PGASYNC_H
#define PGNEAR_PROTOCOL_PGASYNC_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

struct event_base;
struct pgasync;

/*
 * Called once: with the last result of the query (owned by the callee
 * only during the call), or with res NULL and a message.  The pgasync is
 * freed after the callback returns.
 */
/*
 * server_answered: on a failure, whether a server took part (it asked for
 * a password, or refused the one given) — up, though pgnear cannot log in;
 * never for a timeout on a kept connection (its password was long ago).
 */
typedef void (*pgasync_done_fn)(void *arg, const PGresult *res, const char *error,
                                bool server_answered);

/*
 * nparams PGASYNC_SCRIPT: sql is several statements (a schema), sent as
 * one simple Query without parameters; the callback gets the last result,
 * or the first error.  A COPY the server starts (a script's COPY FROM
 * stdin, or a hostile server's CopyInResponse) ends the query with an
 * error: pgnear's own connections copy nothing.
 */
#define PGASYNC_SCRIPT (-1)

/* Starts connecting; NULL when out of memory or libpq refused the conninfo (error set). */
struct pgasync *pgasync_query(struct event_base *base, const char *conninfo, const char *sql,
                              int nparams, const char *const *params, int timeout_ms,
                              pgasync_done_fn done, void *arg, char *error, size_t errcap);

/*
 * Connection reuse.  From inside the done callback, pgasync_keep() asks to
 * keep the connection: when it is still usable (connected, no transaction
 * open) it stays open, idle, and belongs to the caller, who either runs
 * another query on it with pgasync_requery() or closes it with
 * pgasync_abandon().  Otherwise it is freed as usual.
 */
typedef void (*pgasync_closed_fn)(void *arg);

/*
 * From the done callback only.  False: the connection is not reusable
 * (and is freed after the callback).  closed(arg) is called, at most
 * once, when the server ends the connection while it is idle.
 */
bool pgasync_keep(struct pgasync *q, pgasync_closed_fn closed, void *arg);
/*
 * As pgasync_keep, but also inside a transaction block, open or failed:
 * for a caller that runs a transaction one statement at a time (the
 * migration runner).  The caller must end the transaction with COMMIT or
 * ROLLBACK through pgasync_requery, or abandon the connection, which
 * makes the server roll it back.  False only when the connection is gone.
 */
bool pgasync_keep_open(struct pgasync *q, pgasync_closed_fn closed, void *arg);
/*
 * Each notification the connection receives (NotificationResponse), while
 * a query runs or while it is kept idle, handed to notify in the order it
 * came; the notice is freed after the call.  notify may not free q nor
 * run a query on it (it defers that to the loop).  Set after
 * pgasync_query, before the loop runs; by default they are dropped.
 */
typedef void (*pgasync_notify_fn)(void *arg, const PGnotify *n);
void pgasync_set_notify(struct pgasync *q, pgasync_notify_fn notify, void *arg);
/*
 * Each notice or warning the server sends (a NoticeResponse, as libpq
 * words it: "NOTICE:  ...\n"), to notice instead of libpq's default,
 * which prints it on stderr past the log; by default they are dropped.
 */
typedef void (*pgasync_notice_fn)(void *arg, const char *message);
void pgasync_set_notice(struct pgasync *q, pgasync_notice_fn notice, void *arg);

/* Connected and outside any transaction. */
bool pgasync_connection_ok(const struct pgasync *q);
/*
 * Runs sql on an idle kept connection; done is called later, never from
 * inside this call.  -1: nothing was started and the caller still owns q.
 */
int pgasync_requery(struct pgasync *q, const char *sql, int nparams, const char *const *params,
                    int timeout_ms, pgasync_done_fn done, void *arg);

/*
 * From the done callback: whether the query ended because timeout_ms
 * passed (the server was slow or silent) rather than on an error the
 * server or the network reported.
 */
bool pgasync_timed_out(const struct pgasync *q);

/*
 * From the done callback of a query that failed: the SQLSTATE the server
 * gave ("42P01"), or NULL when the failure was not the server's answer to
 * the query (no connection, a timeout).
 */
const char *pgasync_error_sqlstate(const struct pgasync *q);
/* The same for any field of the server's error (PG_DIAG_MESSAGE_PRIMARY ...). */
const char *pgasync_error_field(const struct pgasync *q, int field);

/* The server process of a connected query (for pg_cancel_backend); 0 when not connected. */
int pgasync_backend_pid(const struct pgasync *q);

/*
 * The password libpq logs in with (PQpass): given in the conninfo, taken
 * from PGPASSWORD, or found in the password file; NULL when none.
 */
const char *pgasync_password(const struct pgasync *q);

/* The arg given to pgasync_query, so that an owner abandoning the query can free it. */
void *pgasync_arg(const struct pgasync *q);

/* Abandons the query; the callback is not called. */
void pgasync_abandon(struct pgasync *q);

/* Appends key='value' to a conninfo string, quoting as libpq wants; false if cap is short. */
bool pgasync_conninfo_add(char *buf, size_t cap, const char *key, const char *value);

#endif
