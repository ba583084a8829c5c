/*
 * health.c — health checks: one libpq connection per host and interval,
 * "SELECT pg_is_in_recovery()", bounded by the timeout.  A refused, reset
 * or failed check marks the host down at once; a check that only timed
 * out does so at the fall-th timeout in a row (a busy host is slow, not
 * gone).  A host comes back after HEALTH_RISE successes in a row, or when
 * a session logs in through it.
 */
#include "routing/health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "protocol/pgasync.h"
#include "routing/region.h"

struct health_checker {
    struct event_base *base;
    struct region_set *regions;
    struct health_params params;
    health_conninfo_fn conninfo;
    health_log_fn log;
    void *arg;
    struct event *timer;
};

struct health_probe {
    struct health_checker *hc;
    struct region_host *host;
    struct timeval started;
};

static double elapsed_ms(const struct timeval *since)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - since->tv_sec) * 1000.0 +
           (double)(now.tv_usec - since->tv_usec) / 1000.0;
}

/* Takes h down; true when it was up (the caller says so). */
static bool health_take_down(struct region_host *h)
{
    if (!__atomic_exchange_n(&h->runtime->health.up, false, __ATOMIC_RELAXED))
        return false;
    __atomic_add_fetch(&h->runtime->health.downs, 1, __ATOMIC_RELAXED);
    return true;
}

static void health_note_failure(struct host_health *hh, const char *why)
{
    hh->consecutive_ok = 0;
    hh->consecutive_fail++;
    /* Kept short for SHOW REGIONS; the log gets the whole message. */
    size_t n = strnlen(why, sizeof(hh->last_error) - 1);
    memcpy(hh->last_error, why, n);
    hh->last_error[n] = '\0';
}

static void health_set_down(struct health_checker *hc, struct region_host *h, const char *why)
{
    health_note_failure(&h->runtime->health, why);
    if (health_take_down(h))
        hc->log(hc->arg, h->region, h, HEALTH_DOWN, why);
}

/* A check that timed out: counted; the host goes down at the fall-th in a row. */
static void health_check_timed_out(struct health_checker *hc, struct region_host *h)
{
    char why[160];
    int fall = hc->params.fall;
    int n = __atomic_add_fetch(&h->runtime->health.consecutive_timeouts, 1, __ATOMIC_RELAXED);
    if (n >= fall || !host_is_up(h)) {
        snprintf(why, sizeof(why), "health check timed out (%d in a row, health_check_fall = %d)",
                 n, fall);
        health_set_down(hc, h, why);
        return;
    }
    snprintf(why, sizeof(why), "timed out (%d of %d)", n, fall);
    health_note_failure(&h->runtime->health, why);
    hc->log(hc->arg, h->region, h, HEALTH_TIMEOUT, why);
}

/* Sessions prefer primaries; a host that changes role (promotion, a rejoined old primary) is said.
 */
static void health_note_role(struct health_checker *hc, struct region_host *h, bool standby)
{
    struct host_health *hh = &h->runtime->health;
    bool changed = hh->role_known ? hh->in_recovery != standby : standby;
    __atomic_store_n(&hh->in_recovery, standby, __ATOMIC_RELAXED);
    hh->role_known = true;
    if (changed)
        hc->log(hc->arg, h->region, h, HEALTH_UP,
                standby ? "it is a standby (in recovery): sessions go to a primary first"
                        : "it is a primary now");
}

/* The server answered the check (error NULL: and logged in); up after HEALTH_RISE in a row. */
static void health_check_passed(struct health_probe *p, const PGresult *res, const char *error)
{
    struct region_host *h = p->host;
    struct host_health *hh = &h->runtime->health;
    /* A server that asks for a password is up, even if server_conninfo cannot log in. */
    if (error != NULL && !hh->login_failing) {
        char why[320];
        snprintf(why, sizeof(why),
                 "it answers, but the health check cannot log in "
                 "(check server_conninfo): %s",
                 error);
        p->hc->log(p->hc->arg, h->region, h, HEALTH_UP, why);
    }
    hh->login_failing = error != NULL;
    hh->rtt_ms = elapsed_ms(&p->started);
    if (res != NULL)
        health_note_role(p->hc, h, PQntuples(res) > 0 && strcmp(PQgetvalue(res, 0, 0), "t") == 0);
    hh->consecutive_fail = 0;
    __atomic_store_n(&hh->consecutive_timeouts, 0, __ATOMIC_RELAXED);
    /* A session that failed to connect meanwhile restarts the count. */
    if (__atomic_exchange_n(&hh->client_failures, 0, __ATOMIC_RELAXED) > 0)
        hh->consecutive_ok = 0;
    hh->consecutive_ok++;
    hh->last_error[0] = '\0';
    if (!host_is_up(h) && hh->consecutive_ok >= HEALTH_RISE) {
        __atomic_store_n(&hh->up, true, __ATOMIC_RELAXED);
        p->hc->log(p->hc->arg, h->region, h, HEALTH_UP, "health checks pass again");
    }
}

