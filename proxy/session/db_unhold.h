/*
 * db_unhold.h — a client's DROP DATABASE x, ALTER DATABASE x RENAME or
 * CREATE DATABASE ... TEMPLATE x (protocol/db_ddl.h) seen on its way to the
 * server: pgnear's own idle connections to x, on every worker, are let go
 * at once (the flow's database_unhold: the pool's, pool/pool.h), so that
 * the server, which waits up to 5 s for the other sessions of x to end
 * before it refuses with 55006, finds none of pgnear's.  The statement
 * goes on as it came, at once; what still holds x is a client's own
 * session connected to it, as directly.
 */
#ifndef PGNEAR_PROXY_DB_UNHOLD_H
#define PGNEAR_PROXY_DB_UNHOLD_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct session;

/* Reads the message at msg (avail bytes there, a whole Query or Parse or less: then nothing). */
void db_unhold_bytes(struct session *s, const uint8_t *msg, size_t avail);

/* The same for the message at the front of in. */
void db_unhold_in(struct session *s, struct evbuffer *in);

#endif
