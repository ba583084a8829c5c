/*
 * near_hold.h — a nearest transaction's answer held on a standby
 * (near.h): where the server's messages go, and what becomes of it when
 * the server ends the connection (near.c, which moves the leg; the hold's
 * own work is near_hold.c's, near_int.h).
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
 * The server ended the connection (session_server_gone, txn_hooks'
 * server_gone): an answer held on a standby goes to the client as it
 * came, the server's FATAL in it, then the session ends.  False: the
 * session ended.
 */
bool near_on_server_gone(struct session *s);

#endif
