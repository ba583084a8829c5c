/*
 * route.h — where a caller is (locality), and the regions to try, nearest
 * healthy first.
 */
#ifndef PGNEAR_ROUTING_ROUTE_H
#define PGNEAR_ROUTING_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "routing/need.h"
#include "routing/region.h"
#include "routing/rtt.h"

struct city_table;
struct geoip_set;

/* Which piece of evidence decided a session's region (DESIGN.md order). */
enum locality_source {
    LOCALITY_REGION_HINT,
    LOCALITY_CITY,
    LOCALITY_COORDINATES,
    LOCALITY_GEOIP,
    LOCALITY_DEFAULT,
};

#define ROUTE_MAX_REGIONS 64
_Static_assert(ROUTE_MAX_REGIONS == REGION_SUBSET_MAX, "a subset fits in a route plan");
#define ROUTE_TEXT_MAX 129

/* An explicit [cities] entry: folded city name -> region. */
struct city_override {
    char *city; /* folded with city_fold() */
    struct region *region;
};

/* What routing needs from the configuration. */
struct routing_data {
    struct region_set *regions;
    struct region *fallback; /* default_region */
    const struct city_table *cities;
    const struct geoip_set *geoip;
    const struct city_override *overrides;
    size_t n_overrides;
    /*
     * Hosts' states come from health checks, which bring a host that is
     * down back: default_region, when every host of it is down, then
     * ranks with the regions that are down.  Without checks only a session
     * that tries such a host can, so it comes first even so.  (A region
     * a client or [cities] names always comes first: a session that logs
     * in there proves a host up that checks cannot reach in time.)
     */
    bool health_checked;
    /* How regions are ordered beyond health and need (rtt.h: route_by and its settings). */
    struct route_rank rank;
};

/* Evidence about one caller; every field optional.  "via" names the channel, for logs. */
struct locality_input {
    const char *region, *region_via;
    const char *city, *city_via;
    const char *location, *location_via; /* "lat,lon" */
    const struct sockaddr *addr;         /* the caller's real address */
};

struct locality {
    enum locality_source source;
    const char *via; /* "startup hint", "PROXY TLV", "TLS SNI", "GeoIP", ... (static text) */
    bool has_coords;
    double lat, lon;
    char city[ROUTE_TEXT_MAX];
    const char *matched; /* the city table's name for it, if any */
    char country[3];
    struct region *region; /* named region (hint or [cities] override), if any */
    unsigned unplaced;     /* LOCALITY_UNPLACED_*: evidence given that could not be used */
    char note[256];        /* the first evidence that could not be used, and why */
};

/* Bits of struct locality's unplaced. */
#define LOCALITY_UNPLACED_REGION   1u /* no such region */
#define LOCALITY_UNPLACED_CITY     2u /* neither in [cities] nor in the city table */
#define LOCALITY_UNPLACED_LOCATION 4u /* not "lat,lon" */

/* First hit wins: region, city, coordinates, GeoIP, default (DESIGN.md). */
void locality_resolve(const struct routing_data *rd, const struct locality_input *in,
                      struct locality *out);

/*
 * Whether the caller's own position is known (a city, coordinates, GeoIP),
 * so that distances to regions mean something; not for a named region or
 * default_region.
 */
bool locality_caller_placed(const struct locality *loc);

/*
 * The city table's names closest to a city it does not know, for telling
 * whoever named it: "Seattle (US), Seaside (US) or Settle (GB)" in buf;
 * "" when nothing is close or there is no city table.  Returns buf.
 */
const char *locality_city_suggestions(const struct routing_data *rd, const char *city, char *buf,
                                      size_t cap);

/* One sentence on why the locality is what it is, for logs and --explain. */
const char *locality_reason(const struct locality *loc, char *buf, size_t cap);

/*
 * The best max regions to try for a session that needs need, in order:
 * the named region first, then as rd->rank says (rtt.h): by great-circle
 * distance, nearest first, or (hybrid, latency) the caller's candidates
 * by measured score, the preferred region of its group first, and the
 * others after them by distance;
 * regions whose hosts fit the need only as a fallback after those that
 * fit it well, and regions whose health checks fail last (need.h);
 * regions with no host that could serve the need, or that the admin
 * disabled, not at all (so the count may be 0, and a named region may be
 * missing).  Every region of rd must be bound to a registry
 * (registry_bind).  placed, when not NULL, holds the only regions the
 * session's database lives in: no other is tried.  cosines[i] is the
 * cosine of the angle between the caller and the region (below -1 when
 * unknown): route_km() turns it into kilometres when someone wants to read
 * it.  Returns the count.
 */
size_t route_plan(const struct routing_data *rd, const struct locality *loc,
                  const struct need_spec *need, const struct region_subset *placed,
                  struct region **out, double *cosines, size_t max);

/*
 * Measurement's part of route_plan's order for loc (rtt.h): each region's
 * score, in rd->regions' order (scores: that many entries), the caller's
 * group (*home, NULL when it has no position) and the region the group
 * prefers (*preferred, NULL none yet).  false when the plan goes by
 * distance alone (route_by = distance, or more regions than a plan holds):
 * then nothing is scored.
 */
struct route_score;
struct registry_region;
bool route_plan_scores(const struct routing_data *rd, const struct locality *loc,
                       struct route_score *scores, const struct region **home,
                       const struct registry_region **preferred);

/*
 * Whether the admin left any region of rd (of placed, when not NULL)
 * enabled: route_plan's count may be 0 for a need.
 */
bool route_any_enabled(const struct routing_data *rd, const struct region_subset *placed);

/* Kilometres for a cosine from route_plan(); -1 when unknown. */
double route_km(double cosine);

/* Great-circle distance in kilometres (haversine, mean Earth radius). */
double route_distance_km(double lat1, double lon1, double lat2, double lon2);

const char *route_source_name(enum locality_source source);

#endif
