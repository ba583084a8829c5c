/*
 * worker_call.h — the control plane between workers: run a function on
 * another worker's loop thread (or on every worker) and hear the answer
 * back on one's own, without blocking any loop.
 *
 * Each worker has a mailbox: a queue of heap-allocated call records under
 * a mutex held only to link or unlink them, and a pipe whose one byte
 * wakes the loop when the queue stops being empty.  A call travels to its
 * target's mailbox, runs there, and travels back to its caller's mailbox,
 * where the done callback runs; a call to oneself takes the same path (a
 * later loop turn), so that every call is ordered alike: calls from one
 * worker to another run in the order they were made.
 *
 * Thread rules:
 *   - worker_call and worker_call_all are made on the caller's loop thread
 *     (or before its loop starts, or while it is torn down).
 *   - fn runs on the target's loop thread; for worker_call_all, on every
 *     worker's thread at once, so it must write only what its worker owns
 *     (a slot of arg per worker index, say).
 *   - done runs on the caller's loop thread, exactly once for every call
 *     that was accepted (returned 0), whether fn ran or not.  The only
 *     exception is a caller whose loop has ended before the answer came
 *     back: then done runs when the caller's mailbox is freed, after the
 *     worker threads were joined (worker_calls_free).
 *   - A target whose loop has ended (its mailbox is closed) answers at once
 *     with ran = 0: a call never waits on a worker that is gone.
 */
#ifndef PGNEAR_PROXY_WORKER_CALL_H
#define PGNEAR_PROXY_WORKER_CALL_H

#include <pthread.h>
#include <stdbool.h>

struct event;
struct worker;
struct worker_call;

/* Runs on the target's thread; its return is passed on as the reply's result. */
typedef int (*worker_fn)(struct worker *w, void *arg);

/* What a done callback is told. */
struct worker_reply {
    void *arg;      /* as given to the call: done releases what fn would have taken */
    void *done_arg; /* as given to the call */
    int to;         /* the target's index; -1 for worker_call_all */
    int asked;      /* workers asked: 1, or all of them */
    int ran;        /* of those, how many ran fn (fewer: some loop had ended) */
    int result;     /* fn's return; for worker_call_all the first nonzero one, else 0 */
};

typedef void (*worker_done_fn)(struct worker *from, const struct worker_reply *r);

/* A worker's incoming calls and answers (struct worker holds one). */
struct worker_mailbox {
    pthread_mutex_t lock;
    struct worker_call *head, *tail; /* under lock */
    bool closed;                     /* under lock: the loop has ended, fn runs here no more */
    bool lock_ready; /* lock was initialised (worker_calls_free may meet a half-made one) */
    int bell[2];     /* one byte when the queue stops being empty */
    struct event *bell_ev;
};

/* Sets up w->calls on w->base; 0, or -1 when out of resources. */
int worker_calls_init(struct worker *w);

/*
 * Called once w's loop has ended, on its thread: answers to w's own calls
 * still queued get their done callbacks; calls waiting to run on w, and
 * any that come later, are answered with ran = 0.  Safe to call again.
 */
void worker_calls_close(struct worker *w);

/*
 * Closes the mailbox if need be and runs the done callbacks of answers that
 * came after it closed.  Every worker's mailbox must be closed (or its
 * loop never have run) before any is freed: daemon_free closes them all
 * first.
 */
void worker_calls_free(struct worker *w);

/*
 * Runs fn(to, arg) on to's loop thread, then done(from, reply) on from's
 * (done may be NULL: nobody hears back, and arg must then own nothing that
 * fn would release).  0; or -1 at once when out of memory, with nothing
 * queued and done never called.
 */
int worker_call(struct worker *from, struct worker *to, worker_fn fn, void *arg,
                worker_done_fn done, void *done_arg);

/*
 * Runs fn(w, arg) on every worker of from's daemon, from included, and done
 * once on from's thread when all have answered.  0, or -1 at once when out
 * of memory (nothing queued).
 */
int worker_call_all(struct worker *from, worker_fn fn, void *arg, worker_done_fn done,
                    void *done_arg);

#endif
