/*
 * test_geoip.c
 *    Unit tests for routing/geoip.c (cmocka, TAP output).  The databases
 *    are written at test time by tests/lib/make_mmdb.pl into a temporary
 *    directory: both layouts, IPv4-only and IPv6 files, documentation and
 *    loopback ranges.
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
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "routing/geoip.h"
#include "tests/unit/mmdb_writer.h"

enum db_id { MM4, MM6, DBIP4, DBIP6, FLAT6, NOKEYS, TYPED, JUNK, NDB };

#define MAX_NETS 4

/* A database for make_mmdb.pl; type NULL for the layout's own. */
struct db_spec {
    const char *name;
    const char *layout;
    const char *ipv;
    const char *type;
    const char *nets[MAX_NETS + 1];
};

static const struct db_spec specs[NDB] = {
    [MM4] = {"mm4.mmdb",
             "maxmind",
             "4",
             NULL,
             {"203.0.113.0/24=Seattle,US,47.6062,-122.3321",
              "127.0.0.0/8=Ashburn,US,39.0438,-77.4874",
              "198.51.100.0/24=,NL,,"}}, /* an entry without coordinates */
    /* a nested layout whose database_type says nothing */
    [MM6] = {"mm6.mmdb",
             "maxmind",
             "6",
             "pgnear-nested",
             {"2001:db8::/32=Tokyo,JP,35.6762,139.6503",
              "203.0.113.128/25=Osaka,JP,34.6937,135.5023", "::1/128=Ashburn,US,39.0438,-77.4874"}},
    [DBIP4] = {"dbip4.mmdb",
               "dbip",
               "4",
               NULL,
               {"203.0.113.0/24=Portland,US,45.5152,-122.6784",
                "198.51.100.0/24=Amsterdam,NL,52.3676,4.9041",
                "100.64.0.0/10=Sydney,AU,-33.8688,151.2093"}},
    /* like ip-location-db's IPv6 file: IPv6 networks only */
    [DBIP6] = {"dbip6.mmdb",
               "dbip",
               "6",
               NULL,
               {"2001:db8::/32=Frankfurt,DE,50.1109,8.6821", "2001:db8:1::/48=,DE,,"}},
    /* flat records in an IPv6 tree with IPv4 data under ::/96 and no
     * ::ffff:0:0/96 alias, with a database_type that says nothing */
    [FLAT6] = {"flat6.mmdb",
               "dbip",
               "6",
               "pgnear-flat",
               {"203.0.113.0/24=Lisbon,PT,38.7223,-9.1393", "2001:db8::/32=Paris,FR,48.8566,2.3522",
                "198.51.100.0/24=,BE,,"}},
    /* records with no key at all: only the database_type can tell */
    [NOKEYS] = {"nokeys.mmdb", "maxmind", "4", "GeoLite2-ASN", {"192.0.2.0/24=,,,"}},
    [TYPED] = {"typed.mmdb", "maxmind", "4", "DBIP-City-Lite", {"192.0.2.0/24=,,,"}},
    [JUNK] = {"junk.mmdb", NULL, NULL, NULL, {NULL}},
};

#define DIR_MAX 1024

struct fixture {
    char dir[DIR_MAX];
    char path[NDB][DIR_MAX + 32];
};

/* Runs perl make_mmdb.pl for one spec; its messages go to stderr. */
static int make_mmdb(const char *srcdir, const char *path, const struct db_spec *spec)
{
    size_t n = 0;
    while (spec->nets[n] != NULL)
        n++;
    return mmdb_write(srcdir, path, spec->layout, spec->ipv, spec->type, spec->nets, n);
}

static int write_junk(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs("this is not a MaxMind DB file\n", f);
    return fclose(f);
}

