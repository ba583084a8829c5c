/*
 * test_rtt.c
 *    Unit tests for routing/rtt.c and routing/route_rtt.c (cmocka, TAP
 *    output): the estimate of a host's round trip from sample series (the
 *    first sample seeds it, the minimum count, outliers left out, a run of
 *    them a new level and a slow mark), the damping of a group's preferred
 *    region (both margins, the hold-down), and recorded series through the
 *    groups and route_plan: a near region made 80 ms slow 20 s after the
 *    start loses its callers within a few checks (no hold-down after the
 *    first choice, nor for a host marked slow) and wins them back after
 *    the hold-down; a gradual slowdown soon after the start moves them
 *    before a minute is up, the change back waiting for the hold-down; ±30 % jitter on two
 *    close regions switches at most once in 10 minutes of checks; a
 *    caller far from a pgnear that measures another region fastest still
 *    lands near itself under hybrid; the first sessions, before any
 *    measurement, go by distance.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing/region.h"
#include "routing/registry.h"
#include "routing/route.h"
#include "routing/route_rtt.h"
#include "routing/rtt.h"

#define CHECK_MS 2000 /* health_check_interval's default: one sample each */

static void feed(struct rtt_estimate *e, const double *ms, size_t n, int64_t *now)
{
    for (size_t i = 0; i < n; i++) {
        rtt_sample(e, ms[i], *now);
        *now += CHECK_MS;
    }
}

static void test_estimate_seeds_and_waits(void **state)
{
    (void)state;
    struct rtt_estimate e = {0};
    int64_t now = 1000;
    assert_true(rtt_estimate_ms(&e) < 0);
    feed(&e, (const double[]){10, 10, 10, 10}, 4, &now);
    assert_true(rtt_estimate_ms(&e) < 0); /* four samples: the prior still stands */
    feed(&e, (const double[]){15}, 1, &now);
    /* 10 seeded, then 10 + 0.2 * (15 - 10) = 11 */
    assert_int_equal(rtt_samples(&e), 5);
    assert_true(rtt_estimate_ms(&e) > 10.99 && rtt_estimate_ms(&e) < 11.01);
    assert_true(rtt_last_ms(&e) > 14.99 && rtt_last_ms(&e) < 15.01);
}

static void test_estimate_outliers(void **state)
{
    (void)state;
    struct rtt_estimate e = {0};
    int64_t now = 1000;
    feed(&e, (const double[]){20, 20, 20, 20, 20}, 5, &now);
    /* One check of 200 ms, then normal again: the average does not move, nothing is slow. */
    feed(&e, (const double[]){200, 20}, 2, &now);
    assert_true(rtt_estimate_ms(&e) > 19.99 && rtt_estimate_ms(&e) < 20.01);
    assert_false(rtt_is_slow(&e, now));
    /* Two in a row are still noise; the third is the new level: average 100, slow for a while. */
    feed(&e, (const double[]){100, 100}, 2, &now);
    assert_true(rtt_estimate_ms(&e) < 20.01);
    feed(&e, (const double[]){100}, 1, &now);
    assert_true(rtt_estimate_ms(&e) > 99.99 && rtt_estimate_ms(&e) < 100.01);
    assert_true(rtt_is_slow(&e, now));
    assert_false(rtt_is_slow(&e, now + RTT_SLOW_HOLD_MS));
    /* Back down: three far below are the level again, at once. */
    feed(&e, (const double[]){21, 20, 19}, 3, &now);
    assert_true(rtt_estimate_ms(&e) > 19.99 && rtt_estimate_ms(&e) < 20.01);
    /*
     * A run whose first check was half slowed (a change in the middle of its
     * round trip, a loaded machine) does not set the level: 100, not 86.7.
     */
    feed(&e, (const double[]){60, 100, 100}, 3, &now);
    assert_true(rtt_estimate_ms(&e) > 99.99 && rtt_estimate_ms(&e) < 100.01);
    feed(&e, (const double[]){21, 20, 19}, 3, &now);
    /* Local round trips: 0.2 ms then 0.5 ms is within the slack, not an outlier. */
    struct rtt_estimate l = {0};
    feed(&l, (const double[]){0.2, 0.2, 0.2, 0.2, 0.2, 0.5}, 6, &now);
    assert_true(rtt_estimate_ms(&l) > 0.25 && rtt_estimate_ms(&l) < 0.27);
}

