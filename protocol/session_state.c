/*
 * session_state.c — reading a session's state back from its server and
 * the messages that replay it on another (session_state.h).
 */
#include "protocol/session_state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/lsn.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/sql_quote.h"

/*
 * The transaction_* settings are not the session's: they describe the
 * transaction going on, and a server refuses them once one has begun.
 */
#define STATE_NOT_SESSION                                                                          \
    "'transaction_isolation', 'transaction_read_only', 'transaction_deferrable'"

/* The query, without the settings named in skipped (quoted, comma-separated). */
#define STATE_QUERY(skipped)                                                                       \
    "SELECT k, n, v, t FROM ("                                                                     \
    "SELECT 0 AS o, 'f' AS k, 'temp' AS n, (SELECT pg_catalog.count(*) FROM pg_catalog.pg_class "  \
    "WHERE relnamespace = pg_catalog.pg_my_temp_schema())::text AS v, NULL::text AS t "            \
    "UNION ALL SELECT 0, 'f', 'advisory', (SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks "   \
    "WHERE locktype = 'advisory' AND pid = pg_catalog.pg_backend_pid())::text, NULL "              \
    "UNION ALL SELECT 0, 'f', 'hold', (SELECT pg_catalog.count(*) FROM pg_catalog.pg_cursors "     \
    "WHERE is_holdable)::text, NULL "                                                              \
    "UNION ALL SELECT 0, 'f', 'lsn', (CASE WHEN pg_catalog.pg_is_in_recovery() THEN "              \
    "pg_catalog.pg_last_wal_replay_lsn() ELSE pg_catalog.pg_current_wal_insert_lsn() END)::text, " \
    "pg_catalog.pg_is_in_recovery()::text || ' ' || pg_catalog.current_setting('wal_block_size') " \
    "|| ' ' || (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'wal_segment_size') "      \
    "UNION ALL SELECT 0, 'f', 'user', session_user::text, NULL "                                   \
    "UNION ALL SELECT 1, 's', name, pg_catalog.current_setting(name), NULL "                       \
    "FROM pg_catalog.pg_settings WHERE source = 'session' AND name NOT IN (" skipped ") "          \
    "UNION ALL SELECT 2, 'r', 'role', pg_catalog.current_setting('role'), NULL "                   \
    "UNION ALL SELECT 3, 'l', c, NULL, NULL FROM pg_catalog.pg_listening_channels() c "            \
    "UNION ALL SELECT 4, 'q', name, statement, NULL FROM pg_catalog.pg_prepared_statements "       \
    "WHERE from_sql "                                                                              \
    "UNION ALL SELECT 5, 'p', name, statement, parameter_types::pg_catalog.oid[]::text "           \
    "FROM pg_catalog.pg_prepared_statements WHERE NOT from_sql"                                    \
    ") s ORDER BY o"

/*
 * Limits on a statement that pgnear's own must not run under: read as
 * 'w' rows before they are lifted for its transaction alone, and set
 * again last in a replay (session_state_finish).
 */
#define STATE_LIMITS "'statement_timeout', 'lock_timeout'"

static const char state_query[] = STATE_QUERY(STATE_NOT_SESSION);

/*
 * The same in a transaction of pgnear's own, whatever the session set: read
 * committed (a standby refuses a serializable one; SET LOCAL: a plain SET
 * TRANSACTION leaves transaction_isolation's source 'session' in
 * pg_settings for the rest of the session, which the client would see, and
 * a direct connection does not show), no statement or lock
 * timeout, the session's own limits read first.  One Query, its statements
 * one implicit transaction, so that SET LOCAL ends with it.
 */
static const char state_query_own_limits[] =
    "SET LOCAL TRANSACTION ISOLATION LEVEL READ COMMITTED; "
    "SELECT 'w' AS k, n, pg_catalog.current_setting(n) AS v, NULL::text AS t "
    "FROM pg_catalog.unnest(ARRAY[" STATE_LIMITS "]) AS l (n); "
    "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; " STATE_QUERY(STATE_NOT_SESSION
                                                                                ", " STATE_LIMITS);

