/*
 * primary_state.h — whether a text reads what only the primary knows.
 *
 * Some of PostgreSQL's views and functions answer for the server they
 * run on, and a standby answers them without an error but differently:
 * its prepared transactions (none: a transaction manager's recovery scan
 * of pg_prepared_xacts would find no in-doubt transaction), its WAL
 * senders and replication slots, its sessions and locks (the writers and
 * the locks they hold are on the primary), its per-database counters,
 * and its snapshot and last commit as replayed so far.  Under `nearest`
 * a statement that names one runs on a primary (near_text.c), as one
 * that calls a routine that may write does.
 *
 * The names, each matched where sql_calls_scan gives a name (a call, a
 * relation, a type or any other word or quoted identifier outside
 * strings and comments; in any schema, which errs towards the primary):
 *   pg_prepared_xacts, pg_prepared_xact         two-phase transactions
 *   pg_stat_replication, pg_stat_get_wal_senders,
 *   pg_replication_slots, pg_get_replication_slots   its standbys
 *   pg_stat_activity, pg_stat_get_activity,
 *   pg_locks, pg_lock_status, pg_blocking_pids   its sessions and locks
 *   pg_stat_database, pg_stat_database_conflicts  its counters
 *   txid_current_snapshot, pg_current_snapshot, pg_last_committed_xact
 * pg_stat_wal_receiver is the standby's own (a primary has none) and is
 * not among them.
 */
#ifndef PGNEAR_PRIMARY_STATE_H
#define PGNEAR_PRIMARY_STATE_H

#include <stddef.h>
#include <stdint.h>

/*
 * The listed name that a name as the catalog spells it (sql_calls.h:
 * folded, or quoted as written; len bytes) is, or NULL.  nearest asks it
 * of each name its one scan of a text gives (near_text.c).
 */
const char *primary_state_named(const char *name, size_t len);

/* The first such name text (len bytes) reads, as listed above, or NULL: the names of its scan. */
const char *primary_state_read(const uint8_t *text, size_t len);

#endif
