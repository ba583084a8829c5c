/*
 * sql_calls.h — the routines a text runs: DO and CALL statements, and the
 * names it calls as functions; and whether it changes which routines a
 * database has.
 *
 * A standby runs a statement that calls a function which writes without
 * writing anything when the function catches the refusal (PL/pgSQL's
 * EXCEPTION WHEN OTHERS), checks pg_is_in_recovery() first, or writes
 * elsewhere (dblink_exec): the standby answers as if it worked.  The
 * `nearest` need therefore places such a statement on a primary from its
 * text (near.h), and this scan finds what it calls:
 *
 *   DO and CALL as a statement's first word;
 *   a name followed by '(' — count(x), myschema.log_visit(42),
 *   "Quoted"(1), U&"..."(1) with its escapes decoded — given as the
 *   catalog spells it: an unquoted name folded to lower case, a quoted
 *   one as written (doubled quotes undone), either cut to 63 bytes as
 *   PostgreSQL cuts identifiers.  The schema is left off: the caller
 *   matches the name in any schema, which errs towards the primary.
 *
 * What else a statement names, each name given once with where it
 * stands (enum sql_use), for the caller to look up in its catalog of
 * what may write and of every name (proxy/base/func_catalog.h):
 *
 *   a relation: the name after FROM (not EXTRACT's, SUBSTRING's, TRIM's,
 *   OVERLAY's, POSITION's, nor IS DISTINCT FROM's), after JOIN, after a
 *   ',' of a FROM list, and after TABLE as a statement's first word (ONLY,
 *   LATERAL and a schema skipped), unless a WITH of the statement names
 *   it (name AS (...));
 *   an operator: a run of operator bytes (+-*\/<>=~!@#%^&|`?) as
 *   PostgreSQL's lexer cuts it (a trailing + or - is an operator of its
 *   own unless the run holds one of ~!@#%^&|`?), "=>" left out;
 *   a type: the name after :: (a schema skipped);
 *   any other name (a column, an alias, a type in CAST): SQL_USE_NAME.
 *
 * Words followed by '(' that are not calls: PostgreSQL's reserved words
 * and those that name no function unquoted (IN (...), VALUES (...),
 * EXTRACT(...), float(8)) are not given at all; the grammar's words that
 * a function may be named too (GROUP BY CUBE (...), HASH (...)) are
 * given as SQL_USE_KEYWORD; a name after AS, WITH, RECURSIVE, PREPARE,
 * EXECUTE, TABLE or VIEW (a column list), and an alias's column list in a
 * FROM list (generate_series(1, 3) g(i)), as SQL_USE_NAME.
 *
 * notifies: a statement NOTIFY, or a call of pg_notify (what a standby
 * cannot run, though a primary runs it in a READ ONLY block).
 *
 * changes_routines: a statement CREATE, ALTER or DROP whose words before
 * any '(' name FUNCTION, PROCEDURE, ROUTINE, AGGREGATE, EXTENSION,
 * LANGUAGE, SCHEMA, TRANSFORM, VIEW, RULE, POLICY, OPERATOR, CAST, DOMAIN
 * or TYPE (CREATE OR REPLACE FUNCTION included):
 * the catalog the caller keeps is out of date after it commits.
 *
 * The text is cut by sql_lex.c: nothing in a string, a quoted identifier
 * or a comment counts.  One pass, no allocation, no byte read past len.
 */
#ifndef PGNEAR_PROTOCOL_SQL_CALLS_H
#define PGNEAR_PROTOCOL_SQL_CALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest name PostgreSQL keeps (NAMEDATALEN - 1). */
#define SQL_NAME_MAX 63
/* Room for a name as decoded before it is cut: SQL_NAME_MAX and a character's 4 bytes, NUL. */
#define SQL_NAME_BUF (SQL_NAME_MAX + 5)

struct sql_token;

enum sql_routine {
    SQL_ROUTINE_NONE,     /* nothing the caller wanted */
    SQL_ROUTINE_DO,       /* a DO statement */
    SQL_ROUTINE_CALL,     /* a CALL statement */
    SQL_ROUTINE_FUNCTION, /* a name that the caller wanted (the first) */
};

/* Where a name stands (above). */
enum sql_use {
    SQL_USE_CALL,     /* name(...): a function, or a type called as a cast */
    SQL_USE_RELATION, /* after FROM, JOIN, TABLE */
    SQL_USE_OPERATOR, /* an operator */
    SQL_USE_TYPE,     /* after :: */
    SQL_USE_NAME,     /* any other */
    SQL_USE_KEYWORD,  /* a word of the grammar that a function may be named, then '(' */
};

/* A name (len bytes, NUL-terminated) where use says: true when the caller wants it. */
typedef bool (*sql_call_fn)(void *arg, enum sql_use use, const char *name, size_t len);

struct sql_calls {
    enum sql_routine found;      /* the first found, in the text's order */
    char name[SQL_NAME_MAX + 1]; /* SQL_ROUTINE_FUNCTION: the name wanted */
    enum sql_use use;            /* ... and where it stands */
    bool changes_routines;       /* DDL of functions, procedures, extensions... */
    bool notifies;               /* a NOTIFY statement, or a call of pg_notify */
};

/*
 * The name token t of text (a word, "quoted", or U&"quoted" with the
 * default escape) as the catalog spells it, into out (SQL_NAME_BUF
 * bytes, NUL-terminated); its length.
 */
size_t sql_name_of(const uint8_t *text, const struct sql_token *t, char *out);

/* Reads sql (len bytes) into *out; wanted (may be NULL: none) is asked of each name it gives. */
void sql_calls_scan(const uint8_t *sql, size_t len, sql_call_fn wanted, void *arg,
                    struct sql_calls *out);

#endif
