/*
 * show.c — the SHOW commands' answers: HELP, VERSION and CONFIG from the
 * admin's own worker; STATS, LISTS, CLIENTS, SERVERS, REGIONS and POOLS
 * rendered from a snapshot of every worker (snapshot.c), answered once
 * all have given theirs; ROUTE, the plan a session would get, explained.
 * Each command's struct admin_command is defined beside its columns and
 * code; the command table in commands.c points at them.
 */
#include "proxy/admin/show.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgnear-build.h"
#include "protocol/clock.h"
#include "protocol/lsn.h"
#include "proxy/admin/latency_report.h"
#include "proxy/admin/snapshot.h"
#include "proxy/base/config.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/explain.h"
#include "routing/region.h"
#include "routing/registry.h"

/* ---- SHOW HELP, VERSION, CONFIG ---- */

static const struct admin_column show_help_cols[] = {{"command", ADMIN_TEXT, 0},
                                                     {"description", ADMIN_TEXT, 0}};

/*
 * SHOW HELP: every command's syntax and help line, from the command table, so
 * the list cannot go stale.
 */
static int show_help(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    size_t n;
    const struct admin_command_def *defs = admin_commands(&n);
    result_init(&wait->res, ADMIN_COLS(show_help_cols));
    for (size_t i = 0; i < n; i++) {
        result_text(&wait->res, defs[i].syntax);
        result_text(&wait->res, defs[i].help);
    }
    result_set_tag(&wait->res, "SHOW");
    return CMD_DONE;
}

const struct admin_command show_help_command = {
    .cols = show_help_cols,
    .ncols = ADMIN_NCOLS(show_help_cols),
    .run = show_help,
};

static const struct admin_column show_version_cols[] = {{"version", ADMIN_TEXT, 0}};

/* SHOW VERSION: the build's version, as pgnear --version prints it. */
static int show_version(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    result_init(&wait->res, ADMIN_COLS(show_version_cols));
    result_text(&wait->res, "pgnear " PACKAGE_VERSION);
    result_set_tag(&wait->res, "SHOW");
    return CMD_DONE;
}

const struct admin_command show_version_command = {
    .cols = show_version_cols,
    .ncols = ADMIN_NCOLS(show_version_cols),
    .run = show_version,
};

static const struct admin_column show_config_cols[] = {
    {"setting", ADMIN_TEXT, 0}, {"value", ADMIN_TEXT, 0}, {"reloadable", ADMIN_BOOL, 0}};

/* config_visit's callback: one setting as one row. */
static void config_row(void *arg, const char *name, const char *value, bool reloadable)
{
    struct admin_result *res = arg;
    result_text(res, name);
    result_text(res, value);
    result_bool(res, reloadable);
}

/* SHOW CONFIG: the settings this worker's configuration holds (the last reload's). */
static int show_config(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    result_init(&wait->res, ADMIN_COLS(show_config_cols));
    config_visit(s->w->cfg, config_row, &wait->res);
    result_set_tag(&wait->res, "SHOW");
    return CMD_DONE;
}

const struct admin_command show_config_command = {
    .cols = show_config_cols,
    .ncols = ADMIN_NCOLS(show_config_cols),
    .run = show_config,
};

static const struct admin_column show_peers_cols[] = {{"peer_id", ADMIN_INT8, 0},
                                                      {"address", ADMIN_TEXT, 0},
                                                      {"self", ADMIN_BOOL, 0},
                                                      {"reachable", ADMIN_BOOL, 0},
                                                      {"forwarded_out", ADMIN_INT8, 0},
                                                      {"forwarded_in", ADMIN_INT8, 0},
                                                      {"failed", ADMIN_INT8, 0},
                                                      {"last_error", ADMIN_TEXT, 0},
                                                      {"last_forward", ADMIN_TIMESTAMPTZ, 0}};

