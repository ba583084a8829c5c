/*
 * primary_state.c — the views and functions that answer for the primary
 * alone, named in a text (primary_state.h).
 */
#include "protocol/primary_state.h"

#include <stdbool.h>
#include <string.h>

#include "protocol/sql_calls.h"

static const char *const PRIMARY_STATE[] = {
    "pg_prepared_xacts",
    "pg_prepared_xact",
    "pg_stat_replication",
    "pg_stat_get_wal_senders",
    "pg_replication_slots",
    "pg_get_replication_slots",
    "pg_stat_activity",
    "pg_stat_get_activity",
    "pg_locks",
    "pg_lock_status",
    "pg_blocking_pids",
    "pg_stat_database",
    "pg_stat_database_conflicts",
    "txid_current_snapshot",
    "pg_current_snapshot",
    "pg_last_committed_xact",
};

const char *primary_state_named(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof(PRIMARY_STATE) / sizeof(PRIMARY_STATE[0]); i++)
        if (strlen(PRIMARY_STATE[i]) == len && memcmp(name, PRIMARY_STATE[i], len) == 0)
            return PRIMARY_STATE[i];
    return NULL;
}

/* sql_calls_scan's question of each name: one of the list, kept in *arg. */
static bool primary_state_wanted(void *arg, enum sql_use use, const char *name, size_t len)
{
    const char **found = arg;
    const char *listed = NULL;
    if (use != SQL_USE_OPERATOR && use != SQL_USE_KEYWORD)
        listed = primary_state_named(name, len);
    if (listed != NULL && *found == NULL)
        *found = listed; /* the first: the scan asks on after it */
    return listed != NULL;
}

const char *primary_state_read(const uint8_t *text, size_t len)
{
    const char *found = NULL;
    struct sql_calls calls;
    sql_calls_scan(text, len, primary_state_wanted, &found, &calls);
    return calls.found == SQL_ROUTINE_FUNCTION ? found : NULL;
}
