/*
 * job_city_state.h — what MOVE CITY keeps in its job beyond MOVE
 * DATABASE's (j->city): the source's tables, for the checks (job_city.c),
 * the triggers' deadline (job_city_cutover.c), and how a city joins a
 * region where others live (job_city_join.c).  job_begin makes it for a
 * request that names a city and frees it, with its tables, at the end.
 */
#ifndef PGNEAR_PROXY_DBMOVE_JOB_CITY_STATE_H
#define PGNEAR_PROXY_DBMOVE_JOB_CITY_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/dbmove/job_request.h"

struct job_city {
    char column[DBMOVE_NAME_MAX + 1];       /* [database] home_by */
    int64_t homed;                          /* the tables that have it */
    int64_t rows;                           /* the city's rows in them */
    char no_identity[DBMOVE_LIST_MAX];      /* homed tables whose replica identity lacks it */
    char foreign_keys[2 * DBMOVE_LIST_MAX]; /* keys that would leave the city */
    char sequences[DBMOVE_LIST_MAX];        /* homed tables' columns drawn from sequences */
    char partitioned[DBMOVE_LIST_MAX];      /* partitioned tables, which it does not move */
    int64_t trigger_deadline_ms;            /* the triggers' tries end (job_city_triggers) */
    bool joining;          /* other cities of the database live in the target (job_city_join.c) */
    bool feeds_references; /* the move's subscription takes the tables without the column too */
    bool feed_kept;        /* FINISH or ABORT keeps it as the region's feed of those */
    char *tables;          /* the source's tables, a line each, compared with a joined target's */
};

#endif
