/*
 * test_latency.c
 *    Unit tests for proxy/base/latency.c (cmocka, TAP): the fine buckets'
 *    bounds, Prometheus's buckets at their bounds exactly, the quantiles'
 *    estimate, and what a server connection's tx_track counts as queries
 *    and transactions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "protocol/tx_track.h"
#include "proxy/base/latency.h"

/* The fine buckets tile the values: each value in the bucket whose bounds hold it, ~3 % wide. */
static void test_fine_buckets(void **state)
{
    (void)state;
    for (uint64_t v = 0; v < LATENCY_SUB; v++)
        assert_int_equal(latency_fine_index(v), v); /* exact below 32 µs */
    uint64_t prev_hi = 0;
    for (unsigned i = 0; i < LATENCY_FINE; i++) {
        uint64_t lo, hi;
        latency_fine_bounds(i, &lo, &hi);
        assert_int_equal(lo, prev_hi); /* no gap, no overlap */
        assert_true(hi > lo);
        assert_int_equal(latency_fine_index(lo), i);
        assert_int_equal(latency_fine_index(hi - 1), i);
        if (lo >= LATENCY_SUB)
            assert_true((hi - lo) * LATENCY_SUB <= lo); /* at most 1/32 of its values */
        prev_hi = hi;
    }
    assert_int_equal(prev_hi, (uint64_t)1 << LATENCY_MAX_EXP);
    assert_int_equal(latency_fine_index(((uint64_t)1 << LATENCY_MAX_EXP) - 1), LATENCY_FINE - 1);
    assert_int_equal(latency_fine_index((uint64_t)1 << LATENCY_MAX_EXP), LATENCY_FINE);
    assert_int_equal(latency_fine_index(UINT64_MAX), LATENCY_FINE);
}

/* The coarse bucket of a single value, from the fine ones. */
static unsigned coarse_of(int64_t us)
{
    struct latency_hist *h = calloc(1, sizeof(*h));
    uint64_t coarse[LATENCY_COARSE];
    unsigned found = LATENCY_COARSE;
    assert_non_null(h);
    latency_add(h, us);
    latency_coarse_counts(h, coarse);
    for (unsigned i = 0; i < LATENCY_COARSE; i++)
        if (coarse[i] == 1)
            found = i;
    free(h);
    return found;
}

/* le="0.0001" holds 100 µs; a value over a bound by more than a fine bucket (3 %) is over it. */
static void test_coarse_buckets(void **state)
{
    (void)state;
    assert_int_equal(latency_coarse_le_us[0], 100);
    assert_int_equal(latency_coarse_le_us[LATENCY_COARSE - 2], 10000000);
    assert_int_equal(coarse_of(0), 0);
    for (unsigned i = 0; i < LATENCY_COARSE - 1; i++) {
        int64_t le = latency_coarse_le_us[i];
        if (i > 0)
            assert_true(le > latency_coarse_le_us[i - 1]);
        assert_int_equal(coarse_of(le), i);
        assert_int_equal(coarse_of(le - le / 40), i);
        assert_int_equal(coarse_of(le + le / 30 + 1), i + 1);
    }
    assert_int_equal(coarse_of((int64_t)1 << 40), LATENCY_COARSE - 1);
}

static void test_add(void **state)
{
    (void)state;
    struct latency_hist *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    latency_add(h, 150);
    latency_add(h, 200000);
    latency_add(h, -5); /* a clock that stepped back: 0 */
    assert_int_equal(h->count, 3);
    assert_int_equal(h->sum_us, 200150);
    uint64_t coarse[LATENCY_COARSE];
    latency_coarse_counts(h, coarse);
    assert_int_equal(coarse[0], 1);  /* the 0 */
    assert_int_equal(coarse[1], 1);  /* 150 µs <= 0.00025 */
    assert_int_equal(coarse[10], 1); /* 0.2 s <= 0.25 */
    assert_int_equal(h->fine[0], 1);
    assert_int_equal(h->fine[latency_fine_index(200000)], 1);
    free(h);
}

