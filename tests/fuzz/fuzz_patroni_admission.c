/*
 * fuzz_patroni_admission.c
 *    libFuzzer target for what a GET /cluster body does past the parser
 *    (fuzz_patroni_cluster stops there): the input, a body, goes to a
 *    Patroni source (routing/patroni.c) over a configuration of three
 *    regions, as the source's own answers do; the members it hands the
 *    places hook go through the reload's admission (patroni_admit into a
 *    fresh region set, as proxy/runtime/reload.c does), the fresh set is
 *    bound to the registry, and a health-check round runs on it (health.c:
 *    every host's conninfo, its log line, then claimants.c's judgement,
 *    with every host's state drawn from the body); then the reload's next
 *    source takes the same body over the fresh set.  Besides not crashing:
 *    every host is in its region and has its runtime, every host added
 *    is an IP address or a DNS name at an address allowed, no region holds
 *    more than REGION_MAX_HOSTS, and every log line names a host's region.
 *    getaddrinfo is this file's: address literals as they are, a DNS name
 *    to an address drawn from it (or no address), never the network.
 *    Seeds: Patroni 3.0.2's bodies and the member host that crashed pgnear
 *    (issue 63 item 3: "127.1]:P,[127.0.0.1").
 */
#include <arpa/inet.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/pgasync.h"
#include "routing/cidr.h"
#include "routing/health.h"
#include "routing/patroni.h"
#include "routing/region.h"
#include "routing/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static uint32_t fnv(const void *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const uint8_t *)p)[i]) * 16777619u;
    return h;
}

/* Resolution without the network: literals as they are; a name to 10.x.y.z or ::1, or none. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    (void)hints;
    struct {
        struct addrinfo ai;
        struct sockaddr_storage ss;
    } *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return EAI_MEMORY;
    int port = service != NULL ? atoi(service) : 0;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&r->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&r->ss;
    uint32_t h = fnv(node, strlen(node));
    if (inet_pton(AF_INET, node, &v4->sin_addr) == 1 ||
        (inet_pton(AF_INET6, node, &v6->sin6_addr) != 1 && h % 5 != 0)) {
        if (inet_pton(AF_INET, node, &v4->sin_addr) != 1)
            v4->sin_addr.s_addr = htonl(0x0a000000u | (h >> 8));
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        r->ai.ai_addrlen = sizeof(*v4);
    } else if (inet_pton(AF_INET6, node, &v6->sin6_addr) == 1 || h % 10 == 0) {
        if (inet_pton(AF_INET6, node, &v6->sin6_addr) != 1)
            v6->sin6_addr = in6addr_loopback;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        r->ai.ai_addrlen = sizeof(*v6);
    } else {
        free(r);
        return EAI_NONAME;
    }
    r->ai.ai_family = r->ss.ss_family;
    r->ai.ai_socktype = SOCK_STREAM;
    r->ai.ai_addr = (struct sockaddr *)&r->ss;
    *res = &r->ai;
    return 0;
}

void freeaddrinfo(struct addrinfo *res)
{
    free(res); /* one allocation: the addrinfo and its address */
}

/* The configuration: us-east lists two hosts, eu-west none, ap-northeast one. */
static bool config_regions(struct region_set *set)
{
    static const char *const names[] = {"us-east", "eu-west", "ap-northeast"};
    static const char *const hosts[] = {"127.0.0.1:5432, 127.0.0.1:5433", "", "10.3.0.10:5432"};
    char err[256];
    for (int i = 0; i < 3; i++) {
        struct region *r = region_set_add(set, names[i]);
        if (r == NULL)
            return false;
        if (hosts[i][0] != '\0' && region_parse_hosts(r, hosts[i], err, sizeof(err)) != NULL)
            return false;
    }
    for (size_t i = 0; i < set->count; i++)
        for (size_t h = 0; h < set->items[i].nhosts; h++)
            set->items[i].hosts[h].region = &set->items[i];
    return true;
}

static void check_set(const struct region_set *set, const struct cidr_list *allowed, bool fresh)
{
    for (size_t i = 0; i < set->count; i++) {
        const struct region *r = &set->items[i];
        size_t configured = i == 0 ? 2 : i == 2 ? 1 : 0;
        check(r->nhosts <= REGION_MAX_HOSTS);
        for (size_t h = 0; h < r->nhosts; h++) {
            const struct region_host *host = &r->hosts[h];
            check(host->region == r);
            check(host->runtime != NULL);
            check(host->port > 0 && host->port <= 65535);
            if (h >= configured && fresh) {
                check(host_is_address_or_name(host->name));
                check(cidr_list_contains(allowed, (const struct sockaddr *)&host->addr));
            }
        }
    }
}

