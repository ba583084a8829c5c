/*
 * commands.c — what each admin command does: a table of {command,
 * columns, handler}.  The grammar (grammar.c) knows the words and the help
 * text; here each kind of command gets its columns, for Describe before it
 * runs, and its handler.
 *
 * Handlers run on the admin session's worker.  What belongs to other
 * workers (their sessions, their counters) is gathered by snapshot.c or
 * asked for with worker_call; what only worker 0 may touch (a reload, the
 * health checks' records) is asked of worker 0 the same way.  Such a
 * handler returns CMD_PENDING and answers through console_command_done.
 */
#include "proxy/admin/commands.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include "pgnear-build.h"
#include "proxy/admin/console.h"
#include "proxy/admin/migrations.h"
#include "proxy/admin/pause.h"
#include "proxy/admin/snapshot.h"
#include "proxy/config.h"
#include "proxy/daemon.h"
#include "proxy/log.h"
#include "proxy/pool.h"
#include "proxy/server_conn.h"
#include "proxy/session.h"
#include "proxy/worker.h"
#include "proxy/worker_call.h"
#include "routing/explain.h"
#include "routing/region.h"
#include "routing/registry.h"

typedef int (*command_fn)(struct session *s, const struct admin_cmd *cmd,
                          struct console_wait *wait);

typedef void (*snapshot_render_fn)(const struct snapshot *snap, struct admin_result *res);

/* A command either runs a handler or renders a snapshot of the workers (run_snapshot). */
struct command_def {
    enum admin_cmd_kind kind;
    const struct admin_column *cols;
    int ncols;
    command_fn run;
    unsigned snapshot; /* SNAPSHOT_* beyond the counters, for render */
    snapshot_render_fn render;
};

#define COLS(a) a, (int)(sizeof(a) / sizeof(a[0]))

/* ---- SHOW HELP, VERSION, CONFIG ---- */

static const struct admin_column help_cols[] = {{"command", ADMIN_TEXT, 0},
                                                {"description", ADMIN_TEXT, 0}};

static int show_help(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    size_t n;
    const struct admin_command_def *defs = admin_commands(&n);
    result_init(&wait->res, COLS(help_cols));
    for (size_t i = 0; i < n; i++) {
        result_text(&wait->res, defs[i].syntax);
        result_text(&wait->res, defs[i].help);
    }
    result_set_tag(&wait->res, "SHOW");
    return CMD_DONE;
}

static const struct admin_column version_cols[] = {{"version", ADMIN_TEXT, 0}};

static int show_version(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    result_init(&wait->res, COLS(version_cols));
    result_text(&wait->res, "pgnear " PACKAGE_VERSION);
    result_set_tag(&wait->res, "SHOW");
    return CMD_DONE;
}

static const struct admin_column config_cols[] = {
    {"setting", ADMIN_TEXT, 0}, {"value", ADMIN_TEXT, 0}, {"reloadable", ADMIN_BOOL, 0}};

static void config_row(void *arg, const char *name, const char *value, bool reloadable)
{
    struct admin_result *res = arg;
    result_text(res, name);
    result_text(res, value);
    result_bool(res, reloadable);
}

static int show_config(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    result_init(&wait->res, COLS(config_cols));
    config_visit(s->w->cfg, config_row, &wait->res);
    result_set_tag(&wait->res, "SHOW");
    return CMD_DONE;
}

/* ---- commands that gather from every worker ---- */

struct snapshot_request {
    struct console_wait *wait;
    snapshot_render_fn render;
};

static void snapshot_answer(struct snapshot *snap, void *arg)
{
    struct snapshot_request *req = arg;
    req->render(snap, &req->wait->res);
    if (snapshot_partial(snap))
        result_notice(&req->wait->res, "some workers could not answer in full (out of memory, or "
                                       "shutting down): the figures are partial");
    result_set_tag(&req->wait->res, "SHOW");
    snapshot_free(snap);
    console_command_done(req->wait, CMD_DONE);
    free(req);
}

