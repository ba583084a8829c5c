/*
 * reload.c — the configuration in force, and reloading it (SIGHUP,
 * RELOAD, SET) without stopping a session: the file, city table, GeoIP
 * databases and TLS files load on a thread of their own; worker 0 swaps
 * the result in and hands each worker a reference.  Health checks run for
 * the configuration in force, on worker 0's loop.
 */
#include "proxy/runtime/reload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxy/base/config.h"
#include "proxy/base/dns_lookup.h"
#include "proxy/base/fd_limit.h"
#include "proxy/base/log.h"
#include "proxy/base/pgconn.h"
#include "proxy/runtime/dns_follow.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "routing/health.h"
#include "routing/patroni.h"
#include "routing/region.h"
#include "routing/registry.h"

/* One who waits for a reload's outcome. */
struct reload_waiter {
    struct reload_waiter *next;
    reload_done_fn fn;
    void *arg;
};

struct reloader {
    struct shared *shared;
    struct config *cfg; /* the current configuration (one reference) */
    /* Health and admin state by region and host name, across reloads. */
    struct registry *registry;
    int log_level;                       /* from the command line; kept across reloads */
    struct reload_job *job;              /* a configuration being loaded aside, or NULL */
    bool again;                          /* a reload was asked for while one was running */
    struct reload_waiter *waiters;       /* of the running reload */
    struct reload_waiter *again_waiters; /* of the one that follows it */
    unsigned reloads, reloads_failed;    /* counted on worker 0, read by anyone (atomic) */
    int64_t last_reload_at;              /* Unix time (atomic) */
    bool last_reload_ok;                 /* (atomic) */
    /* SET's values, in force until the next SIGHUP or RELOAD. */
    struct config_override *overrides;
    int noverrides;
    /* Patroni's members that no region lists, added to theirs at each load (routing/patroni.h). */
    struct patroni_source *patroni;
    struct patroni_place places[PATRONI_PLACES_MAX];
    size_t nplaces;
    struct patroni_told patroni_told; /* members left out, said once across reloads */
    struct dns_follower *dns;         /* the configuration's host names asked again */
    struct dns_follow_told dns_told;  /* names that stopped resolving, said once across reloads */
};

/*
 * health's conninfo hook: checks log in to "postgres" with the configuration
 * the checks were started with.
 */
static bool reload_health_conninfo(void *arg, const struct region_host *h, char *buf, size_t cap)
{
    const struct reloader *rl = arg;
    return pgconn_conninfo(rl->cfg, h, "postgres", "pgnear health check", buf, cap);
}

/* Every worker's sessions on a host just fenced leave it (the parts' host_fenced hooks). */
static void reload_tell_fenced(struct reloader *rl)
{
    struct worker *w0 = rl->shared->workers[0];
    if (worker_call_all(w0, worker_host_fenced_fn, NULL, NULL, NULL) != 0)
        log_error(0, "could not ask the workers to move the sessions of a fenced host: out of "
                     "memory; each moves at its next request");
}

/*
 * health's log hook: a host's change of state, one line each; a slow check that
 * has not yet failed is info, not a warning.
 */
static void reload_health_log(void *arg, const struct region *r, const struct region_host *h,
                              enum health_event ev, const char *why)
{
    char host[300] = "";
    struct log_fields f = {.region = r->name};
    if (h != NULL) {
        snprintf(host, sizeof(host), "%s:%d", h->name, h->port);
        f.host = host;
    }
    switch (ev) {
    case HEALTH_UP:
        log_at(LOG_INFO, &f, "host %s of region %s is up: %s", host, r->name, why);
        return;
    case HEALTH_DOWN:
        log_at(LOG_WARNING, &f, "host %s of region %s is down: %s", host, r->name, why);
        return;
    case HEALTH_TIMEOUT: /* at most one line per host and interval, and only while slow */
        log_at(LOG_INFO, &f, "health check of host %s of region %s %s; it stays up for now", host,
               r->name, why);
        return;
    case HEALTH_LAG:
        log_at(LOG_INFO, &f, "standby %s of region %s is %s", host, r->name, why);
        return;
    case HEALTH_PREFERENCE:
        log_at(LOG_INFO, &f, "route: region %s: %s", r->name, why);
        return;
    case HEALTH_FENCED:
        log_at(LOG_WARNING, &f,
               "host %s of region %s is fenced, no session or transaction goes there: %s", host,
               r->name, why);
        reload_tell_fenced(arg);
        return;
    case HEALTH_UNFENCED:
        log_at(LOG_INFO, &f, "host %s of region %s is no longer fenced: %s", host, r->name, why);
        return;
    }
}

