/*
 * test_route.c
 *    Unit tests for routing/route.c (cmocka, TAP output), without a
 *    network: great-circle distances, the order in which locality evidence
 *    is believed (region > city > location > GeoIP > default) and the
 *    reasons given, fall-through of unusable evidence, the order of the
 *    regions to try (named region first, nearest first, regions with no up
 *    host last, regions without a location after those with one) and the
 *    [cities] overrides.  Regions are built by hand; a small city table
 *    and a GeoIP database (tests/lib/make_mmdb.pl, found through
 *    $PGNEAR_SRCDIR) are written to a mkdtemp directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "routing/cities.h"
#include "routing/geoip.h"
#include "routing/region.h"
#include "routing/registry.h"
#include "routing/route.h"
#include "tests/unit/mmdb_writer.h"

/* ---- group fixture: a city table and a GeoIP database on disk ---- */

/* locality_reason() into one buffer, for the assertions. */
static char reason_buf[512];
#define REASON(l) locality_reason((l), reason_buf, sizeof reason_buf)

/* route_plan() with its cosines turned into kilometres. */
static size_t plan_km(const struct routing_data *rd, const struct locality *loc,
                      struct region **plan, double *km, size_t max)
{
    size_t n = route_plan(rd, loc, &(struct need_spec){.role = NEED_ANY}, NULL, plan, km, max);
    for (size_t i = 0; i < n; i++)
        km[i] = route_km(km[i]);
    return n;
}

static char tmpdir[] = "/tmp/test_route.XXXXXX";
static char csv_path[sizeof tmpdir + 16];
static char mmdb_path[sizeof tmpdir + 16];
static struct city_table *cities;
static struct geoip_set *geoip;

static const char city_csv[] = "# pgnear test city table\n"
                               "name,country,lat,lon\n"
                               "Dublin,IE,53.3331,-6.2489\n"
                               "Seattle,US,47.6062,-122.3321\n"
                               "Tokyo,JP,35.6895,139.6917\n"
                               "Zürich,CH,47.3667,8.5500\n"
                               "London,GB,51.5085,-0.1257\n";

static const char *const geoip_nets[] = {
    "203.0.113.0/24=Seattle,US,47.6062,-122.3321",
    "192.0.2.0/24=Tokyo,JP,35.6895,139.6917",
    "198.51.100.0/24=,NL,,", /* an entry without coordinates */
    NULL,
};

static int run_make_mmdb(const char *srcdir)
{
    return mmdb_write(srcdir, mmdb_path, "maxmind", "6", NULL, geoip_nets,
                      sizeof(geoip_nets) / sizeof(geoip_nets[0]) - 1);
}

