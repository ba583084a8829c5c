/*
 * daemon.c — workers, signals and reloads.
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
#include <openssl/rand.h>

#include "pgnear-build.h"
#include "proxy/admin/metrics.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/pgconn.h"
#include "proxy/worker.h"
#include "routing/health.h"
#include "routing/region.h"
#include "routing/registry.h"

static bool daemon_health_conninfo(void *arg, const struct region_host *h, char *buf, size_t cap)
{
    const struct daemon *d = arg;
    return pgconn_conninfo(d->cfg, h, "postgres", "pgnear health check", buf, cap);
}

static void daemon_health_log(void *arg, const struct region *r, const struct region_host *h,
                              enum health_event ev, const char *why)
{
    switch (ev) {
    case HEALTH_UP:
        log_info(0, "host %s:%d of region %s is up: %s", h->name, h->port, r->name, why);
        return;
    case HEALTH_DOWN:
        log_warn(0, "host %s:%d of region %s is down: %s", h->name, h->port, r->name, why);
        return;
    case HEALTH_TIMEOUT: /* at most one line per host and interval, and only while slow */
        log_info(0, "health check of host %s:%d of region %s %s; it stays up for now", h->name,
                 h->port, r->name, why);
        return;
    }
}

/* Health checks run for the current configuration only, on worker 0's loop. */
static void daemon_start_health(struct daemon *d)
{
    struct config *cfg = d->cfg;
    if (cfg->health_check_interval_ms <= 0)
        return;
    struct health_params params = {cfg->health_check_interval_ms, cfg->health_check_timeout_ms,
                                   cfg->health_check_fall};
    cfg->health = health_start(d->workers[0]->base, &cfg->regions, &params, daemon_health_conninfo,
                               daemon_health_log, d);
    if (cfg->health == NULL)
        log_error(0, "could not start health checks");
}

static void daemon_stop_health(struct daemon *d)
{
    health_stop(d->cfg->health);
    d->cfg->health = NULL;
}

/* A worker whose loop had ended did not take the configuration it was handed. */
static void daemon_config_handed(struct worker *from, const struct worker_reply *r)
{
    if (r->ran == 0)
        config_unref(r->arg);
}

/* Hands cfg to every worker: each gets a reference of its own. */
static void daemon_publish(struct daemon *d, struct config *cfg)
{
    struct worker *w0 = d->workers[0];
    for (int i = 1; i < d->nworkers; i++)
        if (worker_call(w0, d->workers[i], worker_use_config, config_ref(cfg), daemon_config_handed,
                        NULL) != 0) {
            log_error(0, "could not hand the new configuration to worker %d", i);
            config_unref(cfg);
        }
    worker_use_config(w0, config_ref(cfg)); /* this thread's own, at once */
}

/* A reload in progress: the loader thread fills fresh/err, then writes a byte to pipe[1]. */
struct reload_job {
    struct daemon *d;
    char *path;
    struct config_override *overrides; /* a copy: the loader thread reads it */
    int noverrides;
    struct config *fresh;
    char err[1024];
    int pipe[2];
    struct event *done_ev; /* on worker 0's loop */
};

static void reload_job_free(struct reload_job *job)
{
    if (job->done_ev)
        event_free(job->done_ev);
    for (int i = 0; i < 2; i++)
        if (job->pipe[i] >= 0)
            close(job->pipe[i]);
    free(job->path);
    free(job->overrides);
    free(job);
}

static void daemon_reload_start(struct daemon *d);

