/*
 * sql_split.c — a SQL script cut into statements the way psql cuts it.
 *
 * One pass over the text, token by token: only what can hide a ';' (quotes,
 * comments), what psql counts (parentheses, the words of CREATE FUNCTION's
 * BEGIN ... END) and where each statement starts and ends matter; every
 * other byte is a token of its own.  The word rules follow PostgreSQL's
 * lexer: a word runs on over letters, digits, '_' and '$', so that a$$b
 * is one word and not a dollar quote, and E'...' is an escape string only
 * when the E starts a token.
 */
#include "proxy/migrate/sql_split.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scan {
    const char *s;
    size_t len;
    size_t pos;
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

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool is_ident_start(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* A dollar quote's tag goes on over these; a word also over '$'. */
static bool is_tag_cont(unsigned char c)
{
    return is_ident_start(c) || is_digit(c);
}

static bool is_ident_cont(unsigned char c)
{
    return is_tag_cont(c) || c == '$';
}

static unsigned char at(const struct scan *sc, size_t i)
{
    return i < sc->len ? (unsigned char)sc->s[i] : '\0';
}

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

static int fail_at(struct scan *sc, int code, size_t offset, const char *message)
{
    sc->err->line = line_at(sc, offset);
    snprintf(sc->err->message, sizeof(sc->err->message), "%s", message);
    return code;
}

static bool word_is(const char *w, size_t n, const char *lower)
{
    size_t i = 0;
    for (; i < n && lower[i] != '\0'; i++) {
        unsigned char c = (unsigned char)w[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)lower[i])
            return false;
    }
    return i == n && lower[i] == '\0';
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
            if (word_is(w, n, routine_words[i]))
                sc->first_words[sc->words] = routine_words[i][0];
        sc->words++;
    }
    if (!in_create_routine(sc) || sc->paren_depth > 0)
        return;
    if (word_is(w, n, "begin")) {
        if (sc->begin_depth++ == 0)
            sc->begin_open = start;
    } else if (word_is(w, n, "case") && sc->begin_depth > 0) {
        sc->begin_depth++;
    } else if (word_is(w, n, "end") && sc->begin_depth > 0) {
        sc->begin_depth--;
    }
}

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

/* The token [start, sc->pos) belongs to the statement, which may begin with it. */
static void add_token(struct scan *sc, size_t start)
{
    if (!sc->in_stmt) {
        sc->in_stmt = true;
        sc->stmt_start = start;
    }
    sc->stmt_end = sc->pos;
}

/*
 * A quoted string or identifier whose opening quote is at sc->pos; a
 * doubled quote stands for one, and with backslash_escapes a backslash
 * hides the character after it.
 */
static int skip_quoted(struct scan *sc, char quote, bool backslash_escapes, const char *what)
{
    size_t open = sc->pos;
    size_t i = open + 1;
    while (i < sc->len) {
        char c = sc->s[i];
        if (backslash_escapes && c == '\\') {
            i += 2;
        } else if (c != quote) {
            i++;
        } else if (at(sc, i + 1) == (unsigned char)quote) {
            i += 2;
        } else {
            sc->pos = i + 1;
            return SQL_SPLIT_OK;
        }
    }
    return fail_at(sc, SQL_SPLIT_UNTERMINATED, open, what);
}

/* A block comment at sc->pos, with the nesting PostgreSQL allows. */
static int skip_block_comment(struct scan *sc)
{
    size_t open = sc->pos;
    size_t depth = 0;
    size_t i = open;
    while (i + 1 < sc->len) {
        if (sc->s[i] == '*' && sc->s[i + 1] == '/') {
            i += 2;
            if (--depth == 0) {
                sc->pos = i;
                return SQL_SPLIT_OK;
            }
        } else if (sc->s[i] == '/' && sc->s[i + 1] == '*') {
            i += 2;
            depth++;
        } else {
            i++;
        }
    }
    return fail_at(sc, SQL_SPLIT_UNTERMINATED, open, "unterminated /* comment");
}

static int skip_line_comment(struct scan *sc)
{
    size_t start = sc->pos;
    const char *nl = memchr(sc->s + start, '\n', sc->len - start);
    sc->pos = nl ? (size_t)(nl - sc->s) : sc->len;
    if (sc->on_comment == NULL)
        return SQL_SPLIT_OK;
    return sc->on_comment(sc->ctx, start, sc->pos - start, line_at(sc, start));
}

/* The length of a dollar-quote delimiter ($$ or $tag$) at i, or 0. */
static size_t dollar_delimiter(const struct scan *sc, size_t i)
{
    size_t j = i + 1;
    if (is_ident_start(at(sc, j)))
        while (is_tag_cont(at(sc, j)))
            j++;
    return at(sc, j) == '$' ? j + 1 - i : 0;
}

