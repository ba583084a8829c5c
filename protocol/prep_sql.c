/*
 * prep_sql.c — the SQL prepared statements read (prepared.h): the name a
 * simple Query's DEALLOCATE lets go of, and the one its EXECUTE runs,
 * read on the tokens of sql_lex.c.
 */
#include "protocol/prepared.h"

#include <string.h>

#include "protocol/sql_lex.h"

/*
 * An unquoted name, folded to lower case as PostgreSQL folds it; only
 * ASCII letters, digits, '_' and '$' (a name of other bytes is left to
 * the server).  ALL is no name: DEALLOCATE ALL.
 */
static bool unquoted_name(const char *word, size_t len, char *out, size_t cap)
{
    if (len == 0 || len >= cap)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = word[i];
        bool lower = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '$';
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (!lower)
            return false;
        out[i] = c;
    }
    out[len] = '\0';
    return strcmp(out, "all") != 0;
}

/* A quoted name as it is, its doubled quotes made one; never empty. */
static bool quoted_name(const char *body, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (n + 1 >= cap)
            return false;
        out[n++] = body[i];
        i += body[i] == '"'; /* the second of a doubled quote */
    }
    out[n] = '\0';
    return n > 0;
}

/* The name a token stands for: a word, or a "quoted identifier" (not U&"..."). */
static bool name_token(const char *text, const struct sql_token *t, char *out, size_t cap)
{
    if (t->kind == SQL_TOK_WORD)
        return unquoted_name(text + t->body, t->body_len, out, cap);
    if (t->kind == SQL_TOK_QUOTED && text[t->start] == '"' && !t->unterminated)
        return quoted_name(text + t->body, t->body_len, out, cap);
    return false;
}

static const char DEALLOCATE[] = "deallocate", EXECUTE[] = "execute";

/*
 * Whether the text's first byte after blanks (as sql_lex.c skips them) is
 * the first letter of keyword, in either case: the first token of a
 * DEALLOCATE or an EXECUTE, whose text has no comment before it.  Every
 * Query is read for one; most fail here, not lexed.
 */
static bool may_begin_with(const char *text, size_t len, const char *keyword)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || (text[i] >= '\t' && text[i] <= '\r')))
        i++;
    return i < len && sql_fold((uint8_t)text[i]) == (uint8_t)keyword[0];
}

/* Comments are tokens: a text with one is not taken (the server reads it as it is). */
bool prep_deallocate_name(const char *text, size_t len, char *out, size_t cap)
{
    struct sql_lexer lx;
    struct sql_token t;
    if (!may_begin_with(text, len, DEALLOCATE))
        return false;
    sql_lex_init(&lx, text, len);
    sql_lex_next(&lx, &t);
    if (!sql_tok_is_word(&lx, &t, DEALLOCATE))
        return false;
    sql_lex_next(&lx, &t);
    if (sql_tok_is_word(&lx, &t, "prepare"))
        sql_lex_next(&lx, &t);
    if (!name_token(text, &t, out, cap))
        return false;
    sql_lex_next(&lx, &t);
    if (t.kind == SQL_TOK_SEMI)
        sql_lex_next(&lx, &t);
    return t.kind == SQL_TOK_END;
}

/*
 * "EXECUTE name" and whatever follows (its arguments, more statements):
 * the name into out, and in *rest where the text goes on after it.
 */
bool prep_execute_name(const char *text, size_t len, char *out, size_t cap, size_t *rest)
{
    struct sql_lexer lx;
    struct sql_token t;
    if (!may_begin_with(text, len, EXECUTE))
        return false;
    sql_lex_init(&lx, text, len);
    sql_lex_next(&lx, &t);
    if (!sql_tok_is_word(&lx, &t, EXECUTE))
        return false;
    sql_lex_next(&lx, &t);
    if (!name_token(text, &t, out, cap))
        return false;
    *rest = t.end;
    return true;
}