/* One row an entry of peers, with what this instance forwarded to it and received from it. */
static int show_peers(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    (void)cmd;
    const struct config *cfg = s->w->cfg;
    struct admin_result *res = &wait->res;
    result_init(res, ADMIN_COLS(show_peers_cols));
    if (cfg->peer_id == 0)
        result_notice(res, "peer_id is 0: this instance forwards no cancel requests");
    for (size_t i = 0; i < cfg->peer_list.count; i++) {
        const struct peer *p = &cfg->peer_list.items[i];
        struct peer_stat st;
        peer_stats_read(&s->w->shared->peers, p->id, &st);
        bool self = p->id == cfg->peer_id;
        result_int(res, p->id);
        result_textf(res, "%s:%d", p->where.host, p->where.port);
        result_bool(res, self);
        if (self || st.reachable < 0)
            result_null(res);
        else
            result_bool(res, st.reachable == 1);
        result_int(res, (int64_t)st.forwarded_out);
        result_int(res, (int64_t)st.forwarded_in);
        result_int(res, (int64_t)st.failed);
        if (st.last_error[0] != '\0')
            result_text(res, st.last_error);
        else
            result_null(res);
        if (st.last_forward != 0)
            result_time(res, st.last_forward);
        else
            result_null(res);
    }
    result_set_tag(res, "SHOW");
    return CMD_DONE;
}

const struct admin_command show_peers_command = {
    .cols = show_peers_cols,
    .ncols = ADMIN_NCOLS(show_peers_cols),
    .run = show_peers,
};

/* ---- commands that gather from every worker ---- */

struct snapshot_request {
    struct console_wait *wait;
    snapshot_render_fn render;
};

/*
 * The snapshot is in from every worker: rendered, then answered; a partial one
 * says so in a NOTICE.
 */
static void snapshot_answer(struct snapshot *snap, void *arg)
{
    struct snapshot_request *req = arg;
    req->render(snap, &req->wait->res);
    if (snapshot_partial(snap))
        result_notice(&req->wait->res, "some workers could not answer in full (out of memory, or "
                                       "shutting down): the figures are partial");
    result_set_tag(&req->wait->res, "SHOW");
    snapshot_free(snap);
    req->wait->answer(req->wait, CMD_DONE);
    free(req);
}