/* Swaps in a configuration that loaded completely; says what it did in *o. */
static void daemon_reload_swap(struct daemon *d, struct config *fresh, struct reload_outcome *o)
{
    o->nfixed = config_restart_only_changes(d->cfg, fresh, o->fixed, 16);
    for (int i = 0; i < o->nfixed; i++)
        log_warn(0, "setting \"%s\" changed but takes effect only after a restart", o->fixed[i]);
    /* Before any worker sees fresh: regions and hosts it still names keep their state. */
    if (config_keep_restart_only(fresh, d->cfg) != 0 ||
        !registry_bind(d->registry, &fresh->regions)) {
        snprintf(o->error, sizeof(o->error), "out of memory");
        log_error(0, "reload failed: out of memory");
        config_unref(fresh);
        return;
    }
    /* Reopened even under the same name, so that a rotated file is let go. */
    if (log_open(fresh->logfile, d->log_level) != 0)
        log_error(0, "could not open logfile \"%s\": %s", fresh->logfile, strerror(errno));
    daemon_stop_health(d);
    struct config *old = d->cfg;
    d->cfg = fresh;
    daemon_publish(d, fresh);
    config_unref(old);
    daemon_start_health(d);
    o->ok = true;
    log_info(0, "configuration reloaded from %s", fresh->path);
}

/* Tells everyone who waited for this reload; the restart-only names point into the old config's
 * table. */
static void daemon_reload_tell(struct daemon *d, struct reload_waiter *list,
                               const struct reload_outcome *o)
{
    __atomic_add_fetch(&d->reloads, 1, __ATOMIC_RELAXED);
    if (!o->ok)
        __atomic_add_fetch(&d->reloads_failed, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&d->last_reload_at, (int64_t)time(NULL), __ATOMIC_RELAXED);
    __atomic_store_n(&d->last_reload_ok, o->ok, __ATOMIC_RELAXED);
    while (list != NULL) {
        struct reload_waiter *w = list;
        list = w->next;
        w->fn(d, o, w->arg);
        free(w);
    }
}

static void *daemon_reload_thread(void *arg)
{
    struct reload_job *job = arg;
    job->fresh = config_load_overridden(job->path, job->overrides, job->noverrides, job->err,
                                        sizeof(job->err));
    /* The last touch of job: worker 0 frees it once it has read this byte. */
    ssize_t w;
    do
        w = write(job->pipe[1], "L", 1);
    while (w < 0 && errno == EINTR);
    return NULL;
}

static void daemon_reload_done(evutil_socket_t fd, short what, void *arg)
{
    struct reload_job *job = arg;
    struct daemon *d = job->d;
    char c;
    (void)what;
    if (read(fd, &c, 1) != 1)
        return;
    d->reload = NULL;
    struct reload_outcome o = {0};
    if (job->fresh == NULL) {
        snprintf(o.error, sizeof(o.error), "%s", job->err);
        log_error(0, "reload failed, keeping the current configuration: %s", job->err);
    } else {
        daemon_reload_swap(d, job->fresh, &o);
    }
    reload_job_free(job);
    struct reload_waiter *told = d->reload_waiters;
    d->reload_waiters = NULL;
    if (d->reload_again) {
        d->reload_again = false;
        d->reload_waiters = d->again_waiters;
        d->again_waiters = NULL;
        daemon_reload_start(d);
    }
    daemon_reload_tell(d, told, &o);
}

/* A reload that never started: its waiters hear why. */
static void daemon_reload_not_started(struct daemon *d, const char *why)
{
    struct reload_outcome o = {0};
    snprintf(o.error, sizeof(o.error), "%s", why);
    log_error(0, "reload failed: %s", why);
    struct reload_waiter *told = d->reload_waiters;
    d->reload_waiters = NULL;
    daemon_reload_tell(d, told, &o);
}

void daemon_reload(struct daemon *d)
{
    /* SIGHUP and RELOAD read the file as it is: SET's values end here. */
    free(d->overrides);
    d->overrides = NULL;
    d->noverrides = 0;
    daemon_reload_start(d);
}

