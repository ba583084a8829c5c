/*
 * test_log_limit.c
 *    Unit tests for log_limit_allow() (proxy/base/log.c): a burst per window,
 *    the count of lines left out, and the limit shared by threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <time.h>

#include "proxy/base/log.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_burst_then_count(void **state)
{
    (void)state;
    struct log_limit l;
    log_limit_init(&l);
    uint64_t left_out = 99;
    for (int i = 0; i < 3; i++) {
        assert_true(log_limit_allow(&l, 3, 200, &left_out));
        assert_int_equal(left_out, 0);
    }
    for (int i = 0; i < 7; i++)
        assert_false(log_limit_allow(&l, 3, 200, &left_out));
    sleep_ms(250);
    assert_true(log_limit_allow(&l, 3, 200, &left_out));
    assert_int_equal(left_out, 7); /* the next line says how many were left out */
    assert_true(log_limit_allow(&l, 3, 200, &left_out));
    assert_int_equal(left_out, 0);
    log_limit_destroy(&l);
}

static void test_one_per_window(void **state)
{
    (void)state;
    struct log_limit l;
    log_limit_init(&l);
    uint64_t left_out;
    assert_true(log_limit_allow(&l, 1, 10000, &left_out));
    for (int i = 0; i < 1000; i++)
        assert_false(log_limit_allow(&l, 1, 10000, &left_out));
    log_limit_destroy(&l);
}

struct racer {
    struct log_limit *l;
    int allowed;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    uint64_t left_out;
    for (int i = 0; i < 10000; i++)
        r->allowed += log_limit_allow(r->l, 10, 60000, &left_out);
    return NULL;
}

/* Four threads (workers) share the limit: ten lines in all, not ten each. */
static void test_shared_by_threads(void **state)
{
    (void)state;
    struct log_limit l;
    log_limit_init(&l);
    struct racer r[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){&l, 0};
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    int allowed = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        allowed += r[i].allowed;
    }
    assert_int_equal(allowed, 10);
    log_limit_destroy(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_count),
        cmocka_unit_test(test_one_per_window),
        cmocka_unit_test(test_shared_by_threads),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("log_limit", tests, NULL, NULL);
}