static void health_probe_done(void *arg, const PGresult *res, const char *error,
                              bool server_answered)
{
    struct health_probe *p = arg;
    struct region_host *h = p->host;
    bool timed_out = pgasync_timed_out(h->check);
    h->check = NULL;
    h->runtime->health.checked = true;
    h->runtime->health.last_check = (int64_t)time(NULL);
    if (timed_out)
        health_check_timed_out(p->hc, h);
    else if (error != NULL && !server_answered)
        health_set_down(p->hc, h, error);
    else
        health_check_passed(p, res, error);
    free(p);
}

/*
 * When pgnear itself is out of descriptors or memory, a check would fail
 * here, not at the host: skip the round and leave the host's state as it
 * is (libpq would report "could not create socket" as if the host were
 * down).  Opening a socket and closing it again is the cheapest honest
 * test of that.
 */
static bool health_can_open_socket(const struct region_host *h)
{
    int fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        close(fd);
        return true;
    }
    return !(errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM);
}

static void health_probe_start(struct health_checker *hc, struct region_host *h)
{
    char conninfo[2048], err[256];
    if (h->check != NULL)
        return; /* the last one is still running; its timeout will end it */
    if (!hc->conninfo(hc->arg, h, conninfo, sizeof(conninfo))) {
        health_set_down(hc, h, "health check conninfo too long");
        return;
    }
    if (!health_can_open_socket(h))
        return;
    struct health_probe *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return;
    p->hc = hc;
    p->host = h;
    gettimeofday(&p->started, NULL);
    h->check = pgasync_query(hc->base, conninfo, "SELECT pg_is_in_recovery()", 0, NULL,
                             hc->params.timeout_ms, health_probe_done, p, err, sizeof(err));
    if (h->check == NULL) {
        free(p);
        health_set_down(hc, h, err);
    }
}

static void health_tick(evutil_socket_t fd, short what, void *arg)
{
    struct health_checker *hc = arg;
    for (size_t r = 0; r < hc->regions->count; r++) {
        struct region *reg = &hc->regions->items[r];
        for (size_t i = 0; i < reg->nhosts; i++)
            health_probe_start(hc, &reg->hosts[i]);
    }
}

struct health_checker *health_start(struct event_base *base, struct region_set *regions,
                                    const struct health_params *params, health_conninfo_fn conninfo,
                                    health_log_fn log, void *arg)
{
    struct health_checker *hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return NULL;
    *hc = (struct health_checker){base, regions, *params, conninfo, log, arg, NULL};
    if (hc->params.fall < HEALTH_FALL_MIN)
        hc->params.fall = HEALTH_FALL_MIN;
    int interval_ms = params->interval_ms;
    hc->timer = event_new(base, -1, EV_PERSIST, health_tick, hc);
    struct timeval tv = {interval_ms / 1000, (interval_ms % 1000) * 1000};
    if (hc->timer == NULL || event_add(hc->timer, &tv) != 0) {
        health_stop(hc);
        return NULL;
    }
    health_tick(-1, 0, hc); /* know the state right away, not one interval later */
    return hc;
}

void health_stop(struct health_checker *hc)
{
    if (hc == NULL)
        return;
    for (size_t r = 0; r < hc->regions->count; r++) {
        struct region *reg = &hc->regions->items[r];
        for (size_t i = 0; i < reg->nhosts; i++) {
            struct region_host *h = &reg->hosts[i];
            if (h->check != NULL) {
                /* The probe struct is the callback's argument; abandoning skips the callback. */
                free(pgasync_arg(h->check));
                pgasync_abandon(h->check);
                h->check = NULL;
            }
        }
    }
    if (hc->timer)
        event_free(hc->timer);
    free(hc);
}

bool health_mark_down(struct region_host *h)
{
    __atomic_add_fetch(&h->runtime->health.client_failures, 1, __ATOMIC_RELAXED);
    return health_take_down(h);
}

int health_count_timeout(struct region_host *h, int fall, bool *took_down)
{
    int n = __atomic_add_fetch(&h->runtime->health.consecutive_timeouts, 1, __ATOMIC_RELAXED);
    *took_down = n >= fall && health_mark_down(h);
    return n;
}

unsigned health_downs(const struct region_host *h)
{
    return __atomic_load_n(&h->runtime->health.downs, __ATOMIC_RELAXED);
}

bool health_note_login(struct region_host *h, unsigned downs_seen)
{
    struct host_health *hh = &h->runtime->health;
    /* Loaded first: most logins find nothing to change and write nothing (no shared-line
     * ping-pong). */
    if (__atomic_load_n(&hh->consecutive_timeouts, __ATOMIC_RELAXED) != 0)
        __atomic_store_n(&hh->consecutive_timeouts, 0, __ATOMIC_RELAXED);
    if (host_is_up(h) || health_downs(h) != downs_seen)
        return false;
    return !__atomic_exchange_n(&hh->up, true, __ATOMIC_RELAXED);
}

bool region_is_up(const struct region *r)
{
    for (size_t i = 0; i < r->nhosts; i++)
        if (host_is_up(&r->hosts[i]))
            return true;
    return false;
}
