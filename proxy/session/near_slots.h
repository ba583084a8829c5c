/*
 * near_slots.h — under pool_mode = session, a nearest session's own server
 * connections, parked between its transactions in its slots instead of
 * the pool (near_slots.c), and which of them has its newest state.
 */
#ifndef PGNEAR_PROXY_SESSION_NEAR_SLOTS_H
#define PGNEAR_PROXY_SESSION_NEAR_SLOTS_H

#include <stdbool.h>

struct need_spec;
struct server_conn;
struct session;

/* A parked connection goes back to the pool, reset, while the session may run on another. */
void near_slot_give_back(struct session *s, struct server_conn *sc);
/* All of them (the session ends, or it is pinned to the one it runs on). */
void near_slots_give_back(struct session *s);
/* The connection its transaction ended on is parked in its slot (the one there given back). */
void near_slot_park(struct session *s, struct server_conn *sc);
/* A parked connection that fits takes the session's waiting message on; false: none fits. */
bool near_slot_take(struct session *s, const struct need_spec *need);

/* ---- for near_sync.c: the state carried between them ---- */

/* The slot whose connection has the session's newest state; -1: none is left. */
int near_slot_newest(const struct session *s);
/* The connection parked in slot i, out of it (NULL: none). */
struct server_conn *near_slot_remove(struct session *s, int i);
/* sc parked in slot i again, as it was (near_slot_remove's). */
void near_slot_put(struct session *s, int i, struct server_conn *sc);
/* The attached connection has the session's newest state now. */
void near_state_carried(struct session *s);

#endif
