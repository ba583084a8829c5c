/*
 * job_cut.h — the parts of a cutover (CUTOVER and REVERT, job_cutover.c)
 * that its undo (job_cutover_undo.c), the settling of an interrupted one
 * (job_settle.c) and a fleet's part in it (job_fleet.c) share.
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
/* After the commit: the feed dropped, the replication back started (made already: fine). */
int job_cut_drop_feed(struct dbmove_job *j);
int job_cut_back_subscription(struct dbmove_job *j);
/* The arriving side's slot for the way back, if no subscription uses it yet. */
int job_cut_drop_back_slot(struct dbmove_job *j);

/* job_fleet.c: whether peers take part in a cutover, their holds table, their word. */
bool job_in_fleet(const struct dbmove_job *j);
int job_cut_holds_table(struct dbmove_job *j);
int job_cut_wait_peers(struct dbmove_job *j);

#endif
