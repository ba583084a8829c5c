/*
 * near_text.c — what the text of a nearest session's messages says of
 * where its transaction runs (near_text.h).
 */
#include "proxy/session/near_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "protocol/prepared.h"
#include "protocol/primary_state.h"
#include "protocol/sql_calls.h"
#include "protocol/sql_lex.h"
#include "protocol/sql_quote.h"
#include "protocol/txn_open.h"
#include "protocol/txn_pin.h"
#include "proxy/base/config.h"
#include "proxy/base/func_catalog.h"
#include "proxy/base/log.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/endpoint.h"
#include "proxy/session/near_state.h"
#include "proxy/session/session.h"

/*
 * The SQL a whole client message (msg, n bytes, header included) runs: a
 * Query's text, a Parse's, or that of the statement a Bind names.  NULL
 * for any other message, or one that names no statement pgnear knows.
 */
static const uint8_t *near_message_text(const struct session *s, const uint8_t *msg, size_t n,
                                        size_t *len)
{
    const char *body = (const char *)msg + PKT_HEADER_LEN;
    size_t blen = n - PKT_HEADER_LEN;
    size_t first = strnlen(body, blen);
    if (first >= blen)
        return NULL; /* malformed: the server refuses it */
    switch (msg[0]) {
    case 'Q':
        *len = first;
        return (const uint8_t *)body;
    case 'P':
        *len = strnlen(body + first + 1, blen - first - 1);
        return (const uint8_t *)body + first + 1;
    case 'B': {
        size_t name_len = strnlen(body + first + 1, blen - first - 1);
        if (s->prep == NULL || first + 1 + name_len >= blen)
            return NULL;
        const char *text = prep_client_statement_text(s->prep, body + first + 1, name_len, len);
        return (const uint8_t *)text;
    }
    default:
        return NULL;
    }
}

/* What near_text_calls and near_text_unknown ask of each name a text uses. */
struct near_call_check {
    const struct session *s;
    struct func_set *names; /* its database's copy; NULL: not known, so any name may write */
    bool settle;            /* near_text_unknown: the copy was read after the text came */
    bool unknown;           /* near_text_unknown: a name the copy does not know */
};

/*
 * What a name is as far as its database's copy knows (func_catalog.h):
 * what nearest_read_functions names is a function that only reads (a
 * reload applies at once); with no copy, nothing is known.
 */
static enum func_known near_name_known(const struct near_call_check *c, enum sql_use use,
                                       const char *name, size_t len)
{
    if (use == SQL_USE_CALL && config_nearest_read_function(c->s->w->cfg, name, len))
        return FUNC_READS;
    return c->names != NULL ? func_set_lookup(c->names, use, name, len) : FUNC_UNKNOWN;
}

/*
 * Whether a name may write, is not positively known to only read, or
 * reads what only the primary knows (primary_state.h: pg_prepared_xacts,
 * pg_stat_replication, ..., which a standby answers differently without
 * an error): for a primary.
 */
static bool near_name_may_write(void *arg, enum sql_use use, const char *name, size_t len)
{
    if (use != SQL_USE_OPERATOR && use != SQL_USE_KEYWORD && primary_state_named(name, len))
        return true;
    return near_name_known(arg, use, name, len) != FUNC_READS;
}

/* A name the copy does not know: noted absent when settled, else the copy is read again. */
static bool near_name_unknown(void *arg, enum sql_use use, const char *name, size_t len)
{
    struct near_call_check *c = arg;
    if (use >= SQL_USE_NAME || near_name_known(c, use, name, len) != FUNC_UNKNOWN)
        return false;
    if (c->settle)
        (void)func_set_note_absent(c->names, use, name, len); /* full: stays for a primary */
    else
        c->unknown = true;
    return false;
}

bool near_text_unknown(const struct session *s, struct func_set *names, const uint8_t *msg,
                       size_t n, bool settle)
{
    size_t len = 0;
    const uint8_t *text = near_message_text(s, msg, n, &len);
    if (text == NULL || names == NULL || func_set_implicit(names) != NULL)
        return false;
    struct near_call_check check = {.s = s, .names = names, .settle = settle};
    struct sql_calls calls;
    sql_calls_scan(text, len, near_name_unknown, &check, &calls);
    if (check.unknown)
        slog_debug(s, "nearest: it names what its database's catalog does not know yet");
    return check.unknown;
}

/* Why a name places a text on a primary, for the log. */
static const char *near_found_why(const struct near_call_check *c, const struct sql_calls *calls)
{
    if (primary_state_named(calls->name, strlen(calls->name)) != NULL)
        return "reads what only the primary knows";
    if (c->names == NULL)
        return "names something while its database's catalog is not read yet";
    switch (near_name_known(c, calls->use, calls->name, strlen(calls->name))) {
    case FUNC_WRITES:
        return "names what its database's catalog says may write";
    case FUNC_ABSENT:
        return "names what its database's catalog does not have";
    default:
        return "names what its database's catalog does not know";
    }
}

