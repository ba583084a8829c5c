/*
 * daemon.c — the process: its workers, signals, and the wiring of the
 * rooms below it (what workers share, the reloader, /metrics).
 *
 * Worker 0 runs on the main thread and owns the signal handlers and the
 * health checks; the others are threads with event loops of their own,
 * each accepting on the same TCP ports (SO_REUSEPORT).  The main thread
 * reaches them through their control pipes.
 */
#include "proxy/daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "pgnear-build.h"
#include "proxy/admin/metrics.h"
#include "proxy/admin/migrations.h"
#include "proxy/base/config.h"
#include "proxy/base/fd_limit.h"
#include "proxy/base/log.h"
#include "proxy/login/flow.h"
#include "proxy/dbmove/follow.h"
#include "proxy/pool/pool.h"
#include "proxy/pool/pool_warm.h"
#include "proxy/runtime/reload.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/uring.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel.h"
#include "proxy/session/notify_hub.h"
#include "proxy/session/session.h"
#include "routing/region.h"

/*
 * What each worker hosts, in the order their hooks run: sessions first
 * (listeners close before anything else at a drain), the pool's kept
 * connections after them, then what may still hang on a session.
 */
static const struct worker_part *const daemon_parts[] = {
    &session_part,    &notify_hub_part, &pool_part,          &pool_warm_part,
    &migrations_part, &cancel_part,     &dbmove_follow_part,
};

struct daemon {
    struct shared shared; /* handed to every worker as w->shared */
    struct reloader *reload;
    struct event *sig_term, *sig_int, *sig_hup, *sig_usr2;
    struct metrics_server *metrics; /* /metrics on worker 0, or NULL */
    /*
     * shutdown_ready_grace: after the first stop signal, /readyz answers 503
     * (shared.stopping) while the listeners still take connections; then the
     * workers hear after_grace, the strongest stop asked meanwhile.
     */
    struct event *grace;
    worker_fn after_grace; /* non-NULL during the grace */
    const char *after_what;
    bool grace_over; /* a stop went to the workers: later signals go at once */
};

/* Runs fn on every worker: the others through their mailboxes, worker 0 (this thread) at once. */
static void daemon_broadcast(struct daemon *d, worker_fn fn)
{
    struct shared *sh = &d->shared;
    for (int i = 1; i < sh->nworkers; i++)
        if (worker_call(sh->workers[0], sh->workers[i], fn, NULL, NULL, NULL) != 0)
            log_error(0, "could not reach worker %d: out of memory", i);
    fn(sh->workers[0], NULL);
}

/* How far a stop goes: SIGINT's beyond SIGUSR2's (no timeout) beyond SIGTERM's. */
static int daemon_stop_rank(worker_fn fn)
{
    return fn == worker_stop_fn ? 3 : fn == worker_drain_wait_fn ? 2 : 1;
}

/* The grace is over (or cut short): the workers hear the stop; the listeners close. */
static void daemon_grace_over(evutil_socket_t fd, short what, void *arg)
{
    struct daemon *d = arg;
    worker_fn fn = d->after_grace;
    log_info(0, "shutdown_ready_grace is over: %s", d->after_what);
    d->after_grace = NULL;
    d->grace_over = true;
    daemon_broadcast(d, fn);
}

/*
 * A stop signal.  /readyz turns 503 at once; with shutdown_ready_grace the
 * workers hear fn only after it (orchestrators and balancers stop sending
 * first, and connections that come meanwhile are still taken).  A stop
 * signal during the grace is kept for its end if it goes further; SIGINT
 * ends the grace at once.
 */
static void daemon_stop(struct daemon *d, const char *sig, worker_fn fn, const char *what)
{
    __atomic_store_n(&d->shared.stopping, 1, __ATOMIC_RELEASE);
    if (d->after_grace != NULL) {
        if (daemon_stop_rank(fn) > daemon_stop_rank(d->after_grace)) {
            d->after_grace = fn;
            d->after_what = what;
        }
        log_info(0, "received %s during shutdown_ready_grace%s", sig,
                 fn == worker_stop_fn ? ": ending it now" : "");
        if (fn == worker_stop_fn) {
            evtimer_del(d->grace);
            daemon_grace_over(-1, 0, d);
        }
        return;
    }
    int ms = d->shared.workers[0]->cfg->shutdown_ready_grace_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (d->grace_over || ms <= 0 || d->grace == NULL || evtimer_add(d->grace, &tv) != 0) {
        log_info(0, "received %s: %s", sig, what);
        d->grace_over = true;
        daemon_broadcast(d, fn);
        return;
    }
    d->after_grace = fn;
    d->after_what = what;
    log_info(0,
             "received %s: not ready from now on (/readyz answers 503); connections are taken "
             "for shutdown_ready_grace (%d ms) more, then %s",
             sig, ms, fn == worker_stop_fn ? "pgnear stops" : "the listeners close");
}

