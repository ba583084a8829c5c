/*
 * route.c — locality resolution and region ordering (route.h): where the
 * caller is, from the first usable evidence (region, city, location, GeoIP,
 * else default_region), and the regions of its plan in the order tried.
 */
#include "routing/route.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "routing/cities.h"
#include "routing/geoip.h"
#include "routing/registry.h"
#include "routing/route_rtt.h"

#define EARTH_RADIUS_KM REGION_EARTH_RADIUS_KM

double route_distance_km(double lat1, double lon1, double lat2, double lon2)
{
    double rad = M_PI / 180.0;
    double dlat = (lat2 - lat1) * rad, dlon = (lon2 - lon1) * rad;
    double a = sin(dlat / 2) * sin(dlat / 2) +
               cos(lat1 * rad) * cos(lat2 * rad) * sin(dlon / 2) * sin(dlon / 2);
    return 2 * EARTH_RADIUS_KM * asin(fmin(1.0, sqrt(a)));
}

/* The evidence that placed the caller, and where it came from ("" when not said). */
static void set_via(struct locality *out, enum locality_source src, const char *via)
{
    out->source = src;
    out->via = via ? via : "";
}

/* Notes evidence that could not be used; the reason names the first. */
static void note_unusable(struct locality *out, unsigned bit, const char *what, const char *value,
                          const char *via, const char *why)
{
    out->unplaced |= bit;
    if (out->note[0] == '\0')
        snprintf(out->note, sizeof(out->note), "%s \"%.64s\" from %s %s", what, value, via, why);
}

/* A region named by the client; one not configured is noted, and the next evidence is tried. */
static bool resolve_region(const struct routing_data *rd, const struct locality_input *in,
                           struct locality *out)
{
    struct region *r = region_set_find(rd->regions, in->region);
    if (r == NULL) {
        note_unusable(out, LOCALITY_UNPLACED_REGION, "region", in->region, in->region_via,
                      "is not configured");
        return false;
    }
    set_via(out, LOCALITY_REGION_HINT, in->region_via);
    out->region = r;
    if (r->has_location) {
        out->has_coords = true;
        out->lat = r->lat;
        out->lon = r->lon;
    }
    return true;
}

/*
 * The region a [cities] override gives the city, folded as the table folds
 * names; NULL when none.
 */
static struct region *city_override_find(const struct routing_data *rd, const char *city)
{
    char folded[ROUTE_TEXT_MAX * 2];
    if (rd->n_overrides == 0 || !city_fold(city, folded, sizeof(folded)))
        return NULL;
    for (size_t i = 0; i < rd->n_overrides; i++)
        if (strcmp(rd->overrides[i].city, folded) == 0)
            return rd->overrides[i].region;
    return NULL;
}

/*
 * "New+York", as a URL's query string would write it: no city name holds
 * a '+' (GeoNames has none), so it stands for a space, as "_" and "-" do
 * in city_fold().
 */
static void city_query(const char *city, char *out, size_t cap)
{
    size_t n = 0;
    for (; city[n] != '\0' && n + 1 < cap; n++)
        out[n] = city[n] == '+' ? ' ' : city[n];
    out[n] = '\0';
}

/*
 * A city named by the client: an override's region decides, the table's
 * coordinates give distances; a city in neither is noted.
 */
static bool resolve_city(const struct routing_data *rd, const struct locality_input *in,
                         struct locality *out)
{
    char query[ROUTE_TEXT_MAX * 2];
    city_query(in->city, query, sizeof(query));
    struct region *r = city_override_find(rd, query);
    const struct city *c = rd->cities ? city_table_lookup(rd->cities, query) : NULL;
    if (r == NULL && c == NULL) {
        note_unusable(out, LOCALITY_UNPLACED_CITY, "city", in->city, in->city_via,
                      "is not in the city table");
        return false;
    }
    set_via(out, LOCALITY_CITY, in->city_via);
    snprintf(out->city, sizeof(out->city), "%s", in->city);
    out->region = r; /* an override decides; coordinates are for distances only */
    if (c != NULL) {
        out->matched = c->name;
        memcpy(out->country, c->country, sizeof(out->country));
        out->has_coords = true;
        out->lat = c->lat;
        out->lon = c->lon;
    }
    return true;
}

