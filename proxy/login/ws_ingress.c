/*
 * ws_ingress.c — the HTTP side of websocket_port (ws_ingress.h).
 *
 * The request head is parsed by protocol/http_upgrade.c, strict and with
 * limits on every line, the header count and the whole head; the head
 * must also come whole within websocket_handshake_timeout, so a client
 * that trickles bytes (slowloris) holds its slot only that long.  Every
 * answer but 101 closes the connection.
 */
#include "proxy/login/ws_ingress.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/geo_headers.h"
#include "protocol/http_upgrade.h"
#include "protocol/ws.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/phase.h"
#include "proxy/session/session.h"
#include "proxy/session/ws_keepalive.h"
#include "routing/cidr.h"
#include "routing/health.h"
#include "routing/region.h"
#include "routing/registry.h"
#include "routing/route.h"

/* Bytes read from the socket at a time while the head is incomplete. */
#define WS_HEAD_READ 4096
/* Refusals anyone can cause as fast as they like: this many lines a second, for all workers. */
#define WS_LOG_BURST 5

/* A line about a refused or doubtful request, unless too many came this second. */
static void ws_log_refusal(struct session *s, bool warn, const char *what)
{
    uint64_t left_out;
    if (!log_limit_allow(&s->w->shared->http_log, WS_LOG_BURST, 1000, &left_out))
        return;
    if (warn)
        slog_warn(s, "%s", what);
    else
        slog_info(s, "%s", what);
    if (left_out > 0)
        slog_info(s, "%llu lines about HTTP requests on websocket_port were not logged",
                  (unsigned long long)left_out);
}

/* A header's occurrences joined with ", " (RFC 9110 5.3), for geo_headers_read. */
struct header_view {
    const struct http_request *req;
    size_t used;
    char joined[8192];
};

static const char *header_view_get(void *arg, const char *name)
{
    struct header_view *v = arg;
    const struct http_request *r = v->req;
    const char *first = NULL;
    size_t count = 0;
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0 && count++ == 0)
            first = r->headers[i].value;
    if (count <= 1)
        return first;
    char *out = v->joined + v->used;
    size_t cap = sizeof(v->joined) - v->used, n = 0;
    for (size_t i = 0; i < r->n_headers; i++) {
        if (strcasecmp(r->headers[i].name, name) != 0)
            continue;
        int w = snprintf(out + n, cap - n, "%s%s", n > 0 ? ", " : "", r->headers[i].value);
        if (w < 0 || (size_t)w >= cap - n)
            return NULL; /* longer than anything worth reading: as if absent */
        n += (size_t)w;
    }
    v->used += n + 1;
    return out;
}

/* Whose locality headers count: trusted_proxies, and trusted_http_proxies, trusted for more. */
static bool hop_trusted(void *arg, const struct sockaddr *addr)
{
    const struct config *cfg = arg;
    return cidr_list_contains(&cfg->trusted, addr) || cidr_list_contains(&cfg->trusted_http, addr);
}

/* Whose forwarded addresses decide access (the hba line, the throttle): trusted_http_proxies. */
static bool hop_trusted_http(void *arg, const struct sockaddr *addr)
{
    const struct config *cfg = arg;
    return cidr_list_contains(&cfg->trusted_http, addr);
}

/* Whether pgnear can route now: not stopping (shutdown_ready_grace too), some region up. */
static bool ws_can_route(const struct session *s)
{
    const struct region_set *regions = &s->cfg->regions;
    if (s->w->draining || __atomic_load_n(&s->w->shared->stopping, __ATOMIC_ACQUIRE))
        return false;
    for (size_t i = 0; i < regions->count; i++)
        if (region_is_up(&regions->items[i]) && registry_takes_sessions(regions->items[i].runtime))
            return true;
    return false;
}