static void daemon_reload_start(struct daemon *d)
{
    if (d->reload != NULL) {
        if (!d->reload_again)
            log_info(0, "a reload is already running; another one follows it");
        d->reload_again = true;
        return;
    }
    struct reload_job *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        daemon_reload_not_started(d, "out of memory");
        return;
    }
    job->d = d;
    job->pipe[0] = job->pipe[1] = -1;
    if (d->noverrides > 0 &&
        (job->overrides = malloc((size_t)d->noverrides * sizeof(*job->overrides))) != NULL) {
        memcpy(job->overrides, d->overrides, (size_t)d->noverrides * sizeof(*job->overrides));
        job->noverrides = d->noverrides;
    }
    pthread_t t;
    pthread_attr_t attr;
    bool started = false;
    if ((job->path = strdup(d->cfg->path)) != NULL &&
        pipe2(job->pipe, O_CLOEXEC | O_NONBLOCK) == 0 &&
        (job->done_ev = event_new(d->workers[0]->base, job->pipe[0], EV_READ, daemon_reload_done,
                                  job)) != NULL &&
        event_add(job->done_ev, NULL) == 0 && pthread_attr_init(&attr) == 0) {
        /* Detached: a shutdown never waits for a load that hangs (a file on a dead mount). */
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, &attr, daemon_reload_thread, job) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        reload_job_free(job);
        daemon_reload_not_started(d, "could not start loading the configuration");
        return;
    }
    d->reload = job;
}

/* Adds a waiter to the reload to come (the running one read the file too early). */
static int daemon_reload_wait(struct daemon *d, reload_done_fn fn, void *arg)
{
    struct reload_waiter *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    w->fn = fn;
    w->arg = arg;
    struct reload_waiter **list = d->reload != NULL ? &d->again_waiters : &d->reload_waiters;
    w->next = *list;
    *list = w;
    return 0;
}

/* A SET waiting for its reload: the value it replaced, to put back if the reload refuses it. */
struct override_wait {
    reload_done_fn fn;
    void *arg;
    bool had_previous;
    struct config_override previous, mine;
};

static int daemon_find_override(const struct daemon *d, const char *name)
{
    for (int i = 0; i < d->noverrides; i++)
        if (strcmp(d->overrides[i].name, name) == 0)
            return i;
    return -1;
}

static void daemon_override_told(struct daemon *d, const struct reload_outcome *o, void *arg)
{
    struct override_wait *ow = arg;
    int i = daemon_find_override(d, ow->mine.name);
    /* Refused, and still ours (no SIGHUP or later SET replaced it): the previous one again. */
    if (!o->ok && i >= 0 && strcmp(d->overrides[i].value, ow->mine.value) == 0) {
        if (ow->had_previous)
            d->overrides[i] = ow->previous;
        else
            d->overrides[i] = d->overrides[--d->noverrides];
    }
    ow->fn(d, o, ow->arg);
    free(ow);
}

int daemon_override_then(struct daemon *d, const char *name, const char *value, reload_done_fn fn,
                         void *arg)
{
    struct override_wait *ow = calloc(1, sizeof(*ow));
    int i = daemon_find_override(d, name);
    if (ow == NULL)
        return -1;
    if (i < 0) {
        struct config_override *grown =
            realloc(d->overrides, (size_t)(d->noverrides + 1) * sizeof(*grown));
        if (grown == NULL) {
            free(ow);
            return -1;
        }
        d->overrides = grown;
        i = d->noverrides++;
    } else {
        ow->had_previous = true;
        ow->previous = d->overrides[i];
    }
    snprintf(ow->mine.name, sizeof(ow->mine.name), "%s", name);
    snprintf(ow->mine.value, sizeof(ow->mine.value), "%s", value);
    d->overrides[i] = ow->mine;
    ow->fn = fn;
    ow->arg = arg;
    if (daemon_reload_wait(d, daemon_override_told, ow) != 0) {
        free(ow);
        return -1;
    }
    daemon_reload_start(d);
    return 0;
}

int daemon_reload_then(struct daemon *d, reload_done_fn fn, void *arg)
{
    if (daemon_reload_wait(d, fn, arg) != 0)
        return -1;
    daemon_reload(d);
    return 0;
}

/* Runs fn on every worker: the others through their mailboxes, worker 0 (this thread) at once. */
static void daemon_broadcast(struct daemon *d, worker_fn fn)
{
    for (int i = 1; i < d->nworkers; i++)
        if (worker_call(d->workers[0], d->workers[i], fn, NULL, NULL, NULL) != 0)
            log_error(0, "could not reach worker %d: out of memory", i);
    fn(d->workers[0], NULL);
}

