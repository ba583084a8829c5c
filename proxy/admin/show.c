/*
 * show.c — the SHOW commands' answers: HELP, VERSION, CONFIG and PEERS
 * from the admin's own worker; STATS, LISTS and REGIONS rendered from a
 * snapshot of every worker (snapshot.c), answered once all have given
 * theirs (show_snapshot, which the other files' snapshot commands share).
 * Each command's struct admin_command is defined beside its columns and
 * code; the command table in commands.c points at them.  The other SHOWs
 * have files of their own: CLIENTS and SERVERS (show_clients.c), POOLS
 * (show_pools.c), ROUTE (show_route.c), RTT (show_rtt.c), USERS and
 * DATABASES (show_users.c), HOMES (show_homes.c).
 */
#include "proxy/admin/show.h"

#include <stdio.h>
#include <stdlib.h>

#include "pgnear-build.h"
#include "protocol/lsn.h"
#include "proxy/admin/latency_report.h"
#include "proxy/admin/snapshot.h"
#include "proxy/base/config.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"

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
    lists_row(res, "clients_quiet", sum.quiet_clients); /* of the active: no buffers held */
    lists_row(res, "admin_sessions", sum.admin_sessions);
    lists_row(res, "servers_login", sum.login_servers);
    lists_row(res, "servers_active", sum.active_servers);
    lists_row(res, "servers_used", sum.used_servers);
    lists_row(res, "servers_idle", sum.idle_servers);
    lists_row(res, "buffers_spare", sum.spare_buffers);
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
    result_text_or_null(res, h->last_error);
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
    result_text_or_null(res, h->fenced_why);
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