static void daemon_on_sigterm(evutil_socket_t sig, short what, void *arg)
{
    daemon_stop(arg, "SIGTERM", worker_drain_fn, "no new connections; waiting for sessions to end");
}

static void daemon_on_sigusr2(evutil_socket_t sig, short what, void *arg)
{
    daemon_stop(arg, "SIGUSR2", worker_drain_wait_fn,
                "no new connections; waiting for sessions to end, however long they take");
}

static void daemon_on_sigint(evutil_socket_t sig, short what, void *arg)
{
    daemon_stop(arg, "SIGINT", worker_stop_fn, "shutting down now");
}

static void daemon_on_sighup(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    reload_file(d->reload);
}

static int daemon_signals(struct daemon *d)
{
    struct event_base *base = d->shared.workers[0]->base;
    d->sig_term = evsignal_new(base, SIGTERM, daemon_on_sigterm, d);
    d->sig_int = evsignal_new(base, SIGINT, daemon_on_sigint, d);
    d->sig_hup = evsignal_new(base, SIGHUP, daemon_on_sighup, d);
    d->sig_usr2 = evsignal_new(base, SIGUSR2, daemon_on_sigusr2, d);
    d->grace = evtimer_new(base, daemon_grace_over, d);
    if (!d->grace || !d->sig_term || !d->sig_int || !d->sig_hup || !d->sig_usr2 ||
        evsignal_add(d->sig_term, NULL) != 0 || evsignal_add(d->sig_int, NULL) != 0 ||
        evsignal_add(d->sig_hup, NULL) != 0 || evsignal_add(d->sig_usr2, NULL) != 0)
        return -1;
    return 0;
}

static void *daemon_worker_thread(void *arg)
{
    struct worker *w = arg;
    worker_run(w);
    __atomic_sub_fetch(&w->shared->running, 1, __ATOMIC_RELEASE);
    /* Worker 0 ends last: it hears that this loop has ended. */
    if (worker_call(w, w->shared->workers[0], worker_check_drained_fn, NULL, NULL, NULL) != 0)
        log_error(0, "worker %d could not tell worker 0 that it ended", w->index);
    return NULL;
}

/* Other threads leave the signals to the main thread's loop. */
/*
 * The workers take no signal: the main thread's loop handles them all.
 * Faults are the exception: raised by the thread that made them, blocked
 * they would kill the process before a sanitizer's handler (or a debugger)
 * could say where.
 */
