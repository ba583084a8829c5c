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
 * the client.  A client that has already sent more gets the fence at the
 * next ReadyForQuery that leaves nothing outstanding.  Transactions that
 * did not write cost nothing; the session's server-to-client bytes are
 * read message by message, as the login phases read them, rather than by
 * the relay's direct path.
 */
#ifndef PGNEAR_PROXY_FENCE_H
#define PGNEAR_PROXY_FENCE_H

struct session;

/* The server endpoint's reader of a relaying session with report_fence. */
void fence_server_read(struct session *s);

/* What the server sent before the relay started; <0: the session ended. */
int fence_pump(struct session *s);

#endif