static int group_teardown(void **state)
{
    struct fixture *fx = *state;
    if (fx == NULL)
        return 0;
    for (int i = 0; i < NDB; i++)
        unlink(fx->path[i]);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static int group_setup(void **state)
{
    const char *srcdir = getenv("PGNEAR_SRCDIR");
    if (srcdir == NULL || srcdir[0] == '\0') {
        fprintf(stderr, "# PGNEAR_SRCDIR is not set: the test runner sets it to the "
                        "source tree, which holds tests/lib/make_mmdb.pl\n");
        return -1;
    }
    struct fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    *state = fx;
    const char *tmp = getenv("TMPDIR");
    int n = snprintf(fx->dir, sizeof fx->dir, "%s/pgnear-geoip-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (n < 0 || (size_t)n >= sizeof fx->dir || mkdtemp(fx->dir) == NULL) {
        perror("# mkdtemp");
        fx->dir[0] = '\0';
        return -1;
    }
    for (int i = 0; i < NDB; i++)
        snprintf(fx->path[i], sizeof fx->path[i], "%s/%s", fx->dir, specs[i].name);
    for (int i = 0; i < NDB; i++) {
        int rc =
            specs[i].layout ? make_mmdb(srcdir, fx->path[i], &specs[i]) : write_junk(fx->path[i]);
        if (rc != 0) {
            fprintf(stderr, "# could not write the test database %s\n", fx->path[i]);
            return -1;
        }
    }
    return 0;
}

/* ---- helpers ---- */

/* "a,b" of the fixture's databases, in that order. */
static const char *db_list(const struct fixture *fx, char *buf, size_t cap, int a, int b)
{
    if (b < 0)
        snprintf(buf, cap, "%s", fx->path[a]);
    else
        snprintf(buf, cap, "%s, %s", fx->path[a], fx->path[b]);
    return buf;
}

static struct geoip_set *open_ok(const char *paths)
{
    char err[512] = "";
    struct geoip_set *g = geoip_open(paths, err, sizeof err);
    if (g == NULL)
        fail_msg("geoip_open(%s): %s", paths, err);
    return g;
}

static struct geoip_set *open_dbs(const struct fixture *fx, int a, int b)
{
    char buf[2 * DIR_MAX + 80];
    return open_ok(db_list(fx, buf, sizeof buf, a, b));
}

static void make_addr(const char *ip, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        return;
    }
    assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    s6->sin6_family = AF_INET6;
}

static struct geoip_result lookup(const struct geoip_set *g, const char *ip)
{
    struct sockaddr_storage ss;
    struct geoip_result r;
    char err[512] = "";
    make_addr(ip, &ss);
    if (geoip_lookup(g, (struct sockaddr *)&ss, &r, err, sizeof err) != 0)
        fail_msg("geoip_lookup(%s): %s", ip, err);
    return r;
}

/* The address is found in database want_db with coordinates. */
static void expect_city(const struct geoip_set *g, const char *ip, const char *city, const char *cc,
                        double lat, double lon, const char *want_db)
{
    struct geoip_result r = lookup(g, ip);
    if (!r.found || !r.has_location)
        fail_msg("%s: found=%d has_location=%d, expected %s", ip, r.found, r.has_location, city);
    assert_string_equal(r.city, city);
    assert_string_equal(r.country, cc);
    /* 1e-4: the flat layout stores float */
    assert_true(fabs(r.lat - lat) < 1e-4);
    assert_true(fabs(r.lon - lon) < 1e-4);
    assert_non_null(r.db);
    assert_string_equal(r.db, want_db);
}

static void expect_not_found(const struct geoip_set *g, const char *ip)
{
    struct geoip_result r = lookup(g, ip);
    if (r.found)
        fail_msg("%s: found (%s in %s), expected nothing", ip, r.city, r.db);
    assert_false(r.has_location);
    assert_null(r.db);
    assert_string_equal(r.city, "");
    assert_string_equal(r.country, "");
}

static void expect_open_error(const char *paths, const char *needle)
{
    char err[512] = "";
    struct geoip_set *g = geoip_open(paths, err, sizeof err);
    if (g != NULL) {
        geoip_close(g);
        fail_msg("geoip_open(\"%s\") succeeded", paths);
    }
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not say \"%s\"", err, needle);
}

