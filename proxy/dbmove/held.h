/*
 * held.h — the server processes a cutover must not end on the leaving
 * side: those of the database's sessions the gate holds, and pgnear's own
 * kept connections to it there, which close first (they would be of no
 * use after the cutover, and ending them from the server only makes
 * noise in every log).  The cutover's own instance (job_cutover_hold.c) and
 * each peer that holds with it (follow_hold.c) gather them the same way.
 */
#ifndef PGNEAR_PROXY_DBMOVE_HELD_H
#define PGNEAR_PROXY_DBMOVE_HELD_H

struct gate_pids;
struct worker;

/*
 * On every worker: kept connections to database in region closed (their
 * processes into pids), those in use marked to close when given back;
 * then the held sessions' processes (gate_collect_pids).  done(arg) on
 * home's loop once all is in pids.  -1: out of memory, nothing started.
 */
int dbmove_collect_held(struct worker *home, struct gate_pids *pids, const char *region,
                        const char *database, void (*done)(void *arg), void *arg);

#endif