static int group_setup(void **state)
{
    (void)state;
    const char *srcdir = getenv("PGNEAR_SRCDIR");
    char err[512];
    if (srcdir == NULL || srcdir[0] == '\0') {
        fprintf(stderr, "# PGNEAR_SRCDIR is not set: the test runner sets it to the source "
                        "tree, which holds tests/lib/make_mmdb.pl\n");
        return -1;
    }
    if (mkdtemp(tmpdir) == NULL) {
        perror("# mkdtemp");
        return -1;
    }
    snprintf(csv_path, sizeof csv_path, "%s/c.csv", tmpdir);
    snprintf(mmdb_path, sizeof mmdb_path, "%s/g.mmdb", tmpdir);
    FILE *f = fopen(csv_path, "w");
    if (f == NULL || fputs(city_csv, f) == EOF || fclose(f) != 0) {
        perror("# writing the city table");
        return -1;
    }
    cities = city_table_load(csv_path, err, sizeof err);
    if (cities == NULL) {
        fprintf(stderr, "# city_table_load: %s\n", err);
        return -1;
    }
    if (run_make_mmdb(srcdir) != 0)
        return -1;
    geoip = geoip_open(mmdb_path, err, sizeof err);
    if (geoip == NULL) {
        fprintf(stderr, "# geoip_open: %s\n", err);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    city_table_free(cities);
    geoip_close(geoip);
    unlink(csv_path);
    unlink(mmdb_path);
    rmdir(tmpdir);
    return 0;
}

/* ---- per-test fixture: regions built by hand ---- */

struct env {
    struct registry *registry; /* what the regions' health and admin state live in */
    struct region_set set;
    struct routing_data rd;
    struct city_override ov[4];
    struct region *use, *usw, *euw, *apn, *lab;
};

struct region_spec {
    const char *name;
    bool has_location;
    double lat, lon;
};

static const struct region_spec region_specs[] = {
    {"us-east", true, 39.04, -77.49},
    {"us-west", true, 45.60, -121.18},
    {"eu-west", true, 53.35, -6.26},
    {"ap-northeast", true, 35.68, 139.69},
    {"lab", false, 0, 0}, /* no location */
};
#define N_REGIONS (sizeof region_specs / sizeof region_specs[0])

/* Adds a host to r, a region of e->set, and binds the set again (as a reload would). */
static void add_host(struct env *e, struct region *r, const char *name, bool up)
{
    assert_true(r->nhosts < REGION_MAX_HOSTS);
    struct region_host *h = &r->hosts[r->nhosts++];
    memset(h, 0, sizeof(*h));
    h->name = strdup(name);
    assert_non_null(h->name);
    h->port = 5432;
    h->region = r;
    assert_true(registry_bind(e->registry, &e->set));
    h->runtime->health.up = up;
}

static int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return -1;
    if ((e->registry = registry_new()) == NULL) {
        free(e);
        return -1;
    }
    for (size_t i = 0; i < N_REGIONS; i++) {
        struct region *r = region_set_add(&e->set, region_specs[i].name);
        if (r == NULL)
            return -1;
        if (region_specs[i].has_location)
            region_set_location(r, region_specs[i].lat, region_specs[i].lon);
    }
    /* The array is final: hosts and back-pointers now. */
    for (size_t i = 0; i < e->set.count; i++) {
        char name[32];
        snprintf(name, sizeof name, "10.0.%zu.1", i);
        add_host(e, &e->set.items[i], name, true);
    }
    e->use = &e->set.items[0];
    e->usw = &e->set.items[1];
    e->euw = &e->set.items[2];
    e->apn = &e->set.items[3];
    e->lab = &e->set.items[4];
    e->rd = (struct routing_data){&e->set, e->use, cities, geoip,
                                  NULL,    0,      false,  {.by = ROUTE_BY_DISTANCE}};
    *state = e;
    return 0;
}

static int env_teardown(void **state)
{
    struct env *e = *state;
    if (e == NULL)
        return 0;
    for (size_t i = 0; i < sizeof e->ov / sizeof e->ov[0]; i++)
        free(e->ov[i].city);
    region_set_free(&e->set);
    registry_free(e->registry);
    free(e);
    return 0;
}

/* Adds a [cities] override: name folded as the config does. */
static void add_override(struct env *e, const char *city, struct region *r)
{
    char folded[CITY_NAME_MAX * 2];
    assert_true(e->rd.n_overrides < sizeof e->ov / sizeof e->ov[0]);
    assert_true(city_fold(city, folded, sizeof folded));
    struct city_override *o = &e->ov[e->rd.n_overrides++];
    o->city = strdup(folded);
    assert_non_null(o->city);
    o->region = r;
    e->rd.overrides = e->ov;
}

/* ---- helpers ---- */

static void assert_near(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s: got %.6f, expected %.6f +- %.6f", what, got, want, tol);
}

static void assert_within_pct(double got, double want, double pct, const char *what)
{
    assert_near(got, want, fabs(want) * pct / 100.0, what);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (hay == NULL || strstr(hay, needle) == NULL)
        fail_msg("\"%s\" does not mention \"%s\"", hay ? hay : "(null)", needle);
}

static struct sockaddr_in v4(const char *addr)
{
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons(40000);
    assert_int_equal(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
    return sin;
}

static void resolve(const struct env *e, const struct locality_input *in, struct locality *out)
{
    memset(out, 0x5a, sizeof(*out)); /* locality_resolve must set everything itself */
    locality_resolve(&e->rd, in, out);
    /* the reason is always one sentence that fits its buffer */
    assert_true(strlen(REASON(out)) + 1 < sizeof reason_buf);
    assert_true(REASON(out)[0] != '\0');
}

/* Plans and checks the order by region name; "" ends the list. */
static size_t plan_expect(const struct env *e, const struct locality *loc, const char *const *names,
                          struct region **plan, double *km)
{
    size_t n = plan_km(&e->rd, loc, plan, km, ROUTE_MAX_REGIONS);
    size_t want = 0;
    while (names[want] != NULL)
        want++;
    if (n != want)
        fail_msg("route_plan returned %zu regions, expected %zu", n, want);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(plan[i]->name, names[i]) != 0) {
            char got[512] = "";
            for (size_t j = 0; j < n; j++) {
                size_t used = strlen(got);
                snprintf(got + used, sizeof got - used, "%s%s(%.0f km)", j ? ", " : "",
                         plan[j]->name, km[j]);
            }
            fail_msg("plan[%zu] is %s, expected %s; plan: %s", i, plan[i]->name, names[i], got);
        }
    }
    return n;
}

