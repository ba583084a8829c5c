/*
 * move_batch.h — moving many live sessions at once, on every worker:
 * what MOVE CLIENT(S), DRAIN and a database's cutover ask for.
 *
 * The batch is asked of every worker at once (worker_call_all); each
 * starts the moves of its own sessions in scope (move_session), whose ends
 * come back on that worker as rows, under the batch's lock.  The home
 * worker looks every MOVE_BATCH_POLL_MS whether every move has ended; no
 * loop waits.  With end_the_rest, the sessions of the scope's region (and
 * database) still there are then ended at their next safe point with
 * 57P01 (DRAIN; a cutover's sessions that could not move).  done gets the
 * rows, ordered by client id, on the home worker.
 */
#ifndef PGNEAR_PROXY_MOVE_BATCH_H
#define PGNEAR_PROXY_MOVE_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/session/move.h"

struct worker;

#define MOVE_BATCH_POLL_MS 20

enum move_batch_scope {
    MOVE_BATCH_ONE,      /* the session client_id */
    MOVE_BATCH_FROM,     /* every session in region from */
    MOVE_BATCH_HOME,     /* every session whose route picks another region now */
    MOVE_BATCH_DATABASE, /* every session of database not in region to (from: the primary's) */
};

struct move_batch_spec {
    enum move_batch_scope scope;
    uint64_t client_id;
    char from[MOVE_REGION_MAX];
    char to[MOVE_REGION_MAX]; /* "": each session's next region by its own route */
    char database[64];
    char city_key[128]; /* DATABASE: "" every session of it; else those of this city (folded) */
    bool end_the_rest;  /* FROM, DATABASE: then end the scope's sessions still there (57P01) */
};

/* The end, on the home worker: the rows are the batch's until it returns. */
typedef void (*move_batch_done_fn)(const struct move_result *rows, size_t nrows, bool out_of_memory,
                                   void *arg);

/* Starts the batch from home's loop; 0, or -1 when out of memory (done is not called then). */
int move_batch_start(struct worker *home, const struct move_batch_spec *spec,
                     move_batch_done_fn done, void *arg);

#endif
