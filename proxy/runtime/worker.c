/*
 * worker.c — one event loop: what it hosts (the parts the process hands
 * down: sessions, pool, migrations, ...), drain and stop, and what the
 * main thread asks of it through worker_call.
 */
#include "proxy/runtime/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/prepared.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/uring.h"
#include "routing/health.h"

/* Does any part (a running migration) still hold the draining loop up? */
static bool worker_parts_busy(const struct worker *w)
{
    for (int i = 0; i < w->shared->nparts; i++)
        if (w->shared->parts[i]->busy != NULL && w->shared->parts[i]->busy(w))
            return true;
    return false;
}

/* Runs the hook named (a member of struct worker_part) of every part that has one, in order. */
#define WORKER_PARTS_RUN(w, hook)                                                                  \
    do {                                                                                           \
        for (int i_ = 0; i_ < (w)->shared->nparts; i_++)                                           \
            if ((w)->shared->parts[i_]->hook != NULL)                                              \
                (w)->shared->parts[i_]->hook(w);                                                   \
    } while (0)

/*
 * The ring's receives stopped a loop turn at most, once its load no
 * longer pays (uring_recv_quiet): a crowd's are ten thousand.
 */
#define WORKER_QUIET_BATCH 64
/* Batches (of receives of 96 bytes each) after which the heap is worth trimming. */
#define WORKER_QUIET_TRIM_TURNS 16

/* The loop ends after the callback running now (both loops: see worker_loop_with_ring). */
static void worker_end_loop(struct worker *w)
{
    w->loop_ended = true;
    event_base_loopbreak(w->base);
}

static void worker_end_loop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    worker_end_loop(arg);
}

void worker_check_drained(struct worker *w)
{
    /*
     * Worker 0 keeps the signals: it ends last, once the other loops have.
     * A migration stopping on this loop must end first: sessions of other
     * workers may be held by its pause step until it does.
     */
    if (w->draining && worker_client_count(w) == 0 && !worker_parts_busy(w) &&
        (w->index != 0 || __atomic_load_n(&w->shared->running, __ATOMIC_ACQUIRE) == 0)) {
        if (w->index == 0)
            log_info(0, "all sessions ended; shutting down");
        else
            log_info(0, "worker %d: all sessions ended", w->index);
        worker_end_loop(w);
    }
}

/* Tells every client why, then stops; used by SIGINT and the drain timeout. */
static void worker_stop_now(struct worker *w)
{
    w->draining = true;
    WORKER_PARTS_RUN(w, stop);
    /* Sessions still flushing their last error get a moment; then the loop ends. */
    struct timeval tv = {0, 200000};
    if (event_base_once(w->base, -1, EV_TIMEOUT, worker_end_loop_cb, w, &tv) != 0)
        worker_end_loop(w); /* out of memory: no moment */
}

/* shutdown_timeout reached: the sessions left are told why and closed. */
static void worker_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    log_info(0, "worker %d: shutdown timeout reached; closing %zu remaining sessions", w->index,
             worker_client_count(w));
    worker_stop_now(w);
}

/*
 * No new sessions; the loop ends once the last one has.  Bounded by
 * shutdown_timeout, unless wait_all: then sessions end on their own, and
 * the timer a SIGTERM set before is taken back.
 */
static void worker_drain(struct worker *w, bool wait_all)
{
    if (wait_all && w->drain_timer != NULL) {
        event_free(w->drain_timer);
        w->drain_timer = NULL;
    }
    if (w->draining)
        return;
    w->draining = true;
    WORKER_PARTS_RUN(w, drain);
    struct timeval tv = {w->cfg->shutdown_timeout_ms / 1000,
                         (w->cfg->shutdown_timeout_ms % 1000) * 1000};
    if (!wait_all && (w->drain_timer = evtimer_new(w->base, worker_drain_timeout, w)) != NULL)
        evtimer_add(w->drain_timer, &tv);
    worker_check_drained(w);
}

int worker_use_config(struct worker *w, void *cfg)
{
    /* Sessions keep the configuration they started under; new ones get this. */
    config_unref(w->cfg);
    w->cfg = cfg;
    WORKER_PARTS_RUN(w, reconfigured);
    return 0;
}

int worker_drain_fn(struct worker *w, void *unused)
{
    worker_drain(w, false);
    return 0;
}

int worker_drain_wait_fn(struct worker *w, void *unused)
{
    worker_drain(w, true);
    return 0;
}