/* An HTTP answer, and the end of the connection. */
static void ws_answer(struct session *s, int status, const char *extra, const char *why)
{
    char buf[512];
    size_t n = http_response(buf, sizeof(buf), status, extra);
    if (status != 200)
        stat_inc(&s->w->stats.websocket_refused);
    if (why != NULL) {
        char line[320];
        snprintf(line, sizeof(line), "HTTP %d to %s: %s", status, session_peer(s).text, why);
        ws_log_refusal(s, false, line);
    }
    session_send_last(s, buf, n, why != NULL ? why : "HTTP request answered");
}

static void ws_healthz(struct session *s)
{
    if (ws_can_route(s))
        ws_answer(s, 200, NULL, NULL);
    else
        ws_answer(s, 503, NULL, "GET /healthz: no region is up");
}

/* The via texts name the header that said it ("header cf-ipcity"). */
static void ws_keep_geo(struct session *s, const struct geo_headers *g)
{
    struct session_login *l = s->login;
    memcpy(l->geo, g, sizeof(*g));
    if (g->has_region)
        snprintf(l->geo_via[0], sizeof(l->geo_via[0]), "header %s", g->region_header);
    if (g->has_coords) {
        snprintf(l->geo_via[1], sizeof(l->geo_via[1]), "header %s", g->coords_header);
        snprintf(l->geo_location, sizeof(l->geo_location), "%.6f,%.6f", g->lat, g->lon);
    }
    if (g->has_city) {
        snprintf(l->geo_via[2], sizeof(l->geo_via[2]), "header %s", g->city_header);
        snprintf(l->geo_city, sizeof(l->geo_city), "%s%s%s", g->city, g->country[0] ? ", " : "",
                 g->country);
    }
}

/*
 * A forwarded address becomes the session's own (the hba line, the
 * failed-login throttle, cancels' limits, the log, SHOW CLIENTS) only from
 * a peer in trusted_http_proxies, read with only those hops passed over:
 * a layer-4 balancer in trusted_proxies passes a client's header through
 * unchanged, so its headers only place the caller (GeoIP).
 */
static void ws_take_access_addr(struct session *s, const struct geo_header_names *names,
                                struct header_view *view)
{
    struct geo_headers g;
    if (!hop_trusted_http((void *)s->cfg, (const struct sockaddr *)&s->addr))
        return;
    view->used = 0;
    geo_headers_read(names, header_view_get, view, hop_trusted_http, (void *)s->cfg, &g);
    if (!g.has_addr)
        return;
    struct peer_text via = session_peer(s);
    session_set_addr(s, (const struct sockaddr *)&g.addr, sizeof(g.addr));
    s->from_proxy = true;
    slog_info(s, "%s from %s (trusted_http_proxies): caller %s", g.addr_header, via.text,
              session_peer(s).text);
}

/*
 * The request's locality headers: kept when the sender is one of
 * trusted_proxies (or trusted_http_proxies); else ignored (logged), or the
 * request refused.
 * False when the session was answered and is closing.
 */
static bool ws_take_geo(struct session *s, const struct http_request *req)
{
    const struct config *cfg = s->cfg;
    struct geo_header_names names = {cfg->geo_region_header[0] ? cfg->geo_region_header : NULL,
                                     cfg->geo_city_header[0] ? cfg->geo_city_header : NULL,
                                     cfg->geo_country_header[0] ? cfg->geo_country_header : NULL,
                                     cfg->geo_lat_long_header[0] ? cfg->geo_lat_long_header : NULL};
    struct header_view *view = malloc(sizeof(*view));
    struct geo_headers g;
    if (view == NULL) {
        session_close(s, "out of memory");
        return false;
    }
    view->req = req;
    view->used = 0;
    bool trusted = hop_trusted((void *)cfg, (const struct sockaddr *)&s->addr);
    geo_headers_read(&names, header_view_get, view, trusted ? hop_trusted : NULL, (void *)cfg, &g);
    if (trusted && g.has_addr)
        ws_take_access_addr(s, &names, view);
    free(view);
    if (!g.has_region && !g.has_coords && !g.has_city && !g.has_addr)
        return true;
    if (!trusted) {
        if (cfg->websocket_untrusted == WS_UNTRUSTED_REFUSE) {
            ws_answer(s, 403, NULL, "locality headers from an address not in trusted_proxies");
            return false;
        }
        char line[160];
        snprintf(line, sizeof(line), "locality headers from %s ignored: not in trusted_proxies",
                 session_peer(s).text);
        ws_log_refusal(s, true, line);
        return true;
    }
    s->login->geo = malloc(sizeof(*s->login->geo));
    if (s->login->geo == NULL) {
        session_close(s, "out of memory");
        return false;
    }
    ws_keep_geo(s, &g);
    return true;
}

