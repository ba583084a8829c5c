/*
 * job_steps.h — the steps and helpers that several kinds of a database
 * move's commands share, over the engine (job_engine.h): the source, the
 * target, the move lock and the records (job_start.c), the live move a
 * cutover or FINISH works on (job_cutover.c), the refusals while a
 * migration runs (job_migrating.c), the SCRAM secrets' check
 * (job_secrets.c), a subscription's connection to its publisher
 * (job_publisher.c) and the schema copy (job_schema.c).
 */
#ifndef PGNEAR_PROXY_DBMOVE_JOB_STEPS_H
#define PGNEAR_PROXY_DBMOVE_JOB_STEPS_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/dbmove/job_engine.h"

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

/* Reads the records of a region (ctl: its moves_db) into j->records. */
int job_read_records(struct dbmove_job *j, const char *ctl, const char *what);
/* Writes j->moveWrites j->move, as it is now, to the record of a region. */
int job_write_record(struct dbmove_job *j, const char *ctl, const char *what);

/*
 * The live move of the database in j->records, which must be in state
 * wanted (else 55000 naming the command its state waits for; verb says
 * what was asked: "cut over"), with both regions' connection strings and
 * the cutover's sides (j->cut) set.
 */
int job_find_move_in(struct dbmove_job *j, enum dbmove_state wanted, const char *verb);

/*
 * job_migrating.c: the database is migrations_db; the step that refuses
 * (55006) when a migration holds the migrations' lock on the source's, or
 * the target's, primary.
 */
bool job_moves_migrations_db(const struct dbmove_job *j);
int job_refuse_migrating_source(struct dbmove_job *j);
int job_refuse_migrating_target(struct dbmove_job *j);

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

/* The schema copy: pg_dump of the source, then the script on the target (job_schema.c). */
int job_copy_schema(struct dbmove_job *j);
/* What the schema copy holds at the end (MOVE DATABASE's kind). */
void job_schema_free(struct dbmove_job *j);

#endif
