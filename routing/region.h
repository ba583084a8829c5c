/*
 * region.h — the regions pgnear routes to and their hosts.
 */
#ifndef PGNEAR_ROUTING_REGION_H
#define PGNEAR_ROUTING_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "routing/registry.h"

#define REGION_MAX_HOSTS 16

/* The mean radius of the Earth (IUGG), for great-circle distances. */
#define REGION_EARTH_RADIUS_KM 6371.0088

struct region_host {
    char *name; /* host name or address literal, as configured (for TLS verify-full) */
    int port;
    /* What name resolved to as this configuration loaded (a DNS move makes a new one). */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    /* Health, kept across reloads: set by registry_bind before anyone routes here. */
    struct registry_host *runtime;
    struct region *region; /* back-pointer, set once the region array is final */
    struct pgasync *check; /* health check in flight */
    /* The checks' kept connection, idle between checks (NULL: none), and when it logged in. */
    struct pgasync *check_conn;
    int64_t check_login_ms; /* monotonic_ms */
    /* health_downs when it was kept: a take-down since (a session's refused login) logs in afresh.
     */
    unsigned check_downs;
};

struct region {
    char *name;
    bool has_location;
    double lat, lon;
    double unit[3];                  /* the location on the unit sphere: distances by dot product */
    struct registry_region *runtime; /* the admin's state (registry_bind) */
    size_t nhosts;
    struct region_host hosts[REGION_MAX_HOSTS];
};

/* Whether a host answers, by its checks and sessions, fenced or not; safe from any thread. */
static inline bool host_is_reachable(const struct region_host *h)
{
    return __atomic_load_n(&h->runtime->health.up, __ATOMIC_RELAXED);
}

/* Fenced as a former primary (claimants.h); safe from any worker thread. */
static inline bool host_is_fenced(const struct region_host *h)
{
    return __atomic_load_n(&h->runtime->health.fenced, __ATOMIC_RELAXED);
}

/* Whether a host takes sessions: it answers and is not fenced; safe from any worker thread. */
static inline bool host_is_up(const struct region_host *h)
{
    return host_is_reachable(h) && !host_is_fenced(h);
}

/*
 * A standby by its last health check, or by a session's login since
 * (health_note_login_role); sessions try primaries first.
 */
static inline bool host_is_standby(const struct region_host *h)
{
    return __atomic_load_n(&h->runtime->health.in_recovery, __ATOMIC_RELAXED) ||
           __atomic_load_n(&h->runtime->health.login_saw_standby_ms, __ATOMIC_RELAXED) != 0;
}

/* The cluster a host belongs to, by its last health check (a standby shares its primary's); 0
 * unknown. */
static inline uint64_t host_system_id(const struct region_host *h)
{
    return __atomic_load_n(&h->runtime->health.system_id, __ATOMIC_RELAXED);
}

/* A region can take sessions when one of its hosts is up. */
bool region_is_up(const struct region *r);

/*
 * The first host of r that is up and a primary (by the health checks);
 * NULL when none, or when r is NULL.  *standby, where not NULL, is the
 * first standby up before it: with no primary, the reason (NULL: no
 * host is up at all) and the host to read from if a standby will do.
 */
const struct region_host *region_primary(const struct region *r,
                                         const struct region_host **standby);

struct region_set;

/*
 * The region of set, other than except, with an up primary of cluster
 * system_id (by the health checks); NULL when none (or system_id is 0).
 */
const struct region *region_with_primary(const struct region_set *set, const struct region *except,
                                         uint64_t system_id);

/* The region whose primary r's up standbys stream from; NULL when none does. */
const struct region *region_followed(const struct region_set *set, const struct region *r);

struct region_set {
    size_t count;
    struct region *items; /* owned array */
};

/* Point on the unit sphere for a latitude and longitude in degrees. */
void region_unit_vector(double lat, double lon, double v[3]);

/* Great-circle kilometres between two unit vectors whose dot product is dot; -1 below -1.5. */
double region_km(double dot);

/* Sets the region's location (and its unit vector, which distances use). */
void region_set_location(struct region *r, double lat, double lon);

