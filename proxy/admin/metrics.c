/*
 * metrics.c — Prometheus text exposition on metrics_addr (libevent's
 * evhttp, on worker 0's loop), and the table of what else that address
 * serves (metrics_routes: /healthz and /readyz from probes.c, /status and
 * /status.json from status_page.c).
 *
 * A scrape takes the same snapshot SHOW STATS and SHOW REGIONS do
 * (snapshot.c) and answers when every worker has filled its part: no loop
 * waits for another, and the figures agree with the console's.  Names
 * follow Prometheus's conventions: a pgnear_ prefix, _total on counters,
 * base units (seconds, bytes).
 */
#include "proxy/admin/metrics.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "pgnear-build.h"
#include "proxy/admin/latency_report.h"
#include "proxy/admin/probes.h"
#include "proxy/admin/prom_text.h"
#include "proxy/admin/snapshot.h"
#include "proxy/admin/status_page.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/reload.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"

struct metrics_server {
    struct worker *w;
    struct evhttp *http;
};

/* One scrape waiting for its snapshot; req is NULL once the scraper has gone. */
struct scrape {
    struct evhttp_request *req;
    struct shared *shared;
};

/* Prometheus' HELP and TYPE lines, which must come before a metric's first sample. */
static void put_header(struct evbuffer *out, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(out, "# HELP pgnear_%s %s\n# TYPE pgnear_%s %s\n", name, help, name, type);
}

