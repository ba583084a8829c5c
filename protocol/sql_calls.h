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
 * Words followed by '(' that are not calls (IN (...), VALUES (...),
 * varchar(10), a table's column list) are given too: the caller asks
 * its catalog, where they name no function that writes.
 *
 * notifies: a statement NOTIFY, or a call of pg_notify (what a standby
 * cannot run, though a primary runs it in a READ ONLY block).
 *
 * changes_routines: a statement CREATE, ALTER or DROP whose words before
 * any '(' name FUNCTION, PROCEDURE, ROUTINE, AGGREGATE, EXTENSION,
 * LANGUAGE, SCHEMA or TRANSFORM (CREATE OR REPLACE FUNCTION included):
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
    SQL_ROUTINE_FUNCTION, /* a name called as a function that the caller wanted */
};

/* A name called as a function (len bytes, NUL-terminated): true when the caller wants it. */
typedef bool (*sql_call_fn)(void *arg, const char *name, size_t len);

struct sql_calls {
    enum sql_routine found;      /* the first found, in the text's order */
    char name[SQL_NAME_MAX + 1]; /* SQL_ROUTINE_FUNCTION: the name wanted */
    bool changes_routines;       /* DDL of functions, procedures, extensions... */
    bool notifies;               /* a NOTIFY statement, or a call of pg_notify */
};

/*
 * The name token t of text (a word, "quoted", or U&"quoted" with the
 * default escape) as the catalog spells it, into out (SQL_NAME_BUF
 * bytes, NUL-terminated); its length.
 */
size_t sql_name_of(const uint8_t *text, const struct sql_token *t, char *out);

/* Reads sql (len bytes) into *out; wanted (may be NULL: none) is asked of each name called. */
void sql_calls_scan(const uint8_t *sql, size_t len, sql_call_fn wanted, void *arg,
                    struct sql_calls *out);

#endif
