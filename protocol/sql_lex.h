/*
 * sql_lex.h — SQL text cut into tokens as PostgreSQL's lexer cuts it.
 *
 * The one tokenizer of the SQL that pgnear reads: the transaction-pinning
 * scan (txn_pin.c), the migration scripts' split (migrate/sql_split.c) and
 * the name a DEALLOCATE names (prep_sql.c) walk its tokens.  It knows
 * only what can hide a ';' or a word:
 *
 *   'strings' ('' for a quote; a backslash is an ordinary byte, as with
 *   standard_conforming_strings on), E'strings' (a backslash hides the
 *   byte after it), B'', X'', N'', U&'' strings and U&"identifiers";
 *   "quoted identifiers"; $$dollar$$ and $tag$dollar$tag$ quotes (a tag
 *   is a letter or '_' then letters, digits or '_'); $1 parameters; words,
 *   which run on over letters, digits, '_' and '$' (a$$b is one word, not
 *   a dollar quote, and E'...' is an escape string only when the E starts
 *   a token); numbers, with any letters run into them (1e5, or 1abc that
 *   the server refuses; $1abc likewise is one token); -- line comments and
 *   block comments, which nest.  Every other byte is a token of its own.
 *
 * Blanks between tokens are skipped; comments are tokens, so that a
 * caller may skip them or look at them.  A string, quoted identifier,
 * dollar quote or block comment still open at the end of the text runs
 * to its end and is marked unterminated.  No allocation, nothing global,
 * no byte read past len; a NUL is an ordinary byte.
 */
#ifndef PGNEAR_PROTOCOL_SQL_LEX_H
#define PGNEAR_PROTOCOL_SQL_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The blanks skipped between tokens (and the only bytes that are): " \t\n\r\f\v". */
static inline bool sql_lex_is_blank(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

enum sql_tok_kind {
    SQL_TOK_END,    /* no more text */
    SQL_TOK_WORD,   /* a keyword or an unquoted name */
    SQL_TOK_QUOTED, /* a quoted identifier */
    SQL_TOK_STRING, /* a string constant of any kind, dollar-quoted too */
    SQL_TOK_PARAM,  /* $1 */
    SQL_TOK_NUMBER,
    SQL_TOK_OPEN,
    SQL_TOK_CLOSE,
    SQL_TOK_COMMA,
    SQL_TOK_DOT,
    SQL_TOK_SEMI,
    SQL_TOK_OTHER,         /* an operator byte, a lone '$', a backslash, a NUL */
    SQL_TOK_LINE_COMMENT,  /* from the "--" to the end of the line, the newline excluded */
    SQL_TOK_BLOCK_COMMENT, /* from the opening to the closing delimiter, nested ones inside */
};

struct sql_token {
    enum sql_tok_kind kind;
    size_t start, end; /* the whole token, [start, end) of the text */
    /* a word's letters, or what is between the quotes of a string or
     * quoted identifier (doubled quotes and escapes as written) */
    size_t body, body_len;
    bool unterminated; /* a quote or comment still open at the end of the text */
};

struct sql_lexer {
    const uint8_t *s;
    size_t len, pos;
};

static inline void sql_lex_init(struct sql_lexer *lx, const void *text, size_t len)
{
    lx->s = text;
    lx->len = len;
    lx->pos = 0;
}

/* The token after lx->pos (blanks skipped), and lx->pos past it; SQL_TOK_END at the end. */
void sql_lex_next(struct sql_lexer *lx, struct sql_token *t);

/* sql_lex_next, comments skipped: the next token that is code (or SQL_TOK_END). */
static inline void sql_lex_next_code(struct sql_lexer *lx, struct sql_token *t)
{
    do
        sql_lex_next(lx, t);
    while (t->kind == SQL_TOK_LINE_COMMENT || t->kind == SQL_TOK_BLOCK_COMMENT);
}

/* c, an ASCII upper case letter lowered as PostgreSQL folds keywords; no other byte changed. */
static inline uint8_t sql_fold(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c - 'A' + 'a') : c;
}

/*
 * Whether the n bytes at w are the keyword lower (lower case ASCII), their
 * letters compared by sql_fold.  The one keyword compare of the readers
 * of SQL (txn_pin.c, txn_open.c, sql_calls.c, prep_sql.c and
 * migrate/sql_split.c).
 */
static inline bool sql_word_equals(const void *w, size_t n, const char *lower)
{
    const uint8_t *b = w;
    size_t i = 0;
    for (; i < n && lower[i] != '\0'; i++)
        if (sql_fold(b[i]) != (uint8_t)lower[i])
            return false;
    return i == n && lower[i] == '\0';
}

/* Whether t, a token of lx's text, is the word lower (sql_word_equals). */
static inline bool sql_tok_is_word(const struct sql_lexer *lx, const struct sql_token *t,
                                   const char *lower)
{
    return t->kind == SQL_TOK_WORD && sql_word_equals(lx->s + t->body, t->body_len, lower);
}

#endif
