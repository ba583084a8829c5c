/*
 * sql_calls.c — the routines a text runs (sql_calls.h).
 *
 * The tokens come from sql_lex.c, comments skipped.  A name is called
 * when the next token is '(' (after a U&"name" UESCAPE 'c', the string
 * too); a ';' ends a statement, whose first word says DO or CALL and,
 * for CREATE, ALTER or DROP, whose words up to its first '(' say
 * whether it changes routines.
 */
#include "protocol/sql_calls.h"

#include <string.h>

#include "protocol/hex.h"
#include "protocol/sql_lex.h"

/* What the scan knows of the statement and the token before this one. */
struct calls_scan {
    struct sql_lexer lx;
    unsigned tokens; /* the statement's tokens so far */
    bool ddl;        /* the statement begins CREATE, ALTER or DROP, no '(' yet */
    bool have_name;  /* the token before (or before UESCAPE 'c') is a name */
    struct sql_token name;
    uint8_t escape;   /* a U& name's escape character */
    bool escape_next; /* UESCAPE came: the string that follows is the escape */
};

/* Words a DDL statement names before its first '(' when it changes routines. */
static const char *const routine_words[] = {
    "function", "procedure", "routine", "aggregate", "extension", "language", "schema", "transform",
};

/* A U&"name", whose escapes are decoded. */
static bool is_unicode_name(const uint8_t *text, const struct sql_token *t)
{
    return t->kind == SQL_TOK_QUOTED && t->body > t->start + 1 && sql_fold(text[t->start]) == 'u';
}

/* The code point of digits hex digits at p (n bytes there), or -1. */
static long hex_code(const uint8_t *p, size_t n, size_t digits)
{
    long v = 0;
    if (n < digits)
        return -1;
    for (size_t i = 0; i < digits; i++) {
        int d = hex_digit_value(p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Appends code point cp to out (UTF-8) as room allows; the length after. */
static size_t put_utf8(char *out, size_t at, size_t cap, long cp)
{
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | (cp >> 6));
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | (cp >> 12));
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | ((cp >> 18) & 0x07));
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    for (size_t i = 0; i < n && at < cap; i++)
        out[at++] = (char)b[i];
    return at;
}

/*
 * The name token t of text as the catalog spells it, into out
 * (SQL_NAME_BUF bytes): folded, unquoted, unescaped (escape: a U& name's
 * escape character), cut at a character's start.
 */
static size_t name_decode(const uint8_t *text, const struct sql_token *t, uint8_t escape, char *out)
{
    const uint8_t *p = text + t->body;
    size_t n = t->body_len, len = 0;
    bool unicode = is_unicode_name(text, t);
    for (size_t i = 0; i < n && len < SQL_NAME_BUF - 1;) {
        uint8_t c = p[i];
        if (c == '\0')
            break; /* no text a server reads holds one: the name ends there */
        if (t->kind == SQL_TOK_WORD) {
            out[len++] = (char)sql_fold(c);
            i++;
        } else if (c == '"' && i + 1 < n && p[i + 1] == '"') {
            out[len++] = '"';
            i += 2;
        } else if (unicode && c == escape && i + 1 < n && p[i + 1] == escape) {
            out[len++] = (char)c;
            i += 2;
        } else if (unicode && c == escape) {
            bool wide = i + 1 < n && p[i + 1] == '+';
            long cp = hex_code(p + i + 1 + wide, n - i - 1 - wide, wide ? 6 : 4);
            if (cp <= 0 || cp > 0x10FFFF) {
                out[len++] = (char)c; /* the server refuses it: kept as written */
                i++;
                continue;
            }
            len = put_utf8(out, len, SQL_NAME_BUF - 1, cp);
            i += 1 + wide + (wide ? 6 : 4);
        } else {
            out[len++] = (char)c;
            i++;
        }
    }
    if (len > SQL_NAME_MAX) {
        len = SQL_NAME_MAX;
        while (len > 0 && ((uint8_t)out[len] & 0xC0) == 0x80)
            len--; /* PostgreSQL cuts a name at a character's start */
    }
    out[len] = '\0';
    return len;
}