/* health's hooks: a conninfo that names the host (never used: no check connects), a log line. */
static bool fuzz_conninfo(void *arg, const struct region_host *h, char *buf, size_t cap)
{
    (void)arg;
    char port[16];
    snprintf(port, sizeof(port), "%d", h->port);
    buf[0] = '\0';
    pgasync_conninfo_add(buf, cap, "host", h->name);
    pgasync_conninfo_add(buf, cap, "port", port);
    return false; /* no check logs in: the host is down, said once */
}

static void fuzz_health_log(void *arg, const struct region *r, const struct region_host *h,
                            enum health_event ev, const char *why)
{
    (void)arg;
    char line[1024];
    check(r != NULL && h != NULL && h->region == r && why != NULL);
    snprintf(line, sizeof(line), "host %s:%d of region %s: %d %s", h->name, h->port, r->name,
             (int)ev, why);
}

static void fuzz_patroni_log(void *arg, bool warn, const char *line)
{
    (void)arg;
    (void)warn;
    check(line != NULL && strlen(line) < 1024);
}

/* What the places hook heard last. */
static struct patroni_place heard[PATRONI_PLACES_MAX];
static size_t nheard;

static void fuzz_places(void *arg, const struct patroni_place *places, size_t n)
{
    (void)arg;
    check(n <= PATRONI_PLACES_MAX);
    memcpy(heard, places, n * sizeof(*places));
    nheard = n;
}

/* Each host's state by the checks, drawn from the body: up, role, system, timeline. */
static void draw_health(struct region_set *set, uint32_t seed)
{
    for (size_t i = 0; i < set->count; i++)
        for (size_t h = 0; h < set->items[i].nhosts; h++) {
            struct host_health *hh = &set->items[i].hosts[h].runtime->health;
            uint32_t bits = fnv(&seed, sizeof(seed)) ^ (uint32_t)(i * 31 + h);
            seed = bits;
            hh->up = bits & 1;
            hh->checked = true;
            hh->role_known = bits & 2;
            hh->in_recovery = bits & 4;
            hh->system_id = 1 + ((bits >> 3) & 1);
            hh->timeline = 1 + ((bits >> 4) & 3);
        }
}

static struct health_checker *checks(struct event_base *base, struct region_set *set)
{
    struct health_params params = {.interval_ms = 1000, .timeout_ms = 1000, .fall = 3};
    return health_start(base, set, &params, fuzz_conninfo, fuzz_health_log, NULL);
}

/* A source over set, with the members placed before, taking the body once. */
static void answer(struct event_base *base, struct region_set *set, struct health_checker *hc,
                   const char *body, size_t len, struct patroni_told *told)
{
    struct patroni_params p = {.urls = "http://127.0.0.1:9",
                               .interval_ms = 1000,
                               .timeout_ms = 1000,
                               .placed = heard,
                               .nplaced = nheard,
                               .places = fuzz_places,
                               .log = fuzz_patroni_log,
                               .told = told};
    struct patroni_source *ps = patroni_start(base, set, hc, &p);
    if (ps == NULL)
        return;
    patroni_take_body(ps, body, len);
    patroni_stop(ps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct event_base *base;
    static struct patroni_told told;
    struct region_set cfg = {0}, fresh = {0};
    struct cidr_list allowed;
    char err[256];
    if (base == NULL && (base = event_base_new()) == NULL)
        return 0;
    struct registry *reg = registry_new();
    check(patroni_allowed_addrs("http://127.0.0.1:8008, http://10.3.0.10:8008", "10.0.0.0/9, ::1",
                                &allowed, err, sizeof(err)) == NULL);
    nheard = 0;
    memset(&told, 0, sizeof(told));
    if (reg != NULL && config_regions(&cfg) && registry_bind(reg, &cfg)) {
        struct health_checker *hc = checks(base, &cfg);
        answer(base, &cfg, hc, (const char *)data, size, &told);
        health_stop(hc);
        /* The reload: the file's regions again, with the members the hook heard. */
        if (config_regions(&fresh)) {
            patroni_admit(&fresh, &allowed, heard, nheard, NULL, NULL, fuzz_patroni_log, NULL);
            if (registry_bind(reg, &fresh)) {
                check_set(&fresh, &allowed, true);
                hc = checks(base, &fresh);
                draw_health(&fresh, fnv(data, size));
                health_judge_now(hc);
                answer(base, &fresh, hc, (const char *)data, size, &told);
                check_set(&fresh, &allowed, false);
                health_stop(hc);
            }
        }
    }
    region_set_free(&fresh);
    region_set_free(&cfg);
    registry_free(reg);
    /* libevent frees a closed connection's parts from its loop: let it, with nothing else left. */
    event_base_loop(base, EVLOOP_NONBLOCK);
    return 0;
}