/*
 * Whether a text runs what may write though a standby runs it without an
 * error (func_catalog.h), or what pgnear does not positively know to only
 * read: DO, CALL, or a name its database's copy says may write, does not
 * have or does not know (any name while the copy is not known, every text
 * while something of the database may write unnamed), unless
 * nearest_read_functions vouches for the function.  A text that changes
 * routines has every worker read its catalog again, now and as its
 * transaction ends (near_on_ready).
 */
static bool near_text_calls(const struct session *s, const uint8_t *text, size_t len)
{
    struct near_call_check check = {
        .s = s,
        .names = func_catalog_get(near_routines(s), s->w->cfg),
    };
    struct sql_calls calls;
    sql_calls_scan(text, len, near_name_may_write, &check, &calls);
    if (calls.changes_routines) {
        near_note_routines_changed(s);
        func_catalog_changed(&s->w->funcs);
    }
    if (check.names != NULL && func_set_implicit(check.names) != NULL) {
        slog_debug(s, "nearest: in its database %s may write unnamed: for a primary",
                   func_set_implicit(check.names));
        return true;
    }
    if (calls.found == SQL_ROUTINE_NONE)
        return false;
    slog_debug(s, "nearest: it %s%s%s: for a primary",
               calls.found == SQL_ROUTINE_DO     ? "runs DO"
               : calls.found == SQL_ROUTINE_CALL ? "runs CALL"
                                                 : near_found_why(&check, &calls),
               calls.found == SQL_ROUTINE_FUNCTION ? ", " : "",
               calls.found == SQL_ROUTINE_FUNCTION ? calls.name : "");
    return true;
}

/*
 * What a transaction that this message begins needs (near.h): a primary
 * for a block that is not READ ONLY, an advisory lock, or a text that
 * would pin the session; else the nearest host.  read_only: a READ ONLY
 * block.  A primary, not read-write: a role or database whose sessions
 * start read-only (default_transaction_read_only) must get the primary's
 * own 25006 for a write, not a failed login there.
 */
enum session_need near_need_of(const struct session *s, const uint8_t *msg, size_t n,
                               bool *read_only)
{
    size_t len = 0;
    *read_only = false;
    /* A named statement pgnear does not follow pins the session: where writes run. */
    if (msg[0] == 'P' && s->prep == NULL && n > PKT_HEADER_LEN && msg[PKT_HEADER_LEN] != '\0')
        return NEED_PRIMARY;
    if (near_serializable(s))
        return NEED_PRIMARY;
    const uint8_t *text = near_message_text(s, msg, n, &len);
    if (text == NULL)
        return NEED_NEAREST;
    struct txn_open open;
    txn_open_scan(text, len, &open);
    if (open.serializable)
        return NEED_PRIMARY; /* a standby refuses it */
    if (open.first == TXN_FIRST_BEGIN) {
        *read_only = open.access == TXN_ACCESS_READ_ONLY;
        return *read_only && !open.advisory_lock ? NEED_NEAREST : NEED_PRIMARY;
    }
    if (open.later_writes) {
        /* Its first statement's answer may stream past the hold before a standby refuses it. */
        slog_debug(s, "nearest: a statement after its first is not a plain read: for a primary");
        return NEED_PRIMARY;
    }
    if (open.advisory_lock || near_text_pins(s, text, len, NULL) != NULL ||
        near_text_calls(s, text, len))
        return NEED_PRIMARY;
    return NEED_NEAREST;
}

const char *near_text_pins(const struct session *s, const uint8_t *sql, size_t len, bool *changes)
{
    if (!near_own_slots(s))
        return txn_pin_scan(sql, len);
    bool changed = false;
    const char *why = txn_pin_scan_carried(sql, len, &changed);
    if (changes != NULL && changed)
        *changes = true;
    return why;
}

const char *near_bind_pins(struct session *s, const uint8_t *msg, size_t n)
{
    const char *body = (const char *)msg + PKT_HEADER_LEN;
    size_t blen = n - PKT_HEADER_LEN;
    size_t portal = strnlen(body, blen);
    size_t name_len = portal < blen ? strnlen(body + portal + 1, blen - portal - 1) : 0;
    if (portal >= blen || portal + 1 + name_len >= blen) {
        near_note_state_change(s); /* names longer than read: unknown, so maybe */
        return NULL;
    }
    size_t len = 0;
    bool changes = false;
    const char *text = prep_client_statement_text(s->prep, body + portal + 1, name_len, &len);
    const char *why = text != NULL ? near_text_pins(s, (const uint8_t *)text, len, &changes) : NULL;
    if (changes)
        near_note_state_change(s);
    return why;
}