static int run_snapshot(struct session *s, unsigned what, snapshot_render_fn render,
                        struct console_wait *wait)
{
    struct snapshot_request *req = calloc(1, sizeof(*req));
    if (req == NULL || snapshot_take(s->w, what, snapshot_answer, req) != 0) {
        free(req);
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    req->wait = wait;
    req->render = render;
    return CMD_PENDING;
}

static const struct admin_column stats_cols[] = {
    {"stat", ADMIN_TEXT, 0}, {"value", ADMIN_INT8, 0}, {"description", ADMIN_TEXT, 0}};

static void render_stats(const struct snapshot *snap, struct admin_result *res)
{
    struct worker_stats sum;
    size_t n;
    const struct stat_field *f = stat_fields(&n);
    snapshot_sum_stats(snap, &sum);
    result_init(res, COLS(stats_cols));
    for (size_t i = 0; i < n; i++) {
        result_text(res, f[i].name);
        result_int(res, (int64_t)stat_field_value(&sum, &f[i]));
        result_text(res, f[i].help);
    }
}

static const struct admin_column lists_cols[] = {{"list", ADMIN_TEXT, 0}, {"items", ADMIN_INT8, 0}};

static void lists_row(struct admin_result *res, const char *name, uint64_t n)
{
    result_text(res, name);
    result_int(res, (int64_t)n);
}

static void render_lists(const struct snapshot *snap, struct admin_result *res)
{
    uint64_t login = 0, waiting = 0, active = 0, admin = 0, sv_login = 0, sv_active = 0,
             sv_used = 0, sv_idle = 0, up = 0;
    for (int i = 0; i < snap->nparts; i++) {
        login += snap->parts[i].login_sessions;
        waiting += snap->parts[i].waiting_sessions;
        active += snap->parts[i].active_sessions;
        admin += snap->parts[i].admin_sessions;
        sv_login += snap->parts[i].login_servers;
        sv_active += snap->parts[i].active_servers;
        sv_used += snap->parts[i].used_servers;
        sv_idle += snap->parts[i].idle_servers;
    }
    const struct snapshot_part *p0 = &snap->parts[0];
    for (size_t i = 0; i < p0->nhosts; i++)
        up += p0->hosts[i].up;
    result_init(res, COLS(lists_cols));
    lists_row(res, "clients_login", login);
    lists_row(res, "clients_waiting", waiting);
    lists_row(res, "clients_active", active);
    lists_row(res, "admin_sessions", admin);
    lists_row(res, "servers_login", sv_login);
    lists_row(res, "servers_active", sv_active);
    lists_row(res, "servers_used", sv_used);
    lists_row(res, "servers_idle", sv_idle);
    lists_row(res, "hosts", p0->nhosts);
    lists_row(res, "hosts_up", up);
    lists_row(res, "workers", (uint64_t)snap->nparts);
}

static const struct admin_column clients_cols[] = {{"id", ADMIN_INT8, 0},
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
                                                   {"locality_via", ADMIN_TEXT, 0}};

/* An empty name as NULL: SQL's way of saying "none". */
static void text_or_null(struct admin_result *res, const char *s)
{
    if (s[0] == '\0')
        result_null(res);
    else
        result_text(res, s);
}

static void client_row(struct admin_result *res, const struct client_row *c)
{
    result_int(res, (int64_t)c->id);
    result_text(res, c->addr);
    result_text(res, c->user);
    result_text(res, c->database);
    text_or_null(res, c->application_name);
    result_text(res, c->state);
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
}

static void render_clients(const struct snapshot *snap, struct admin_result *res)
{
    result_init(res, COLS(clients_cols));
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nclients; j++)
            client_row(res, &snap->parts[i].clients[j]);
}

static const struct admin_column servers_cols[] = {{"region", ADMIN_TEXT, 0},
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

static void server_row(struct admin_result *res, const struct server_row *sv)
{
    result_text(res, sv->region);
    result_text(res, sv->server);
    result_text(res, sv->state);
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
    int64_t now_us = server_conn_now_us();
    result_int(res, (now_us - sv->connected_at_us) / 1000000);
    if (sv->idle_since_us != 0)
        result_int(res, (now_us - sv->idle_since_us) / 1000000);
    else
        result_null(res);
}

/* Every server connection, from the workers' server lists: logging in, or serving a client. */
static void render_servers(const struct snapshot *snap, struct admin_result *res)
{
    result_init(res, COLS(servers_cols));
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nservers; j++)
            server_row(res, &snap->parts[i].servers[j]);
}

