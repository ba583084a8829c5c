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
    uint64_t failed;        /* deliveries to it that failed (atomic) */
    int reachable;          /* by the last delivery: 1, 0, or -1 before any (atomic) */
    int64_t last_forward;   /* unix time of the last delivery tried; 0: none (atomic) */
    char last_error[160];   /* of the last failed delivery (under the table's lock) */
};

struct peer_stats {
    pthread_mutex_t lock; /* taken to claim an entry and for last_error */
    struct peer_stat items[PEERS_MAX];
};

void peer_stats_init(struct peer_stats *t);
void peer_stats_destroy(struct peer_stats *t);

/* A delivery to peer id ended: ok, or failed with why. */
void peer_stats_note_out(struct peer_stats *t, int id, bool ok, const char *why);

/* Peer id forwarded a cancel request here. */
void peer_stats_note_in(struct peer_stats *t, int id);

/* A copy of peer id's entry (id 0 and the rest zero, reachable -1, when it has none). */
void peer_stats_read(struct peer_stats *t, int id, struct peer_stat *out);

#endif
