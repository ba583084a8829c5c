/*
 * pool.c — the worker's pool: which sessions may share a connection, the
 * sweep of idle connections (timeouts, min_pool_size), and closing kept
 * connections (shutdown, RECONNECT, a cutover).  Its parts: pool_idle.c,
 * pool_give.c, pool_take.c, pool_wait.c.
 */
#include "proxy/pool/pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/pool/pool_warm.h"
#include "proxy/base/log.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/gate.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/region.h"

/* Closes the idle connections past server_idle_timeout or server_lifetime. */
static void pool_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    int64_t now = wall_clock_us();
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->idle_servers)
    {
        struct server_conn *sc = list_entry(pos, struct server_conn, node);
        const struct config *cfg = w->cfg;
        if (now - sc->idle_since >= (int64_t)cfg->server_idle_timeout_ms * 1000 &&
            !pool_warm_keeps(w, sc))
            pool_close(sc, "idle longer than server_idle_timeout");
        else if (now - sc->connect_time >= (int64_t)cfg->server_lifetime_ms * 1000)
            pool_close(sc, "older than server_lifetime");
    }
    int64_t reset_limit_us = w->cfg->server_connect_timeout_ms > 0
                                 ? 2 * (int64_t)w->cfg->server_connect_timeout_ms * 1000
                                 : 10000000;
    list_for_each_safe(pos, tmp, &w->used_servers)
    {
        struct server_conn *sc = list_entry(pos, struct server_conn, node);
        if (sc->rollback_owed > 0 && now >= sc->rollback_until_us)
            pool_close(sc, "not rolled back within server_rollback_timeout");
        else if (sc->rollback_owed == 0 && now - sc->idle_since >= reset_limit_us)
            pool_close(sc, "server_reset_query not answered in twice server_connect_timeout");
    }
    pool_warm_tick(w);
    if (w->idle_servers.count > 0 || w->used_servers.count > 0 || pool_warm_active(w))
        pool_arm_sweep(w);
}

int pool_init(struct worker *w)
{
    w->pool_timer = evtimer_new(w->base, pool_sweep, w);
    return w->pool_timer != NULL && pool_wait_init(w) == 0 ? 0 : -1;
}

static void pool_close_list(struct list *l, const char *why)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, l) pool_close(list_entry(pos, struct server_conn, node), why);
}

void pool_close_idle(struct worker *w)
{
    pool_close_list(&w->used_servers, "pgnear is shutting down");
    pool_close_list(&w->idle_servers, "pgnear is shutting down");
}

void pool_free(struct worker *w)
{
    pool_close_idle(w);
    if (w->pool_timer != NULL)
        event_free(w->pool_timer);
    w->pool_timer = NULL;
    pool_wait_free(w);
}

static bool pool_in_region(const struct server_conn *sc, const char *region)
{
    return region == NULL || strcasecmp(sc->region->name, region) == 0;
}

/* The kept connections that match close now; those in use are closed when given back. */
static void pool_close_matching(struct worker *w, const char *region, const char *database,
                                const char *why, struct gate_pids *pids, int *closed, int *marked)
{
    struct list *kept[] = {&w->used_servers, &w->idle_servers};
    for (size_t i = 0; i < 2; i++) {
        struct list_node *pos, *tmp;
        list_for_each_safe(pos, tmp, kept[i])
        {
            struct server_conn *sc = list_entry(pos, struct server_conn, node);
            if (!pool_in_region(sc, region) || (database && strcmp(sc->database, database) != 0))
                continue;
            if (pids != NULL && sc->pid != 0)
                gate_pids_add(pids, (long)sc->pid);
            pool_close(sc, why);
            (*closed)++;
        }
    }
    struct list *in_use[] = {&w->login_servers, &w->active_servers};
    for (size_t i = 0; i < 2; i++) {
        struct list_node *pos, *tmp;
        list_for_each_safe(pos, tmp, in_use[i])
        {
            struct server_conn *sc = list_entry(pos, struct server_conn, node);
            if (pool_in_region(sc, region) && (!database || strcmp(sc->database, database) == 0) &&
                !sc->reconnect) {
                sc->reconnect = true;
                (*marked)++;
            }
        }
    }
}

void pool_reconnect(struct worker *w, const char *region, int *closed, int *marked)
{
    pool_close_matching(w, region, NULL, "RECONNECT", NULL, closed, marked);
}

void pool_retire_database(struct worker *w, const char *region, const char *database,
                          struct gate_pids *pids)
{
    int closed = 0, marked = 0;
    pool_close_matching(w, region, database, "its database is moving to another region", pids,
                        &closed, &marked);
}

/* On each worker: its kept connections to the database (arg) close. */
static int pool_unhold_on_worker(struct worker *w, void *arg)
{
    int closed = 0, marked = 0;
    pool_close_matching(w, NULL, arg, "its database is being dropped, renamed or copied", NULL,
                        &closed, &marked);
    auth_lookup_close_database(&w->auth_lookups, arg); /* auth_query's, kept on the database */
    return 0;
}

static void pool_unhold_done(struct worker *from, const struct worker_reply *r)
{
    (void)from;
    free(r->arg);
}

void pool_unhold_database(struct session *s, const char *database)
{
    char *name = strdup(database);
    if (name == NULL ||
        worker_call_all(s->w, pool_unhold_on_worker, name, pool_unhold_done, NULL) != 0) {
        free(name);
        slog_warn(s, "out of memory: pgnear's idle connections to database \"%s\" stay open",
                  database);
    }
}

static int pool_part_start(struct worker *w, char *err, size_t errcap)
{
    if (pool_init(w) == 0)
        return 0;
    snprintf(err, errcap, "could not create the pool timers of worker %d", w->index);
    return -1;
}

/* At drain too: a connection given back from then on is closed, not kept. */
const struct worker_part pool_part = {
    .name = "pool",
    .start = pool_part_start,
    .drain = pool_close_idle,
    .stop = pool_close_idle,
    .free = pool_free,
};