int worker_stop_fn(struct worker *w, void *unused)
{
    worker_stop_now(w);
    return 0;
}

int worker_check_drained_fn(struct worker *w, void *unused)
{
    worker_check_drained(w);
    return 0;
}

/* On worker 0, where the checks run: the current checker hurries again. */
static int worker_wake_checker(struct worker *w, void *unused)
{
    (void)unused;
    health_wake(w->cfg->health);
    return 0;
}

void worker_wake_checks(struct worker *from)
{
    /* Out of memory: no hurry, but the regular checks still come each health_check_interval. */
    (void)worker_call(from, from->shared->workers[0], worker_wake_checker, NULL, NULL, NULL);
}

int worker_host_fenced_fn(struct worker *w, void *unused)
{
    (void)unused;
    WORKER_PARTS_RUN(w, host_fenced);
    return 0;
}

/*
 * A worker and its loop, lists and parts, not yet running; NULL with err set,
 * anything made freed.
 */
/*
 * io_backend = auto takes the ring where the kernel gives one and says
 * once why not otherwise; io_uring insists (the worker fails to start).
 */
static int worker_open_ring(struct worker *w, char *err, size_t errcap)
{
    if (w->cfg->io_backend == IO_BACKEND_EPOLL)
        return 0;
    char why[160];
    w->uring = uring_new(w->base, why, sizeof(why));
    if (w->uring != NULL) {
        if (w->cfg->io_backend == IO_BACKEND_URING)
            uring_receive_always(w->uring, true);
        return 0;
    }
    if (w->cfg->io_backend == IO_BACKEND_URING) {
        snprintf(err, errcap, "io_backend = io_uring: worker %d: %s", w->index, why);
        return -1;
    }
    if (w->index == 0)
        log_info(0, "io_backend = auto: no io_uring (%s); sockets send through epoll", why);
    return 0;
}

/* The catalog's hosts hook: where the worker's shared table says a database lives now. */
static size_t worker_placed_hosts(void *arg, const struct config *cfg, const char *database,
                                  enum pgconn_pick pick, const struct region_host **out, size_t cap)
{
    struct worker *w = arg;
    return placement_hosts(&w->shared->placement, cfg, database, pick, out, cap);
}

struct worker *worker_new(struct shared *shared, int index, struct config *cfg, char *err,
                          size_t errcap)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    w->shared = shared;
    w->index = index;
    w->cfg = config_ref(cfg);
    w->calls.bell[0] = w->calls.bell[1] = -1; /* worker_free may come before worker_calls_init */
    list_init(&w->login_sessions);
    list_init(&w->waiting_sessions);
    list_init(&w->active_sessions);
    list_init(&w->admin_sessions);
    list_init(&w->login_servers);
    list_init(&w->active_servers);
    list_init(&w->used_servers);
    list_init(&w->idle_servers);
    list_init(&w->server_waiters);
    list_init(&w->ws_keepalives);
    list_init(&w->cancel_conns);
    slab_init(&w->sessions);
    slab_init(&w->logins);
    /* A crowd logs in 100 at a time, some 9 pages: their churn is kept, and trimmed as it ends. */
    slab_keep_spares(&w->logins, 16);
    w->base = event_base_new();
    linger_init(&w->lingering, w->base);
    w->relay_block = malloc(RELAY_BLOCK_SIZE);
    if (w->base == NULL || w->relay_block == NULL || buffer_pool_init(&w->buffers) != 0 ||
        crowd_memory_init(&w->crowd, w->base) != 0 || worker_calls_init(w) != 0 ||
        auth_lookup_pool_init(&w->auth_lookups, w->base) != 0 ||
        func_catalog_init(&w->funcs, w->base, &shared->func_generation, worker_placed_hosts, w) !=
            0 ||
        close_queue_init(&w->closing, w->base, CLOSE_QUEUE_CAP) != 0) {
        snprintf(err, errcap, "could not create the event loop of worker %d", index);
        worker_free(w);
        return NULL;
    }
    if (worker_open_ring(w, err, errcap) != 0) {
        worker_free(w);
        return NULL;
    }
    for (int i = 0; i < shared->nparts; i++)
        if (shared->parts[i]->start != NULL && shared->parts[i]->start(w, err, errcap) != 0) {
            worker_free(w);
            return NULL;
        }
    return w;
}

/*
 * Ring turns in a row, with only the ring's work waiting, before
 * libevent's loop looks at its descriptors and timers again.
 */
