/*
 * claimants.c — which primary of a database system serves it, and which
 * are fenced as former primaries (claimants.h).
 */
#include "routing/claimants.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>

#include "routing/region.h"
#include "routing/registry.h"

/* What the checker has seen of one database system: its newest timeline and who holds it. */
struct claimed_system {
    uint64_t system_id;
    uint32_t timeline;
    struct registry_host *holder;
    struct registry_region *holder_region;
};

struct claimants {
    size_t count, cap;
    struct claimed_system systems[];
};

struct claimants *claimants_new(const struct region_set *regions)
{
    size_t hosts = 0;
    for (size_t i = 0; i < regions->count; i++)
        hosts += regions->items[i].nhosts;
    struct claimants *c = calloc(1, sizeof(*c) + (hosts + 1) * sizeof(c->systems[0]));
    if (c != NULL)
        c->cap = hosts + 1;
    return c;
}

void claimants_free(struct claimants *c)
{
    free(c);
}

/* A primary by a check that logged in, with its system and timeline known. */
static bool claims_primary(const struct region_host *h)
{
    const struct host_health *hh = &h->runtime->health;
    return host_is_reachable(h) && __atomic_load_n(&hh->role_known, __ATOMIC_RELAXED) &&
           !__atomic_load_n(&hh->in_recovery, __ATOMIC_RELAXED) && hh->system_id != 0 &&
           hh->timeline != 0;
}

/* The entry of system_id, made when there is none; NULL when full (cannot be: one per host). */
static struct claimed_system *claimants_system(struct claimants *c, uint64_t system_id)
{
    for (size_t i = 0; i < c->count; i++)
        if (c->systems[i].system_id == system_id)
            return &c->systems[i];
    if (c->count == c->cap)
        return NULL;
    struct claimed_system *cs = &c->systems[c->count++];
    *cs = (struct claimed_system){.system_id = system_id};
    return cs;
}

/* Two addresses of one server (a relay in front of it): one system, one start. */
static bool same_server(const struct host_health *a, const struct host_health *b)
{
    return a == b ||
           (a->system_id == b->system_id && a->started_us != 0 && a->started_us == b->started_us);
}

/*
 * Whether h, a primary of cs's system, is fenced: it is not the holder (nor
 * the holder's server under another address), and the two are not both on
 * timeline 1 — no promotion makes that one: two copies of one initdb that
 * were never each other's standby.
 */
static bool claimants_fences(const struct claimed_system *cs, const struct region_host *h)
{
    const struct host_health *hh = &h->runtime->health;
    if (cs->holder == NULL || same_server(&cs->holder->health, hh))
        return false;
    return !(cs->timeline == 1 && hh->timeline == 1);
}

/* Whether the holder of cs is a primary that claims it now (among regions). */
static const struct region_host *holder_host(const struct claimed_system *cs,
                                             const struct region_set *regions)
{
    for (size_t r = 0; cs->holder != NULL && r < regions->count; r++)
        for (size_t i = 0; i < regions->items[r].nhosts; i++)
            if (regions->items[r].hosts[i].runtime == cs->holder)
                return &regions->items[r].hosts[i];
    return NULL;
}

/*
 * h, a primary, against what its system has seen: a newer timeline makes
 * it the holder; at the holder's timeline it takes over only from a
 * holder that no longer claims it, or when its HA manager names it leader
 * and not the holder.
 */
static void claimants_weigh(struct claimed_system *cs, const struct region_host *h,
                            const struct region_set *regions)
{
    const struct host_health *hh = &h->runtime->health;
    if (hh->timeline < cs->timeline || (cs->holder != NULL && same_server(&cs->holder->health, hh)))
        return;
    if (hh->timeline == cs->timeline && cs->holder != NULL) {
        const struct region_host *holder = holder_host(cs, regions);
        bool holder_claims = holder != NULL && claims_primary(holder);
        bool named = __atomic_load_n(&hh->ha_leader, __ATOMIC_RELAXED) &&
                     !(holder_claims &&
                       __atomic_load_n(&holder->runtime->health.ha_leader, __ATOMIC_RELAXED));
        if (holder_claims && !named)
            return;
    }
    cs->timeline = hh->timeline;
    cs->holder = h->runtime;
    cs->holder_region = h->region->runtime;
}

