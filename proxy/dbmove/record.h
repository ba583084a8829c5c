/*
 * record.h — the durable record of database moves, pgnear_database_moves,
 * and of city moves, pgnear_city_moves (the same columns, city NOT NULL),
 * kept in moves_db on the primary of both regions of a move.  The city
 * moves have a table of their own: a pgnear older than them reads every
 * row of pgnear_database_moves as a move of a whole database.
 *
 * One row per move, keyed by its id (microseconds since the epoch when it
 * began, unique enough for moves an admin starts by hand, and ordered):
 * the database, the regions, the state, who started it and when, the last
 * change and the last error, and whether the move created the database on
 * the target (ABORT drops only what the move made), and for a move of one
 * city's rows (a database homed by city, [database] home_by) the city.
 * Both regions hold the
 * same row, so that either one, read alone, tells the truth after a
 * restart.  Here is only the text of the table and its writes, and the
 * reading of rows; the queries are run by the runner (runner.h).
 */
#ifndef PGNEAR_PROXY_DBMOVE_RECORD_H
#define PGNEAR_PROXY_DBMOVE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "proxy/migrate/city_sql.h"

#define DBMOVE_TABLE      "pgnear_database_moves"
#define DBMOVE_CITY_TABLE "pgnear_city_moves"
#define DBMOVE_NAME_MAX   63  /* a database or region name */
#define DBMOVE_BY_MAX     127 /* started_by as kept */
#define DBMOVE_ERROR_MAX  511 /* last_error as kept */
#define DBMOVE_OBJECT_NAME                                                                         \
    "pgnear_move" /* the publication; the subscription and slot add the id                         \
                   */

enum dbmove_state {
    DBMOVE_COPYING,      /* the subscription copies the tables */
    DBMOVE_STREAMING,    /* every table copied: changes stream; the database lives in from */
    DBMOVE_ABORTED,      /* ABORT removed what the move made */
    DBMOVE_FAILED,       /* a step failed: last_error says which; ABORT cleans up */
    DBMOVE_CUTTING_OVER, /* CUTOVER under way: still in from until the record says moved */
    DBMOVE_MOVED,        /* the database lives in to; changes stream back to from */
    DBMOVE_REVERTING,    /* REVERT under way: still in to until the record says streaming */
    DBMOVE_FINISHED,     /* FINISH dropped the replication: the database lives in to */
};

struct dbmove_row {
    int64_t id;
    char database[DBMOVE_NAME_MAX + 1];
    char from_region[DBMOVE_NAME_MAX + 1], to_region[DBMOVE_NAME_MAX + 1];
    enum dbmove_state state;
    bool created_database;
    int64_t started_at_us, updated_at_us;
    char started_by[DBMOVE_BY_MAX + 1];
    char last_error[DBMOVE_ERROR_MAX + 1];
    /*
     * Bumped at each change of state, the same in both regions once both
     * are written: between the two writes, the higher one tells which
     * region's row is the newer (servers' clocks may differ).
     */
    int version;
    /* A city move's city, as written (a move of that city's rows alone); "": the whole database */
    char city[DBMOVE_NAME_MAX + 1];
};

/*
 * The tables, created on first use; a pgnear_database_moves an older
 * pgnear made gets the (nullable) city column, which an older pgnear does
 * not read, and a city move's rows go to pgnear_city_moves.
 */
extern const char dbmove_create_sql[];
/*
 * Every row of both tables, newest first: what dbmove_rows_parse reads.
 * A moves_db whose tables an older pgnear made has no pgnear_city_moves
 * (42P01): dbmove_select_database_sql then reads the database moves alone.
 */
extern const char dbmove_select_sql[];
extern const char dbmove_select_database_sql[];
/*
 * A move's whole row, inserted or replaced: $1 id, $2 database, $3 from,
 * $4 to, $5 state, $6 created_database (t/f), $7 started_by, $8 last_error
 * ('' none), $9 version.  updated_at is now().
 */
extern const char dbmove_upsert_sql[];
/* The same into pgnear_city_moves, $10 the city as written. */
extern const char dbmove_city_upsert_sql[];

const char *dbmove_state_name(enum dbmove_state state);
bool dbmove_state_parse(const char *text, enum dbmove_state *out);
/* Whether a move in this state still holds objects or may go on (not aborted nor finished). */
bool dbmove_state_live(enum dbmove_state state);
/* Whether the database lives in the move's target region in this state (moved, finished). */
bool dbmove_state_in_target(enum dbmove_state state);

/*
 * The rows of a dbmove_select_sql result into *rows (malloc'd, *count of
 * them): 0, or -1 with why (a row the table cannot hold; out of memory).
 */
int dbmove_rows_parse(const PGresult *res, struct dbmove_row **rows, size_t *count, char *why,
                      size_t cap);
/*
 * The cutover's marker: a schema of pgnear's own in the moved database,
 * made on the source before its schema is copied, so that both sides have
 * it and the publications carry it.  A cutover writes a token there on
 * the side the database leaves, once nothing else writes, and waits for
 * the token on the other side: replication applies in commit order, so
 * every write before it has arrived too.  FINISH and ABORT drop it.
 */
#define DBMOVE_MARKER_SCHEMA CITY_SCHEMA
extern const char dbmove_marker_create_sql[];
extern const char dbmove_marker_write_sql[]; /* $1 the token */
extern const char dbmove_marker_read_sql[];  /* $1 the token: true once it is there */
extern const char dbmove_marker_drop_sql[];

/*
 * In a fleet, the other instances hold their sessions of a database being
 * cut over too, and say so in the leaving region's moves_db, with the
 * server processes of those sessions, which the cutover must not end:
 * pgnear_move_holds, a row per move, version (of the 'cutting over' or
 * 'reverting' record) and peer.
 */
extern const char dbmove_holds_create_sql[];
extern const char dbmove_hold_write_sql[]; /* $1 move, $2 version, $3 peer_id, $4 '{pids}' */
extern const char dbmove_holds_read_sql[]; /* $1 move, $2 version: peer_id, 'pid,pid' */
extern const char dbmove_hold_drop_sql[];  /* $1 move, $2 peer_id */

/* The subscription's (and its slot's) name for move id: "pgnear_move_<id>". */
void dbmove_subscription_name(int64_t id, char *buf, size_t cap);
/* The name of the one back from the target after a cutover: "pgnear_move_<id>_back". */
void dbmove_back_name(int64_t id, char *buf, size_t cap);

/* Where a move's newest row says its database lives: "" for where the file says (aborted). */
const char *dbmove_home_region(const struct dbmove_row *r);

#endif
