/*
 * claimants.h — one writer per database system while two hosts say
 * primary.
 *
 * Hosts that share a system identifier (pg_control_system()) are one
 * database system: a primary and the standbys made from it.  When two of
 * them say primary at once — a standby promoted while the old primary
 * still runs, cut off rather than dead, or an HA manager's demotion that
 * is late — each half of the world would write on the one nearest it, and
 * what one of them took is thrown away when it rejoins (pg_rewind).  So
 * only one of them, the holder, serves the system:
 *
 *   - the one on the newest timeline (a promotion raises it), once seen:
 *     a former primary that is the only one up stays fenced, since writes
 *     the new timeline took are not on it;
 *   - at an equal timeline, the one an HA manager names leader (Patroni),
 *     else the one already holding it (pgnear keeps what it uses, and says
 *     so).
 *
 * A primary that its HA manager (routing/patroni.h) knows as a member and
 * does not name leader is fenced too, whatever its timeline: the leader
 * lock is the HA manager's word on who may write, as HAProxy in front of
 * Patroni asks it.
 *
 * Every other primary of the system is fenced: routing gives it no
 * session and no transaction (need.c, region.h's host_is_up), and the
 * checker reports the change once, for the log and for the sessions still
 * there.  A fenced host serves again once it is a standby (pg_rewind, an
 * HA manager's rejoin) or the holder of its system.  What a checker has
 * seen lasts as long as it does: a reload starts the judgement afresh,
 * which is how an admin takes back a former primary on purpose.
 *
 * The checks' thread only.
 */
#ifndef PGNEAR_ROUTING_CLAIMANTS_H
#define PGNEAR_ROUTING_CLAIMANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct region_host;
struct region_set;
struct registry_host;
struct registry_region;

struct claimants;

/* Why a host is fenced (host_health's fenced_why). */
enum claimants_fence {
    CLAIMANTS_TIMELINE, /* another host of its system serves a newer timeline, or holds it */
    CLAIMANTS_HA,       /* its HA manager names another member leader, or none */
    CLAIMANTS_DNS,      /* its name resolves to another address now (a managed failover) */
};

/* A host fenced (fenced true) or serving again, with why in a line. */
typedef void (*claimants_report_fn)(void *arg, const struct region_host *h, bool fenced,
                                    const char *why);

/* For the hosts of regions (their systems are at most as many); NULL when out of memory. */
struct claimants *claimants_new(const struct region_set *regions);

void claimants_free(struct claimants *c);

/*
 * Judges every host of regions by the health checks so far: who holds
 * each system, who is fenced; report hears each change.
 */
void claimants_judge(struct claimants *c, const struct region_set *regions,
                     claimants_report_fn report, void *arg);

/*
 * The address old of a host name that DNS moved (proxy/runtime's DNS
 * follower): fenced at once, as a former primary is, so that its sessions
 * leave it and nothing more is written there; now, the entry of the new
 * address and its region (NULL: not known).  claimants_unfence_moved: an
 * entry that DNS had moved away from serves again (a name moved back).
 * The checks' thread (worker 0's).
 */
void claimants_fence_moved(struct registry_host *old, struct registry_host *now,
                           struct registry_region *region);
void claimants_unfence_moved(struct registry_host *now);

/* "former primary: timeline 1, 127.0.0.1:5433 of eu-west is primary on timeline 2" into buf. */
void claimants_describe(const struct registry_host *rh, char *buf, size_t cap);

#endif