/* "lat,lon" given by the client; anything else is noted as unusable. */
static bool resolve_location(const struct locality_input *in, struct locality *out)
{
    double lat, lon;
    if (!region_parse_location(in->location, &lat, &lon)) {
        note_unusable(out, LOCALITY_UNPLACED_LOCATION, "location", in->location, in->location_via,
                      "is not \"lat,lon\"");
        return false;
    }
    set_via(out, LOCALITY_COORDINATES, in->location_via);
    out->has_coords = true;
    out->lat = lat;
    out->lon = lon;
    return true;
}

/*
 * The client's address in the GeoIP databases; a miss is no note, since the
 * address was not the client's claim.
 */
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
    memcpy(out->city, g.city,
           sizeof(out->city) < sizeof(g.city) ? sizeof(out->city) : sizeof(g.city));
    out->city[sizeof(out->city) - 1] = '\0';
    memcpy(out->country, g.country, sizeof(out->country));
    return true;
}

void locality_resolve(const struct routing_data *rd, const struct locality_input *in,
                      struct locality *out)
{
    out->source = LOCALITY_DEFAULT;
    out->via = "";
    out->has_coords = false;
    out->region = NULL;
    out->matched = NULL;
    out->unplaced = 0;
    out->city[0] = out->country[0] = out->note[0] = '\0';
    if (in->region && resolve_region(rd, in, out))
        return;
    if (in->city && resolve_city(rd, in, out))
        return;
    if (in->location && resolve_location(in, out))
        return;
    if (in->addr && rd->geoip && resolve_geoip(rd, in, out))
        return;
    set_via(out, LOCALITY_DEFAULT, "default_region");
    out->region = rd->fallback;
}

#define ROUTE_SUGGESTIONS 3

const char *locality_city_suggestions(const struct routing_data *rd, const char *city, char *buf,
                                      size_t cap)
{
    const struct city *nearby[ROUTE_SUGGESTIONS];
    char query[ROUTE_TEXT_MAX * 2];
    size_t n = 0, len = 0;
    if (cap == 0)
        return buf;
    buf[0] = '\0';
    if (rd->cities != NULL) {
        city_query(city, query, sizeof(query));
        n = city_table_suggest(rd->cities, query, nearby, ROUTE_SUGGESTIONS);
    }
    for (size_t i = 0; i < n && len < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w =
            snprintf(buf + len, cap - len, "%s%s (%s)", sep, nearby[i]->name, nearby[i]->country);
        if (w < 0)
            break;
        len += (size_t)w;
    }
    return buf;
}

bool locality_caller_placed(const struct locality *loc)
{
    return loc->has_coords &&
           (loc->source == LOCALITY_CITY || loc->source == LOCALITY_COORDINATES ||
            loc->source == LOCALITY_GEOIP);
}

/* Formatted only when someone reads it: logs and --explain, not the routing itself. */
const char *locality_reason(const struct locality *loc, char *buf, size_t cap)
{
    const char *sep = loc->note[0] ? "; " : "";
    switch (loc->source) {
    case LOCALITY_REGION_HINT:
        snprintf(buf, cap, "region %s named by %s", loc->region->name, loc->via);
        break;
    case LOCALITY_CITY:
        if (loc->region != NULL)
            snprintf(buf, cap, "city \"%s\" (%s) is mapped to region %s in [cities]", loc->city,
                     loc->via, loc->region->name);
        else
            snprintf(buf, cap, "city \"%s\" (%s) is %s, %s at %.4f, %.4f", loc->city, loc->via,
                     loc->matched ? loc->matched : loc->city, loc->country, loc->lat, loc->lon);
        break;
    case LOCALITY_COORDINATES:
        snprintf(buf, cap, "coordinates %.4f, %.4f from %s", loc->lat, loc->lon, loc->via);
        break;
    case LOCALITY_GEOIP:
        snprintf(buf, cap, "GeoIP places the caller in %s%s%s at %.4f, %.4f",
                 loc->city[0] ? loc->city : "(no city)", loc->country[0] ? ", " : "", loc->country,
                 loc->lat, loc->lon);
        break;
    case LOCALITY_DEFAULT:
        snprintf(buf, cap, "%s%sno locality known: default_region %s", loc->note, sep,
                 loc->region ? loc->region->name : "?");
        return buf;
    }
    if (loc->note[0] && strlen(buf) + 2 < cap)
        snprintf(buf + strlen(buf), cap - strlen(buf), " (%s)", loc->note);
    return buf;
}