/* rh's address as text, into buf (left as it is for none). */
static void claimants_address(const struct registry_host *rh, char *buf, size_t cap)
{
    if (rh->addr.ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&rh->addr)->sin_addr, buf, (socklen_t)cap);
    else if (rh->addr.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&rh->addr)->sin6_addr, buf,
                  (socklen_t)cap);
}

void claimants_fence_moved(struct registry_host *old, struct registry_host *now,
                           struct registry_region *region)
{
    struct host_health *hh = &old->health;
    __atomic_store_n(&hh->fenced_by, now, __ATOMIC_RELAXED);
    __atomic_store_n(&hh->fenced_by_region, region, __ATOMIC_RELAXED);
    __atomic_store_n(&hh->fenced_timeline, hh->timeline, __ATOMIC_RELAXED);
    __atomic_store_n(&hh->fenced_by_timeline, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hh->fenced_why, (uint8_t)CLAIMANTS_DNS, __ATOMIC_RELAXED);
    if (!__atomic_exchange_n(&hh->fenced, true, __ATOMIC_RELAXED))
        __atomic_add_fetch(&hh->fences, 1, __ATOMIC_RELAXED);
}

void claimants_unfence_moved(struct registry_host *now)
{
    struct host_health *hh = &now->health;
    if (__atomic_load_n(&hh->fenced_why, __ATOMIC_RELAXED) == CLAIMANTS_DNS)
        __atomic_store_n(&hh->fenced, false, __ATOMIC_RELAXED);
}

void claimants_describe(const struct registry_host *rh, char *buf, size_t cap)
{
    const struct host_health *hh = &rh->health;
    const struct registry_host *by = __atomic_load_n(&hh->fenced_by, __ATOMIC_RELAXED);
    const struct registry_region *region = __atomic_load_n(&hh->fenced_by_region, __ATOMIC_RELAXED);
    uint32_t own = __atomic_load_n(&hh->fenced_timeline, __ATOMIC_RELAXED);
    uint32_t theirs = __atomic_load_n(&hh->fenced_by_timeline, __ATOMIC_RELAXED);
    uint8_t why = __atomic_load_n(&hh->fenced_why, __ATOMIC_RELAXED);
    bool ha = why == CLAIMANTS_HA;
    if (why == CLAIMANTS_DNS) {
        char was[INET6_ADDRSTRLEN] = "?", now[INET6_ADDRSTRLEN] = "another address";
        claimants_address(rh, was, sizeof(was));
        if (by != NULL)
            claimants_address(by, now, sizeof(now));
        snprintf(buf, cap, "former address %s of its name, which resolves to %s now", was, now);
    } else if (ha && (by == NULL || region == NULL))
        snprintf(buf, cap, "former primary: timeline %u, its HA manager names no leader", own);
    else if (ha)
        snprintf(buf, cap, "former primary: timeline %u, its HA manager names %s:%d of %s leader",
                 own, by->name, by->port, region->name);
    else if (by == NULL || region == NULL)
        snprintf(buf, cap, "former primary");
    else
        snprintf(buf, cap, "former primary: timeline %u, %s:%d of %s is primary on timeline %u%s",
                 own, by->name, by->port, region->name, theirs,
                 own == theirs ? " and holds its system's writes" : "");
}

/* Who a fenced host gave way to: the holder of its system, or the HA manager's leader. */
struct claimants_fence_by {
    enum claimants_fence why;
    struct registry_host *host; /* NULL: none (the HA manager names no leader) */
    struct registry_region *region;
    uint32_t timeline;
};