/* pgnear_<name>{region="r",host="h"} value */
static void put_host_sample(struct evbuffer *out, const char *name, const struct host_row *h,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* One sample labelled with the host's region and host:port, label values escaped. */
static void put_host_sample(struct evbuffer *out, const char *name, const struct host_row *h,
                            const char *fmt, ...)
{
    evbuffer_add_printf(out, "pgnear_%s{region=\"", name);
    prom_put_label_value(out, h->region);
    evbuffer_add_printf(out, "\",host=\"");
    prom_put_label_value(out, h->host);
    evbuffer_add_printf(out, ":%d\"} ", h->port);
    va_list ap;
    va_start(ap, fmt);
    evbuffer_add_vprintf(out, fmt, ap);
    va_end(ap);
    evbuffer_add(out, "\n", 1);
}

/* The workers' counters summed, as *_total; rows sharing a metric (labelled) share one header. */
static void put_counters(struct evbuffer *out, const struct snapshot *snap)
{
    struct worker_stats sum;
    size_t n;
    const struct stat_field *f = stat_fields(&n);
    snapshot_sum_stats(snap, &sum);
    for (size_t i = 0; i < n; i++) {
        char name[96];
        if (f[i].metric == NULL)
            continue; /* a histogram's part: put_move_holds */
        snprintf(name, sizeof(name), "%s_total", f[i].metric);
        if (i == 0 || strcmp(f[i].metric, f[i - 1].metric) != 0)
            put_header(out, name, "counter", f[i].help);
        evbuffer_add_printf(out, "pgnear_%s%s%s%s %llu\n", name, f[i].label ? "{" : "",
                            f[i].label ? f[i].label : "", f[i].label ? "}" : "",
                            (unsigned long long)stat_field_value(&sum, &f[i]));
    }
}

/* How long moves held their clients, as a Prometheus histogram in seconds. */
static void put_move_holds(struct evbuffer *out, const struct snapshot *snap)
{
    struct worker_stats sum;
    snapshot_sum_stats(snap, &sum);
    put_header(out, "session_move_hold_seconds", "histogram",
               "How long each move of a live session held its client's next query.");
    uint64_t cumulative = 0;
    for (int i = 0; i < STAT_MOVE_HOLD_BUCKETS; i++) {
        cumulative += sum.move_hold_buckets[i];
        if (i < STAT_MOVE_HOLD_BUCKETS - 1)
            evbuffer_add_printf(out, "pgnear_session_move_hold_seconds_bucket{le=\"%g\"} %llu\n",
                                stat_move_hold_le_ms[i] / 1000.0, (unsigned long long)cumulative);
        else
            evbuffer_add_printf(out, "pgnear_session_move_hold_seconds_bucket{le=\"+Inf\"} %llu\n",
                                (unsigned long long)cumulative);
    }
    evbuffer_add_printf(out, "pgnear_session_move_hold_seconds_sum %.6f\n",
                        (double)sum.move_hold_us / 1e6);
    evbuffer_add_printf(out, "pgnear_session_move_hold_seconds_count %llu\n",
                        (unsigned long long)cumulative);
}

/* A gauge of one of the workers' lists: pgnear_<name>{state="<state>"} n */
static void put_list_sample(struct evbuffer *out, const char *name, const char *state, uint64_t n)
{
    evbuffer_add_printf(out, "pgnear_%s{state=\"%s\"} %llu\n", name, state, (unsigned long long)n);
}

/* Client sessions and server connections by the list they are on, over every worker. */
static void put_lists(struct evbuffer *out, const struct snapshot *snap)
{
    struct snapshot_lists sum;
    snapshot_sum_lists(snap, &sum);
    put_header(out, "clients", "gauge", "Client sessions now, by state.");
    put_list_sample(out, "clients", "login", sum.login_sessions);
    put_list_sample(out, "clients", "waiting", sum.waiting_sessions);
    put_list_sample(out, "clients", "active", sum.active_sessions);
    put_list_sample(out, "clients", "admin", sum.admin_sessions);
    put_header(out, "server_connections", "gauge", "Server connections now, by state.");
    put_list_sample(out, "server_connections", "login", sum.login_servers);
    put_list_sample(out, "server_connections", "active", sum.active_servers);
    put_list_sample(out, "server_connections", "used", sum.used_servers);
    put_list_sample(out, "server_connections", "idle", sum.idle_servers);
}

/* Per region: its sessions and the admin's state (once per region: hosts come grouped). */
static void put_regions(struct evbuffer *out, const struct snapshot *snap)
{
    const struct snapshot_part *p0 = &snap->parts[0];
    put_header(out, "region_sessions", "gauge", "Sessions relaying through the region now.");
    for (size_t i = 0; i < p0->nhosts; i++) {
        const struct host_row *h = &p0->hosts[i];
        if (i > 0 && strcmp(h->region, p0->hosts[i - 1].region) == 0)
            continue;
        evbuffer_add(out, "pgnear_region_sessions{region=\"", 31);
        prom_put_label_value(out, h->region);
        evbuffer_add_printf(out, "\"} %llu\n",
                            (unsigned long long)snapshot_region_sessions(snap, h->region));
    }
    put_header(out, "region_state", "gauge",
               "1 for the state the admin set on the region: enabled, disabled, draining, paused.");
    for (size_t i = 0; i < p0->nhosts; i++) {
        const struct host_row *h = &p0->hosts[i];
        if (i > 0 && strcmp(h->region, p0->hosts[i - 1].region) == 0)
            continue;
        evbuffer_add(out, "pgnear_region_state{region=\"", 28);
        prom_put_label_value(out, h->region);
        evbuffer_add_printf(out, "\",state=\"%s\"} 1\n", h->admin_state);
    }
    put_header(out, "region_paused", "gauge", "1 while the region is paused (PAUSE).");
    for (size_t i = 0; i < p0->nhosts; i++) {
        const struct host_row *h = &p0->hosts[i];
        if (i > 0 && strcmp(h->region, p0->hosts[i - 1].region) == 0)
            continue;
        evbuffer_add(out, "pgnear_region_paused{region=\"", 29);
        prom_put_label_value(out, h->region);
        evbuffer_add_printf(out, "\"} %d\n", h->paused ? 1 : 0);
    }
}

/* Roles and lag: what routing by target_session_attrs decides on. */
static void put_host_roles(struct evbuffer *out, const struct snapshot_part *p0)
{
    put_header(out, "host_standby", "gauge",
               "1 for a standby, 0 for a primary, by the last health check (absent: not known).");
    for (size_t i = 0; i < p0->nhosts; i++)
        if (p0->hosts[i].role_known)
            put_host_sample(out, "host_standby", &p0->hosts[i], "%d", p0->hosts[i].standby);
    put_header(out, "host_fenced", "gauge",
               "1 for a host fenced as a former primary: another host of its database system "
               "serves a newer timeline, and no session goes to it.");
    for (size_t i = 0; i < p0->nhosts; i++)
        put_host_sample(out, "host_fenced", &p0->hosts[i], "%d", p0->hosts[i].fenced);
    put_header(out, "host_replay_lag_seconds", "gauge",
               "How far a standby is behind its primary, by pgnear's clock (0 for a primary).");
    for (size_t i = 0; i < p0->nhosts; i++)
        if (p0->hosts[i].lag_ms >= 0)
            put_host_sample(out, "host_replay_lag_seconds", &p0->hosts[i], "%.3f",
                            (double)p0->hosts[i].lag_ms / 1000.0);
    put_header(out, "host_replay_lag_bytes", "gauge",
               "Bytes of WAL a standby has yet to replay (0 for a primary).");
    for (size_t i = 0; i < p0->nhosts; i++)
        if (p0->hosts[i].lag_bytes >= 0)
            put_host_sample(out, "host_replay_lag_bytes", &p0->hosts[i], "%lld",
                            (long long)p0->hosts[i].lag_bytes);
    put_header(out, "host_passed_over_for_lag", "gauge",
               "1 while a standby is over max_standby_lag: sessions that read go elsewhere.");
    for (size_t i = 0; i < p0->nhosts; i++)
        put_host_sample(out, "host_passed_over_for_lag", &p0->hosts[i], "%d",
                        p0->hosts[i].standby && p0->hosts[i].lagging);
}

/*
 * The hosts' health gauges, from worker 0's part; the RTT only for a host whose
 * last check succeeded.
 */
static void put_hosts(struct evbuffer *out, const struct snapshot *snap)
{
    const struct snapshot_part *p0 = &snap->parts[0];
    put_header(out, "host_up", "gauge", "1 when the host takes sessions, by its health checks.");
    for (size_t i = 0; i < p0->nhosts; i++)
        put_host_sample(out, "host_up", &p0->hosts[i], "%d", p0->hosts[i].up ? 1 : 0);
    put_header(out, "host_health_check_rtt_seconds", "gauge",
               "Time the last successful health check took (connect and query).");
    for (size_t i = 0; i < p0->nhosts; i++)
        if (p0->hosts[i].checked && p0->hosts[i].last_error[0] == '\0')
            put_host_sample(out, "host_health_check_rtt_seconds", &p0->hosts[i], "%.6f",
                            p0->hosts[i].rtt_ms / 1000.0);
    put_host_roles(out, p0);
    put_header(out, "host_last_health_check_timestamp_seconds", "gauge",
               "When the last health check of the host finished (Unix time).");
    for (size_t i = 0; i < p0->nhosts; i++)
        put_host_sample(out, "host_last_health_check_timestamp_seconds", &p0->hosts[i], "%lld",
                        (long long)p0->hosts[i].last_check);
    put_header(out, "host_downs_total", "counter", "Times the host was taken down.");
    for (size_t i = 0; i < p0->nhosts; i++)
        put_host_sample(out, "host_downs_total", &p0->hosts[i], "%u", p0->hosts[i].downs);
}

/*
 * Measured round trips (routing/rtt.h): each host's estimate, absent while
 * cold, and per region how often its callers' preferred region changed.
 */
static void put_route_rtt(struct evbuffer *out, const struct snapshot_part *p0)
{
    put_header(out, "host_rtt_estimate_seconds", "gauge",
               "The round trip that orders the regions: the average of the health checks on a "
               "kept connection (absent while fewer than five came).");
    for (size_t i = 0; i < p0->nhosts; i++)
        if (p0->hosts[i].rtt_avg_ms >= 0)
            put_host_sample(out, "host_rtt_estimate_seconds", &p0->hosts[i], "%.6f",
                            p0->hosts[i].rtt_avg_ms / 1000.0);
    put_header(out, "host_logins_at_once", "gauge",
               "How many logins of one transaction pool to the host go at once as it grows.");
    for (size_t i = 0; i < p0->nhosts; i++)
        put_host_sample(out, "host_logins_at_once", &p0->hosts[i], "%u",
                        p0->hosts[i].logins_at_once);
    put_header(out, "route_preference_changes_total", "counter",
               "Times the region that callers nearest this one try first changed.");
    for (size_t i = 0; i < p0->nhosts; i++) {
        const struct host_row *h = &p0->hosts[i];
        if (i > 0 && strcmp(h->region, p0->hosts[i - 1].region) == 0)
            continue;
        evbuffer_add_printf(out, "pgnear_route_preference_changes_total{region=\"");
        prom_put_label_value(out, h->region);
        evbuffer_add_printf(out, "\"} %llu\n", (unsigned long long)h->preference_changes);
    }
}

/* Process-wide gauges: version, workers, and how reloads went. */
static void put_process(struct evbuffer *out, const struct shared *sh)
{
    struct reload_counts rc;
    reload_counts(sh->reload, &rc);
    put_header(out, "info", "gauge", "pgnear's version.");
    evbuffer_add_printf(out, "pgnear_info{version=\"%s\"} 1\n", PACKAGE_VERSION);
    put_header(out, "workers", "gauge", "Event-loop threads.");
    evbuffer_add_printf(out, "pgnear_workers %d\n", sh->nworkers);
    put_header(out, "reloads_total", "counter", "Configuration reloads (SIGHUP, RELOAD, SET).");
    evbuffer_add_printf(out, "pgnear_reloads_total %u\n", rc.reloads);
    put_header(out, "reload_failures_total", "counter", "Reloads that kept the old configuration.");
    evbuffer_add_printf(out, "pgnear_reload_failures_total %u\n", rc.failed);
    put_header(out, "last_reload_success", "gauge", "1 when the last reload was applied.");
    evbuffer_add_printf(out, "pgnear_last_reload_success %d\n", rc.last_ok ? 1 : 0);
    put_header(out, "last_reload_timestamp_seconds", "gauge", "When the last reload ended.");
    evbuffer_add_printf(out, "pgnear_last_reload_timestamp_seconds %lld\n", (long long)rc.last_at);
}

/* The fleet's peers that a cancel request went to or came from: their figures, one copy. */
static int read_peers(struct shared *sh, struct peer_stat *rows)
{
    int n = 0;
    for (int i = 0; i < PEERS_MAX; i++) {
        int id = __atomic_load_n(&sh->peers.items[i].id, __ATOMIC_ACQUIRE);
        if (id != 0)
            peer_stats_read(&sh->peers, id, &rows[n++]);
    }
    return n;
}

/* Cancel requests forwarded to and from each peer, and those that failed. */
static void put_peers(struct evbuffer *out, struct shared *sh)
{
    struct peer_stat rows[PEERS_MAX];
    int n = read_peers(sh, rows);
    put_header(out, "peer_cancels_total", "counter",
               "Cancel requests forwarded to each peer (out, delivered) and from it (in).");
    for (int i = 0; i < n; i++) {
        evbuffer_add_printf(out, "pgnear_peer_cancels_total{peer=\"%d\",direction=\"out\"} %llu\n",
                            rows[i].id, (unsigned long long)rows[i].forwarded_out);
        evbuffer_add_printf(out, "pgnear_peer_cancels_total{peer=\"%d\",direction=\"in\"} %llu\n",
                            rows[i].id, (unsigned long long)rows[i].forwarded_in);
    }
    put_header(out, "peer_cancel_failures_total", "counter",
               "Cancel requests for each peer that did not reach it.");
    for (int i = 0; i < n; i++)
        evbuffer_add_printf(out, "pgnear_peer_cancel_failures_total{peer=\"%d\"} %llu\n",
                            rows[i].id, (unsigned long long)rows[i].failed);
}

/*
 * Client sessions per user and per database (the counts behind
 * max_user_client_connections and max_db_client_connections), and the
 * server connections of each of those users (max_user_connections).
 */
static void put_limits(struct evbuffer *out, struct shared *sh)
{
    const size_t most = 4096; /* users and databases shown at most */
    struct client_count *counts = calloc(most, sizeof(*counts));
    if (counts == NULL)
        return;
    size_t n = client_limits_copy(&sh->client_limits, counts, most);
    static const char *const kinds[][3] = {
        {"user_clients", "user", "Client sessions of each user now."},
        {"user_server_connections", "user", "Server connections of each user with sessions now."},
        {"database_clients", "database", "Client sessions on each database now."}};
    for (size_t k = 0; k < 3; k++) {
        put_header(out, kinds[k][0], "gauge", kinds[k][2]);
        for (size_t i = 0; i < n; i++) {
            if (counts[i].is_user != (k < 2))
                continue;
            evbuffer_add_printf(out, "pgnear_%s{%s=\"", kinds[k][0], kinds[k][1]);
            prom_put_label_value(out, counts[i].name);
            int v = k == 1 ? pool_limits_user_servers(&sh->pool_limits, counts[i].name)
                           : counts[i].clients;
            evbuffer_add_printf(out, "\"} %d\n", v);
        }
    }
    free(counts);
}

/* The HTTP client hung up while the snapshot was taken: scrape_answer then sends nothing. */
static void scrape_gone(struct evhttp_connection *conn, void *arg)
{
    struct scrape *sc = arg;
    sc->req = NULL; /* the connection and its request are going away */
}

/*
 * The snapshot is in: the whole exposition in one reply, unless the client has
 * gone; the scrape ends here.
 */
static void scrape_answer(struct snapshot *snap, void *arg)
{
    struct scrape *sc = arg;
    if (sc->req != NULL) {
        struct evbuffer *out = evbuffer_new();
        evhttp_connection_set_closecb(evhttp_request_get_connection(sc->req), NULL, NULL);
        if (out != NULL) {
            put_counters(out, snap);
            put_move_holds(out, snap);
            latency_put_metrics(out, snap);
            put_lists(out, snap);
            put_regions(out, snap);
            put_hosts(out, snap);
            put_route_rtt(out, &snap->parts[0]);
            put_process(out, sc->shared);
            put_peers(out, sc->shared);
            put_limits(out, sc->shared);
            evhttp_add_header(evhttp_request_get_output_headers(sc->req), "Content-Type",
                              "text/plain; version=0.0.4; charset=utf-8");
            evhttp_send_reply(sc->req, HTTP_OK, "OK", out);
            evbuffer_free(out);
        } else {
            evhttp_send_error(sc->req, HTTP_INTERNAL, "out of memory");
        }
    }
    snapshot_free(snap);
    free(sc);
}

/* GET /metrics: the answer waits for a snapshot from every worker. */
static void metrics_scrape(struct evhttp_request *req, struct worker *w)
{
    struct scrape *sc = calloc(1, sizeof(*sc));
    if (sc == NULL || snapshot_take(w, SNAPSHOT_HOSTS, scrape_answer, sc) != 0) {
        free(sc);
        evhttp_send_error(req, HTTP_SERVUNAVAIL, "out of memory");
        return;
    }
    sc->req = req;
    sc->shared = w->shared;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), scrape_gone, sc);
}

