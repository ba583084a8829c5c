/*
 * history.c — the pgnear_schema_history table (history.h).
 */
#include "proxy/migrate/history.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char migrate_history_create_sql[] =
    "CREATE TABLE IF NOT EXISTS " MIGRATE_HISTORY_TABLE " (\n"
    "    version bigint PRIMARY KEY CHECK (version > 0),\n"
    "    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 63),\n"
    "    checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),\n"
    "    state text NOT NULL\n"
    "        CHECK (state IN ('running', 'applied', 'failed', 'uncertain', 'reverted',\n"
    "                         'reverting')),\n"
    "    statements_done integer NOT NULL DEFAULT 0 CHECK (statements_done >= 0),\n"
    "    statements_total integer NOT NULL CHECK (statements_total >= 0),\n"
    "    started_at timestamptz NOT NULL DEFAULT now(),\n"
    "    finished_at timestamptz,\n"
    "    run_by text NOT NULL,\n"
    "    error text,\n"
    "    error_statement integer CHECK (error_statement > 0)\n"
    ")";

const char migrate_history_exists_sql[] =
    "SELECT to_regclass('" MIGRATE_HISTORY_TABLE "') IS NOT NULL";

/* Times as integer microseconds: nothing to parse but a number. */
const char migrate_history_select_sql[] =
    "SELECT version, name, checksum, state, statements_done, statements_total,"
    " (extract(epoch FROM started_at) * 1000000)::int8,"
    " (extract(epoch FROM finished_at) * 1000000)::int8,"
    " run_by, error, error_statement"
    " FROM " MIGRATE_HISTORY_TABLE " ORDER BY version";

/*
 * The lock is tried only when a row is running (the scalar subquery is not
 * run otherwise), and released in the same statement when it was taken.
 */
const char migrate_history_select_live_sql[] =
    "WITH try AS MATERIALIZED (SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY ") AS free),"
    " released AS MATERIALIZED (SELECT free, CASE WHEN free THEN "
    "pg_advisory_unlock(" MIGRATE_LOCK_KEY ") END FROM try)"
    " SELECT version, name, checksum,"
    " CASE WHEN state = 'running' AND (SELECT free FROM released) THEN 'uncertain' ELSE state END,"
    " statements_done, statements_total,"
    " (extract(epoch FROM started_at) * 1000000)::int8,"
    " (extract(epoch FROM finished_at) * 1000000)::int8,"
    " run_by, error, error_statement"
    " FROM " MIGRATE_HISTORY_TABLE " ORDER BY version";

/* The history row of a step: $1 version ... $9 error_statement; state, done and error vary. */
const char migrate_history_upsert_sql[] =
    "INSERT INTO " MIGRATE_HISTORY_TABLE
    " (version, name, checksum, state, statements_done, statements_total, started_at,"
    " finished_at, run_by, error, error_statement)"
    " VALUES ($1, $2, $3, $4, $5, $6, now(),"
    " CASE WHEN $4 = 'running' THEN NULL ELSE clock_timestamp() END, $7, NULLIF($8, ''),"
    " NULLIF($9, '')::integer)"
    " ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, checksum = EXCLUDED.checksum,"
    " state = EXCLUDED.state, statements_done = EXCLUDED.statements_done,"
    " statements_total = EXCLUDED.statements_total, started_at = EXCLUDED.started_at,"
    " finished_at = EXCLUDED.finished_at, run_by = EXCLUDED.run_by, error = EXCLUDED.error,"
    " error_statement = EXCLUDED.error_statement";

/* A no-transaction step: its count after each statement, then how it ended. */
const char migrate_history_done_sql[] =
    "UPDATE " MIGRATE_HISTORY_TABLE " SET statements_done = $2 WHERE version = $1";
const char migrate_history_end_sql[] =
    "UPDATE " MIGRATE_HISTORY_TABLE " SET state = $2, statements_done = $3,"
    " finished_at = clock_timestamp(), error = NULLIF($4, ''),"
    " error_statement = NULLIF($5, '')::integer WHERE version = $1";

/* DOWN: the row of a step whose down script ran (in its transaction, when it has one). */
const char migrate_history_revert_sql[] =
    "UPDATE " MIGRATE_HISTORY_TABLE " SET state = 'reverted', finished_at = clock_timestamp(),"
    " run_by = $2, error = NULL, error_statement = NULL WHERE version = $1";

