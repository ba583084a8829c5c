/*
 * lag.h — how far a standby is behind its primary, from what the health
 * checks read: the primary's WAL position at each check (kept with the
 * time pgnear read it) and the standby's replayed position.
 *
 * Bytes: the primary's newest position less the standby's replayed one.
 * Time: how long ago pgnear first saw the primary past the position the
 * standby has replayed — pgnear's own clock, so neither the servers'
 * clocks nor a quiet primary (whose last commit is old though nothing is
 * missing) can make a standby look late.  It is a lower bound, good to
 * one check interval.  With no primary to compare with, the standby's
 * own received position stands in for the primary's, and its last replayed
 * commit's age for the time.
 */
#ifndef PGNEAR_ROUTING_LAG_H
#define PGNEAR_ROUTING_LAG_H

#include <stdbool.h>
#include <stdint.h>

#include "routing/registry.h"

/* Checks in a row back under the limits that a standby passed over for lag needs to read again. */
#define HEALTH_LAG_RISE 3

struct lag_reading {
    int64_t bytes; /* -1: not known */
    int64_t ms;    /* -1: not known */
};

/* What a standby's check read; positions 0 when the server said NULL. */
struct standby_position {
    uint64_t replay, receive;
    double replay_age_s; /* now() - pg_last_xact_replay_timestamp(); < 0 when NULL */
};

/* A primary's check read its position lsn at now_ms: kept for lag_measure. */
void lag_note_primary(struct host_health *primary, uint64_t lsn, int64_t now_ms);

/*
 * The standby's lag at now_ms; primary NULL when no primary is known.  The
 * caller passes when the standby's check began, not when its answer came:
 * what the standby read it had replayed by then at most, so the lag stays
 * a lower bound however long the check took (a busy machine).
 */
struct lag_reading lag_measure(const struct host_health *primary,
                               const struct standby_position *pos, int64_t now_ms);

/* The limits; 0 turns one off. */
struct lag_limits {
    int64_t max_ms;
    int64_t max_bytes;
};

/*
 * Records r on the standby and decides whether it is passed over: at
 * once when over a limit, back only after HEALTH_LAG_RISE readings in a
 * row under both.  An unknown reading changes nothing.  Returns +1 when
 * this reading passed it over, -1 when it takes reads again, else 0.
 */
int lag_judge(struct host_health *hh, struct lag_reading r, const struct lag_limits *limits);

#endif
