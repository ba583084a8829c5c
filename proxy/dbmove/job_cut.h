/*
 * job_cut.h — the parts of a cutover (CUTOVER and REVERT, whose chains
 * job_cutover.c splices): its sessions (job_cutover_hold.c), its
 * replication (job_cutover_replication.c), and what its undo
 * (job_cutover_undo.c), the settling of an interrupted one (job_settle.c)
 * and a fleet's part in it (job_fleet.c) share.
 */
#ifndef PGNEAR_PROXY_DBMOVE_JOB_CUT_H
#define PGNEAR_PROXY_DBMOVE_JOB_CUT_H

#include <stdbool.h>

#include "proxy/dbmove/job_engine.h"

/* What a cutover holds at the end: its script, the moves, the pids (CUTOVER, REVERT, SETTLE). */
void job_cutover_free(struct dbmove_job *j);

/*
 * A cutover's failure (job_cutover_undo.c): before the commit everything is
 * undone, after it the error is recorded; either answers the first problem.
 * job_cut_gate_opened: the gate's done, which measures the hold.
 */
void job_cut_failed(struct dbmove_job *j);
void job_cut_failed_late(struct dbmove_job *j);
void job_cut_gate_opened(void *arg);

/* The sides of j->move (j->cut, both regions' connection strings), reverse set. */
int job_cut_sides(struct dbmove_job *j);
/* ALTER DATABASE SET default_transaction_read_only = on, or RESET, on ctl. */
int job_set_read_only(struct dbmove_job *j, const char *ctl, bool on, const char *what);

/*
 * job_cutover_hold.c: the gate closed over the database's sessions
 * (JOB_WAIT; its outcome told), or a city's alone; the held sessions'
 * server processes and the job's, which the leaving side does not end (a
 * city's cutover ends none: its list only takes the fleet's word, by
 * move_timeout); the leaving side refusing new sessions' writes and
 * ending the sessions pgnear does not hold; after the commit, the held
 * sessions moved to the arriving region as one batch, and the gate opened.
 */
int job_cut_gate(struct dbmove_job *j);
int job_cut_city_gate(struct dbmove_job *j);
int job_cut_held_pids(struct dbmove_job *j);
int job_cut_city_pids(struct dbmove_job *j);
int job_cut_read_only(struct dbmove_job *j);
int job_cut_end_others(struct dbmove_job *j);
int job_cut_move_sessions(struct dbmove_job *j);
int job_cut_open_gate(struct dbmove_job *j);

/*
 * job_cutover_replication.c: the marker's token written on the leaving
 * side, read on the arriving side, and the step before the poll run again
 * while it is not there (the wait for the peers' word too); the sequences
 * read and set past; the slot for the way back made and moved past the
 * feed.  After the commit: the feed dropped, the replication back started
 * (made already: fine).
 */
int job_cut_mark(struct dbmove_job *j);
int job_cut_wait_replay(struct dbmove_job *j);
int job_cut_replay_poll(struct dbmove_job *j);
int job_cut_read_sequences(struct dbmove_job *j);
bool job_cut_has_sequences(const struct dbmove_job *j);
int job_cut_set_sequences(struct dbmove_job *j);
int job_cut_back_slot(struct dbmove_job *j);
int job_cut_back_slot_skip(struct dbmove_job *j);
int job_cut_drop_feed(struct dbmove_job *j);
int job_cut_back_subscription(struct dbmove_job *j);
/* The arriving side's slot for the way back, if no subscription uses it yet. */
int job_cut_drop_back_slot(struct dbmove_job *j);

/* job_fleet.c: whether peers take part in a cutover, their holds table, their word. */
bool job_in_fleet(const struct dbmove_job *j);
int job_cut_holds_table(struct dbmove_job *j);
int job_cut_wait_peers(struct dbmove_job *j);

#endif