/* A '$' at sc->pos: a parameter ($1), a dollar-quoted string, or a lone '$'. */
static int scan_dollar(struct scan *sc)
{
    size_t open = sc->pos;
    if (is_digit(at(sc, open + 1))) {
        sc->pos++;
        while (is_digit(at(sc, sc->pos)))
            sc->pos++;
        if (is_ident_start(at(sc, sc->pos))) /* $1abc: one (bad) token, as the server reads it */
            while (is_ident_cont(at(sc, sc->pos)))
                sc->pos++;
        return SQL_SPLIT_OK;
    }
    size_t dlen = dollar_delimiter(sc, open);
    if (dlen == 0) {
        sc->pos++;
        return SQL_SPLIT_OK;
    }
    const char *body = sc->s + open + dlen;
    const char *close = memmem(body, sc->len - open - dlen, sc->s + open, dlen);
    if (close == NULL)
        return fail_at(sc, SQL_SPLIT_UNTERMINATED, open, "unterminated dollar-quoted string");
    sc->pos = (size_t)(close - sc->s) + dlen;
    return SQL_SPLIT_OK;
}

/*
 * A token that starts with a letter: a word, or one of the prefixed
 * strings E'...', B'...', X'...', N'...', U&'...' and U&"...".
 */
static int scan_word(struct scan *sc)
{
    size_t start = sc->pos;
    unsigned char c = at(sc, start), next = at(sc, start + 1);
    if ((c == 'e' || c == 'E') && next == '\'') {
        sc->pos++;
        return skip_quoted(sc, '\'', true, "unterminated quoted string");
    }
    if (strchr("bBxXnN", c) != NULL && next == '\'') {
        sc->pos++;
        return skip_quoted(sc, '\'', false, "unterminated quoted string");
    }
    if ((c == 'u' || c == 'U') && next == '&' &&
        (at(sc, start + 2) == '\'' || at(sc, start + 2) == '"')) {
        sc->pos += 2;
        bool ident = sc->s[sc->pos] == '"';
        return skip_quoted(sc, sc->s[sc->pos], false,
                           ident ? "unterminated quoted identifier" : "unterminated quoted string");
    }
    while (is_ident_cont(at(sc, sc->pos)))
        sc->pos++;
    note_word(sc, start, sc->pos - start);
    return SQL_SPLIT_OK;
}

/* A number, with any letters run into it (1e5, or 1abc which the server refuses). */
static void scan_number(struct scan *sc)
{
    while (is_digit(at(sc, sc->pos)) || at(sc, sc->pos) == '.')
        sc->pos++;
    if (is_ident_start(at(sc, sc->pos)))
        while (is_ident_cont(at(sc, sc->pos)))
            sc->pos++;
}

static void scan_paren(struct scan *sc, unsigned char c)
{
    if (c == '(' && sc->paren_depth++ == 0)
        sc->paren_open = sc->pos;
    else if (c == ')' && sc->paren_depth > 0)
        sc->paren_depth--;
    sc->pos++;
}

/* One token of a statement at sc->pos (not blank, not a comment, not ';'). */
static int scan_token(struct scan *sc)
{
    size_t start = sc->pos;
    unsigned char c = at(sc, start);
    int rc = SQL_SPLIT_OK;
    if (c == '\'')
        rc = skip_quoted(sc, '\'', false, "unterminated quoted string");
    else if (c == '"')
        rc = skip_quoted(sc, '"', false, "unterminated quoted identifier");
    else if (c == '$')
        rc = scan_dollar(sc);
    else if (is_ident_start(c))
        rc = scan_word(sc);
    else if (is_digit(c))
        scan_number(sc);
    else if (c == '(' || c == ')')
        scan_paren(sc, c);
    else if (c == '\\')
        return fail_at(sc, SQL_SPLIT_META_COMMAND, start,
                       "backslash outside quotes: psql meta-commands cannot be run here");
    else
        sc->pos++;
    if (rc == SQL_SPLIT_OK)
        add_token(sc, start);
    return rc;
}

static int scan_one(struct scan *sc)
{
    unsigned char c = at(sc, sc->pos), next = at(sc, sc->pos + 1);
    if (is_space(c)) {
        sc->pos++;
        return SQL_SPLIT_OK;
    }
    if (c == '-' && next == '-')
        return skip_line_comment(sc);
    if (c == '/' && next == '*')
        return skip_block_comment(sc);
    if (c == ';' && sc->paren_depth == 0 && sc->begin_depth == 0) {
        sc->pos++;
        return end_statement(sc);
    }
    return scan_token(sc);
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
    struct scan sc = {.s = text,
                      .len = len,
                      .out = out,
                      .err = err,
                      .on_comment = on_comment,
                      .ctx = ctx,
                      .line = 1};
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
    while (sc.pos < len) {
        int rc = scan_one(&sc);
        if (rc != SQL_SPLIT_OK)
            return rc;
    }
    return finish(&sc);
}

void sql_script_free(struct sql_script *script)
{
    free(script->stmts);
    script->stmts = NULL;
    script->count = 0;
}