/* ---- opening ---- */

static void test_bad_path(void **state)
{
    (void)state;
    expect_open_error("/nonexistent/pgnear/GeoLite2-City.mmdb", "/nonexistent/pgnear/");
    expect_open_error("/nonexistent/pgnear/GeoLite2-City.mmdb", "No such file");
}

static void test_not_an_mmdb(void **state)
{
    struct fixture *fx = *state;
    expect_open_error(fx->path[JUNK], fx->path[JUNK]);
    expect_open_error(fx->path[JUNK], "not a MaxMind DB");
    /* a directory is no database either */
    expect_open_error(fx->dir, fx->dir);
}

static void test_empty_list(void **state)
{
    (void)state;
    expect_open_error("", "no database");
    expect_open_error(" , ,", "no database");
    expect_open_error(NULL, "no database");
}

/* One bad file fails the whole set, naming that file. */
static void test_one_bad_in_list(void **state)
{
    struct fixture *fx = *state;
    char buf[2 * DIR_MAX + 80];
    snprintf(buf, sizeof buf, "%s,/nonexistent/x.mmdb", fx->path[MM4]);
    expect_open_error(buf, "/nonexistent/x.mmdb");
    expect_open_error(db_list(fx, buf, sizeof buf, DBIP4, JUNK), fx->path[JUNK]);
}

static void test_describe(void **state)
{
    struct fixture *fx = *state;
    char buf[5 * DIR_MAX + 200];
    snprintf(buf, sizeof buf, "%s,%s,%s,%s,%s", fx->path[MM4], fx->path[MM6], fx->path[DBIP4],
             fx->path[DBIP6], fx->path[FLAT6]);
    struct geoip_set *g = open_ok(buf);
    char text[8192];
    geoip_describe(g, text, sizeof text);
    static const char *const needles[] = {
        "5 GeoIP databases",
        "mm4.mmdb (MaxMind City layout, type \"GeoLite2-City\", IPv4, built ",
        "mm6.mmdb (MaxMind City layout, type \"pgnear-nested\", IPv6",
        "dbip4.mmdb (DB-IP flat layout, type \"city ipv4\", IPv4",
        "dbip6.mmdb (DB-IP flat layout, type \"city ipv6\", IPv6",
        "flat6.mmdb (DB-IP flat layout, type \"pgnear-flat\", IPv6",
        "epoch ",
    };
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++) {
        if (strstr(text, needles[i]) == NULL)
            fail_msg("description \"%s\" lacks \"%s\"", text, needles[i]);
    }
    /* a short buffer is cut, still terminated */
    char small[16];
    geoip_describe(g, small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    geoip_describe(NULL, small, sizeof small);
    assert_string_equal(small, "no GeoIP databa");
    geoip_close(g);
}

/* ---- one database ---- */

static void test_maxmind_v4(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, MM4, -1);
    expect_city(g, "203.0.113.7", "Seattle", "US", 47.6062, -122.3321, fx->path[MM4]);
    expect_city(g, "203.0.113.255", "Seattle", "US", 47.6062, -122.3321, fx->path[MM4]);
    expect_city(g, "127.0.0.1", "Ashburn", "US", 39.0438, -77.4874, fx->path[MM4]);
    /* doubles are kept exactly */
    assert_true(lookup(g, "203.0.113.7").lat == 47.6062);
    expect_not_found(g, "8.8.8.8");
    expect_not_found(g, "203.0.114.1");
    geoip_close(g);
}

static void test_dbip_v4(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, DBIP4, -1);
    expect_city(g, "203.0.113.7", "Portland", "US", 45.5152, -122.6784, fx->path[DBIP4]);
    expect_city(g, "100.127.255.254", "Sydney", "AU", -33.8688, 151.2093, fx->path[DBIP4]);
    expect_not_found(g, "127.0.0.1");
    geoip_close(g);
}