/* Distances are the great-circle ones from (lat, lon), -1 without a location. */
static void check_km(struct region **plan, const double *km, size_t n, double lat, double lon)
{
    for (size_t i = 0; i < n; i++) {
        if (plan[i]->has_location)
            assert_near(km[i], route_distance_km(lat, lon, plan[i]->lat, plan[i]->lon), 1e-6,
                        plan[i]->name);
        else
            assert_true(km[i] < 0);
    }
}

/* ---- route_distance_km ---- */

static void test_distance_known(void **state)
{
    (void)state;
    /* London - Paris */
    assert_within_pct(route_distance_km(51.5074, -0.1278, 48.8566, 2.3522), 344, 1, "London-Paris");
    /* New York - London */
    assert_within_pct(route_distance_km(40.7128, -74.0060, 51.5074, -0.1278), 5570, 1,
                      "New York-London");
    /* Sydney - Los Angeles */
    assert_within_pct(route_distance_km(-33.8688, 151.2093, 34.0522, -118.2437), 12074, 1,
                      "Sydney-Los Angeles");
    /* antipodes: half the circumference, pi * 6371.0088 */
    assert_within_pct(route_distance_km(0, 0, 0, 180), 20015.1, 1, "antipodes on the equator");
    assert_within_pct(route_distance_km(90, 0, -90, 0), 20015.1, 1, "pole to pole");
    assert_within_pct(route_distance_km(53.35, -6.26, -53.35, 173.74), 20015.1, 1,
                      "Dublin and its antipode");
    /* one degree of latitude, one of longitude on the equator */
    assert_within_pct(route_distance_km(10, 20, 11, 20), 111.19, 1, "one degree of latitude");
    assert_within_pct(route_distance_km(0, 20, 0, 21), 111.19, 1, "one degree on the equator");
    /* across the date line the short way */
    assert_within_pct(route_distance_km(0, 179.5, 0, -179.5), 111.19, 1, "across the date line");
}

static void test_distance_zero_and_symmetric(void **state)
{
    (void)state;
    assert_near(route_distance_km(0, 0, 0, 0), 0, 1e-9, "same point at 0,0");
    assert_near(route_distance_km(53.35, -6.26, 53.35, -6.26), 0, 1e-6, "same point");
    assert_near(route_distance_km(90, 0, 90, 123), 0, 1e-6, "north pole, any longitude");
    assert_near(route_distance_km(0, 180, 0, -180), 0, 1e-6, "180 and -180");
    static const double pts[][2] = {
        {39.04, -77.49}, {45.60, -121.18}, {53.35, -6.26}, {35.68, 139.69}, {-33.87, 151.21}};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 5; j++) {
            double a = route_distance_km(pts[i][0], pts[i][1], pts[j][0], pts[j][1]);
            double b = route_distance_km(pts[j][0], pts[j][1], pts[i][0], pts[i][1]);
            assert_near(a, b, 1e-6, "symmetry");
            assert_true(a >= 0 && a <= 20016);
        }
}

static void test_source_names(void **state)
{
    (void)state;
    assert_string_equal(route_source_name(LOCALITY_REGION_HINT), "region");
    assert_string_equal(route_source_name(LOCALITY_CITY), "city");
    assert_string_equal(route_source_name(LOCALITY_COORDINATES), "location");
    assert_string_equal(route_source_name(LOCALITY_GEOIP), "geoip");
    assert_string_equal(route_source_name(LOCALITY_DEFAULT), "default");
}

/* ---- locality_resolve: priority ---- */