static const struct admin_column regions_cols[] = {
    {"region", ADMIN_TEXT, 0},      {"state", ADMIN_TEXT, 0},
    {"latitude", ADMIN_NUMERIC, 4}, {"longitude", ADMIN_NUMERIC, 4},
    {"host", ADMIN_TEXT, 0},        {"port", ADMIN_INT8, 0},
    {"role", ADMIN_TEXT, 0},        {"up", ADMIN_BOOL, 0},
    {"rtt_ms", ADMIN_NUMERIC, 3},   {"last_check", ADMIN_TIMESTAMPTZ, 0},
    {"last_error", ADMIN_TEXT, 0},  {"times_down", ADMIN_INT8, 0},
    {"sessions", ADMIN_INT8, 0},    {"paused", ADMIN_BOOL, 0}};

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
    result_text(res, !h->role_known ? "unknown" : h->standby ? "standby" : "primary");
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
}

static void render_regions(const struct snapshot *snap, struct admin_result *res)
{
    result_init(res, COLS(regions_cols));
    const struct snapshot_part *p0 = &snap->parts[0];
    for (size_t i = 0; i < p0->nhosts; i++)
        region_host_row(snap, res, &p0->hosts[i]);
}

static const struct admin_column pools_cols[] = {
    {"region", ADMIN_TEXT, 0},     {"database", ADMIN_TEXT, 0},   {"user", ADMIN_TEXT, 0},
    {"cl_active", ADMIN_INT8, 0},  {"cl_waiting", ADMIN_INT8, 0}, {"cl_held", ADMIN_INT8, 0},
    {"sv_active", ADMIN_INT8, 0},  {"sv_idle", ADMIN_INT8, 0},    {"sv_used", ADMIN_INT8, 0},
    {"sv_tested", ADMIN_INT8, 0},  {"sv_login", ADMIN_INT8, 0},   {"maxwait", ADMIN_INT8, 0},
    {"maxwait_us", ADMIN_INT8, 0}, {"pool_mode", ADMIN_TEXT, 0}};

/* One pool: a region, database and user, with its clients and servers counted by state. */
struct pool_row {
    const char *region, *database, *user; /* in the snapshot's rows */
    int64_t cl_active, cl_waiting, cl_held;
    int64_t sv_active, sv_idle, sv_used, sv_tested, sv_login;
    int64_t maxwait_us;
};

/* The pool of (region, database, user) in pools[0..*n), added when new; NULL when full. */
static struct pool_row *pool_row_find(struct pool_row *pools, size_t *n, size_t cap,
                                      const char *region, const char *database, const char *user)
{
    for (size_t k = 0; k < *n; k++)
        if (strcmp(pools[k].region, region) == 0 && strcmp(pools[k].database, database) == 0 &&
            strcmp(pools[k].user, user) == 0)
            return &pools[k];
    if (*n == cap)
        return NULL;
    pools[*n] = (struct pool_row){.region = region, .database = database, .user = user};
    return &pools[(*n)++];
}

static void pools_count_clients(const struct snapshot *snap, struct pool_row *pools, size_t *n,
                                size_t cap)
{
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nclients; j++) {
            const struct client_row *c = &snap->parts[i].clients[j];
            if (c->region[0] == '\0')
                continue; /* still logging in: in no pool yet */
            struct pool_row *p = pool_row_find(pools, n, cap, c->region, c->database, c->user);
            if (p == NULL)
                continue;
            if (strcmp(c->state, "held") == 0)
                p->cl_held++;
            else if (strcmp(c->state, "waiting") == 0) {
                p->cl_waiting++;
                int64_t waited = server_conn_now_us() - c->wait_since_us;
                if (waited > p->maxwait_us)
                    p->maxwait_us = waited;
            } else if (c->server[0] != '\0')
                p->cl_active++;
        }
}