/*
 * No subprotocol is needed; but a browser that offers some fails the
 * connection unless one comes back, so the first offered of those that
 * name a plain byte stream is echoed.  NULL: none of them.
 */
static const char *ws_pick_protocol(const char *offered, char *buf, size_t cap)
{
    static const char *const ours[] = {"binary", "postgresql", "postgres", NULL};
    for (const char *p = offered; p != NULL && *p != '\0';) {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        for (size_t i = 0; ours[i] != NULL && n > 0; i++)
            if (strlen(ours[i]) == n && strncasecmp(p, ours[i], n) == 0 && n < cap) {
                memcpy(buf, p, n); /* as the client spelled it: it compares exactly */
                buf[n] = '\0';
                return buf;
            }
        p += n;
    }
    return NULL;
}

/* Turns the stream into a WebSocket, after the 101 went out whole. */
static bool ws_switch(struct session *s, const struct http_request *req)
{
    char accept[HTTP_WS_ACCEPT_LEN], buf[320], proto[16];
    http_ws_accept(req->ws_key, accept);
    size_t n = http_switching_protocols(buf, sizeof(buf), accept,
                                        ws_pick_protocol(req->ws_protocol, proto, sizeof(proto)));
    if (n == 0 || endpoint_send(s, &s->client, buf, n) != 0)
        return false;
    if (evbuffer_get_length(s->client.out) > 0) {
        session_close(s, "could not send the WebSocket upgrade answer at once");
        return false;
    }
    if (stream_push_websocket(&s->client.stream, (uint64_t)s->cfg->websocket_max_frame) != 0) {
        session_close(s, "out of memory");
        return false;
    }
    return true;
}

/* ", caller ADDR per HEADER ...": a forwarded address that places the caller, and nothing more. */
static void ws_locality_note(const struct session *s, char *buf, size_t cap)
{
    const struct geo_headers *g = s->login->geo;
    char host[INET6_ADDRSTRLEN + 1];
    buf[0] = '\0';
    if (g == NULL || !g->has_addr || s->from_proxy ||
        getnameinfo((const struct sockaddr *)&g->addr, sizeof(g->addr), host, sizeof(host), NULL, 0,
                    NI_NUMERICHOST) != 0)
        return;
    snprintf(buf, cap, ", caller %s per %s for locality only: not in trusted_http_proxies", host,
             g->addr_header);
}

/* A whole request head: answer it, or upgrade. */
static void ws_request(struct session *s, const struct http_request *req)
{
    enum http_ws_check check;
    if (strcmp(req->path, "/healthz") == 0) {
        ws_healthz(s);
        return;
    }
    if (!config_websocket_path(s->cfg, req->path)) {
        ws_answer(s, 404, NULL, "no such WebSocket path (websocket_path)");
        return;
    }
    if ((check = http_upgrade_check(req)) != HTTP_WS_OK) {
        int status = http_ws_check_status(check);
        ws_answer(s, status, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL,
                  "not a WebSocket upgrade pgnear accepts");
        return;
    }
    if (!ws_take_geo(s, req) || !ws_switch(s, req) || ws_ingress_start_pings(s) != 0)
        return;
    stat_inc(&s->w->stats.websocket_upgrades);
    char note[192];
    ws_locality_note(s, note, sizeof(note));
    slog_info(s, "WebSocket upgrade from %s (path %s%s%s)", session_peer(s).text, req->path,
              s->websocket_tls ? ", wss" : "", note);
    phase_done(s);
}

