/*
 * follow.h — where moved databases live, read back from the record of
 * moves that both regions of a move keep (record.h), for this pgnear:
 * once at start, before any client is served, then every
 * second (DBMOVE_FOLLOW_MS) on worker 0's loop.  A cutover made by this pgnear
 * sets the placement itself; what the follower reads makes a restart, a
 * reload and the other instances of a fleet route the same way.
 *
 * Each database's newest move decides (the highest id; of its rows in
 * the regions, the highest version): moved or finished, it lives in the
 * move's target; aborted, where the file says; any other state, in the
 * move's source.  A city's newest move (a row with a city) homes that
 * city's rows by the same rule, aborted meaning where the database lives
 * (placement.h's homes).  A database is left as it is in a round that could not
 * read both regions of its move.  Where the file says otherwise
 * ([database NAME] regions), the record wins, being the newer word, and a
 * WARNING says so, once per disagreement.
 *
 * Nothing is read while no [database] section names a single region: no
 * database can have been moved then.
 */
#ifndef PGNEAR_PROXY_DBMOVE_FOLLOW_H
#define PGNEAR_PROXY_DBMOVE_FOLLOW_H

#include <stddef.h>

struct config;

#include "proxy/dbmove/record.h"

struct worker_part;

extern const struct worker_part dbmove_follow_part;

/*
 * The newest row of each database's newest move, and of each city's (a
 * database's rows homed by city: cities compared folded), into out (at
 * most cap): their count.  rows may hold the same move twice (both
 * regions' rows).
 */
size_t dbmove_newest(const struct dbmove_row *rows, size_t n, const struct dbmove_row **out,
                     size_t cap);

/*
 * For --check: reads the record of moves in every region (blocking, a few
 * seconds at most per host) and tells each database whose [database]
 * section disagrees with where its move left it, a line each, as RELOAD
 * would; a region that cannot be read is logged.  Returns how many.
 */
int dbmove_check_file(const struct config *cfg, void (*tell)(const char *line, void *arg),
                      void *arg);

#endif
