/*
 * rtt.c — a host's round-trip estimate and the damping of a group's
 * preferred region (rtt.h).
 */
#include "routing/rtt.h"

#include <string.h>
#include <strings.h>

static const char *const route_by_names[] = {
    [ROUTE_BY_HYBRID] = "hybrid",
    [ROUTE_BY_DISTANCE] = "distance",
    [ROUTE_BY_LATENCY] = "latency",
};

const char *route_by_name(enum route_by by)
{
    return (unsigned)by < sizeof(route_by_names) / sizeof(route_by_names[0]) ? route_by_names[by]
                                                                             : "?";
}

bool route_by_parse(const char *text, enum route_by *out)
{
    for (size_t i = 0; i < sizeof(route_by_names) / sizeof(route_by_names[0]); i++)
        if (strcasecmp(text, route_by_names[i]) == 0) {
            *out = (enum route_by)i;
            return true;
        }
    return false;
}

/* Milliseconds as published microseconds (saturating: an hour is far past any use). */
static uint32_t rtt_us(double ms)
{
    if (ms <= 0)
        return 0;
    return ms >= 3.6e6 ? 3600000000u : (uint32_t)(ms * 1000.0 + 0.5);
}

/* Which side of the average a sample falls on as an outlier: +1, -1, or 0 (not one). */
static int rtt_outlier_side(double avg, double ms)
{
    if (ms > avg * RTT_OUTLIER_FACTOR && ms - avg > RTT_OUTLIER_SLACK_MS)
        return 1;
    if (ms * RTT_OUTLIER_FACTOR < avg && avg - ms > RTT_OUTLIER_SLACK_MS)
        return -1;
    return 0;
}

/* The median of n samples (n <= RTT_OUTLIER_RUN), which it sorts. */
static double rtt_median(double *ms, unsigned n)
{
    for (unsigned i = 1; i < n; i++)
        for (unsigned j = i; j > 0 && ms[j - 1] > ms[j]; j--) {
            double t = ms[j];
            ms[j] = ms[j - 1];
            ms[j - 1] = t;
        }
    return n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
}

/* Folds a sample into the average; an outlier waits for its run. */
static void rtt_fold(struct rtt_estimate *e, double ms, int64_t now_ms)
{
    int side = rtt_outlier_side(e->avg_ms, ms);
    if (side == 0) {
        e->run_len = 0;
        e->run_side = 0;
        e->avg_ms += RTT_ALPHA * (ms - e->avg_ms);
        return;
    }
    if (side != e->run_side) {
        e->run_side = side;
        e->run_len = 0;
    }
    e->run_ms[e->run_len++] = ms;
    if (e->run_len < RTT_OUTLIER_RUN)
        return;
    /* A level, not noise: the average starts again from it. */
    e->avg_ms = rtt_median(e->run_ms, e->run_len);
    if (side > 0)
        __atomic_store_n(&e->slow_until_ms, now_ms + RTT_SLOW_HOLD_MS, __ATOMIC_RELAXED);
    e->run_len = 0;
    e->run_side = 0;
}

/* The least of the last RTT_FLOOR_WINDOW to twice that samples: two windows, the last one full. */
void rtt_floor_sample(struct rtt_estimate *e, double ms)
{
    if (!(ms >= 0))
        return;
    uint32_t us = rtt_us(ms);
    if (us == 0)
        us = 1; /* 0 is "none yet" */
    if (e->floor_count == 0 || us < e->floor_now_us)
        e->floor_now_us = us;
    if (++e->floor_count == RTT_FLOOR_WINDOW) {
        e->floor_last_us = e->floor_now_us;
        e->floor_count = 0;
    }
    uint32_t least = e->floor_now_us;
    if (e->floor_last_us != 0 && e->floor_last_us < least)
        least = e->floor_last_us;
    __atomic_store_n(&e->floor_us, least, __ATOMIC_RELAXED);
}

void rtt_sample(struct rtt_estimate *e, double ms, int64_t now_ms)
{
    if (!(ms >= 0))
        return;
    uint32_t n = __atomic_load_n(&e->samples, __ATOMIC_RELAXED);
    if (n == 0)
        e->avg_ms = ms; /* the first sample seeds it */
    else
        rtt_fold(e, ms, now_ms);
    __atomic_store_n(&e->avg_us, rtt_us(e->avg_ms), __ATOMIC_RELAXED);
    __atomic_store_n(&e->last_us, rtt_us(ms), __ATOMIC_RELAXED);
    if (n < UINT32_MAX)
        __atomic_store_n(&e->samples, n + 1, __ATOMIC_RELAXED);
}

double rtt_estimate_ms(const struct rtt_estimate *e)
{
    if (__atomic_load_n(&e->samples, __ATOMIC_RELAXED) < RTT_MIN_SAMPLES)
        return -1;
    return __atomic_load_n(&e->avg_us, __ATOMIC_RELAXED) / 1000.0;
}

double rtt_floor_ms(const struct rtt_estimate *e)
{
    uint32_t us = __atomic_load_n(&e->floor_us, __ATOMIC_RELAXED);
    return us == 0 ? -1 : us / 1000.0;
}

double rtt_last_ms(const struct rtt_estimate *e)
{
    return __atomic_load_n(&e->last_us, __ATOMIC_RELAXED) / 1000.0;
}

uint32_t rtt_samples(const struct rtt_estimate *e)
{
    return __atomic_load_n(&e->samples, __ATOMIC_RELAXED);
}

bool rtt_is_slow(const struct rtt_estimate *e, int64_t now_ms)
{
    int64_t until = __atomic_load_n(&e->slow_until_ms, __ATOMIC_RELAXED);
    return until != 0 && now_ms < until;
}

double rtt_prior_ms(double km)
{
    return km < 0 ? -1 : RTT_PRIOR_BASE_MS + RTT_PRIOR_MS_PER_KM * km;
}

bool rtt_should_switch(const struct rtt_damping *d, double current_ms, double challenger_ms,
                       int64_t since_ms, int64_t now_ms)
{
    if (since_ms >= 0 && now_ms - since_ms < d->hold_down_ms)
        return false;
    double gain = current_ms - challenger_ms;
    return gain >= d->deadband_min_ms && gain >= d->deadband * current_ms;
}
