/*
 * txn_slots.h — under pool_mode = session, a nearest session's own server
 * connections, parked between its transactions in near.h's slots instead
 * of the pool (txn_slots.c).
 */
#ifndef PGNEAR_PROXY_SESSION_TXN_SLOTS_H
#define PGNEAR_PROXY_SESSION_TXN_SLOTS_H

#include <stdbool.h>

struct need_spec;
struct server_conn;
struct session;

/* A parked connection goes back to the pool, reset, while the session may run on another. */
void txn_slot_give_back(struct session *s, struct server_conn *sc);
/* All of them (the session ends, or it is pinned to the one it runs on). */
void txn_slots_give_back(struct session *s);
/* The connection its transaction ended on is parked in its slot (the one there given back). */
void txn_slot_park(struct session *s, struct server_conn *sc);
/* A parked connection that fits takes the session's waiting message on; false: none fits. */
bool txn_slot_take(struct session *s, const struct need_spec *need);

#endif
