/*
 * route.c — locality resolution and region ordering.
 */
#include "routing/route.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "routing/cities.h"
#include "routing/geoip.h"

#define EARTH_RADIUS_KM 6371.0088

double route_distance_km(double lat1, double lon1, double lat2, double lon2)
{
    double rad = M_PI / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double a = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2 * EARTH_RADIUS_KM * asin(fmin(1.0, sqrt(a)));
}

static void set_via(struct locality *out, enum locality_source src, const char *via)
{
    out->source = src;
    snprintf(out->via, sizeof(out->via), "%s", via ? via : "");
}

static bool resolve_region(const struct routing_data *rd, const struct locality_input *in,
                           struct locality *out)
{
    struct region *r = region_set_find(rd->regions, in->region);
    if (r == NULL) {
        snprintf(out->reason, sizeof(out->reason), "region \"%.64s\" from %s is not configured",
                 in->region, in->region_via);
        return false;
    }
    set_via(out, LOCALITY_REGION_HINT, in->region_via);
    out->region = r;
    if (r->has_location) {
        out->has_coords = true;
        out->lat = r->lat;
        out->lon = r->lon;
    }
    snprintf(out->reason, sizeof(out->reason), "region %s named by %s", r->name, in->region_via);
    return true;
}

static struct region *city_override_find(const struct routing_data *rd, const char *city)
{
    char folded[ROUTE_TEXT_MAX * 2];
    if (!city_fold(city, folded, sizeof(folded)))
        return NULL;
    for (size_t i = 0; i < rd->n_overrides; i++)
        if (strcmp(rd->overrides[i].city, folded) == 0)
            return rd->overrides[i].region;
    return NULL;
}

static bool resolve_city(const struct routing_data *rd, const struct locality_input *in,
                         struct locality *out)
{
    snprintf(out->city, sizeof(out->city), "%s", in->city);
    struct region *r = city_override_find(rd, in->city);
    const struct city *c = rd->cities ? city_table_lookup(rd->cities, in->city) : NULL;
    if (r != NULL) {
        set_via(out, LOCALITY_CITY, in->city_via);
        out->region = r;
        if (c != NULL) { /* for distances only: the override decides */
            out->has_coords = true;
            out->lat = c->lat;
            out->lon = c->lon;
        }
        snprintf(out->reason, sizeof(out->reason),
                 "city \"%.64s\" (%s) is mapped to region %s in "
                 "[cities]",
                 in->city, in->city_via, r->name);
        return true;
    }
    if (c == NULL) {
        snprintf(out->reason, sizeof(out->reason),
                 "city \"%.64s\" from %s is not in the city table", in->city, in->city_via);
        return false;
    }
    set_via(out, LOCALITY_CITY, in->city_via);
    out->has_coords = true;
    out->lat = c->lat;
    out->lon = c->lon;
    snprintf(out->reason, sizeof(out->reason), "city \"%.64s\" (%s) is %s, %s at %.4f, %.4f",
             in->city, in->city_via, c->name, c->country, c->lat, c->lon);
    return true;
}

static bool resolve_location(const struct locality_input *in, struct locality *out)
{
    double lat, lon;
    if (!region_parse_location(in->location, &lat, &lon)) {
        snprintf(out->reason, sizeof(out->reason), "location \"%.64s\" from %s is not \"lat,lon\"",
                 in->location, in->location_via);
        return false;
    }
    set_via(out, LOCALITY_COORDINATES, in->location_via);
    out->has_coords = true;
    out->lat = lat;
    out->lon = lon;
    snprintf(out->reason, sizeof(out->reason), "coordinates %.4f, %.4f from %s", lat, lon,
             in->location_via);
    return true;
}

static bool resolve_geoip(const struct routing_data *rd, const struct locality_input *in,
                          struct locality *out)
{
    struct geoip_result g;
    char err[128];
    if (geoip_lookup(rd->geoip, in->addr, &g, err, sizeof(err)) != 0 || !g.found || !g.has_location)
        return false;
    set_via(out, LOCALITY_GEOIP, "GeoIP");
    out->has_coords = true;
    out->lat = g.lat;
    out->lon = g.lon;
    snprintf(out->city, sizeof(out->city), "%s", g.city);
    snprintf(out->reason, sizeof(out->reason), "GeoIP places the caller in %s%s%s at %.4f, %.4f",
             g.city[0] ? g.city : "(no city)", g.country[0] ? ", " : "", g.country, g.lat, g.lon);
    return true;
}

void locality_resolve(const struct routing_data *rd, const struct locality_input *in,
                      struct locality *out)
{
    char unusable[sizeof(out->reason)] = ""; /* the first evidence that could not be used */
    memset(out, 0, sizeof(*out));
    if (in->region && resolve_region(rd, in, out))
        return;
    snprintf(unusable, sizeof(unusable), "%s", out->reason);
    if (in->city && resolve_city(rd, in, out))
        return;
    if (unusable[0] == '\0')
        snprintf(unusable, sizeof(unusable), "%s", out->reason);
    if (in->location && resolve_location(in, out))
        return;
    if (unusable[0] == '\0')
        snprintf(unusable, sizeof(unusable), "%s", out->reason);
    if (in->addr && rd->geoip && resolve_geoip(rd, in, out))
        return;
    memset(out, 0, sizeof(*out));
    set_via(out, LOCALITY_DEFAULT, "default_region");
    out->region = rd->fallback;
    snprintf(out->reason, sizeof(out->reason), "%.160s%sno locality known: default_region %.40s",
             unusable, unusable[0] ? "; " : "", rd->fallback->name);
}

/* The point distances are measured from: the caller, else the named region. */
static bool route_origin(const struct locality *loc, double *lat, double *lon)
{
    if (loc->has_coords) {
        *lat = loc->lat;
        *lon = loc->lon;
        return true;
    }
    if (loc->region != NULL && loc->region->has_location) {
        *lat = loc->region->lat;
        *lon = loc->region->lon;
        return true;
    }
    return false;
}

/* Sort key: named region first, then up before down, then nearer first, then config order. */
static bool route_before(const struct locality *loc, const struct region *a, double da,
                         const struct region *b, double db)
{
    if ((a == loc->region) != (b == loc->region))
        return a == loc->region;
    bool ua = region_is_up(a), ub = region_is_up(b);
    if (ua != ub)
        return ua;
    if (da >= 0 && db >= 0 && da != db)
        return da < db;
    if ((da >= 0) != (db >= 0))
        return da >= 0;
    return a < b;
}

size_t route_plan(const struct routing_data *rd, const struct locality *loc, struct region **out,
                  double *distances, size_t max)
{
    double lat = 0, lon = 0;
    bool origin = route_origin(loc, &lat, &lon);
    size_t n = 0;
    for (size_t i = 0; i < rd->regions->count && n < max; i++) {
        struct region *r = &rd->regions->items[i];
        double d = origin && r->has_location ? route_distance_km(lat, lon, r->lat, r->lon) : -1;
        /* insertion sort: a handful of regions */
        size_t j = n++;
        while (j > 0 && route_before(loc, r, d, out[j - 1], distances[j - 1])) {
            out[j] = out[j - 1];
            distances[j] = distances[j - 1];
            j--;
        }
        out[j] = r;
        distances[j] = d;
    }
    return n;
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
