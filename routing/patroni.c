/*
 * patroni.c — GET /cluster of a Patroni cluster on the checks' thread, and
 * what pgnear takes from it (patroni.h).
 */
#include "routing/patroni.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "protocol/clock.h"
#include "protocol/patroni_cluster.h"
#include "routing/cidr.h"
#include "routing/health.h"
#include "routing/region.h"
#include "routing/registry.h"

/* The most of an answer read: /cluster of PATRONI_MEMBERS_MAX members is far less. */
#define PATRONI_BODY_MAX (256 * 1024)

/* How long a new leader hurries every host's checks (health_hurry). */
#define PATRONI_HURRY_MS 2000

struct patroni_endpoint {
    char host[256];
    int port;
    struct sockaddr_storage addr; /* resolved when the setting was read */
    char path[300];               /* the URL's path with /cluster after it */
    struct evhttp_connection *conn;
};

struct patroni_source {
    struct event_base *base;
    struct region_set *regions;
    struct health_checker *hc;
    int timeout_ms;
    patroni_places_fn places;
    patroni_log_fn log;
    void *arg;
    struct event *timer;
    struct event
        *retry; /* the next endpoint, after one failed (not from inside evhttp's callback) */
    size_t nep, cur, tried;
    bool in_flight;
    bool answered;    /* the last round got an answer */
    bool said_silent; /* the log said no endpoint answers, and nothing since */
    char last_error[256];
    char leader[PATRONI_NAME_MAX + 1]; /* the leader the last answer named ("": none) */
    struct patroni_place placed[PATRONI_PLACES_MAX];
    size_t nplaced;
    bool placed_told;
    struct patroni_told *told; /* the caller's, or own_told */
    struct patroni_told own_told;
    struct patroni_cluster cluster;
    struct patroni_endpoint ep[PATRONI_ENDPOINTS_MAX];
};

/* "http://host:port[/path]" into ep; false when it is not one. */
static bool patroni_parse_url(const char *url, size_t len, struct patroni_endpoint *ep)
{
    static const char scheme[] = "http://";
    char buf[512];
    if (len >= sizeof(buf) || len <= sizeof(scheme) - 1 ||
        strncasecmp(url, scheme, sizeof(scheme) - 1) != 0)
        return false;
    memcpy(buf, url + sizeof(scheme) - 1, len - (sizeof(scheme) - 1));
    buf[len - (sizeof(scheme) - 1)] = '\0';
    char *slash = strchr(buf, '/');
    const char *path = "";
    if (slash != NULL) {
        path = url + (sizeof(scheme) - 1) + (size_t)(slash - buf);
        *slash = '\0';
    }
    struct host_addr addr;
    char err[128];
    if (strchr(buf, ':') == NULL || !host_addr_resolve(buf, &addr, err, sizeof(err)))
        return false;
    size_t plen = slash != NULL ? len - (size_t)(path - url) : 0;
    while (plen > 0 && path[plen - 1] == '/')
        plen--;
    if (plen + sizeof("/cluster") > sizeof(ep->path))
        return false;
    snprintf(ep->host, sizeof(ep->host), "%s", addr.host);
    ep->port = addr.port;
    memcpy(&ep->addr, &addr.addr, addr.addrlen);
    snprintf(ep->path, sizeof(ep->path), "%.*s/cluster", (int)plen, path);
    return true;
}

/* Splits text at commas into endpoints; NULL, or why not into err. */
static const char *patroni_endpoints(const char *text, struct patroni_endpoint *ep, size_t *n,
                                     char *err, size_t errcap)
{
    *n = 0;
    for (const char *p = text; *p != '\0';) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t len = strcspn(p, ", \t");
        if (len == 0)
            break;
        if (*n == PATRONI_ENDPOINTS_MAX) {
            snprintf(err, errcap, "patroni: more than %d endpoints", PATRONI_ENDPOINTS_MAX);
            return err;
        }
        if (!patroni_parse_url(p, len, &ep[*n])) {
            snprintf(err, errcap, "patroni: \"%.*s\" is not http://host:port[/path]",
                     (int)(len > 200 ? 200 : len), p);
            return err;
        }
        (*n)++;
        p += len;
    }
    if (*n == 0) {
        snprintf(err, errcap, "patroni: no endpoint");
        return err;
    }
    return NULL;
}

