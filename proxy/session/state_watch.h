/*
 * state_watch.h — whether pgnear knows, without asking the server, that a
 * session under session pooling still has the state of its login.
 *
 * A move (move.h) reads a session's state back from its server.  When the
 * server has ended already (a fast shutdown of a primary for a switchover:
 * 57P01 to every idle backend), there is nothing left to read, and the
 * session may move only if pgnear knows its state is what the login made
 * it, which the mover's login makes again (move.h: move_session_lost).
 * So the relay shows each run of bytes the client sends to
 * state_watch_client until one may leave something in the server's
 * session (protocol/state_leave.h says which); from then on the session's
 * state is unknown (s->state_unknown says why, for good: a move without
 * its server sets it again to its login's) and it ends with its server as
 * before.  What it cannot see is txn_pin_scan's blind spot, the same as
 * under transaction pooling: a function, a DO block or a trigger that sets
 * a setting for the session or makes a temporary table.
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
