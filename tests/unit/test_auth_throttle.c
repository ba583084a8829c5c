/*
 * test_auth_throttle.c
 *    Unit tests for proxy/base/auth_throttle.c (cmocka, TAP output): the delays
 *    (none below the threshold, then doubling to the cap), spacing of
 *    attempts that arrive together, refusal past the horizon, reset on
 *    success, forgetting, which sources count as one, and the bounded
 *    table under a flood of pairs.  Time is passed in, so nothing sleeps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "proxy/base/auth_throttle.h"

static const struct throttle_params P = {3, 100, 1000, 1000}; /* threshold, delay, max, horizon */

static struct sockaddr_storage v4(const char *text)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    memset(&ss, 0, sizeof(ss));
    in->sin_family = AF_INET;
    in->sin_port = htons(40000);
    assert_int_equal(inet_pton(AF_INET, text, &in->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *text)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof(ss));
    in6->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    return ss;
}

static struct throttle_key key(struct auth_throttle *t, struct sockaddr_storage ss,
                               const char *user)
{
    struct throttle_key k;
    auth_throttle_key(t, (const struct sockaddr *)&ss, user, &k);
    return k;
}

static uint32_t failed(struct auth_throttle *t, const struct throttle_key *k, int64_t now)
{
    bool evicted;
    return auth_throttle_failed(t, &P, k, now, &evicted);
}

/* admit's verdict, with the wait in *wait. */
static enum throttle_verdict admit(struct auth_throttle *t, const struct throttle_key *k,
                                   int64_t now, int64_t *wait)
{
    struct throttle_state st;
    enum throttle_verdict v = auth_throttle_admit(t, &P, k, now, &st);
    *wait = st.wait_ms;
    return v;
}

static int setup(void **state)
{
    static struct auth_throttle t;
    assert_int_equal(auth_throttle_init(&t), 0);
    *state = &t;
    return 0;
}

static int teardown(void **state)
{
    auth_throttle_free(*state);
    return 0;
}

/* ---- the delays ---- */

static void test_delays(void **state)
{
    (void)state;
    static const int64_t want[] = {0, 0, 0, 100, 200, 400, 800, 1000, 1000};
    for (uint32_t f = 0; f < sizeof(want) / sizeof(want[0]); f++)
        assert_int_equal(auth_throttle_delay(&P, f), want[f]);
    assert_int_equal(auth_throttle_delay(&P, UINT32_MAX), 1000);
    struct throttle_params off = {0, 100, 1000, 1000};
    assert_int_equal(auth_throttle_delay(&off, 50), 0);
}

static void test_threshold_then_doubling(void **state)
{
    struct auth_throttle *t = *state;
    struct throttle_key k = key(t, v4("192.0.2.1"), "app");
    int64_t wait, now = 1000000;
    for (int i = 1; i <= 2; i++) {
        assert_int_equal(admit(t, &k, now, &wait), THROTTLE_GO);
        assert_int_equal(failed(t, &k, now), i);
    }
    assert_int_equal(admit(t, &k, now, &wait), THROTTLE_GO);
    assert_int_equal(failed(t, &k, now), 3);
    /* One attempt at a time, each right after the last failed: 100, 200, 400 ms. */
    for (int64_t d = 100; d <= 400; d *= 2) {
        assert_int_equal(admit(t, &k, now, &wait), THROTTLE_WAIT);
        assert_int_equal(wait, d);
        now += wait;
        failed(t, &k, now);
    }
    /* A guesser who waits the delay out before coming back does not wait again. */
    now += 800;
    assert_int_equal(admit(t, &k, now, &wait), THROTTLE_GO);
    /* Success forgets the pair. */
    auth_throttle_succeeded(t, &k);
    assert_int_equal(admit(t, &k, now, &wait), THROTTLE_GO);
    assert_int_equal(failed(t, &k, now), 1);
    auth_throttle_succeeded(t, &k);
}

/* ---- attempts that arrive together are spaced, and refused past the horizon ---- */

static void test_spacing_and_refusal(void **state)
{
    struct auth_throttle *t = *state;
    struct throttle_key k = key(t, v4("192.0.2.2"), "app");
    int64_t wait, now = 2000000;
    for (int i = 0; i < 4; i++)
        failed(t, &k, now); /* 4 failures: the next ones wait 200 ms apart */
    assert_int_equal(admit(t, &k, now, &wait), THROTTLE_WAIT);
    assert_int_equal(wait, 200);
    assert_int_equal(admit(t, &k, now, &wait), THROTTLE_WAIT);
    assert_int_equal(wait, 400);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(admit(t, &k, now, &wait), THROTTLE_WAIT);
        assert_int_equal(wait, 600 + 200 * i);
    }
    /* The next start would be 1200 ms away, past the 1000 ms horizon. */
    assert_int_equal(admit(t, &k, now, &wait), THROTTLE_REFUSE);
    assert_int_equal(wait, 1200);
    assert_int_equal(admit(t, &k, now, &wait), THROTTLE_REFUSE); /* a refusal books nothing */
    assert_int_equal(wait, 1200);
    assert_int_equal(admit(t, &k, now + 300, &wait), THROTTLE_WAIT);
    assert_int_equal(wait, 900);
    auth_throttle_succeeded(t, &k);
}

/* ---- nobody else is slowed ---- */

