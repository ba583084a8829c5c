/*
 * record.c — the text of pgnear_database_moves and pgnear_city_moves, the
 * reading of their rows,
 * and what a row says: its state's word, where its database lives
 * (record.h).
 */
#include "proxy/dbmove/record.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[] = {
    [DBMOVE_COPYING] = "copying",           [DBMOVE_STREAMING] = "streaming",
    [DBMOVE_ABORTED] = "aborted",           [DBMOVE_FAILED] = "failed",
    [DBMOVE_CUTTING_OVER] = "cutting over", [DBMOVE_MOVED] = "moved",
    [DBMOVE_REVERTING] = "reverting",       [DBMOVE_FINISHED] = "finished",
};

/* One statement (the jobs' queries are prepared): a DO block that makes or completes it. */
const char dbmove_create_sql[] =
    "DO $pgnear$ BEGIN\n"
    "CREATE TABLE IF NOT EXISTS " DBMOVE_TABLE " (\n"
    "    id bigint PRIMARY KEY,\n"
    "    database text NOT NULL CHECK (length(database) BETWEEN 1 AND 63),\n"
    "    from_region text NOT NULL CHECK (length(from_region) BETWEEN 1 AND 63),\n"
    "    to_region text NOT NULL CHECK (length(to_region) BETWEEN 1 AND 63),\n"
    "    state text NOT NULL CHECK (state IN ('copying', 'streaming', 'aborted', 'failed',\n"
    "        'cutting over', 'moved', 'reverting', 'finished')),\n"
    "    created_database boolean NOT NULL,\n"
    "    started_at timestamptz NOT NULL DEFAULT now(),\n"
    "    started_by text NOT NULL,\n"
    "    updated_at timestamptz NOT NULL DEFAULT now(),\n"
    "    last_error text,\n"
    "    version int NOT NULL DEFAULT 0,\n"
    "    city text CHECK (length(city) BETWEEN 1 AND 63)\n"
    ");\n"
    "ALTER TABLE " DBMOVE_TABLE " ADD COLUMN IF NOT EXISTS city text"
    " CHECK (length(city) BETWEEN 1 AND 63);\n"
    "CREATE TABLE IF NOT EXISTS " DBMOVE_CITY_TABLE " (LIKE " DBMOVE_TABLE " INCLUDING ALL);\n"
    "ALTER TABLE " DBMOVE_CITY_TABLE " ALTER COLUMN city SET NOT NULL;\n"
    "END $pgnear$";

/* The columns every row is read with, but the city. */
#define ROW_COLUMNS                                                                                \
    "SELECT id, database, from_region, to_region, state, created_database,"                        \
    " (extract(epoch FROM started_at) * 1000000)::int8,"                                           \
    " (extract(epoch FROM updated_at) * 1000000)::int8, started_by, last_error, version,"
/* NULL as well in a table made before the column was */
#define DATABASE_ROWS ROW_COLUMNS " to_jsonb(m) ->> 'city' FROM " DBMOVE_TABLE " m"

const char dbmove_select_sql[] =
    DATABASE_ROWS " UNION ALL " ROW_COLUMNS " city FROM " DBMOVE_CITY_TABLE " ORDER BY 1 DESC";

const char dbmove_select_database_sql[] = DATABASE_ROWS " ORDER BY id DESC";

const char dbmove_upsert_sql[] =
    "INSERT INTO " DBMOVE_TABLE " (id, database, from_region, to_region, state,"
    " created_database, started_by, last_error, version)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), $9)"
    " ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state,"
    " created_database = EXCLUDED.created_database, last_error = EXCLUDED.last_error,"
    " version = EXCLUDED.version, updated_at = now()";

const char dbmove_city_upsert_sql[] =
    "INSERT INTO " DBMOVE_CITY_TABLE " (id, database, from_region, to_region, state,"
    " created_database, started_by, last_error, version, city)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, nullif($8, ''), $9, $10)"
    " ON CONFLICT (id) DO UPDATE SET state = EXCLUDED.state,"
    " created_database = EXCLUDED.created_database, last_error = EXCLUDED.last_error,"
    " version = EXCLUDED.version, updated_at = now()";

const char dbmove_marker_create_sql[] =
    "CREATE SCHEMA IF NOT EXISTS " DBMOVE_MARKER_SCHEMA ";\n"
    "CREATE TABLE IF NOT EXISTS " DBMOVE_MARKER_SCHEMA ".cutover ("
    "id int PRIMARY KEY CHECK (id = 1), token text NOT NULL)";

const char dbmove_marker_write_sql[] = "INSERT INTO " DBMOVE_MARKER_SCHEMA ".cutover VALUES (1, $1)"
                                       " ON CONFLICT (id) DO UPDATE SET token = EXCLUDED.token";

