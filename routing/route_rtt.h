/*
 * route_rtt.h — measured round trips in the order of regions (rtt.h): a
 * region's estimate, a caller's candidates and their scores, and each
 * group of callers' preferred region, which the health checker's thread
 * keeps.
 */
#ifndef PGNEAR_ROUTING_ROUTE_RTT_H
#define PGNEAR_ROUTING_ROUTE_RTT_H

#include <stdbool.h>
#include <stdint.h>

#include "routing/rtt.h"

struct region;
struct region_set;

/*
 * The least estimate among r's hosts that are up (with none up, among
 * all); -1 when none has enough samples.
 */
double route_region_rtt_ms(const struct region *r);

/* What one region scores for one caller. */
struct route_score {
    double km;       /* from the caller; -1 unknown */
    double rtt_ms;   /* measured from pgnear; -1 not yet (cold) */
    double score_ms; /* what orders it, lowest first; -1: ordered by distance instead */
    bool candidate;  /* hybrid: among the caller's candidates (all of them under latency) */
};

/*
 * Scores each region of set (out: set->count entries, in its order) for a
 * caller at origin (a unit vector; NULL: not known).  route_by = distance
 * scores none.
 */
void route_scores(const struct region_set *set, const double *origin, const struct route_rank *rank,
                  struct route_score *out);

/* The region nearest origin by distance, among those with a location: the caller's group. */
const struct region *route_home(const struct region_set *set, const double *origin);

/*
 * A group's preferred region changed: home's callers now try to first,
 * scoring to_ms; from had been preferred for held_ms, and was left without
 * waiting for the hold-down when from_slow (just judged slow).
 */
typedef void (*route_prefer_log_fn)(void *arg, const struct region *home, const struct region *from,
                                    const struct region *to, double from_ms, double to_ms,
                                    int64_t held_ms, bool from_slow);

/*
 * Each group's preferred region (registry_region's preferred), damped as
 * rtt.h says: the health checker's thread, once a round; log hears of
 * each change.
 */
void route_prefer_update(const struct region_set *set, const struct route_rank *rank,
                         int64_t now_ms, route_prefer_log_fn log, void *arg);

#endif
