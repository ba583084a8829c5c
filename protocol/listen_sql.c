/*
 * listen_sql.c — LISTEN and UNLISTEN statements read (listen_sql.h).
 */
#include "protocol/listen_sql.h"

#include <stdbool.h>
#include <string.h>

#include "protocol/sql_lex.h"

/*
 * The words a channel's unquoted name cannot be (PostgreSQL 15's reserved
 * and type-or-function-name keywords: not a ColId, a syntax error there).
 */
static const char *const listen_sql_reserved[] = {
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
};

static bool listen_sql_is_reserved(const uint8_t *w, size_t n)
{
    for (size_t i = 0; i < sizeof(listen_sql_reserved) / sizeof(listen_sql_reserved[0]); i++)
        if (sql_word_equals(w, n, listen_sql_reserved[i]))
            return true;
    return false;
}

/* A word's or a quoted identifier's name into out, as the server names it; false: not one. */
static bool listen_sql_name(const struct sql_lexer *lx, const struct sql_token *t, char *out)
{
    const uint8_t *b = lx->s + t->body;
    size_t n = 0;
    if (t->kind == SQL_TOK_WORD) {
        if (t->body_len > LISTEN_SQL_NAME_MAX || listen_sql_is_reserved(b, t->body_len))
            return false;
        for (size_t i = 0; i < t->body_len; i++)
            out[n++] = (char)sql_fold(b[i]);
    } else if (t->kind == SQL_TOK_QUOTED && !t->unterminated && lx->s[t->start] == '"') {
        for (size_t i = 0; i < t->body_len; i++) {
            if (n == LISTEN_SQL_NAME_MAX || b[i] == '\0')
                return false;
            out[n++] = (char)b[i];
            if (b[i] == '"')
                i++; /* "" is one quote */
        }
        if (n == 0)
            return false; /* a zero-length delimited identifier is an error there */
    } else {
        return false;
    }
    out[n] = '\0';
    return true;
}

/* One statement from its first token t; the token after it in *t.  False: not one of ours. */
static bool listen_sql_statement(struct sql_lexer *lx, struct sql_token *t, struct listen_op *op)
{
    bool listen = sql_tok_is_word(lx, t, "listen");
    if (!listen && !sql_tok_is_word(lx, t, "unlisten"))
        return false;
    op->kind = listen ? LISTEN_OP_LISTEN : LISTEN_OP_UNLISTEN;
    op->channel[0] = '\0';
    sql_lex_next_code(lx, t);
    if (!listen && t->kind == SQL_TOK_OTHER && t->end - t->start == 1 && lx->s[t->start] == '*')
        op->kind = LISTEN_OP_UNLISTEN_ALL;
    else if (!listen_sql_name(lx, t, op->channel))
        return false;
    sql_lex_next_code(lx, t);
    return t->kind == SQL_TOK_SEMI || t->kind == SQL_TOK_END;
}

/* Past empty statements (a ';' alone) to the next one's first token in *t; false at the end. */
static bool listen_sql_next_statement(struct sql_lexer *lx, struct sql_token *t)
{
    while (t->kind == SQL_TOK_SEMI)
        sql_lex_next_code(lx, t);
    return t->kind != SQL_TOK_END;
}

size_t listen_sql_parse(const void *text, size_t len, struct listen_op *ops, size_t cap)
{
    struct sql_lexer lx;
    struct sql_token t;
    size_t n = 0;
    sql_lex_init(&lx, text, len);
    for (sql_lex_next_code(&lx, &t); listen_sql_next_statement(&lx, &t); n++)
        if (n == cap || !listen_sql_statement(&lx, &t, &ops[n]))
            return 0;
    return n;
}

/* From t, the statement's first token, to the token after its ';' (or the end) in *t. */
static void listen_sql_skip_statement(struct sql_lexer *lx, struct sql_token *t)
{
    while (t->kind != SQL_TOK_SEMI && t->kind != SQL_TOK_END)
        sql_lex_next_code(lx, t);
}

/* DISCARD ALL from its first token t; the token after it in *t.  False: not it. */
static bool listen_sql_discard_all(struct sql_lexer *lx, struct sql_token *t)
{
    if (!sql_tok_is_word(lx, t, "discard"))
        return false;
    sql_lex_next_code(lx, t);
    if (!sql_tok_is_word(lx, t, "all"))
        return false;
    sql_lex_next_code(lx, t);
    return t->kind == SQL_TOK_SEMI || t->kind == SQL_TOK_END;
}

size_t listen_sql_unlistens(const void *text, size_t len, struct listen_op *ops, size_t cap)
{
    struct sql_lexer lx;
    struct sql_token t;
    size_t n = 0;
    sql_lex_init(&lx, text, len);
    sql_lex_next_code(&lx, &t);
    while (listen_sql_next_statement(&lx, &t)) {
        struct listen_op op;
        struct sql_lexer at = lx;
        struct sql_token first = t;
        if (listen_sql_statement(&lx, &t, &op) && op.kind != LISTEN_OP_LISTEN) {
            if (n < cap)
                ops[n++] = op;
            continue;
        }
        lx = at;
        t = first;
        if (listen_sql_discard_all(&lx, &t)) {
            op.kind = LISTEN_OP_DISCARD_ALL;
            op.channel[0] = '\0';
            if (n < cap)
                ops[n++] = op;
            continue;
        }
        listen_sql_skip_statement(&lx, &t);
    }
    return n;
}

/* Whether the bytes at p (left of them), ASCII letters folded, begin with word (lower case). */
static bool listen_sql_has_at(const uint8_t *p, size_t left, const char *word)
{
    size_t n = strlen(word);
    if (left < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != (uint8_t)word[i])
            return false;
    return true;
}

bool listen_sql_may_unlisten(const void *text, size_t len)
{
    const uint8_t *p = text;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = p[i] | 0x20;
        if ((c == 'u' && listen_sql_has_at(p + i, len - i, "unlisten")) ||
            (c == 'd' && listen_sql_has_at(p + i, len - i, "discard")))
            return true;
    }
    return false;
}