#define WORKER_RING_TURNS 8

/*
 * With a ring, each loop turn ends by submitting the sends it queued, in
 * one system call, and telling the completions that came at once; the
 * loop waits only when none is left queued.  While only the ring has work
 * (bytes that came while the turn ran) and nothing of libevent's is
 * active, the ring's next turn comes first, without libevent's pass and
 * its epoll_wait, up to WORKER_RING_TURNS in a row.  It ends when the
 * worker ends it (worker_end_loop), as the plain loop does: the mailbox's
 * event keeps either from running out of events.
 */
static int worker_loop_with_ring(struct worker *w)
{
    int rc = uring_begin(w->uring);
    if (rc < 0) {
        log_error(0, "worker %d: could not enable its io_uring: %s", w->index, strerror(-rc));
        return -1;
    }
    bool quieting = false; /* the idle sockets move back to readiness, a batch a turn */
    int quiet_turns = 0;
    for (int ring_turns = 0;;) {
        uring_turn(w->uring);
        bool sleep = uring_sleep(w->uring);
        double reads;
        if (sleep && uring_weigh_wakeup(w->uring, &reads)) {
            log_debug(0, "worker %d: sockets now receive %s (%.2f reads a wake-up)", w->index,
                      uring_recv_wanted(w->uring) ? "through its io_uring" : "on their readiness",
                      reads);
            /* Those that read would move as they next read; the idle ones never would. */
            quieting = !uring_recv_wanted(w->uring);
        }
        if (quieting) {
            quieting =
                !uring_recv_wanted(w->uring) && uring_recv_quiet(w->uring, WORKER_QUIET_BATCH);
            /* A crowd's receives gone, their memory in the middle of the heap: given back. */
            if (++quiet_turns == WORKER_QUIET_TRIM_TURNS)
                crowd_memory_trim_soon(&w->crowd);
            if (!quieting)
                quiet_turns = 0;
        }
        if (!sleep && ++ring_turns < WORKER_RING_TURNS &&
            event_base_get_num_events(w->base, EVENT_BASE_COUNT_ACTIVE) == 0)
            continue;
        ring_turns = 0;
        rc = event_base_loop(w->base, sleep && !quieting ? EVLOOP_ONCE : EVLOOP_NONBLOCK);
        uring_awake(w->uring);
        if (rc != 0 || w->loop_ended)
            return rc < 0 ? -1 : 0;
    }
}

/* How long an ending worker waits for its ring's cancelled requests to end. */
#define WORKER_RING_QUIESCE_MS 2000

int worker_run(struct worker *w)
{
    log_set_thread_worker(w->index); /* this thread's lines say whose they are */
    int rc = w->uring != NULL ? worker_loop_with_ring(w) : event_base_dispatch(w->base);
    /* On this thread, before it ends: see uring_quiesce. */
    unsigned left = w->uring != NULL ? uring_quiesce(w->uring, WORKER_RING_QUIESCE_MS) : 0;
    if (left > 0)
        log_error(0, "worker %d: %u io_uring requests still in flight %d ms after their cancel",
                  w->index, left, WORKER_RING_QUIESCE_MS);
    worker_calls_close(w);
    return rc;
}

/*
 * Frees the worker and its parts; NULL is fine. Only once its loop has ended
 * and no other worker calls it.
 */
void worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    WORKER_PARTS_RUN(w, free);
    auth_lookup_pool_close(&w->auth_lookups);
    func_catalog_close(&w->funcs);
    close_queue_free(&w->closing);
    linger_free(&w->lingering);
    uring_free(w->uring); /* after the sessions: their sends in flight are its orphans now */
    if (w->drain_timer)
        event_free(w->drain_timer);
    worker_calls_free(w);
    crowd_memory_free(&w->crowd);
    if (w->base)
        event_base_free(w->base);
    config_unref(w->cfg);
    prep_registry_free(w->prep_registry); /* every session and connection is gone */
    free(w->relay_block);
    buffer_pool_free(&w->buffers);  /* every socket gave its buffers back */
    latency_book_free(&w->latency); /* every connection that pointed into it is gone */
    slab_destroy(&w->sessions);     /* every session is gone */
    slab_destroy(&w->logins);
    free(w);
}

int64_t worker_clock_us(struct worker *w)
{
    struct timeval tv;
    if (w->base == NULL || event_base_gettimeofday_cached(w->base, &tv) != 0)
        return wall_clock_us();
    return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}