/* The refusals' words: their details and hints. */
static const char DETAIL_LOCK[] =
    "The block is READ ONLY, so pgnear runs it on the standby nearest "
    "the caller, where an advisory lock excludes no session of the "
    "primary.";
static const char DETAIL_PIN[] = "The block is READ ONLY, so pgnear runs it on the standby nearest "
                                 "the caller, and this statement would keep the session on that "
                                 "standby, where its writes fail.";
static const char DETAIL_STANDBY[] = "The block is READ ONLY, so pgnear runs it on the standby "
                                     "nearest the caller, which cannot run this statement.";
static const char HINT_OUTSIDE[] = "Run the statement outside the READ ONLY block, or begin the "
                                   "block without READ ONLY: pgnear then runs it on a primary.";
static const char HINT_BLOCK_RW[] = "Begin the block without READ ONLY: pgnear then runs it on a "
                                    "primary.";
static const char HINT_IN_BEGIN[] = "Say it in BEGIN itself (BEGIN ISOLATION LEVEL SERIALIZABLE, "
                                    "BEGIN READ WRITE): pgnear then runs the block on a primary.";

static bool near_refusal_set(struct near_refusal *out, const char *what, const char *detail,
                             const char *hint)
{
    snprintf(out->what, sizeof(out->what), "%s", what);
    out->detail = detail;
    out->hint = hint;
    return true;
}

/*
 * The routines a standby refuses with 25006 (PreventCommandDuringRecovery)
 * that a primary runs in a READ ONLY block: those that assign a
 * transaction id.  The first called, for near_block_refusal.
 */
struct near_xid_call {
    char name[SQL_NAME_MAX + 1];
};

static bool near_call_assigns_xid(void *arg, enum sql_use use, const char *name, size_t len)
{
    struct near_xid_call *c = arg;
    if (use == SQL_USE_CALL && c->name[0] == '\0' &&
        ((len == 12 && memcmp(name, "txid_current", 12) == 0) ||
         (len == 18 && memcmp(name, "pg_current_xact_id", 18) == 0)))
        snprintf(c->name, sizeof(c->name), "%s", name);
    return false; /* the scan's own findings stay as they are */
}

bool near_block_refusal(const struct session *s, const uint8_t *msg, size_t n,
                        struct near_refusal *out)
{
    size_t len = 0;
    const uint8_t *text = near_message_text(s, msg, n, &len);
    if (text == NULL || (msg[0] != 'Q' && msg[0] != 'P'))
        return false;
    struct txn_open open;
    txn_open_scan(text, len, &open);
    if (open.advisory_lock)
        return near_refusal_set(out, "an advisory lock", DETAIL_LOCK, HINT_OUTSIDE);
    if (open.first == TXN_FIRST_SET_TRANSACTION &&
        (open.serializable || open.access == TXN_ACCESS_READ_WRITE))
        return near_refusal_set(out,
                                open.serializable ? "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"
                                                  : "SET TRANSACTION READ WRITE",
                                DETAIL_STANDBY, HINT_IN_BEGIN);
    const char *lock = txn_open_lock_refused(text, len);
    if (lock != NULL) {
        char what[sizeof(out->what)];
        snprintf(what, sizeof(what), "LOCK TABLE IN %s MODE", lock);
        return near_refusal_set(out, what, DETAIL_STANDBY, HINT_BLOCK_RW);
    }
    struct sql_calls calls;
    struct near_xid_call xid = {.name = ""};
    sql_calls_scan(text, len, near_call_assigns_xid, &xid, &calls);
    if (calls.notifies)
        return near_refusal_set(out, "NOTIFY", DETAIL_STANDBY, HINT_OUTSIDE);
    if (xid.name[0] != '\0') {
        char what[sizeof(out->what)];
        snprintf(what, sizeof(what), "%s()", xid.name);
        return near_refusal_set(out, what, DETAIL_STANDBY, HINT_OUTSIDE);
    }
    const char *pin = near_text_pins(s, text, len, NULL);
    return pin != NULL && near_refusal_set(out, pin, DETAIL_PIN, HINT_OUTSIDE);
}

/* Appends text to sql (cap bytes, *used of them used), as a literal when quote; false: no room. */
static bool near_sql_add(char *sql, size_t cap, size_t *used, const char *text, bool quote)
{
    if (quote) {
        if (!sql_quote_literal_into(sql + *used, cap - *used, text))
            return false;
    } else if ((size_t)snprintf(sql + *used, cap - *used, "%s", text) >= cap - *used) {
        return false;
    }
    *used += strlen(sql + *used);
    return true;
}