/* Fences h for by, or (by NULL) lets it serve again; report hears a change. */
static void claimants_set(struct region_host *h, const struct claimants_fence_by *by,
                          claimants_report_fn report, void *arg)
{
    struct host_health *hh = &h->runtime->health;
    bool was = __atomic_load_n(&hh->fenced, __ATOMIC_RELAXED);
    bool fence = by != NULL;
    if (fence && (!was || hh->fenced_by != by->host || hh->fenced_why != by->why)) {
        __atomic_store_n(&hh->fenced_by, by->host, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->fenced_by_region, by->region, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->fenced_timeline, hh->timeline, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->fenced_by_timeline, by->timeline, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->fenced_why, (uint8_t)by->why, __ATOMIC_RELAXED);
    }
    if (fence == was)
        return;
    char why[320];
    if (fence) {
        __atomic_add_fetch(&hh->fences, 1, __ATOMIC_RELAXED);
        __atomic_store_n(&hh->fenced, true, __ATOMIC_RELAXED);
        claimants_describe(h->runtime, why, sizeof(why));
    } else {
        __atomic_store_n(&hh->fenced, false, __ATOMIC_RELAXED);
        snprintf(why, sizeof(why), "%s",
                 !claims_primary(h) ? "it is a standby now"
                 : __atomic_load_n(&hh->ha_leader, __ATOMIC_RELAXED)
                     ? "its HA manager names it leader now"
                     : "it holds its system's writes now");
    }
    report(arg, h, fence, why);
}

/* A primary its HA manager knows as a member and does not name leader. */
static bool ha_disowned(const struct region_host *h)
{
    const struct host_health *hh = &h->runtime->health;
    return __atomic_load_n(&hh->ha_member, __ATOMIC_RELAXED) &&
           !__atomic_load_n(&hh->ha_leader, __ATOMIC_RELAXED);
}

/* The host its HA manager names leader among regions, for what a fence says; NULL: none. */
static const struct region_host *ha_leader_host(const struct region_set *regions)
{
    for (size_t r = 0; r < regions->count; r++)
        for (size_t i = 0; i < regions->items[r].nhosts; i++)
            if (__atomic_load_n(&regions->items[r].hosts[i].runtime->health.ha_leader,
                                __ATOMIC_RELAXED))
                return &regions->items[r].hosts[i];
    return NULL;
}

/* Whether, and for whom, the primary h of cs's system is fenced; false: it serves. */
static bool claimants_fence_of(const struct claimed_system *cs, const struct region_host *h,
                               const struct region_set *regions, struct claimants_fence_by *by)
{
    if (ha_disowned(h)) {
        const struct region_host *leader = ha_leader_host(regions);
        *by = (struct claimants_fence_by){CLAIMANTS_HA, leader ? leader->runtime : NULL,
                                          leader ? leader->region->runtime : NULL, 0};
        return true;
    }
    if (cs == NULL || !claimants_fences(cs, h))
        return false;
    *by = (struct claimants_fence_by){CLAIMANTS_TIMELINE, cs->holder, cs->holder_region,
                                      cs->timeline};
    return true;
}

/* Whether h, not a primary now, is known to be a standby (a fence ends; a host down keeps it). */
static bool known_standby(const struct region_host *h)
{
    const struct host_health *hh = &h->runtime->health;
    return host_is_reachable(h) && __atomic_load_n(&hh->role_known, __ATOMIC_RELAXED) &&
           __atomic_load_n(&hh->in_recovery, __ATOMIC_RELAXED);
}

void claimants_judge(struct claimants *c, const struct region_set *regions,
                     claimants_report_fn report, void *arg)
{
    for (size_t r = 0; r < regions->count; r++)
        for (size_t i = 0; i < regions->items[r].nhosts; i++) {
            struct region_host *h = &regions->items[r].hosts[i];
            if (!claims_primary(h) || ha_disowned(h))
                continue;
            struct claimed_system *cs = claimants_system(c, h->runtime->health.system_id);
            if (cs != NULL)
                claimants_weigh(cs, h, regions);
        }
    for (size_t r = 0; r < regions->count; r++)
        for (size_t i = 0; i < regions->items[r].nhosts; i++) {
            struct region_host *h = &regions->items[r].hosts[i];
            struct host_health *hh = &h->runtime->health;
            if (claims_primary(h)) {
                struct claimants_fence_by by;
                bool fence =
                    claimants_fence_of(claimants_system(c, hh->system_id), h, regions, &by);
                claimants_set(h, fence ? &by : NULL, report, arg);
            } else if (known_standby(h) && __atomic_load_n(&hh->fenced, __ATOMIC_RELAXED)) {
                claimants_set(h, NULL, report, arg);
            }
        }
}