static void test_priority_region(void **state)
{
    struct env *e = *state;
    struct sockaddr_in a = v4("203.0.113.7");
    struct locality_input in = {.region = "eu-west",
                                .region_via = "startup hint",
                                .city = "Tokyo",
                                .city_via = "PROXY TLV",
                                .location = "47.6, -122.3",
                                .location_via = "startup hint",
                                .addr = (struct sockaddr *)&a};
    struct locality loc;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_REGION_HINT);
    assert_ptr_equal(loc.region, e->euw);
    assert_string_equal(loc.via, "startup hint");
    assert_true(loc.has_coords);
    assert_near(loc.lat, 53.35, 1e-9, "lat of the named region");
    assert_near(loc.lon, -6.26, 1e-9, "lon of the named region");
    assert_contains(REASON(&loc), "region eu-west");
    assert_contains(REASON(&loc), "startup hint");

    /* region names are matched without regard to case */
    in.region = "AP-NORTHEAST";
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_REGION_HINT);
    assert_ptr_equal(loc.region, e->apn);

    /* a named region without a location: no coordinates */
    in.region = "lab";
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_REGION_HINT);
    assert_ptr_equal(loc.region, e->lab);
    assert_false(loc.has_coords);
}

static void test_priority_city(void **state)
{
    struct env *e = *state;
    struct sockaddr_in a = v4("203.0.113.7");
    struct locality_input in = {.city = "Dublin",
                                .city_via = "PROXY TLV",
                                .location = "47.6, -122.3",
                                .location_via = "startup hint",
                                .addr = (struct sockaddr *)&a};
    struct locality loc;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_CITY);
    assert_null(loc.region);
    assert_string_equal(loc.via, "PROXY TLV");
    assert_string_equal(loc.city, "Dublin");
    assert_true(loc.has_coords);
    assert_near(loc.lat, 53.3331, 1e-9, "Dublin lat");
    assert_near(loc.lon, -6.2489, 1e-9, "Dublin lon");
    assert_contains(REASON(&loc), "city");
    assert_contains(REASON(&loc), "Dublin");
    assert_contains(REASON(&loc), "PROXY TLV");

    /* folded lookups: case and accents */
    in.city = "ZURICH";
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_CITY);
    assert_near(loc.lat, 47.3667, 1e-9, "Zurich lat");
}

static void test_priority_location(void **state)
{
    struct env *e = *state;
    struct sockaddr_in a = v4("203.0.113.7");
    struct locality_input in = {
        .location = "35.0, 135.5", .location_via = "startup hint", .addr = (struct sockaddr *)&a};
    struct locality loc;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_COORDINATES);
    assert_null(loc.region);
    assert_string_equal(loc.via, "startup hint");
    assert_true(loc.has_coords);
    assert_near(loc.lat, 35.0, 1e-9, "lat");
    assert_near(loc.lon, 135.5, 1e-9, "lon");
    assert_contains(REASON(&loc), "coordinates");
    assert_contains(REASON(&loc), "startup hint");
}

static void test_priority_geoip(void **state)
{
    struct env *e = *state;
    struct sockaddr_in a = v4("203.0.113.7");
    struct locality_input in = {.addr = (struct sockaddr *)&a};
    struct locality loc;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_GEOIP);
    assert_null(loc.region);
    assert_string_equal(loc.via, "GeoIP");
    assert_string_equal(loc.city, "Seattle");
    assert_true(loc.has_coords);
    assert_near(loc.lat, 47.6062, 1e-6, "Seattle lat");
    assert_near(loc.lon, -122.3321, 1e-6, "Seattle lon");
    assert_contains(REASON(&loc), "GeoIP");
    assert_contains(REASON(&loc), "Seattle");

    a = v4("192.0.2.200");
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_GEOIP);
    assert_string_equal(loc.city, "Tokyo");
}

static void test_priority_default(void **state)
{
    struct env *e = *state;
    struct locality_input in = {0};
    struct locality loc;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_DEFAULT);
    assert_ptr_equal(loc.region, e->use);
    assert_false(loc.has_coords);
    assert_string_equal(loc.city, "");
    assert_contains(REASON(&loc), "default_region");
    assert_contains(REASON(&loc), "us-east");
}

/* ---- locality_resolve: unusable evidence falls through ---- */

