/*
 * grammar.c — the admin console's command language (grammar.h): the lexer
 * and the parse of a command's text.
 *
 * A small lexer turns the text into tokens (words, quoted strings, quoted
 * names, `=`, `;`), skipping blanks and comments; a command is the longest
 * row of the table (grammar_table.c) whose keywords the first words match,
 * and its row says how its arguments are read (grammar_args.c).  Every
 * fault names its place in the text.
 */
#include "proxy/admin/grammar.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "protocol/utf8.h"
#include "proxy/admin/grammar_int.h"

void admin_error_setv(struct admin_error *e, const char *sqlstate, const char *detail,
                      const char *hint, const char *fmt, va_list ap)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->sqlstate, sizeof(e->sqlstate), "%s", sqlstate);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    snprintf(e->detail, sizeof(e->detail), "%s", detail != NULL ? detail : "");
    snprintf(e->hint, sizeof(e->hint), "%s", hint != NULL ? hint : "");
}

void admin_error_set(struct admin_error *e, const char *sqlstate, const char *detail,
                     const char *hint, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    admin_error_setv(e, sqlstate, detail, hint, fmt, ap);
    va_end(ap);
}

/* ---- lexer ---- */

int gram_fail(struct lexer *lx, size_t pos, const char *sqlstate, const char *hint, const char *fmt,
              ...)
{
    va_list ap;
    va_start(ap, fmt);
    admin_error_setv(lx->err, sqlstate, NULL, hint, fmt, ap);
    va_end(ap);
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

int gram_advance(struct parser *ps)
{
    return lex_next(&ps->lx, &ps->tok);
}

/* The keyword w here; false (nothing read) when the token is something else. */
bool gram_at_keyword(const struct parser *ps, const char *w)
{
    return ps->tok.type == TOK_WORD && strcasecmp(ps->tok.text, w) == 0;
}

/* MOVE CLIENT, MOVE CLIENTS, MOVE DATABASE: the console's, not SQL's MOVE of a cursor. */
static bool moves_clients(const struct parser *ps)
{
    if (strcasecmp(ps->tok.text, "MOVE") != 0)
        return false;
    struct parser ahead = *ps;
    struct admin_error err;
    ahead.lx.err = &err;
    if (lex_next(&ahead.lx, &ahead.tok) < 0 || ahead.tok.type != TOK_WORD)
        return false;
    return strcasecmp(ahead.tok.text, "CLIENT") == 0 ||
           strcasecmp(ahead.tok.text, "CLIENTS") == 0 ||
           strcasecmp(ahead.tok.text, "DATABASE") == 0;
}

static int unknown_command(struct parser *ps, const struct token *w0, const struct token *w1)
{
    char typed[160], hint[256];
    /* SHOW takes a second keyword; the other commands are one word. */
    if (w1->type == TOK_WORD && strcasecmp(w0->text, "SHOW") == 0)
        snprintf(typed, sizeof(typed), "%.63s %.63s", w0->text, w1->text);
    else
        snprintf(typed, sizeof(typed), "%.63s", w0->text);
    gram_closest_hint(typed, hint, sizeof(hint));
    return gram_fail(&ps->lx, w0->start, "42601", hint, "unrecognized admin command \"%s\"", typed);
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

/* After the command: optional ';'s, then nothing but blanks. */
static int take_end(struct parser *ps)
{
    bool semi = false;
    while (ps->tok.type == TOK_SEMI) {
        semi = true;
        if (gram_advance(ps) < 0)
            return ADMIN_PARSE_ERROR;
    }
    if (ps->tok.type == TOK_END)
        return ADMIN_PARSE_OK;
    if (semi)
        return gram_fail(&ps->lx, ps->tok.start, "0A000", "Send one command per query.",
                         "the admin console runs one command at a time");
    return gram_syntax_error(&ps->lx, &ps->tok, NULL);
}

static int parse_command(struct parser *ps)
{
    struct token w0 = ps->tok, w1;
    if (w0.type != TOK_WORD)
        return gram_syntax_error(&ps->lx, &w0, "Type SHOW HELP for the list of commands.");
    if (gram_is_sql_word(w0.text) && !moves_clients(ps)) {
        gram_fail(&ps->lx, w0.start, "0A000", "Type SHOW HELP for the list of commands.",
                  "the pgnear admin console does not run SQL");
        return ADMIN_PARSE_SQL;
    }
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    w1 = ps->tok;
    const struct admin_command_def *def = gram_match_command(&w0, &w1);
    if (def == NULL)
        return unknown_command(ps, &w0, &w1);
    ps->out->kind = def->kind;
    if (def->words[1] != NULL && gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (gram_take_args(ps, def->args) < 0)
        return ADMIN_PARSE_ERROR;
    return take_end(ps);
}

int admin_parse(const char *text, size_t len, struct admin_cmd *out, struct admin_error *err)
{
    struct parser *ps = &(struct parser){.lx = {text, len, 0, err}, .out = out};
    memset(out, 0, sizeof(*out));
    memset(err, 0, sizeof(*err));
    if (len > ADMIN_TEXT_MAX)
        return gram_fail(&ps->lx, 0, "54000", "Admin commands are short; this is not one.",
                         "admin command text is too long (%zu bytes, at most %d)", len,
                         ADMIN_TEXT_MAX);
    size_t bad = utf8_invalid_at((const uint8_t *)text, len);
    if (bad < len) {
        char bytes[24];
        size_t n = len - bad < 4 ? len - bad : 4, used = 0;
        for (size_t i = 0; i < n; i++)
            used += (size_t)snprintf(bytes + used, sizeof(bytes) - used, "%s0x%02x", i ? " " : "",
                                     (unsigned char)text[bad + i]);
        return gram_fail(&ps->lx, bad, "22021", NULL,
                         "invalid byte sequence for encoding \"UTF8\": %s", bytes);
    }
    if (gram_advance(ps) < 0)
        return ADMIN_PARSE_ERROR;
    if (ps->tok.type == TOK_END || ps->tok.type == TOK_SEMI) {
        /* Blanks, comments and semicolons only. */
        while (ps->tok.type == TOK_SEMI)
            if (gram_advance(ps) < 0)
                return ADMIN_PARSE_ERROR;
        if (ps->tok.type == TOK_END)
            return ADMIN_PARSE_EMPTY;
    }
    return parse_command(ps);
}
