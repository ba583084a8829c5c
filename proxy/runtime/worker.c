/*
 * worker.c — one event loop: its listeners and sessions, drain and stop,
 * and what the main thread asks of it through worker_call.
 */
#include "proxy/worker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxy/cancel.h"
#include "proxy/config.h"
#include "proxy/daemon.h"
#include "proxy/listener.h"
#include "proxy/log.h"
#include "proxy/admin/migrations.h"
#include "proxy/pool.h"
#include "proxy/pool_warm.h"
#include "proxy/session.h"

void worker_check_drained(struct worker *w)
{
    /*
     * Worker 0 keeps the signals: it ends last, once the other loops have.
     * A migration stopping on this loop must end first: sessions of other
     * workers may be held by its pause step until it does.
     */
    if (w->draining && worker_client_count(w) == 0 && w->migration == NULL &&
        (w->index != 0 || __atomic_load_n(&w->d->running, __ATOMIC_ACQUIRE) == 0)) {
        if (w->index == 0)
            log_info(0, "all sessions ended; shutting down");
        else
            log_info(0, "worker %d: all sessions ended", w->index);
        event_base_loopbreak(w->base);
    }
}

static void worker_close_sessions(struct list *l, const char *sqlstate, const char *msg)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, l)
    {
        struct session *s = list_entry(pos, struct session, node);
        session_fail(s, sqlstate, msg, NULL, NULL);
    }
}

/* Tells every client why, then stops; used by SIGINT and the drain timeout. */
static void worker_stop_now(struct worker *w)
{
    w->draining = true;
    listener_close(w->listeners);
    w->listeners = NULL;
    pool_close_idle(w);
    worker_close_sessions(&w->login_sessions, "57P01",
                          "terminating connection due to administrator command");
    worker_close_sessions(&w->waiting_sessions, "57P01",
                          "terminating connection due to administrator command");
    worker_close_sessions(&w->active_sessions, "57P01",
                          "terminating connection due to administrator command");
    worker_close_sessions(&w->admin_sessions, "57P01",
                          "terminating connection due to administrator command");
    /* Sessions still flushing their last error get a moment; then the loop ends. */
    struct timeval tv = {0, 200000};
    event_base_loopexit(w->base, &tv);
}

static void worker_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    log_info(0, "worker %d: shutdown timeout reached; closing %zu remaining sessions", w->index,
             worker_client_count(w));
    worker_stop_now(w);
}

static void worker_drain(struct worker *w)
{
    if (w->draining)
        return;
    w->draining = true;
    /* Closed, not paused: a paused socket would leave new clients queued and unanswered. */
    listener_close(w->listeners);
    w->listeners = NULL;
    /* Kept server connections neither: a connection given back from now on is closed. */
    pool_close_idle(w);
    /* Admin sessions do not hold a shutdown up. */
    worker_close_sessions(&w->admin_sessions, "57P01",
                          "terminating connection because pgnear is shutting down");
    struct timeval tv = {w->cfg->shutdown_timeout_ms / 1000,
                         (w->cfg->shutdown_timeout_ms % 1000) * 1000};
    w->drain_timer = evtimer_new(w->base, worker_drain_timeout, w);
    if (w->drain_timer)
        evtimer_add(w->drain_timer, &tv);
    worker_check_drained(w);
}

int worker_use_config(struct worker *w, void *cfg)
{
    /* Sessions keep the configuration they started under; new ones get this. */
    config_unref(w->cfg);
    w->cfg = cfg;
    return 0;
}

int worker_drain_fn(struct worker *w, void *unused)
{
    worker_drain(w);
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

struct worker *worker_new(struct daemon *d, int index, struct config *cfg, char *err, size_t errcap)
{
    struct worker *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    w->d = d;
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
    list_init(&w->cancel_conns);
    w->base = event_base_new();
    w->relay_block = malloc(RELAY_BLOCK_SIZE);
    if (w->base == NULL || w->relay_block == NULL || worker_calls_init(w) != 0 ||
        pool_init(w) != 0 || auth_lookup_pool_init(&w->auth_lookups, w->base) != 0 ||
        close_queue_init(&w->closing, w->base, CLOSE_QUEUE_CAP) != 0) {
        snprintf(err, errcap, "could not create the event loop of worker %d", index);
        worker_free(w);
        return NULL;
    }
    /* Every worker listens on the TCP addresses (SO_REUSEPORT); the Unix socket is worker 0's. */
    w->listeners = listener_open(w, cfg, d->nworkers > 1, index == 0, err, errcap);
    if (w->listeners == NULL) {
        worker_free(w);
        return NULL;
    }
    return w;
}

int worker_run(struct worker *w)
{
    int rc = event_base_dispatch(w->base);
    worker_calls_close(w);
    return rc;
}

void worker_free(struct worker *w)
{
    if (w == NULL)
        return;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->login_sessions)
        session_close(list_entry(pos, struct session, node), "shutdown");
    list_for_each_safe(pos, tmp, &w->waiting_sessions)
        session_close(list_entry(pos, struct session, node), "shutdown");
    list_for_each_safe(pos, tmp, &w->active_sessions)
        session_close(list_entry(pos, struct session, node), "shutdown");
    list_for_each_safe(pos, tmp, &w->admin_sessions)
        session_close(list_entry(pos, struct session, node), "shutdown");
    pool_free(w);
    pool_warm_free(w);
    migrations_worker_end(w);
    cancel_close_all(w);
    auth_lookup_pool_close(&w->auth_lookups);
    listener_close(w->listeners);
    close_queue_free(&w->closing);
    if (w->drain_timer)
        event_free(w->drain_timer);
    worker_calls_free(w);
    if (w->base)
        event_base_free(w->base);
    config_unref(w->cfg);
    free(w->relay_block);
    free(w);
}
