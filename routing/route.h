/*
 * route.h — choosing the region for a session.
 */
#ifndef PGNEAR_ROUTING_ROUTE_H
#define PGNEAR_ROUTING_ROUTE_H

#include "routing/region.h"

/* Which piece of evidence decided a session's region (DESIGN.md order). */
enum locality_source {
    LOCALITY_REGION_HINT,
    LOCALITY_CITY,
    LOCALITY_COORDINATES,
    LOCALITY_GEOIP,
    LOCALITY_DEFAULT,
};

struct route_decision {
    struct region *region;
    enum locality_source source;
};

/*
 * Picks the region for a caller.  Locality sources are not wired in yet,
 * so every caller gets the fallback (default_region) and says so.
 */
void route_pick_region(const struct region_set *regions, struct region *fallback,
                       struct route_decision *out);

const char *route_source_name(enum locality_source source);

#endif