static void assert_near(double got, double want, double rel)
{
    if (fabs(got - want) > want * rel)
        fail_msg("%.1f is not within %.1f %% of %.1f", got, rel * 100, want);
}

/* Quantiles interpolated inside the fine bucket: within its width (3 %) of the true value. */
static void test_quantiles(void **state)
{
    (void)state;
    struct latency_hist *h = calloc(1, sizeof(*h));
    struct latency_hist *sum = calloc(1, sizeof(*sum));
    assert_non_null(h);
    assert_non_null(sum);
    assert_true(latency_quantile_us(h, 0.5) < 0); /* nothing counted */
    latency_add(h, 200000);
    assert_near(latency_quantile_us(h, 0.5), 200000, 0.032);
    assert_near(latency_quantile_us(h, 0.99), 200000, 0.032);
    for (int i = 1; i <= 1000; i++) /* 1 .. 1000 ms */
        latency_add(sum, (int64_t)i * 1000);
    assert_near(latency_quantile_us(sum, 0.5), 500000, 0.032);
    assert_near(latency_quantile_us(sum, 0.99), 990000, 0.032);
    assert_true(latency_quantile_us(sum, 0.5) <= latency_quantile_us(sum, 0.99));
    /* Sub-millisecond, as a local query: 100 values of 90 µs and 1 of 5 ms. */
    struct latency_hist *fast = calloc(1, sizeof(*fast));
    assert_non_null(fast);
    for (int i = 0; i < 100; i++)
        latency_add(fast, 90);
    latency_add(fast, 5000);
    assert_near(latency_quantile_us(fast, 0.5), 90, 0.032);
    assert_near(latency_quantile_us(fast, 0.99), 90, 0.032);
    assert_near(latency_quantile_us(fast, 1.0), 5000, 0.032);
    /* Merged: the counts add up. */
    latency_merge(sum, h);
    assert_int_equal(sum->count, 1001);
    uint64_t coarse[LATENCY_COARSE];
    latency_coarse_counts(sum, coarse);
    /* 0.05 < v <= 0.25 s: 51..250 ms, the 0.2 s, and 251..253 ms, in 250 ms's fine bucket. */
    assert_int_equal(coarse[9] + coarse[10], 204);
    /* Past 71 minutes: the last bucket, shown as its bound. */
    latency_add(h, (int64_t)1 << 40);
    assert_int_equal(h->fine[LATENCY_FINE], 1);
    assert_near(latency_quantile_us(h, 1.0), (double)((uint64_t)1 << LATENCY_MAX_EXP), 0.001);
    free(h);
    free(sum);
    free(fast);
}

/* A region's set: one per region, the same on every call. */
static void test_book(void **state)
{
    (void)state;
    struct latency_book b = {0};
    static const int r1 = 1, r2 = 2;
    const struct registry_region *eu = (const void *)&r1, *us = (const void *)&r2;
    struct latency_set *s1 = latency_set_of(&b, eu);
    assert_non_null(s1);
    assert_ptr_equal(latency_set_of(&b, eu), s1);
    struct latency_set *s2 = latency_set_of(&b, us);
    assert_non_null(s2);
    assert_ptr_not_equal(s1, s2);
    assert_int_equal(b.nsets, 2);
    latency_book_free(&b);
    assert_int_equal(b.nsets, 0);
}

/* The client's messages, then the server's, as the relay's scans hand them; then the marks look. */
static void client(struct tx_track *t, const char *types)
{
    for (; *types; types++)
        tx_track_client(t, (uint8_t)*types);
}

static void ready(struct tx_track *t, char status)
{
    tx_track_server(t, 'Z', (uint8_t)status);
}