static void test_maxmind_v6(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, MM6, -1);
    expect_city(g, "2001:db8::1", "Tokyo", "JP", 35.6762, 139.6503, fx->path[MM6]);
    expect_city(g, "2001:db8:ffff::1", "Tokyo", "JP", 35.6762, 139.6503, fx->path[MM6]);
    expect_city(g, "::1", "Ashburn", "US", 39.0438, -77.4874, fx->path[MM6]);
    expect_not_found(g, "2001:db9::1");
    geoip_close(g);
}

static void test_dbip_v6(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, DBIP6, -1);
    expect_city(g, "2001:db8:2::1", "Frankfurt", "DE", 50.1109, 8.6821, fx->path[DBIP6]);
    /* no IPv4 data in this file, as in ip-location-db's */
    expect_not_found(g, "203.0.113.7");
    geoip_close(g);
}

/* An IPv4 address in an IPv6 tree is found under ::/96, as libmaxminddb
 * looks it up. */
static void test_v4_in_v6_tree(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, MM6, -1);
    expect_city(g, "203.0.113.200", "Osaka", "JP", 34.6937, 135.5023, fx->path[MM6]);
    expect_not_found(g, "203.0.113.7");
    geoip_close(g);
    g = open_dbs(fx, FLAT6, -1);
    expect_city(g, "203.0.113.7", "Lisbon", "PT", 38.7223, -9.1393, fx->path[FLAT6]);
    expect_city(g, "2001:db8::7", "Paris", "FR", 48.8566, 2.3522, fx->path[FLAT6]);
    geoip_close(g);
}

/* An IPv6 address never reaches an IPv4-only database (that would be an
 * error in libmaxminddb): not found, and no error. */
static void test_v6_skips_v4_only(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, MM4, -1);
    expect_not_found(g, "2001:db8::1");
    expect_not_found(g, "::1");
    geoip_close(g);
    g = open_dbs(fx, MM4, DBIP6);
    expect_city(g, "2001:db8::1", "Frankfurt", "DE", 50.1109, 8.6821, fx->path[DBIP6]);
    geoip_close(g);
}

static void test_v4_mapped(void **state)
{
    struct fixture *fx = *state;
    /* an IPv4-only database answers a mapped address */
    struct geoip_set *g = open_dbs(fx, MM4, -1);
    expect_city(g, "::ffff:203.0.113.7", "Seattle", "US", 47.6062, -122.3321, fx->path[MM4]);
    expect_city(g, "::ffff:127.0.0.1", "Ashburn", "US", 39.0438, -77.4874, fx->path[MM4]);
    geoip_close(g);
    /* an IPv6 tree without the ::ffff:0:0/96 alias still finds its IPv4 data */
    g = open_dbs(fx, FLAT6, -1);
    expect_city(g, "::ffff:203.0.113.7", "Lisbon", "PT", 38.7223, -9.1393, fx->path[FLAT6]);
    geoip_close(g);
    g = open_dbs(fx, MM6, -1);
    expect_city(g, "::ffff:203.0.113.129", "Osaka", "JP", 34.6937, 135.5023, fx->path[MM6]);
    geoip_close(g);
}

/* ---- several databases ---- */

static void test_first_with_coordinates_wins(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, MM4, DBIP4);
    expect_city(g, "203.0.113.7", "Seattle", "US", 47.6062, -122.3321, fx->path[MM4]);
    geoip_close(g);
    g = open_dbs(fx, DBIP4, MM4);
    expect_city(g, "203.0.113.7", "Portland", "US", 45.5152, -122.6784, fx->path[DBIP4]);
    geoip_close(g);
}

static void test_falls_through_missing_entry(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, MM4, DBIP4);
    expect_city(g, "100.64.1.1", "Sydney", "AU", -33.8688, 151.2093, fx->path[DBIP4]);
    expect_city(g, "127.0.0.1", "Ashburn", "US", 39.0438, -77.4874, fx->path[MM4]);
    expect_not_found(g, "192.0.2.1");
    geoip_close(g);
}

/* An entry without coordinates gives way to a later one with them, and is
 * the answer when no database has coordinates. */