const char *patroni_check_urls(const char *text, char *err, size_t errcap)
{
    struct patroni_endpoint ep[PATRONI_ENDPOINTS_MAX];
    size_t n;
    return patroni_endpoints(text, ep, &n, err, errcap);
}

const char *patroni_allowed_addrs(const char *urls, const char *hosts, struct cidr_list *out,
                                  char *err, size_t errcap)
{
    struct patroni_endpoint ep[PATRONI_ENDPOINTS_MAX];
    size_t n;
    char why[200];
    if (!cidr_list_parse(out, hosts, why, sizeof(why))) {
        snprintf(err, errcap, "patroni_hosts: %s", why);
        return err;
    }
    if (urls[0] == '\0')
        return NULL;
    if (patroni_endpoints(urls, ep, &n, err, errcap) != NULL)
        return err;
    for (size_t i = 0; i < n; i++)
        if (!cidr_list_add_host(out, (const struct sockaddr *)&ep[i].addr)) {
            snprintf(err, errcap, "patroni_hosts: more than %d entries with the endpoints",
                     CIDR_MAX);
            return err;
        }
    return NULL;
}

/* Adds one place to its region of set; false with why in err when it is left out. */
static bool patroni_admit_one(struct region_set *set, const struct cidr_list *allowed,
                              const struct patroni_place *pl, host_lookup_fn lookup,
                              void *lookup_arg, char *err, size_t errcap)
{
    struct region *r = region_set_find(set, pl->region);
    if (r == NULL) {
        snprintf(err, errcap, "region %s is not configured", pl->region);
        return false;
    }
    for (size_t h = 0; h < r->nhosts; h++)
        if (r->hosts[h].port == pl->port && strcasecmp(r->hosts[h].name, pl->host) == 0)
            return true; /* the file lists it */
    struct host_addr addr;
    char why[300];
    if (!host_addr_resolve_at(pl->host, pl->port, lookup, lookup_arg, &addr, why, sizeof(why))) {
        snprintf(err, errcap, "%s", why);
        return false;
    }
    if (!cidr_list_contains(allowed, (const struct sockaddr *)&addr.addr)) {
        char a[INET6_ADDRSTRLEN] = "?";
        const struct sockaddr *sa = (const struct sockaddr *)&addr.addr;
        inet_ntop(sa->sa_family,
                  sa->sa_family == AF_INET6
                      ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                      : (const void *)&((const struct sockaddr_in *)sa)->sin_addr,
                  a, sizeof(a));
        snprintf(err, errcap,
                 "its address %s is not one of the patroni endpoints' nor in patroni_hosts, and "
                 "pgnear sends credentials only where its configuration says",
                 a);
        return false;
    }
    return region_add_addr(r, &addr, err, errcap) == NULL;
}

void patroni_admit(struct region_set *set, const struct cidr_list *allowed,
                   const struct patroni_place *places, size_t n, host_lookup_fn lookup,
                   void *lookup_arg, patroni_log_fn log, void *arg)
{
    for (size_t i = 0; i < n; i++) {
        char err[400], line[800];
        if (patroni_admit_one(set, allowed, &places[i], lookup, lookup_arg, err, sizeof(err)))
            continue;
        snprintf(line, sizeof(line), "patroni: member %.255s port %d of region %s is left out: %s",
                 places[i].host, places[i].port, places[i].region, err);
        log(arg, true, line);
    }
}