/*
 * The same for a client of transaction pooling whose settings follow it
 * (txn_settings.h): the limits only as the session set them, so that a
 * client that set none carries none.
 */
static const char state_query_session_limits[] =
    "SET LOCAL TRANSACTION ISOLATION LEVEL READ COMMITTED; "
    "SELECT 'w' AS k, name AS n, pg_catalog.current_setting(name) AS v, NULL::text AS t "
    "FROM pg_catalog.pg_settings WHERE source = 'session' AND name IN (" STATE_LIMITS "); "
    "SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; " STATE_QUERY(STATE_NOT_SESSION
                                                                                ", " STATE_LIMITS);

/* What a replay begins with: its own transaction's limits, as above. */
static const char own_isolation_sql[] = "SET LOCAL TRANSACTION ISOLATION LEVEL READ COMMITTED";
static const char own_limits_sql[] =
    "SELECT pg_catalog.set_config('statement_timeout', '0', true), "
    "pg_catalog.set_config('lock_timeout', '0', true)";

/* The one statement every setting and the role are replayed with. */
static const char set_config_sql[] = "SELECT pg_catalog.set_config($1, $2, false)";

#define OID_TEXT   25
#define STATE_COLS 4

const char *session_state_query(void)
{
    return state_query;
}

const char *session_state_query_own_limits(void)
{
    return state_query_own_limits;
}

const char *session_state_query_session_limits(void)
{
    return state_query_session_limits;
}

int session_state_init(struct session_state *st)
{
    memset(st, 0, sizeof(*st));
    st->replay = evbuffer_new();
    return st->replay != NULL ? SESSION_STATE_OK : SESSION_STATE_OOM;
}

/* Frees the replay buffer; st may be initialised again. */
void session_state_free(struct session_state *st)
{
    if (st->replay != NULL)
        evbuffer_free(st->replay);
    st->replay = NULL;
}

/* A column of a DataRow: NULL is p == NULL. */
struct state_col {
    const uint8_t *p;
    size_t len;
};

/*
 * A DataRow of the state query into its STATE_COLS columns, pointing into body;
 * NULL columns have p NULL.
 */
static int state_split_row(const uint8_t *body, size_t len, struct state_col cols[STATE_COLS])
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    if (pkt_get_u16(&r) != STATE_COLS || r.failed)
        return SESSION_STATE_BAD;
    for (int i = 0; i < STATE_COLS; i++) {
        uint32_t n = pkt_get_u32(&r);
        if (r.failed)
            return SESSION_STATE_BAD;
        cols[i].p = NULL;
        cols[i].len = 0;
        if (n == 0xffffffffu)
            continue;
        if ((cols[i].p = pkt_get_bytes(&r, n)) == NULL)
            return SESSION_STATE_BAD;
        cols[i].len = n;
    }
    return pkt_remaining(&r) == 0 ? SESSION_STATE_OK : SESSION_STATE_BAD;
}

/* Is the column exactly text (not NULL)? */
static bool col_is(const struct state_col *c, const char *text)
{
    size_t n = strlen(text);
    return c->p != NULL && c->len == n && memcmp(c->p, text, n) == 0;
}

/* A column as a C string: no NUL inside (the server sends none in text). */
static bool col_text(const struct state_col *c)
{
    return c->p != NULL && memchr(c->p, '\0', c->len) == NULL;
}

