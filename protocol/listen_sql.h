/*
 * listen_sql.h — a simple Query's text read as LISTEN and UNLISTEN
 * statements alone, each channel named as PostgreSQL names it: an
 * unquoted identifier folded to lower case (ASCII letters only, as the
 * server does in UTF8), a quoted one as written with "" read as ".  What
 * pgnear answers itself under transaction pooling (proxy/session/notify_hub.h).
 */
#ifndef PGNEAR_PROTOCOL_LISTEN_SQL_H
#define PGNEAR_PROTOCOL_LISTEN_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/sql_lex.h"

/* A channel's longest name: NAMEDATALEN - 1 bytes. */
#define LISTEN_SQL_NAME_MAX 63
/* The most statements one Query may hold to be read here. */
#define LISTEN_SQL_OPS_MAX 32

enum listen_op_kind {
    LISTEN_OP_LISTEN,
    LISTEN_OP_UNLISTEN,
    LISTEN_OP_UNLISTEN_ALL, /* UNLISTEN *: channel is "" */
    LISTEN_OP_DISCARD_ALL,  /* DISCARD ALL, which UNLISTENs * too (listen_sql_unlistens only) */
};

struct listen_op {
    enum listen_op_kind kind;
    char channel[LISTEN_SQL_NAME_MAX + 1];
};

/*
 * The statements of text (len bytes, no NUL needed) into ops (cap of
 * them), in order; empty statements between semicolons and comments are
 * skipped.  0 when the text is anything else: another statement, no
 * statement at all, more than cap, a name longer than LISTEN_SQL_NAME_MAX
 * (the server truncates it with a NOTICE), a reserved word unquoted (a
 * syntax error there), a U& or empty quoted name, an
 * unterminated quote or comment — texts the server reads itself.
 */
size_t listen_sql_parse(const void *text, size_t len, struct listen_op *ops, size_t cap);

/*
 * The statements of any text (a Query's, or a Parse's one) that stop
 * listening, in order, into ops (cap of them; more are left out): UNLISTEN
 * name, UNLISTEN * and DISCARD ALL, each as it begins a statement; the
 * other statements are skipped to their ';'.  An UNLISTEN whose name is
 * not read here (U&, over 63 bytes) counts as UNLISTEN * would not: it is
 * left out.  Returns how many.
 */
size_t listen_sql_unlistens(const void *text, size_t len, struct listen_op *ops, size_t cap);

/*
 * Whether a text whose first byte is c may be one that listen_sql_parse
 * reads: c begins LISTEN or UNLISTEN, or is what the lexer skips or
 * passes over before a statement (a blank, a comment's '/' or '-', a
 * ';').  False is certain; true asks for the parse.  A cheap look before
 * a Query is read whole.
 */
static inline bool listen_sql_may_begin(uint8_t c)
{
    return c == 'L' || c == 'l' || c == 'U' || c == 'u' || c == '/' || c == '-' || c == ';' ||
           sql_lex_is_blank(c);
}

/* Whether text may hold one of them: the word UNLISTEN or DISCARD anywhere, cheaply. */
bool listen_sql_may_unlisten(const void *text, size_t len);

#endif
