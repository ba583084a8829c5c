/*
 * job_request.h — what a database move's command is asked (the action,
 * the database, the region) and what it answers with (a SHOW MOVES row,
 * a NOTICE, the end): the words the admin (job.h) and the steps
 * (job_engine.h) share.
 */
#ifndef PGNEAR_PROXY_DBMOVE_JOB_REQUEST_H
#define PGNEAR_PROXY_DBMOVE_JOB_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/dbmove/preflight.h"
#include "proxy/dbmove/record.h"

struct move_result;

enum dbmove_action {
    DBMOVE_START,
    DBMOVE_CUTOVER,
    DBMOVE_REVERT,
    DBMOVE_FINISH,
    DBMOVE_ABORT,
    DBMOVE_SHOW,
    DBMOVE_SETTLE /* a cutover whose pgnear stopped: done or undone (job_settle.c) */
};

struct dbmove_request {
    enum dbmove_action action;
    char database[DBMOVE_NAME_MAX + 1];  /* all but SHOW */
    char city[DBMOVE_NAME_MAX + 1];      /* MOVE CITY: the city as written; "": the database */
    char to_region[DBMOVE_NAME_MAX + 1]; /* START; SETTLE: the leaving region */
    char by[DBMOVE_BY_MAX + 1];          /* who asked, for the record */
};

/* A row of SHOW MOVES. */
struct dbmove_status {
    struct dbmove_row row;
    const char *state; /* the record's, or "streaming" once every table is copied */
    int64_t tables_copied, tables_total; /* -1: not known */
    int64_t bytes;                       /* the source database's size; -1 not known */
    int64_t lag_bytes;                   /* -1: not known */
    double lag_seconds;                  /* < 0: not known */
};

/* Progress, as a NOTICE for the admin. */
typedef void (*dbmove_notice_fn)(void *arg, const char *text);
/*
 * The end: problem NULL when the command did what it was asked (summary
 * says what, for a NOTICE; rows the SHOW's; moves the sessions a cutover
 * moved or ended; all owned by the job until the callback returns).  The
 * job is freed after the callback.
 */
typedef void (*dbmove_done_fn)(void *arg, enum dbmove_action action, const struct pg_error *problem,
                               const char *summary, const struct dbmove_status *rows, size_t nrows,
                               const struct move_result *moves, size_t nmoves);

#endif
