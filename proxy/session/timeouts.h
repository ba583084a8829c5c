/*
 * timeouts.h — PgBouncer's timeouts for an established session:
 * query_timeout, transaction_timeout, idle_transaction_timeout and
 * client_idle_timeout (each 0, off, by default; [pgnear], [database] and
 * [user]).
 *
 * Where the session is comes from what the relay keeps already: its
 * server connection's tx_track (a request outstanding, a batch or COPY
 * open; the last ReadyForQuery's status), and under transaction pooling
 * whether a request waits for a connection (no server, a fetcher or a
 * full pool's queue, or nearest's held answer: txn_hooks' owes_request).
 * It is read after each event of the session (session_endpoint_event):
 * O(1), and nothing at all while every timeout is off (s->timeouts->on).
 * One timer, the session's own (unused once it relays), is armed for the
 * nearest deadline of the phase it is in, or left armed for an earlier
 * one, which finds nothing due and arms it again.
 *
 * What each does when its time is up:
 *   query_timeout: the request is canceled on its server by a
 *     CancelRequest (cancel_session_request), as the client's own would;
 *     the server's 57014 comes to the client as "canceling statement due
 *     to query_timeout".  A request still waiting for a connection is
 *     answered so without running (txn_cancel.h).  The session and its
 *     server connection go on.  It counts from the request's first
 *     message, a wait for a connection included.
 *   transaction_timeout: FATAL 25P04, as PostgreSQL 17's.  A statement
 *     outside a transaction block counts as one, as there.
 *   idle_transaction_timeout: FATAL 25P03, as PostgreSQL's
 *     idle_in_transaction_session_timeout.
 *   client_idle_timeout: FATAL 57P05, as PostgreSQL's idle_session_timeout.
 * A session that ends so closes its server connection: never handed on
 * inside a transaction.
 *
 * A reload: each session reads the values in force as its next
 * transaction starts; one between transactions at the reload at once.
 */
#ifndef PGNEAR_PROXY_TIMEOUTS_H
#define PGNEAR_PROXY_TIMEOUTS_H

#include <stdbool.h>

#include "proxy/session/timeouts_state.h"

struct pkt_report;
struct session;
struct worker;

/* The session begins to relay: its values read, followed if any is set. */
void timeouts_start(struct session *s);

/* After an event of a relaying session that follows them (s->timeouts->on): where it is now. */
void timeouts_note(struct session *s);

/* The session timer of a relaying session expired (the phase table's ACTIVE row). */
void timeouts_expired(struct session *s);

/* A new configuration on w: its relaying sessions take its values (see above). */
void timeouts_reconfigured(struct worker *w);

/* While query_timeout's cancel is answered here: that answer's error; NULL otherwise. */
const struct pkt_report *timeouts_cancel_report(const struct session *s);

#endif
