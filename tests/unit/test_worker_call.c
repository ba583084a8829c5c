/*
 * test_worker_call.c
 *    Unit tests for proxy/runtime/worker_call.c (cmocka, TAP output): two workers,
 *    each an event loop on a thread of its own (worker 0 on the test's
 *    thread), calling each other.  Checked: fn runs on the target's thread
 *    and done on the caller's, results and counts come back, calls from
 *    one worker to another run in the order they were made, a call to
 *    oneself works, and a worker whose loop has ended answers at once with
 *    ran = 0 — also for calls that were queued when it ended; and one
 *    worker summing the counters of all while they count (stats.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"

#define NWORKERS 2
#define ORDERED  200

struct world {
    struct shared *shared;
    struct worker *w[NWORKERS];
    pthread_t thread1; /* runs worker 1's loop */
    bool thread1_running;
};

/* What calls and answers saw, written by the thread the test expects to run them. */
struct record {
    pthread_t fn_thread[NWORKERS];
    int fn_runs[NWORKERS];
    int seq[ORDERED];
    int nseq;
    pthread_t done_thread;
    int done_runs;
    struct worker_reply reply;
};

static void *worker1_main(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    worker_calls_close(w);
    return NULL;
}

static void world_init(struct world *wd)
{
    wd->shared = calloc(1, sizeof(*wd->shared));
    assert_non_null(wd->shared);
    wd->shared->nworkers = NWORKERS;
    wd->shared->workers = wd->w;
    for (int i = 0; i < NWORKERS; i++) {
        struct worker *w = calloc(1, sizeof(*w));
        assert_non_null(w);
        w->shared = wd->shared;
        w->index = i;
        w->calls.bell[0] = w->calls.bell[1] = -1;
        w->base = event_base_new();
        assert_non_null(w->base);
        assert_int_equal(worker_calls_init(w), 0);
        wd->w[i] = w;
    }
    assert_int_equal(pthread_create(&wd->thread1, NULL, worker1_main, wd->w[1]), 0);
    wd->thread1_running = true;
}

static int stop_loop(struct worker *w, void *arg)
{
    (void)arg;
    event_base_loopexit(w->base, NULL);
    return 0;
}

/* Ends worker 1's loop (through a call, as the daemon would) and joins its thread. */
static void world_stop_worker1(struct world *wd)
{
    if (!wd->thread1_running)
        return;
    assert_int_equal(worker_call(wd->w[0], wd->w[1], stop_loop, NULL, NULL, NULL), 0);
    assert_int_equal(pthread_join(wd->thread1, NULL), 0);
    wd->thread1_running = false;
}

static void world_free(struct world *wd)
{
    world_stop_worker1(wd);
    for (int i = 0; i < NWORKERS; i++)
        worker_calls_close(wd->w[i]);
    for (int i = 0; i < NWORKERS; i++) {
        worker_calls_free(wd->w[i]);
        event_base_free(wd->w[i]->base);
        free(wd->w[i]);
    }
    free(wd->shared);
}

/* Runs worker 0's loop until a done callback ends it (bounded: 5 s). */
static void run_worker0(struct world *wd)
{
    struct timeval limit = {5, 0};
    event_base_loopexit(wd->w[0]->base, &limit);
    event_base_dispatch(wd->w[0]->base);
}

static int note_fn(struct worker *w, void *arg)
{
    struct record *rec = arg;
    rec->fn_thread[w->index] = pthread_self();
    rec->fn_runs[w->index]++;
    return 10 + w->index;
}

static void note_done(struct worker *from, const struct worker_reply *r)
{
    struct record *rec = r->done_arg;
    rec->done_thread = pthread_self();
    rec->done_runs++;
    rec->reply = *r;
    event_base_loopexit(from->base, NULL);
}

static void test_call_runs_on_target(void **state)
{
    (void)state;
    struct world wd = {0};
    struct record rec = {0};
    world_init(&wd);
    assert_int_equal(worker_call(wd.w[0], wd.w[1], note_fn, &rec, note_done, &rec), 0);
    run_worker0(&wd);
    assert_int_equal(rec.fn_runs[1], 1);
    assert_true(pthread_equal(rec.fn_thread[1], wd.thread1));
    assert_int_equal(rec.done_runs, 1);
    assert_true(pthread_equal(rec.done_thread, pthread_self()));
    assert_int_equal(rec.reply.to, 1);
    assert_int_equal(rec.reply.asked, 1);
    assert_int_equal(rec.reply.ran, 1);
    assert_int_equal(rec.reply.result, 11);
    assert_ptr_equal(rec.reply.arg, &rec);
    world_free(&wd);
}

static void test_call_all(void **state)
{
    (void)state;
    struct world wd = {0};
    struct record rec = {0};
    world_init(&wd);
    assert_int_equal(worker_call_all(wd.w[0], note_fn, &rec, note_done, &rec), 0);
    run_worker0(&wd);
    assert_int_equal(rec.fn_runs[0], 1);
    assert_int_equal(rec.fn_runs[1], 1);
    assert_true(pthread_equal(rec.fn_thread[0], pthread_self()));
    assert_true(pthread_equal(rec.fn_thread[1], wd.thread1));
    assert_int_equal(rec.done_runs, 1); /* once, when both answered */
    assert_int_equal(rec.reply.to, -1);
    assert_int_equal(rec.reply.asked, NWORKERS);
    assert_int_equal(rec.reply.ran, NWORKERS);
    /* the first nonzero result: both are nonzero, so either */
    assert_true(rec.reply.result == 10 || rec.reply.result == 11);
    world_free(&wd);
}