static void test_damping(void **state)
{
    (void)state;
    struct rtt_damping d = {.deadband = 0.2, .deadband_min_ms = 5, .hold_down_ms = 60000};
    assert_true(rtt_should_switch(&d, 100, 79, 0, 60000));
    assert_false(rtt_should_switch(&d, 100, 81, 0, 60000));  /* 19 %: inside the deadband */
    assert_false(rtt_should_switch(&d, 100, 79, 0, 59999));  /* the hold-down */
    assert_false(rtt_should_switch(&d, 20, 15.5, 0, 60000)); /* 22 % but 4.5 ms */
    assert_true(rtt_should_switch(&d, 20, 14.9, 0, 60000));
    /* No hold-down (a first choice, a region marked slow): the margins alone. */
    assert_true(rtt_should_switch(&d, 100, 79, -1, 1));
    assert_false(rtt_should_switch(&d, 100, 81, -1, 1));
    assert_true(rtt_prior_ms(1000) > 17.99 && rtt_prior_ms(1000) < 18.01);
    assert_true(rtt_prior_ms(-1) < 0);
    enum route_by by;
    assert_true(route_by_parse("Latency", &by) && by == ROUTE_BY_LATENCY);
    assert_false(route_by_parse("fastest", &by));
    assert_string_equal(route_by_name(ROUTE_BY_HYBRID), "hybrid");
}

/* ---- groups and plans over regions built by hand ---- */

struct env {
    struct registry *registry;
    struct region_set set;
    struct routing_data rd;
};

/* Dublin's region, Frankfurt's 1,100 km away, London's 460 km, and N. Virginia's 5,400 km. */
static const struct {
    const char *name;
    double lat, lon;
} specs[] = {
    {"eu-west", 53.35, -6.26},
    {"eu-central", 50.11, 8.68},
    {"eu-west-2", 51.51, -0.13},
    {"us-east", 39.04, -77.49},
};
#define EUW  0
#define EUC  1
#define EUW2 2
#define USE  3
#define NREG (sizeof specs / sizeof specs[0])

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    if (e == NULL || (e->registry = registry_new()) == NULL)
        return -1;
    for (size_t i = 0; i < NREG; i++) {
        struct region *r = region_set_add(&e->set, specs[i].name);
        if (r == NULL)
            return -1;
        region_set_location(r, specs[i].lat, specs[i].lon);
    }
    for (size_t i = 0; i < e->set.count; i++) {
        struct region *r = &e->set.items[i];
        struct region_host *h = &r->hosts[r->nhosts++];
        memset(h, 0, sizeof(*h));
        char name[32];
        snprintf(name, sizeof name, "10.0.%zu.1", i);
        h->name = strdup(name);
        h->port = 5432;
        h->region = r;
    }
    if (!registry_bind(e->registry, &e->set))
        return -1;
    for (size_t i = 0; i < e->set.count; i++)
        e->set.items[i].hosts[0].runtime->health.up = true;
    e->rd = (struct routing_data){
        .regions = &e->set,
        .health_checked = true,
        .rank = {.by = ROUTE_BY_HYBRID,
                 .candidates = 3,
                 .candidate_km = 1500,
                 .damping = {.deadband = 0.2, .deadband_min_ms = 5, .hold_down_ms = 60000}}};
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    region_set_free(&e->set);
    registry_free(e->registry);
    free(e);
    return 0;
}

static struct rtt_estimate *rtt_of(struct env *e, int region)
{
    return &e->set.items[region].hosts[0].runtime->health.rtt;
}

/* The nth region (from 0) of a plan for a caller at lat, lon. */
static const char *nth_for(struct env *e, double lat, double lon, size_t nth)
{
    struct locality loc = {
        .source = LOCALITY_COORDINATES, .has_coords = true, .lat = lat, .lon = lon};
    struct region *plan[8];
    double cosines[8];
    size_t n =
        route_plan(&e->rd, &loc, &(struct need_spec){.role = NEED_ANY}, NULL, plan, cosines, 8);
    return n > nth ? plan[nth]->name : "(none)";
}

#define first_for(e, ...)  nth_for((e), __VA_ARGS__, 0)
#define second_for(e, ...) nth_for((e), __VA_ARGS__, 1)