/* Whether member m is where h listens: the same port, and the same name or address. */
static bool member_is_host(const struct patroni_member *m, const struct region_host *h)
{
    if (m->port != h->port || m->host[0] == '\0')
        return false;
    if (strcasecmp(m->host, h->name) == 0)
        return true;
    if (h->addr.ss_family == AF_INET) {
        struct in_addr a;
        return inet_pton(AF_INET, m->host, &a) == 1 &&
               memcmp(&a, &((const struct sockaddr_in *)&h->addr)->sin_addr, sizeof(a)) == 0;
    }
    if (h->addr.ss_family == AF_INET6) {
        struct in6_addr a;
        return inet_pton(AF_INET6, m->host, &a) == 1 &&
               memcmp(&a, &((const struct sockaddr_in6 *)&h->addr)->sin6_addr, sizeof(a)) == 0;
    }
    return false;
}

/*
 * Sets h's marks; c NULL: none (Patroni unheard).  A member stays one while
 * Patroni answers, also once /cluster no longer lists it: a member whose
 * Patroni stopped drops out of /cluster when its key expires, while its
 * PostgreSQL may still run as a primary that Patroni no longer leads.
 */
static void patroni_mark(struct region_host *h, const struct patroni_cluster *c)
{
    const struct patroni_member *m = NULL;
    int index = -1;
    for (size_t i = 0; c != NULL && i < c->count && m == NULL; i++)
        if (member_is_host(&c->members[i], h)) {
            m = &c->members[i];
            index = (int)i;
        }
    struct host_health *hh = &h->runtime->health;
    bool was = __atomic_load_n(&hh->ha_member, __ATOMIC_RELAXED);
    __atomic_store_n(&hh->ha_member, c != NULL && (m != NULL || was), __ATOMIC_RELAXED);
    __atomic_store_n(&hh->ha_leader, m != NULL && index == c->leader, __ATOMIC_RELAXED);
    __atomic_store_n(&hh->ha_noloadbalance, m != NULL && m->noloadbalance, __ATOMIC_RELAXED);
}

static void patroni_mark_all(struct patroni_source *ps, const struct patroni_cluster *c)
{
    for (size_t r = 0; r < ps->regions->count; r++)
        for (size_t i = 0; i < ps->regions->items[r].nhosts; i++)
            patroni_mark(&ps->regions->items[r].hosts[i], c);
}

/* Whether some configured host is where m listens. */
static bool patroni_member_listed(const struct patroni_source *ps, const struct patroni_member *m)
{
    for (size_t r = 0; r < ps->regions->count; r++)
        for (size_t i = 0; i < ps->regions->items[r].nhosts; i++)
            if (member_is_host(m, &ps->regions->items[r].hosts[i]))
                return true;
    return false;
}

static int patroni_place_order(const void *a, const void *b);

bool patroni_places_equal(const struct patroni_place *a, const struct patroni_place *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (patroni_place_order(&a[i], &b[i]) != 0 || strcasecmp(a[i].region, b[i].region) != 0)
            return false;
    return true;
}

static int patroni_place_order(const void *a, const void *b)
{
    const struct patroni_place *x = a, *y = b;
    int c = strcmp(x->region, y->region);
    if (c == 0)
        c = strcmp(x->host, y->host);
    return c != 0 ? c : (x->port > y->port) - (x->port < y->port);
}

/*
 * Whether a member added before, that /cluster no longer lists, still
 * answers pgnear's checks: it stays until it does not (its PostgreSQL may
 * run on as a primary, fenced, with sessions to move off it).
 */
static bool patroni_place_alive(const struct patroni_source *ps, const struct patroni_place *pl)
{
    const struct region *r = region_set_find(ps->regions, pl->region);
    for (size_t i = 0; r != NULL && i < r->nhosts; i++)
        if (r->hosts[i].port == pl->port && strcasecmp(r->hosts[i].name, pl->host) == 0)
            return host_is_reachable(&r->hosts[i]);
    return false;
}

/*
 * Whether tagged member m may be added to its region: its tag names a
 * configured region, and its host is an address or a DNS name (nothing a
 * host list would split); else why not into line.
 */
