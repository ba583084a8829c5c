/*
 * route_rtt.c — measured round trips in the order of regions
 * (route_rtt.h).
 */
#include "routing/route_rtt.h"

#include <math.h>
#include <stddef.h>

#include "routing/region.h"
#include "routing/registry.h"

double route_region_rtt_ms(const struct region *r)
{
    double up = -1, any = -1;
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct region_host *h = &r->hosts[i];
        double ms = rtt_estimate_ms(&h->runtime->health.rtt);
        if (ms < 0)
            continue;
        if (any < 0 || ms < any)
            any = ms;
        if (host_is_up(h) && (up < 0 || ms < up))
            up = ms;
    }
    /* A region with no host up keeps what it measured last: health, not latency, passes it over. */
    return up >= 0 ? up : any;
}

/*
 * Whether the host that gives r its estimate (route_region_rtt_ms: the
 * quickest up, else the quickest) was marked slow by a run of outliers up.
 */
static bool route_region_slow(const struct region *r, int64_t now_ms)
{
    const struct region_host *quickest = NULL;
    double best = -1;
    bool best_up = false;
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct region_host *h = &r->hosts[i];
        double ms = rtt_estimate_ms(&h->runtime->health.rtt);
        bool up = host_is_up(h);
        if (ms < 0 || (best_up && !up))
            continue;
        if (quickest == NULL || (up && !best_up) || ms < best) {
            quickest = h;
            best = ms;
            best_up = up;
        }
    }
    return quickest != NULL && rtt_is_slow(&quickest->runtime->health.rtt, now_ms);
}

/* The cosine of the angle between origin and r, below -1 when either is unknown. */
static double route_dot(const double *origin, const struct region *r)
{
    if (origin == NULL || !r->has_location)
        return -2.0;
    return origin[0] * r->unit[0] + origin[1] * r->unit[1] + origin[2] * r->unit[2];
}

/*
 * hybrid's candidates: the rank->candidates regions nearest the caller
 * (a tie takes both) and any within rank->candidate_km.  Without a
 * position every region is one: measurement alone orders them.
 */
static void route_mark_candidates(const struct region_set *set, const double *origin,
                                  const struct route_rank *rank, struct route_score *out)
{
    for (size_t i = 0; i < set->count; i++) {
        if (origin == NULL || rank->by == ROUTE_BY_LATENCY) {
            out[i].candidate = true;
            continue;
        }
        if (out[i].km < 0) {
            out[i].candidate = false; /* no location: after the others, as by distance */
            continue;
        }
        unsigned nearer = 0;
        for (size_t j = 0; j < set->count; j++)
            if (out[j].km >= 0 && out[j].km < out[i].km)
                nearer++;
        out[i].candidate = nearer < rank->candidates || out[i].km <= rank->candidate_km;
    }
}

void route_scores(const struct region_set *set, const double *origin, const struct route_rank *rank,
                  struct route_score *out)
{
    for (size_t i = 0; i < set->count; i++) {
        const struct region *r = &set->items[i];
        double dot = route_dot(origin, r);
        out[i] = (struct route_score){.km = region_km(dot), .rtt_ms = -1, .score_ms = -1};
    }
    if (rank->by == ROUTE_BY_DISTANCE)
        return;
    route_mark_candidates(set, origin, rank, out);
    for (size_t i = 0; i < set->count; i++) {
        struct route_score *sc = &out[i];
        sc->rtt_ms = route_region_rtt_ms(&set->items[i]);
        if (!sc->candidate)
            continue;
        /* Cold: the caller's distance stands in for pgnear's round trip (rtt.h's prior). */
        double from_pgnear = sc->rtt_ms >= 0 ? sc->rtt_ms : rtt_prior_ms(sc->km);
        if (from_pgnear < 0)
            continue;
        sc->score_ms = from_pgnear;
        if (rank->by == ROUTE_BY_HYBRID && sc->km >= 0)
            sc->score_ms += rtt_prior_ms(sc->km);
    }
}

const struct region *route_home(const struct region_set *set, const double *origin)
{
    const struct region *home = NULL;
    double best = -2.0;
    for (size_t i = 0; i < set->count && origin != NULL; i++) {
        double dot = route_dot(origin, &set->items[i]);
        if (dot > best) {
            best = dot;
            home = &set->items[i];
        }
    }
    return home;
}

/*
 * The best scored candidate for callers at home, -1 when none is scored.
 * A region whose hosts are down may be it: route_plan passes it over for
 * its health (need.h's fit comes first), and its callers come back to it
 * as soon as it is up, with no hold-down; one the admin disabled is not.
 */
static int route_best(const struct region_set *set, const struct route_score *sc)
{
    int best = -1;
    for (size_t i = 0; i < set->count; i++) {
        if (!sc[i].candidate || sc[i].score_ms < 0 ||
            !registry_takes_sessions(set->items[i].runtime))
            continue;
        if (best < 0 || sc[i].score_ms < sc[best].score_ms)
            best = (int)i;
    }
    return best;
}

/* home's group: its preferred region, if a better one has won by the margins. */
static void route_prefer_group(const struct region_set *set, const struct region *home,
                               const struct route_rank *rank, int64_t now_ms,
                               route_prefer_log_fn log, void *arg)
{
    struct route_score sc[REGION_SUBSET_MAX];
    route_scores(set, home->unit, rank, sc);
    int best = route_best(set, sc);
    if (best < 0)
        return;
    struct registry_region *hr = home->runtime, *want = set->items[best].runtime;
    struct registry_region *now = __atomic_load_n(&hr->preferred, __ATOMIC_RELAXED);
    if (now == want)
        return;
    int cur = -1;
    for (size_t i = 0; i < set->count; i++)
        if (set->items[i].runtime == now)
            cur = (int)i;
    /* None yet, or one the configuration dropped or cannot score: the best, at once. */
    bool first = now == NULL || cur < 0 || sc[cur].score_ms < 0;
    int64_t since = __atomic_load_n(&hr->preferred_since_ms, __ATOMIC_RELAXED);
    /*
     * The hold-down stops flapping between two changes: the first choice
     * is none, and a region just marked slow keeps its callers through
     * no hold-down.
     */
    bool changed_before = __atomic_load_n(&hr->preference_changes, __ATOMIC_RELAXED) > 0;
    bool from_slow = !first && changed_before && route_region_slow(&set->items[cur], now_ms);
    bool held = changed_before && !from_slow;
    if (!first && !rtt_should_switch(&rank->damping, sc[cur].score_ms, sc[best].score_ms,
                                     held ? since : -1, now_ms))
        return;
    __atomic_store_n(&hr->preferred_since_ms, now_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&hr->preferred, want, __ATOMIC_RELEASE);
    if (first)
        return;
    __atomic_add_fetch(&hr->preference_changes, 1, __ATOMIC_RELAXED);
    if (log != NULL)
        log(arg, home, &set->items[cur], &set->items[best], sc[cur].score_ms, sc[best].score_ms,
            now_ms - since, from_slow);
}

void route_prefer_update(const struct region_set *set, const struct route_rank *rank,
                         int64_t now_ms, route_prefer_log_fn log, void *arg)
{
    if (rank->by == ROUTE_BY_DISTANCE || set->count > REGION_SUBSET_MAX)
        return;
    for (size_t i = 0; i < set->count; i++)
        if (set->items[i].has_location)
            route_prefer_group(set, &set->items[i], rank, now_ms, log, arg);
}