static void daemon_on_sigterm(evutil_socket_t sig, short what, void *arg)
{
    log_info(0, "received SIGTERM: no new connections; waiting for sessions to end");
    daemon_broadcast(arg, worker_drain_fn);
}

static void daemon_on_sigint(evutil_socket_t sig, short what, void *arg)
{
    log_info(0, "received SIGINT: shutting down now");
    daemon_broadcast(arg, worker_stop_fn);
}

static void daemon_on_sighup(evutil_socket_t sig, short what, void *arg)
{
    daemon_reload(arg);
}

static int daemon_signals(struct daemon *d)
{
    struct event_base *base = d->workers[0]->base;
    d->sig_term = evsignal_new(base, SIGTERM, daemon_on_sigterm, d);
    d->sig_int = evsignal_new(base, SIGINT, daemon_on_sigint, d);
    d->sig_hup = evsignal_new(base, SIGHUP, daemon_on_sighup, d);
    if (!d->sig_term || !d->sig_int || !d->sig_hup || evsignal_add(d->sig_term, NULL) != 0 ||
        evsignal_add(d->sig_int, NULL) != 0 || evsignal_add(d->sig_hup, NULL) != 0)
        return -1;
    return 0;
}

static void *daemon_worker_thread(void *arg)
{
    struct worker *w = arg;
    worker_run(w);
    __atomic_sub_fetch(&w->d->running, 1, __ATOMIC_RELEASE);
    /* Worker 0 ends last: it hears that this loop has ended. */
    if (worker_call(w, w->d->workers[0], worker_check_drained_fn, NULL, NULL, NULL) != 0)
        log_error(0, "worker %d could not tell worker 0 that it ended", w->index);
    return NULL;
}

