/*
 * status_page.c — GET /status and GET /status.json on metrics_addr.
 *
 * /status is one HTML document (status_html.c) whose inline script asks
 * /status.json every few seconds and redraws; nothing on it comes from
 * elsewhere, so it works on a host with no way out.  /status.json is drawn
 * from the snapshot SHOW REGIONS, SHOW CLIENTS and /metrics take
 * (snapshot.c): it is written on worker 0's thread once every worker has
 * filled its part, so nothing here reads another loop's memory.  It holds
 * only what SHOW shows — regions, their location and hosts' health, the
 * callers' places, counters — and never a password or a conninfo.  Every
 * string is JSON-escaped by protocol/json_out.c (with <, > and & as \u
 * escapes too) and set as text, never as markup, by the page: a region's
 * name comes from the configuration, a city from a client.
 */
#include "proxy/admin/status_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "protocol/json_out.h"

#include "proxy/admin/latency_report.h"
#include "proxy/admin/snapshot.h"
#include "proxy/admin/status_html.h"
#include "proxy/base/latency.h"
#include "proxy/base/stats.h"

#include "pgnear-build.h"

/* Places listed at most under "callers", the most sessions first. */
#define STATUS_TOP_PLACES 10

/* One /status.json waiting for its snapshot; req is NULL once the client has gone. */
struct status_wait {
    struct evhttp_request *req;
};

/* A JSON string, with <, > and & escaped too (json_out.h: inert in any HTML). */
static void put_str(struct evbuffer *out, const char *s)
{
    json_out_add(out, s, strlen(s), JSON_OUT_HTML);
}

/* "key": "value" with a leading comma unless first. */
static void put_kv_str(struct evbuffer *out, const char *key, const char *value, bool first)
{
    evbuffer_add_printf(out, "%s\"%s\":", first ? "" : ",", key);
    put_str(out, value);
}

/* A number in ms, or null when not known (negative). */
static void put_ms(struct evbuffer *out, const char *key, double ms)
{
    if (ms >= 0)
        evbuffer_add_printf(out, ",\"%s\":%.3f", key, ms);
    else
        evbuffer_add_printf(out, ",\"%s\":null", key);
}

static const char *host_role(const struct host_row *h)
{
    if (!h->role_known)
        return "unknown";
    return h->standby ? "standby" : "primary";
}

/* One host of a region: role and health, as SHOW REGIONS has them. */
static void put_host(struct evbuffer *out, const struct snapshot *snap, const struct host_row *h,
                     bool first)
{
    char server[SNAPSHOT_NAME_MAX + 8];
    snprintf(server, sizeof(server), "%s:%d", h->host, h->port);
    evbuffer_add_printf(out, "%s{", first ? "" : ",");
    put_kv_str(out, "host", server, true);
    put_kv_str(out, "role", host_role(h), false);
    evbuffer_add_printf(out, ",\"up\":%s,\"checked\":%s,\"fenced\":%s,\"lagging\":%s",
                        h->up ? "true" : "false", h->checked ? "true" : "false",
                        h->fenced ? "true" : "false", h->standby && h->lagging ? "true" : "false");
    put_ms(out, "rtt_ms", h->checked && h->last_error[0] == '\0' ? h->rtt_ms : -1);
    put_ms(out, "rtt_estimate_ms", h->rtt_avg_ms);
    put_ms(out, "lag_ms", h->lag_ms >= 0 ? (double)h->lag_ms : -1);
    if (h->lag_bytes >= 0)
        evbuffer_add_printf(out, ",\"lag_bytes\":%lld", (long long)h->lag_bytes);
    else
        evbuffer_add(out, ",\"lag_bytes\":null", 17);
    evbuffer_add_printf(out, ",\"sessions\":%llu,\"last_check\":%lld",
                        (unsigned long long)snapshot_server_sessions(snap, h->region, server),
                        (long long)h->last_check);
    put_kv_str(out, "fenced_why", h->fenced_why, false);
    put_kv_str(out, "error", h->last_error, false);
    evbuffer_add(out, "}", 1);
}

/* A region's transaction latency p50 and p99 in ms; null before any. */
static void put_latency(struct evbuffer *out, const struct latency_row *rows, size_t n,
                        const char *region)
{
    for (size_t i = 0; i < n; i++) {
        const struct latency_hist *h = &rows[i].hist[LATENCY_TRANSACTION];
        if (strcmp(rows[i].region, region) != 0 || h->count == 0)
            continue;
        evbuffer_add_printf(out, ",\"transactions\":%llu", (unsigned long long)h->count);
        put_ms(out, "p50_ms", latency_quantile_us(h, 0.5) / 1000.0);
        put_ms(out, "p99_ms", latency_quantile_us(h, 0.99) / 1000.0);
        return;
    }
    evbuffer_add(out, ",\"transactions\":0,\"p50_ms\":null,\"p99_ms\":null", 45);
}

