/*
 * pool_wait.h — pool_size, max_db_connections and max_user_connections:
 * the server connections counted against them across workers, and the
 * clients that wait when one is reached, woken when a connection is given
 * back or closes.  Logins (PHASE_WAIT_SERVER) and transactions
 * (txn_fetch.h) wait in one queue per worker (server_waiters,
 * wait_turn.h), served in arrival order, with one timer: one that waits
 * past query_wait_timeout gets 53300, and past query_wait_notify its
 * client, past its login, one NOTICE saying why.
 */
#ifndef PGNEAR_PROXY_POOL_WAIT_H
#define PGNEAR_PROXY_POOL_WAIT_H

#include <stdbool.h>

struct region;
struct region_host;
struct server_conn;
struct session;
struct worker;

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

/*
 * A connection logged in (it left login_servers): its login is timed for
 * how many logins to its host may overlap (health_note_login_time), and
 * transactions waiting while their pool grew as fast as that allows
 * (pool_txn_wait) look again.
 */
void pool_logged_in(struct server_conn *sc);

/* PHASE_WAIT_SERVER's enter, and its end however it ends. */
void pool_wait_enter(struct session *s);
void pool_wait_stop(struct session *s);

/*
 * Under transaction pooling, whether s's next transaction, which found no
 * idle connection to h of its region (s->txn_next.spot.region) to take,
 * should wait for one of this worker's to be given back rather than have
 * a fetcher log in: the pool is full by its own pool_size, on this worker
 * alone (its slice, or the only worker), or grows there as fast as h
 * allows (as many of its connections logging in as logins to h may
 * overlap, health_logins_at_once: one at a time to a near host, so that a
 * crowd at a cold pool does not start pool_size server processes at once);
 * and no idle connection of the pool is there (one due for its check, or
 * with other startup parameters: the fetcher checks it or closes it for
 * the slot) but one that clients queued before s will have (pool_queued).
 * join: s begins to
 * wait, at the end of the queue and counted as waiting (the log's reports,
 * pool_wake) until pool_txn_wait_end; else s waits already, and asks
 * whether it still should.
 */
bool pool_txn_wait(struct session *s, struct region_host *h, bool join);
void pool_txn_wait_end(struct session *s);

/*
 * Whether clients of s's pool in region r wait in this worker's queue:
 * an idle connection of the pool is theirs, in their turn (pool_wake
 * hands it over on the loop's next pass), and a transaction that comes
 * now waits behind them rather than take it at once.  First come, first
 * served: else a crowd's newcomers take each connection given back
 * before the queue is served, and the clients in it wait many times the
 * median.
 */
bool pool_queued(const struct session *s, const struct region *r);

/*
 * A login waiting for a host that fits its need (PHASE_WAIT_ROLE, a
 * failover), at each look again: past query_wait_notify, the client that
 * waits on it (a transaction's, behind its fetcher) is told why, once.
 */
void pool_wait_role_tick(struct session *s);

/* The worker's wake-up of its waiting clients (pool_init, pool_free). */
int pool_wait_init(struct worker *w);
void pool_wait_free(struct worker *w);

#endif