static void test_unknown_region_falls_through(void **state)
{
    struct env *e = *state;
    struct locality_input in = {
        .region = "mars-1", .region_via = "startup hint", .city = "Tokyo", .city_via = "X-City"};
    struct locality loc;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_CITY);
    assert_null(loc.region);
    assert_near(loc.lat, 35.6895, 1e-9, "Tokyo lat");

    /* ... to coordinates, to GeoIP */
    struct sockaddr_in a = v4("203.0.113.9");
    in = (struct locality_input){.region = "mars-1",
                                 .region_via = "PROXY TLV",
                                 .location = "1.35, 103.82",
                                 .location_via = "startup hint"};
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_COORDINATES);
    assert_null(loc.region);
    in.location = NULL;
    in.addr = (struct sockaddr *)&a;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_GEOIP);
    assert_null(loc.region);

    /* ... and to the default, whose reason says what was not usable */
    in.addr = NULL;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_DEFAULT);
    assert_ptr_equal(loc.region, e->use);
    assert_contains(REASON(&loc), "mars-1");
    assert_contains(REASON(&loc), "PROXY TLV");
    assert_contains(REASON(&loc), "not configured");
    assert_contains(REASON(&loc), "default_region");
}

static void test_unknown_city_falls_through(void **state)
{
    struct env *e = *state;
    struct locality_input in = {.city = "Atlantis",
                                .city_via = "startup hint",
                                .location = "-33.87, 151.21",
                                .location_via = "X-Geo"};
    struct locality loc;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_COORDINATES);
    assert_string_equal(loc.via, "X-Geo");
    assert_near(loc.lat, -33.87, 1e-9, "lat");

    struct sockaddr_in a = v4("192.0.2.1");
    in.location = NULL;
    in.addr = (struct sockaddr *)&a;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_GEOIP);
    assert_string_equal(loc.city, "Tokyo");

    in.addr = NULL;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_DEFAULT);
    assert_false(loc.has_coords);
    assert_contains(REASON(&loc), "Atlantis");
    assert_contains(REASON(&loc), "city table");
    assert_contains(REASON(&loc), "default_region");

    /* no city table at all: the city is unusable, not a crash */
    e->rd.cities = NULL;
    in.city = "Dublin";
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_DEFAULT);
    assert_contains(REASON(&loc), "Dublin");
}

static void test_bad_location_falls_through(void **state)
{
    struct env *e = *state;
    static const char *const bad[] = {"north", "91, 0",  "0, 181",  "1.5",
                                      "1.5,",  "nan, 0", "1, 2, 3", ""};
    struct sockaddr_in a = v4("203.0.113.1");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct locality_input in = {.location = bad[i], .location_via = "startup hint"};
        struct locality loc;
        resolve(e, &in, &loc);
        if (loc.source != LOCALITY_DEFAULT)
            fail_msg("location \"%s\" was accepted", bad[i]);
        assert_contains(REASON(&loc), "location");
        assert_contains(REASON(&loc), "default_region");
        if (bad[i][0] != '\0')
            assert_contains(REASON(&loc), bad[i]);
        in.addr = (struct sockaddr *)&a;
        resolve(e, &in, &loc);
        assert_int_equal(loc.source, LOCALITY_GEOIP);
    }
}

static void test_first_unusable_is_reported(void **state)
{
    struct env *e = *state;
    struct locality_input in = {.region = "mars-1",
                                .region_via = "startup hint",
                                .city = "Atlantis",
                                .city_via = "startup hint",
                                .location = "north",
                                .location_via = "startup hint"};
    struct locality loc;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_DEFAULT);
    assert_contains(REASON(&loc), "mars-1"); /* the strongest evidence given */
    assert_contains(REASON(&loc), "default_region us-east");
}

static void test_geoip_unusable(void **state)
{
    struct env *e = *state;
    struct locality loc;
    /* an entry without coordinates */
    struct sockaddr_in nl = v4("198.51.100.20");
    struct locality_input in = {.addr = (struct sockaddr *)&nl};
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_DEFAULT);
    assert_ptr_equal(loc.region, e->use);
    /* an address not in the database */
    struct sockaddr_in other = v4("10.9.8.7");
    in.addr = (struct sockaddr *)&other;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_DEFAULT);
    /* no database */
    struct sockaddr_in sea = v4("203.0.113.7");
    in.addr = (struct sockaddr *)&sea;
    e->rd.geoip = NULL;
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_DEFAULT);
    assert_contains(REASON(&loc), "default_region");
}

/* ---- route_plan ---- */