static bool patroni_member_placeable(const struct patroni_source *ps,
                                     const struct patroni_member *m, char *line, size_t cap)
{
    if (region_set_find(ps->regions, m->region) == NULL) {
        snprintf(line, cap,
                 "patroni: member %s (port %d) is tagged pgnear_region \"%s\", which is not a "
                 "configured region; it is left out",
                 m->name, m->port, m->region);
        return false;
    }
    if (!host_is_address_or_name(m->host)) {
        snprintf(line, cap,
                 "patroni: member %s of region %s is left out: its host \"%.120s\" is neither an "
                 "IP address nor a DNS name",
                 m->name, m->region, m->host);
        return false;
    }
    return true;
}

/* The lines about members left out: each said once, while the answers go on giving it. */
static void patroni_say_left_out(struct patroni_source *ps, char (*lines)[PATRONI_LINE_MAX],
                                 size_t n)
{
    struct patroni_told *t = ps->told;
    for (size_t i = 0; i < n; i++) {
        bool said = false;
        for (size_t j = 0; j < t->n && !said; j++)
            said = strcmp(lines[i], t->lines[j]) == 0;
        if (!said)
            ps->log(ps->arg, true, lines[i]);
    }
    memcpy(t->lines, lines, n * sizeof(lines[0]));
    t->n = n;
}

/*
 * The members tagged with a region that no region lists, those added
 * before that are still members, and those gone from /cluster that still
 * answer: the places hook hears the list when it changed.
 */
static void patroni_place_members(struct patroni_source *ps)
{
    struct patroni_place now[PATRONI_PLACES_MAX];
    size_t n = 0;
    memset(now, 0, sizeof(now));
    for (size_t j = 0; j < ps->nplaced && n < PATRONI_PLACES_MAX; j++) {
        bool listed = false;
        for (size_t i = 0; i < ps->cluster.count && !listed; i++)
            listed = ps->cluster.members[i].port == ps->placed[j].port &&
                     strcmp(ps->cluster.members[i].host, ps->placed[j].host) == 0;
        if (!listed && patroni_place_alive(ps, &ps->placed[j]))
            now[n++] = ps->placed[j];
    }
    char said[PATRONI_MEMBERS_MAX][PATRONI_LINE_MAX];
    size_t nsaid = 0;
    for (size_t i = 0; i < ps->cluster.count && n < PATRONI_PLACES_MAX; i++) {
        const struct patroni_member *m = &ps->cluster.members[i];
        if (m->region[0] == '\0' || m->host[0] == '\0' || m->port <= 0)
            continue; /* untagged (a member the file lists, or none), or not yet listening */
        if (!patroni_member_placeable(ps, m, said[nsaid], sizeof(said[0]))) {
            nsaid++;
            continue;
        }
        bool placed_before = false;
        for (size_t j = 0; j < ps->nplaced; j++)
            placed_before |= strcmp(ps->placed[j].host, m->host) == 0 &&
                             ps->placed[j].port == m->port &&
                             strcasecmp(ps->placed[j].region, m->region) == 0;
        if (!placed_before && patroni_member_listed(ps, m))
            continue; /* the file lists it */
        snprintf(now[n].region, sizeof(now[n].region), "%s", m->region);
        snprintf(now[n].host, sizeof(now[n].host), "%s", m->host);
        now[n].port = m->port;
        n++;
    }
    patroni_say_left_out(ps, said, nsaid);
    qsort(now, n, sizeof(now[0]), patroni_place_order);
    if (ps->placed_told && n == ps->nplaced && patroni_places_equal(now, ps->placed, n))
        return;
    memcpy(ps->placed, now, n * sizeof(now[0]));
    ps->nplaced = n;
    ps->placed_told = true;
    if (ps->places != NULL)
        ps->places(ps->arg, ps->placed, ps->nplaced);
}

