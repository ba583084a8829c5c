/*
 * rtt.h — round-trip times that order the regions: an estimate per host
 * from its health checks, and the damping that keeps the preferred region
 * of a group of callers from flapping.
 *
 * The map is a good prior and a poor truth: a region 800 km away over a
 * badly peered link can be slower than one 2,000 km away, and a region
 * whose hosts are overloaded answers slowly whatever the distance.
 * pgnear relays every byte, so what differs between two regions for one
 * caller is the round trip from pgnear to each, which its health checks
 * on kept connections measure every health_check_interval.
 *
 * The estimate.  An exponentially weighted moving average of the checks'
 * round trips (RTT_ALPHA: about 85 % of the weight on the last nine),
 * seeded by the first sample; until RTT_MIN_SAMPLES have come it is not
 * used, and the distance prior stands in (RTT_PRIOR_*: about 16 ms per
 * 1,000 km of great circle, plus 2).  A sample more than RTT_OUTLIER_FACTOR
 * times the average (or less than the average over it), and further
 * than RTT_OUTLIER_SLACK_MS from it, is an outlier: it does not move the
 * average (one slow check is noise).  RTT_OUTLIER_RUN of them in a row on
 * the same side are the new level: the average restarts from their
 * median (one check of the run that a loaded machine or a change half way
 * through a round trip made odd does not set it), and a host whose level
 * went up is marked slow for RTT_SLOW_HOLD_MS.
 * Checks that logged in are not samples (a login is several round trips).
 *
 * The score.  route_by = distance orders regions by great-circle
 * distance alone, as pgnear did before it measured; latency by the
 * estimate alone (right when pgnear runs near its callers: its round
 * trip to a region is theirs); hybrid (the default) keeps geography first
 * — only the route_candidates regions nearest the caller, and any within
 * route_candidate_km, are ordered by measurement, the others follow by
 * distance — and scores those by the estimate plus the caller's distance
 * prior, so that a central pgnear far from everyone does not send every
 * caller to the region nearest itself.
 *
 * The damping.  Callers are grouped by the region nearest them (their
 * home).  The health checker's thread keeps, per group, the region it
 * prefers: a challenger replaces it only when its score is better by
 * both route_deadband (relative) and route_deadband_min (absolute), and
 * not before route_hold_down after the last change: the first choice
 * (at start) is no change, and a preferred region whose host was marked
 * slow waits for no hold-down.  Sessions of the
 * group try the preferred region first among the candidates; the
 * others follow by score.  Existing sessions never move for latency.
 */
#ifndef PGNEAR_ROUTING_RTT_H
#define PGNEAR_ROUTING_RTT_H

#include <stdbool.h>
#include <stdint.h>

#define RTT_ALPHA            0.2
#define RTT_MIN_SAMPLES      5
#define RTT_OUTLIER_FACTOR   2.0
#define RTT_OUTLIER_SLACK_MS 5.0
#define RTT_OUTLIER_RUN      3
#define RTT_SLOW_HOLD_MS     10000
#define RTT_PRIOR_MS_PER_KM  0.016
#define RTT_PRIOR_BASE_MS    2.0
#define RTT_FLOOR_WINDOW     16

enum route_by {
    ROUTE_BY_HYBRID,
    ROUTE_BY_DISTANCE,
    ROUTE_BY_LATENCY,
};

/* "hybrid", "distance", "latency". */
const char *route_by_name(enum route_by by);
/* false: not one of them. */
bool route_by_parse(const char *text, enum route_by *out);

/*
 * One host's estimate.  The health checker's thread alone writes it
 * (rtt_sample); the published fields are read by any thread with relaxed
 * atomics.
 */
struct rtt_estimate {
    /* the checker's own */
    double avg_ms;
    double run_ms[RTT_OUTLIER_RUN]; /* the outliers of the run going on */
    int run_side;                   /* +1 above, -1 below, 0 none */
    unsigned run_len;
    uint32_t floor_now_us;  /* the least of the window going on ... */
    uint32_t floor_last_us; /* ... and of the one before (0: none yet) */
    unsigned floor_count;   /* samples in the window going on */
    /* published (atomic) */
    uint32_t avg_us;
    uint32_t last_us;
    uint32_t samples;
    uint32_t floor_us;     /* the least network time lately (rtt_floor_ms; 0 none) */
    int64_t slow_until_ms; /* monotonic_ms; 0: never marked */
};

/* One check's round trip, ms, at now_ms (monotonic). */
void rtt_sample(struct rtt_estimate *e, double ms, int64_t now_ms);

/* The published average in ms, or -1 while fewer than RTT_MIN_SAMPLES came. */
double rtt_estimate_ms(const struct rtt_estimate *e);

/*
 * The floor, fed apart from the estimate: one check's network time, ms —
 * its round trip less the server's own time for the query, which the
 * check reports.  A routing estimate wants the whole answer (a loaded
 * region answers slowly); what a login's time is weighed against wants
 * only the wire (health_note_login_time).
 */
void rtt_floor_sample(struct rtt_estimate *e, double ms);

/*
 * The least of the last RTT_FLOOR_WINDOW network times or more (up to
 * twice that), in ms; -1 while none came.  The least, because what else
 * a check's answer waits for (pgnear's checker thread, a core for it)
 * only adds: one quiet check among them is the wire's.
 */
double rtt_floor_ms(const struct rtt_estimate *e);

/* The last sample in ms (0: none); the samples so far; whether marked slow at now_ms. */
double rtt_last_ms(const struct rtt_estimate *e);
uint32_t rtt_samples(const struct rtt_estimate *e);
bool rtt_is_slow(const struct rtt_estimate *e, int64_t now_ms);

/* The round trip a distance of km suggests (the prior). */
double rtt_prior_ms(double km);

/* What damps a group's preference (route_deadband, route_deadband_min, route_hold_down). */
struct rtt_damping {
    double deadband; /* a fraction: 0.2 for 20 % */
    double deadband_min_ms;
    int64_t hold_down_ms;
};

/* How regions are ordered (route_by and the settings of hybrid's candidates and the damping). */
struct route_rank {
    enum route_by by;
    unsigned candidates; /* hybrid: the nearest this many are ordered by measurement ... */
    double candidate_km; /* ... and any within this distance of the caller */
    struct rtt_damping damping;
};

/*
 * Whether a challenger scoring challenger_ms replaces the preferred region
 * scoring current_ms, whose preference began at since_ms: better by both
 * margins, and the hold-down over.  since_ms < 0: no hold-down (the
 * preference was the group's first choice, not a change, or its region
 * was marked slow).
 */
bool rtt_should_switch(const struct rtt_damping *d, double current_ms, double challenger_ms,
                       int64_t since_ms, int64_t now_ms);

#endif