/*
 * DOWN, a no-transaction down script: its row 'reverting' before its
 * first statement ($2: statements already done, when it goes on), its
 * count after each, 'reverted' at the end (migrate_history_revert_sql).
 */
const char migrate_history_reverting_sql[] =
    "UPDATE " MIGRATE_HISTORY_TABLE " SET state = 'reverting', statements_done = $2,"
    " statements_total = $3, started_at = now(), finished_at = NULL, run_by = $4, error = NULL,"
    " error_statement = NULL WHERE version = $1";

/* RESOLVE: "resolved as applied by <run_by> at <time>", after the error the row had. */
const char migrate_history_resolve_sql[] =
    "UPDATE " MIGRATE_HISTORY_TABLE " SET state = $2, finished_at = clock_timestamp(),"
    " error = concat_ws('; ', error, 'resolved as ' || $2 || ' by ' || $3 || ' at ' ||"
    " clock_timestamp()::text) WHERE version = $1 AND state IN ('running', 'uncertain', 'failed', "
    "'reverting')";

/*
 * The lock, and who holds it when it is not free: a bigint advisory lock
 * shows in pg_locks as classid (high 32 bits), objid (low 32), objsubid 1.
 */
const char migrate_lock_try_sql[] =
    "SELECT pg_try_advisory_lock(" MIGRATE_LOCK_KEY "),"
    " (SELECT format('\"%s\" (server process %s, from %s, connected since %s)',"
    " a.application_name, a.pid, coalesce(host(a.client_addr), 'a Unix socket'),"
    " date_trunc('second', a.backend_start))"
    " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
    " AND l.classid::bigint = (" MIGRATE_LOCK_KEY "::bigint >> 32)"
    " AND l.objid::bigint = (" MIGRATE_LOCK_KEY "::bigint & 4294967295)"
    " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND a.pid <> pg_backend_pid() LIMIT 1)";

enum history_column {
    COL_VERSION,
    COL_NAME,
    COL_CHECKSUM,
    COL_STATE,
    COL_DONE,
    COL_TOTAL,
    COL_STARTED,
    COL_FINISHED,
    COL_RUN_BY,
    COL_ERROR,
    COL_ERROR_STATEMENT,
    HISTORY_COLUMNS
};

static const char *const column_names[HISTORY_COLUMNS] = {
    "version",    "name",        "checksum", "state", "statements_done", "statements_total",
    "started_at", "finished_at", "run_by",   "error", "error_statement"};

static const char *const state_names[] = {"pending",   "running",  "applied",  "failed",
                                          "uncertain", "reverted", "reverting"};

const char *migrate_state_name(enum migrate_state state)
{
    return (size_t)state < sizeof(state_names) / sizeof(state_names[0]) ? state_names[state] : "?";
}

void migrate_history_down_resumable(struct migrate_history *h, int64_t target, int64_t *version,
                                    int64_t *done)
{
    *version = 0;
    *done = 0;
    for (size_t i = 0; i < h->count; i++) {
        struct migrate_history_row *row = &h->rows[i];
        if (row->state != MIGRATE_REVERTING || row->version <= target)
            continue;
        row->state = MIGRATE_APPLIED;
        if (row->version > *version) {
            *version = row->version;
            *done = row->statements_done;
        }
    }
}

bool migrate_state_parse(const char *text, enum migrate_state *out)
{
    for (size_t i = MIGRATE_RUNNING; i < sizeof(state_names) / sizeof(state_names[0]); i++)
        if (strcmp(text, state_names[i]) == 0) {
            *out = (enum migrate_state)i;
            return true;
        }
    return false;
}

/* A decimal integer, all of the text. */
static bool parse_int64(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0)
        return false;
    *out = v;
    return true;
}

/* A checksum as history.c writes it: lower-case hex of SHA-256, nothing else. */
static bool is_checksum(const char *text)
{
    size_t n = strspn(text, "0123456789abcdef");
    return n == MIGRATE_CHECKSUM_HEX && text[n] == '\0';
}

/* The numbers of a row; NULL is allowed where nullable says so (and reads 0). */
static bool row_number(const PGresult *res, int row, int col, bool nullable, int64_t min,
                       int64_t *out)
{
    *out = 0;
    if (PQgetisnull(res, row, col))
        return nullable;
    return parse_int64(PQgetvalue(res, row, col), out) && *out >= min;
}

