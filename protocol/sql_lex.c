/*
 * sql_lex.c — SQL text cut into tokens (sql_lex.h).
 *
 * One function per kind of token, chosen by its first byte.  Each reads
 * through at(), which answers 0 past the end, so that no look-ahead reads
 * past len; 0 is none of the bytes looked for.
 */
#include "protocol/sql_lex.h"

#include <string.h>

static bool is_ident_start(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* A dollar quote's tag goes on over these; a word also over '$'. */
static bool is_tag_cont(uint8_t c)
{
    return is_ident_start(c) || is_digit(c);
}

static bool is_ident_cont(uint8_t c)
{
    return is_tag_cont(c) || c == '$';
}

/* The byte at i, or 0 past the end. */
static uint8_t at(const struct sql_lexer *lx, size_t i)
{
    return i < lx->len ? lx->s[i] : 0;
}

/* Letters, digits, '_' and '$' run into a word or a number from lx->pos. */
static void skip_ident_tail(struct sql_lexer *lx)
{
    if (is_ident_start(at(lx, lx->pos)))
        while (is_ident_cont(at(lx, lx->pos)))
            lx->pos++;
}

/* A block comment at lx->pos, nested as PostgreSQL nests them. */
static void scan_block_comment(struct sql_lexer *lx, struct sql_token *t)
{
    size_t depth = 0;
    size_t i = lx->pos;
    t->kind = SQL_TOK_BLOCK_COMMENT;
    while (i + 1 < lx->len) {
        if (lx->s[i] == '*' && lx->s[i + 1] == '/') {
            i += 2;
            if (--depth == 0) {
                lx->pos = i;
                return;
            }
        } else if (lx->s[i] == '/' && lx->s[i + 1] == '*') {
            i += 2;
            depth++;
        } else {
            i++;
        }
    }
    t->unterminated = true;
    lx->pos = lx->len;
}

static void scan_line_comment(struct sql_lexer *lx, struct sql_token *t)
{
    const uint8_t *nl = memchr(lx->s + lx->pos, '\n', lx->len - lx->pos);
    t->kind = SQL_TOK_LINE_COMMENT;
    lx->pos = nl ? (size_t)(nl - lx->s) : lx->len;
}

/*
 * A string or quoted identifier whose opening quote is at lx->pos: a
 * doubled quote stands for one, and with backslashes a backslash hides
 * the byte after it.
 */
static void scan_quoted(struct sql_lexer *lx, enum sql_tok_kind kind, bool backslashes,
                        struct sql_token *t)
{
    uint8_t quote = lx->s[lx->pos];
    size_t i = lx->pos + 1;
    t->kind = kind;
    t->body = i;
    while (i < lx->len) {
        uint8_t c = lx->s[i];
        if (backslashes && c == '\\') {
            i += 2;
        } else if (c != quote) {
            i++;
        } else if (at(lx, i + 1) == quote) {
            i += 2;
        } else {
            t->body_len = i - t->body;
            lx->pos = i + 1;
            return;
        }
    }
    t->body_len = lx->len - t->body;
    t->unterminated = true;
    lx->pos = lx->len;
}

/* The length of a dollar-quote delimiter ($$ or $tag$) at i, or 0. */
static size_t dollar_delimiter(const struct sql_lexer *lx, size_t i)
{
    size_t j = i + 1;
    if (is_ident_start(at(lx, j)))
        while (is_tag_cont(at(lx, j)))
            j++;
    return at(lx, j) == '$' ? j + 1 - i : 0;
}

/* A '$' at lx->pos: a parameter ($1), a dollar-quoted string, or a lone '$'. */
static void scan_dollar(struct sql_lexer *lx, struct sql_token *t)
{
    size_t open = lx->pos;
    if (is_digit(at(lx, open + 1))) {
        t->kind = SQL_TOK_PARAM;
        for (lx->pos++; is_digit(at(lx, lx->pos)); lx->pos++)
            ;
        skip_ident_tail(lx); /* $1abc: one (bad) token, as the server reads it */
        return;
    }
    size_t dlen = dollar_delimiter(lx, open);
    if (dlen == 0) {
        t->kind = SQL_TOK_OTHER;
        lx->pos++;
        return;
    }
    t->kind = SQL_TOK_STRING;
    t->body = open + dlen;
    const uint8_t *close = memmem(lx->s + t->body, lx->len - t->body, lx->s + open, dlen);
    size_t end = close ? (size_t)(close - lx->s) : lx->len;
    t->body_len = end - t->body;
    t->unterminated = close == NULL;
    lx->pos = close ? end + dlen : lx->len;
}

/*
 * A token that starts with a letter: a word, or one of the prefixed
 * strings E'...' (backslash escapes), B'...', X'...', N'...', U&'...'
 * and the quoted identifier U&"...".
 */
static void scan_word(struct sql_lexer *lx, struct sql_token *t)
{
    uint8_t c = lx->s[lx->pos], next = at(lx, lx->pos + 1);
    if (next == '\'' && strchr("eEbBxXnN", c) != NULL) {
        lx->pos++;
        scan_quoted(lx, SQL_TOK_STRING, c == 'e' || c == 'E', t);
        return;
    }
    if ((c == 'u' || c == 'U') && next == '&' &&
        (at(lx, lx->pos + 2) == '\'' || at(lx, lx->pos + 2) == '"')) {
        lx->pos += 2;
        scan_quoted(lx, lx->s[lx->pos] == '"' ? SQL_TOK_QUOTED : SQL_TOK_STRING, false, t);
        return;
    }
    t->kind = SQL_TOK_WORD;
    t->body = lx->pos;
    while (is_ident_cont(at(lx, lx->pos)))
        lx->pos++;
    t->body_len = lx->pos - t->body;
}

/* A number, with any letters run into it (1e5, or 1abc which the server refuses). */
static void scan_number(struct sql_lexer *lx, struct sql_token *t)
{
    t->kind = SQL_TOK_NUMBER;
    while (is_digit(at(lx, lx->pos)) || at(lx, lx->pos) == '.')
        lx->pos++;
    skip_ident_tail(lx); /* a '$' right after the digits is not in it */
}

/* One byte that is a token of its own. */
static enum sql_tok_kind punctuation(uint8_t c)
{
    switch (c) {
    case '(':
        return SQL_TOK_OPEN;
    case ')':
        return SQL_TOK_CLOSE;
    case ',':
        return SQL_TOK_COMMA;
    case '.':
        return SQL_TOK_DOT;
    case ';':
        return SQL_TOK_SEMI;
    default:
        return SQL_TOK_OTHER;
    }
}

void sql_lex_next(struct sql_lexer *lx, struct sql_token *t)
{
    while (lx->pos < lx->len && sql_lex_is_blank(lx->s[lx->pos]))
        lx->pos++;
    *t = (struct sql_token){.kind = SQL_TOK_END, .start = lx->pos, .body = lx->pos};
    if (lx->pos < lx->len) {
        uint8_t c = lx->s[lx->pos], next = at(lx, lx->pos + 1);
        if (c == '\'' || c == '"')
            scan_quoted(lx, c == '"' ? SQL_TOK_QUOTED : SQL_TOK_STRING, false, t);
        else if (c == '-' && next == '-')
            scan_line_comment(lx, t);
        else if (c == '/' && next == '*')
            scan_block_comment(lx, t);
        else if (c == '$')
            scan_dollar(lx, t);
        else if (is_ident_start(c))
            scan_word(lx, t);
        else if (is_digit(c))
            scan_number(lx, t);
        else {
            t->kind = punctuation(c);
            lx->pos++;
        }
    }
    t->end = lx->pos;
}
