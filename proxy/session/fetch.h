/*
 * fetch.h — a server connection fetched for a session by an internal
 * session of pgnear's own, a *fetcher*: no client, it logs in as the
 * session would (its user, database, startup parameters and SCRAM keys)
 * through the ordinary phases — a kept connection of the pool, a new
 * login, a wait while the pool is full — for the need and the region it
 * is given, which need not be the session's own.  Its owner hears how
 * the login ended through its ops, and takes the connection
 * (server_conn_hand_over) or lets the fetcher go (fetch_close).
 *
 * Owners: a move's mover (move.h: the target's connection), transaction
 * pooling (txn.h: the next transaction's connection); min_pool_size's
 * warm-up sets the same ops on its own internal sessions (pool_warm.c).
 * The login reaches them only through fetch_ready and fetch_lost
 * (login/flow.c).
 */
#ifndef PGNEAR_PROXY_FETCH_H
#define PGNEAR_PROXY_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/session/txn_next.h"
#include "routing/need.h"

struct session;

/* What a fetcher tells its owner (arg: the owner's, given to fetch_start). */
struct fetch_ops {
    const char *what; /* names the fetcher in the log: "move" makes "move of client 7" */
    /*
     * m's server login ended: its connection (m->server_conn) is the
     * owner's to take.  m stays the owner's until fetch_close: should it
     * fail meanwhile, lost is called.
     */
    void (*ready)(struct session *m, void *arg);
    /* m closes before its owner let it go; why: m's closing reason (NULL: none given). */
    void (*lost)(struct session *m, void *arg, const char *why);
    /*
     * The session whose client waits for m's connection with nothing in
     * flight to it, told why when m waits long in the pool's queue
     * (query_wait_notify, pool_wait.c); NULL: none (a move's).
     */
    struct session *(*waiting_client)(void *arg);
};

/* What the fetcher's server must be, and where it is looked for. */
struct fetch_want {
    struct need_spec need;
    /*
     * The plan: the session's route now from where its caller was
     * (session_replan), with region (NULL or "": none) named first as a
     * region hint would; only: no region but that one; avoid (NULL or
     * ""): a region left out.
     */
    const char *region;
    bool only;
    const char *avoid;
    /* Its client has waited for a connection since (Unix time, microseconds; 0: not). */
    int64_t waited_since_us;
};

/*
 * Starts a fetcher for s: *fetcher is set to it before its login begins
 * (which may end at once, a kept connection handed over).  NULL, or why
 * it could not start (nothing was called then).  An empty plan is the
 * login's to fail, as a client's would.
 */
const char *fetch_start(struct session *s, const struct fetch_want *want,
                        const struct fetch_ops *ops, void *arg, struct session **fetcher);

struct locality;
struct region;
/*
 * The plan of fetch_start, into plan and cosines (ROUTE_MAX_REGIONS
 * each): its count; loc, the locality it was planned by.
 */
size_t fetch_plan(const struct session *s, const struct fetch_want *want, struct locality *loc,
                  struct region **plan, double *cosines);
/* Whether want lets the fetcher go to region r (loc: as fetch_plan set it). */
bool fetch_wants(const struct fetch_want *want, const struct locality *loc, const struct region *r);

struct region_host;
/*
 * The host of r whose kept connection the fast ways take (fetch_take):
 * the first of need_host_order, the host a fetcher's login would dial
 * first (server_connect.c), when it fits need well and is up; else NULL.
 */
struct region_host *fetch_first_host(struct region *r, const struct need_spec *need);

struct server_conn;
/*
 * An idle connection of the pool taken for s at once, where a fetcher's
 * login would end in a handover with nothing to say, at *spot: with
 * spot->host NULL, want's first region held by no gate (PAUSE, a
 * migration's pause, a cutover) and its first host for want's need; else
 * the spot a transaction waited at in the pool's queue (txn_fetch.c), still
 * held by no gate, its host up and fitting want's need well.  There, an
 * idle connection that logged in with exactly s's startup parameters and
 * is due for no server_check_query, whoever waits on the worker (a fetcher
 * would take it before them too), under the worker's config.  The
 * connection is attached to s (s->region its region), counted as reused
 * (a direct take, or a waited one); NULL when any of it is not so, *spot
 * then where only the idle connection was missing (to wait at), or
 * {NULL, NULL}: the spot serves it not (a fetcher's way).
 */
struct server_conn *fetch_take(struct session *s, const struct fetch_want *want,
                               struct fetch_spot *spot);

/* The owner lets m go: closed with why, its ops not called any more. */
void fetch_close(struct session *m, const char *why);

/* The login's hooks (login/flow.c): m's server login ended (true: m is a fetcher, told). */
bool fetch_ready(struct session *m);
/* m closes during its login: a fetcher's owner hears it. */
void fetch_lost(struct session *m);

#endif