static void reload_start(struct reloader *rl);

/* Patroni's members to add changed: the file is loaded again with them. */
static void reload_patroni_places(void *arg, const struct patroni_place *places, size_t n)
{
    struct reloader *rl = arg;
    if (n == rl->nplaces && patroni_places_equal(places, rl->places, n))
        return; /* the reload that added them started this source */
    memcpy(rl->places, places, n * sizeof(*places));
    rl->nplaces = n;
    char list[512] = "";
    size_t len = 0;
    for (size_t i = 0; i < n && len < sizeof(list); i++) {
        int w = snprintf(list + len, sizeof(list) - len, "%s%s:%d of %s", i ? ", " : "",
                         places[i].host, places[i].port, places[i].region);
        if (w > 0)
            len += (size_t)w;
    }
    log_info(0,
             "patroni: the members no region lists are now %s; loading the configuration "
             "again with them",
             n > 0 ? list : "none");
    reload_start(rl);
}

static void reload_patroni_log(void *arg, bool warn, const char *line)
{
    (void)arg;
    if (warn)
        log_warn(0, "%s", line);
    else
        log_info(0, "%s", line);
}

/* Patroni's source for the current configuration, beside its checks (patroni.h). */
static void reload_start_patroni(struct reloader *rl)
{
    struct config *cfg = rl->cfg;
    if (cfg->patroni[0] == '\0' || cfg->health == NULL) {
        patroni_forget(&cfg->regions);
        return;
    }
    struct patroni_params p = {.urls = cfg->patroni,
                               .interval_ms = cfg->health_check_interval_ms,
                               .timeout_ms = cfg->health_check_timeout_ms,
                               .placed = rl->places,
                               .nplaced = rl->nplaces,
                               .places = reload_patroni_places,
                               .log = reload_patroni_log,
                               .arg = rl,
                               .told = &rl->patroni_told};
    rl->patroni = patroni_start(rl->shared->workers[0]->base, &cfg->regions, cfg->health, &p);
    if (rl->patroni == NULL)
        log_error(0, "could not start reading Patroni's members: out of memory");
}

/*
 * A host name resolves to another address: the configuration is loaded again,
 * resolving it afresh; the swap fences the old address (dns_follow_fence_moved)
 * as the new one enters, so that its sessions have somewhere to move to.
 */
static void reload_dns_moved(void *arg, const char *name, const char *was, const char *now)
{
    log_info(0,
             "host name \"%s\" resolves to %s now, no longer to %s: loading the configuration "
             "again with the new address",
             name, now, was);
    reload_start(arg);
}

/* The current configuration's host names asked again at their TTL (dns_follow.h). */
static void reload_start_dns(struct reloader *rl)
{
    struct config *cfg = rl->cfg;
    struct dns_follow_params p = {.max_ttl_ms = cfg->dns_max_ttl_ms,
                                  .server = cfg->dns_server,
                                  .moved = reload_dns_moved,
                                  .arg = rl,
                                  .told = &rl->dns_told};
    rl->dns = dns_follow_start(rl->shared->workers[0]->base, &cfg->regions, &p);
}

/* Health checks and the DNS follower run for the current configuration only, on worker 0's loop. */
void reload_start_health(struct reloader *rl)
{
    struct config *cfg = rl->cfg;
    reload_start_dns(rl);
    if (cfg->health_check_interval_ms <= 0)
        return;
    struct health_params params = {.interval_ms = cfg->health_check_interval_ms,
                                   .timeout_ms = cfg->health_check_timeout_ms,
                                   .fall = cfg->health_check_fall,
                                   .max_lag_ms = cfg->max_standby_lag_ms,
                                   .max_lag_bytes = cfg->max_standby_lag_bytes,
                                   .login_interval_ms = cfg->health_check_login_interval_ms,
                                   .rank = config_route_rank(cfg)};
    cfg->health = health_start(rl->shared->workers[0]->base, &cfg->regions, &params,
                               reload_health_conninfo, reload_health_log, rl);
    if (cfg->health == NULL)
        log_error(0, "could not start health checks");
    reload_start_patroni(rl);
}

/*
 * The old configuration's checks stop before the new one's start, so a host is
 * checked by one set at a time.  True when the DNS follower waits for answers
 * its loop still owes it (dns_follow_stop).
 */
static bool reload_stop_health(struct reloader *rl)
{
    patroni_stop(rl->patroni);
    rl->patroni = NULL;
    health_stop(rl->cfg->health);
    rl->cfg->health = NULL;
    bool owed = dns_follow_stop(rl->dns);
    rl->dns = NULL;
    return owed;
}