static void pools_count_servers(const struct snapshot *snap, struct pool_row *pools, size_t *n,
                                size_t cap)
{
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nservers; j++) {
            const struct server_row *sv = &snap->parts[i].servers[j];
            struct pool_row *p = pool_row_find(pools, n, cap, sv->region, sv->database, sv->user);
            if (p == NULL)
                continue;
            if (strcmp(sv->state, "active") == 0)
                p->sv_active++;
            else if (strcmp(sv->state, "idle") == 0)
                p->sv_idle++;
            else if (strcmp(sv->state, "used") == 0)
                p->sv_used++;
            else if (strcmp(sv->state, "tested") == 0)
                p->sv_tested++;
            else
                p->sv_login++;
        }
}

/* A pool is a region, database and user: its clients and its server connections by state. */
static void render_pools(const struct snapshot *snap, struct admin_result *res)
{
    size_t cap = 0, n = 0;
    for (int i = 0; i < snap->nparts; i++)
        cap += snap->parts[i].nclients + snap->parts[i].nservers;
    struct pool_row *pools = calloc(cap > 0 ? cap : 1, sizeof(*pools));
    result_init(res, COLS(pools_cols));
    if (pools == NULL) {
        res->failed = true;
        return;
    }
    pools_count_clients(snap, pools, &n, cap);
    pools_count_servers(snap, pools, &n, cap);
    const char *mode = snap->parts[0].pool_mode == POOL_SESSION ? "session" : "none";
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
        result_text(res, mode);
    }
    free(pools);
}

struct reconnect_request {
    char region[SNAPSHOT_NAME_MAX]; /* "": every region */
    int closed, marked;             /* added up by the workers (atomically) */
    bool pool_none;                 /* pool_mode = none: connections close with their clients */
    struct console_wait *wait;
};

/* On each worker: its kept connections of the region closed, the others marked. */
static int reconnect_on_worker(struct worker *w, void *arg)
{
    struct reconnect_request *req = arg;
    int closed = 0, marked = 0;
    pool_reconnect(w, req->region[0] ? req->region : NULL, &closed, &marked);
    __atomic_add_fetch(&req->closed, closed, __ATOMIC_RELAXED);
    __atomic_add_fetch(&req->marked, marked, __ATOMIC_RELAXED);
    return 0;
}

static void reconnect_answered(struct worker *from, const struct worker_reply *r)
{
    struct reconnect_request *req = r->arg;
    struct console_wait *wait = req->wait;
    (void)from;
    result_init(&wait->res, NULL, 0);
    if (req->pool_none)
        result_notice(
            &wait->res,
            "no pooling (pool_mode = none, or auth = passthrough): each server connection "
            "closes with its client; closed %d kept from before",
            req->closed);
    else
        result_notice(&wait->res,
                      "closed %d idle server connection%s; %d in use will be closed as their "
                      "clients leave",
                      req->closed, req->closed == 1 ? "" : "s", req->marked);
    result_set_tag(&wait->res, "RECONNECT");
    free(req);
    console_command_done(wait, CMD_DONE);
}

/*
 * RECONNECT [region]: no kept server connection outlives the command; the
 * ones in use are replaced after their client leaves (a changed password
 * or server takes effect without cutting anybody off).
 */
static int reconnect_servers(struct session *s, const struct admin_cmd *cmd,
                             struct console_wait *wait)
{
    if (cmd->has_region && region_set_find(&s->w->cfg->regions, cmd->region) == NULL) {
        admin_error_set(&wait->err, "42704", NULL, "SHOW REGIONS lists them.",
                        "region \"%s\" does not exist", cmd->region);
        return CMD_ERROR;
    }
    struct reconnect_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    if (cmd->has_region)
        snprintf(req->region, sizeof(req->region), "%s", cmd->region);
    req->wait = wait;
    req->pool_none = !config_pooling(s->w->cfg);
    log_info(s->id, "admin %s asked for RECONNECT%s%s", s->user, cmd->has_region ? " " : "",
             cmd->has_region ? cmd->region : "");
    if (worker_call_all(s->w, reconnect_on_worker, req, reconnect_answered, NULL) != 0) {
        free(req);
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

/* ---- SHOW ROUTE ---- */

static const struct admin_column route_cols[] = {
    {"rank", ADMIN_INT8, 0},  {"region", ADMIN_TEXT, 0}, {"distance_km", ADMIN_NUMERIC, 0},
    {"up", ADMIN_BOOL, 0},    {"state", ADMIN_TEXT, 0},  {"source", ADMIN_TEXT, 0},
    {"reason", ADMIN_TEXT, 0}};

/* The evidence as a session would give it; false (and the error set) when it cannot be. */
static bool route_input(const struct admin_cmd *cmd, struct locality_input *in,
                        struct sockaddr_storage *addr, struct admin_error *err)
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
            admin_error_set(err, "22P02", NULL, NULL, "invalid IP address: \"%s\"", cmd->value);
            return false;
        }
        in->addr = (const struct sockaddr *)addr;
        return true;
    }
}

