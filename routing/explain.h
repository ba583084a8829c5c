/*
 * explain.h — a routing decision and why, in words: what `pgnear
 * --explain` prints and what SHOW ROUTE in the admin console shows, built
 * in one place so that the two can never disagree.
 */
#ifndef PGNEAR_ROUTING_EXPLAIN_H
#define PGNEAR_ROUTING_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>

#include "routing/route.h"
#include "routing/route_rtt.h"

#define EXPLAIN_MAX_NOTES 4

struct route_explanation {
    struct need_spec need;
    struct locality loc;
    const char *source; /* route_source_name() */
    char reason[512];
    size_t n; /* regions in the order they would be tried (0: every one disabled) */
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS]; /* negative when the caller is not placed */
    char passed_over[512]; /* "eu-west: no primary; ..." regions that cannot serve need; "" none */
    /*
     * need nearest: where its writes go (what a standby refuses, and
     * blocks), as a session needing read-write would be placed: the same
     * fields for that need; nwrites 0 for any other need.
     */
    struct need_spec write_need;
    size_t nwrites;
    struct region *writes[ROUTE_MAX_REGIONS];
    double writes_km[ROUTE_MAX_REGIONS];
    char writes_passed_over[512];
    int nnotes;
    char notes[EXPLAIN_MAX_NOTES][400]; /* what the evidence could not do */
    /*
     * Measurement's part of the order (rtt.h, route_plan_scores): route_by,
     * each region's score in rd->regions' order (none when scored is false:
     * by distance alone), the caller's group and the region it prefers.
     */
    enum route_by by;
    bool scored;
    struct route_score scores[ROUTE_MAX_REGIONS];
    const struct region *home;
    const struct registry_region *preferred;
};

/*
 * Resolves in and plans as a session that needs need would.  health_known:
 * the health checks ran (the running proxy); otherwise a note says that
 * they did not (and no host's role is known).
 */
void route_explain(const struct routing_data *rd, const struct locality_input *in,
                   const struct need_spec *need, bool health_known, struct route_explanation *out);

/* r's score in e, r one of rd's regions; NULL when the order is by distance alone. */
const struct route_score *route_explain_score(const struct routing_data *rd,
                                              const struct route_explanation *e,
                                              const struct region *r);

/* Whether the caller's group prefers r (route_rtt.h). */
bool route_explain_preferred(const struct route_explanation *e, const struct region *r);

/*
 * Why r stands where it does among the regions that fit alike, in words,
 * into buf: its score and what it is made of (measured, or "cold: prior"),
 * a candidate or not, preferred by the caller's group; rank is its place
 * in the plan (1 first; 0 passed over).  What SHOW ROUTE's order column and
 * --explain's lines print.
 */
const char *route_explain_order(const struct routing_data *rd, const struct route_explanation *e,
                                const struct region *r, size_t rank, char *buf, size_t cap);

/* "ip=", "city=": parses an address for locality_input.addr; false when it is none. */
bool route_parse_address(const char *text, struct sockaddr_storage *addr);

#endif
