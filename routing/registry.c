/*
 * registry.c — region and host entries that outlive configurations.
 * Lookups are linear: a bind runs once per start or reload, over the few
 * hundred names a configuration holds at most.
 */
#include "routing/registry.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* An array of entry pointers that grows; the entries pointed at never move. */
struct entry_list {
    void **items;
    size_t count, cap;
};

struct registry {
    struct entry_list regions; /* struct registry_region * */
    struct entry_list hosts;   /* struct registry_host * */
};

/* Appends a pointer, doubling the array; false when out of memory, the list unchanged. */
static bool entry_list_append(struct entry_list *list, void *entry)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        void **grown = realloc(list->items, cap * sizeof(*grown));
        if (grown == NULL)
            return false;
        list->items = grown;
        list->cap = cap;
    }
    list->items[list->count++] = entry;
    return true;
}

/* An empty registry; NULL when out of memory. */
struct registry *registry_new(void)
{
    return calloc(1, sizeof(struct registry));
}

void registry_free(struct registry *reg)
{
    if (reg == NULL)
        return;
    for (size_t i = 0; i < reg->regions.count; i++) {
        struct registry_region *rr = reg->regions.items[i];
        free(rr->name);
        free(rr);
    }
    for (size_t i = 0; i < reg->hosts.count; i++) {
        struct registry_host *rh = reg->hosts.items[i];
        free(rh->name);
        free(rh);
    }
    free(reg->regions.items);
    free(reg->hosts.items);
    free(reg);
}

struct registry_region *registry_find_region(const struct registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->regions.count; i++) {
        struct registry_region *rr = reg->regions.items[i];
        if (strcasecmp(rr->name, name) == 0)
            return rr;
    }
    return NULL;
}

struct registry_region *registry_region_entry(struct registry *reg, const char *name)
{
    struct registry_region *rr = registry_find_region(reg, name);
    if (rr != NULL)
        return rr;
    rr = calloc(1, sizeof(*rr));
    if (rr == NULL)
        return NULL;
    rr->name = strdup(name);
    rr->admin_state = REGION_ENABLED;
    if (rr->name == NULL || !entry_list_append(&reg->regions, rr)) {
        free(rr->name);
        free(rr);
        return NULL;
    }
    return rr;
}

bool registry_same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, sizeof(struct in_addr)) == 0;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr)) == 0;
    return false;
}

/*
 * The entry of host name:port at addr, made (up, lag unknown) the first
 * time any configuration names it there; NULL when out of memory.
 */
struct registry_host *registry_host_entry(struct registry *reg, const char *name, int port,
                                          const struct sockaddr_storage *addr, socklen_t addrlen)
{
    for (size_t i = 0; i < reg->hosts.count; i++) {
        struct registry_host *rh = reg->hosts.items[i];
        if (rh->port == port && strcmp(rh->name, name) == 0 &&
            (rh->addrlen == 0 ? addrlen == 0 : registry_same_address(&rh->addr, addr)))
            return rh;
    }
    struct registry_host *rh = calloc(1, sizeof(*rh));
    if (rh == NULL)
        return NULL;
    rh->name = strdup(name);
    rh->port = port;
    if (addrlen > 0 && addrlen <= sizeof(rh->addr)) {
        memcpy(&rh->addr, addr, addrlen);
        rh->addrlen = addrlen;
    }
    rh->health.up = true; /* until a check or a client says otherwise */
    rh->health.lag_bytes = rh->health.lag_ms = -1;
    if (rh->name == NULL || !entry_list_append(&reg->hosts, rh)) {
        free(rh->name);
        free(rh);
        return NULL;
    }
    return rh;
}

void registry_set_admin_state(struct registry_region *rr, enum region_admin_state state)
{
    __atomic_store_n(&rr->admin_state, (int)state, __ATOMIC_RELAXED);
}

enum region_admin_state registry_admin_state(const struct registry_region *rr)
{
    return (enum region_admin_state)__atomic_load_n(&rr->admin_state, __ATOMIC_RELAXED);
}

bool registry_takes_sessions(const struct registry_region *rr)
{
    return registry_admin_state(rr) == REGION_ENABLED;
}

void registry_set_paused(struct registry_region *rr, bool paused)
{
    __atomic_store_n(&rr->paused, paused ? 1 : 0, __ATOMIC_RELAXED);
}

/* Read by every worker's sessions without a lock: an atomic. */
bool registry_paused(const struct registry_region *rr)
{
    return __atomic_load_n(&rr->paused, __ATOMIC_RELAXED) != 0;
}

void registry_set_migration_hold(struct registry_region *rr, bool held)
{
    __atomic_store_n(&rr->migration_hold, held ? 1 : 0, __ATOMIC_RELAXED);
}

/* Read by every worker's sessions without a lock: an atomic. */
bool registry_migration_hold(const struct registry_region *rr)
{
    return __atomic_load_n(&rr->migration_hold, __ATOMIC_RELAXED) != 0;
}
