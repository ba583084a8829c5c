/*
 * sql_split.h — a SQL script cut into statements the way psql cuts it.
 *
 * A ';' ends a statement except inside 'strings' ('' for a quote; a
 * backslash is an ordinary character, as with standard_conforming_strings
 * on), E'strings' (a backslash escapes the next character, \' included),
 * "identifiers", $$dollar$$ or $tag$dollar$tag$ quotes (a tag is a letter
 * or '_' then letters, digits or '_'; $1 is a parameter, and a '$' inside
 * a word such as a$$b belongs to the word), -- line comments, nested
 * block comments, parentheses, and the BEGIN ... END body of a CREATE [OR
 * REPLACE] FUNCTION or PROCEDURE, which psql follows with a heuristic
 * that this file reproduces: in a statement whose first words are CREATE
 * [OR REPLACE] FUNCTION|PROCEDURE, BEGIN and CASE (CASE only inside a
 * BEGIN) open and END closes, outside parentheses.
 *
 * What differs from psql, on purpose: a backslash outside quotes and
 * comments (a psql meta-command such as \set or \i, or \;) is an error,
 * since no psql runs the file; a NUL byte is an error; and so is a
 * quote, comment, dollar quote, parenthesis or BEGIN body still open at
 * the end of the text (psql would send the rest as one statement, which
 * the server would reject, perhaps after earlier statements had run).
 *
 * A statement is the text from its first token to its last: whitespace
 * and comments before it, the ';' and what follows it are not part of
 * it; comments inside it are.  Statements that are only whitespace and
 * comments are dropped, as the server would answer them with an empty
 * query.  Pure: nothing global, every allocation checked, only len bytes
 * read.
 */
#ifndef PGNEAR_PROXY_MIGRATE_SQL_SPLIT_H
#define PGNEAR_PROXY_MIGRATE_SQL_SPLIT_H

#include <stddef.h>

#define SQL_SPLIT_MAX_BYTES      (32u * 1024 * 1024) /* a longer script is refused */
#define SQL_SPLIT_MAX_STATEMENTS 100000              /* and one with more statements */

struct sql_statement {
    size_t offset; /* of its first byte in the script */
    size_t length; /* to the end of its last token, without the ';' */
    unsigned line; /* of its first byte, from 1 */
};

struct sql_script {
    struct sql_statement *stmts;
    size_t count;
};

enum sql_split_result {
    SQL_SPLIT_OK = 0,
    SQL_SPLIT_TOO_LARGE = -1,    /* more than SQL_SPLIT_MAX_BYTES */
    SQL_SPLIT_TOO_MANY = -2,     /* more than SQL_SPLIT_MAX_STATEMENTS */
    SQL_SPLIT_UNTERMINATED = -3, /* a construct still open at the end */
    SQL_SPLIT_NUL = -4,          /* a NUL byte */
    SQL_SPLIT_META_COMMAND = -5, /* a backslash outside quotes and comments */
    SQL_SPLIT_OUT_OF_MEMORY = -6,
};

/* Why sql_split failed: the line where the construct began, and a message. */
struct sql_split_error {
    unsigned line;     /* where it began; 0 for a script too large */
    char message[160]; /* lower-case first letter, no trailing period */
};

/*
 * Called for each -- comment outside quotes, with its text from the "--"
 * to the end of the line (the newline excluded) and its line.  Returns 0
 * to go on, or a positive value to stop the split, which returns it.
 */
typedef int (*sql_comment_fn)(void *ctx, size_t offset, size_t length, unsigned line);

/*
 * Cuts text[0..len) into *out (freed with sql_script_free, even after an
 * error).  on_comment may be NULL.  Returns SQL_SPLIT_OK, a negative
 * sql_split_result with *err filled in, or on_comment's positive value.
 */
int sql_split(const char *text, size_t len, struct sql_script *out, struct sql_split_error *err,
              sql_comment_fn on_comment, void *ctx);

void sql_script_free(struct sql_script *script);

#endif
