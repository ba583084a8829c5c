/*
 * test_close_queue.c
 *    Unit tests for proxy/runtime/close_queue.c (cmocka, TAP output): pipes stand
 *    for server sockets, and a write end is closed when its read end
 *    reads EOF.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxy/runtime/close_queue.h"

#define PIPES 200

struct fixture {
    struct event_base *base;
    struct close_queue q;
    int rd[PIPES], wr[PIPES];
    int pushed; /* wr[0..pushed) were handed to the queue, which closes them */
};

static int setup(void **state)
{
    static struct fixture f;
    f.base = event_base_new();
    assert_non_null(f.base);
    for (int i = 0; i < PIPES; i++) {
        int p[2];
        assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
        f.rd[i] = p[0];
        f.wr[i] = p[1];
    }
    f.pushed = 0;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    for (int i = 0; i < PIPES; i++) {
        close(f->rd[i]);
        if (i >= f->pushed)
            close(f->wr[i]);
    }
    event_base_free(f->base);
    return 0;
}

/* Whether the write end of pipe i has been closed. */
static int is_closed(const struct fixture *f, int i)
{
    char c;
    ssize_t n = read(f->rd[i], &c, 1);
    if (n == 0)
        return 1;
    assert_true(n < 0 && errno == EAGAIN);
    return 0;
}

static int count_closed(const struct fixture *f, int upto)
{
    int n = 0;
    for (int i = 0; i < upto; i++)
        n += is_closed(f, i);
    return n;
}

/* Runs loop turns until the queue is empty: at most 2 s; returns the turns that closed something.
 */
static int run_until_empty(struct fixture *f, int upto, int *most_in_one_turn)
{
    int turns = 0, before = count_closed(f, upto);
    *most_in_one_turn = 0;
    for (int i = 0; i < 2000 && f->q.len > 0; i++) {
        event_base_loop(f->base, EVLOOP_ONCE);
        int now = count_closed(f, upto);
        if (now > before) {
            turns++;
            if (now - before > *most_in_one_turn)
                *most_in_one_turn = now - before;
        }
        before = now;
    }
    assert_int_equal(f->q.len, 0);
    return turns;
}

static void test_lone_close_is_immediate(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(close_queue_init(&f->q, f->base, 64), 0);
    close_queue_push(&f->q, f->wr[0]);
    f->pushed = 1;
    assert_true(is_closed(f, 0));
    assert_int_equal(f->q.len, 0);
    close_queue_free(&f->q);
}

static void test_burst_is_paced(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(close_queue_init(&f->q, f->base, PIPES), 0);
    for (int i = 0; i < PIPES; i++)
        close_queue_push(&f->q, f->wr[i]);
    f->pushed = PIPES;
    /* The first goes at once; the rest wait for the loop. */
    assert_int_equal(count_closed(f, PIPES), 1);
    assert_int_equal(f->q.len, PIPES - 1);
    int most;
    int turns = run_until_empty(f, PIPES, &most);
    assert_int_equal(count_closed(f, PIPES), PIPES);
    assert_true(most <= CLOSE_BATCH);
    assert_true(turns >= (PIPES - 1 + CLOSE_BATCH - 1) / CLOSE_BATCH);
    close_queue_free(&f->q);
}

static void test_full_queue_closes_at_once(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(close_queue_init(&f->q, f->base, 8), 0);
    for (int i = 0; i < 20; i++)
        close_queue_push(&f->q, f->wr[i]);
    f->pushed = 20;
    /* One at once, eight held, the other eleven closed because the queue was full. */
    assert_int_equal(f->q.len, 8);
    assert_int_equal(count_closed(f, 20), 12);
    int most;
    run_until_empty(f, 20, &most);
    assert_int_equal(count_closed(f, 20), 20);
    close_queue_free(&f->q);
}

static void test_free_closes_what_is_queued(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(close_queue_init(&f->q, f->base, PIPES), 0);
    for (int i = 0; i < 100; i++)
        close_queue_push(&f->q, f->wr[i]);
    f->pushed = 101; /* with the one pushed after the free */
    assert_int_equal(count_closed(f, 100), 1);
    close_queue_free(&f->q);
    assert_int_equal(count_closed(f, 100), 100);
    close_queue_push(&f->q, f->wr[100]); /* a freed queue closes at once */
    assert_true(is_closed(f, 100));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lone_close_is_immediate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_burst_is_paced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_closes_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_closes_what_is_queued, setup, teardown),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("close_queue", tests, NULL, NULL);
}