/* A new leader (or none): said once, and every host checked often for a while. */
static void patroni_leader_changed(struct patroni_source *ps)
{
    const char *name = ps->cluster.leader >= 0 ? ps->cluster.members[ps->cluster.leader].name : "";
    if (strcmp(name, ps->leader) == 0)
        return;
    char line[320];
    if (name[0] != '\0')
        snprintf(line, sizeof(line), "patroni: member %s holds the leader lock%s%s", name,
                 ps->leader[0] ? " instead of " : "", ps->leader);
    else
        snprintf(line, sizeof(line), "patroni: no member holds the leader lock (it was %s)",
                 ps->leader[0] ? ps->leader : "none");
    ps->log(ps->arg, name[0] == '\0', line);
    snprintf(ps->leader, sizeof(ps->leader), "%s", name);
    if (health_hurry_hosts(ps->regions, NULL, NULL, monotonic_ms() + PATRONI_HURRY_MS))
        health_wake(ps->hc);
}

/* An answer that parsed: the marks, the leader, the members to add, then the judgement. */
static void patroni_heard(struct patroni_source *ps)
{
    if (!ps->answered && ps->said_silent) {
        ps->log(ps->arg, false, "patroni: its REST API answers again; routing follows its leader");
        ps->said_silent = false;
    }
    ps->answered = true;
    patroni_mark_all(ps, &ps->cluster);
    patroni_leader_changed(ps);
    patroni_place_members(ps);
    health_judge_now(ps->hc);
}

/* No endpoint answered this round: pgnear's own checks decide, said once. */
static void patroni_silent(struct patroni_source *ps)
{
    ps->answered = false;
    patroni_mark_all(ps, NULL);
    if (!ps->said_silent) {
        char line[400];
        snprintf(line, sizeof(line),
                 "patroni: no REST endpoint answers (%s); routing on pgnear's own checks",
                 ps->last_error);
        ps->log(ps->arg, true, line);
        ps->said_silent = true;
    }
    health_judge_now(ps->hc);
}

static void patroni_ask(struct patroni_source *ps);

/* One endpoint failed: the next one at once (from the loop), or the round ends silent. */
static void patroni_failed(struct patroni_source *ps, const char *why)
{
    const struct patroni_endpoint *ep = &ps->ep[ps->cur];
    snprintf(ps->last_error, sizeof(ps->last_error), "http://%.64s:%d%.64s: %.100s", ep->host,
             ep->port, ep->path, why);
    ps->cur = (ps->cur + 1) % ps->nep;
    if (++ps->tried < ps->nep) {
        struct timeval now = {0, 0};
        evtimer_add(ps->retry, &now);
        return;
    }
    ps->tried = 0;
    patroni_silent(ps);
}

void patroni_take_body(struct patroni_source *ps, const char *text, size_t len)
{
    char err[PATRONI_ERROR_MAX];
    if (patroni_cluster_parse(text, len, &ps->cluster, err, sizeof(err)) != PATRONI_OK) {
        char why[PATRONI_ERROR_MAX + 40];
        snprintf(why, sizeof(why), "a malformed answer: %s", err);
        patroni_failed(ps, why);
        return;
    }
    ps->tried = 0;
    patroni_heard(ps);
}

static void patroni_read_body(struct patroni_source *ps, struct evhttp_request *req)
{
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(body);
    const char *text = len > 0 ? (const char *)evbuffer_pullup(body, -1) : "";
    if (len > 0 && text == NULL) {
        patroni_failed(ps, "out of memory");
        return;
    }
    patroni_take_body(ps, text, len);
}

static void patroni_answer(struct evhttp_request *req, void *arg)
{
    struct patroni_source *ps = arg;
    ps->in_flight = false;
    int code = req != NULL ? evhttp_request_get_response_code(req) : 0;
    char why[64];
    if (code == 200) {
        patroni_read_body(ps, req);
        return;
    }
    if (code == 0)
        snprintf(why, sizeof(why), "no answer within %d ms, or the connection failed",
                 ps->timeout_ms);
    else
        snprintf(why, sizeof(why), "HTTP status %d", code);
    patroni_failed(ps, why);
}

