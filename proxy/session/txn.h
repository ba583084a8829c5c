/*
 * txn.h — transaction pooling: a session's server connection goes back to
 * the pool at the end of each transaction, and the session gets one again
 * when its client sends the next message.
 *
 * Under pool_mode = transaction (and auth = scram) a session that is not
 * pinned gives its connection back at each safe point: the server's
 * ReadyForQuery said idle, every request is answered, no batch is open,
 * no COPY, nothing half sent either way, nothing the admin asked of it at
 * that point.  The connection goes idle into the pool as it is, without a
 * reset: it serves only clients whose startup parameters are exactly the
 * ones it logged in with (pool.c), so what it holds of a session is what
 * each of them would have.  The session is then detached: its client is
 * read, but nothing goes anywhere.
 *
 * The client's next message (a Terminate alone just ends the session)
 * stops the reading and starts a fetcher (fetch.h): an internal session,
 * like a move's mover, that logs in through the ordinary phases for the
 * session's user, database and need — a kept connection,
 * or a new login with the session's SCRAM keys, or a wait while the pool
 * is full (pool_size, max_db_connections, query_wait_timeout, first come
 * first served) — and hands its connection over.  The cancel key then
 * names it, and the message goes on.  A fetcher that fails ends the
 * session with the fetcher's own error (53300 after query_wait_timeout,
 * 08001 when no server can be had), as a direct connection that lost its
 * server would.
 *
 * Pinned.  What lives in the server's session past a transaction cannot
 * move with the client, so a session that makes any keeps its server
 * connection from then on, as under pool_mode = session, and SHOW CLIENTS
 * says why (txn_pin_scan in protocol/txn_pin.h reads each Query's and
 * Parse's text for it): a temporary object, LISTEN, SQL PREPARE, a WITH
 * HOLD cursor, a session advisory lock, LOAD, a custom setting, SET ROLE;
 * a named prepared statement of the extended protocol (until they are
 * followed across connections); a text too long to read whole
 * (TXN_SCAN_MAX).  A session-level SET or set_config() of an ordinary
 * setting follows the client instead (txn_settings.h: txn_pin_scan_carried
 * reads the text), where server_reset_query resets the connections given
 * back; else it pins too, as does a reported setting (ParameterStatus)
 * left other than at login.  A session pgnear cannot log in for
 * (auth = passthrough, movable = off) is pinned from the start.
 *
 * While a session is detached the gate holds and drains it at once (a
 * detached session is at a safe point), and a cancel request finds
 * nothing to cancel, unless a request of its client waits for a
 * connection: that one is answered 57014 without running (txn_cancel.h).
 */
#ifndef PGNEAR_PROXY_TXN_H
#define PGNEAR_PROXY_TXN_H

#include <stdbool.h>
#include <stdint.h>

struct session;

/* Texts longer than this are not read whole: such a message pins its session. */
#define TXN_SCAN_MAX (1024 * 1024)

/*
 * As the session starts relaying (its login state let go): whether
 * transaction pooling applies to it (s->txn, the hooks through which the
 * relay, the fence reader, the gate and the session's close reach this
 * file), and whether it is pinned from the start.
 */
void txn_session_start(struct session *s);

/* The session keeps its server connection from now on (why: static text). */
void txn_pin(struct session *s, const char *why);

#endif
