/*
 * txn_open.c — the words that begin a transaction, and advisory locks
 * (txn_open.h).
 *
 * The tokens come from sql_lex.c; comments between them are skipped.  The
 * first statement's first words say what it is; its access mode is the
 * last READ ONLY or READ WRITE pair among its tokens, as PostgreSQL takes
 * the last of several modes.  A ';' ends a statement.
 */
#include "protocol/txn_open.h"

#include <string.h>
#include <strings.h>

#include "protocol/sql_calls.h"
#include "protocol/sql_lex.h"

/* Whether the n bytes at w begin with prefix, letters folded when fold. */
static bool starts_with(const uint8_t *w, size_t n, const char *prefix, bool fold)
{
    size_t k = strlen(prefix);
    if (n <= k)
        return false;
    for (size_t i = 0; i < k; i++) {
        if ((fold ? sql_fold(w[i]) : w[i]) != (uint8_t)prefix[i])
            return false;
    }
    return true;
}

/* pg_advisory_... or pg_try_advisory_..., as a word or quoted exactly (U& escapes decoded). */
static bool names_advisory_lock(const struct sql_lexer *lx, const struct sql_token *t)
{
    if (t->kind != SQL_TOK_WORD && t->kind != SQL_TOK_QUOTED)
        return false;
    bool fold = t->kind == SQL_TOK_WORD;
    const uint8_t *w = lx->s + t->body;
    size_t n = t->body_len;
    char name[SQL_NAME_BUF];
    if (t->kind == SQL_TOK_QUOTED && t->body > t->start + 1) {
        n = sql_name_of(lx->s, t, name);
        w = (const uint8_t *)name;
    }
    return starts_with(w, n, "pg_advisory_", fold) || starts_with(w, n, "pg_try_advisory_", fold);
}

/* The statement's kind from its first two words. */
static enum txn_first first_of(const struct sql_lexer *lx, const struct sql_token *w1,
                               const struct sql_token *w2)
{
    if (sql_tok_is_word(lx, w1, "begin"))
        return TXN_FIRST_BEGIN;
    if (sql_tok_is_word(lx, w1, "start"))
        return sql_tok_is_word(lx, w2, "transaction") ? TXN_FIRST_BEGIN : TXN_FIRST_OTHER;
    if (sql_tok_is_word(lx, w1, "set"))
        return sql_tok_is_word(lx, w2, "transaction") ? TXN_FIRST_SET_TRANSACTION : TXN_FIRST_OTHER;
    if (sql_tok_is_word(lx, w1, "commit") || sql_tok_is_word(lx, w1, "rollback"))
        return sql_tok_is_word(lx, w2, "prepared") ? TXN_FIRST_OTHER : TXN_FIRST_BLOCK_END;
    if (sql_tok_is_word(lx, w1, "end") || sql_tok_is_word(lx, w1, "abort"))
        return TXN_FIRST_BLOCK_END;
    return TXN_FIRST_OTHER;
}

/* What the scan knows of the first statement while it reads it. */
struct open_scan {
    struct sql_lexer lx;
    struct sql_token prev;  /* the token before this one in the statement */
    struct sql_token first; /* the statement's first token */
    unsigned tokens;        /* the statement's tokens so far, counted up to 2 */
    bool in_first;          /* still in the text's first statement */
    bool later_begun;       /* a later statement's first token was read */
};

/* Whether a word is one of the n lowercase words. */
static bool word_in(const struct sql_lexer *lx, const struct sql_token *t, const char *const *words,
                    size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (sql_tok_is_word(lx, t, words[i]))
            return true;
    return false;
}

/*
 * One token of a statement after the first: the statement is a plain
 * read when it begins with SELECT, VALUES, TABLE, SHOW or WITH and no
 * word of it writes, locks rows or makes a table (INSERT, UPDATE,
 * DELETE, MERGE, INTO, FOR SHARE, nextval, setval).
 */
