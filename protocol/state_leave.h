/*
 * state_leave.h — which messages a client sends may leave state in its
 * server's session that outlives their transaction, read from a run of
 * the client's bytes as a relay passes them on (proxy/session/state_watch.h
 * keeps the answer per session).
 *
 * A message leaves state (state_leave_scan names the first that may):
 *
 *   - a Query, or the text of an unnamed Parse, that txn_pin_scan says
 *     pins a session under transaction pooling (a session-level SET,
 *     set_config(), a temporary object, LISTEN, LOAD, a SQL PREPARE, a
 *     WITH HOLD cursor, a session advisory lock): its reason;
 *   - a Parse with a name: "a named prepared statement";
 *   - a FunctionCall: "a FunctionCall message";
 *   - a Query or Parse whose body is not all in the bytes given (cut at
 *     their end): it is not read, and may.
 *
 * Everything else (Bind, Describe, Execute, Sync, Flush, Close, COPY's
 * messages, Terminate) leaves nothing a transaction does not end: a
 * protocol portal ends with its transaction.  The bytes are read as the
 * relay has them: the first skip bytes end a message begun before, then
 * whole headers, the last message's body possibly cut at len.  Nothing is
 * read past len; a length field below 4 stops the scan (the relay's
 * framing refuses it); one pass, no allocation.
 */
#ifndef PGNEAR_PROTOCOL_STATE_LEAVE_H
#define PGNEAR_PROTOCOL_STATE_LEAVE_H

#include <stddef.h>
#include <stdint.h>

/* The first reason the bytes p (len; skip as above) may leave state (static text), or NULL. */
const char *state_leave_scan(const uint8_t *p, size_t len, size_t skip);

#endif
