/*
 * grammar_lex.c — the admin console's lexer (grammar_int.h): the text as
 * tokens (words, quoted strings, quoted names, `=`, `;`), blanks and
 * comments skipped, and the words every command reads alike.  Every fault
 * names its place in the text, as PostgreSQL's parser does.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy/admin/grammar.h"
#include "proxy/admin/grammar_int.h"

/* ---- lexer ---- */

int gram_fail(struct lexer *lx, size_t pos, const char *sqlstate, const char *hint, const char *fmt,
              ...)
{
    va_list ap;
    va_start(ap, fmt);
    pg_error_setv(lx->err, sqlstate, fmt, ap);
    va_end(ap);
    if (hint != NULL)
        pg_error_hint(lx->err, "%s", hint);
    lx->err->position = (int)pos + 1;
    return ADMIN_PARSE_ERROR;
}

/* Skips blanks and comments; -1 on a comment that never ends. */
static int lex_skip(struct lexer *lx)
{
    while (lx->pos < lx->len) {
        const char *c = lx->p + lx->pos;
        size_t left = lx->len - lx->pos;
        if (isspace((unsigned char)c[0])) {
            lx->pos++;
        } else if (left >= 2 && c[0] == '-' && c[1] == '-') {
            while (lx->pos < lx->len && lx->p[lx->pos] != '\n')
                lx->pos++;
        } else if (left >= 2 && c[0] == '/' && c[1] == '*') {
            size_t start = lx->pos;
            lx->pos += 2;
            while (lx->pos + 1 < lx->len && !(lx->p[lx->pos] == '*' && lx->p[lx->pos + 1] == '/'))
                lx->pos++;
            if (lx->pos + 1 >= lx->len)
                return gram_fail(lx, start, "42601", NULL, "unterminated /* comment");
            lx->pos += 2;
        } else {
            return 0;
        }
    }
    return 0;
}

/*
 * Words hold what names, addresses and numbers are made of (a.b, host:port, -1,
 * +2); "--" starts a comment.
 */
static bool word_char(const struct lexer *lx, size_t i)
{
    unsigned char c = (unsigned char)lx->p[i];
    if (c == '-' && i + 1 < lx->len && lx->p[i + 1] == '-')
        return false; /* a comment starts */
    return isalnum(c) || c == '_' || c == '-' || c == '.' || c == ':' || c == '+' || c >= 0x80;
}

/* 'text' or "name": the doubled quote stands for itself. */
static int lex_quoted(struct lexer *lx, struct token *t, char quote)
{
    size_t max = quote == '"' ? ADMIN_NAME_MAX : ADMIN_VALUE_MAX;
    lx->pos++;
    for (;;) {
        if (lx->pos >= lx->len)
            return gram_fail(lx, t->start, "42601", NULL,
                             quote == '"' ? "unterminated quoted identifier"
                                          : "unterminated quoted string");
        char c = lx->p[lx->pos++];
        if (c == quote) {
            if (lx->pos < lx->len && lx->p[lx->pos] == quote)
                lx->pos++;
            else
                break;
        }
        if (t->text_len == max)
            return quote == '"'
                       ? gram_fail(lx, t->start, "42622", NULL, "name is too long (over %d bytes)",
                                   ADMIN_NAME_MAX)
                       : gram_fail(lx, t->start, "54000", NULL,
                                   "quoted string is too long (over %d bytes)", ADMIN_VALUE_MAX);
        t->text[t->text_len++] = c;
    }
    t->text[t->text_len] = '\0';
    t->type = quote == '"' ? TOK_NAME : TOK_STRING;
    return 0;
}

/*
 * The next token into t: a quoted string, '=', ';', a word, or a single other
 * character; an error (too long, unterminated) sets lx's error.
 */
static int lex_next(struct lexer *lx, struct token *t)
{
    memset(t, 0, sizeof(*t) - sizeof(t->text));
    t->text[0] = '\0';
    if (lex_skip(lx) < 0)
        return ADMIN_PARSE_ERROR;
    t->start = lx->pos;
    if (lx->pos >= lx->len) {
        t->type = TOK_END;
        return 0;
    }
    char c = lx->p[lx->pos];
    int rc = 0;
    if (c == '\'' || c == '"') {
        rc = lex_quoted(lx, t, c);
    } else if (c == '=' || c == ';') {
        t->type = c == '=' ? TOK_EQUALS : TOK_SEMI;
        lx->pos++;
    } else if (word_char(lx, lx->pos)) {
        while (lx->pos < lx->len && word_char(lx, lx->pos)) {
            if (t->text_len == ADMIN_VALUE_MAX)
                return gram_fail(lx, t->start, "54000", NULL, "word is too long");
            t->text[t->text_len++] = lx->p[lx->pos++];
        }
        t->text[t->text_len] = '\0';
        t->type = TOK_WORD;
    } else {
        t->type = TOK_OTHER;
        t->text[0] = c;
        t->text[1] = '\0';
        lx->pos++;
    }
    t->len = lx->pos - t->start;
    return rc;
}

/* "syntax error at or near ..." for the token, as PostgreSQL words it. */
int gram_syntax_error(struct lexer *lx, const struct token *t, const char *hint)
{
    if (t->type == TOK_END)
        return gram_fail(lx, t->start, "42601", hint, "syntax error at end of input");
    return gram_fail(lx, t->start, "42601", hint, "syntax error at or near \"%.*s\"",
                     (int)(t->len < 64 ? t->len : 64), lx->p + t->start);
}

/* ---- the parse ---- */

/* ps->tok becomes the next token; ADMIN_PARSE_ERROR with the error set. */
int gram_advance(struct parser *ps)
{
    return lex_next(&ps->lx, &ps->tok);
}

/* The keyword w here; false (nothing read) when the token is something else. */
bool gram_at_keyword(const struct parser *ps, const char *w)
{
    return ps->tok.type == TOK_WORD && strcasecmp(ps->tok.text, w) == 0;
}

/* The token after the current one, read ahead without moving on; false at a fault. */
bool gram_peek(const struct parser *ps, struct token *next)
{
    struct lexer ahead = ps->lx;
    struct pg_error err;
    ahead.err = &err;
    return lex_next(&ahead, next) == 0;
}

/* A region or setting name: a bare word or a "quoted name". */
int gram_take_name(struct parser *ps, char *dst, const char *what)
{
    const struct token *t = &ps->tok;
    if (t->type != TOK_WORD && t->type != TOK_NAME) {
        char hint[96];
        snprintf(hint, sizeof(hint), "Name the %s.", what);
        return gram_syntax_error(&ps->lx, t, hint);
    }
    if (t->text_len > ADMIN_NAME_MAX)
        return gram_fail(&ps->lx, t->start, "42622", NULL, "%s name is too long (over %d bytes)",
                         what, ADMIN_NAME_MAX);
    memcpy(dst, t->text, t->text_len + 1);
    return gram_advance(ps);
}

/* REGION name, after FROM or TO: into dst. */
int gram_take_keyword_region(struct parser *ps, char *dst)
{
    if (!gram_at_keyword(ps, "REGION"))
        return gram_syntax_error(&ps->lx, &ps->tok, "Write REGION and the region's name.");
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    return gram_take_name(ps, dst, "region");
}
