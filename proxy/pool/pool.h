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
 *
 * In parts, each using only those before it: a connection with no client
 * (pool_idle.h), given back (pool_give.h), found and taken (pool_take.h),
 * and the limits clients wait on (pool_wait.h); this file includes them
 * all, and holds the worker's pool itself: its sweep and its closes.
 */
#ifndef PGNEAR_PROXY_POOL_H
#define PGNEAR_PROXY_POOL_H

#include <stdbool.h>

#include "proxy/pool/pool_give.h"
#include "proxy/pool/pool_idle.h"
#include "proxy/pool/pool_take.h"
#include "proxy/pool/pool_wait.h"

struct gate_pids;
struct session;
struct worker;

/* Sets up and frees the worker's pool (its timers; every kept connection is closed). */
int pool_init(struct worker *w);
void pool_free(struct worker *w);

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

/*
 * s's client drops, renames or copies database (the flow's
 * database_unhold): every worker's kept connections to it, in any region,
 * close now (a worker call each, answered by nobody), those in use when
 * given back.
 */
void pool_unhold_database(struct session *s, const char *database);

/* The pool's life on a worker: its timers; kept connections closed at drain, stop and free. */
extern const struct worker_part pool_part;

#endif