/* A worker whose loop had ended did not take the configuration it was handed. */
static void reload_config_handed(struct worker *from, const struct worker_reply *r)
{
    if (r->ran == 0)
        config_unref(r->arg);
}

/* Hands cfg to every worker: each gets a reference of its own. */
static void reload_publish(struct reloader *rl, struct config *cfg)
{
    struct worker *w0 = rl->shared->workers[0];
    for (int i = 1; i < rl->shared->nworkers; i++)
        if (worker_call(w0, rl->shared->workers[i], worker_use_config, config_ref(cfg),
                        reload_config_handed, NULL) != 0) {
            log_error(0, "could not hand the new configuration to worker %d", i);
            config_unref(cfg);
        }
    worker_use_config(w0, config_ref(cfg)); /* this thread's own, at once */
}

/* A reload in progress: the loader thread fills fresh/err, then writes a byte to pipe[1]. */
struct reload_job {
    struct reloader *rl;
    char *path;
    struct config_override *overrides; /* a copy: the loader thread reads it */
    int noverrides;
    struct patroni_place places[PATRONI_PLACES_MAX]; /* a copy: added to their regions */
    size_t nplaces;
    struct config *running; /* a reference: the loader shares its unchanged tables */
    struct config *fresh;
    char err[1024];
    int pipe[2];
    struct event *done_ev; /* on worker 0's loop */
};

/* Frees the job and closes its pipe; its reference on the running configuration goes too. */
static void reload_job_free(struct reload_job *job)
{
    if (job->done_ev)
        event_free(job->done_ev);
    for (int i = 0; i < 2; i++)
        if (job->pipe[i] >= 0)
            close(job->pipe[i]);
    free(job->path);
    free(job->overrides);
    config_unref(job->running);
    free(job);
}

/* Swaps in a configuration that loaded completely; says what it did in *o. */
static void reload_swap(struct reloader *rl, struct config *fresh, struct reload_outcome *o)
{
    o->nfixed = config_restart_only_changes(rl->cfg, fresh, o->fixed, 16);
    for (int i = 0; i < o->nfixed; i++)
        log_warn(0, "setting \"%s\" changed but takes effect only after a restart", o->fixed[i]);
    /* Before any worker sees fresh: regions and hosts it still names keep their state. */
    if (config_keep_restart_only(fresh, rl->cfg) != 0 ||
        !registry_bind(rl->registry, &fresh->regions)) {
        snprintf(o->error, sizeof(o->error), "out of memory");
        log_error(0, "reload failed: out of memory");
        config_unref(fresh);
        return;
    }
    /* Reopened even under the same name, so that a rotated file is let go. */
    if (log_open(fresh->logfile, rl->log_level) != 0)
        log_error(0, "could not open logfile \"%s\": %s", fresh->logfile, strerror(errno));
    log_set_format((enum log_format)fresh->log_format);
    log_set_syslog(fresh->syslog, fresh->syslog_ident, fresh->syslog_facility);
    (void)reload_stop_health(rl);
    /* A name DNS moved: its old address fenced before anyone routes by fresh. */
    int moved = dns_follow_fence_moved(&rl->cfg->regions, &fresh->regions);
    struct config *old = rl->cfg;
    rl->cfg = fresh;
    reload_publish(rl, fresh);
    if (moved > 0)
        reload_tell_fenced(rl);
    config_unref(old);
    reload_start_health(rl);
    o->ok = true;
    log_info(0, "configuration reloaded from %s", fresh->path);
    fd_limit_check(fresh);
}

/* Tells everyone who waited for this reload; the restart-only names point into the old config's
 * table. */
static void reload_tell(struct reloader *rl, struct reload_waiter *list,
                        const struct reload_outcome *o)
{
    __atomic_add_fetch(&rl->reloads, 1, __ATOMIC_RELAXED);
    if (!o->ok)
        __atomic_add_fetch(&rl->reloads_failed, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&rl->last_reload_at, (int64_t)time(NULL), __ATOMIC_RELAXED);
    __atomic_store_n(&rl->last_reload_ok, o->ok, __ATOMIC_RELAXED);
    while (list != NULL) {
        struct reload_waiter *w = list;
        list = w->next;
        w->fn(rl->shared, o, w->arg);
        free(w);
    }
}

/*
 * The loader thread: parses and checks the file off the loops, so a slow file
 * or mount never stalls a worker.
 */