/* One region and its hosts, from hosts[0..n) (rows of one region, worker 0's). */
static void put_region(struct evbuffer *out, const struct snapshot *snap,
                       const struct host_row *hosts, size_t n, const struct latency_row *lat,
                       size_t nlat)
{
    const struct host_row *r = &hosts[0];
    evbuffer_add(out, "{", 1);
    put_kv_str(out, "name", r->region, true);
    put_kv_str(out, "state", r->admin_state, false);
    evbuffer_add_printf(out, ",\"paused\":%s", r->paused ? "true" : "false");
    if (r->has_location)
        evbuffer_add_printf(out, ",\"lat\":%.4f,\"lon\":%.4f", r->lat, r->lon);
    else
        evbuffer_add(out, ",\"lat\":null,\"lon\":null", 22);
    evbuffer_add_printf(out, ",\"sessions\":%llu",
                        (unsigned long long)snapshot_region_sessions(snap, r->region));
    put_latency(out, lat, nlat, r->region);
    evbuffer_add(out, ",\"hosts\":[", 10);
    for (size_t i = 0; i < n; i++)
        put_host(out, snap, &hosts[i], i == 0);
    evbuffer_add(out, "]}", 2);
}

/* Every region of the configuration, its hosts grouped as worker 0 lists them. */
static void put_regions(struct evbuffer *out, const struct snapshot *snap)
{
    const struct snapshot_part *p0 = &snap->parts[0];
    size_t nlat = 0;
    struct latency_row *lat = latency_sum(snap, &nlat);
    evbuffer_add(out, "\"regions\":[", 11);
    for (size_t i = 0, n; i < p0->nhosts; i += n) {
        for (n = 1;
             i + n < p0->nhosts && strcmp(p0->hosts[i + n].region, p0->hosts[i].region) == 0;)
            n++;
        if (i > 0)
            evbuffer_add(out, ",", 1);
        put_region(out, snap, &p0->hosts[i], n, lat, nlat);
    }
    evbuffer_add(out, "]", 1);
    free(lat);
}

/* Sessions from one place now, and how it was known. */
struct place_count {
    const char *place; /* into a client row of the snapshot */
    const char *via;
    uint64_t sessions;
};

static int by_sessions(const void *a, const void *b)
{
    const struct place_count *x = a, *y = b;
    if (x->sessions != y->sessions)
        return x->sessions < y->sessions ? 1 : -1;
    return strcmp(x->place, y->place);
}

/* Counts the snapshot's sessions by place into places (cap); returns how many places. */
static size_t count_places(const struct snapshot *snap, struct place_count *places, size_t cap,
                           uint64_t *unplaced, uint64_t *pinned)
{
    size_t n = 0;
    for (int w = 0; w < snap->nparts; w++)
        for (size_t i = 0; i < snap->parts[w].nclients; i++) {
            const struct client_row *c = &snap->parts[w].clients[i];
            if (c->pinned != NULL && c->pinned[0] != '\0')
                (*pinned)++;
            if (c->place[0] == '\0') {
                *unplaced += c->region[0] != '\0';
                continue;
            }
            size_t j = 0;
            while (j < n && strcmp(places[j].place, c->place) != 0)
                j++;
            if (j == n && n == cap)
                continue; /* more places than kept: the rarest are not listed */
            if (j == n)
                places[n++] = (struct place_count){c->place, c->via, 0};
            places[j].sessions++;
        }
    return n;
}

/* Where the callers relaying now come from: the top places, by sessions. */
static void put_callers(struct evbuffer *out, const struct snapshot *snap)
{
    enum { CAP = 256 };
    struct place_count *places = calloc(CAP, sizeof(*places));
    uint64_t unplaced = 0, pinned = 0;
    size_t n = places != NULL ? count_places(snap, places, CAP, &unplaced, &pinned) : 0;
    qsort(places, n, sizeof(*places), by_sessions);
    evbuffer_add(out, ",\"callers\":[", 12);
    for (size_t i = 0; i < n && i < STATUS_TOP_PLACES; i++) {
        evbuffer_add(out, i == 0 ? "{" : ",{", i == 0 ? 1 : 2);
        put_kv_str(out, "place", places[i].place, true);
        put_kv_str(out, "via", places[i].via, false);
        evbuffer_add_printf(out, ",\"sessions\":%llu}", (unsigned long long)places[i].sessions);
    }
    evbuffer_add_printf(out, "],\"callers_unplaced\":%llu,\"pinned_now\":%llu",
                        (unsigned long long)unplaced, (unsigned long long)pinned);
    free(places);
}