/* Other threads leave the signals to the main thread's loop. */
static int daemon_start_threads(struct daemon *d)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = 0;
    for (int i = 1; i < d->nworkers && rc == 0; i++) {
        __atomic_add_fetch(&d->running, 1, __ATOMIC_RELEASE);
        if (pthread_create(&d->workers[i]->thread, NULL, daemon_worker_thread, d->workers[i]) !=
            0) {
            __atomic_sub_fetch(&d->running, 1, __ATOMIC_RELEASE);
            rc = -1;
        } else {
            d->workers[i]->started = true;
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
    if (d->reload != NULL) {
        struct reload_job *job = d->reload;
        char c;
        event_free(job->done_ev);
        job->done_ev = NULL;
        if (read(job->pipe[0], &c, 1) == 1) { /* loaded, never swapped in */
            config_unref(job->fresh);
            reload_job_free(job);
        } /* else its loader thread still runs and owns the job; the process is ending */
        d->reload = NULL;
    }
    if (d->cfg != NULL && d->workers != NULL && d->workers[0] != NULL)
        daemon_stop_health(d);
    metrics_stop(d->metrics);
    d->metrics = NULL;
    free(d->overrides);
    /* Whoever waits for a reload hears that none comes (their workers answer nobody now). */
    struct reload_outcome gone = {.error = "pgnear is shutting down"};
    daemon_reload_tell(d, d->reload_waiters, &gone);
    daemon_reload_tell(d, d->again_waiters, &gone);
    d->reload_waiters = d->again_waiters = NULL;
    /* Every mailbox closed before any is freed: a call queued on one may answer to another. */
    for (int i = 0; d->workers && i < d->nworkers; i++)
        if (d->workers[i] != NULL)
            worker_calls_close(d->workers[i]);
    for (int i = d->nworkers - 1; d->workers && i >= 0; i--)
        worker_free(d->workers[i]);
    free(d->workers);
    if (d->sig_term)
        event_free(d->sig_term);
    if (d->sig_int)
        event_free(d->sig_int);
    if (d->sig_hup)
        event_free(d->sig_hup);
    /*
     * Freeing the signal events gave the signals their default action back:
     * a SIGTERM sent again while pgnear finishes exiting (a supervisor that
     * repeats itself) would kill it with status 143 instead of letting it
     * end with its own.
     */
    signal(SIGTERM, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    cancel_map_free(&d->cancel_keys);
    pthread_mutex_destroy(&d->cancel_lock);
    pthread_mutex_destroy(&d->migrating_lock);
    pool_limits_free(&d->pool_limits);
    log_limit_destroy(&d->accept_log);
    log_limit_destroy(&d->throttle_log);
    log_limit_destroy(&d->http_log);
    auth_throttle_free(&d->auth_throttle);
    config_unref(d->cfg);
    registry_free(d->registry); /* the workers and their sessions let go of every config */
    free(d);
}

static struct daemon *daemon_new(struct config *cfg, int log_level, char *err, size_t errcap)
{
    struct daemon *d = calloc(1, sizeof(*d));
    if (d == NULL) {
        snprintf(err, errcap, "out of memory");
        config_unref(cfg);
        return NULL;
    }
    d->cfg = cfg;
    d->log_level = log_level;
    d->nworkers = cfg->workers;
    pthread_mutex_init(&d->cancel_lock, NULL);
    pthread_mutex_init(&d->migrating_lock, NULL);
    pool_limits_init(&d->pool_limits);
    log_limit_init(&d->accept_log);
    log_limit_init(&d->throttle_log);
    log_limit_init(&d->http_log);
    if (auth_throttle_init(&d->auth_throttle) != 0) {
        snprintf(err, errcap, "could not draw a random secret for the auth throttle");
        pthread_mutex_destroy(&d->cancel_lock);
        pthread_mutex_destroy(&d->migrating_lock);
        pool_limits_free(&d->pool_limits);
        log_limit_destroy(&d->accept_log);
        log_limit_destroy(&d->throttle_log);
        log_limit_destroy(&d->http_log);
        free(d);
        config_unref(cfg);
        return NULL;
    }
    d->workers = calloc((size_t)d->nworkers, sizeof(*d->workers));
    d->registry = registry_new();
    if (d->workers == NULL || d->registry == NULL || !registry_bind(d->registry, &cfg->regions) ||
        cancel_map_init(&d->cancel_keys, 1024) != 0 ||
        RAND_bytes(d->mock_secret, sizeof(d->mock_secret)) != 1) {
        snprintf(err, errcap, "out of memory");
        daemon_free(d);
        return NULL;
    }
    for (int i = 0; i < d->nworkers; i++)
        if ((d->workers[i] = worker_new(d, i, cfg, err, errcap)) == NULL) {
            daemon_free(d);
            return NULL;
        }
    if (daemon_signals(d) != 0) {
        snprintf(err, errcap, "could not install signal handlers");
        daemon_free(d);
        return NULL;
    }
    if (cfg->metrics_addr[0] != '\0' &&
        (d->metrics = metrics_start(d->workers[0], cfg->metrics_addr, err, errcap)) == NULL) {
        daemon_free(d);
        return NULL;
    }
    return d;
}

int daemon_run(struct config *cfg, int log_level, bool background)
{
    char err[1024];
    struct daemon *d = daemon_new(cfg, log_level, err, sizeof(err));
    if (d == NULL) {
        log_msg(LOG_FATAL, 0, "%s", err);
        return 1;
    }
    /* Fork before any thread exists; the listeners are open already. */
    if (background && daemonize() != 0) {
        log_msg(LOG_FATAL, 0, "could not run in the background");
        daemon_free(d);
        return 1;
    }
    daemon_start_health(d);
    if (daemon_start_threads(d) != 0) {
        log_msg(LOG_FATAL, 0, "could not start the worker threads");
        daemon_broadcast(d, worker_stop_fn);
    }
    log_info(0, "pgnear %s started (pid %d), %d worker%s, %zu regions, default region %s",
             PACKAGE_VERSION, (int)getpid(), d->nworkers, d->nworkers == 1 ? "" : "s",
             cfg->regions.count, cfg->default_region_ptr->name);
    worker_run(d->workers[0]);
    for (int i = 1; i < d->nworkers; i++)
        if (d->workers[i]->started)
            pthread_join(d->workers[i]->thread, NULL);
    daemon_free(d);
    return 0;
}
