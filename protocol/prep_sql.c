/*
 * prep_sql.c — the SQL prepared statements read (prepared.h): the name a
 * simple Query's DEALLOCATE lets go of.
 */
#include "protocol/prepared.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* p past the whitespace at it (and within end). */
static const char *skip_space(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f'))
        p++;
    return p;
}

/* p past the keyword word (any case) and the whitespace after it; NULL when it is not there. */
static const char *keyword_at(const char *p, const char *end, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(end - p) < n || strncasecmp(p, word, n) != 0)
        return NULL;
    if (p + n < end && (isalnum((unsigned char)p[n]) || p[n] == '_' || p[n] == '$'))
        return NULL;
    return skip_space(p + n, end);
}

bool prep_deallocate_name(const char *text, size_t len, char *out, size_t cap)
{
    const char *end = text + len, *p = skip_space(text, end), *q;
    size_t n = 0;
    if ((p = keyword_at(p, end, "deallocate")) == NULL)
        return false;
    if ((q = keyword_at(p, end, "prepare")) != NULL)
        p = q;
    if (p < end && *p == '"') {
        for (p++; p < end && n + 1 < cap; p++) {
            if (*p == '"' && !(p + 1 < end && p[1] == '"'))
                break;
            out[n++] = *p;
            p += *p == '"';
        }
        if (p >= end || *p != '"' || n == 0)
            return false;
        p++;
    } else {
        while (p < end && n + 1 < cap && (isalnum((unsigned char)*p) || *p == '_' || *p == '$'))
            out[n++] = (char)tolower((unsigned char)*p++);
        if (n == 0 || (out[0] >= '0' && out[0] <= '9') || strcmp(out, "all") == 0)
            return false;
    }
    out[n] = '\0';
    p = skip_space(p, end);
    if (p < end && *p == ';')
        p = skip_space(p + 1, end);
    return p == end;
}
