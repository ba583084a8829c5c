/*
 * sql_split.c — a SQL script cut into statements the way psql cuts it.
 *
 * One pass over the tokens of protocol/sql_lex.c: only what psql counts
 * (parentheses, the words of CREATE FUNCTION's BEGIN ... END), what it
 * refuses here (a backslash, an unterminated quote or comment) and where
 * each statement starts and ends matter.
 */
#include "proxy/migrate/sql_split.h"

#include "protocol/sql_lex.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scan {
    const char *s;
    struct sql_lexer lx;
    struct sql_script *out;
    size_t cap;
    struct sql_split_error *err;
    sql_comment_fn on_comment;
    void *ctx;
    /* the statement being read */
    bool in_stmt;
    size_t stmt_start;
    size_t stmt_end; /* just past its last token */
    unsigned paren_depth;
    size_t paren_open; /* the '(' that opened the outermost pair */
    unsigned begin_depth;
    size_t begin_open; /* the BEGIN that opened the outermost body */
    unsigned words;    /* words seen, up to 4 */
    char first_words[4];
    /* line_at's memory: the line of line_pos */
    size_t line_pos;
    unsigned line;
};

/* The line of offset: counted on from the last one asked, or from the top. */
static unsigned line_at(struct scan *sc, size_t offset)
{
    if (offset < sc->line_pos) {
        sc->line_pos = 0;
        sc->line = 1;
    }
    for (const char *p = sc->s + sc->line_pos, *end = sc->s + offset;
         (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
        sc->line++;
    sc->line_pos = offset;
    return sc->line;
}

/* The error at offset, with its line; returns code so callers can return it at once. */
static int fail_at(struct scan *sc, int code, size_t offset, const char *message)
{
    sc->err->line = line_at(sc, offset);
    snprintf(sc->err->message, sizeof(sc->err->message), "%s", message);
    return code;
}

/* The statement began with CREATE [OR REPLACE] FUNCTION|PROCEDURE. */
static bool in_create_routine(const struct scan *sc)
{
    const char *f = sc->first_words;
    return f[0] == 'c' && (f[1] == 'f' || f[1] == 'p' ||
                           (f[1] == 'o' && f[2] == 'r' && (f[3] == 'f' || f[3] == 'p')));
}

/*
 * psql's heuristic for SQL-standard function bodies: it remembers which of
 * the first four words were CREATE, OR, REPLACE, FUNCTION or PROCEDURE
 * (by their first letter) and, in such a statement and outside
 * parentheses, counts BEGIN and CASE against END.
 */
static void note_word(struct scan *sc, size_t start, size_t n)
{
    static const char *const routine_words[] = {"create", "function", "procedure", "or", "replace"};
    const char *w = sc->s + start;
    if (sc->words == 0)
        memset(sc->first_words, 0, sizeof(sc->first_words));
    if (sc->words < sizeof(sc->first_words)) {
        for (size_t i = 0; i < sizeof(routine_words) / sizeof(routine_words[0]); i++)
            if (sql_word_equals(w, n, routine_words[i]))
                sc->first_words[sc->words] = routine_words[i][0];
        sc->words++;
    }
    if (!in_create_routine(sc) || sc->paren_depth > 0)
        return;
    if (sql_word_equals(w, n, "begin")) {
        if (sc->begin_depth++ == 0)
            sc->begin_open = start;
    } else if (sql_word_equals(w, n, "case") && sc->begin_depth > 0) {
        sc->begin_depth++;
    } else if (sql_word_equals(w, n, "end") && sc->begin_depth > 0) {
        sc->begin_depth--;
    }
}

/*
 * The statement just read joins the script; at most SQL_SPLIT_MAX_STATEMENTS,
 * the error then at its start.
 */
static int emit_statement(struct scan *sc)
{
    if (sc->out->count >= SQL_SPLIT_MAX_STATEMENTS) {
        char msg[80];
        snprintf(msg, sizeof(msg), "more than %d statements", SQL_SPLIT_MAX_STATEMENTS);
        return fail_at(sc, SQL_SPLIT_TOO_MANY, sc->stmt_start, msg);
    }
    if (sc->out->count == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 16;
        struct sql_statement *grown = realloc(sc->out->stmts, cap * sizeof(*grown));
        if (grown == NULL)
            return fail_at(sc, SQL_SPLIT_OUT_OF_MEMORY, sc->stmt_start, "out of memory");
        sc->out->stmts = grown;
        sc->cap = cap;
    }
    struct sql_statement *st = &sc->out->stmts[sc->out->count++];
    st->offset = sc->stmt_start;
    st->length = sc->stmt_end - sc->stmt_start;
    st->line = line_at(sc, sc->stmt_start);
    return SQL_SPLIT_OK;
}

/* A ';' outside parentheses and bodies ends the statement, if there is one. */
static int end_statement(struct scan *sc)
{
    int rc = sc->in_stmt ? emit_statement(sc) : SQL_SPLIT_OK;
    sc->in_stmt = false;
    sc->words = 0;
    return rc;
}

/* The token belongs to the statement, which may begin with it. */
static void add_token(struct scan *sc, const struct sql_token *t)
{
    if (!sc->in_stmt) {
        sc->in_stmt = true;
        sc->stmt_start = t->start;
    }
    sc->stmt_end = t->end;
}

/* What a construct still open at the end of the text is called. */
static const char *unterminated_what(const struct scan *sc, const struct sql_token *t)
{
    switch (t->kind) {
    case SQL_TOK_BLOCK_COMMENT:
        return "unterminated /* comment";
    case SQL_TOK_QUOTED:
        return "unterminated quoted identifier";
    default:
        return sc->s[t->start] == '$' ? "unterminated dollar-quoted string"
                                      : "unterminated quoted string";
    }
}

/* Tracks the outermost '(' so that an unclosed one is reported where it opened. */
static void note_paren(struct scan *sc, const struct sql_token *t)
{
    if (t->kind == SQL_TOK_OPEN && sc->paren_depth++ == 0)
        sc->paren_open = t->start;
    else if (t->kind == SQL_TOK_CLOSE && sc->paren_depth > 0)
        sc->paren_depth--;
}

/* One token: a comment, the ';' that ends a statement, or a token of the statement. */
static int take_token(struct scan *sc, const struct sql_token *t)
{
    if (t->unterminated)
        return fail_at(sc, SQL_SPLIT_UNTERMINATED, t->start, unterminated_what(sc, t));
    switch (t->kind) {
    case SQL_TOK_LINE_COMMENT:
        if (sc->on_comment == NULL)
            return SQL_SPLIT_OK;
        return sc->on_comment(sc->ctx, t->start, t->end - t->start, line_at(sc, t->start));
    case SQL_TOK_BLOCK_COMMENT:
        return SQL_SPLIT_OK;
    case SQL_TOK_SEMI:
        if (sc->paren_depth == 0 && sc->begin_depth == 0)
            return end_statement(sc);
        break;
    case SQL_TOK_OTHER:
        if (sc->s[t->start] == '\\')
            return fail_at(sc, SQL_SPLIT_META_COMMAND, t->start,
                           "backslash outside quotes: psql meta-commands cannot be run here");
        break;
    case SQL_TOK_WORD:
        note_word(sc, t->body, t->body_len);
        break;
    default:
        note_paren(sc, t);
        break;
    }
    add_token(sc, t);
    return SQL_SPLIT_OK;
}

/* At the end of the text: nothing may still be open, the last statement needs no ';'. */
static int finish(struct scan *sc)
{
    if (sc->begin_depth > 0 && (sc->paren_depth == 0 || sc->begin_open < sc->paren_open))
        return fail_at(sc, SQL_SPLIT_UNTERMINATED, sc->begin_open,
                       "unterminated BEGIN ... END body of a function or procedure");
    if (sc->paren_depth > 0)
        return fail_at(sc, SQL_SPLIT_UNTERMINATED, sc->paren_open,
                       "unbalanced parentheses: this \"(\" is never closed");
    return end_statement(sc);
}

int sql_split(const char *text, size_t len, struct sql_script *out, struct sql_split_error *err,
              sql_comment_fn on_comment, void *ctx)
{
    struct scan sc = {
        .s = text, .out = out, .err = err, .on_comment = on_comment, .ctx = ctx, .line = 1};
    out->stmts = NULL;
    out->count = 0;
    err->line = 0;
    err->message[0] = '\0';
    if (len > SQL_SPLIT_MAX_BYTES) {
        snprintf(err->message, sizeof(err->message), "the script is %zu bytes, more than %u", len,
                 SQL_SPLIT_MAX_BYTES);
        return SQL_SPLIT_TOO_LARGE;
    }
    const char *nul = len > 0 ? memchr(text, '\0', len) : NULL;
    if (nul != NULL)
        return fail_at(&sc, SQL_SPLIT_NUL, (size_t)(nul - text), "the script contains a NUL byte");
    sql_lex_init(&sc.lx, text, len);
    struct sql_token t;
    for (sql_lex_next(&sc.lx, &t); t.kind != SQL_TOK_END; sql_lex_next(&sc.lx, &t)) {
        int rc = take_token(&sc, &t);
        if (rc != SQL_SPLIT_OK)
            return rc;
    }
    return finish(&sc);
}

/* Frees the statement list; the text it indexes is the caller's. */
void sql_script_free(struct sql_script *script)
{
    free(script->stmts);
    script->stmts = NULL;
    script->count = 0;
}