/* One health check round: a sample per region (ms[i]), then the groups' preferences. */
static unsigned round_of(struct env *e, const double *ms, int64_t now)
{
    unsigned changes = 0;
    for (size_t i = 0; i < NREG; i++)
        rtt_sample(rtt_of(e, (int)i), ms[i], now);
    for (size_t i = 0; i < NREG; i++)
        changes -= (unsigned)__atomic_load_n(&e->set.items[i].runtime->preference_changes,
                                             __ATOMIC_RELAXED);
    route_prefer_update(&e->set, &e->rd.rank, now, NULL, NULL);
    for (size_t i = 0; i < NREG; i++)
        changes += (unsigned)__atomic_load_n(&e->set.items[i].runtime->preference_changes,
                                             __ATOMIC_RELAXED);
    return changes;
}

#define DUBLIN 53.33, -6.25

static void test_slow_region_loses_and_wins_back(void **state)
{
    struct env *e = *state;
    /* Before any measurement: by distance. */
    assert_string_equal(first_for(e, DUBLIN), "eu-west");
    int64_t now = 0;
    double calm[NREG] = {2, 12, 6, 70};
    for (int i = 0; i < 10; i++, now += CHECK_MS)
        round_of(e, calm, now);
    assert_string_equal(first_for(e, DUBLIN), "eu-west");
    /*
     * eu-west 80 ms slower 20 s after the start: within three checks the
     * level is known and its host marked slow; moved then, the first
     * choice starting no hold-down and a slow mark waiting for none.
     */
    double slow[NREG] = {82, 12, 6, 70};
    int64_t began = now;
    while (strcmp(first_for(e, DUBLIN), "eu-west") == 0 && now - began < 200000) {
        round_of(e, slow, now);
        now += CHECK_MS;
    }
    assert_string_equal(first_for(e, DUBLIN), "eu-west-2");
    assert_true(now - began <= 4 * CHECK_MS);
    /* Recovered: a change back, which waits for the hold-down (60 s) and a few checks. */
    began = now;
    while (strcmp(first_for(e, DUBLIN), "eu-west") != 0 && now - began < 300000) {
        round_of(e, calm, now);
        now += CHECK_MS;
    }
    assert_string_equal(first_for(e, DUBLIN), "eu-west");
    assert_true(now - began >= 60000 - CHECK_MS);
    assert_true(now - began <= 70000);
    /* A caller in N. Virginia kept its region throughout. */
    assert_string_equal(first_for(e, 38.9, -77.0), "us-east");
}

/*
 * A slowdown that marks nothing slow (eu-west's round trip rising by less
 * than twice its level a check) 10 s after the start: the group's first
 * choice started no hold-down, so it moves as soon as the margins say,
 * not a minute after the start.  A change after it still waits.
 */
static void test_first_choice_starts_no_hold_down(void **state)
{
    struct env *e = *state;
    double calm[NREG] = {2, 12, 6, 70};
    int64_t now = 0;
    for (int i = 0; i < 5; i++, now += CHECK_MS)
        round_of(e, calm, now);
    assert_string_equal(first_for(e, DUBLIN), "eu-west");
    int64_t began = now;
    while (strcmp(first_for(e, DUBLIN), "eu-west") == 0 && now - began < 200000) {
        double ms = rtt_of(e, EUW)->avg_ms * 1.9; /* below twice the average: no outlier */
        double rising[NREG] = {ms, 12, 6, 70};
        round_of(e, rising, now);
        assert_false(rtt_is_slow(rtt_of(e, EUW), now));
        now += CHECK_MS;
    }
    assert_string_equal(first_for(e, DUBLIN), "eu-west-2");
    assert_true(now < 60000);
    /* eu-west calm again: back only after the hold-down since that change. */
    began = now;
    while (strcmp(first_for(e, DUBLIN), "eu-west") != 0 && now - began < 300000) {
        round_of(e, calm, now);
        now += CHECK_MS;
    }
    assert_true(now - began >= 60000 - CHECK_MS);
}

/* A fixed pseudo-random sequence: the run is the same every time. */
static double jitter(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return ((*seed >> 8) % 601) / 1000.0 - 0.3; /* -0.3 .. +0.3 */
}

