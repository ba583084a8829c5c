/*
 * pool.h — server connections kept between clients (pool_mode = session).
 *
 * A connection whose client leaves at a safe point, idle outside any
 * transaction, is reset with server_reset_query on the worker's
 * used_servers list and then waits on idle_servers for the next client
 * of the same host, database and user, which takes it instead of
 * dialing (server_connect.c) and gets its startup parameters applied and
 * the connection's ParameterStatus values told (server_login.c).  Only
 * under auth = scram: pgnear verified that next client itself.
 *
 * Pools are per worker: a connection lives on the event loop that made
 * it, and no lock is taken to find one.  Everything else that can close a
 * kept connection (its server hanging up, server_idle_timeout,
 * server_lifetime, RECONNECT, a shutdown) is here too.
 */
#ifndef PGNEAR_PROXY_POOL_H
#define PGNEAR_PROXY_POOL_H

#include <stdbool.h>

struct gate_pids;
struct region;
struct region_host;
struct server_conn;
struct session;
struct worker;

/*
 * Whether a session's server connection may be kept for other clients
 * once it leaves: pool_mode = session, auth = scram, and a startup packet
 * whose every parameter a later client's SET can change (no replication,
 * no protocol extensions, names that fit).
 */
bool pool_session_may_share(const struct session *s);

/*
 * s's client is leaving (session_close), or its transaction ended (txn.h):
 * its server connection is kept when it can serve another client, else
 * closed.  One with a cancel request on its way to it waits on
 * used_servers, neither reset nor idle, until pool_cancel_done.
 */
void pool_release(struct server_conn *sc);

/*
 * The cancel requests on their way to sc ended (cancel_send.h): a
 * connection pool_release held back for them is kept now (or closed, when
 * one may still arrive).
 */
void pool_cancel_done(struct server_conn *sc);

/*
 * An idle connection to host h of region r for s's database and user
 * that can take s's startup parameters, linked to s; NULL when none.
 * ready: only one that needs nothing said before it serves s (transaction
 * pooling's direct take, fetch.h): logged in with exactly s's startup
 * parameters, and not due for server_check_query.
 */
struct server_conn *pool_take(struct session *s, struct region *r, struct region_host *h,
                              bool ready);

/*
 * Counts the connection s is about to open to h against pool_size and
 * max_db_connections (pool_mode = session).  False when a limit is
 * reached: s then waits (PHASE_WAIT_SERVER) for one to free up, up to
 * query_wait_timeout — or failed, out of memory.
 */
bool pool_reserve(struct session *s, struct region_host *h);

/* A reserved slot s will not use after all (it took a kept connection). */
void pool_unreserve(struct session *s);

/* A counted connection closed (server_conn_close): waiting clients are told. */
void pool_uncount(struct server_conn *sc);

/* PHASE_WAIT_SERVER's enter and timeout (53300), and its end however it ends. */
void pool_wait_enter(struct session *s);
void pool_wait_timeout(struct session *s);
void pool_wait_stop(struct session *s);

/* Sets up and frees the worker's pool (its timer; every kept connection is closed). */
int pool_init(struct worker *w);
void pool_free(struct worker *w);

/*
 * A new connection with no client (pool_warm.h) goes idle into the pool;
 * closed instead when it cannot be kept.  Returns whether it was kept.
 */
bool pool_keep_fresh(struct server_conn *sc);

/* Makes sure the sweep (timeouts, min_pool_size) runs within a second. */
void pool_arm_sweep(struct worker *w);

/* Closes every kept connection (a shutdown starting). */
void pool_close_idle(struct worker *w);

/*
 * RECONNECT: closes the kept connections of region (NULL: every region)
 * and marks the ones in use to be closed when their client leaves.
 */
void pool_reconnect(struct worker *w, const char *region, int *closed, int *marked);

/*
 * A cutover takes database away from region: w's kept connections to it
 * there close now (their server processes added to pids, which the
 * cutover does not end itself; NULL: none), those in use when given back.
 */
void pool_retire_database(struct worker *w, const char *region, const char *database,
                          struct gate_pids *pids);

/* The pool's life on a worker: its timers; kept connections closed at drain, stop and free. */
extern const struct worker_part pool_part;

#endif
