/*
 * state_watch.h — whether pgnear knows, without asking the server, that a
 * session under session pooling still has the state of its login.
 *
 * A move (move.h) reads a session's state back from its server.  When the
 * server has ended already (a fast shutdown of a primary for a switchover:
 * 57P01 to every idle backend), there is nothing left to read, and the
 * session may move only if pgnear knows its state is what the login made
 * it, which the mover's login makes again (move_lost.c).  So the relay
 * shows each run of bytes the client sends to state_watch_client until
 * one of them may leave something in the server's session; from then on
 * the session's state is unknown (s->state_unknown says why, for good)
 * and it ends with its server as before.  What leaves state:
 *
 *   - a Query, or an unnamed Parse's text, that txn_pin_scan says pins a
 *     session under transaction pooling (a session-level SET,
 *     set_config(), a temporary object, LISTEN, LOAD, a SQL PREPARE, a
 *     WITH HOLD cursor, a session advisory lock); RESET, DISCARD and
 *     DEALLOCATE only take a session back towards its login's state;
 *   - a named Parse (a prepared statement of the extended protocol);
 *   - a FunctionCall message;
 *   - a Query or Parse not whole in the bytes shown (not read: it may).
 *
 * What it cannot see is txn_pin_scan's blind spot, the same as under
 * transaction pooling: a function, a DO block or a trigger that sets a
 * setting for the session or makes a temporary table.
 *
 * The walk reads message headers and the texts of Query and Parse
 * messages only while the state is known: a few instructions a byte, no
 * allocation, no copy; nothing is read past len.
 */
#ifndef PGNEAR_PROXY_STATE_WATCH_H
#define PGNEAR_PROXY_STATE_WATCH_H

#include <stddef.h>
#include <stdint.h>

struct session;

/*
 * The client's bytes p (len) on their way to the server: the first skip
 * bytes end a message begun before; whole headers follow, the last
 * message's body possibly cut at len.  Sets s->state_unknown when one may
 * leave state.
 */
void state_watch_client(struct session *s, const uint8_t *p, size_t len, size_t skip);

/* The client sent bytes the watch could not read (out of memory): the state is unknown. */
void state_watch_unread(struct session *s);

#endif