/* Parsing waits for the blank line that ends the head, or enough bytes to be over a limit. */
static bool ws_head_ready(struct evbuffer *in, const struct http_limits *lim)
{
    size_t len = evbuffer_get_length(in);
    if (len >= lim->max_line)
        return true;
    return evbuffer_search(in, "\r\n\r\n", 4, NULL).pos >= 0;
}

static void ws_parse(struct session *s, const struct http_limits *lim)
{
    struct evbuffer *in = s->client.in;
    struct http_request *req = malloc(sizeof(*req));
    if (req == NULL) {
        session_close(s, "out of memory");
        return;
    }
    size_t len = evbuffer_get_length(in);
    enum http_result rc = http_upgrade_parse(evbuffer_pullup(in, -1), len, lim, req);
    if (rc == HTTP_OK && len > req->head_len) /* frames before our 101: RFC 6455 4.1 forbids */
        ws_answer(s, 400, NULL, "bytes after the upgrade request, before the answer");
    else if (rc == HTTP_OK) {
        evbuffer_drain(in, len);
        ws_request(s, req);
    } else if (rc != HTTP_INCOMPLETE)
        ws_answer(s, http_result_status(rc), NULL, "malformed HTTP request");
    free(req);
}

static void ws_on_read(struct session *s)
{
    struct http_limits lim;
    int more = 0;
    http_limits_default(&lim);
    size_t have = evbuffer_get_length(s->client.in);
    size_t room = lim.max_head + 1 > have ? lim.max_head + 1 - have : 1;
    ssize_t n = endpoint_fill(s, &s->client, room < WS_HEAD_READ ? room : WS_HEAD_READ, &more);
    if (n < 0)
        return;
    if (ws_head_ready(s->client.in, &lim))
        ws_parse(s, &lim);
}

void ws_ingress_enter(struct session *s)
{
    endpoint_set_reader(&s->client, ws_on_read);
}

void ws_ingress_timeout(struct session *s)
{
    stat_inc(&s->w->stats.websocket_refused);
    if (s->client.stream.ssl == NULL && evbuffer_get_length(s->client.in) > 0) {
        ws_answer(s, 408, NULL,
                  "the HTTP request did not come whole in websocket_handshake_timeout");
        return;
    }
    session_close(s, "no HTTP request within websocket_handshake_timeout");
}

/* ---- pings ---- */

/*
 * Each tick of a connection that carried nothing since the last one sends
 * a ping, so that a load balancer that cuts idle connections sees
 * traffic; a quiet connection whose ping went unanswered for a whole tick
 * (while pgnear was reading it) has lost its client and is closed.
 */
static void ws_ping_tick(struct session *s, struct ws_keepalive *k)
{
    struct endpoint *ep = &s->client;
    if (ep->stream.ws == NULL || s->closed)
        return;
    uint64_t traffic = ep->bytes_in + ep->bytes_out;
    if (traffic != k->traffic) {
        k->traffic = traffic;
        k->waiting = false;
        return;
    }
    if (ws_pong_seen(ep->stream.ws))
        k->waiting = false;
    if (k->waiting && ep->on_read != NULL && !ep->read_paused) {
        session_close(s, "the WebSocket client did not answer a ping within "
                         "websocket_ping_interval");
        return;
    }
    k->waiting = true;
    if (ws_ping(ep->stream.ws) != 0) {
        session_close(s, "could not send a WebSocket ping");
        return;
    }
    endpoint_arm(&s->client); /* a ping the socket did not take waits for writability */
}

static void ws_ping_due(void *owner, struct ws_keepalive *k)
{
    struct session *s = owner;
    s->busy++;
    ws_ping_tick(s, k);
    session_callback_done(s);
}

int ws_ingress_start_pings(struct session *s)
{
    int ms = s->cfg->websocket_ping_interval_ms;
    if (ms <= 0 || s->ws_keepalive != NULL)
        return 0;
    s->ws_keepalive = ws_keepalive_start(s->w, ms, ws_ping_due, s);
    if (s->ws_keepalive == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    return 0;
}