/*
 * The unit vector of the point distances are measured from: the caller's
 * coordinates, else the named region's, worked out once when its location
 * was set (region_set_location), which spares a plan (one a pooled
 * transaction) its sines and cosines.
 */
static bool route_origin(const struct locality *loc, double origin[3])
{
    if (loc->has_coords) {
        region_unit_vector(loc->lat, loc->lon, origin);
        return true;
    }
    if (loc->region != NULL && loc->region->has_location) {
        memcpy(origin, loc->region->unit, sizeof(loc->region->unit));
        return true;
    }
    return false;
}

/*
 * One candidate and its sort key: the named region first (but not
 * default_region when every host that could serve the session is down,
 * under health checks: routing_data), then
 * by how well its hosts fit the session's need (for "any": a host up,
 * then none), then those with a distance, nearest first (largest dot
 * product of unit vectors), then configuration order.
 */
struct route_candidate {
    struct region *region;
    int rank;     /* 0 named, else 1 + enum need_fit */
    int tier;     /* 0: ordered by score (hybrid's candidates, latency's all), 1: by distance */
    int prefer;   /* 0: its group's preferred region (route_rtt.h), 1: not */
    double score; /* its score in ms, lower first (tier 0) */
    double tie;   /* scores closer than this are a tie (route_deadband_min): nearest first */
    double dot;   /* cosine of the angle to the caller; -2 when unknown */
    size_t order;
};

/*
 * The plan's order: rank; then those scored, the preferred first, lowest
 * score first where the scores differ by more than jitter (a failover's
 * next region does not change with every check's noise); then nearest
 * (largest dot); then configuration order.
 */
static bool candidate_before(const struct route_candidate *a, const struct route_candidate *b)
{
    if (a->rank != b->rank)
        return a->rank < b->rank;
    if (a->tier != b->tier)
        return a->tier < b->tier;
    if (a->tier == 0 && a->prefer != b->prefer)
        return a->prefer < b->prefer;
    if (a->tier == 0 && fabs(a->score - b->score) > a->tie)
        return a->score < b->score;
    if (a->dot != b->dot)
        return a->dot > b->dot;
    return a->order < b->order;
}

/*
 * Measurement's part of a candidate's key (rtt.h): its tier, whether its
 * group prefers it, its score.  Unscored candidates of tier 0 come after
 * the scored ones.
 */
static void candidate_scored(struct route_candidate *c, const struct route_score *sc,
                             const struct registry_region *preferred, double tie)
{
    c->tie = tie;
    c->tier = sc->candidate ? 0 : 1;
    c->prefer = c->region->runtime == preferred ? 0 : 1;
    c->score = sc->score_ms >= 0 ? sc->score_ms : HUGE_VAL;
}

/* Great-circle kilometres from the cosine of the angle (region_km). */
double route_km(double dot)
{
    return region_km(dot);
}

/* route_plan_scores, from the caller's unit vector (NULL: no location). */
static bool route_origin_scores(const struct routing_data *rd, const double *origin,
                                struct route_score *scores, const struct region **home,
                                const struct registry_region **preferred)
{
    *home = NULL;
    *preferred = NULL;
    if (rd->rank.by == ROUTE_BY_DISTANCE || rd->regions->count > ROUTE_MAX_REGIONS)
        return false;
    route_scores(rd->regions, origin, &rd->rank, scores);
    *home = route_home(rd->regions, origin);
    if (*home != NULL)
        *preferred = __atomic_load_n(&(*home)->runtime->preferred, __ATOMIC_ACQUIRE);
    return true;
}

