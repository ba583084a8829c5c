/*
 * pool_idle.h — a server connection with no client: parked (its events
 * come to the pool), reset with server_reset_query, idle on the worker's
 * idle_servers list, and closed when its server sends what an idle
 * connection should not be sent or hangs up.
 */
#ifndef PGNEAR_PROXY_POOL_IDLE_H
#define PGNEAR_PROXY_POOL_IDLE_H

#include <stdbool.h>
#include <stdint.h>

struct server_conn;
struct worker;

/* Closes a kept connection, saying why in the log. */
void pool_close(struct server_conn *sc, const char *why);

/* Makes sure the sweep (timeouts, min_pool_size) runs within a second. */
void pool_arm_sweep(struct worker *w);

/*
 * Parks a connection whose client left (or that never had one): its
 * events come to the pool from now on.
 */
void pool_park(struct server_conn *sc);

/* A parked connection goes on the idle list; waiting clients are told. */
void pool_now_idle(struct server_conn *sc);
/* The same, idle since now_us (worker_clock_us, read already by the caller). */
void pool_now_idle_at(struct server_conn *sc, int64_t now_us);

/*
 * Sends server_reset_query to a parked connection: it goes idle when the
 * server has answered (at once when there is none), closed if it fails.
 * One given back owing the answer to pgnear's question of its WAL
 * position (owes_fence) waits for that answer first.
 */
void pool_reset(struct server_conn *sc);

/*
 * Sends ROLLBACK to a parked connection whose client vanished inside a
 * transaction (sc->rollback_owed): the answers its client was owed and
 * the ROLLBACK's are read and dropped; then it is kept as it is
 * (txn_return) or reset (pool_reset), and closed if the last ReadyForQuery
 * does not say idle, a COPY begins, or server_rollback_timeout passes.
 */
void pool_roll_back(struct server_conn *sc);

/*
 * A new connection with no client (pool_warm.h) goes idle into the pool;
 * closed instead when it cannot be kept.  Returns whether it was kept.
 */
bool pool_keep_fresh(struct server_conn *sc);

#endif
