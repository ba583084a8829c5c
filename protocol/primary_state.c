/*
 * primary_state.c — the views and functions that answer for the primary
 * alone, named in a text (primary_state.h).
 */
#include "protocol/primary_state.h"

#include <stdbool.h>
#include <string.h>

#include "protocol/sql_lex.h"

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

/* The listed name that a word (folded) or quoted identifier (exact) of n bytes is, or NULL. */
static const char *primary_state_name(const uint8_t *w, size_t n, bool quoted)
{
    for (size_t i = 0; i < sizeof(PRIMARY_STATE) / sizeof(PRIMARY_STATE[0]); i++) {
        const char *name = PRIMARY_STATE[i];
        if (strlen(name) != n)
            continue;
        if (quoted ? memcmp(w, name, n) == 0 : sql_word_equals(w, n, name))
            return name;
    }
    return NULL;
}

const char *primary_state_read(const uint8_t *text, size_t len)
{
    struct sql_lexer lx;
    struct sql_token t;
    sql_lex_init(&lx, text, len);
    for (sql_lex_next_code(&lx, &t); t.kind != SQL_TOK_END; sql_lex_next_code(&lx, &t)) {
        if (t.kind != SQL_TOK_WORD && t.kind != SQL_TOK_QUOTED)
            continue;
        const char *name = primary_state_name(text + t.body, t.body_len, t.kind == SQL_TOK_QUOTED);
        if (name != NULL)
            return name;
    }
    return NULL;
}