static void *reload_thread(void *arg)
{
    struct reload_job *job = arg;
    job->fresh = config_load_overridden(job->path, job->overrides, job->noverrides, job->running,
                                        job->err, sizeof(job->err));
    /* Members' names are asked of dns_server where it names one, as the file's hosts are. */
    if (job->fresh != NULL && job->nplaces > 0) {
        char *server = job->fresh->dns_server;
        patroni_admit(&job->fresh->regions, &job->fresh->patroni_allowed, job->places, job->nplaces,
                      server[0] != '\0' ? dns_lookup_blocking : NULL, server, reload_patroni_log,
                      NULL);
    }
    /* The last touch of job: worker 0 frees it once it has read this byte. */
    ssize_t w;
    do
        w = write(job->pipe[1], "L", 1);
    while (w < 0 && errno == EINTR);
    return NULL;
}

/*
 * On worker 0, when the loader has written its byte: the new configuration
 * swapped in (or the error kept), then the waiters told; a reload asked for
 * meanwhile starts now.
 */
static void reload_done(evutil_socket_t fd, short what, void *arg)
{
    struct reload_job *job = arg;
    struct reloader *rl = job->rl;
    char c;
    (void)what;
    if (read(fd, &c, 1) != 1)
        return;
    rl->job = NULL;
    struct reload_outcome o = {0};
    if (job->fresh == NULL) {
        snprintf(o.error, sizeof(o.error), "%s", job->err);
        log_error(0, "reload failed, keeping the current configuration: %s", job->err);
    } else {
        reload_swap(rl, job->fresh, &o);
    }
    reload_job_free(job);
    struct reload_waiter *told = rl->waiters;
    rl->waiters = NULL;
    if (rl->again) {
        rl->again = false;
        rl->waiters = rl->again_waiters;
        rl->again_waiters = NULL;
        reload_start(rl);
    }
    reload_tell(rl, told, &o);
}

/* A reload that never started: its waiters hear why. */
static void reload_not_started(struct reloader *rl, const char *why)
{
    struct reload_outcome o = {0};
    snprintf(o.error, sizeof(o.error), "%s", why);
    log_error(0, "reload failed: %s", why);
    struct reload_waiter *told = rl->waiters;
    rl->waiters = NULL;
    reload_tell(rl, told, &o);
}

void reload_file(struct reloader *rl)
{
    /* SIGHUP and RELOAD read the file as it is: SET's values end here. */
    free(rl->overrides);
    rl->overrides = NULL;
    rl->noverrides = 0;
    reload_start(rl);
}

/*
 * Starts loading on a detached thread; while one runs, one more follows it
 * (again), since the file may have changed after it was read.
 */
static void reload_start(struct reloader *rl)
{
    if (rl->job != NULL) {
        if (!rl->again)
            log_info(0, "a reload is already running; another one follows it");
        rl->again = true;
        return;
    }
    struct reload_job *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        reload_not_started(rl, "out of memory");
        return;
    }
    job->rl = rl;
    job->pipe[0] = job->pipe[1] = -1;
    job->running = config_ref(rl->cfg);
    memcpy(job->places, rl->places, rl->nplaces * sizeof(rl->places[0]));
    job->nplaces = rl->nplaces;
    if (rl->noverrides > 0 &&
        (job->overrides = malloc((size_t)rl->noverrides * sizeof(*job->overrides))) != NULL) {
        memcpy(job->overrides, rl->overrides, (size_t)rl->noverrides * sizeof(*job->overrides));
        job->noverrides = rl->noverrides;
    }
    pthread_t t;
    pthread_attr_t attr;
    bool started = false;
    if ((job->path = strdup(rl->cfg->path)) != NULL &&
        pipe2(job->pipe, O_CLOEXEC | O_NONBLOCK) == 0 &&
        (job->done_ev = event_new(rl->shared->workers[0]->base, job->pipe[0], EV_READ, reload_done,
                                  job)) != NULL &&
        event_add(job->done_ev, NULL) == 0 && pthread_attr_init(&attr) == 0) {
        /* Detached: a shutdown never waits for a load that hangs (a file on a dead mount). */
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        started = pthread_create(&t, &attr, reload_thread, job) == 0;
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        reload_job_free(job);
        reload_not_started(rl, "could not start loading the configuration");
        return;
    }
    rl->job = job;
}

