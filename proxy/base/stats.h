/*
 * stats.h — a worker's counters, readable from any thread.
 *
 * Each counter has one writer, the worker that owns it, which adds with a
 * relaxed load and store (no locked instruction: nobody else writes).
 * Any thread may read a counter with a relaxed load, at any moment: the
 * admin console and the metrics endpoint sum every worker's counters
 * without stopping a loop.  A sum is not a snapshot of one instant, and
 * need not be: each counter only grows.
 */
#ifndef PGNEAR_PROXY_STATS_H
#define PGNEAR_PROXY_STATS_H

#include <stddef.h>
#include <stdint.h>

/*
 * How long moves held their client (move.h), in buckets up to these many
 * milliseconds each, the last one for anything longer: a histogram.
 */
#define STAT_MOVE_HOLD_BUCKETS 9
extern const unsigned stat_move_hold_le_ms[STAT_MOVE_HOLD_BUCKETS - 1];

/* SQLSTATE classes of login errors counted apart (the last one counts any other). */
#define STAT_SQLSTATE_CLASSES 8

/* What became of a CancelRequest received (pgnear_cancel_requests_total's result label). */
enum cancel_result {
    CANCEL_LOCAL,        /* its session is here: sent on to its server (or console) */
    CANCEL_FORWARDED,    /* its session is on a peer: delivered there */
    CANCEL_NO_SESSION,   /* a key of this instance's that names no session (now) */
    CANCEL_BAD_KEY,      /* a key no instance made: unknown format, peer or MAC */
    CANCEL_MISROUTED,    /* forwarded once already, and not ours: never forwarded again */
    CANCEL_RATE_LIMITED, /* its client network sent too many that cancel nothing */
    CANCEL_PEER_FAILED,  /* its session is on a peer that could not be reached */
    CANCEL_BUSY,         /* cancel_max_inflight forwards to peers were under way */
    CANCEL_RESULTS,
};

struct worker_stats {
    uint64_t sessions_total;
    uint64_t sessions_refused;
    uint64_t login_failures;
    uint64_t server_connect_failures;
    uint64_t cancels_forwarded;
    uint64_t cancels_ignored;
    uint64_t cancel_results[CANCEL_RESULTS]; /* enum cancel_result */
    uint64_t bytes_client_to_server;
    uint64_t bytes_server_to_client;
    uint64_t routed_by_source[5];                          /* enum locality_source */
    uint64_t login_errors_by_class[STAT_SQLSTATE_CLASSES]; /* stat_sqlstate_class() */
    uint64_t failovers; /* sessions that moved to another region before starting */
    /* WebSocket ingress (ws_ingress.c). */
    uint64_t websocket_upgrades; /* connections that became WebSockets */
    uint64_t websocket_refused;  /* HTTP requests answered with an error, or never whole */
    uint64_t routed_by_header;   /* sessions placed by a load balancer's locality header */
    /*
     * Requests the servers answered (ReadyForQuery) and transactions ended,
     * of server connections already closed: the relay keeps the figures of
     * open ones in their tx_track, and snapshot.c adds those as it sums.
     */
    uint64_t queries;
    uint64_t transactions;
    /* The auth throttle (login_throttle.c). */
    uint64_t logins_delayed;          /* login attempts held before their authentication */
    uint64_t login_delay_ms;          /* the total they were held */
    uint64_t logins_throttle_refused; /* refused: their pair's attempts were booked too far ahead */
    uint64_t auth_throttle_evictions; /* pairs' records dropped to make room for others */
    /* Server-connection pooling (pool.c, server_handover.c). */
    uint64_t server_reuses;         /* logins served by a kept connection */
    uint64_t logins_without_server; /* ... answered without one (login_greet.h) */
    uint64_t servers_kept;          /* connections kept as their client left */
    uint64_t servers_not_kept;      /* connections closed as their client left, though poolable */
    /* Of clients gone inside a transaction: rolled back and kept (pool_idle.c). */
    uint64_t servers_rolled_back;
    /* Transaction pooling (txn.c). */
    uint64_t txn_returns;      /* server connections given back at the end of a transaction */
    uint64_t txn_direct_takes; /* idle connections a transaction took without a fetcher */
    uint64_t txn_waited_takes; /* ... given back while it waited for one, without a fetcher */
    uint64_t txn_pins;         /* sessions that came to keep their server connection */
    /* target_session_attrs = nearest (near.c). */
    uint64_t nearest_near;           /* transactions held on a standby and answered there */
    uint64_t nearest_forwarded;      /* transactions a standby refused, run again on a primary */
    uint64_t nearest_forward_failed; /* ... whose answer there was an error too */
    uint64_t nearest_state_syncs;    /* session states carried to its other connection */
    /* Moves of live sessions (move.h). */
    uint64_t moves_done;
    uint64_t moves_failed;
    uint64_t move_hold_us;                              /* the holds of moves done, summed */
    uint64_t move_hold_buckets[STAT_MOVE_HOLD_BUCKETS]; /* each counted in its own bucket only */
};

/* Counts a move done that held its client hold_us microseconds. */
void stat_move_hold(struct worker_stats *st, int64_t hold_us);

/* The slot of login_errors_by_class for a SQLSTATE. */
int stat_sqlstate_class(const char *sqlstate);

/* Adds n to a counter of the calling worker's own. */
static inline void stat_add(uint64_t *counter, uint64_t n)
{
    __atomic_store_n(counter, __atomic_load_n(counter, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline void stat_inc(uint64_t *counter)
{
    stat_add(counter, 1);
}

/* Reads a counter of any worker's. */
static inline uint64_t stat_read(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* A counter's name, meaning and place, for SHOW STATS and /metrics alike. */
struct stat_field {
    const char *name;   /* SHOW STATS's */
    const char *metric; /* Prometheus's: pgnear_<metric>_total; NULL: a histogram's part */
    const char *label;  /* the metric's label, as name="value"; NULL: none */
    const char *help;
    size_t offset; /* into struct worker_stats */
};

/* Every counter of struct worker_stats, in the order SHOW STATS lists them. */
const struct stat_field *stat_fields(size_t *n);

static inline uint64_t stat_field_value(const struct worker_stats *st, const struct stat_field *f)
{
    return *(const uint64_t *)((const char *)st + f->offset);
}

/* Adds every counter of one (some worker's, read as it runs) to sum (the caller's own). */
void stats_accumulate(struct worker_stats *sum, const struct worker_stats *one);

#endif
