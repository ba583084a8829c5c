/*
 * registry.h — the runtime state of regions and hosts, kept by the
 * process outside any loaded configuration: per region name the admin's
 * state, per host (name:port) its health.  A loaded configuration's
 * regions and hosts point at their entries here (registry_bind), so a
 * reload keeps both for what the new configuration still names, without
 * copying anything.
 *
 * Threads.  The lookup arrays (which names have entries) are read and
 * written by one thread only, the one that binds: in pgnear worker 0's,
 * at start and at each reload before the new configuration is handed to
 * the workers.  The entries themselves are read and written by every
 * worker through the configuration's pointers: the health fields as
 * health.h says (relaxed atomics for what sessions touch), the admin
 * state with relaxed atomics.
 *
 * Lifetime.  Entries are allocated one by one and never moved or freed
 * before registry_free: a configuration that points at them may live on
 * in sessions long after a reload.  Names that a reload drops stay as
 * tombstones (health frozen, admin state kept) and come back to life if a
 * later configuration names them again; the registry is bounded by the
 * names configurations ever used.
 */
#ifndef PGNEAR_ROUTING_REGISTRY_H
#define PGNEAR_ROUTING_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>

#include "routing/health.h"

struct region_set;

/*
 * What the admin wants of a region.  A disabled or draining region is
 * never chosen by route_plan: not when a client names it, not even last
 * when nothing else is left (unlike a region whose hosts are all down,
 * which is still tried last).  Pausing is apart from these: a paused
 * region is routed to as usual, and its gate holds the sessions.
 */
enum region_admin_state {
    REGION_ENABLED,
    REGION_DISABLED,
    REGION_DRAINING,
};

/* One region name's entry. */
struct registry_region {
    char *name;
    int admin_state; /* enum region_admin_state (atomic: every worker reads it) */
    int paused;      /* PAUSE: sessions hold their next request (atomic) */
    /* A migration's pause step: sessions of migrations_db hold theirs (atomic). */
    int migration_hold;
};

/* One host's entry, by name (as configured) and port. */
struct registry_host {
    char *name;
    int port;
    struct host_health health;
};

struct registry;

struct registry *registry_new(void);

/* Frees every entry: only once no configuration bound to reg is left. */
void registry_free(struct registry *reg);

/*
 * Points every region and host of set at its entry (regions by name,
 * case-insensitively as region_set_find; hosts by name and port, whatever
 * region names them: the same server, so a host moved to another region
 * keeps its health, as two regions naming one host share it), making
 * fresh entries for names not seen before: enabled, hosts up until a
 * check or a client says otherwise.  Rebinding a set already bound is
 * harmless.  Returns false when out of memory (set is then partly bound:
 * drop it).  The binding thread only (see above).
 */
bool registry_bind(struct registry *reg, struct region_set *set);

/* The entry of a region name, or NULL.  The binding thread only. */
struct registry_region *registry_find_region(const struct registry *reg, const char *name);

/* Whether route_plan may choose the region (enabled); safe from any thread. */
bool registry_takes_sessions(const struct registry_region *rr);

/* Sets an entry's admin state; safe from any thread. */
void registry_set_admin_state(struct registry_region *rr, enum region_admin_state state);

/* An entry's admin state; safe from any thread. */
enum region_admin_state registry_admin_state(const struct registry_region *rr);

/* PAUSE and RESUME; safe from any thread. */
void registry_set_paused(struct registry_region *rr, bool paused);
bool registry_paused(const struct registry_region *rr);

/* A pause step's gate for the region's migrations_db; safe from any thread. */
void registry_set_migration_hold(struct registry_region *rr, bool held);
bool registry_migration_hold(const struct registry_region *rr);

#endif
