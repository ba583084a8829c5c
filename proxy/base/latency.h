/*
 * latency.h — latency histograms: transaction and query duration, the wait
 * for a server connection and the login, per region (the server's), kept
 * by each worker for its own sessions.
 *
 * Each histogram is log-linear, as HdrHistogram's: values in microseconds,
 * exact below 32 µs, then every power of two cut into 32 equal buckets (a
 * bucket is at most 1/32 of its values wide: about 3 %), up to 2^32 µs
 * (71 minutes), and one bucket for anything longer.  Prometheus's coarse
 * buckets (le: 0.1 ms to 10 s in steps of 1, 2.5, 5) are summed from them
 * as they are shown: a fine bucket counts under the first bound its least
 * value does not exceed, so a value less than 3 % over a bound may count
 * under it.  Percentiles come from the fine buckets, interpolated linearly
 * inside the bucket the rank falls in.
 *
 * Threads.  A worker writes its own histograms with plain stores and is
 * their only reader too: a snapshot copies them on the worker's own thread
 * (admin/snapshot.c).  Counting a value is a clz, a shift and three
 * additions: no atomics, no allocation (but for a region's first value on
 * a worker).
 */
#ifndef PGNEAR_PROXY_BASE_LATENCY_H
#define PGNEAR_PROXY_BASE_LATENCY_H

#include <stddef.h>
#include <stdint.h>

#include "protocol/clock.h"
#include "protocol/tx_track.h"

struct registry_region;

#define LATENCY_SUB_BITS 5
#define LATENCY_SUB      (1u << LATENCY_SUB_BITS) /* buckets per power of two */
#define LATENCY_MAX_EXP  32                       /* the fine buckets end at 2^32 µs */
/* Fine buckets below 2^LATENCY_MAX_EXP µs; one more counts longer values. */
#define LATENCY_FINE ((LATENCY_MAX_EXP - LATENCY_SUB_BITS + 1) * LATENCY_SUB)
/* Prometheus's bounds (latency_coarse_le_us), then +Inf. */
#define LATENCY_COARSE 17

/* What is timed. */
enum latency_kind {
    LATENCY_TRANSACTION, /* first request of a transaction to the ReadyForQuery 'I' that ends it */
    LATENCY_QUERY,       /* a request to its ReadyForQuery */
    LATENCY_WAIT,        /* asking for a server connection to having one */
    LATENCY_LOGIN,       /* accept to the login's ReadyForQuery */
    LATENCY_KINDS
};

struct latency_hist {
    uint64_t count;
    uint64_t sum_us;
    uint64_t fine[LATENCY_FINE + 1];
};

/* One region's histograms on one worker. */
struct latency_set {
    const struct registry_region *region; /* its name never changes nor goes away */
    struct latency_hist hist[LATENCY_KINDS];
};

/* A worker's histograms, a set per region that had a value (struct worker's latency). */
struct latency_book {
    struct latency_set **sets;
    size_t nsets, cap;
};

/*
 * A server connection's progress as the timing last saw it (its tx_track's
 * counts), and when its request and its transaction began (monotonic µs;
 * 0: none under way).
 */
struct latency_marks {
    struct latency_set *set; /* its region's, on its worker; NULL until first needed */
    uint64_t answered, answered_idle;
    int64_t query_since_us, txn_since_us;
};

/* A client session's login: when it was accepted, when it asked for a server connection. */
struct latency_times {
    int64_t wait_since_us; /* 0: not asking */
};

/* Prometheus's bounds in microseconds (le="0.0001" ... le="10"); latency_kind_name. */
extern const uint32_t latency_coarse_le_us[LATENCY_COARSE - 1];
const char *latency_kind_name(enum latency_kind kind);

/* The fine bucket of a value: O(1), a clz. */
static inline unsigned latency_fine_index(uint64_t us)
{
    if (us < LATENCY_SUB)
        return (unsigned)us;
    unsigned e = 63u - (unsigned)__builtin_clzll(us);
    if (e >= LATENCY_MAX_EXP)
        return LATENCY_FINE;
    unsigned shift = e - LATENCY_SUB_BITS;
    return (e - LATENCY_SUB_BITS + 1) * LATENCY_SUB + (unsigned)(us >> shift) - LATENCY_SUB;
}

/* The values a fine bucket counts: [*lo, *hi) µs; the last one's hi is its lo. */
void latency_fine_bounds(unsigned index, uint64_t *lo, uint64_t *hi);

/* Prometheus's buckets, each fine bucket in its own (not cumulative: /metrics adds them up). */
void latency_coarse_counts(const struct latency_hist *h, uint64_t coarse[LATENCY_COARSE]);

/* Counts one value (a negative one, from a clock that stepped back, as 0). */
static inline void latency_add(struct latency_hist *h, int64_t us)
{
    uint64_t v = us > 0 ? (uint64_t)us : 0;
    h->count++;
    h->sum_us += v;
    h->fine[latency_fine_index(v)]++;
}

/* Adds every count of one histogram to another's. */
void latency_merge(struct latency_hist *to, const struct latency_hist *from);

/*
 * The q-quantile (0 < q <= 1) in microseconds, interpolated inside its fine
 * bucket; -1 when nothing was counted.
 */
double latency_quantile_us(const struct latency_hist *h, double q);

/* The set of a region in a worker's book, made on first use; NULL when out of memory. */
struct latency_set *latency_set_of(struct latency_book *b, const struct registry_region *rr);
void latency_book_free(struct latency_book *b);

/*
 * What a server connection's tx_track counted since the marks last saw it,
 * looked at after the relay or a reader has scanned messages either way:
 * requests answered (a query each) and transactions ended, timed into the
 * region's set (latency_follow_moved); a request sent with nothing
 * outstanding, which starts a query, and a transaction when none is open
 * (latency_follow_began).  Neither runs when nothing moved.
 */
void latency_follow_moved(struct latency_marks *m, const struct tx_track *t, struct latency_book *b,
                          const struct registry_region *rr);
/* ... and nothing answered, but a request began (or pgnear's own one ended). */
void latency_follow_began(struct latency_marks *m, const struct tx_track *t);

static inline void latency_follow(struct latency_marks *m, const struct tx_track *t,
                                  struct latency_book *b, const struct registry_region *rr)
{
    if (t->answered != m->answered)
        latency_follow_moved(m, t, b, rr);
    else if ((t->outstanding > 0) != (m->query_since_us != 0))
        latency_follow_began(m, t);
}

/* A session asks for a server connection (a login, a transaction's): the wait begins. */
static inline void latency_wait_begin(struct latency_times *lt)
{
    if (lt->wait_since_us == 0)
        lt->wait_since_us = monotonic_us();
}

/* ... and has one, of region rr: the wait is counted there. */
void latency_wait_end(struct latency_times *lt, struct latency_book *b,
                      const struct registry_region *rr);

/*
 * The login ended with the client's ReadyForQuery: its duration (since
 * accepted_us, monotonic_us as the client was accepted; 0: not counted)
 * and its wait are counted.
 */
void latency_login_end(struct latency_times *lt, int64_t accepted_us, struct latency_book *b,
                       const struct registry_region *rr);

#endif