int show_snapshot(struct session *s, unsigned what, snapshot_render_fn render,
                  struct console_wait *wait)
{
    struct snapshot_request *req = calloc(1, sizeof(*req));
    if (req == NULL || snapshot_take(s->w, what, snapshot_answer, req) != 0) {
        free(req);
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    req->wait = wait;
    req->render = render;
    return CMD_PENDING;
}

static const struct admin_column show_stats_cols[] = {{"stat", ADMIN_TEXT, 0},
                                                      {"value", ADMIN_INT8, 0},
                                                      {"description", ADMIN_TEXT, 0},
                                                      {"p50_ms", ADMIN_NUMERIC, 3},
                                                      {"p99_ms", ADMIN_NUMERIC, 3}};

/* SHOW STATS: the counters summed over the workers, one row each, with what it counts. */
static void render_stats(const struct snapshot *snap, struct admin_result *res)
{
    struct worker_stats sum;
    size_t n;
    const struct stat_field *f = stat_fields(&n);
    snapshot_sum_stats(snap, &sum);
    result_init(res, ADMIN_COLS(show_stats_cols));
    for (size_t i = 0; i < n; i++) {
        result_text(res, f[i].name);
        result_int(res, (int64_t)stat_field_value(&sum, &f[i]));
        result_text(res, f[i].help);
        result_null(res); /* p50_ms, p99_ms: a histogram's */
        result_null(res);
    }
    latency_stats_rows(res, snap);
}

const struct admin_command show_stats_command = {
    .cols = show_stats_cols,
    .ncols = ADMIN_NCOLS(show_stats_cols),
    .render = render_stats,
};

static const struct admin_column show_lists_cols[] = {{"list", ADMIN_TEXT, 0},
                                                      {"items", ADMIN_INT8, 0}};

/* One SHOW LISTS row: a name and its count. */
static void lists_row(struct admin_result *res, const char *name, uint64_t n)
{
    result_text(res, name);
    result_int(res, (int64_t)n);
}

/*
 * SHOW LISTS: sessions and servers summed over the workers; the hosts from
 * worker 0, which all share.
 */
static void render_lists(const struct snapshot *snap, struct admin_result *res)
{
    struct snapshot_lists sum;
    uint64_t up = 0;
    snapshot_sum_lists(snap, &sum);
    const struct snapshot_part *p0 = &snap->parts[0];
    for (size_t i = 0; i < p0->nhosts; i++)
        up += p0->hosts[i].up;
    result_init(res, ADMIN_COLS(show_lists_cols));
    lists_row(res, "clients_login", sum.login_sessions);
    lists_row(res, "clients_waiting", sum.waiting_sessions);
    lists_row(res, "clients_active", sum.active_sessions);
    lists_row(res, "admin_sessions", sum.admin_sessions);
    lists_row(res, "servers_login", sum.login_servers);
    lists_row(res, "servers_active", sum.active_servers);
    lists_row(res, "servers_used", sum.used_servers);
    lists_row(res, "servers_idle", sum.idle_servers);
    lists_row(res, "hosts", p0->nhosts);
    lists_row(res, "hosts_up", up);
    lists_row(res, "workers", (uint64_t)snap->nparts);
}

const struct admin_command show_lists_command = {
    .cols = show_lists_cols,
    .ncols = ADMIN_NCOLS(show_lists_cols),
    .render = render_lists,
    .snapshot = SNAPSHOT_HOSTS,
};

static const struct admin_column show_clients_cols[] = {{"id", ADMIN_INT8, 0},
                                                        {"address", ADMIN_TEXT, 0},
                                                        {"user", ADMIN_TEXT, 0},
                                                        {"database", ADMIN_TEXT, 0},
                                                        {"application_name", ADMIN_TEXT, 0},
                                                        {"state", ADMIN_TEXT, 0},
                                                        {"tls", ADMIN_BOOL, 0},
                                                        {"region", ADMIN_TEXT, 0},
                                                        {"server", ADMIN_TEXT, 0},
                                                        {"locality_source", ADMIN_TEXT, 0},
                                                        {"city", ADMIN_TEXT, 0},
                                                        {"latitude", ADMIN_NUMERIC, 4},
                                                        {"longitude", ADMIN_NUMERIC, 4},
                                                        {"distance_km", ADMIN_NUMERIC, 0},
                                                        {"connected_at", ADMIN_TIMESTAMPTZ, 0},
                                                        {"bytes_in", ADMIN_INT8, 0},
                                                        {"bytes_out", ADMIN_INT8, 0},
                                                        {"worker", ADMIN_INT8, 0},
                                                        {"in_transaction", ADMIN_BOOL, 0},
                                                        {"transport", ADMIN_TEXT, 0},
                                                        {"locality_via", ADMIN_TEXT, 0},
                                                        {"needing", ADMIN_TEXT, 0},
                                                        {"fence", ADMIN_TEXT, 0},
                                                        {"min_lsn", ADMIN_TEXT, 0},
                                                        {"moves", ADMIN_INT8, 0},
                                                        {"movable", ADMIN_TEXT, 0},
                                                        {"pinned", ADMIN_TEXT, 0},
                                                        {"reads_at", ADMIN_TEXT, 0},
                                                        {"writes_at", ADMIN_TEXT, 0},
                                                        {"forwarded", ADMIN_INT8, 0}};

/* An empty name as NULL: SQL's way of saying "none". */
static void text_or_null(struct admin_result *res, const char *s)
{
    if (s[0] == '\0')
        result_null(res);
    else
        result_text(res, s);
}

/* One SHOW CLIENTS row; a column the session does not know (yet) is NULL, not empty. */
static void client_row(struct admin_result *res, const struct client_row *c)
{
    result_int(res, (int64_t)c->id);
    result_text(res, c->addr);
    result_text(res, c->user);
    result_text(res, c->database);
    text_or_null(res, c->application_name);
    result_text(res, client_row_state_name(c->state));
    result_bool(res, c->tls);
    text_or_null(res, c->region);
    text_or_null(res, c->server);
    text_or_null(res, c->source);
    text_or_null(res, c->place);
    if (c->has_coords) {
        result_numeric(res, c->lat);
        result_numeric(res, c->lon);
    } else {
        result_null(res);
        result_null(res);
    }
    if (c->km >= 0)
        result_numeric(res, c->km);
    else
        result_null(res);
    result_time(res, c->connected_at);
    result_int(res, (int64_t)c->bytes_in);
    result_int(res, (int64_t)c->bytes_out);
    result_int(res, c->worker);
    result_bool(res, c->in_transaction);
    result_text(res, c->transport);
    text_or_null(res, c->via);
    result_text(res, c->need);
    text_or_null(res, c->fence);
    text_or_null(res, c->min_lsn);
    result_int(res, c->moves);
    text_or_null(res, c->movable);
    text_or_null(res, c->pinned);
    text_or_null(res, c->reads_at);
    text_or_null(res, c->writes_at);
    if (c->forwarded >= 0)
        result_int(res, c->forwarded);
    else
        result_null(res);
}

/* SHOW CLIENTS: every worker's sessions, worker by worker. */
static void render_clients(const struct snapshot *snap, struct admin_result *res)
{
    result_init(res, ADMIN_COLS(show_clients_cols));
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nclients; j++)
            client_row(res, &snap->parts[i].clients[j]);
}

