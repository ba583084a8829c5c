/*
 * near_hold.h — a nearest transaction's answer held on a standby
 * (near.h): where the server's messages go, and the kept messages put
 * back to run again on a primary (near_hold.c).
 */
#ifndef PGNEAR_PROXY_SESSION_NEAR_HOLD_H
#define PGNEAR_PROXY_SESSION_NEAR_HOLD_H

#include <stdbool.h>
#include <stdint.h>

struct evbuffer;
struct session;

/* The most of a server's answer held, and the longest client message kept. */
#define NEAR_HOLD_MAX (64 * 1024)

/* Where the server's next message (of this type) goes: the held answer or the client's output. */
struct evbuffer *near_sink(struct session *s, uint8_t type);

/*
 * NEAR_FORWARD, its connection let go: the kept messages back in front of
 * client.in, to run again on a primary (the held answer is dropped as the
 * primary's connection attaches; a cancel before that answers after it,
 * txn_cancel.h); false: out of memory.
 */
bool near_put_back(struct session *s);

/*
 * The server ended the connection (session_server_gone, txn_hooks'
 * server_gone): an answer held on a standby goes to the client as it
 * came, the server's FATAL in it, then the session ends.  False: the
 * session ended.
 */
bool near_on_server_gone(struct session *s);

#endif