/* What metrics_addr serves: a path, and its handler (GET and HEAD; HEAD gets no body). */
static const struct metrics_route {
    const char *path;
    void (*handle)(struct evhttp_request *req, struct worker *w);
} metrics_routes[] = {
    {"/metrics", metrics_scrape},
    {"/healthz", probes_healthz},
    {"/readyz", probes_readyz},
    {"/status", status_page_serve_html},
    {"/status.json", status_page_serve_json},
};

#define METRICS_NROUTES (sizeof(metrics_routes) / sizeof(metrics_routes[0]))

/* 404 naming the paths served. */
static void metrics_not_found(struct evhttp_request *req)
{
    char text[256] = "pgnear serves";
    for (size_t i = 0; i < METRICS_NROUTES; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), " %s", metrics_routes[i].path);
    evhttp_send_error(req, HTTP_NOTFOUND, text);
}

/* A request to metrics_addr: the route of its path, by GET or HEAD. */
static void metrics_request(struct evhttp_request *req, void *arg)
{
    struct metrics_server *ms = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req)) ?: "";
    const struct metrics_route *route = NULL;
    for (size_t i = 0; i < METRICS_NROUTES && route == NULL; i++)
        if (strcmp(path, metrics_routes[i].path) == 0)
            route = &metrics_routes[i];
    if (route == NULL) {
        metrics_not_found(req);
        return;
    }
    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
        evhttp_request_get_command(req) != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        evhttp_send_error(req, HTTP_BADMETHOD, "GET or HEAD only");
        return;
    }
    route->handle(req, ms->w);
}