const struct admin_command show_clients_command = {
    .cols = show_clients_cols,
    .ncols = ADMIN_NCOLS(show_clients_cols),
    .render = render_clients,
    .snapshot = SNAPSHOT_CLIENTS,
};

static const struct admin_column show_servers_cols[] = {{"region", ADMIN_TEXT, 0},
                                                        {"server", ADMIN_TEXT, 0},
                                                        {"state", ADMIN_TEXT, 0},
                                                        {"client", ADMIN_INT8, 0},
                                                        {"connected_at", ADMIN_TIMESTAMPTZ, 0},
                                                        {"bytes_in", ADMIN_INT8, 0},
                                                        {"bytes_out", ADMIN_INT8, 0},
                                                        {"worker", ADMIN_INT8, 0},
                                                        {"id", ADMIN_INT8, 0},
                                                        {"pid", ADMIN_INT8, 0},
                                                        {"tls", ADMIN_BOOL, 0},
                                                        {"tx_status", ADMIN_TEXT, 0},
                                                        {"requests_outstanding", ADMIN_INT8, 0},
                                                        {"safe_point", ADMIN_BOOL, 0},
                                                        {"server_version", ADMIN_TEXT, 0},
                                                        {"uses", ADMIN_INT8, 0},
                                                        {"database", ADMIN_TEXT, 0},
                                                        {"user", ADMIN_TEXT, 0},
                                                        {"age", ADMIN_INT8, 0},
                                                        {"idle", ADMIN_INT8, 0}};

/* The transaction status as PostgreSQL's ReadyForQuery names it. */
static const char *tx_status_name(char status)
{
    switch (status) {
    case 'I':
        return "idle";
    case 'T':
        return "in transaction";
    case 'E':
        return "failed transaction";
    default:
        return "unknown";
    }
}

/* One SHOW SERVERS row; ages are in seconds, NULL when the connection never was idle. */
static void server_row(struct admin_result *res, const struct server_row *sv)
{
    result_text(res, sv->region);
    result_text(res, sv->server);
    result_text(res, server_row_state_name(sv->state));
    if (sv->client != 0)
        result_int(res, (int64_t)sv->client);
    else
        result_null(res);
    result_time_us(res, sv->connected_at_us);
    result_int(res, (int64_t)sv->bytes_in);
    result_int(res, (int64_t)sv->bytes_out);
    result_int(res, sv->worker);
    result_int(res, (int64_t)sv->id);
    if (sv->pid != 0)
        result_int(res, sv->pid);
    else
        result_null(res);
    result_bool(res, sv->tls);
    result_text(res, tx_status_name(sv->tx_status));
    result_int(res, sv->outstanding);
    result_bool(res, sv->safe_point);
    if (sv->server_version[0] != '\0')
        result_text(res, sv->server_version);
    else
        result_null(res);
    result_int(res, sv->uses);
    result_text(res, sv->database);
    result_text(res, sv->user);
    int64_t now_us = wall_clock_us();
    result_int(res, (now_us - sv->connected_at_us) / 1000000);
    if (sv->idle_since_us != 0)
        result_int(res, (now_us - sv->idle_since_us) / 1000000);
    else
        result_null(res);
}