/* A column of decimal digits only (a count), at most 19 of them so it cannot overflow. */
static bool col_u64(const struct state_col *c, uint64_t *out)
{
    if (c->p == NULL || c->len == 0 || c->len > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < c->len; i++) {
        if (c->p[i] < '0' || c->p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(c->p[i] - '0');
    }
    *out = v;
    return true;
}

/* The replay grows by need bytes: within its bound? */
static int state_room(struct session_state *st, size_t need)
{
    size_t have = evbuffer_get_length(st->replay);
    return need <= SESSION_STATE_MAX_BYTES && have <= SESSION_STATE_MAX_BYTES - need
               ? SESSION_STATE_OK
               : SESSION_STATE_FULL;
}

/* Room in the replay for a message of body_len bytes, its header with it. */
static int state_fits(struct session_state *st, size_t body_len)
{
    return state_room(st, body_len + PKT_HEADER_LEN);
}

/* pkt_add.h's answer (0 or -1) as a SESSION_STATE_ code. */
static int state_added(int added)
{
    return added == 0 ? SESSION_STATE_OK : SESSION_STATE_OOM;
}

/* Parse of statement name (text, n types from types: big-endian, as a Parse carries them). */
static int state_parse(struct session_state *st, const struct state_col *name,
                       const struct state_col *text, const uint8_t *types, uint16_t ntypes)
{
    int rc = state_fits(st, name->len + 1 + text->len + 1 + 2 + (size_t)ntypes * 4);
    if (rc != SESSION_STATE_OK)
        return rc;
    return state_added(pkt_add_parse(st->replay, (const char *)name->p, name->len, text->p,
                                     text->len, types, ntypes));
}

/* Bind of the unnamed statement to the unnamed portal with text params, then its Execute. */
static int state_bind_execute(struct session_state *st, const struct state_col *params, int n)
{
    struct pkt_piece values[PKT_BIND_TEXT_MAX];
    size_t body = 1 + 1 + 2 + 2 + 2;
    for (int i = 0; i < n; i++) {
        body += 4 + params[i].len;
        values[i] = (struct pkt_piece){params[i].p, params[i].len};
    }
    int rc = state_fits(st, body);
    if (rc == SESSION_STATE_OK)
        rc = state_added(pkt_add_bind_text(st->replay, values, (uint16_t)n));
    if (rc == SESSION_STATE_OK)
        rc = state_fits(st, 5);
    if (rc == SESSION_STATE_OK)
        rc = state_added(pkt_add_execute_all(st->replay));
    return rc;
}

/* set_config(name, value, false): a setting, or the role. */
static int state_set(struct session_state *st, const struct state_col *name,
                     const struct state_col *value)
{
    static const struct state_col unnamed = {(const uint8_t *)"", 0};
    static const struct state_col sql = {(const uint8_t *)set_config_sql,
                                         sizeof(set_config_sql) - 1};
    static const uint8_t types[8] = {0, 0, 0, OID_TEXT, 0, 0, 0, OID_TEXT}; /* big-endian */
    if (!st->setting_statement_parsed) {
        int rc = state_parse(st, &unnamed, &sql, types, 2);
        if (rc != SESSION_STATE_OK)
            return rc;
        st->setting_statement_parsed = true;
    }
    struct state_col params[2] = {*name, *value};
    return state_bind_execute(st, params, 2);
}

int session_state_setting(struct session_state *st, const char *name, const char *value)
{
    const struct state_col n = {(const uint8_t *)name, strlen(name)};
    const struct state_col v = {(const uint8_t *)value, strlen(value)};
    st->settings++;
    return state_set(st, &n, &v);
}

/* One statement run once, through the unnamed statement: the next set_config parses again. */
static int state_run_once(struct session_state *st, const struct state_col *text)
{
    static const struct state_col unnamed = {(const uint8_t *)"", 0};
    int rc = state_parse(st, &unnamed, text, NULL, 0);
    st->setting_statement_parsed = false;
    return rc == SESSION_STATE_OK ? state_bind_execute(st, NULL, 0) : rc;
}

/* LISTEN "channel", the name quoted as an identifier. */
static int state_listen(struct session_state *st, const struct state_col *channel)
{
    if (state_room(st, channel->len * 2 + 16) != SESSION_STATE_OK)
        return SESSION_STATE_FULL;
    char *sql = malloc(channel->len * 2 + 16);
    if (sql == NULL)
        return SESSION_STATE_OOM;
    memcpy(sql, "LISTEN ", 7);
    size_t n = 7 + sql_quote_ident(sql + 7, (const char *)channel->p, channel->len);
    struct state_col text = {(const uint8_t *)sql, n};
    int rc = state_run_once(st, &text);
    free(sql);
    st->channels += rc == SESSION_STATE_OK;
    return rc;
}

/* "{23,25}": the parameter types of a protocol statement, big-endian as a Parse carries them. */
static int state_parse_types(const struct state_col *c, uint8_t **out, uint16_t *n)
{
    *out = NULL;
    *n = 0;
    if (c->p == NULL || c->len < 2 || c->p[0] != '{' || c->p[c->len - 1] != '}')
        return SESSION_STATE_BAD;
    if (c->len == 2)
        return SESSION_STATE_OK;
    size_t max = c->len / 2 + 1;
    if (max > SESSION_STATE_MAX_TYPES)
        max = SESSION_STATE_MAX_TYPES;
    uint8_t *types = calloc(max, 4);
    if (types == NULL)
        return SESSION_STATE_OOM;
    size_t count = 0, i = 1;
    while (i < c->len - 1) {
        uint64_t v = 0;
        size_t digits = 0;
        for (; i < c->len - 1 && c->p[i] >= '0' && c->p[i] <= '9' && digits < 11; i++, digits++)
            v = v * 10 + (uint64_t)(c->p[i] - '0');
        bool sep_ok = i == c->len - 1 || c->p[i] == ',';
        if (digits == 0 || v > UINT32_MAX || !sep_ok || count == max) {
            free(types);
            return SESSION_STATE_BAD;
        }
        pkt_store_be32(types + 4 * count++, (uint32_t)v);
        if (c->p[i] == ',' && ++i == c->len - 1) {
            free(types);
            return SESSION_STATE_BAD; /* "{23,}" */
        }
    }
    *out = types;
    *n = (uint16_t)count;
    return SESSION_STATE_OK;
}

/* A protocol-level prepared statement: its Parse goes into the replay, with its parameter types. */
static int state_statement(struct session_state *st, const struct state_col *cols)
{
    uint8_t *types;
    uint16_t ntypes;
    int rc = state_parse_types(&cols[3], &types, &ntypes);
    if (rc != SESSION_STATE_OK)
        return rc;
    rc = state_parse(st, &cols[1], &cols[2], types, ntypes);
    free(types);
    st->statements += rc == SESSION_STATE_OK;
    return rc;
}

/*
 * Where the session stands: "in_recovery block segment" in extra.  A
 * standby's replayed position is the end of a record; a primary's insert
 * position (past every commit, written or not: synchronous_commit = off
 * leaves the write position behind one) is taken back to where its last
 * record ended, which is what a standby's replay reaches (lsn.h).
 */
static int state_position(struct session_state *st, const struct state_col *pos,
                          const struct state_col *extra)
{
    char text[64], flag[8];
    unsigned long long block, segment;
    uint32_t tli;
    if (!col_text(extra) || extra->len >= sizeof(text))
        return SESSION_STATE_BAD;
    memcpy(text, extra->p, extra->len);
    text[extra->len] = '\0';
    if (sscanf(text, "%7s %llu %llu", flag, &block, &segment) != 3 ||
        (strcmp(flag, "true") != 0 && strcmp(flag, "false") != 0))
        return SESSION_STATE_BAD;
    st->in_recovery = strcmp(flag, "true") == 0;
    if (pos->p == NULL)
        return SESSION_STATE_OK; /* a standby that has replayed nothing yet */
    if (lsn_parse((const char *)pos->p, pos->len, &tli, &st->lsn) != LSN_OK || tli != 0)
        return SESSION_STATE_BAD;
    if (!st->in_recovery)
        st->lsn = lsn_record_end(st->lsn, block, segment);
    st->lsn_known = true;
    return SESSION_STATE_OK;
}

/*
 * A row of facts: the counts that make a session unmovable (temp tables,
 * advisory locks, held cursors), its position, its session user; an unknown one
 * is BAD.
 */
static int state_fact(struct session_state *st, const struct state_col *cols)
{
    uint64_t *count = col_is(&cols[1], "temp")       ? &st->temp_tables
                      : col_is(&cols[1], "advisory") ? &st->advisory_locks
                      : col_is(&cols[1], "hold")     ? &st->hold_cursors
                                                     : NULL;
    if (count != NULL)
        return col_u64(&cols[2], count) ? SESSION_STATE_OK : SESSION_STATE_BAD;
    if (col_is(&cols[1], "lsn"))
        return state_position(st, &cols[2], &cols[3]);
    if (col_is(&cols[1], "user")) {
        if (!col_text(&cols[2]) || cols[2].len >= sizeof(st->session_user))
            return SESSION_STATE_BAD;
        memcpy(st->session_user, cols[2].p, cols[2].len);
        st->session_user[cols[2].len] = '\0';
        return SESSION_STATE_OK;
    }
    return SESSION_STATE_BAD;
}

/* A limit on the session's statements ('w' row): kept to be set again last. */
static int state_limit(struct session_state *st, const struct state_col *cols)
{
    if (st->nlimits >= SESSION_STATE_LIMITS || !col_text(&cols[2]) ||
        cols[1].len >= sizeof(st->limits[0].name) || cols[2].len >= sizeof(st->limits[0].value))
        return SESSION_STATE_BAD;
    memcpy(st->limits[st->nlimits].name, cols[1].p, cols[1].len);
    st->limits[st->nlimits].name[cols[1].len] = '\0';
    memcpy(st->limits[st->nlimits].value, cols[2].p, cols[2].len);
    st->limits[st->nlimits].value[cols[2].len] = '\0';
    st->nlimits++;
    return SESSION_STATE_OK;
}

int session_state_row(struct session_state *st, const uint8_t *body, size_t len)
{
    struct state_col c[STATE_COLS];
    if (state_split_row(body, len, c) != SESSION_STATE_OK || c[0].len != 1 || !col_text(&c[1]))
        return SESSION_STATE_BAD;
    switch (c[0].p[0]) {
    case 'f':
        return state_fact(st, c);
    case 's':
        if (!col_text(&c[2]))
            return SESSION_STATE_BAD;
        st->settings++;
        return state_set(st, &c[1], &c[2]);
    case 'r':
        if (!col_text(&c[2]))
            return SESSION_STATE_BAD;
        if (col_is(&c[2], "none"))
            return SESSION_STATE_OK;
        st->role_set = true;
        return state_set(st, &c[1], &c[2]);
    case 'l':
        return state_listen(st, &c[1]);
    case 'q':
        if (!col_text(&c[2]))
            return SESSION_STATE_BAD;
        st->statements++;
        return state_run_once(st, &c[2]);
    case 'p':
        if (!col_text(&c[2]))
            return SESSION_STATE_BAD;
        return st->skip_protocol_statements ? SESSION_STATE_OK : state_statement(st, c);
    case 'w':
        return state_limit(st, c);
    default:
        return SESSION_STATE_BAD;
    }
}

int session_state_own_limits(struct session_state *st)
{
    const struct state_col isolation = {(const uint8_t *)own_isolation_sql,
                                        sizeof(own_isolation_sql) - 1};
    const struct state_col limits = {(const uint8_t *)own_limits_sql, sizeof(own_limits_sql) - 1};
    int rc = state_run_once(st, &isolation);
    return rc == SESSION_STATE_OK ? state_run_once(st, &limits) : rc;
}

int session_state_finish(struct session_state *st)
{
    int rc = SESSION_STATE_OK;
    /* The session's limits last: nothing of the replay runs under them. */
    for (unsigned i = 0; rc == SESSION_STATE_OK && i < st->nlimits; i++) {
        const struct state_col name = {(const uint8_t *)st->limits[i].name,
                                       strlen(st->limits[i].name)};
        const struct state_col value = {(const uint8_t *)st->limits[i].value,
                                        strlen(st->limits[i].value)};
        rc = state_set(st, &name, &value);
    }
    if (rc == SESSION_STATE_OK)
        rc = state_fits(st, 0);
    return rc == SESSION_STATE_OK ? state_added(pkt_add_sync(st->replay)) : rc;
}

const char *session_state_unmovable(const struct session_state *st, const char *login_user)
{
    if (st->temp_tables > 0)
        return "it has temporary tables";
    if (st->advisory_locks > 0)
        return "it holds session-level advisory locks";
    if (st->hold_cursors > 0)
        return "it has WITH HOLD cursors open";
    if (st->session_user[0] == '\0' || strcmp(st->session_user, login_user) != 0)
        return "it ran SET SESSION AUTHORIZATION";
    return NULL;
}