/* Parses "lat, lon" in degrees; returns false on anything else or out of range. */
bool region_parse_location(const char *text, double *lat, double *lon);

/* A host and port as written, and the address it resolved to. */
struct host_addr {
    char host[256];
    int port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

/* Parses "host:port" or "[v6]:port" and resolves it now; false with err set when it cannot. */
bool host_addr_resolve(const char *spec, struct host_addr *out, char *err, size_t errcap);

/*
 * Whether s is an IPv4 or IPv6 address literal or a DNS name as RFC 1123
 * spells one (letters, digits, inner hyphens, dots between labels): what
 * may come from outside the configuration (Patroni's members) as a host.
 */
bool host_is_address_or_name(const char *s);

/* Resolves host at port now into out (a resolver of the caller's); false with err set. */
typedef bool (*host_lookup_fn)(void *arg, const char *host, int port, struct host_addr *out,
                               char *err, size_t errcap);

/*
 * host, which host_is_address_or_name must accept (it is never split at
 * a colon or a comma), and port, resolved now with lookup and its arg
 * (NULL: the system's resolver); false with err set.
 */
bool host_addr_resolve_at(const char *host, int port, host_lookup_fn lookup, void *arg,
                          struct host_addr *out, char *err, size_t errcap);

/*
 * Appends a host at ep to r with its region set: a host never exists
 * without it (the loader points hosts again once the region array is
 * final).  NULL, or err (returned) when r is full or out of memory.
 */
const char *region_add_addr(struct region *r, const struct host_addr *ep, char *err, size_t errcap);

/*
 * Parses "host:port, [v6]:port, ..." into r->hosts, resolving names now.
 * Returns NULL or a message for the configuration error.
 */
const char *region_parse_hosts(struct region *r, const char *text, char *err, size_t errcap);

/*
 * The same without resolving: each host is kept with no address (addrlen
 * 0) until region_resolve_hosts gives it one; nothing may use it before.
 */
const char *region_parse_hosts_unresolved(struct region *r, const char *text, char *err,
                                          size_t errcap);

/*
 * Resolves every host of r that has no address yet, with lookup (NULL:
 * the system's resolver, getaddrinfo).  NULL, or err (returned) for the
 * first that does not resolve.
 */
const char *region_resolve_hosts(struct region *r, host_lookup_fn lookup, void *arg, char *err,
                                 size_t errcap);

/*
 * Points every region and host of set at its registry entry (regions by
 * name, case-insensitively as region_set_find; hosts by name and port,
 * whatever region names them: the same server, so a host moved to another
 * region keeps its health, as two regions naming one host share it),
 * making fresh entries for names not seen before: enabled, hosts up until
 * a check or a client says otherwise.  Rebinding a set already bound is
 * harmless.  Returns false when out of memory (set is then partly bound:
 * drop it).  The registry's binding thread only (registry.h).
 */
bool registry_bind(struct registry *reg, struct region_set *set);

struct region *region_set_add(struct region_set *set, const char *name);
struct region *region_set_find(const struct region_set *set, const char *name);
void region_set_free(struct region_set *set);

#define REGION_SUBSET_MAX 64 /* as many as a route plan holds (ROUTE_MAX_REGIONS) */

/*
 * Regions a database lives in: a session of it goes to none other
 * ([database NAME] regions, or where a database move put it).  Callers
 * pass NULL for "every region".
 */
struct region_subset {
    size_t count;
    struct region *items[REGION_SUBSET_MAX];
};

bool region_subset_has(const struct region_subset *set, const struct region *r);

/*
 * Parses "name, name" (regions of set, case-insensitively, each once)
 * into out: 0, or -1 with the reason in why (an unknown or repeated name,
 * an empty list, more than REGION_SUBSET_MAX).
 */
int region_subset_parse(const struct region_set *set, const char *list, struct region_subset *out,
                        char *why, size_t cap);

/* "a, b": the names of a subset, as a list the parser takes back. */
const char *region_subset_format(const struct region_subset *set, char *buf, size_t cap);

#endif