static void test_plan_by_distance(void **state)
{
    struct env *e = *state;
    struct locality_input in = {.location = "53.33, -6.25", .location_via = "t"};
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS];
    resolve(e, &in, &loc);
    static const char *const want[] = {"eu-west",      "us-east", "us-west",
                                       "ap-northeast", "lab",     NULL};
    size_t n = plan_expect(e, &loc, want, plan, km);
    check_km(plan, km, n, 53.33, -6.25);
    for (size_t i = 1; i + 1 < n; i++)
        assert_true(km[i - 1] <= km[i]);
    assert_within_pct(km[1], 5463, 1, "Dublin - us-east");

    /* from Tokyo: ap-northeast, us-west, eu-west, us-east */
    in.location = "35.69, 139.69";
    resolve(e, &in, &loc);
    static const char *const tokyo[] = {"ap-northeast", "us-west", "eu-west",
                                        "us-east",      "lab",     NULL};
    n = plan_expect(e, &loc, tokyo, plan, km);
    check_km(plan, km, n, 35.69, 139.69);

    /* GeoIP coordinates order the same way: Seattle */
    struct sockaddr_in a = v4("203.0.113.7");
    in = (struct locality_input){.addr = (struct sockaddr *)&a};
    resolve(e, &in, &loc);
    static const char *const seattle[] = {"us-west",      "us-east", "eu-west",
                                          "ap-northeast", "lab",     NULL};
    plan_expect(e, &loc, seattle, plan, km);
}

static void test_plan_named_region_first(void **state)
{
    struct env *e = *state;
    struct locality_input in = {.region = "us-east", .region_via = "startup hint"};
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS];
    resolve(e, &in, &loc);
    /* then by distance from the named region: us-west 3.7k, eu-west 5.5k, ap-northeast 10.9k */
    static const char *const want[] = {"us-east",      "us-west", "eu-west",
                                       "ap-northeast", "lab",     NULL};
    size_t n = plan_expect(e, &loc, want, plan, km);
    check_km(plan, km, n, 39.04, -77.49);
    assert_near(km[0], 0, 1e-6, "named region distance");

    /* a named region without a location: first, then the others, distances unknown */
    in.region = "lab";
    resolve(e, &in, &loc);
    n = plan_km(&e->rd, &loc, plan, km, ROUTE_MAX_REGIONS);
    assert_int_equal(n, N_REGIONS);
    assert_ptr_equal(plan[0], e->lab);
    for (size_t i = 0; i < n; i++)
        assert_true(km[i] < 0);
}

/*
 * Under health checks default_region, when its hosts are all down, ranks
 * with the regions that are down (first among them, being nearest to
 * itself): sessions placed by it do not dial a dead host first, each
 * logging its failure.  Without checks it stays first, since only a
 * session can bring it back; so does a region a client names, always.
 */
static void test_plan_default_region_down(void **state)
{
    struct env *e = *state;
    struct locality_input in = {0};
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS];
    resolve(e, &in, &loc);
    e->use->hosts[0].runtime->health.up = false;
    static const char *const first[] = {"us-east",      "us-west", "eu-west",
                                        "ap-northeast", "lab",     NULL};
    plan_expect(e, &loc, first, plan, km);

    e->rd.health_checked = true;
    static const char *const after[] = {"us-west", "eu-west", "ap-northeast",
                                        "lab",     "us-east", NULL};
    plan_expect(e, &loc, after, plan, km);

    /* named by the client: first even so */
    struct locality_input named = {.region = "us-east", .region_via = "startup hint"};
    resolve(e, &named, &loc);
    plan_expect(e, &loc, first, plan, km);

    /* up again: first again */
    resolve(e, &in, &loc);
    e->use->hosts[0].runtime->health.up = true;
    plan_expect(e, &loc, first, plan, km);
}

static void test_plan_default_region(void **state)
{
    struct env *e = *state;
    struct locality_input in = {0};
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS];

    e->rd.fallback = e->euw;
    resolve(e, &in, &loc);
    static const char *const want[] = {"eu-west",      "us-east", "us-west",
                                       "ap-northeast", "lab",     NULL};
    size_t n = plan_expect(e, &loc, want, plan, km);
    check_km(plan, km, n, 53.35, -6.26);
}

