/*
 * patroni.h — Patroni as a source of truth for the hosts pgnear routes to.
 *
 * With the setting `patroni = http://host:8008, ...` (the REST endpoints
 * of one Patroni cluster's members), the checks' thread asks the first
 * endpoint that answers for GET /cluster every health_check_interval,
 * the one that answered last first.  From the answer:
 *
 *   - each configured host that is a member (the same host and port as
 *     Patroni's member says PostgreSQL listens on) is marked a member, its
 *     leader, and whether it is tagged noloadbalance (host_health's ha_*
 *     fields): a member that says primary but is not the leader is fenced
 *     (claimants.h), a standby tagged noloadbalance takes no reads
 *     (need.c), as HAProxy in front of Patroni's /primary and /replica
 *     would route;
 *   - members tagged `pgnear_region` that no region lists are handed to
 *     the places hook, which adds them to their regions (a reload of the
 *     file with them: runtime/reload.c), and ones that left are dropped
 *     the same way, without the admin's RELOAD;
 *   - a new leader hurries every host's checks, so that the promoted one
 *     is known at once.
 *
 * When no endpoint answers (or every answer is malformed), the marks are
 * cleared: pgnear routes on its own checks, says so once, and says so
 * again when Patroni answers.  The members already added stay until an
 * answer says otherwise.
 */
#ifndef PGNEAR_ROUTING_PATRONI_H
#define PGNEAR_ROUTING_PATRONI_H

#include <stdbool.h>
#include <stddef.h>

#include "protocol/patroni_cluster.h"
#include "routing/region.h"

struct cidr_list;
struct event_base;
struct health_checker;
struct region_set;

#define PATRONI_ENDPOINTS_MAX 16

/* A member to route to that the file does not list: its region (its tag) and where it listens. */
struct patroni_place {
    char region[64];
    char host[256];
    int port;
};

#define PATRONI_PLACES_MAX 32

/* Whether two lists of n places name the same members, in the same order. */
bool patroni_places_equal(const struct patroni_place *a, const struct patroni_place *b, size_t n);

/* The members to add, sorted; called only when they changed since the last call. */
typedef void (*patroni_places_fn)(void *arg, const struct patroni_place *places, size_t n);
/* A change worth a log line; warn: a warning, else information. */
typedef void (*patroni_log_fn)(void *arg, bool warn, const char *line);

/*
 * Checks the setting's text: NULL when it is a list of at most
 * PATRONI_ENDPOINTS_MAX http:// URLs with a host and a port, else why not
 * (into err).
 */
const char *patroni_check_urls(const char *text, char *err, size_t errcap);

/*
 * The addresses at which a member that no region lists may be added (the
 * only ones, beside the regions' hosts, that pgnear sends credentials to):
 * the endpoints' of urls (the patroni setting, resolved now), and hosts
 * (patroni_hosts: addresses and CIDRs) into out.  NULL, or why not into err.
 */
const char *patroni_allowed_addrs(const char *urls, const char *hosts, struct cidr_list *out,
                                  char *err, size_t errcap);

/*
 * Adds each place to the region of set its tag names (a configuration
 * being loaded), resolving its host now: on the loader's thread, never a
 * loop's.  A place whose address is not in allowed, or one that cannot
 * be added (its region full, its host no address or DNS name, or
 * unresolved), is left out with a warning to log.  Names are resolved
 * with lookup and its lookup_arg (the configuration's dns_server, as the
 * hosts of the file are); NULL: the system's resolver.
 */
void patroni_admit(struct region_set *set, const struct cidr_list *allowed,
                   const struct patroni_place *places, size_t n, host_lookup_fn lookup,
                   void *lookup_arg, patroni_log_fn log, void *arg);

/* The longest line said about one member. */
#define PATRONI_LINE_MAX 400

/*
 * What the log was told of members left out (an unknown region, a host
 * that is no address or DNS name): each line once while the answers go
 * on giving it, across sources when the caller keeps this for the next.
 */
struct patroni_told {
    char lines[PATRONI_MEMBERS_MAX][PATRONI_LINE_MAX];
    size_t n;
};

struct patroni_source;

/* What a source is started with: the endpoints, how often, for whom. */
struct patroni_params {
    const char *urls; /* the setting, checked */
    int interval_ms;
    int timeout_ms;                     /* each request */
    const struct patroni_place *placed; /* the members added before (by the last source) */
    size_t nplaced;
    patroni_places_fn places;
    patroni_log_fn log;
    void *arg;
    struct patroni_told *told; /* outlives the source; NULL: the source keeps its own */
};

/*
 * Starts asking the endpoints on base every interval_ms; hc is the checker
 * whose hosts' checks a new leader hurries and whose judgement of
 * claimants runs after each answer.  NULL when out of memory.
 */
struct patroni_source *patroni_start(struct event_base *base, struct region_set *regions,
                                     struct health_checker *hc, const struct patroni_params *p);

/*
 * An answer's body (len bytes at text), as if the current endpoint had
 * sent it: the marks, the leader, the members to add and the judgement,
 * or, malformed, the next endpoint.  The source's own answers come here;
 * tests/fuzz/fuzz_patroni_admission feeds it too.
 */
void patroni_take_body(struct patroni_source *ps, const char *text, size_t len);

/*
 * Stops asking and frees the source; the hosts' marks stay (a reload's
 * next source sets them with its first answer).  NULL is fine.
 */
void patroni_stop(struct patroni_source *ps);

/* Clears every host's marks: no source runs (the setting was removed). */
void patroni_forget(struct region_set *regions);

#endif