static int append_seq(struct worker *w, void *arg)
{
    struct record *rec = arg;
    (void)w;
    rec->seq[rec->nseq++] = rec->fn_runs[1]++;
    return 0;
}

static void count_done(struct worker *from, const struct worker_reply *r)
{
    struct record *rec = r->done_arg;
    if (++rec->done_runs == ORDERED)
        event_base_loopexit(from->base, NULL);
}

/* Calls made one after another run in that order, and every one is answered once. */
static void test_calls_in_order(void **state)
{
    (void)state;
    struct world wd = {0};
    struct record rec = {0};
    world_init(&wd);
    for (int i = 0; i < ORDERED; i++)
        assert_int_equal(worker_call(wd.w[0], wd.w[1], append_seq, &rec, count_done, &rec), 0);
    run_worker0(&wd);
    assert_int_equal(rec.done_runs, ORDERED);
    assert_int_equal(rec.nseq, ORDERED);
    for (int i = 0; i < ORDERED; i++)
        assert_int_equal(rec.seq[i], i);
    world_free(&wd);
}

static void test_call_self(void **state)
{
    (void)state;
    struct world wd = {0};
    struct record rec = {0};
    world_init(&wd);
    assert_int_equal(worker_call(wd.w[0], wd.w[0], note_fn, &rec, note_done, &rec), 0);
    assert_int_equal(rec.fn_runs[0], 0); /* not at once: on a later loop turn */
    run_worker0(&wd);
    assert_int_equal(rec.fn_runs[0], 1);
    assert_int_equal(rec.done_runs, 1);
    assert_int_equal(rec.reply.ran, 1);
    assert_int_equal(rec.reply.result, 10);
    world_free(&wd);
}

/* A worker whose loop has ended never runs fn again; callers hear so at once. */
static void test_ended_target(void **state)
{
    (void)state;
    struct world wd = {0};
    struct record rec = {0};
    world_init(&wd);
    world_stop_worker1(&wd);
    assert_int_equal(worker_call(wd.w[0], wd.w[1], note_fn, &rec, note_done, &rec), 0);
    run_worker0(&wd);
    assert_int_equal(rec.fn_runs[1], 0);
    assert_int_equal(rec.done_runs, 1);
    assert_int_equal(rec.reply.ran, 0);
    /* and a call to all counts the one that did not run */
    struct record all = {0};
    assert_int_equal(worker_call_all(wd.w[0], note_fn, &all, note_done, &all), 0);
    run_worker0(&wd);
    assert_int_equal(all.done_runs, 1);
    assert_int_equal(all.reply.asked, NWORKERS);
    assert_int_equal(all.reply.ran, 1);
    assert_int_equal(all.fn_runs[0], 1);
    assert_int_equal(all.fn_runs[1], 0);
    world_free(&wd);
}

/* Calls still queued when their target's loop ends are answered by the close, not lost. */
static void test_queued_at_close(void **state)
{
    (void)state;
    struct world wd = {0};
    struct record rec = {0};
    world_init(&wd);
    world_stop_worker1(&wd);
    /* worker 1's mailbox is closed: fill worker 0's own queue, then close it unread */
    for (int i = 0; i < 3; i++)
        assert_int_equal(worker_call(wd.w[0], wd.w[0], note_fn, &rec, count_done, &rec), 0);
    worker_calls_close(wd.w[0]);
    assert_int_equal(rec.fn_runs[0], 0);
    /* the refusals came back to worker 0's closed mailbox; freeing it delivers them */
    world_free(&wd);
    assert_int_equal(rec.done_runs, 3);
}

/* Each worker counts on its own thread; worker 0 sums everybody's as they run. */
static int count_some(struct worker *w, void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        stat_inc(&w->stats.sessions_total);
        stat_add(&w->stats.routed_by_source[4], 2);
    }
    return 0;
}

static void sum_done(struct worker *from, const struct worker_reply *r)
{
    struct worker_stats *sum = r->done_arg;
    for (int i = 0; i < from->shared->nworkers; i++)
        stats_accumulate(sum, &from->shared->workers[i]->stats);
    event_base_loopexit(from->base, NULL);
}

static void test_stats_summed(void **state)
{
    (void)state;
    struct world wd = {0};
    struct worker_stats sum = {0};
    world_init(&wd);
    assert_int_equal(worker_call_all(wd.w[0], count_some, NULL, sum_done, &sum), 0);
    /* read while worker 1 may be counting: a partial sum, never a torn one */
    struct worker_stats early = {0};
    stats_accumulate(&early, &wd.w[1]->stats);
    assert_true(early.sessions_total <= 1000);
    run_worker0(&wd);
    assert_int_equal(sum.sessions_total, 2000);
    assert_int_equal(sum.routed_by_source[4], 4000);
    assert_int_equal(sum.failovers, 0);
    world_free(&wd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_runs_on_target), cmocka_unit_test(test_call_all),
        cmocka_unit_test(test_calls_in_order),      cmocka_unit_test(test_call_self),
        cmocka_unit_test(test_ended_target),        cmocka_unit_test(test_queued_at_close),
        cmocka_unit_test(test_stats_summed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
