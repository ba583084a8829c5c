/*
 * sql_quote.c — text quoted for SQL (sql_quote.h).
 */
#include "protocol/sql_quote.h"

#include <string.h>

/* How many of the len bytes at text are c. */
static size_t count_of(const char *text, size_t len, char c)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += text[i] == c;
    return n;
}

/* The quoted identifier's length, without its NUL. */
size_t sql_quote_ident_len(const char *text, size_t len)
{
    return len + count_of(text, len, '"') + 2;
}

/* text as an identifier into out (room as the header says); the quoted length. */
size_t sql_quote_ident(char *out, const char *text, size_t len)
{
    size_t n = 0;
    out[n++] = '"';
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '"')
            out[n++] = '"';
        out[n++] = text[i];
    }
    out[n++] = '"';
    out[n] = '\0';
    return n;
}

/*
 * The quoted literal's length, without its NUL; an E'' literal's E and doubled
 * backslashes counted.
 */
size_t sql_quote_literal_len(const char *text, size_t len)
{
    size_t backslashes = count_of(text, len, '\\');
    return len + count_of(text, len, '\'') + 2 + (backslashes > 0 ? backslashes + 1 : 0);
}

/* text as a literal into out (room as the header says); the quoted length. */
size_t sql_quote_literal(char *out, const char *text, size_t len)
{
    size_t n = 0;
    if (memchr(text, '\\', len) != NULL)
        out[n++] = 'E';
    out[n++] = '\'';
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\'' || text[i] == '\\')
            out[n++] = text[i];
        out[n++] = text[i];
    }
    out[n++] = '\'';
    out[n] = '\0';
    return n;
}

/* text quoted by quote into buf, if the quote_len bytes and a NUL fit. */
static bool quote_into(char *buf, size_t cap, const char *text,
                       size_t (*quote_len)(const char *, size_t),
                       size_t (*quote)(char *, const char *, size_t))
{
    size_t len = strlen(text);
    if (quote_len(text, len) >= cap)
        return false;
    quote(buf, text, len);
    return true;
}

bool sql_quote_ident_into(char *buf, size_t cap, const char *text)
{
    return quote_into(buf, cap, text, sql_quote_ident_len, sql_quote_ident);
}

/* As sql_quote_ident_into, for a literal. */
bool sql_quote_literal_into(char *buf, size_t cap, const char *text)
{
    return quote_into(buf, cap, text, sql_quote_literal_len, sql_quote_literal);
}