static void test_plan_down_last(void **state)
{
    struct env *e = *state;
    struct locality_input in = {.city = "Dublin", .city_via = "t"};
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS];
    resolve(e, &in, &loc);

    e->euw->hosts[0].runtime->health.up = false;
    static const char *const want[] = {"us-east", "us-west", "ap-northeast",
                                       "lab",     "eu-west", NULL};
    size_t n = plan_expect(e, &loc, want, plan, km);
    check_km(plan, km, n, 53.3331, -6.2489);

    /* two down: nearest down first among the down ones */
    e->use->hosts[0].runtime->health.up = false;
    static const char *const two[] = {"us-west", "ap-northeast", "lab", "eu-west", "us-east", NULL};
    plan_expect(e, &loc, two, plan, km);

    /* a region with one up host of two is up */
    add_host(e, e->euw, "10.0.2.2", true);
    static const char *const again[] = {"eu-west", "us-west", "ap-northeast",
                                        "lab",     "us-east", NULL};
    plan_expect(e, &loc, again, plan, km);

    /* a down region without a location is last of all */
    e->lab->hosts[0].runtime->health.up = false;
    static const char *const lab[] = {"eu-west", "us-west", "ap-northeast", "us-east", "lab", NULL};
    plan_expect(e, &loc, lab, plan, km);

    /* everything down: distance order again */
    for (size_t i = 0; i < e->set.count; i++)
        for (size_t h = 0; h < e->set.items[i].nhosts; h++)
            e->set.items[i].hosts[h].runtime->health.up = false;
    static const char *const all[] = {"eu-west", "us-east", "us-west", "ap-northeast", "lab", NULL};
    plan_expect(e, &loc, all, plan, km);
}

static void test_plan_location_less_after_located(void **state)
{
    struct env *e = *state;
    /* a second region without a location, configured after "lab" */
    struct region *r = region_set_add(&e->set, "lab2");
    assert_non_null(r);
    /* region_set_add may have moved the array: rebuild the pointers */
    for (size_t i = 0; i < e->set.count; i++)
        for (size_t h = 0; h < e->set.items[i].nhosts; h++)
            e->set.items[i].hosts[h].region = &e->set.items[i];
    r = &e->set.items[e->set.count - 1];
    add_host(e, r, "10.0.9.1", true);
    e->use = &e->set.items[0];
    e->rd.fallback = e->use;

    struct locality_input in = {.location = "45, -120", .location_via = "t"};
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS];
    resolve(e, &in, &loc);
    size_t n = plan_km(&e->rd, &loc, plan, km, ROUTE_MAX_REGIONS);
    assert_int_equal(n, 6);
    assert_string_equal(plan[0]->name, "us-west");
    assert_true(km[3] >= 0);
    assert_true(km[4] < 0 && km[5] < 0);
    /* those without a location keep their configuration order */
    assert_string_equal(plan[4]->name, "lab");
    assert_string_equal(plan[5]->name, "lab2");
}

static void test_plan_max(void **state)
{
    struct env *e = *state;
    struct locality_input in = {.city = "Tokyo", .city_via = "t"};
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS];
    resolve(e, &in, &loc);
    /* only room for two: the two to try first */
    size_t n = plan_km(&e->rd, &loc, plan, km, 2);
    assert_int_equal(n, 2);
    if (strcmp(plan[0]->name, "ap-northeast") != 0 || strcmp(plan[1]->name, "us-west") != 0)
        fail_msg("plan_km(max = 2) from Tokyo returned %s, %s; expected ap-northeast, "
                 "us-west (the nearest two)",
                 plan[0]->name, plan[1]->name);
}

/* ---- where a database lives ---- */

/* A database in us-west and eu-west only: Tokyo's caller goes to the nearer of the two. */
static void test_plan_placed(void **state)
{
    struct env *e = *state;
    struct locality_input in = {.city = "Tokyo", .city_via = "t", .region = "ap-northeast"};
    struct locality loc;
    struct region_subset placed;
    struct region *plan[ROUTE_MAX_REGIONS];
    double cos[ROUTE_MAX_REGIONS];
    char why[200], names[200];
    resolve(e, &in, &loc);
    assert_int_equal(region_subset_parse(&e->set, " EU-west ,us-west", &placed, why, sizeof(why)),
                     0);
    assert_string_equal(region_subset_format(&placed, names, sizeof(names)), "eu-west, us-west");
    size_t n = route_plan(&e->rd, &loc, &(struct need_spec){.role = NEED_ANY}, &placed, plan, cos,
                          ROUTE_MAX_REGIONS);
    assert_int_equal(n, 2);
    /* the region named is not one of them: passed over, not first */
    assert_ptr_equal(plan[0], e->usw);
    assert_ptr_equal(plan[1], e->euw);
    assert_true(route_any_enabled(&e->rd, &placed));
    registry_set_admin_state(e->euw->runtime, REGION_DISABLED);
    registry_set_admin_state(e->usw->runtime, REGION_DRAINING);
    assert_false(route_any_enabled(&e->rd, &placed));
    assert_true(route_any_enabled(&e->rd, NULL));
    assert_int_equal(route_plan(&e->rd, &loc, &(struct need_spec){.role = NEED_ANY}, &placed, plan,
                                cos, ROUTE_MAX_REGIONS),
                     0);
}