/* Every server connection, from the workers' server lists: logging in, or serving a client. */
static void render_servers(const struct snapshot *snap, struct admin_result *res)
{
    result_init(res, ADMIN_COLS(show_servers_cols));
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nservers; j++)
            server_row(res, &snap->parts[i].servers[j]);
}

const struct admin_command show_servers_command = {
    .cols = show_servers_cols,
    .ncols = ADMIN_NCOLS(show_servers_cols),
    .render = render_servers,
    .snapshot = SNAPSHOT_SERVERS,
};

static const struct admin_column show_regions_cols[] = {
    {"region", ADMIN_TEXT, 0},      {"state", ADMIN_TEXT, 0},
    {"latitude", ADMIN_NUMERIC, 4}, {"longitude", ADMIN_NUMERIC, 4},
    {"host", ADMIN_TEXT, 0},        {"port", ADMIN_INT8, 0},
    {"role", ADMIN_TEXT, 0},        {"up", ADMIN_BOOL, 0},
    {"rtt_ms", ADMIN_NUMERIC, 3},   {"last_check", ADMIN_TIMESTAMPTZ, 0},
    {"last_error", ADMIN_TEXT, 0},  {"times_down", ADMIN_INT8, 0},
    {"sessions", ADMIN_INT8, 0},    {"paused", ADMIN_BOOL, 0},
    {"read_only", ADMIN_BOOL, 0},   {"lag_s", ADMIN_NUMERIC, 3},
    {"lag_bytes", ADMIN_INT8, 0},   {"passed_over", ADMIN_BOOL, 0},
    {"lsn", ADMIN_TEXT, 0},         {"timeline", ADMIN_INT8, 0},
    {"fenced", ADMIN_TEXT, 0}};

/*
 * One SHOW REGIONS row: a host as its health checks and its region's state see
 * it, with the sessions it serves.
 */
static void region_host_row(const struct snapshot *snap, struct admin_result *res,
                            const struct host_row *h)
{
    char server[SNAPSHOT_NAME_MAX + 8];
    snprintf(server, sizeof(server), "%s:%d", h->host, h->port);
    result_text(res, h->region);
    result_text(res, h->admin_state);
    if (h->has_location) {
        result_numeric(res, h->lat);
        result_numeric(res, h->lon);
    } else {
        result_null(res);
        result_null(res);
    }
    result_text(res, h->host);
    result_int(res, h->port);
    result_text(res, !h->role_known ? "unknown"
                     : h->standby   ? "standby"
                     : h->fenced    ? "former primary"
                                    : "primary");
    result_bool(res, h->up);
    if (h->checked && h->last_error[0] == '\0')
        result_numeric(res, h->rtt_ms);
    else
        result_null(res);
    result_time(res, h->last_check);
    text_or_null(res, h->last_error);
    result_int(res, h->downs);
    result_int(res, (int64_t)snapshot_server_sessions(snap, h->region, server));
    result_bool(res, h->paused);
    result_bool(res, h->read_only);
    if (h->lag_ms >= 0)
        result_numeric(res, (double)h->lag_ms / 1000.0);
    else
        result_null(res);
    if (h->lag_bytes >= 0)
        result_int(res, h->lag_bytes);
    else
        result_null(res);
    result_bool(res, h->standby && h->lagging); /* for reads, for lag: need.h */
    char lsn[LSN_TEXT_MAX];
    if (h->lsn != 0)
        result_text(res, lsn_format(0, h->lsn, lsn, sizeof(lsn)));
    else
        result_null(res);
    if (h->timeline != 0)
        result_int(res, h->timeline);
    else
        result_null(res);
    text_or_null(res, h->fenced_why);
}