static int show_route(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct locality_input in;
    struct sockaddr_storage addr;
    if (!route_input(cmd, &in, &addr, &wait->err))
        return CMD_ERROR;
    struct route_explanation *e = malloc(sizeof(*e));
    if (e == NULL) {
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    route_explain(&s->w->cfg->routing, &in, true, e);
    struct admin_result *res = &wait->res;
    result_init(res, COLS(route_cols));
    for (size_t i = 0; i < e->n; i++) {
        const struct region *r = e->plan[i];
        result_int(res, (int64_t)i + 1);
        result_text(res, r->name);
        if (e->km[i] >= 0)
            result_numeric(res, e->km[i]);
        else
            result_null(res);
        result_bool(res, region_is_up(r));
        result_text(res, snapshot_admin_state_name((int)registry_admin_state(r->runtime)));
        result_textf(res, "%s (%s)", e->source, e->loc.via);
        result_text(res, e->reason);
    }
    for (int i = 0; i < e->nnotes; i++)
        result_notice(res, "%s", e->notes[i]);
    result_set_tag(res, "SHOW");
    free(e);
    return CMD_DONE;
}

/* ---- DISABLE, ENABLE ---- */

/* The region of the current configuration by that name; NULL and the error set when none. */
static struct region *find_region(struct session *s, const char *name, struct admin_error *err)
{
    struct region_set *set = &s->w->cfg->regions;
    struct region *r = region_set_find(set, name);
    if (r != NULL)
        return r;
    char names[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < set->count && used < sizeof(names); i++)
        used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                                 set->items[i].name);
    char hint[600];
    snprintf(hint, sizeof(hint), "The regions are: %s.", names);
    admin_error_set(err, "42704", NULL, hint, "region \"%s\" does not exist", name);
    return NULL;
}

static int set_region_state(struct session *s, const struct admin_cmd *cmd,
                            struct console_wait *wait, enum region_admin_state state,
                            const char *tag)
{
    struct region *r = find_region(s, cmd->region, &wait->err);
    if (r == NULL)
        return CMD_ERROR;
    enum region_admin_state was = registry_admin_state(r->runtime);
    registry_set_admin_state(r->runtime, state);
    log_info(s->id, "admin %s: %s region %s (was %s)", s->user, tag, r->name,
             snapshot_admin_state_name((int)was));
    result_init(&wait->res, NULL, 0);
    if (was == state)
        result_notice(&wait->res, "region \"%s\" was already %s", r->name,
                      snapshot_admin_state_name((int)state));
    result_set_tag(&wait->res, tag);
    return CMD_DONE;
}

static int disable_region(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    return set_region_state(s, cmd, wait, REGION_DISABLED, "DISABLE");
}

static int enable_region(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    return set_region_state(s, cmd, wait, REGION_ENABLED, "ENABLE");
}

/* ---- KILL ---- */

struct kill_request {
    uint64_t id;
    char admin[SNAPSHOT_NAME_MAX];
    struct console_wait *wait;
};

static struct session *find_session(struct list *l, uint64_t id)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, l)
    {
        struct session *s = list_entry(pos, struct session, node);
        if (s->id == id)
            return s;
    }
    return NULL;
}

