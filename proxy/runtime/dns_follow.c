/*
 * dns_follow.c — host names asked again while pgnear runs, and the old
 * address of a moved name fenced at the swap (dns_follow.h).
 */
#include "proxy/runtime/dns_follow.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "proxy/base/dns_lookup.h"
#include "proxy/base/log.h"
#include "routing/claimants.h"
#include "routing/region.h"
#include "routing/registry.h"

/* The shortest wait between two questions of one name (a TTL of 0 asks again then). */
#define DNS_FOLLOW_MIN_MS 1000

struct dns_follower;

/* One name, asked again at its TTL. */
struct dns_name {
    struct dns_follower *f;
    char name[256];
    struct sockaddr_storage addr; /* what the configuration uses (its first host of the name) */
    struct event *timer;
    bool asking; /* a question is in flight (its answer comes, even as the follower stops) */
};

struct dns_follower {
    struct event_base *base;
    struct evdns_base *dns;
    struct dns_follow_params p;
    bool moved;   /* a move was told: the reload that follows replaces this follower */
    bool stopped; /* freed as the last answer in flight comes */
    int asking;   /* questions in flight */
    size_t count;
    struct dns_name names[];
};

/* addr's IP as text into buf. */
static const char *dns_follow_text(const struct sockaddr_storage *addr, char *buf, size_t cap)
{
    snprintf(buf, cap, "?");
    if (addr->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, buf, (socklen_t)cap);
    else if (addr->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, buf, (socklen_t)cap);
    return buf;
}

/* Where name is in told, or -1. */
static int dns_told_find(const struct dns_follow_told *told, const char *name)
{
    for (size_t i = 0; i < told->count; i++)
        if (strcasecmp(told->names[i], name) == 0)
            return (int)i;
    return -1;
}

static void dns_follow_free(struct dns_follower *f)
{
    for (size_t i = 0; i < f->count; i++)
        if (f->names[i].timer != NULL)
            event_free(f->names[i].timer);
    free(f);
}

/* An answer came (or failed) for n: the follower freed if it stopped meanwhile. */
static bool dns_follow_answered(struct dns_name *n)
{
    struct dns_follower *f = n->f;
    n->asking = false;
    f->asking--;
    if (!f->stopped)
        return true;
    if (f->asking == 0)
        dns_follow_free(f);
    return false;
}

/* n asked again after ms. */
static void dns_follow_later(struct dns_name *n, int ms)
{
    if (ms < DNS_FOLLOW_MIN_MS)
        ms = DNS_FOLLOW_MIN_MS;
    if (ms > n->f->p.max_ttl_ms)
        ms = n->f->p.max_ttl_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    event_add(n->timer, &tv);
}

/* n did not resolve: its last address kept, said once until it resolves again. */
static void dns_follow_failed(struct dns_name *n, const char *why)
{
    struct dns_follow_told *told = n->f->p.told;
    char addr[INET6_ADDRSTRLEN];
    if (dns_told_find(told, n->name) < 0) {
        log_warn(0,
                 "host name \"%s\" does not resolve (%s); its hosts keep their last address %s "
                 "until it resolves again",
                 n->name, why, dns_follow_text(&n->addr, addr, sizeof(addr)));
        if (told->count < DNS_FOLLOW_TOLD_MAX)
            snprintf(told->names[told->count++], sizeof(told->names[0]), "%s", n->name);
    }
    dns_follow_later(n, n->f->p.max_ttl_ms);
}

/* n resolved to one of addrs (family, count): kept, or a move told. */
static void dns_follow_resolved(struct dns_name *n, int family, const void *addrs, int count,
                                int ttl)
{
    struct dns_follower *f = n->f;
    int at = dns_told_find(f->p.told, n->name);
    if (at >= 0) {
        struct dns_follow_told *told = f->p.told;
        log_info(0, "host name \"%s\" resolves again", n->name);
        if ((size_t)at != --told->count)
            memcpy(told->names[at], told->names[told->count], sizeof(told->names[0]));
    }
    size_t len = family == AF_INET ? 4 : 16;
    const void *mine = family == AF_INET
                           ? (const void *)&((const struct sockaddr_in *)&n->addr)->sin_addr
                           : (const void *)&((const struct sockaddr_in6 *)&n->addr)->sin6_addr;
    for (int i = 0; i < count; i++)
        if (memcmp((const char *)addrs + (size_t)i * len, mine, len) == 0) {
            dns_follow_later(n, ttl > f->p.max_ttl_ms / 1000 ? f->p.max_ttl_ms : ttl * 1000);
            return;
        }
    char was[INET6_ADDRSTRLEN], now[INET6_ADDRSTRLEN];
    inet_ntop(family, addrs, now, sizeof(now));
    if (!f->moved) {
        f->moved = true;
        f->p.moved(f->p.arg, n->name, dns_follow_text(&n->addr, was, sizeof(was)), now);
    }
}

