/*
 * dns_follow.h — host names followed while pgnear runs: a managed
 * service's failover moves its DNS name to another address, and pgnear
 * follows within the record's TTL (capped by dns_max_ttl).
 *
 * Every host the configuration in force names by a DNS name (not an
 * address literal) is asked again on worker 0's loop (libevent's evdns,
 * proxy/base/dns_lookup.h) once its answer's TTL has passed, at most
 * dns_max_ttl after the last answer.  An answer that no longer holds the
 * address the configuration uses is a move: the follower says so once
 * (its moved hook: the reloader loads the configuration again, whose load
 * resolves the name afresh), and the swap fences the old address as the
 * new one enters (dns_follow_fence_moved), so that no new session or
 * transaction goes there and its sessions leave it, to the new address,
 * as a former primary's do.  A name that stops resolving keeps
 * its last address, said once until it resolves again (across reloads: told).
 *
 * Worker 0's thread only: it owns the configuration in force, its
 * checks, and the registry's binding; sessions only read what it binds.
 */
#ifndef PGNEAR_RUNTIME_DNS_FOLLOW_H
#define PGNEAR_RUNTIME_DNS_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct region_set;

/* Names said not to resolve, kept by the caller across followers (one a configuration). */
#define DNS_FOLLOW_TOLD_MAX 64
struct dns_follow_told {
    char names[DNS_FOLLOW_TOLD_MAX][256];
    size_t count;
};

/* A name's address moved: was and now as text.  Once a follower at most. */
typedef void (*dns_moved_fn)(void *arg, const char *name, const char *was, const char *now);

struct dns_follow_params {
    int max_ttl_ms;     /* dns_max_ttl: no answer is kept longer */
    const char *server; /* dns_server ("": /etc/resolv.conf); read while the follower runs */
    dns_moved_fn moved;
    void *arg;
    struct dns_follow_told *told;
};

struct dns_follower;

/*
 * Follows the names of regions' hosts from their addresses there; NULL
 * when there is none to follow, or (logged) none could be started.
 */
struct dns_follower *dns_follow_start(struct event_base *base, const struct region_set *regions,
                                      const struct dns_follow_params *p);

/*
 * Stops asking; what is still in flight is let go.  NULL is fine.  True when
 * libevent still owes answers to questions in flight (DNS_ERR_SHUTDOWN, on a
 * later turn of f's loop): the follower, and libevent's own memory for them,
 * are freed when they come, so a loop that has ended must turn once more.
 */
bool dns_follow_stop(struct dns_follower *f);

/*
 * Before fresh is handed to the workers, with both bound to the registry:
 * each host of old whose name and port fresh names at another address is
 * fenced (routing/claimants.h's CLAIMANTS_DNS) and logged, and a host of
 * fresh at an address DNS had moved away from serves again.  Returns how
 * many were fenced (their sessions are then told: worker_host_fenced_fn).
 */
int dns_follow_fence_moved(const struct region_set *old, const struct region_set *fresh);

#endif