/* On the worker that owns the client: 1 when it was there. */
static int kill_on_worker(struct worker *w, void *arg)
{
    struct kill_request *req = arg;
    struct session *s = find_session(&w->active_sessions, req->id);
    if (s == NULL)
        s = find_session(&w->login_sessions, req->id);
    if (s == NULL)
        s = find_session(&w->waiting_sessions, req->id);
    if (s == NULL)
        s = find_session(&w->admin_sessions, req->id);
    if (s == NULL || s->phase == PHASE_CLOSING)
        return 0;
    log_info(s->id, "killed by admin %s", req->admin);
    session_fail(s, "57P01", "terminating connection due to administrator command",
                 "The pgnear admin console ran KILL for this client.", NULL);
    return 1;
}

static void kill_answered(struct worker *from, const struct worker_reply *r)
{
    struct kill_request *req = r->arg;
    struct console_wait *wait = req->wait;
    int rc = CMD_DONE;
    if (r->ran == 1 && r->result == 1) {
        result_init(&wait->res, NULL, 0);
        result_set_tag(&wait->res, "KILL");
    } else {
        admin_error_set(&wait->err, "42704", NULL, "SHOW CLIENTS lists the clients and their ids.",
                        "no client with id %llu", (unsigned long long)req->id);
        rc = CMD_ERROR;
    }
    free(req);
    console_command_done(wait, rc);
}