static void later_statement_token(struct open_scan *sc, const struct sql_token *t,
                                  struct txn_open *out)
{
    static const char *const reads[] = {"select", "values", "table", "show", "with"};
    static const char *const writes[] = {"insert", "update", "delete",  "merge",
                                         "into",   "share",  "nextval", "setval"};
    if (out->later_writes)
        return;
    if (!sc->later_begun) {
        sc->later_begun = true;
        out->later_writes = !word_in(&sc->lx, t, reads, sizeof(reads) / sizeof(reads[0]));
    } else if (t->kind == SQL_TOK_WORD) {
        out->later_writes = word_in(&sc->lx, t, writes, sizeof(writes) / sizeof(writes[0]));
    }
}

/* One token of the first statement: its kind from the first two, its access mode from pairs. */
static void first_statement_token(struct open_scan *sc, const struct sql_token *t,
                                  struct txn_open *out)
{
    if (sc->tokens == 0)
        sc->first = *t;
    else if (sc->tokens == 1)
        out->first = first_of(&sc->lx, &sc->first, t);
    if (sc->tokens < 2)
        sc->tokens++;
    if (sc->tokens >= 2 && sql_tok_is_word(&sc->lx, &sc->prev, "level") &&
        sql_tok_is_word(&sc->lx, t, "serializable"))
        out->serializable = true;
    if (sc->tokens >= 2 && sql_tok_is_word(&sc->lx, &sc->prev, "read")) {
        if (sql_tok_is_word(&sc->lx, t, "only"))
            out->access = TXN_ACCESS_READ_ONLY;
        else if (sql_tok_is_word(&sc->lx, t, "write"))
            out->access = TXN_ACCESS_READ_WRITE;
    }
}

void txn_open_scan(const uint8_t *sql, size_t len, struct txn_open *out)
{
    struct open_scan sc = {.in_first = true};
    struct sql_token t;
    *out = (struct txn_open){.first = TXN_FIRST_OTHER, .access = TXN_ACCESS_UNSAID};
    sql_lex_init(&sc.lx, sql, len);
    for (sql_lex_next_code(&sc.lx, &t); t.kind != SQL_TOK_END; sql_lex_next_code(&sc.lx, &t)) {
        if (names_advisory_lock(&sc.lx, &t))
            out->advisory_lock = true;
        if (t.kind == SQL_TOK_SEMI) {
            if (sc.tokens > 0 && sc.in_first && sc.tokens == 1)
                out->first = first_of(&sc.lx, &sc.first, &t);
            if (sc.tokens > 0)
                sc.in_first = false;
            sc.later_begun = false;
            continue;
        }
        if (!sc.in_first) {
            out->several = true;
            later_statement_token(&sc, &t, out);
            continue;
        }
        first_statement_token(&sc, &t, out);
        sc.prev = t;
    }
    if (sc.in_first && sc.tokens == 1)
        out->first = first_of(&sc.lx, &sc.first, &t);
    if (out->first != TXN_FIRST_BEGIN && out->first != TXN_FIRST_SET_TRANSACTION) {
        out->access = TXN_ACCESS_UNSAID;
        out->serializable = false;
    }
}

/* PostgreSQL's lock modes (LOCK ... IN mode MODE), and whether a standby grants each. */
static const struct {
    const char *words; /* as read: lowercase, one space between */
    const char *name;
    bool standby;
} lock_modes[] = {
    {"access share", "ACCESS SHARE", true},
    {"row share", "ROW SHARE", true},
    {"row exclusive", "ROW EXCLUSIVE", true},
    {"share update exclusive", "SHARE UPDATE EXCLUSIVE", false},
    {"share", "SHARE", false},
    {"share row exclusive", "SHARE ROW EXCLUSIVE", false},
    {"exclusive", "EXCLUSIVE", false},
    {"access exclusive", "ACCESS EXCLUSIVE", false},
};

/* What lock_statement_end knows of a LOCK statement while it reads it. */
struct lock_scan {
    bool in_lock;    /* the statement begins with LOCK */
    bool mode_named; /* ... and has IN */
    bool mode_read;  /* ... and its MODE after it */
    char words[32];  /* the words between IN and MODE, folded */
    size_t used;
};