/* What a list of regions may not be. */
static void test_subset_parse_refusals(void **state)
{
    struct env *e = *state;
    struct region_subset placed;
    char why[200];
    static const struct {
        const char *list, *why;
    } bad[] = {
        {"", "no region named"},
        {"us-east, mars", "\"mars\" is not a configured region"},
        {"us-east,, eu-west", "an empty or overlong region name in \"us-east,, eu-west\""},
        {"us-east, US-EAST", "region \"US-EAST\" is named twice"},
        {" , ", "an empty or overlong region name in \" , \""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(region_subset_parse(&e->set, bad[i].list, &placed, why, sizeof(why)), -1);
        assert_string_equal(why, bad[i].why);
    }
}

/* ---- [cities] overrides ---- */

static void test_override_beats_distance(void **state)
{
    struct env *e = *state;
    add_override(e, "Dublin", e->apn);
    struct locality_input in = {.city = "DUBLIN", .city_via = "X-City"};
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS];
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_CITY);
    assert_ptr_equal(loc.region, e->apn);
    assert_string_equal(loc.via, "X-City");
    assert_contains(REASON(&loc), "[cities]");
    assert_contains(REASON(&loc), "ap-northeast");
    assert_contains(REASON(&loc), "DUBLIN");
    /* the city's own coordinates still order the rest of the plan */
    assert_true(loc.has_coords);
    assert_near(loc.lat, 53.3331, 1e-9, "Dublin lat");
    static const char *const want[] = {"ap-northeast", "eu-west", "us-east",
                                       "us-west",      "lab",     NULL};
    size_t n = plan_expect(e, &loc, want, plan, km);
    check_km(plan, km, n, 53.3331, -6.2489);

    /* a region hint still beats the override */
    in.region = "us-west";
    in.region_via = "startup hint";
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_REGION_HINT);
    assert_ptr_equal(loc.region, e->usw);
}

static void test_override_not_in_table(void **state)
{
    struct env *e = *state;
    add_override(e, "Atlantis", e->usw);
    add_override(e, "Zürich", e->lab);
    struct locality_input in = {.city = "  atlantis ", .city_via = "startup hint"};
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS];
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_CITY);
    assert_ptr_equal(loc.region, e->usw);
    assert_false(loc.has_coords);
    assert_contains(REASON(&loc), "[cities]");
    /* no coordinates: the rest ordered from the named region */
    static const char *const want[] = {"us-west",      "us-east", "eu-west",
                                       "ap-northeast", "lab",     NULL};
    size_t n = plan_expect(e, &loc, want, plan, km);
    check_km(plan, km, n, 45.60, -121.18);

    /* folded: accents and case */
    in.city = "ZURICH";
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_CITY);
    assert_ptr_equal(loc.region, e->lab);
    in.city = "zürich";
    resolve(e, &in, &loc);
    assert_ptr_equal(loc.region, e->lab);
    /* a region without a location, named by [cities]: first even so */
    plan_km(&e->rd, &loc, plan, km, ROUTE_MAX_REGIONS);
    assert_ptr_equal(plan[0], e->lab);

    /* a city in the table without an override: not affected */
    in.city = "Seattle";
    resolve(e, &in, &loc);
    assert_int_equal(loc.source, LOCALITY_CITY);
    assert_null(loc.region);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_distance_known),
        cmocka_unit_test(test_distance_zero_and_symmetric),
        cmocka_unit_test(test_source_names),
        cmocka_unit_test_setup_teardown(test_priority_region, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_priority_city, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_priority_location, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_priority_geoip, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_priority_default, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_region_falls_through, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_city_falls_through, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_bad_location_falls_through, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_first_unusable_is_reported, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_geoip_unusable, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_plan_by_distance, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_plan_named_region_first, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_plan_default_region_down, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_plan_default_region, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_plan_down_last, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_plan_location_less_after_located, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_plan_max, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_plan_placed, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_subset_parse_refusals, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_override_beats_distance, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_override_not_in_table, env_setup, env_teardown),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("route", tests, group_setup, group_teardown);
}