static int kill_client(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct daemon *d = s->w->d;
    struct kill_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    req->id = cmd->client_id;
    req->wait = wait;
    snprintf(req->admin, sizeof(req->admin), "%.*s", SNAPSHOT_NAME_MAX - 1, s->user);
    /* Ids interleave the workers (session_accept): the owner is known without asking all. */
    int owner = cmd->client_id == 0 ? 0 : (int)((cmd->client_id - 1) % (uint64_t)d->nworkers);
    if (worker_call(s->w, d->workers[owner], kill_on_worker, req, kill_answered, NULL) != 0) {
        free(req);
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

/* ---- SHUTDOWN ---- */

static int shutdown_proxy(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    log_info(s->id, "admin %s asked for SHUTDOWN", s->user);
    /* Exactly what SIGTERM does, by the same path: worker 0 gets the signal. */
    if (kill(getpid(), SIGTERM) != 0) {
        admin_error_set(&wait->err, "58000", NULL, NULL, "could not signal pgnear: %m");
        return CMD_ERROR;
    }
    result_init(&wait->res, NULL, 0);
    result_set_tag(&wait->res, "SHUTDOWN");
    return CMD_DONE;
}

/* ---- RELOAD ---- */

/*
 * A reload runs on worker 0 and answers later: the request goes to worker
 * 0, waits there for the reload's outcome, and comes back to the admin's
 * worker with it.
 */
struct reload_request {
    struct worker *asker;
    struct console_wait *wait;
    const char *tag;                 /* RELOAD or SET */
    struct config_override override; /* SET's */
    bool ok;
    char error[1024];
    int nfixed;
    const char *fixed[16]; /* static names from the settings table */
};

static int reload_deliver(struct worker *w, void *arg)
{
    struct reload_request *req = arg;
    struct console_wait *wait = req->wait;
    int rc = CMD_DONE;
    if (req->ok) {
        result_init(&wait->res, NULL, 0);
        for (int i = 0; i < req->nfixed; i++)
            result_notice(&wait->res,
                          "setting \"%s\" changed but takes effect only after a restart",
                          req->fixed[i]);
        result_set_tag(&wait->res, req->tag);
    } else if (strcmp(req->tag, "SET") == 0) {
        admin_error_set(&wait->err, "22023", req->error, "The running configuration is unchanged.",
                        "invalid value for parameter \"%s\": \"%s\"", req->override.name,
                        req->override.value);
        rc = CMD_ERROR;
    } else {
        admin_error_set(&wait->err, "F0000", req->error,
                        "The running configuration is unchanged; pgnear's log has the details.",
                        "could not reload the configuration");
        rc = CMD_ERROR;
    }
    free(req);
    console_command_done(wait, rc);
    return 0;
}

/* The admin's worker ended before the answer came back: nobody waits any more. */
static void reload_undelivered(struct worker *from, const struct worker_reply *r)
{
    if (r->ran == 0) {
        struct reload_request *req = r->arg;
        console_wait_abandon(req->wait);
        free(req);
    }
}

static void reload_told(struct daemon *d, const struct reload_outcome *o, void *arg)
{
    struct reload_request *req = arg;
    req->ok = o->ok;
    snprintf(req->error, sizeof(req->error), "%s", o->error);
    req->nfixed = o->nfixed;
    memcpy(req->fixed, o->fixed, sizeof(req->fixed));
    if (worker_call(d->workers[0], req->asker, reload_deliver, req, reload_undelivered, NULL) !=
        0) {
        console_wait_abandon(req->wait);
        free(req);
    }
}

static int reload_on_worker0(struct worker *w, void *arg)
{
    struct reload_request *req = arg;
    int rc =
        strcmp(req->tag, "SET") == 0
            ? daemon_override_then(w->d, req->override.name, req->override.value, reload_told, req)
            : daemon_reload_then(w->d, reload_told, req);
    if (rc != 0)
        reload_told(w->d, &(struct reload_outcome){.error = "out of memory"}, req);
    return 0;
}

/* Runs on the admin's worker: worker 0 had ended, so the process is stopping. */
static void reload_unsent(struct worker *from, const struct worker_reply *r)
{
    if (r->ran != 0)
        return;
    struct reload_request *req = r->arg;
    snprintf(req->error, sizeof(req->error), "pgnear is shutting down");
    reload_deliver(from, req);
}

/* RELOAD, or SET (a reload with one more value on top of the file). */
static int reload_config(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct reload_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    req->asker = s->w;
    req->wait = wait;
    req->tag = cmd->kind == ADMIN_SET ? "SET" : "RELOAD";
    if (cmd->kind == ADMIN_SET) {
        snprintf(req->override.name, sizeof(req->override.name), "%s", cmd->setting);
        snprintf(req->override.value, sizeof(req->override.value), "%s", cmd->value);
        log_info(s->id, "admin %s: SET %s = '%s'", s->user, cmd->setting, cmd->value);
    } else {
        log_info(s->id, "admin %s asked for RELOAD", s->user);
    }
    if (worker_call(s->w, s->w->d->workers[0], reload_on_worker0, req, reload_unsent, NULL) != 0) {
        free(req);
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

/* SET: known and reloadable settings only; then as RELOAD. */
static int set_setting(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    /* Session parameters some drivers SET as they connect (JDBC: extra_float_digits). */
    static const char *const session_params[] = {
        "application_name", "extra_float_digits", "client_encoding",   "datestyle",
        "timezone",         "search_path",        "statement_timeout", "intervalstyle",
    };
    for (size_t i = 0; i < sizeof(session_params) / sizeof(session_params[0]); i++)
        if (strcasecmp(cmd->setting, session_params[i]) == 0) {
            result_init(&wait->res, NULL, 0);
            result_notice(&wait->res,
                          "\"%s\" is a PostgreSQL session parameter: the admin console does not "
                          "use it, and changes nothing",
                          session_params[i]);
            result_set_tag(&wait->res, "SET");
            return CMD_DONE;
        }
    bool reloadable;
    if (!config_setting_known(cmd->setting, &reloadable)) {
        admin_error_set(&wait->err, "42704", NULL, "SHOW CONFIG lists the settings.",
                        "unrecognized configuration parameter \"%s\"", cmd->setting);
        return CMD_ERROR;
    }
    if (!reloadable) {
        admin_error_set(
            &wait->err, "55P02", NULL, "Change it in the configuration file and restart pgnear.",
            "parameter \"%s\" cannot be changed without restarting pgnear", cmd->setting);
        return CMD_ERROR;
    }
    return reload_config(s, cmd, wait);
}

/* ---- the table ---- */

static const struct command_def commands[] = {
    {ADMIN_SHOW_HELP, COLS(help_cols), show_help, 0, NULL},
    {ADMIN_SHOW_VERSION, COLS(version_cols), show_version, 0, NULL},
    {ADMIN_SHOW_CONFIG, COLS(config_cols), show_config, 0, NULL},
    {ADMIN_SHOW_REGIONS, COLS(regions_cols), NULL, SNAPSHOT_HOSTS | SNAPSHOT_CLIENTS,
     render_regions},
    {ADMIN_SHOW_CLIENTS, COLS(clients_cols), NULL, SNAPSHOT_CLIENTS, render_clients},
    {ADMIN_SHOW_SERVERS, COLS(servers_cols), NULL, SNAPSHOT_SERVERS, render_servers},
    {ADMIN_SHOW_STATS, COLS(stats_cols), NULL, 0, render_stats},
    {ADMIN_SHOW_LISTS, COLS(lists_cols), NULL, SNAPSHOT_HOSTS, render_lists},
    {ADMIN_SHOW_ROUTE, COLS(route_cols), show_route, 0, NULL},
    {ADMIN_RELOAD, NULL, 0, reload_config, 0, NULL},
    {ADMIN_DISABLE, NULL, 0, disable_region, 0, NULL},
    {ADMIN_ENABLE, NULL, 0, enable_region, 0, NULL},
    {ADMIN_KILL, NULL, 0, kill_client, 0, NULL},
    {ADMIN_PAUSE, NULL, 0, pause_command, 0, NULL},
    {ADMIN_RESUME, NULL, 0, resume_command, 0, NULL},
    {ADMIN_DRAIN, NULL, 0, drain_command, 0, NULL},
    {ADMIN_SET, NULL, 0, set_setting, 0, NULL},
    {ADMIN_SHOW_POOLS, COLS(pools_cols), NULL, SNAPSHOT_CLIENTS | SNAPSHOT_SERVERS, render_pools},
    {ADMIN_RECONNECT, NULL, 0, reconnect_servers, 0, NULL},
    {ADMIN_SHUTDOWN, NULL, 0, shutdown_proxy, 0, NULL},
    {ADMIN_SHOW_MIGRATIONS, COLS(migrations_show_cols), migrations_show_command, 0, NULL},
    {ADMIN_MIGRATE_PLAN, COLS(migrations_plan_cols), migrations_plan_command, 0, NULL},
    {ADMIN_MIGRATE_NEXT, NULL, 0, migrations_next_command, 0, NULL},
    {ADMIN_MIGRATE_UP, NULL, 0, migrations_up_command, 0, NULL},
    {ADMIN_MIGRATE_RESOLVE, NULL, 0, migrations_settle_command, 0, NULL},
    {ADMIN_MIGRATE_RETRY, NULL, 0, migrations_settle_command, 0, NULL},
    {ADMIN_MIGRATE_DOWN, NULL, 0, migrations_down_command, 0, NULL},
    {ADMIN_MIGRATE_ABORT, NULL, 0, migrations_abort_command, 0, NULL},
};

static const struct command_def *command_find(enum admin_cmd_kind kind)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (commands[i].kind == kind)
            return &commands[i];
    return NULL;
}

int command_prepare(const char *text, size_t len, struct command_plan *plan,
                    struct admin_error *err)
{
    int rc = admin_parse(text, len, &plan->cmd, err);
    if (rc == ADMIN_PARSE_EMPTY)
        return CMD_EMPTY;
    return rc == ADMIN_PARSE_OK ? CMD_DONE : CMD_ERROR;
}

void command_columns(const struct command_plan *plan, const struct admin_column **cols, int *ncols)
{
    const struct command_def *def = command_find(plan->cmd.kind);
    *cols = def != NULL ? def->cols : NULL;
    *ncols = def != NULL ? def->ncols : 0;
}

int command_run(struct session *s, const struct command_plan *plan, struct console_wait *wait)
{
    const struct command_def *def = command_find(plan->cmd.kind);
    if (def == NULL) {
        char name[64];
        admin_error_set(&wait->err, "0A000", NULL, "SHOW HELP lists what this build can do.",
                        "%s is not available in this build of pgnear",
                        admin_command_name(plan->cmd.kind, name, sizeof(name)));
        return CMD_ERROR;
    }
    if (def->render != NULL)
        return run_snapshot(s, def->snapshot, def->render, wait);
    return def->run(s, &plan->cmd, wait);
}