/* -1 with err naming the row's version (or number) and the column. */
static int row_fault(const PGresult *res, int row, int col, char *err, size_t errcap)
{
    const char *v = PQgetisnull(res, row, col) ? "NULL" : PQgetvalue(res, row, col);
    snprintf(err, errcap, "%s row %d has an invalid %s: \"%.64s\"", MIGRATE_HISTORY_TABLE, row + 1,
             column_names[col], v);
    return -1;
}

/*
 * One history row into out, each column checked; a row pgnear did not write
 * that way fails naming the row and column.
 */
static int parse_row(const PGresult *res, int row, struct migrate_history_row *out, char *err,
                     size_t errcap)
{
    static const int64_t mins[HISTORY_COLUMNS] = {[COL_VERSION] = 1,
                                                  [COL_STARTED] = INT64_MIN,
                                                  [COL_FINISHED] = INT64_MIN,
                                                  [COL_ERROR_STATEMENT] = 1};
    int64_t *numbers[HISTORY_COLUMNS] = {
        [COL_VERSION] = &out->version,         [COL_DONE] = &out->statements_done,
        [COL_TOTAL] = &out->statements_total,  [COL_STARTED] = &out->started_at_us,
        [COL_FINISHED] = &out->finished_at_us, [COL_ERROR_STATEMENT] = &out->error_statement};
    for (int col = 0; col < HISTORY_COLUMNS; col++) {
        bool nullable = col == COL_FINISHED || col == COL_ERROR || col == COL_ERROR_STATEMENT;
        if (numbers[col] != NULL && !row_number(res, row, col, nullable, mins[col], numbers[col]))
            return row_fault(res, row, col, err, errcap);
        if (numbers[col] == NULL && !nullable && PQgetisnull(res, row, col))
            return row_fault(res, row, col, err, errcap);
    }
    const char *name = PQgetvalue(res, row, COL_NAME);
    const char *checksum = PQgetvalue(res, row, COL_CHECKSUM);
    if (name[0] == '\0' || strlen(name) > MIGRATE_NAME_MAX)
        return row_fault(res, row, COL_NAME, err, errcap);
    if (!is_checksum(checksum))
        return row_fault(res, row, COL_CHECKSUM, err, errcap);
    if (!migrate_state_parse(PQgetvalue(res, row, COL_STATE), &out->state))
        return row_fault(res, row, COL_STATE, err, errcap);
    memcpy(out->name, name, strlen(name) + 1);
    memcpy(out->checksum, checksum, MIGRATE_CHECKSUM_HEX + 1);
    snprintf(out->run_by, sizeof(out->run_by), "%s", PQgetvalue(res, row, COL_RUN_BY));
    out->has_error = !PQgetisnull(res, row, COL_ERROR);
    snprintf(out->error, sizeof(out->error), "%s", PQgetvalue(res, row, COL_ERROR));
    return 0;
}

int migrate_history_parse(const PGresult *res, struct migrate_history *out, char *err,
                          size_t errcap)
{
    memset(out, 0, sizeof(*out));
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != HISTORY_COLUMNS) {
        snprintf(err, errcap, "%s: the query did not return the table's %d columns",
                 MIGRATE_HISTORY_TABLE, HISTORY_COLUMNS);
        return -1;
    }
    int n = PQntuples(res);
    out->rows = calloc(n > 0 ? (size_t)n : 1, sizeof(*out->rows));
    if (out->rows == NULL) {
        snprintf(err, errcap, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        struct migrate_history_row *row = &out->rows[out->count];
        if (parse_row(res, i, row, err, errcap) != 0)
            return -1;
        if (out->count > 0 && row->version <= row[-1].version) {
            snprintf(err, errcap, "%s rows are not in ascending order of version at row %d",
                     MIGRATE_HISTORY_TABLE, i + 1);
            return -1;
        }
        out->count++;
    }
    return 0;
}

/* Frees the rows; h may be parsed into again. */
void migrate_history_free(struct migrate_history *h)
{
    free(h->rows);
    h->rows = NULL;
    h->count = 0;
}

/* bsearch's order on the rows, sorted by version. */
static int row_version_cmp(const void *key, const void *elem)
{
    int64_t k = *(const int64_t *)key, v = ((const struct migrate_history_row *)elem)->version;
    return (k > v) - (k < v);
}

const struct migrate_history_row *migrate_history_find(const struct migrate_history *h,
                                                       int64_t version)
{
    if (h->count == 0)
        return NULL;
    return bsearch(&version, h->rows, h->count, sizeof(h->rows[0]), row_version_cmp);
}