static void test_falls_through_no_coordinates(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, MM4, DBIP4);
    expect_city(g, "198.51.100.1", "Amsterdam", "NL", 52.3676, 4.9041, fx->path[DBIP4]);
    geoip_close(g);
    g = open_dbs(fx, MM4, DBIP6);
    struct geoip_result r = lookup(g, "198.51.100.1");
    assert_true(r.found);
    assert_false(r.has_location);
    assert_string_equal(r.country, "NL");
    assert_string_equal(r.city, "");
    assert_string_equal(r.db, fx->path[MM4]);
    r = lookup(g, "2001:db8:1::5");
    assert_true(r.found);
    assert_false(r.has_location);
    assert_string_equal(r.country, "DE");
    assert_string_equal(r.db, fx->path[DBIP6]);
    geoip_close(g);
}

/* Among entries without coordinates, the first database's wins. */
static void test_first_without_coordinates_wins(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, MM4, FLAT6);
    struct geoip_result r = lookup(g, "198.51.100.1");
    assert_true(r.found && !r.has_location);
    assert_string_equal(r.country, "NL");
    assert_string_equal(r.db, fx->path[MM4]);
    geoip_close(g);
    g = open_dbs(fx, FLAT6, MM4);
    r = lookup(g, "198.51.100.1");
    assert_true(r.found && !r.has_location);
    assert_string_equal(r.country, "BE");
    assert_string_equal(r.db, fx->path[FLAT6]);
    geoip_close(g);
}

/* When records have no telling key, the database_type decides; a type
 * of neither layout (an ASN database given by mistake) is refused. */
static void test_layout_from_type(void **state)
{
    struct fixture *fx = *state;
    expect_open_error(fx->path[NOKEYS], "\"GeoLite2-ASN\" is neither");
    struct geoip_set *g = open_dbs(fx, TYPED, -1);
    char text[2048];
    geoip_describe(g, text, sizeof text);
    if (strstr(text, "MaxMind City layout, type \"DBIP-City-Lite\"") == NULL)
        fail_msg("description \"%s\"", text);
    struct geoip_result r = lookup(g, "192.0.2.1");
    assert_true(r.found && !r.has_location);
    assert_string_equal(r.city, "");
    assert_string_equal(r.country, "");
    geoip_close(g);
}

/* DB-IP as ip-location-db ships it: one IPv4 file, one IPv6 file. */
static void test_split_v4_v6_set(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, DBIP4, DBIP6);
    expect_city(g, "203.0.113.7", "Portland", "US", 45.5152, -122.6784, fx->path[DBIP4]);
    expect_city(g, "::ffff:203.0.113.7", "Portland", "US", 45.5152, -122.6784, fx->path[DBIP4]);
    expect_city(g, "2001:db8::1", "Frankfurt", "DE", 50.1109, 8.6821, fx->path[DBIP6]);
    expect_not_found(g, "2001:db9::1");
    geoip_close(g);
}

/* A Unix-socket peer has no address to look up. */
static void test_unix_peer(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, MM4, -1);
    struct sockaddr_un sun = {.sun_family = AF_UNIX, .sun_path = "/tmp/.s.PGSQL.6432"};
    struct geoip_result r;
    char err[128] = "";
    assert_int_equal(geoip_lookup(g, (struct sockaddr *)&sun, &r, err, sizeof err), 0);
    assert_false(r.found);
    geoip_close(g);
}

/* ---- cost ---- */

#define BENCH_BATCHES   200
#define BENCH_PER_BATCH 5000
/* Under valgrind a lookup costs ~50 times more: stop there. */
#define BENCH_MAX_NS 5e9

/* 1e6 lookups in batches; prints the median cost per lookup (no
 * assertion on speed: sanitizer and valgrind runs are slow). */
