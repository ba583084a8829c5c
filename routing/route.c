/*
 * route.c — region selection.
 */
#include "routing/route.h"

void route_pick_region(const struct region_set *regions, struct region *fallback,
                       struct route_decision *out)
{
    (void)regions;
    out->region = fallback;
    out->source = LOCALITY_DEFAULT;
}

const char *route_source_name(enum locality_source source)
{
    switch (source) {
    case LOCALITY_REGION_HINT:
        return "region";
    case LOCALITY_CITY:
        return "city";
    case LOCALITY_COORDINATES:
        return "location";
    case LOCALITY_GEOIP:
        return "geoip";
    case LOCALITY_DEFAULT:
        return "default";
    }
    return "unknown";
}
