/*
 * fence.h — read-your-writes across sessions: after a transaction that
 * wrote, the client of a session with report_fence gets a ParameterStatus
 * named pgnear.fence, a WAL position of its server (with the timeline,
 * protocol/lsn.h) at or past the transaction's commit, just before the
 * ReadyForQuery that ends it.  A later session that passes it back as
 * pgnear.min_lsn is placed only on a node known to have replayed it
 * (routing/need.h).
 *
 * Writes are seen from the server's messages alone: a CommandComplete
 * whose tag starts with a writing command (INSERT, UPDATE, DELETE, MERGE,
 * and the DDL and utility commands that change data or schema), or a
 * CopyInResponse.  A write hidden in a function that a SELECT calls is
 * not seen.
 *
 * The position is asked of the server itself, on the session's own
 * connection, once the ReadyForQuery that ends the writing transaction has
 * come and nothing else of the client's is outstanding: that
 * ReadyForQuery is held, pgnear sends one query (the server's WAL insert
 * position, read after the commit returned, is past the commit's record),
 * and when its answer comes the fence and the held ReadyForQuery go to
 * the client.  The query goes in the extended protocol under a statement
 * name of pgnear's own, closed again: a simple Query would drop the
 * server's unnamed statement, which the client may Bind again next.  A client that has already sent
 * more gets the fence at the next ReadyForQuery that leaves nothing outstanding.  Transactions that
 * did not write cost nothing; the session's server-to-client bytes are
 * read message by message, as the login phases read them, rather than by
 * the relay's direct path.
 */
#ifndef PGNEAR_PROXY_FENCE_H
#define PGNEAR_PROXY_FENCE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

struct session;
struct server_reader;
struct server_conn;
struct endpoint;
struct msg_head;

/* The server side of a session with report_fence, and of transaction pooling's plain ones. */
extern const struct server_reader fence_reader;

/*
 * s->fence, made for a session that reports fences (report_fence) or
 * follows nearest, before its first transaction: 0, or -1 when out of
 * memory.
 */
int fence_begin(struct session *s);

/*
 * For a reader of its own (transaction pooling's prepared-statement
 * reader, txn_prep.c), which calls these with each whole server message
 * (len: the length word), after tx_track_server:
 *
 * fence_note notes a write, and says whether this ReadyForQuery is the one
 * that ends the writing transaction with nothing else outstanding: the
 * caller then settles what it follows of the message without passing it
 * on, and calls fence_ask, which drains it from the input, holds it, and
 * asks the server; <0: the session ended.
 *
 * While s->fence->asked, the server's messages are the answer: fence_answer
 * takes each whole one off the input (a ParameterStatus goes on to the
 * client), and at its end writes the fence and the held ReadyForQuery to
 * the client; <0: the session ended.
 */
bool fence_note(struct session *s, char type, const uint8_t *body, uint32_t len);
int fence_ask(struct session *s, uint32_t z_len);
int fence_answer(struct session *s, char type, const uint8_t *body, uint32_t len);

/*
 * The same question, asked after a transaction whose ReadyForQuery went
 * on to the client, nothing held: the client's next request, if it comes
 * meanwhile, follows it on the connection.  The answer (while
 * s->fence->after, fence_answer takes it off the input, none of it for the
 * client) sets s->fence->position_after; a server that could not say leaves it
 * 0.  <0: the session ended.  (The nearest need: where a session's writes
 * on a primary end, near.h.)
 */
int fence_ask_after(struct session *s);

/*
 * Under transaction pooling, whether a server message of type is an
 * ErrorResponse that the session did not ask for: nothing outstanding on
 * its connection, which it is not pinned to.  A backend's FATAL as it
 * ends (a shutdown's 57P01), perhaps read with the ReadyForQuery before
 * it: the server's readers leave it in the connection's input, and the
 * connection goes back (the pool reads it there and closes the
 * connection) or parks (nearest's slots drop it); the client, between
 * transactions, sees nothing of it, as of any connection that ended in
 * the pool.
 */
bool server_error_unasked(const struct session *s, uint8_t type);

/*
 * A server's ErrorResponse on its way to the client through these readers
 * (body: len bytes of it, at least its start): a FATAL or PANIC marks the
 * connection (fatal_sent), and the reader's pump ends the session once it
 * is out (server_error_ended), as the server's end of file would, instead
 * of waiting for that end: a client that sends its next request at once
 * (the error told it nothing of the end) must not have it taken by a
 * connection its server is closing.
 */
void server_error_passes(struct session *s, const uint8_t *body, size_t len);
/* The same for the ErrorResponse whose header h is at the front of src's input. */
void server_error_passes_head(struct session *s, struct endpoint *src, const struct msg_head *h);
/* After a pump of sc's messages: true when its FATAL went out and the session ended. */
bool server_error_ended(struct session *s, struct server_conn *sc);

#endif