static void test_follow(void **state)
{
    (void)state;
    struct latency_book b = {0};
    static const int region = 1;
    const struct registry_region *rr = (const void *)&region;
    struct tx_track t;
    struct latency_marks m = {0};
    tx_track_init(&t, 'I');
    latency_follow(&m, &t, &b, rr);
    assert_int_equal(b.nsets, 0); /* nothing happened: nothing made */
    /* An autocommit statement: a query and a transaction. */
    client(&t, "Q");
    latency_follow(&m, &t, &b, rr);
    assert_true(m.query_since_us > 0 && m.txn_since_us > 0);
    ready(&t, 'I');
    latency_follow(&m, &t, &b, rr);
    struct latency_set *set = latency_set_of(&b, rr);
    assert_int_equal(set->hist[LATENCY_QUERY].count, 1);
    assert_int_equal(set->hist[LATENCY_TRANSACTION].count, 1);
    assert_true(m.query_since_us == 0 && m.txn_since_us == 0);
    /* BEGIN; SELECT; COMMIT: three queries, one transaction, idle in it between. */
    client(&t, "Q");
    latency_follow(&m, &t, &b, rr);
    ready(&t, 'T');
    latency_follow(&m, &t, &b, rr);
    int64_t began = m.txn_since_us;
    assert_true(began > 0 && m.query_since_us == 0);
    client(&t, "PBES"); /* extended protocol, to its Sync */
    latency_follow(&m, &t, &b, rr);
    ready(&t, 'T');
    latency_follow(&m, &t, &b, rr);
    client(&t, "Q");
    latency_follow(&m, &t, &b, rr);
    assert_int_equal(m.txn_since_us, began);
    ready(&t, 'I');
    latency_follow(&m, &t, &b, rr);
    assert_int_equal(set->hist[LATENCY_QUERY].count, 4);
    assert_int_equal(set->hist[LATENCY_TRANSACTION].count, 2);
    /* Pipelined: three requests, their answers in one read; each counted. */
    client(&t, "QQQ");
    latency_follow(&m, &t, &b, rr);
    ready(&t, 'I');
    ready(&t, 'I');
    ready(&t, 'I');
    latency_follow(&m, &t, &b, rr);
    assert_int_equal(set->hist[LATENCY_QUERY].count, 7);
    assert_int_equal(set->hist[LATENCY_TRANSACTION].count, 5);
    assert_int_equal(set->hist[LATENCY_QUERY].count, t.answered);
    assert_int_equal(set->hist[LATENCY_TRANSACTION].count, t.answered_idle);
    /* The connection counted and begun again for another client: nothing is timed. */
    tx_track_init(&t, 'I');
    latency_follow(&m, &t, &b, rr);
    assert_int_equal(set->hist[LATENCY_QUERY].count, 7);
    client(&t, "Q");
    latency_follow(&m, &t, &b, rr);
    ready(&t, 'I');
    latency_follow(&m, &t, &b, rr);
    assert_int_equal(set->hist[LATENCY_QUERY].count, 8);
    latency_book_free(&b);
}

/* A login's duration and its wait, each counted once. */
static void test_login(void **state)
{
    (void)state;
    struct latency_book b = {0};
    static const int region = 1;
    const struct registry_region *rr = (const void *)&region;
    struct latency_times lt = {0};
    int64_t accepted_us = monotonic_us();
    latency_wait_begin(&lt);
    int64_t since = lt.wait_since_us;
    latency_wait_begin(&lt); /* asking again (another host) keeps the first */
    assert_int_equal(lt.wait_since_us, since);
    latency_login_end(&lt, accepted_us, &b, rr);
    latency_login_end(&lt, 0, &b, rr); /* (no login's time: none counted) */
    struct latency_set *set = latency_set_of(&b, rr);
    assert_int_equal(set->hist[LATENCY_LOGIN].count, 1);
    assert_int_equal(set->hist[LATENCY_WAIT].count, 1);
    latency_wait_begin(&lt);
    latency_wait_end(&lt, &b, rr);
    assert_int_equal(set->hist[LATENCY_WAIT].count, 2);
    latency_book_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fine_buckets), cmocka_unit_test(test_coarse_buckets),
        cmocka_unit_test(test_add),          cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_book),         cmocka_unit_test(test_follow),
        cmocka_unit_test(test_login),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
