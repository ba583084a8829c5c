/*
 * worker.c — the event loop: signals, reload, drain and shutdown.
 */
#include "proxy/worker.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "proxy/cancel.h"
#include "proxy/config.h"
#include "proxy/listener.h"
#include "proxy/log.h"
#include "proxy/pgconn.h"
#include "routing/health.h"
#include "routing/region.h"
#include "proxy/session.h"

void worker_check_drained(struct worker *w)
{
    if (w->draining && worker_client_count(w) == 0) {
        log_info(0, "all sessions ended; shutting down");
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
static void worker_stop_now(struct worker *w, const char *why)
{
    log_info(0, "%s", why);
    w->draining = true;
    listener_close(w->listeners);
    w->listeners = NULL;
    worker_close_sessions(&w->login_sessions, "57P01",
                          "terminating connection due to administrator command");
    worker_close_sessions(&w->active_sessions, "57P01",
                          "terminating connection due to administrator command");
    /* Sessions still flushing their last error get a moment; then the loop ends. */
    struct timeval tv = {0, 200000};
    event_base_loopexit(w->base, &tv);
}

static void worker_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    worker_stop_now(arg, "shutdown timeout reached; closing remaining sessions");
}

static void worker_on_sigterm(evutil_socket_t sig, short what, void *arg)
{
    struct worker *w = arg;
    if (w->draining)
        return;
    w->draining = true;
    /* Closed, not paused: a paused socket would leave new clients queued and unanswered. */
    listener_close(w->listeners);
    w->listeners = NULL;
    log_info(0, "received SIGTERM: no new connections; waiting for %zu sessions to end",
             worker_client_count(w));
    struct timeval tv = {w->cfg->shutdown_timeout_ms / 1000,
                         (w->cfg->shutdown_timeout_ms % 1000) * 1000};
    w->drain_timer = evtimer_new(w->base, worker_drain_timeout, w);
    if (w->drain_timer)
        evtimer_add(w->drain_timer, &tv);
    worker_check_drained(w);
}

static void worker_on_sigint(evutil_socket_t sig, short what, void *arg)
{
    worker_stop_now(arg, "received SIGINT: shutting down now");
}

static bool worker_health_conninfo(void *arg, const struct region_host *h, char *buf, size_t cap)
{
    const struct worker *w = arg;
    return pgconn_conninfo(w->cfg, h, "postgres", buf, cap);
}

static void worker_health_log(void *arg, const struct region *r, const struct region_host *h,
                              bool up, const char *why)
{
    if (up)
        log_info(0, "host %s:%d of region %s is up: %s", h->name, h->port, r->name, why);
    else
        log_warn(0, "host %s:%d of region %s is down: %s", h->name, h->port, r->name, why);
}

/* Health checks run for the current configuration only. */
static void worker_start_health(struct worker *w)
{
    struct config *cfg = w->cfg;
    if (cfg->health_check_interval_ms <= 0)
        return;
    cfg->health =
        health_start(w->base, &cfg->regions, cfg->health_check_interval_ms,
                     cfg->health_check_timeout_ms, worker_health_conninfo, worker_health_log, w);
    if (cfg->health == NULL)
        log_error(0, "could not start health checks");
}

static void worker_stop_health(struct worker *w)
{
    health_stop(w->cfg->health);
    w->cfg->health = NULL;
}

/* Builds the new configuration aside; swaps it in only when all of it loaded. */
void worker_reload(struct worker *w)
{
    char err[1024];
    struct config *fresh = config_load(w->cfg->path, err, sizeof(err));
    if (fresh == NULL) {
        log_error(0, "reload failed, keeping the current configuration: %s", err);
        return;
    }
    const char *fixed[16];
    int n = config_restart_only_changes(w->cfg, fresh, fixed, 16);
    for (int i = 0; i < n; i++)
        log_warn(0, "setting \"%s\" changed but takes effect only after a restart", fixed[i]);
    /* Settings that need a restart keep their running values. */
    free(fresh->listen_addr);
    fresh->listen_addr = strdup(w->cfg->listen_addr);
    fresh->listen_port = w->cfg->listen_port;
    free(fresh->unix_socket_dir);
    fresh->unix_socket_dir = strdup(w->cfg->unix_socket_dir);
    if (fresh->listen_addr == NULL || fresh->unix_socket_dir == NULL) {
        log_error(0, "reload failed: out of memory");
        config_unref(fresh);
        return;
    }
    if (log_open(fresh->logfile, w->log_level) != 0)
        log_error(0, "could not open logfile \"%s\"", fresh->logfile);
    health_carry_over(&fresh->regions, &w->cfg->regions);
    worker_stop_health(w);
    config_unref(w->cfg);
    w->cfg = fresh;
    worker_start_health(w);
    log_info(0, "configuration reloaded from %s", fresh->path);
}

static void worker_on_sighup(evutil_socket_t sig, short what, void *arg)
{
    worker_reload(arg);
}

int worker_init(struct worker *w, struct config *cfg, int log_level, char *err, size_t errcap)
{
    memset(w, 0, sizeof(*w));
    w->cfg = cfg;
    w->log_level = log_level;
    list_init(&w->login_sessions);
    list_init(&w->active_sessions);
    list_init(&w->cancel_conns);
    w->base = event_base_new();
    if (w->base == NULL || cancel_map_init(&w->cancel_keys, 1024) != 0 ||
        RAND_bytes(w->mock_secret, sizeof(w->mock_secret)) != 1) {
        snprintf(err, errcap, "could not create the event loop");
        return -1;
    }
    w->sig_term = evsignal_new(w->base, SIGTERM, worker_on_sigterm, w);
    w->sig_int = evsignal_new(w->base, SIGINT, worker_on_sigint, w);
    w->sig_hup = evsignal_new(w->base, SIGHUP, worker_on_sighup, w);
    if (!w->sig_term || !w->sig_int || !w->sig_hup || evsignal_add(w->sig_term, NULL) != 0 ||
        evsignal_add(w->sig_int, NULL) != 0 || evsignal_add(w->sig_hup, NULL) != 0) {
        snprintf(err, errcap, "could not install signal handlers");
        return -1;
    }
    w->listeners = listener_open(w, cfg, err, errcap);
    if (w->listeners == NULL)
        return -1;
    worker_start_health(w);
    return 0;
}

int worker_run(struct worker *w)
{
    return event_base_dispatch(w->base);
}

void worker_free(struct worker *w)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->login_sessions)
        session_close(list_entry(pos, struct session, node), "shutdown");
    list_for_each_safe(pos, tmp, &w->active_sessions)
        session_close(list_entry(pos, struct session, node), "shutdown");
    cancel_close_all(w);
    if (w->cfg)
        worker_stop_health(w);
    listener_close(w->listeners);
    w->listeners = NULL;
    if (w->drain_timer)
        event_free(w->drain_timer);
    if (w->sig_term)
        event_free(w->sig_term);
    if (w->sig_int)
        event_free(w->sig_int);
    if (w->sig_hup)
        event_free(w->sig_hup);
    cancel_map_free(&w->cancel_keys);
    if (w->base)
        event_base_free(w->base);
    config_unref(w->cfg);
    w->cfg = NULL;
}