static int daemon_start_threads(struct daemon *d)
{
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP};
    sigset_t all, old;
    sigfillset(&all);
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
        sigdelset(&all, faults[i]);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    struct shared *sh = &d->shared;
    int rc = 0;
    for (int i = 1; i < sh->nworkers && rc == 0; i++) {
        __atomic_add_fetch(&sh->running, 1, __ATOMIC_RELEASE);
        if (pthread_create(&sh->workers[i]->thread, NULL, daemon_worker_thread, sh->workers[i]) !=
            0) {
            __atomic_sub_fetch(&sh->running, 1, __ATOMIC_RELEASE);
            rc = -1;
        } else {
            sh->workers[i]->started = true;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

static int daemonize(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    if (setsid() < 0)
        return -1;
    int fd = open("/dev/null", O_RDWR);
    if (fd < 0)
        return -1;
    dup2(fd, STDIN_FILENO);
    dup2(fd, STDOUT_FILENO);
    dup2(fd, STDERR_FILENO);
    if (fd > STDERR_FILENO)
        close(fd);
    return 0;
}

static void daemon_free(struct daemon *d)
{
    struct shared *sh = &d->shared;
    if (d->sig_term)
        event_free(d->sig_term);
    if (d->sig_int)
        event_free(d->sig_int);
    if (d->sig_hup)
        event_free(d->sig_hup);
    if (d->sig_usr2)
        event_free(d->sig_usr2);
    if (d->grace)
        event_free(d->grace);
    /*
     * Freeing the signal events gave the signals their default action back:
     * a SIGTERM sent again while pgnear finishes exiting (a supervisor that
     * repeats itself) would kill it with status 143 instead of letting it
     * end with its own.
     */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    reload_stop(d->reload);
    metrics_stop(d->metrics);
    d->metrics = NULL;
    /* Every mailbox closed before any is freed: a call queued on one may answer to another. */
    for (int i = 0; sh->workers && i < sh->nworkers; i++)
        if (sh->workers[i] != NULL)
            worker_calls_close(sh->workers[i]);
    for (int i = sh->nworkers - 1; sh->workers && i >= 0; i--)
        worker_free(sh->workers[i]);
    shared_destroy(sh);
    reloader_free(d->reload);
    free(d);
}

static struct daemon *daemon_new(struct config *cfg, int log_level, char *err, size_t errcap)
{
    struct daemon *d = calloc(1, sizeof(*d));
    if (d == NULL || shared_init(&d->shared, cfg->workers, err, errcap) != 0) {
        if (d == NULL)
            snprintf(err, errcap, "out of memory");
        free(d);
        config_unref(cfg);
        return NULL;
    }
    struct shared *sh = &d->shared;
    if ((d->reload = reloader_new(sh, cfg, log_level)) == NULL) {
        snprintf(err, errcap, "out of memory");
        shared_destroy(sh);
        free(d);
        config_unref(cfg);
        return NULL;
    }
    sh->reload = d->reload;
    sh->flow = &login_flow;
    sh->parts = daemon_parts;
    sh->nparts = (int)(sizeof(daemon_parts) / sizeof(daemon_parts[0]));
    for (int i = 0; i < sh->nworkers; i++)
        if ((sh->workers[i] = worker_new(sh, i, cfg, err, errcap)) == NULL) {
            daemon_free(d);
            return NULL;
        }
    if (daemon_signals(d) != 0) {
        snprintf(err, errcap, "could not install signal handlers");
        daemon_free(d);
        return NULL;
    }
    if (cfg->metrics_addr[0] != '\0' &&
        (d->metrics = metrics_start(sh->workers[0], cfg->metrics_addr, err, errcap)) == NULL) {
        daemon_free(d);
        return NULL;
    }
    return d;
}

/* How the workers send and receive, for the start line. */
static const char *daemon_io_words(const struct uring *u, const struct config *cfg)
{
    if (u == NULL)
        return "sending through epoll";
    if (!uring_can_recv(u))
        return "sending through io_uring";
    return cfg->io_backend == IO_BACKEND_URING
               ? "sending and receiving through io_uring"
               : "sending through io_uring, receiving through it under load";
}

/* libevent's own warnings, through the log instead of its default, stderr. */
static void daemon_libevent_log(int severity, const char *msg)
{
    enum log_level level = severity == EVENT_LOG_DEBUG  ? LOG_DEBUG
                           : severity == EVENT_LOG_MSG  ? LOG_INFO
                           : severity == EVENT_LOG_WARN ? LOG_WARNING
                                                        : LOG_ERROR;
    log_msg(level, 0, "libevent: %s", msg);
}

int daemon_run(struct config *cfg, int log_level, bool background)
{
    char err[1024];
    event_set_log_callback(daemon_libevent_log);
    fd_limit_check(cfg);
    struct daemon *d = daemon_new(cfg, log_level, err, sizeof(err));
    if (d == NULL) {
        log_msg(LOG_FATAL, 0, "%s", err);
        return 1;
    }
    struct shared *sh = &d->shared;
    /* Fork before any thread exists; the listeners are open already. */
    if (background && daemonize() != 0) {
        log_msg(LOG_FATAL, 0, "could not run in the background");
        daemon_free(d);
        return 1;
    }
    reload_start_health(d->reload);
    if (daemon_start_threads(d) != 0) {
        log_msg(LOG_FATAL, 0, "could not start the worker threads");
        daemon_broadcast(d, worker_stop_fn);
    }
    log_info(0, "pgnear %s started (pid %d), %d worker%s %s, %zu regions, default region %s",
             PACKAGE_VERSION, (int)getpid(), sh->nworkers, sh->nworkers == 1 ? "" : "s",
             daemon_io_words(sh->workers[0]->uring, cfg), cfg->regions.count,
             cfg->default_region_ptr->name);
    worker_run(sh->workers[0]);
    for (int i = 1; i < sh->nworkers; i++)
        if (sh->workers[i]->started)
            pthread_join(sh->workers[i]->thread, NULL);
    daemon_free(d);
    return 0;
}