static void test_jitter_switches_at_most_once(void **state)
{
    struct env *e = *state;
    /*
     * eu-west-2 and eu-central near-equal from pgnear, ±30 % each check,
     * ordered by measurement alone: ten minutes of checks change Dublin's
     * group's preference at most once.
     */
    e->rd.rank.by = ROUTE_BY_LATENCY;
    uint32_t seed = 37;
    int64_t now = 0;
    struct registry_region *dublin = e->set.items[EUW].runtime;
    for (int i = 0; i < 300; i++, now += CHECK_MS) {
        double ms[NREG] = {40 * (1 + jitter(&seed)), 20 * (1 + jitter(&seed)),
                           21 * (1 + jitter(&seed)), 90 * (1 + jitter(&seed))};
        round_of(e, ms, now);
    }
    assert_true(__atomic_load_n(&dublin->preference_changes, __ATOMIC_RELAXED) <= 1);
    const char *first = first_for(e, DUBLIN);
    assert_true(strcmp(first, "eu-central") == 0 || strcmp(first, "eu-west-2") == 0);
}

static void test_hybrid_keeps_far_callers_near(void **state)
{
    struct env *e = *state;
    /* pgnear runs in N. Virginia: us-east answers in 1 ms, Europe in 75-80. */
    double central[NREG] = {80, 85, 78, 1};
    int64_t now = 0;
    for (int i = 0; i < 40; i++, now += CHECK_MS)
        round_of(e, central, now);
    assert_string_equal(first_for(e, DUBLIN), "eu-west");
    assert_string_equal(first_for(e, 38.9, -77.0), "us-east");
    /* ... where latency alone sends Dublin to the region nearest pgnear, once its group follows. */
    e->rd.rank.by = ROUTE_BY_LATENCY;
    for (int i = 0; i < 40; i++, now += CHECK_MS)
        round_of(e, central, now);
    assert_string_equal(first_for(e, DUBLIN), "us-east");
    /* ... and distance alone ignores measurement. */
    e->rd.rank.by = ROUTE_BY_DISTANCE;
    assert_string_equal(first_for(e, DUBLIN), "eu-west");
}

static void test_close_scores_keep_distance_order(void **state)
{
    struct env *e = *state;
    int64_t now = 0;
    /* From Dublin: eu-west-2 scores 20 + 9.4, eu-central 6.8 + 19.6: 3 ms apart, a tie. */
    double close[NREG] = {1, 6.8, 20, 70};
    for (int i = 0; i < 10; i++, now += CHECK_MS)
        round_of(e, close, now);
    assert_string_equal(first_for(e, DUBLIN), "eu-west");
    assert_string_equal(second_for(e, DUBLIN), "eu-west-2");
    /* eu-central 1 ms: 8.8 ms better, past route_deadband_min: it comes second. */
    double apart[NREG] = {1, 1, 20, 70};
    for (int i = 0; i < 10; i++, now += CHECK_MS)
        round_of(e, apart, now);
    assert_string_equal(second_for(e, DUBLIN), "eu-central");
}

/* The floor: the least network time of the last window or two, past a run of slow answers. */
static void test_floor(void **state)
{
    (void)state;
    struct rtt_estimate e = {0};
    assert_true(rtt_floor_ms(&e) < 0);
    rtt_sample(&e, 10.0, 0); /* the estimate's samples are not the floor's */
    assert_true(rtt_floor_ms(&e) < 0);
    rtt_floor_sample(&e, -0.2); /* a server's time longer than the round trip: none */
    assert_true(rtt_floor_ms(&e) < 0);
    rtt_floor_sample(&e, 0.0); /* none of it on the wire: the least there is */
    assert_float_equal(rtt_floor_ms(&e), 0.001, 0.0001);
    e = (struct rtt_estimate){0};
    rtt_floor_sample(&e, 10.0);
    assert_float_equal(rtt_floor_ms(&e), 10.0, 0.001);
    for (int i = 1; i < 2 * RTT_FLOOR_WINDOW - 1; i++) {
        rtt_floor_sample(&e, 50.0);
        assert_float_equal(rtt_floor_ms(&e), 10.0, 0.001); /* the quiet one is still among them */
    }
    rtt_floor_sample(&e, 50.0);
    assert_float_equal(rtt_floor_ms(&e), 50.0, 0.001); /* two windows on, the level is the floor */
    rtt_floor_sample(&e, 20.0);
    assert_float_equal(rtt_floor_ms(&e), 20.0, 0.001); /* a quieter one lowers it at once */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_estimate_seeds_and_waits),
        cmocka_unit_test(test_estimate_outliers),
        cmocka_unit_test(test_damping),
        cmocka_unit_test(test_floor),
        cmocka_unit_test_setup_teardown(test_slow_region_loses_and_wins_back, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_first_choice_starts_no_hold_down, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_jitter_switches_at_most_once, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_hybrid_keeps_far_callers_near, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_close_scores_keep_distance_order, env_setup,
                                        env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