/* "127.0.0.1:9187", "[::1]:9187", ":9187" (every address); false when it is none of these. */
static bool metrics_split_addr(const char *addr, char *host, size_t cap, int *port)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL)
        return false;
    const char *h = addr;
    size_t n = (size_t)(colon - addr);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']')
        h++, n -= 2;
    if (n >= cap)
        return false;
    memcpy(host, h, n);
    host[n] = '\0';
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || p < 1 || p > 65535)
        return false;
    *port = (int)p;
    if (host[0] == '\0')
        snprintf(host, cap, "0.0.0.0");
    return true;
}

/*
 * Listens on host:port with SO_REUSEPORT, as the session listeners do, so
 * that a new pgnear can start beside a running one (an upgrade) and serve
 * metrics from the start.
 */
static bool metrics_listen(struct metrics_server *ms, const char *host, int port)
{
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct addrinfo hints = {.ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, portstr, &hints, &res) != 0)
        return false;
    struct evconnlistener *l = evconnlistener_new_bind(
        ms->w->base, NULL, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        -1, res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (l == NULL)
        return false;
    if (evhttp_bind_listener(ms->http, l) == NULL) {
        evconnlistener_free(l);
        return false;
    }
    return true;
}

struct metrics_server *metrics_start(struct worker *w, const char *addr, char *err, size_t errcap)
{
    char host[256];
    int port;
    if (!metrics_split_addr(addr, host, sizeof(host), &port)) {
        snprintf(err, errcap, "metrics_addr \"%s\" is not host:port", addr);
        return NULL;
    }
    struct metrics_server *ms = calloc(1, sizeof(*ms));
    if (ms == NULL || (ms->http = evhttp_new(w->base)) == NULL) {
        free(ms);
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    ms->w = w;
    evhttp_set_gencb(ms->http, metrics_request, ms);
    evhttp_set_max_headers_size(ms->http, 16 * 1024);
    evhttp_set_max_body_size(ms->http, 0);
    evhttp_set_timeout(ms->http, 10);
    if (!metrics_listen(ms, host, port)) {
        snprintf(err, errcap, "could not listen on metrics_addr %s", addr);
        metrics_stop(ms);
        return NULL;
    }
    log_info(0, "serving Prometheus metrics on http://%s/metrics", addr);
    return ms;
}

/* Stops serving; NULL is fine. */
void metrics_stop(struct metrics_server *ms)
{
    if (ms == NULL)
        return;
    evhttp_free(ms->http);
    free(ms);
}
