/*
 * auth_throttle.h — failed logins per (client address, user name), and
 * how long the next attempt of that pair waits: nothing for the first
 * auth_failure_threshold failures in a row, then auth_failure_delay,
 * doubling with every further failure up to auth_failure_max_delay.
 * Guessing passwords costs the guesser time; other addresses and other
 * users are never slowed.  A success forgets the pair.
 *
 * One table for the whole process (in struct shared), under a mutex: a
 * guesser's connections are spread over the workers by SO_REUSEPORT, and
 * a table per worker would give them `workers` times the attempts and
 * leave stale delays on workers that did not see the success.  The lock
 * is held for one bucket of THROTTLE_WAYS records, once or twice per login.
 *
 * Attempts of a throttled pair are spaced, not just delayed: each one
 * takes the next free start time, so that opening many connections at
 * once gains nothing, and one whose start would lie further ahead than
 * the longest delay is refused outright instead of waiting.
 *
 * Memory is bounded: THROTTLE_BUCKETS x THROTTLE_WAYS records of a fixed
 * size, allocated at the first failure.  A pair is found by a keyed hash
 * (a secret drawn at start), so that nobody can aim a flood of addresses
 * at one bucket; when a bucket is full, a record of a pair not yet
 * throttled goes first, the oldest first.  Records are forgotten
 * THROTTLE_FORGET_MS after their last failure.
 */
#ifndef PGNEAR_PROXY_AUTH_THROTTLE_H
#define PGNEAR_PROXY_AUTH_THROTTLE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define THROTTLE_WAYS      8
#define THROTTLE_BUCKETS   2048 /* 16,384 records of 40 bytes: 640 KiB once allocated */
#define THROTTLE_FORGET_MS (15 * 60 * 1000)
/* auth_failure_threshold's range (0: no throttling) and the delays' upper bound. */
#define THROTTLE_THRESHOLD_MAX 1000
#define THROTTLE_DELAY_MAX_MS  (60 * 60 * 1000)

struct throttle_params {
    int threshold;    /* failures in a row before attempts wait; 0: off */
    int delay_ms;     /* the first wait */
    int max_delay_ms; /* the longest */
    int horizon_ms;   /* an attempt that would wait longer than this is refused */
};

/* A pair, as the table knows it: a keyed hash of the address and the user name. */
struct throttle_key {
    uint8_t id[16];
};

struct throttle_record {
    struct throttle_key key;
    uint32_t failures;    /* in a row; 0: the slot is free */
    int64_t last_failure; /* ms, monotonic */
    int64_t not_before;   /* ms, monotonic: the pair's next attempt starts no earlier */
};

struct auth_throttle {
    pthread_mutex_t lock;
    struct throttle_record *records; /* NULL until the first failure */
    uint8_t secret[32];
};

enum throttle_verdict {
    THROTTLE_GO,     /* start now */
    THROTTLE_WAIT,   /* start after wait_ms */
    THROTTLE_REFUSE, /* the pair's attempts are booked further ahead than horizon_ms */
};

/* What admit found; for the log and the metrics. */
struct throttle_state {
    uint32_t failures; /* the pair's failures in a row */
    int64_t wait_ms;   /* THROTTLE_WAIT: how long; THROTTLE_REFUSE: how long it would have been */
};

/* 0, or -1 when no random secret could be drawn. */
int auth_throttle_init(struct auth_throttle *t);
void auth_throttle_free(struct auth_throttle *t);

/*
 * The pair's key.  An IPv4-mapped IPv6 address counts as the IPv4 one; an
 * IPv6 address counts by its /64, which one machine usually has whole;
 * every caller on a Unix socket is one source.  User names are compared
 * in their first 63 bytes, as PostgreSQL compares role names.
 */
void auth_throttle_key(const struct auth_throttle *t, const struct sockaddr *addr, const char *user,
                       struct throttle_key *k);

/* The wait after that many failures in a row: 0 below the threshold. */
int64_t auth_throttle_delay(const struct throttle_params *p, uint32_t failures);

/* Whether, and when, an attempt of the pair may start at now_ms; books its start. */
enum throttle_verdict auth_throttle_admit(struct auth_throttle *t, const struct throttle_params *p,
                                          const struct throttle_key *k, int64_t now_ms,
                                          struct throttle_state *out);

/*
 * The pair's attempt failed (a wrong password or an unknown user).
 * Returns its failures in a row, 0 when nothing was recorded (throttling
 * off, or no memory for the table); *evicted says whether another pair's
 * record made room for it.
 */
uint32_t auth_throttle_failed(struct auth_throttle *t, const struct throttle_params *p,
                              const struct throttle_key *k, int64_t now_ms, bool *evicted);

/* The pair logged in: it is forgotten. */
void auth_throttle_succeeded(struct auth_throttle *t, const struct throttle_key *k);

#endif