/* evdns's answer to an A or AAAA question. */
/* The addresses of res of n's family, packed as evdns gives them, into out: how many. */
static int dns_follow_pack(const struct dns_name *n, const struct evutil_addrinfo *res,
                           unsigned char *out, int max)
{
    int count = 0;
    for (const struct evutil_addrinfo *a = res; a != NULL && count < max; a = a->ai_next) {
        if (a->ai_family != n->addr.ss_family)
            continue;
        if (a->ai_family == AF_INET)
            memcpy(out + count * 4, &((const struct sockaddr_in *)a->ai_addr)->sin_addr, 4);
        else
            memcpy(out + count * 16, &((const struct sockaddr_in6 *)a->ai_addr)->sin6_addr, 16);
        count++;
    }
    return count;
}

/*
 * evdns_getaddrinfo's answer: /etc/hosts first (read with resolv.conf),
 * then DNS again with the search list; it carries no TTL: kept
 * dns_max_ttl.
 */
static void dns_follow_hosts_answer(int err, struct evutil_addrinfo *res, void *arg)
{
    struct dns_name *n = arg;
    unsigned char addrs[16 * 16];
    int count = err == 0 ? dns_follow_pack(n, res, addrs, 16) : 0;
    if (res != NULL)
        evutil_freeaddrinfo(res);
    if (!dns_follow_answered(n))
        return;
    if (count > 0)
        dns_follow_resolved(n, n->addr.ss_family, addrs, count, n->f->p.max_ttl_ms / 1000);
    else
        dns_follow_failed(n, err != 0 ? evutil_gai_strerror(err) : "no address");
}

/* Asks for n through evdns_getaddrinfo, whose answer always comes (at once from /etc/hosts). */
static void dns_follow_ask_hosts(struct dns_name *n)
{
    struct evutil_addrinfo hints = {.ai_family = n->addr.ss_family, .ai_socktype = SOCK_STREAM};
    n->asking = true;
    n->f->asking++;
    /* An answer from /etc/hosts comes before this returns (NULL): nothing more to do then. */
    (void)evdns_getaddrinfo(n->f->dns, n->name, NULL, &hints, dns_follow_hosts_answer, n);
}

/*
 * evdns's answer to an A or AAAA question.  Without dns_server, a name DNS
 * does not answer is looked for in /etc/hosts, as the load's getaddrinfo
 * found it (localhost).
 */
static void dns_follow_answer(int result, char type, int count, int ttl, void *addresses, void *arg)
{
    struct dns_name *n = arg;
    if (!dns_follow_answered(n))
        return;
    if (result == DNS_ERR_NONE && count > 0 && (type == DNS_IPv4_A || type == DNS_IPv6_AAAA))
        dns_follow_resolved(n, type == DNS_IPv4_A ? AF_INET : AF_INET6, addresses, count, ttl);
    else if (n->f->p.server[0] == '\0')
        dns_follow_ask_hosts(n);
    else
        dns_follow_failed(n, result == DNS_ERR_NONE ? "no address" : evdns_err_to_string(result));
}

/* The timer: n asked again, for an address of the family its hosts use. */
static void dns_follow_ask(evutil_socket_t fd, short what, void *arg)
{
    struct dns_name *n = arg;
    struct dns_follower *f = n->f;
    (void)fd;
    (void)what;
    n->asking = true;
    f->asking++;
    struct evdns_request *q =
        n->addr.ss_family == AF_INET6
            ? evdns_base_resolve_ipv6(f->dns, n->name, 0, dns_follow_answer, n)
            : evdns_base_resolve_ipv4(f->dns, n->name, 0, dns_follow_answer, n);
    if (q == NULL && n->asking) { /* not sent, and no answer came */
        n->asking = false;
        f->asking--;
        dns_follow_failed(n, "the question could not be sent");
    }
}