static void test_lookup_cost(void **state)
{
    struct fixture *fx = *state;
    struct geoip_set *g = open_dbs(fx, MM4, DBIP4);
    static const char *const ips[] = {"203.0.113.7", "100.64.1.1", "198.51.100.1", "192.0.2.1"};
    struct sockaddr_storage ss[4];
    for (int i = 0; i < 4; i++)
        make_addr(ips[i], &ss[i]);
    double per[BENCH_BATCHES];
    struct geoip_result r;
    int batches = 0, located = 0;
    double start = mmdb_now_ns();
    while (batches < BENCH_BATCHES && mmdb_now_ns() - start < BENCH_MAX_NS) {
        double t0 = mmdb_now_ns();
        for (int i = 0; i < BENCH_PER_BATCH; i++) {
            assert_int_equal(geoip_lookup(g, (struct sockaddr *)&ss[i & 3], &r, NULL, 0), 0);
            located += r.has_location;
        }
        per[batches++] = (mmdb_now_ns() - t0) / BENCH_PER_BATCH;
    }
    qsort(per, (size_t)batches, sizeof per[0], mmdb_cmp_double);
    printf("# geoip_lookup: median %.0f ns per lookup over %d lookups (fastest batch %.0f)\n",
           per[batches / 2], batches * BENCH_PER_BATCH, per[0]);
    /* three addresses of four have coordinates somewhere */
    assert_int_equal(located, batches * BENCH_PER_BATCH / 4 * 3);
    geoip_close(g);
}

/* A set opened from files unchanged since is shared; one replaced on disk is not. */
static void test_shared_and_unchanged(void **state)
{
    const struct fixture *fx = *state;
    const struct timespec settle = {1, 100 * 1000 * 1000};
    char list[2 * DIR_MAX + 80], replaced[DIR_MAX + 40];

    nanosleep(&settle, NULL); /* the databases were written at setup */
    db_list(fx, list, sizeof list, MM4, DBIP4);
    struct geoip_set *g = open_ok(list);
    assert_true(geoip_unchanged(g, list));
    assert_false(geoip_unchanged(g, fx->path[MM4])); /* another list */
    assert_ptr_equal(geoip_ref(g), g);
    geoip_close(g); /* the other reference keeps it open */
    expect_city(g, "203.0.113.7", "Seattle", "US", 47.6062, -122.3321, fx->path[MM4]);
    /* The monthly update: a new file renamed over the old one, the same data. */
    snprintf(replaced, sizeof replaced, "%s.new", fx->path[DBIP4]);
    assert_int_equal(make_mmdb(getenv("PGNEAR_SRCDIR"), replaced, &specs[DBIP4]), 0);
    assert_int_equal(rename(replaced, fx->path[DBIP4]), 0);
    assert_false(geoip_unchanged(g, list));
    struct geoip_set *reopened = open_ok(list);
    assert_false(geoip_unchanged(reopened, list)); /* read within a second of its change */
    geoip_close(reopened);
    geoip_close(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_path),
        cmocka_unit_test(test_not_an_mmdb),
        cmocka_unit_test(test_empty_list),
        cmocka_unit_test(test_one_bad_in_list),
        cmocka_unit_test(test_describe),
        cmocka_unit_test(test_maxmind_v4),
        cmocka_unit_test(test_dbip_v4),
        cmocka_unit_test(test_maxmind_v6),
        cmocka_unit_test(test_dbip_v6),
        cmocka_unit_test(test_v4_in_v6_tree),
        cmocka_unit_test(test_v6_skips_v4_only),
        cmocka_unit_test(test_v4_mapped),
        cmocka_unit_test(test_first_with_coordinates_wins),
        cmocka_unit_test(test_falls_through_missing_entry),
        cmocka_unit_test(test_falls_through_no_coordinates),
        cmocka_unit_test(test_first_without_coordinates_wins),
        cmocka_unit_test(test_layout_from_type),
        cmocka_unit_test(test_split_v4_v6_set),
        cmocka_unit_test(test_unix_peer),
        cmocka_unit_test(test_lookup_cost),
        cmocka_unit_test(test_shared_and_unchanged),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("geoip", tests, group_setup, group_teardown);
}
