/*
 * show_pools.c — SHOW POOLS: the clients and server connections of a
 * snapshot of every worker (snapshot.c, taken through show.c's
 * show_snapshot) counted by pool, a pool being a region, database and
 * user, as PgBouncer's SHOW POOLS counts its own.
 */
#include "proxy/admin/show.h"

#include <stdlib.h>
#include <string.h>

#include "protocol/clock.h"
#include "proxy/admin/snapshot.h"
#include "proxy/base/config.h"

static const struct admin_column show_pools_cols[] = {
    {"region", ADMIN_TEXT, 0},     {"database", ADMIN_TEXT, 0},   {"user", ADMIN_TEXT, 0},
    {"cl_active", ADMIN_INT8, 0},  {"cl_waiting", ADMIN_INT8, 0}, {"cl_held", ADMIN_INT8, 0},
    {"sv_active", ADMIN_INT8, 0},  {"sv_idle", ADMIN_INT8, 0},    {"sv_used", ADMIN_INT8, 0},
    {"sv_tested", ADMIN_INT8, 0},  {"sv_login", ADMIN_INT8, 0},   {"maxwait", ADMIN_INT8, 0},
    {"maxwait_us", ADMIN_INT8, 0}, {"pool_mode", ADMIN_TEXT, 0}};

/* One pool: a region, database and user, with its clients and servers counted by state. */
struct pool_row {
    const char *region, *database, *user; /* in the snapshot's rows */
    int pool_mode;
    int64_t cl_active, cl_waiting, cl_held;
    int64_t sv_active, sv_idle, sv_used, sv_tested, sv_login;
    int64_t maxwait_us;
};

/* The pool of (region, database, user) in pools[0..*n), added when new; NULL when full. */
static struct pool_row *pool_row_find(struct pool_row *pools, size_t *n, size_t cap,
                                      const char *region, const char *database, const char *user,
                                      int pool_mode)
{
    for (size_t k = 0; k < *n; k++)
        if (strcmp(pools[k].region, region) == 0 && strcmp(pools[k].database, database) == 0 &&
            strcmp(pools[k].user, user) == 0)
            return &pools[k];
    if (*n == cap)
        return NULL;
    pools[*n] = (struct pool_row){
        .region = region, .database = database, .user = user, .pool_mode = pool_mode};
    return &pools[(*n)++];
}

/*
 * Counts each session into its pool (region, database, user); sessions still
 * logging in are in none.
 */
static void pools_count_clients(const struct snapshot *snap, struct pool_row *pools, size_t *n,
                                size_t cap)
{
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nclients; j++) {
            const struct client_row *c = &snap->parts[i].clients[j];
            if (c->region[0] == '\0')
                continue; /* still logging in: in no pool yet */
            struct pool_row *p =
                pool_row_find(pools, n, cap, c->region, c->database, c->user, c->pool_mode);
            if (p == NULL)
                continue;
            if (c->state == CLIENT_ROW_HELD) {
                p->cl_held++;
            } else if (c->state == CLIENT_ROW_WAITING) {
                p->cl_waiting++;
                int64_t waited = wall_clock_us() - c->wait_since_us;
                if (waited > p->maxwait_us)
                    p->maxwait_us = waited;
            } else if (c->server[0] != '\0' || c->owns_parked) {
                p->cl_active++; /* a nearest session's own, parked between transactions, too */
            }
        }
}

/*
 * A server connection counts in one column by its state; any state not listed
 * is still logging in.
 */
static void pool_count_server(struct pool_row *p, enum server_row_state state)
{
    switch (state) {
    case SERVER_ROW_ACTIVE:
        p->sv_active++;
        break;
    case SERVER_ROW_TESTED:
        p->sv_tested++;
        break;
    case SERVER_ROW_USED:
        p->sv_used++;
        break;
    case SERVER_ROW_IDLE:
        p->sv_idle++;
        break;
    default:
        p->sv_login++; /* still logging in */
        break;
    }
}

/* Counts each server connection into its pool; pools beyond cap are left out (pool_row_find). */
static void pools_count_servers(const struct snapshot *snap, struct pool_row *pools, size_t *n,
                                size_t cap)
{
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nservers; j++) {
            const struct server_row *sv = &snap->parts[i].servers[j];
            struct pool_row *p =
                pool_row_find(pools, n, cap, sv->region, sv->database, sv->user, sv->pool_mode);
            if (p == NULL)
                continue;
            pool_count_server(p, sv->state);
        }
}

/* A pool is a region, database and user: its clients and its server connections by state. */
static void render_pools(const struct snapshot *snap, struct admin_result *res)
{
    size_t cap = 0, n = 0;
    for (int i = 0; i < snap->nparts; i++)
        cap += snap->parts[i].nclients + snap->parts[i].nservers;
    struct pool_row *pools = calloc(cap > 0 ? cap : 1, sizeof(*pools));
    result_init(res, ADMIN_COLS(show_pools_cols));
    if (pools == NULL) {
        res->failed = true;
        return;
    }
    pools_count_clients(snap, pools, &n, cap);
    pools_count_servers(snap, pools, &n, cap);
    static const char *const modes[] = {
        [POOL_NONE] = "none", [POOL_SESSION] = "session", [POOL_TRANSACTION] = "transaction"};
    for (size_t k = 0; k < n; k++) {
        const struct pool_row *p = &pools[k];
        result_text(res, p->region);
        result_text(res, p->database);
        result_text(res, p->user);
        int64_t counts[] = {p->cl_active, p->cl_waiting, p->cl_held,
                            p->sv_active, p->sv_idle,    p->sv_used,
                            p->sv_tested, p->sv_login,   p->maxwait_us / 1000000,
                            p->maxwait_us};
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
            result_int(res, counts[c]);
        result_text(res, modes[p->pool_mode]);
    }
    free(pools);
}

const struct admin_command show_pools_command = {
    .cols = show_pools_cols,
    .ncols = ADMIN_NCOLS(show_pools_cols),
    .render = render_pools,
    .snapshot = SNAPSHOT_CLIENTS | SNAPSHOT_SERVERS,
};
