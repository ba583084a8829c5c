/*
 * peer_stats.h — what this instance knows of each peer of the fleet from
 * the cancel requests it forwarded to them and received from them (SHOW
 * PEERS, /metrics).  One table for the process, by peer_id: counters are
 * atomics, the last error is under the lock.  Entries outlive reloads, so
 * a peer's figures stay as the list around it changes.
 */
#ifndef PGNEAR_PROXY_PEER_STATS_H
#define PGNEAR_PROXY_PEER_STATS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* At most so many peers in a fleet (entries of peers), and in the table. */
#define PEERS_MAX 64

struct peer_stat {
    int id;                 /* 0: a free entry */
    uint64_t forwarded_out; /* cancel requests delivered to it (atomic) */
    uint64_t forwarded_in;  /* cancel requests it forwarded here (atomic) */
    uint64_t failed;      /* requests for it that did not reach it: failed, or not tried (atomic) */
    int reachable;        /* by the last delivery: 1, 0, or -1 before any (atomic) */
    int64_t last_forward; /* unix time of the last delivery tried; 0: none (atomic) */
    int64_t retry_at_ms;  /* after a failed delivery: none tried before then (atomic) */
    int inflight;         /* deliveries under way, all workers (atomic) */
    char last_error[160]; /* of the last failed delivery (under the table's lock) */
};

struct peer_stats {
    pthread_mutex_t lock; /* taken to claim an entry and for last_error */
    struct peer_stat items[PEERS_MAX];
};

void peer_stats_init(struct peer_stats *t);
void peer_stats_destroy(struct peer_stats *t);

/* How long after a failed delivery to a peer none is tried (they fail at once meanwhile). */
#define PEER_RETRY_MS 1000

/*
 * A delivery to peer id may start at now_ms (a monotonic clock): not
 * while it failed within PEER_RETRY_MS (*failing set, and counted as
 * failed), nor while max deliveries to it are under way.  When true, it counts as under way until
 * peer_stats_note_out.
 */
bool peer_stats_begin_out(struct peer_stats *t, int id, int max, int64_t now_ms, bool *failing);

/* A delivery to peer id ended at now_ms: ok, or failed with why. */
void peer_stats_note_out(struct peer_stats *t, int id, bool ok, const char *why, int64_t now_ms);

/* Peer id forwarded a cancel request here. */
void peer_stats_note_in(struct peer_stats *t, int id);

/* A copy of peer id's entry (id 0 and the rest zero, reachable -1, when it has none). */
void peer_stats_read(struct peer_stats *t, int id, struct peer_stat *out);

#endif