/* The highest $n a text (len bytes) names, up to UINT16_MAX; 0: none. */
static size_t near_text_params(const uint8_t *text, size_t len)
{
    struct sql_lexer lx;
    struct sql_token t;
    size_t most = 0;
    sql_lex_init(&lx, text, len);
    for (sql_lex_next(&lx, &t); t.kind != SQL_TOK_END; sql_lex_next(&lx, &t)) {
        size_t k = 0;
        for (size_t i = t.start + 1; t.kind == SQL_TOK_PARAM && i < t.end && k <= UINT16_MAX; i++)
            k = k * 10 + (size_t)(text[i] - '0');
        if (t.kind == SQL_TOK_PARAM && k > most)
            most = k > UINT16_MAX ? UINT16_MAX : k;
    }
    return most;
}

/*
 * A Parse of the statement the client's Parse (msg, n bytes) names, its
 * text sql, onto out.  Its parameters: as many as the client's declared
 * or its text names, whichever is more, each of the type declared, or
 * text where none was: a Bind of the client's values is then accepted,
 * as for the text it replaces, and the Execute raises the refusal (an
 * error at Parse itself no text can raise in its own words).  False: out
 * of memory.
 */
static bool near_refusal_parse(struct evbuffer *out, const uint8_t *msg, size_t n, const char *sql)
{
    const uint8_t *body = msg + PKT_HEADER_LEN;
    size_t blen = n - PKT_HEADER_LEN;
    size_t name_len = strnlen((const char *)body, blen);
    size_t text_len = strnlen((const char *)body + name_len + 1, blen - name_len - 1);
    size_t at = name_len + 1 + text_len + 1; /* its count of types, when there */
    size_t declared = at + 2 <= blen ? ((size_t)body[at] << 8 | body[at + 1]) : 0;
    if (declared > (blen - (at + 2 <= blen ? at + 2 : blen)) / 4)
        declared = 0; /* malformed: the refusal instead of the server's */
    size_t count = near_text_params(body + name_len + 1, text_len);
    if (declared > count)
        count = declared;
    uint8_t *types = count > 0 ? malloc(4 * count) : NULL;
    if (count > 0 && types == NULL)
        return false;
    for (size_t i = 0; i < count; i++) {
        uint32_t type = i < declared ? pkt_be32(body + at + 2 + 4 * i) : 0;
        /* text where none was declared: a client's value in text accepted as it is */
        pkt_store_be32(types + 4 * i, type != 0 ? type : 25);
    }
    bool ok = pkt_add_parse(out, (const char *)body, name_len, sql, strlen(sql), types,
                            (uint16_t)count) == 0;
    free(types);
    return ok;
}

/*
 * The Query or Parse at the head of client.in (msg, n bytes) replaced by
 * one that has the standby raise pgnear's refusal (near_block_refusal:
 * r), so that the block fails there as a server that refused the
 * statement fails it and the client gets the error in its place: a DO
 * of pgnear's own (a Parse keeps its statement's name, near_refusal_parse).
 * False: out of memory.
 */
bool near_refuse_in_block(struct session *s, const uint8_t *msg, size_t n,
                          const struct near_refusal *r)
{
    char sql[1024], message[256];
    size_t used = 0;
    snprintf(message, sizeof(message), "pgnear cannot run %s in a block that runs on a standby",
             r->what);
    if (!near_sql_add(
            sql, sizeof(sql), &used,
            "DO $pgnear$BEGIN RAISE EXCEPTION USING ERRCODE = '0A000', MESSAGE = ", false) ||
        !near_sql_add(sql, sizeof(sql), &used, message, true) ||
        !near_sql_add(sql, sizeof(sql), &used, ", DETAIL = ", false) ||
        !near_sql_add(sql, sizeof(sql), &used, r->detail, true) ||
        !near_sql_add(sql, sizeof(sql), &used, ", HINT = ", false) ||
        !near_sql_add(sql, sizeof(sql), &used, r->hint, true) ||
        !near_sql_add(sql, sizeof(sql), &used, "; END$pgnear$", false))
        return false;
    slog_info(s, "nearest: refused %s in a READ ONLY block on a standby", r->what);
    struct evbuffer *replaced = evbuffer_new();
    bool ok = replaced != NULL &&
              (msg[0] == 'P' ? near_refusal_parse(replaced, msg, n, sql)
                             : pkt_add_query(replaced, sql) == 0) &&
              evbuffer_drain(s->client.in, n) == 0 &&
              evbuffer_prepend_buffer(s->client.in, replaced) == 0;
    if (replaced != NULL)
        evbuffer_free(replaced);
    return ok;
}