/* The counters summed: routing by source, forwarded writes, pins. */
static void put_counters(struct evbuffer *out, const struct snapshot *snap)
{
    struct worker_stats sum;
    size_t n;
    const struct stat_field *f = stat_fields(&n);
    snapshot_sum_stats(snap, &sum);
    evbuffer_add(out, ",\"routed_by\":{", 14);
    bool first = true;
    for (size_t i = 0; i < n; i++) {
        const char *l = f[i].label;
        if (f[i].metric == NULL || strcmp(f[i].metric, "routing_decisions") != 0 || l == NULL ||
            strncmp(l, "source=\"", 8) != 0)
            continue;
        evbuffer_add_printf(out, "%s\"%.*s\":%llu", first ? "" : ",", (int)strlen(l + 8) - 1, l + 8,
                            (unsigned long long)stat_field_value(&sum, &f[i]));
        first = false;
    }
    evbuffer_add_printf(out,
                        "},\"routed_by_header\":%llu,\"forwarded_writes\":%llu,"
                        "\"forward_failed\":%llu,\"nearest_near\":%llu,\"pins\":%llu,"
                        "\"transactions\":%llu,\"failovers\":%llu",
                        (unsigned long long)sum.routed_by_header,
                        (unsigned long long)sum.nearest_forwarded,
                        (unsigned long long)sum.nearest_forward_failed,
                        (unsigned long long)sum.nearest_near, (unsigned long long)sum.txn_pins,
                        (unsigned long long)sum.transactions, (unsigned long long)sum.failovers);
}

/* The whole of /status.json. */
static void put_status(struct evbuffer *out, const struct snapshot *snap)
{
    struct snapshot_lists lists;
    snapshot_sum_lists(snap, &lists);
    evbuffer_add(out, "{", 1);
    put_kv_str(out, "version", PACKAGE_VERSION, true);
    evbuffer_add_printf(
        out, ",\"partial\":%s,\"workers\":%d,\"clients\":%llu,\"waiting\":%llu,",
        snapshot_partial(snap) ? "true" : "false", snap->nparts,
        (unsigned long long)(lists.login_sessions + lists.waiting_sessions + lists.active_sessions),
        (unsigned long long)lists.waiting_sessions);
    put_regions(out, snap);
    put_callers(out, snap);
    put_counters(out, snap);
    evbuffer_add(out, "}\n", 2);
}

/* The client hung up while the snapshot was taken: status_answer then sends nothing. */
static void status_gone(struct evhttp_connection *conn, void *arg)
{
    struct status_wait *sw = arg;
    (void)conn;
    sw->req = NULL;
}

static void status_answer(struct snapshot *snap, void *arg)
{
    struct status_wait *sw = arg;
    if (sw->req != NULL) {
        struct evbuffer *out = evbuffer_new();
        evhttp_connection_set_closecb(evhttp_request_get_connection(sw->req), NULL, NULL);
        if (out != NULL) {
            put_status(out, snap);
            struct evkeyvalq *h = evhttp_request_get_output_headers(sw->req);
            evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
            evhttp_add_header(h, "Cache-Control", "no-store");
            evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
            evhttp_send_reply(sw->req, HTTP_OK, "OK", out);
            evbuffer_free(out);
        } else {
            evhttp_send_error(sw->req, HTTP_INTERNAL, "out of memory");
        }
    }
    snapshot_free(snap);
    free(sw);
}

/* The page: static, with a policy that lets nothing in from elsewhere. */
static void send_page(struct evhttp_request *req)
{
    struct evbuffer *out = evbuffer_new();
    if (out == NULL) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    evbuffer_add_reference(out, status_page_html, strlen(status_page_html), NULL, NULL);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "text/html; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
    evhttp_add_header(h, "Content-Security-Policy",
                      "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                      "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'");
    evhttp_send_reply(req, HTTP_OK, "OK", out);
    evbuffer_free(out);
}

void status_page_serve_html(struct evhttp_request *req, struct worker *w)
{
    (void)w;
    send_page(req);
}

void status_page_serve_json(struct evhttp_request *req, struct worker *w)
{
    struct status_wait *sw = calloc(1, sizeof(*sw));
    if (sw == NULL || snapshot_take(w, SNAPSHOT_HOSTS | SNAPSHOT_CLIENTS, status_answer, sw) != 0) {
        free(sw);
        evhttp_send_error(req, HTTP_SERVUNAVAIL, "out of memory");
        return;
    }
    sw->req = req;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), status_gone, sw);
}