const char dbmove_marker_read_sql[] =
    "SELECT EXISTS (SELECT FROM " DBMOVE_MARKER_SCHEMA ".cutover WHERE token = $1)";

const char dbmove_marker_drop_sql[] = "DROP SCHEMA IF EXISTS " DBMOVE_MARKER_SCHEMA " CASCADE";

const char dbmove_holds_create_sql[] =
    "CREATE TABLE IF NOT EXISTS pgnear_move_holds (move_id bigint, version int, peer_id int,"
    " pids int[] NOT NULL, at timestamptz NOT NULL DEFAULT now(),"
    " PRIMARY KEY (move_id, version, peer_id))";

const char dbmove_hold_write_sql[] =
    "INSERT INTO pgnear_move_holds (move_id, version, peer_id, pids) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (move_id, version, peer_id) DO UPDATE SET pids = EXCLUDED.pids, at = now()";

const char dbmove_holds_read_sql[] =
    "SELECT peer_id, array_to_string(pids, ',') FROM pgnear_move_holds"
    " WHERE move_id = $1 AND version = $2";

const char dbmove_hold_drop_sql[] =
    "DELETE FROM pgnear_move_holds WHERE move_id = $1 AND peer_id = $2";

/* The word the record stores, and SHOW MOVES shows. */
const char *dbmove_state_name(enum dbmove_state state)
{
    return (size_t)state < sizeof(state_names) / sizeof(state_names[0]) ? state_names[state] : "?";
}

/* The record's word back to the state; false for a word this pgnear does not know. */
bool dbmove_state_parse(const char *text, enum dbmove_state *out)
{
    for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (strcmp(text, state_names[i]) == 0) {
            *out = (enum dbmove_state)i;
            return true;
        }
    return false;
}

bool dbmove_state_live(enum dbmove_state state)
{
    return state != DBMOVE_ABORTED && state != DBMOVE_FINISHED;
}

bool dbmove_state_in_target(enum dbmove_state state)
{
    return state == DBMOVE_MOVED || state == DBMOVE_FINISHED;
}

/* A text column into a field of the row: false when it does not fit. */
static bool take_text(const PGresult *res, int row, int col, char *buf, size_t cap)
{
    const char *v = PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col);
    size_t len = strlen(v);
    if (len >= cap)
        return false;
    memcpy(buf, v, len + 1);
    return true;
}

/* Row i of dbmove_select_sql's answer; -1 when a name does not fit or the state is unknown. */
static int row_parse(const PGresult *res, int i, struct dbmove_row *r)
{
    memset(r, 0, sizeof(*r));
    r->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    if (!take_text(res, i, 1, r->database, sizeof(r->database)) ||
        !take_text(res, i, 2, r->from_region, sizeof(r->from_region)) ||
        !take_text(res, i, 3, r->to_region, sizeof(r->to_region)) ||
        !dbmove_state_parse(PQgetvalue(res, i, 4), &r->state))
        return -1;
    r->created_database = PQgetvalue(res, i, 5)[0] == 't';
    r->started_at_us = strtoll(PQgetvalue(res, i, 6), NULL, 10);
    r->updated_at_us = strtoll(PQgetvalue(res, i, 7), NULL, 10);
    take_text(res, i, 8, r->started_by, sizeof(r->started_by));
    take_text(res, i, 9, r->last_error, sizeof(r->last_error));
    r->version = (int)strtol(PQgetvalue(res, i, 10), NULL, 10);
    if (!take_text(res, i, 11, r->city, sizeof(r->city)))
        return -1;
    return 0;
}

int dbmove_rows_parse(const PGresult *res, struct dbmove_row **rows, size_t *count, char *why,
                      size_t cap)
{
    *rows = NULL;
    *count = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 12) {
        snprintf(why, cap, DBMOVE_TABLE " has not the columns pgnear wrote");
        return -1;
    }
    int n = PQntuples(res);
    if (n == 0)
        return 0;
    if ((*rows = calloc((size_t)n, sizeof(**rows))) == NULL) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (row_parse(res, i, &(*rows)[i]) != 0) {
            snprintf(why, cap, "row %d of " DBMOVE_TABLE " is not one pgnear wrote", i + 1);
            free(*rows);
            *rows = NULL;
            return -1;
        }
    *count = (size_t)n;
    return 0;
}

void dbmove_subscription_name(int64_t id, char *buf, size_t cap)
{
    snprintf(buf, cap, DBMOVE_OBJECT_NAME "_%lld", (long long)id);
}

void dbmove_back_name(int64_t id, char *buf, size_t cap)
{
    snprintf(buf, cap, DBMOVE_OBJECT_NAME "_%lld_back", (long long)id);
}

const char *dbmove_home_region(const struct dbmove_row *r)
{
    if (r->state == DBMOVE_ABORTED)
        return "";
    return dbmove_state_in_target(r->state) ? r->to_region : r->from_region;
}