/* SHOW REGIONS: the hosts from worker 0; health is shared, so every worker sees the same. */
static void render_regions(const struct snapshot *snap, struct admin_result *res)
{
    result_init(res, ADMIN_COLS(show_regions_cols));
    const struct snapshot_part *p0 = &snap->parts[0];
    for (size_t i = 0; i < p0->nhosts; i++)
        region_host_row(snap, res, &p0->hosts[i]);
}

const struct admin_command show_regions_command = {
    .cols = show_regions_cols,
    .ncols = ADMIN_NCOLS(show_regions_cols),
    .render = render_regions,
    .snapshot = SNAPSHOT_HOSTS | SNAPSHOT_CLIENTS,
};

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

/* ---- SHOW ROUTE ---- */

static const struct admin_column show_route_cols[] = {{"rank", ADMIN_INT8, 0},
                                                      {"region", ADMIN_TEXT, 0},
                                                      {"distance_km", ADMIN_NUMERIC, 0},
                                                      {"up", ADMIN_BOOL, 0},
                                                      {"state", ADMIN_TEXT, 0},
                                                      {"source", ADMIN_TEXT, 0},
                                                      {"reason", ADMIN_TEXT, 0},
                                                      {"needing", ADMIN_TEXT, 0},
                                                      {"fit", ADMIN_TEXT, 0},
                                                      {"route_by", ADMIN_TEXT, 0},
                                                      {"measured_ms", ADMIN_NUMERIC, 3},
                                                      {"score_ms", ADMIN_NUMERIC, 1},
                                                      {"candidate", ADMIN_BOOL, 0},
                                                      {"preferred", ADMIN_BOOL, 0},
                                                      {"why", ADMIN_TEXT, 0}};

/* How a region of the plan serves the need, in SHOW ROUTE's words. */
static const char *route_fit_name(enum need_fit fit)
{
    switch (fit) {
    case NEED_FIT_GOOD:
        return "fits";
    case NEED_FIT_FALLBACK:
        return "fallback";
    case NEED_FIT_LAST:
        return "down: tried last";
    default:
        return "passed over";
    }
}

/*
 * SHOW ROUTE's columns of measurement (rtt.h): route_by, pgnear's round
 * trip to r (NULL while cold), its score, whether a candidate, whether
 * the caller's group prefers it (the last three NULL by distance), why.
 */
static void route_order_cells(struct admin_result *res, const struct routing_data *rd,
                              const struct route_explanation *e, const struct region *r,
                              size_t rank)
{
    const struct route_score *sc = route_explain_score(rd, e, r);
    result_text(res, route_by_name(e->by));
    if (sc != NULL && sc->rtt_ms >= 0)
        result_numeric(res, sc->rtt_ms);
    else
        result_null(res);
    if (sc != NULL && sc->score_ms >= 0)
        result_numeric(res, sc->score_ms);
    else
        result_null(res);
    if (sc != NULL) {
        result_bool(res, sc->candidate);
        result_bool(res, route_explain_preferred(e, r));
    } else {
        result_null(res);
        result_null(res);
    }
    char why[400];
    result_text(res, route_explain_order(rd, e, r, rank, why, sizeof(why)));
}

/* One row of SHOW ROUTE for need: rank 0 (NULL) and km < 0 (NULL) for a region passed over. */
static void route_region_row(struct admin_result *res, const struct routing_data *rd,
                             const struct route_explanation *e, const struct need_spec *need,
                             const struct region *r, size_t rank, double km, const char *fit)
{
    if (rank > 0)
        result_int(res, (int64_t)rank);
    else
        result_null(res);
    result_text(res, r->name);
    if (km >= 0)
        result_numeric(res, km);
    else
        result_null(res);
    result_bool(res, region_is_up(r));
    result_text(res, snapshot_admin_state_name((int)registry_admin_state(r->runtime)));
    result_textf(res, "%s (%s)", e->source, e->loc.via);
    result_text(res, e->reason);
    result_text(res, need_name(need->role));
    result_text(res, fit);
    route_order_cells(res, rd, e, r, rank);
}