/* The LOCK statement ended: its mode when a standby refuses it, else NULL. */
static const char *lock_statement_end(const struct lock_scan *ls)
{
    if (!ls->in_lock)
        return NULL;
    if (!ls->mode_named)
        return "ACCESS EXCLUSIVE";
    for (size_t i = 0; ls->mode_read && i < sizeof(lock_modes) / sizeof(lock_modes[0]); i++)
        if (strcmp(ls->words, lock_modes[i].words) == 0)
            return lock_modes[i].standby ? NULL : lock_modes[i].name;
    return NULL; /* malformed: the server's own error */
}

/* One word between IN and MODE, folded into ls->words (too many: no mode known). */
static void lock_mode_word(struct lock_scan *ls, const struct sql_lexer *lx,
                           const struct sql_token *t)
{
    size_t n = t->end - t->start;
    if (t->kind != SQL_TOK_WORD || ls->used + n + 2 > sizeof(ls->words)) {
        ls->used = sizeof(ls->words); /* nothing matches now */
        ls->words[0] = '\0';
        return;
    }
    if (ls->used > 0)
        ls->words[ls->used++] = ' ';
    for (size_t i = 0; i < n; i++)
        ls->words[ls->used++] = (char)sql_fold(lx->s[t->start + i]);
    ls->words[ls->used] = '\0';
}

const char *txn_open_lock_refused(const uint8_t *sql, size_t len)
{
    struct sql_lexer lx;
    struct sql_token t;
    struct lock_scan ls = {0};
    bool at_start = true;
    sql_lex_init(&lx, sql, len);
    for (sql_lex_next_code(&lx, &t); t.kind != SQL_TOK_END; sql_lex_next_code(&lx, &t)) {
        if (t.kind == SQL_TOK_SEMI) {
            const char *mode = lock_statement_end(&ls);
            if (mode != NULL)
                return mode;
            ls = (struct lock_scan){0};
            at_start = true;
            continue;
        }
        if (at_start)
            ls.in_lock = sql_tok_is_word(&lx, &t, "lock");
        else if (ls.in_lock && !ls.mode_named)
            ls.mode_named = sql_tok_is_word(&lx, &t, "in");
        else if (ls.in_lock && !ls.mode_read && sql_tok_is_word(&lx, &t, "mode"))
            ls.mode_read = true;
        else if (ls.in_lock && !ls.mode_read)
            lock_mode_word(&ls, &lx, &t);
        at_start = false;
    }
    return lock_statement_end(&ls);
}

/* Whether lower (lowercase ASCII) is in p (len bytes), case aside; from where, in *at. */
static bool bytes_have(const uint8_t *p, size_t len, const char *lower, size_t *at)
{
    size_t n = strlen(lower);
    for (size_t i = 0; n <= len && i <= len - n; i++) {
        size_t j = 0;
        while (j < n && sql_fold(p[i + j]) == (uint8_t)lower[j])
            j++;
        if (j == n) {
            if (at != NULL)
                *at = i + n;
            return true;
        }
    }
    return false;
}

bool txn_open_sets_serializable(const uint8_t *sql, size_t len)
{
    return bytes_have(sql, len, "serializable", NULL) &&
           (bytes_have(sql, len, "default_transaction_isolation", NULL) ||
            bytes_have(sql, len, "session characteristics", NULL));
}

bool txn_open_startup_serializable(const char *options, const char *isolation)
{
    static const char name[] = "default_transaction_isolation";
    size_t at;
    if (isolation != NULL && strcasecmp(isolation, "serializable") == 0)
        return true;
    if (options == NULL)
        return false;
    const uint8_t *o = (const uint8_t *)options;
    size_t len = strlen(options);
    while (bytes_have(o, len, name, &at)) {
        while (at < len && (o[at] == ' ' || o[at] == '='))
            at++;
        if (len - at >= 12 && strncasecmp((const char *)o + at, "serializable", 12) == 0)
            return true;
        o += at;
        len -= at;
    }
    return false;
}