static void test_others_not_slowed(void **state)
{
    struct auth_throttle *t = *state;
    struct throttle_key k = key(t, v4("192.0.2.3"), "app");
    int64_t wait, now = 3000000;
    for (int i = 0; i < 10; i++)
        failed(t, &k, now);
    assert_int_equal(admit(t, &k, now, &wait), THROTTLE_WAIT);
    struct throttle_key other_user = key(t, v4("192.0.2.3"), "bob");
    struct throttle_key other_addr = key(t, v4("192.0.2.4"), "app");
    assert_int_equal(admit(t, &other_user, now, &wait), THROTTLE_GO);
    assert_int_equal(admit(t, &other_addr, now, &wait), THROTTLE_GO);
    /* Another connection from the same address is the same source, whatever its port. */
    struct sockaddr_storage again = v4("192.0.2.3");
    ((struct sockaddr_in *)&again)->sin_port = htons(40001);
    struct throttle_key same = key(t, again, "app");
    assert_memory_equal(same.id, k.id, sizeof(k.id));
    auth_throttle_succeeded(t, &k);
}

/* ---- what counts as one source ---- */

static void test_sources(void **state)
{
    struct auth_throttle *t = *state;
    struct throttle_key a = key(t, v4("198.51.100.7"), "app");
    struct throttle_key mapped = key(t, v6("::ffff:198.51.100.7"), "app");
    assert_memory_equal(a.id, mapped.id, sizeof(a.id));
    struct throttle_key h1 = key(t, v6("2001:db8:1:2::1"), "app");
    struct throttle_key h2 = key(t, v6("2001:db8:1:2:ffff:eeee:dddd:cccc"), "app");
    struct throttle_key other64 = key(t, v6("2001:db8:1:3::1"), "app");
    assert_memory_equal(h1.id, h2.id, sizeof(h1.id));
    assert_memory_not_equal(h1.id, other64.id, sizeof(h1.id));
    struct sockaddr_storage u1, u2;
    memset(&u1, 0, sizeof(u1));
    memset(&u2, 0, sizeof(u2));
    u1.ss_family = u2.ss_family = AF_UNIX;
    snprintf(((struct sockaddr_un *)&u2)->sun_path, 16, "whatever");
    struct throttle_key k1 = key(t, u1, "app"), k2 = key(t, u2, "app");
    assert_memory_equal(k1.id, k2.id, sizeof(k1.id));
    /* Role names count to 63 bytes, as in PostgreSQL. */
    char long1[100], long2[100];
    memset(long1, 'x', 99);
    long1[99] = '\0';
    memcpy(long2, long1, sizeof(long2));
    long2[80] = 'y';
    struct throttle_key l1 = key(t, v4("198.51.100.7"), long1);
    struct throttle_key l2 = key(t, v4("198.51.100.7"), long2);
    assert_memory_equal(l1.id, l2.id, sizeof(l1.id));
    long2[62] = 'y';
    l2 = key(t, v4("198.51.100.7"), long2);
    assert_memory_not_equal(l1.id, l2.id, sizeof(l1.id));
}

/* ---- forgetting, and off ---- */

static void test_forget_and_off(void **state)
{
    struct auth_throttle *t = *state;
    struct throttle_key k = key(t, v4("192.0.2.5"), "app");
    int64_t wait, now = 4000000;
    for (int i = 0; i < 6; i++)
        failed(t, &k, now);
    assert_int_equal(admit(t, &k, now, &wait), THROTTLE_WAIT);
    assert_int_equal(admit(t, &k, now + THROTTLE_FORGET_MS + 1, &wait), THROTTLE_GO);
    assert_int_equal(failed(t, &k, now + THROTTLE_FORGET_MS + 1), 1); /* counted from 1 again */

    struct throttle_params off = {0, 100, 1000, 1000};
    struct throttle_state st;
    bool evicted = true;
    struct throttle_key k2 = key(t, v4("192.0.2.6"), "app");
    for (int i = 0; i < 10; i++)
        assert_int_equal(auth_throttle_failed(t, &off, &k2, now, &evicted), 0);
    assert_false(evicted);
    assert_int_equal(auth_throttle_admit(t, &off, &k2, now, &st), THROTTLE_GO);
    assert_int_equal(auth_throttle_admit(t, &P, &k2, now, &st), THROTTLE_GO);
    auth_throttle_succeeded(t, &k);
}

/* ---- a flood of pairs: memory stays put, throttled pairs stay throttled ---- */

static void test_flood(void **state)
{
    struct auth_throttle *t = *state;
    struct throttle_key guesser = key(t, v4("203.0.113.9"), "app");
    int64_t wait, now = 5000000;
    for (int i = 0; i < 8; i++)
        failed(t, &guesser, now);
    void *table = t->records;
    assert_non_null(table);
    /* Far more pairs than records, each failing once (below the threshold). */
    uint64_t evictions = 0;
    char user[32];
    for (uint32_t i = 0; i < 8 * THROTTLE_BUCKETS * THROTTLE_WAYS; i++) {
        bool evicted;
        snprintf(user, sizeof(user), "u%u", i);
        struct throttle_key k = key(t, v4("198.51.100.1"), user);
        auth_throttle_failed(t, &P, &k, now + 1, &evicted);
        evictions += evicted;
    }
    assert_ptr_equal(t->records, table); /* the table never grew */
    assert_true(evictions > 0);
    /* The guesser's record survived: pairs below the threshold made room for each other. */
    assert_int_equal(admit(t, &guesser, now + 2, &wait), THROTTLE_WAIT);
    assert_true(wait > 0);
    auth_throttle_succeeded(t, &guesser);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delays),
        cmocka_unit_test_setup_teardown(test_threshold_then_doubling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spacing_and_refusal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_others_not_slowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forget_and_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flood, setup, teardown),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("auth_throttle", tests, NULL, NULL);
}
