/*
 * status.c — reading every region's migration history (status.h).
 */
#include "proxy/migrate/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "proxy/base/pgconn.h"
#include "routing/region.h"

const struct region_host *migrate_target(const struct config *cfg, const struct region *r,
                                         const struct region **follows, char *why, size_t cap)
{
    *follows = NULL;
    const struct region_host *standby;
    const struct region_host *h = region_primary(r, &standby);
    if (h != NULL)
        return h;
    /* No primary: every host up is a standby; one may stream from another region's primary. */
    const struct region_host *up[REGION_MAX_HOSTS];
    size_t n = pgconn_hosts(&r, 1, PGCONN_UP, up, REGION_MAX_HOSTS);
    for (size_t i = 0; i < n; i++)
        if ((*follows = region_with_primary(&cfg->regions, r, host_system_id(up[i]))) != NULL)
            return up[i];
    if (standby != NULL)
        snprintf(why, cap,
                 "no primary: every host of region \"%s\" that is up is a standby, and none "
                 "streams from another region's primary",
                 r->name);
    else
        snprintf(why, cap, "no host of region \"%s\" is up", r->name);
    return NULL;
}

void migrate_regions_only(const struct config *cfg, const struct region_subset *only,
                          struct region_subset *out)
{
    if (only != NULL) {
        *out = *only;
        return;
    }
    out->count = 0;
    for (size_t i = 0; i < cfg->regions.count && out->count < REGION_SUBSET_MAX; i++)
        out->items[out->count++] = &cfg->regions.items[i];
}

/*
 * One region fewer to wait for; the last one finishes from the loop, not from
 * within pgasync's callback.
 */
static void status_region_done(struct migrate_region_status *rs)
{
    struct migrate_status *st = rs->status;
    rs->query = NULL;
    if (--st->waiting == 0)
        event_active(st->finish, EV_TIMEOUT, 0);
}

/*
 * A region's history: read, or no table yet (nothing ever ran: reached, empty),
 * or the error saying why not.
 */
static void history_read(void *arg, const PGresult *res, const char *error, bool server_answered)
{
    struct migrate_region_status *rs = arg;
    (void)server_answered;
    if (res != NULL) {
        char why[256];
        rs->reached = migrate_history_parse(res, &rs->history, why, sizeof(why)) == 0;
        if (!rs->reached)
            snprintf(rs->error, sizeof(rs->error), "%s", why);
    } else if (rs->query != NULL && pgasync_error_sqlstate(rs->query) != NULL &&
               strcmp(pgasync_error_sqlstate(rs->query), "42P01") == 0) {
        rs->reached = true; /* no table: nothing ever ran there */
    } else {
        snprintf(rs->error, sizeof(rs->error), "%s%s", error,
                 pgasync_timed_out(rs->query) ? " (no answer in time)" : "");
    }
    status_region_done(rs);
}

/* The query of one region; false when it could not start (the error is set). */
static bool status_region_start(struct event_base *base, struct migrate_region_status *rs,
                                int timeout_ms)
{
    const struct config *cfg = rs->status->cfg;
    const struct region_host *h =
        migrate_target(cfg, rs->region, &rs->follows, rs->error, sizeof(rs->error));
    if (h == NULL)
        return false;
    snprintf(rs->host, sizeof(rs->host), "%s:%d", h->name, h->port);
    char conninfo[2048], why[256];
    if (!pgconn_conninfo(cfg, h, cfg->migrations_db, MIGRATE_APPLICATION_NAME, conninfo,
                         sizeof(conninfo))) {
        snprintf(rs->error, sizeof(rs->error), "the connection string of %s is too long", rs->host);
        return false;
    }
    rs->query = pgasync_query(base, conninfo, migrate_history_select_live_sql, 0, NULL, timeout_ms,
                              history_read, rs, why, sizeof(why));
    if (rs->query == NULL) {
        snprintf(rs->error, sizeof(rs->error), "%s", why);
        return false;
    }
    return true;
}

/* From the loop: every region has answered (or failed); done owns the status now. */
static void status_finish(evutil_socket_t fd, short what, void *arg)
{
    struct migrate_status *st = arg;
    (void)fd;
    (void)what;
    st->done(st, st->arg);
}

struct migrate_status *migrate_status_start(struct event_base *base, struct config *cfg,
                                            const struct region_subset *only, int timeout_ms,
                                            migrate_status_done_fn done, void *arg)
{
    struct migrate_status *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return NULL;
    st->cfg = config_ref(cfg);
    st->done = done;
    st->arg = arg;
    st->regions = calloc(cfg->regions.count, sizeof(*st->regions));
    st->finish = event_new(base, -1, 0, status_finish, st);
    if (st->regions == NULL || st->finish == NULL) {
        migrate_status_free(st);
        return NULL;
    }
    for (size_t i = 0; i < cfg->regions.count; i++) {
        const struct region *r = &cfg->regions.items[cfg->migration_order_index[i]];
        if (only != NULL && !region_subset_has(only, r))
            continue;
        struct migrate_region_status *rs = &st->regions[st->count++];
        rs->region = r;
        rs->status = st;
        st->waiting++; /* before the start: a failure is counted down at once */
        if (!status_region_start(base, rs, timeout_ms))
            status_region_done(rs);
    }
    if (st->count == 0)
        event_active(st->finish, EV_TIMEOUT, 0);
    return st;
}

void migrate_status_free(struct migrate_status *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->count; i++) {
        pgasync_abandon(st->regions[i].query);
        migrate_history_free(&st->regions[i].history);
    }
    free(st->regions);
    if (st->finish != NULL)
        event_free(st->finish);
    config_unref(st->cfg);
    free(st);
}
