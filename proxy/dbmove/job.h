/*
 * job.h — a database move's commands, run on the event loop as a chain of
 * steps, each one query on a connection of its own to a region's primary.
 *
 * MOVE DATABASE db TO REGION r:
 *   1. the facts: the source's (connected to db), the target's (to
 *      moves_db), what the target's db holds if it exists, and the moves
 *      either region records (preflight.h, record.h); the first reason not
 *      to move is the answer, and nothing has changed;
 *   2. the record, 'copying', in both regions (created_database says
 *      whether the move is to create db on the target: ABORT drops only
 *      what the move made);
 *   3. the target's database (CREATE DATABASE with the source's owner,
 *      encoding and locale, from template0), its schema (pg_dump
 *      --schema-only of the source, run on the target as one script), a
 *      publication FOR ALL TABLES on the source, and a subscription on the
 *      target that copies the tables and then streams changes.
 *   A step of 3 that fails leaves the record 'failed' with the error;
 *   ABORT removes what was made.
 *
 * MOVE DATABASE db ABORT: the move of db that the source records (not
 * aborted) loses its subscription (which drops its slot on the source),
 * any slot left, the publication, and the target's database if the move
 * created it; the record says 'aborted' in both regions.
 *
 * SHOW MOVES: every region's record, the newest state of each move, and
 * for a move that copies or streams, the tables copied of the total (on
 * the target) and the lag of its slot behind the source's WAL.
 *
 * The source is the one region the database lives in ([database NAME]
 * regions); its primary is the first of its hosts that is up and not a
 * standby.  Each query has a time limit.
 */
#ifndef PGNEAR_PROXY_DBMOVE_JOB_H
#define PGNEAR_PROXY_DBMOVE_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/dbmove/job_request.h"

struct config;
struct dbmove_job;
struct worker;

/*
 * Starts req under cfg (a reference is taken) on home's loop; done is
 * called once, from the loop, never from inside this call.  NULL with
 * *problem filled when it cannot start (out of memory).
 */
struct dbmove_job *dbmove_job_start(struct worker *home, struct config *cfg,
                                    const struct dbmove_request *req, dbmove_notice_fn notice,
                                    dbmove_done_fn done, void *arg, struct pg_error *problem);

/*
 * The admin went away: the job goes on to its end (a move half made is
 * worse than one made or not begun) but tells nobody.
 */
void dbmove_job_abandon(struct dbmove_job *job);

#endif