bool route_plan_scores(const struct routing_data *rd, const struct locality *loc,
                       struct route_score *scores, const struct region **home,
                       const struct registry_region **preferred)
{
    double origin[3] = {0, 0, 0};
    bool has_origin = route_origin(loc, origin);
    return route_origin_scores(rd, has_origin ? origin : NULL, scores, home, preferred);
}

/* The measured order (rtt.h) of a plan: the caller's scores, its group's preferred region. */
struct route_measured {
    bool tried, scored;
    struct route_score scores[ROUTE_MAX_REGIONS];
    const struct registry_region *preferred;
    const struct region *home;
};

/*
 * Scores c, working the scores out first when none were: only once a
 * second candidate needs ordering, so that a plan of one region (a
 * transaction's, every transaction, with one region configured) skips
 * them.
 */
static void route_plan_score(const struct routing_data *rd, const double *origin,
                             struct route_measured *m, struct route_candidate *c)
{
    if (!m->tried) {
        m->tried = true;
        /* The unit vector once: its sine and cosine are a plan's costliest arithmetic. */
        m->scored = route_origin_scores(rd, origin, m->scores, &m->home, &m->preferred);
    }
    if (m->scored)
        candidate_scored(c, &m->scores[c->order], m->preferred, rd->rank.damping.deadband_min_ms);
}

size_t route_plan(const struct routing_data *rd, const struct locality *loc,
                  const struct need_spec *need, const struct region_subset *placed,
                  struct region **out, double *cosines, size_t max)
{
    double origin[3] = {0, 0, 0};
    bool has_origin = route_origin(loc, origin);
    struct route_candidate best[ROUTE_MAX_REGIONS];
    size_t n = 0;
    if (max > ROUTE_MAX_REGIONS)
        max = ROUTE_MAX_REGIONS;
    if (max == 0)
        return 0;
    struct route_measured m;
    m.tried = false; /* (not zeroed whole: its scores are written before they are read) */
    for (size_t i = 0; i < rd->regions->count; i++) {
        struct region *r = &rd->regions->items[i];
        if (!registry_takes_sessions(r->runtime))
            continue; /* never, not even last: registry.h */
        if (placed != NULL && !region_subset_has(placed, r))
            continue; /* the session's database is not there */
        enum need_fit fit = need_region_fit(r, need);
        if (fit == NEED_FIT_NONE)
            continue; /* nothing there can serve it: passed over (need_region_shortfall says why) */
        bool first = r == loc->region && (fit != NEED_FIT_LAST || !rd->health_checked ||
                                          loc->source != LOCALITY_DEFAULT);
        struct route_candidate c = {
            .region = r, .rank = first ? 0 : 1 + (int)fit, .dot = -2.0, .order = i};
        if (has_origin && r->has_location)
            c.dot = origin[0] * r->unit[0] + origin[1] * r->unit[1] + origin[2] * r->unit[2];
        if (n > 0) { /* a second candidate: both are scored to be ordered */
            if (!m.tried)
                route_plan_score(rd, has_origin ? origin : NULL, &m, &best[0]);
            route_plan_score(rd, has_origin ? origin : NULL, &m, &c);
        }
        /* keep the best max, in order: insertion into a bounded sorted array */
        if (n == max && !candidate_before(&c, &best[n - 1]))
            continue;
        size_t j = n < max ? n++ : n - 1;
        while (j > 0 && candidate_before(&c, &best[j - 1])) {
            best[j] = best[j - 1];
            j--;
        }
        best[j] = c;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = best[i].region;
        cosines[i] = best[i].dot;
    }
    return n;
}

bool route_any_enabled(const struct routing_data *rd, const struct region_subset *placed)
{
    for (size_t i = 0; i < rd->regions->count; i++) {
        const struct region *r = &rd->regions->items[i];
        if (registry_takes_sessions(r->runtime) && (placed == NULL || region_subset_has(placed, r)))
            return true;
    }
    return false;
}

/* The evidence's name in SHOW CLIENTS and SHOW ROUTE. */
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
