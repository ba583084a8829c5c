/*
 * db_ddl.h — the statements PostgreSQL refuses while another session is
 * connected to a database (55006 "database ... is being accessed by other
 * users"), and the database each names: DROP DATABASE [IF EXISTS] x
 * (WITH (FORCE) too: the server ends the others itself), ALTER DATABASE x
 * RENAME TO y, and CREATE DATABASE y ... TEMPLATE [=] x.
 *
 * pgnear's own idle connections to x (its pool's) would hold it where a
 * direct client holds nothing; reading the statement, pgnear lets them go
 * before the server's check (proxy/pool/pool_unhold.h).  One statement
 * alone in the text, as PostgreSQL requires of these (none runs in a
 * transaction block, nor beside another statement).
 */
#ifndef PGNEAR_PROTOCOL_DB_DDL_H
#define PGNEAR_PROTOCOL_DB_DDL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/sql_calls.h"

enum db_ddl_kind {
    DB_DDL_NONE,
    DB_DDL_DROP,     /* DROP DATABASE x */
    DB_DDL_RENAME,   /* ALTER DATABASE x RENAME TO y */
    DB_DDL_TEMPLATE, /* CREATE DATABASE y TEMPLATE x */
};

struct db_ddl {
    enum db_ddl_kind kind;
    char database[SQL_NAME_BUF]; /* x, as the catalog spells it (cut to 63 bytes) */
};

/*
 * Whether the first byte of a statement's text (after blanks) may begin
 * one of these: a cheap test before the parse, for the relay.
 */
static inline bool db_ddl_may_begin(uint8_t c)
{
    uint8_t l = (uint8_t)(c | 0x20);
    return l == 'd' || l == 'a' || l == 'c' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
           c == '\f' || c == '\v' || c == '/' || c == '-';
}

/*
 * Reads the SQL text (len bytes, not NUL-terminated; a NUL ends it) into
 * *out: 1 with out->kind and out->database set, 0 for any other text.
 */
int db_ddl_parse(const uint8_t *text, size_t len, struct db_ddl *out);

#endif
