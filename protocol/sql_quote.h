/*
 * sql_quote.h — text quoted for SQL: as an identifier or as a literal.
 *
 * The one place pgnear writes a name or a value into SQL text instead of
 * binding it as a parameter (CREATE DATABASE's name and owner, LISTEN's
 * channel, a subscription's conninfo).  An identifier is "quoted" with each '"'
 * doubled.  A literal is '...' with each quote doubled; one that holds a
 * backslash is E'...' with each backslash doubled as well, so that it
 * reads the same whatever standard_conforming_strings says.  (A libpq
 * conninfo value is quoted otherwise: pgasync_conninfo_add.)
 *
 * Each quotes len bytes (a NUL among them is copied as it is: the caller
 * knows its text has none) into out, which has room for the
 * sql_quote_*_len bytes and a NUL, and returns the quoted length.
 */
#ifndef PGNEAR_PROTOCOL_SQL_QUOTE_H
#define PGNEAR_PROTOCOL_SQL_QUOTE_H

#include <stdbool.h>
#include <stddef.h>

size_t sql_quote_ident_len(const char *text, size_t len);
size_t sql_quote_ident(char *out, const char *text, size_t len);

size_t sql_quote_literal_len(const char *text, size_t len);
size_t sql_quote_literal(char *out, const char *text, size_t len);

/* text quoted into buf, NUL-terminated; false (buf untouched) when cap is too small. */
bool sql_quote_ident_into(char *buf, size_t cap, const char *text);
bool sql_quote_literal_into(char *buf, size_t cap, const char *text);

#endif
