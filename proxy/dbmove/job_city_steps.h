/*
 * job_city_steps.h — MOVE CITY's own steps (job_city.c,
 * job_city_cutover.c, job_city_join.c) in the chains of MOVE DATABASE's
 * commands, over its own state (j->city, job_city_state.h).
 */
#ifndef PGNEAR_PROXY_DBMOVE_JOB_CITY_STEPS_H
#define PGNEAR_PROXY_DBMOVE_JOB_CITY_STEPS_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/dbmove/job_city_state.h"
#include "proxy/dbmove/job_engine.h"
#include "proxy/migrate/city_sql.h"

/*
 * job_city.c: MOVE CITY's own steps, in sub-chains of a kind's
 * city_chain.  job_city_homed: the database is homed by a column and the
 * city can be written into the move's SQL;
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
 * A city's CUTOVER (job_city_cutover.c), in the city's chains that
 * job_cutover.c splices: the city folded (the gate's and the move batch's
 * key; false with the problem set); the arriving side's publication for
 * the way back (the city's rows and the marker); the leaving side's
 * triggers (before the gate), its refusal of the city's writes (after the
 * gate, which holds the city's sessions alone: job_cutover_hold.c), and
 * the end of that refusal (undo); the commit of the city's home on this
 * pgnear; the feed narrowed after the commit to the tables without the
 * column, which go on following the database's region.
 */
bool job_city_key(struct dbmove_job *j, char *key, size_t cap);
int job_city_back_publication(struct dbmove_job *j);
int job_city_triggers(struct dbmove_job *j);
/* The arriving side's refusal of writes to the tables without the column (before the gate). */
int job_city_reference_triggers(struct dbmove_job *j);
int job_city_refuse_writes(struct dbmove_job *j);
int job_city_allow_writes(struct dbmove_job *j);
int job_city_allow_arriving(struct dbmove_job *j);
int job_city_commit_home(struct dbmove_job *j);
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
 * made for it, then called until a call finds nothing left; j->city->rows
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

#endif