/* Adds a waiter to the reload to come (the running one read the file too early). */
static int reload_wait(struct reloader *rl, reload_done_fn fn, void *arg)
{
    struct reload_waiter *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    w->fn = fn;
    w->arg = arg;
    struct reload_waiter **list = rl->job != NULL ? &rl->again_waiters : &rl->waiters;
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

/* The index of name among the SET overrides, or -1. */
static int reload_find_override(const struct reloader *rl, const char *name)
{
    for (int i = 0; i < rl->noverrides; i++)
        if (strcmp(rl->overrides[i].name, name) == 0)
            return i;
    return -1;
}

/*
 * A SET's reload ended: a refused value is undone (the previous override, or
 * none), unless another SET or reload replaced it since.
 */
static void reload_override_told(struct shared *sh, const struct reload_outcome *o, void *arg)
{
    struct override_wait *ow = arg;
    struct reloader *rl = sh->reload;
    int i = reload_find_override(rl, ow->mine.name);
    /* Refused, and still ours (no SIGHUP or later SET replaced it): the previous one again. */
    if (!o->ok && i >= 0 && strcmp(rl->overrides[i].value, ow->mine.value) == 0) {
        if (ow->had_previous)
            rl->overrides[i] = ow->previous;
        else
            rl->overrides[i] = rl->overrides[--rl->noverrides];
    }
    ow->fn(sh, o, ow->arg);
    free(ow);
}

int reload_override_then(struct reloader *rl, const char *name, const char *value,
                         reload_done_fn fn, void *arg)
{
    struct override_wait *ow = calloc(1, sizeof(*ow));
    int i = reload_find_override(rl, name);
    if (ow == NULL)
        return -1;
    if (i < 0) {
        struct config_override *grown =
            realloc(rl->overrides, (size_t)(rl->noverrides + 1) * sizeof(*grown));
        if (grown == NULL) {
            free(ow);
            return -1;
        }
        rl->overrides = grown;
        i = rl->noverrides++;
    } else {
        ow->had_previous = true;
        ow->previous = rl->overrides[i];
    }
    snprintf(ow->mine.name, sizeof(ow->mine.name), "%s", name);
    snprintf(ow->mine.value, sizeof(ow->mine.value), "%s", value);
    rl->overrides[i] = ow->mine;
    ow->fn = fn;
    ow->arg = arg;
    if (reload_wait(rl, reload_override_told, ow) != 0) {
        free(ow);
        return -1;
    }
    reload_start(rl);
    return 0;
}

int reload_then(struct reloader *rl, reload_done_fn fn, void *arg)
{
    if (reload_wait(rl, fn, arg) != 0)
        return -1;
    reload_file(rl);
    return 0;
}

struct reloader *reloader_new(struct shared *sh, struct config *cfg, int log_level)
{
    struct reloader *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return NULL;
    rl->shared = sh;
    rl->log_level = log_level;
    rl->registry = registry_new();
    if (rl->registry == NULL || !registry_bind(rl->registry, &cfg->regions)) {
        registry_free(rl->registry);
        free(rl);
        return NULL;
    }
    rl->cfg = cfg;
    return rl;
}

void reload_stop(struct reloader *rl)
{
    if (rl == NULL)
        return;
    if (rl->job != NULL) {
        struct reload_job *job = rl->job;
        char c;
        event_free(job->done_ev);
        job->done_ev = NULL;
        if (read(job->pipe[0], &c, 1) == 1) { /* loaded, never swapped in */
            config_unref(job->fresh);
            reload_job_free(job);
        } /* else its loader thread still runs and owns the job; the process is ending */
        rl->job = NULL;
    }
    /*
     * Worker 0's loop has ended: what libevent owes the DNS follower comes on
     * one more turn, without waiting (the signals are ignored by now, and no
     * session is left for that turn to serve), else it leaks at exit.
     */
    if (rl->shared->workers != NULL && rl->shared->workers[0] != NULL && reload_stop_health(rl))
        event_base_loop(rl->shared->workers[0]->base, EVLOOP_NONBLOCK);
    /* Whoever waits for a reload hears that none comes (their workers answer nobody now). */
    struct reload_outcome gone = {.error = "pgnear is shutting down"};
    reload_tell(rl, rl->waiters, &gone);
    reload_tell(rl, rl->again_waiters, &gone);
    rl->waiters = rl->again_waiters = NULL;
}

void reloader_free(struct reloader *rl)
{
    if (rl == NULL)
        return;
    free(rl->overrides);
    config_unref(rl->cfg);
    registry_free(rl->registry); /* the workers and their sessions let go of every config */
    free(rl);
}

/* The counters for the metrics and SHOW, read atomically from any worker. */
void reload_counts(const struct reloader *rl, struct reload_counts *c)
{
    c->reloads = __atomic_load_n(&rl->reloads, __ATOMIC_RELAXED);
    c->failed = __atomic_load_n(&rl->reloads_failed, __ATOMIC_RELAXED);
    c->last_at = __atomic_load_n(&rl->last_reload_at, __ATOMIC_RELAXED);
    c->last_ok = __atomic_load_n(&rl->last_reload_ok, __ATOMIC_RELAXED);
}
