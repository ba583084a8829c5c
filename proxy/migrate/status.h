/*
 * status.h — what each region's pgnear_schema_history says, read on the
 * event loop.
 *
 * For each region in migration order (or the one asked for), a
 * connection to its primary (the first of its hosts that is up and not a
 * standby, by the health checks) in migrations_db reads the history; a
 * region that follows another (migrate_target) is read on its standby.  The
 * regions are asked all at once; each query has a time limit, so a region
 * that cannot be reached says why rather than hangs.  No table means
 * nothing ever ran there.  Nothing is written.  A 'running' row reads
 * 'uncertain' when no run holds the region's migration lock (see
 * migrate_history_select_live_sql).
 */
#ifndef PGNEAR_PROXY_MIGRATE_STATUS_H
#define PGNEAR_PROXY_MIGRATE_STATUS_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/migrate/history.h"

struct config;
struct event_base;
struct region;
struct region_subset;
struct pgasync;

#define MIGRATE_APPLICATION_NAME "pgnear migrations"

struct migrate_region_status {
    const struct region *region; /* of the status's configuration */
    char host[320];              /* "name:port" of the host asked; "" when none was */
    /* A region of standbys of this region's primary: nothing runs there (migrate_target). */
    const struct region *follows;
    bool reached;    /* history is what the region says */
    char error[512]; /* when not reached: why */
    struct migrate_history history;
    struct pgasync *query; /* in flight */
    struct migrate_status *status;
};

struct migrate_status;
typedef void (*migrate_status_done_fn)(struct migrate_status *st, void *arg);

struct migrate_status {
    struct config *cfg; /* a reference, for the regions */
    size_t count;
    struct migrate_region_status *regions; /* in migration order */
    size_t waiting;                        /* queries still out */
    struct event *finish;                  /* done is called from here, never from _start */
    migrate_status_done_fn done;
    void *arg;
};

/*
 * Starts reading the histories of the regions of cfg that only holds
 * (NULL: all), each query limited to timeout_ms.  done(st, arg) is called
 * once from the loop, never from inside this call; the callee frees st
 * with migrate_status_free.  NULL when out of memory.
 */
struct migrate_status *migrate_status_start(struct event_base *base, struct config *cfg,
                                            const struct region_subset *only, int timeout_ms,
                                            migrate_status_done_fn done, void *arg);

/* only, or every region of cfg when it is NULL, into out. */
void migrate_regions_only(const struct config *cfg, const struct region_subset *only,
                          struct region_subset *out);

/* Frees st, abandoning what is still in flight. */
void migrate_status_free(struct migrate_status *st);

/*
 * The host a migration of region r talks to now: the first of its hosts
 * that is up and not a standby.  A region without one, whose standby
 * streams from another region's primary (the same system identifier, by
 * the health checks), follows that region: *follows names it, and the
 * standby is returned, to read the history from (a copy of the leader's);
 * the steps reach it by replication, and nothing is run there.  NULL with
 * why set when neither.
 */
const struct region_host *migrate_target(const struct config *cfg, const struct region *r,
                                         const struct region **follows, char *why, size_t cap);

#endif
