/*
 * db_ddl.c — DROP DATABASE, ALTER DATABASE ... RENAME and CREATE DATABASE
 * ... TEMPLATE read for the database they name (db_ddl.h).
 */
#include "protocol/db_ddl.h"

#include <string.h>

#include "protocol/sql_lex.h"

/* The next token that is code. */
static void next(struct sql_lexer *lx, struct sql_token *t)
{
    sql_lex_next_code(lx, t);
}

static bool is_name(const struct sql_token *t)
{
    return t->kind == SQL_TOK_WORD || t->kind == SQL_TOK_QUOTED;
}

/* t names the database: its name into out->database; false when it is none or empty. */
static bool take_name(const struct sql_lexer *lx, const struct sql_token *t, struct db_ddl *out)
{
    return is_name(t) && !t->unterminated && sql_name_of(lx->s, t, out->database) > 0;
}

/* Nothing but a ';' may follow: one statement alone. */
static bool ends(struct sql_lexer *lx, struct sql_token *t)
{
    if (t->kind == SQL_TOK_SEMI)
        next(lx, t);
    return t->kind == SQL_TOK_END;
}

/* DROP DATABASE [IF EXISTS] x [[WITH] (option, ...)] */
static bool parse_drop(struct sql_lexer *lx, struct sql_token *t, struct db_ddl *out)
{
    next(lx, t);
    if (sql_tok_is_word(lx, t, "if")) {
        next(lx, t);
        if (!sql_tok_is_word(lx, t, "exists"))
            return false;
        next(lx, t);
    }
    if (!take_name(lx, t, out))
        return false;
    next(lx, t);
    if (sql_tok_is_word(lx, t, "with"))
        next(lx, t);
    if (t->kind == SQL_TOK_OPEN) {
        while (t->kind != SQL_TOK_CLOSE && t->kind != SQL_TOK_END)
            next(lx, t);
        if (t->kind != SQL_TOK_CLOSE)
            return false;
        next(lx, t);
    }
    out->kind = DB_DDL_DROP;
    return ends(lx, t);
}

/* ALTER DATABASE x RENAME TO y */
static bool parse_rename(struct sql_lexer *lx, struct sql_token *t, struct db_ddl *out)
{
    next(lx, t);
    if (!take_name(lx, t, out))
        return false;
    next(lx, t);
    if (!sql_tok_is_word(lx, t, "rename"))
        return false;
    next(lx, t);
    if (!sql_tok_is_word(lx, t, "to"))
        return false;
    next(lx, t);
    if (!is_name(t))
        return false;
    next(lx, t);
    out->kind = DB_DDL_RENAME;
    return ends(lx, t);
}

/* CREATE DATABASE y [WITH] ... TEMPLATE [=] x ...: x (DEFAULT: none named). */
static bool parse_create(struct sql_lexer *lx, struct sql_token *t, struct db_ddl *out)
{
    next(lx, t);
    if (!is_name(t))
        return false;
    for (next(lx, t); t->kind != SQL_TOK_END && t->kind != SQL_TOK_SEMI; next(lx, t)) {
        if (!sql_tok_is_word(lx, t, "template"))
            continue;
        next(lx, t);
        if (t->kind == SQL_TOK_OTHER && lx->s[t->start] == '=')
            next(lx, t);
        if (sql_tok_is_word(lx, t, "default") || !take_name(lx, t, out))
            return false;
        out->kind = DB_DDL_TEMPLATE;
    }
    return out->kind == DB_DDL_TEMPLATE && ends(lx, t);
}

int db_ddl_parse(const uint8_t *text, size_t len, struct db_ddl *out)
{
    struct sql_lexer lx;
    struct sql_token t;
    out->kind = DB_DDL_NONE;
    out->database[0] = '\0';
    const void *nul = memchr(text, '\0', len);
    sql_lex_init(&lx, text, nul != NULL ? (size_t)((const uint8_t *)nul - text) : len);
    next(&lx, &t);
    bool drop = sql_tok_is_word(&lx, &t, "drop"), alter = sql_tok_is_word(&lx, &t, "alter"),
         create = sql_tok_is_word(&lx, &t, "create");
    if (!drop && !alter && !create)
        return 0;
    next(&lx, &t);
    if (!sql_tok_is_word(&lx, &t, "database"))
        return 0;
    bool ok = drop    ? parse_drop(&lx, &t, out)
              : alter ? parse_rename(&lx, &t, out)
                      : parse_create(&lx, &t, out);
    if (!ok) {
        out->kind = DB_DDL_NONE;
        out->database[0] = '\0';
        return 0;
    }
    return 1;
}