size_t sql_name_of(const uint8_t *text, const struct sql_token *t, char *out)
{
    return name_decode(text, t, '\\', out);
}

/* A '(' after a name: a call, which the caller may want. */
static void called(struct calls_scan *sc, sql_call_fn wanted, void *arg, struct sql_calls *out)
{
    char name[SQL_NAME_BUF];
    size_t len = name_decode(sc->lx.s, &sc->name, sc->escape, name);
    if (strcmp(name, "pg_notify") == 0)
        out->notifies = true;
    if (wanted == NULL || out->found != SQL_ROUTINE_NONE)
        return;
    if (len > 0 && wanted(arg, name, len)) {
        out->found = SQL_ROUTINE_FUNCTION;
        memcpy(out->name, name, len + 1);
    }
}

/* The statement's first token: DO, CALL, or the verb of a DDL statement. */
static void first_token(struct calls_scan *sc, const struct sql_token *t, struct sql_calls *out)
{
    if (out->found == SQL_ROUTINE_NONE && sql_tok_is_word(&sc->lx, t, "do"))
        out->found = SQL_ROUTINE_DO;
    else if (out->found == SQL_ROUTINE_NONE && sql_tok_is_word(&sc->lx, t, "call"))
        out->found = SQL_ROUTINE_CALL;
    if (sql_tok_is_word(&sc->lx, t, "notify"))
        out->notifies = true;
    sc->ddl = sql_tok_is_word(&sc->lx, t, "create") || sql_tok_is_word(&sc->lx, t, "alter") ||
              sql_tok_is_word(&sc->lx, t, "drop");
}

static void ddl_token(struct calls_scan *sc, const struct sql_token *t, struct sql_calls *out)
{
    if (t->kind == SQL_TOK_OPEN) {
        sc->ddl = false;
        return;
    }
    for (size_t i = 0; i < sizeof(routine_words) / sizeof(routine_words[0]); i++)
        if (sql_tok_is_word(&sc->lx, t, routine_words[i]))
            out->changes_routines = true;
}

/* Whether t goes on a U& name's UESCAPE 'c' (the name stays the one called). */
static bool escape_clause(struct calls_scan *sc, const struct sql_token *t)
{
    if (!sc->have_name || !is_unicode_name(sc->lx.s, &sc->name))
        return false;
    if (!sc->escape_next && sql_tok_is_word(&sc->lx, t, "uescape")) {
        sc->escape_next = true;
        return true;
    }
    if (sc->escape_next && t->kind == SQL_TOK_STRING && t->body_len == 1) {
        sc->escape_next = false;
        sc->escape = sc->lx.s[t->body];
        return true;
    }
    return false;
}

void sql_calls_scan(const uint8_t *sql, size_t len, sql_call_fn wanted, void *arg,
                    struct sql_calls *out)
{
    struct calls_scan sc = {.escape = '\\'};
    struct sql_token t;
    *out = (struct sql_calls){.found = SQL_ROUTINE_NONE};
    sql_lex_init(&sc.lx, sql, len);
    for (sql_lex_next_code(&sc.lx, &t); t.kind != SQL_TOK_END; sql_lex_next_code(&sc.lx, &t)) {
        if (t.kind == SQL_TOK_SEMI) {
            sc = (struct calls_scan){.lx = sc.lx, .escape = '\\'};
            continue;
        }
        if (sc.tokens++ == 0)
            first_token(&sc, &t, out);
        else if (sc.ddl)
            ddl_token(&sc, &t, out);
        if (escape_clause(&sc, &t))
            continue;
        if (t.kind == SQL_TOK_OPEN && sc.have_name)
            called(&sc, wanted, arg, out);
        sc.have_name = t.kind == SQL_TOK_WORD || t.kind == SQL_TOK_QUOTED;
        sc.name = t;
        sc.escape = '\\';
        sc.escape_next = false;
    }
}