/* GET /cluster of the current endpoint. */
static void patroni_ask(struct patroni_source *ps)
{
    struct patroni_endpoint *ep = &ps->ep[ps->cur];
    if (ps->in_flight)
        return;
    if (ep->conn == NULL) {
        ep->conn = evhttp_connection_base_new(ps->base, NULL, ep->host, (unsigned short)ep->port);
        if (ep->conn == NULL) {
            patroni_failed(ps, "out of memory");
            return;
        }
        struct timeval tv = {ps->timeout_ms / 1000, (ps->timeout_ms % 1000) * 1000};
        evhttp_connection_set_timeout_tv(ep->conn, &tv);
        evhttp_connection_set_max_body_size(ep->conn, PATRONI_BODY_MAX);
        evhttp_connection_set_retries(ep->conn, 0);
    }
    struct evhttp_request *req = evhttp_request_new(patroni_answer, ps);
    if (req == NULL) {
        patroni_failed(ps, "out of memory");
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", ep->host);
    ps->in_flight = true;
    if (evhttp_make_request(ep->conn, req, EVHTTP_REQ_GET, ep->path) != 0) {
        ps->in_flight = false; /* evhttp freed req */
        patroni_failed(ps, "the request could not be made");
    }
}

/* A round every interval, unless the last one still goes from endpoint to endpoint. */
static void patroni_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct patroni_source *ps = arg;
    if (ps->in_flight || evtimer_pending(ps->retry, NULL))
        return;
    ps->tried = 0;
    patroni_ask(ps);
}

static void patroni_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    patroni_ask(arg);
}

struct patroni_source *patroni_start(struct event_base *base, struct region_set *regions,
                                     struct health_checker *hc, const struct patroni_params *p)
{
    struct patroni_source *ps = calloc(1, sizeof(*ps));
    char err[256];
    if (ps == NULL)
        return NULL;
    *ps = (struct patroni_source){.base = base,
                                  .regions = regions,
                                  .hc = hc,
                                  .timeout_ms = p->timeout_ms,
                                  .places = p->places,
                                  .log = p->log,
                                  .arg = p->arg,
                                  .cluster.leader = -1};
    ps->nplaced = p->nplaced < PATRONI_PLACES_MAX ? p->nplaced : PATRONI_PLACES_MAX;
    memcpy(ps->placed, p->placed, ps->nplaced * sizeof(ps->placed[0]));
    ps->placed_told = true; /* the last source told them; this one tells a change */
    ps->told = p->told != NULL ? p->told : &ps->own_told;
    struct timeval tv = {p->interval_ms / 1000, (p->interval_ms % 1000) * 1000};
    if (patroni_endpoints(p->urls, ps->ep, &ps->nep, err, sizeof(err)) != NULL ||
        (ps->timer = event_new(base, -1, EV_PERSIST, patroni_tick, ps)) == NULL ||
        (ps->retry = evtimer_new(base, patroni_retry, ps)) == NULL ||
        event_add(ps->timer, &tv) != 0) {
        patroni_stop(ps);
        return NULL;
    }
    patroni_ask(ps); /* at once, as the checks' first round */
    return ps;
}

void patroni_stop(struct patroni_source *ps)
{
    if (ps == NULL)
        return;
    if (ps->timer != NULL)
        event_free(ps->timer);
    if (ps->retry != NULL)
        event_free(ps->retry);
    /* A request in flight is freed with its connection, without its callback. */
    for (size_t i = 0; i < ps->nep; i++)
        if (ps->ep[i].conn != NULL)
            evhttp_connection_free(ps->ep[i].conn);
    free(ps); /* the marks stay for the next source, which sets them with its first answer */
}

void patroni_forget(struct region_set *regions)
{
    for (size_t r = 0; r < regions->count; r++)
        for (size_t i = 0; i < regions->items[r].nhosts; i++)
            patroni_mark(&regions->items[r].hosts[i], NULL);
}
