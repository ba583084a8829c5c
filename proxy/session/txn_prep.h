/*
 * txn_prep.h — extended-protocol prepared statements under transaction
 * pooling: a client's named statements keep working whichever server
 * connection runs its next transaction.
 *
 * protocol/prepared.h does the work: it maps each client's statement
 * names to statements of the worker's registry, prepares them (under
 * names of pgnear's own) on a server connection that lacks them, keeps
 * max_prepared_statements of them per connection (the least recently used
 * closed first, never one an unanswered message needs), and answers a
 * Parse the connection already has and every Close itself.  This file is
 * the session's side of it: each client message, whole, goes through the
 * rewriter on its way to the server; each server message comes back
 * through it, whole, except the rows and COPY data of an answer, which go
 * on as they come (prep_server_passes), however large.  A message the
 * rewriter cannot rewrite before an earlier answer comes (PREP_WAIT)
 * stays unread until the server has sent more.
 *
 * It applies to sessions under transaction pooling that do not ask for
 * pgnear.fence (whose reader asks the server questions of its own) and
 * with max_prepared_statements above 0; other sessions' named statements
 * pin them (txn.h).  A connection is given back only when the rewriter
 * says it owes nothing (prep_server_idle); DISCARD ALL by the pool, or
 * its close, forgets what it held.
 */
#ifndef PGNEAR_PROXY_TXN_PREP_H
#define PGNEAR_PROXY_TXN_PREP_H

#include <stdbool.h>
#include <stdint.h>

struct session;
struct server_conn;
struct server_reader;

/* Rows and COPY data at least this long are passed on as they come, not read whole. */
#define TXN_PREP_STREAM_MIN (64 * 1024)

/* Starts following s's statements (s->prep); false when out of memory. */
bool txn_prep_start(struct session *s);
/*
 * A quiet client (txn_hooks.rest) that names no statement gives its empty
 * table back; its reader makes it anew (txn_prep_start) before its next
 * message.  Meanwhile s->prep is NULL though its statements are followed.
 */
void txn_prep_rest(struct session *s);

/*
 * One whole client message (body: blen bytes, at the head of the client's
 * input) through the rewriter to the session's server connection.  1:
 * taken, *moved when it went out of the client's input as it was (a
 * Query: no copy); 0: not yet, present it again after the server's next
 * message; <0: the session ended.
 */
int txn_prep_client(struct session *s, uint8_t type, const uint8_t *body, uint32_t blen,
                    bool *moved);

/*
 * A whole client message that goes to the server as it came, followed
 * (prep_client_take_whole): true, and the caller moves it on; false:
 * nothing changed, txn_prep_client's way (also before the connection's
 * statements are followed: txn_prep_client starts that).
 */
bool txn_prep_client_take(struct session *s, uint8_t type, const uint8_t *body, uint32_t blen);

/*
 * A Query (body: blen bytes) that is only "DEALLOCATE [PREPARE] name" of
 * one of the session's statements, answered by pgnear (the server holds
 * the statement under another name, shared with others); in a batch
 * still open (Parse, Describe, Flush) a Sync of pgnear's own ends the
 * batch first, as the Query would have.  1: answered; 0: not such a
 * Query, it goes on; <0: the session ended.
 */
int txn_prep_deallocate(struct session *s, const uint8_t *body, uint32_t blen);

/* Whether sc owes the session nothing more of its statements: it may go back to the pool. */
bool txn_prep_idle(const struct server_conn *sc);

/* The server side of a session whose prepared statements are followed. */
extern const struct server_reader txn_prep_reader;

/* The session closes: its names go (what its server owes it is dropped as it comes). */
void txn_prep_end(struct session *s);

#endif