/* The names of regions' hosts that DNS answers for (not address literals), each once. */
static size_t dns_follow_names(const struct region_set *regions, const struct region_host **out,
                               size_t cap)
{
    size_t n = 0;
    for (size_t r = 0; r < regions->count; r++)
        for (size_t i = 0; i < regions->items[r].nhosts; i++) {
            const struct region_host *h = &regions->items[r].hosts[i];
            struct in6_addr a6;
            bool seen = inet_pton(AF_INET, h->name, &a6) == 1 ||
                        inet_pton(AF_INET6, h->name, &a6) == 1 || h->addrlen == 0;
            for (size_t j = 0; j < n && !seen; j++)
                seen = strcasecmp(out[j]->name, h->name) == 0;
            if (!seen && n < cap)
                out[n++] = h;
        }
    return n;
}

struct dns_follower *dns_follow_start(struct event_base *base, const struct region_set *regions,
                                      const struct dns_follow_params *p)
{
    const struct region_host *hosts[256];
    size_t n = p->max_ttl_ms > 0 ? dns_follow_names(regions, hosts, 256) : 0;
    if (n == 0)
        return NULL;
    char err[256];
    struct dns_follower *f = calloc(1, sizeof(*f) + n * sizeof(f->names[0]));
    if (f == NULL || (f->dns = dns_base_new(base, p->server, err, sizeof(err))) == NULL) {
        log_error(0, "host names are not followed: %s", f == NULL ? "out of memory" : err);
        free(f);
        return NULL;
    }
    f->base = base;
    f->p = *p;
    f->count = n;
    for (size_t i = 0; i < n; i++) {
        struct dns_name *dn = &f->names[i];
        dn->f = f;
        snprintf(dn->name, sizeof(dn->name), "%s", hosts[i]->name);
        memcpy(&dn->addr, &hosts[i]->addr, hosts[i]->addrlen);
        dn->timer = evtimer_new(base, dns_follow_ask, dn);
        if (dn->timer == NULL) {
            log_error(0, "host names are not followed: out of memory");
            dns_follow_stop(f);
            return NULL;
        }
        /* Asked at once, on the loop: the load's answer (getaddrinfo's) carries no TTL. */
        struct timeval now = {0, 0};
        event_add(dn->timer, &now);
    }
    return f;
}

bool dns_follow_stop(struct dns_follower *f)
{
    if (f == NULL)
        return false;
    for (size_t i = 0; i < f->count; i++)
        if (f->names[i].timer != NULL)
            event_del(f->names[i].timer);
    f->stopped = true;
    /* Every question in flight is answered DNS_ERR_SHUTDOWN, now or on a later turn. */
    evdns_base_free(f->dns, 1);
    f->dns = NULL;
    if (f->asking > 0)
        return true;
    dns_follow_free(f);
    return false;
}

/* The host of fresh with h's name and port, or NULL. */
static const struct region_host *dns_follow_same_name(const struct region_set *fresh,
                                                      const struct region_host *h)
{
    for (size_t r = 0; r < fresh->count; r++)
        for (size_t i = 0; i < fresh->items[r].nhosts; i++) {
            const struct region_host *o = &fresh->items[r].hosts[i];
            if (o->port == h->port && strcasecmp(o->name, h->name) == 0)
                return o;
        }
    return NULL;
}

/* The hosts of fresh that a move had fenced (a name moved back) serve again. */
static void dns_follow_unfence(const struct region_set *fresh)
{
    for (size_t r = 0; r < fresh->count; r++)
        for (size_t i = 0; i < fresh->items[r].nhosts; i++)
            claimants_unfence_moved(fresh->items[r].hosts[i].runtime);
}

int dns_follow_fence_moved(const struct region_set *old, const struct region_set *fresh)
{
    int fenced = 0;
    dns_follow_unfence(fresh);
    for (size_t r = 0; r < old->count; r++)
        for (size_t i = 0; i < old->items[r].nhosts; i++) {
            const struct region_host *h = &old->items[r].hosts[i];
            const struct region_host *now = dns_follow_same_name(fresh, h);
            if (now == NULL || now->runtime == h->runtime ||
                registry_same_address(&now->addr, &h->addr))
                continue;
            char was[INET6_ADDRSTRLEN], is[INET6_ADDRSTRLEN];
            claimants_fence_moved(h->runtime, now->runtime, now->region->runtime);
            log_warn(0,
                     "host %s:%d of region %s moved from %s to %s: the old address takes no "
                     "session or transaction, and the sessions there leave it as a former "
                     "primary's do",
                     h->name, h->port, now->region->name,
                     dns_follow_text(&h->addr, was, sizeof(was)),
                     dns_follow_text(&now->addr, is, sizeof(is)));
            fenced++;
        }
    return fenced;
}