/* The regions need passes over, after its plan: no rank, and why in fit. */
static void route_passed_over_rows(const struct routing_data *rd, const struct route_explanation *e,
                                   const struct need_spec *need, struct admin_result *res)
{
    for (size_t i = 0; i < rd->regions->count; i++) {
        const struct region *r = &rd->regions->items[i];
        char why[160], fit[200];
        if (!registry_takes_sessions(r->runtime) || need_region_fit(r, need) != NEED_FIT_NONE)
            continue;
        snprintf(fit, sizeof(fit), "passed over: %s",
                 need_region_shortfall(r, need, why, sizeof(why)));
        route_region_row(res, rd, e, need, r, 0, -1, fit);
    }
}

/* A leg's rows: its plan, ranked, then the regions it passes over. */
static void route_leg_rows(const struct routing_data *rd, const struct route_explanation *e,
                           const struct need_spec *need, struct region *const *plan,
                           const double *km, size_t n, struct admin_result *res)
{
    for (size_t i = 0; i < n; i++)
        route_region_row(res, rd, e, need, plan[i], i + 1, km[i],
                         route_fit_name(need_region_fit(plan[i], need)));
    route_passed_over_rows(rd, e, need, res);
}

/* The evidence as a session would give it; false (and the error set) when it cannot be. */
static bool route_input(const struct admin_cmd *cmd, struct locality_input *in,
                        struct sockaddr_storage *addr, struct pg_error *err)
{
    memset(in, 0, sizeof(*in));
    switch (cmd->route_target) {
    case ADMIN_ROUTE_CITY:
        in->city = cmd->value, in->city_via = "SHOW ROUTE";
        return true;
    case ADMIN_ROUTE_REGION:
        in->region = cmd->value, in->region_via = "SHOW ROUTE";
        return true;
    case ADMIN_ROUTE_LOCATION:
        in->location = cmd->value, in->location_via = "SHOW ROUTE";
        return true;
    default:
        if (!route_parse_address(cmd->value, addr)) {
            pg_error_set(err, "22P02", "invalid IP address: \"%s\"", cmd->value);
            return false;
        }
        in->addr = (const struct sockaddr *)addr;
        return true;
    }
}

/*
 * SHOW ROUTE: where a session with this evidence would go, and the regions
 * passed over, without connecting anywhere.
 */
static int show_route(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct locality_input in;
    struct sockaddr_storage addr;
    if (!route_input(cmd, &in, &addr, &wait->err))
        return CMD_ERROR;
    struct route_explanation *e = malloc(sizeof(*e));
    if (e == NULL) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    int role = cmd->need >= 0 ? cmd->need : s->w->cfg->target_session_attrs;
    struct need_spec need = {.role = (enum session_need)role};
    route_explain(&s->w->cfg->routing, &in, &need, true, e);
    struct admin_result *res = &wait->res;
    result_init(res, ADMIN_COLS(show_route_cols));
    route_leg_rows(&s->w->cfg->routing, e, &e->need, e->plan, e->km, e->n, res);
    /* nearest: then where its writes go, as NEEDING read-write would rank them. */
    if (e->need.role == NEED_NEAREST)
        route_leg_rows(&s->w->cfg->routing, e, &e->write_need, e->writes, e->writes_km, e->nwrites,
                       res);
    for (int i = 0; i < e->nnotes; i++)
        result_notice(res, "%s", e->notes[i]);
    result_set_tag(res, "SHOW");
    free(e);
    return CMD_DONE;
}

const struct admin_command show_route_command = {
    .cols = show_route_cols,
    .ncols = ADMIN_NCOLS(show_route_cols),
    .run = show_route,
};
