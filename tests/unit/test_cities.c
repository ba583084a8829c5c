/*
 * test_cities.c
 *    Unit tests for routing/cities.c (cmocka, TAP output): folding, small
 *    tables written to a temporary directory (quoting, comments, country
 *    suffix, the ambiguity rule, bad lines), and the real conf/cities.csv
 *    found through $PGNEAR_SRCDIR.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "routing/cities.h"

static char tmpdir[] = "/tmp/test_cities.XXXXXX";
static char csv_path[sizeof tmpdir + 16];
static struct city_table *real;

static int group_setup(void **state)
{
    (void)state;
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(csv_path, sizeof csv_path, "%s/t.csv", tmpdir);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    city_table_free(real);
    unlink(csv_path);
    return rmdir(tmpdir);
}

/* Writes len bytes of text to the test file and loads it; err gets the error. */
static struct city_table *load_bytes(const char *text, size_t len, char *err, size_t errcap)
{
    FILE *fp = fopen(csv_path, "wb");

    assert_non_null(fp);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    err[0] = '\0';
    return city_table_load(csv_path, err, errcap);
}

/* Loads text that must load. */
static struct city_table *load_ok(const char *text)
{
    char err[512];
    struct city_table *t = load_bytes(text, strlen(text), err, sizeof err);

    if (!t)
        fail_msg("load failed: %s", err);
    return t;
}

/* Checks that the text fails at line with a message containing why. */
static void load_fails(const char *text, size_t len, size_t line, const char *why)
{
    char err[512], want[sizeof csv_path + 32];
    struct city_table *t = load_bytes(text, len, err, sizeof err);

    if (t) {
        city_table_free(t);
        fail_msg("loaded, expected \"%s\" at line %zu", why, line);
    }
    if (line)
        snprintf(want, sizeof want, "%s:%zu: ", csv_path, line);
    else
        snprintf(want, sizeof want, "%s: ", csv_path);
    if (strncmp(err, want, strlen(want)) != 0 || !strstr(err, why))
        fail_msg("error \"%s\", expected \"%s%s\"", err, want, why);
}

#define LOAD_FAILS(text, line, why) load_fails(text, sizeof(text) - 1, line, why)

/* Asserts that query finds a city of that name and country. */
static const struct city *expect(const struct city_table *t, const char *query, const char *name,
                                 const char *cc)
{
    const struct city *c = city_table_lookup(t, query);

    if (!c)
        fail_msg("\"%s\": not found, expected %s, %s", query, name, cc);
    if (strcmp(c->name, name) != 0 || strcmp(c->country, cc) != 0)
        fail_msg("\"%s\": %s, %s; expected %s, %s", query, c->name, c->country, name, cc);
    return c;
}

static void expect_fold(const char *in, const char *want)
{
    char out[CITY_NAME_MAX];

    if (!city_fold(in, out, sizeof out))
        fail_msg("city_fold(\"%s\") failed", in);
    if (strcmp(out, want) != 0)
        fail_msg("city_fold(\"%s\") = \"%s\", expected \"%s\"", in, out, want);
}

static void expect_no_fold(const char *in, size_t cap)
{
    char out[CITY_NAME_MAX];

    assert_true(cap <= sizeof out);
    if (city_fold(in, out, cap))
        fail_msg("city_fold(\"%s\", cap %zu) = \"%s\", expected failure", in, cap, out);
}

/* ---- folding ---- */

static void test_fold_ascii(void **state)
{
    (void)state;
    expect_fold("Seattle", "seattle");
    expect_fold("  new   york ", "new york");
    expect_fold("\tNEW\r\nYORK\v\f", "new york");
    expect_fold("", "");
    expect_fold("   ", "");
    expect_fold("Winston-Salem", "winston salem");
    expect_fold("new_york", "new york");
    expect_fold("St. John's, AG", "st. john's, ag");
}

static void test_fold_latin1(void **state)
{
    (void)state;
    expect_fold("SÃO PAULO", "sao paulo");
    expect_fold("São Paulo", "sao paulo");
    expect_fold("Zürich", "zurich");
    expect_fold("Reykjavík", "reykjavik");
    expect_fold("Straße", "strasse");
    expect_fold("Æbeltoft", "aebeltoft");
    expect_fold("Ærøskøbing", "aeroskobing");
    expect_fold("Þórshöfn", "thorshofn");
    expect_fold("Ðakovo", "dakovo");
    expect_fold("Ñuñoa", "nunoa");
    expect_fold("ÀÁÂÃÄÅ àáâãäå ÇçÈÉÊËèéêë ÌÍÎÏìíîï ÒÓÔÕÖØòóôõöø ÙÚÛÜùúûü Ýýÿ",
                "aaaaaa aaaaaa cceeeeeeee iiiiiiii oooooooooooo uuuuuuuu yyy");
    expect_fold("2×3÷4", "2×3÷4"); /* not letters: kept */
}

static void test_fold_latin_extended(void **state)
{
    (void)state;
    expect_fold("Łódź", "lodz");
    expect_fold("Kraków", "krakow");
    expect_fold("Dąbrowa Górnicza", "dabrowa gornicza");
    expect_fold("İstanbul", "istanbul");
    expect_fold("Diyarbakır", "diyarbakir");
    expect_fold("Œuf", "oeuf");
    expect_fold("Ħamrun", "hamrun");
    expect_fold("Chişinău", "chisinau");
    expect_fold("Čakovec Šibenik Žilina", "cakovec sibenik zilina");
    expect_fold("Ĳmuiden", "ijmuiden");
    expect_fold("ŉ ĸ ſ", "n k s");
    expect_fold("București Timișoara", "bucuresti timisoara"); /* Latin Extended-B */
    expect_fold("Đà Nẵng", "da nang");                         /* Latin Extended Additional */
    expect_fold("Hà Nội", "ha noi");
    expect_fold("GROẞ", "gross");
}

static void test_fold_marks_and_punctuation(void **state)
{
    (void)state;
    expect_fold("Zu\xCC\x88rich", "zurich"); /* decomposed ü */
    expect_fold("Sa\xCC\x83o Paulo", "sao paulo");
    expect_fold("Ta’ Xbiex", "ta' xbiex");
    expect_fold("Ta‘ Xbiex", "ta' xbiex");
    expect_fold("ʻEwa Beach", "'ewa beach");
    expect_fold("Saint\xC2\xA0Louis", "saint louis"); /* no-break space */
    expect_fold("Stratford–on–Avon", "stratford on avon");
    expect_fold("Москва", "Москва"); /* other scripts as written */
    expect_fold("東京", "東京");
}

static void test_fold_rejects(void **state)
{
    char out[8];

    (void)state;
    expect_no_fold("\xC3", 16);             /* truncated */
    expect_no_fold("a\xC3(", 16);           /* bad continuation */
    expect_no_fold("\x80", 16);             /* stray continuation */
    expect_no_fold("\xC0\xAF", 16);         /* overlong "/" */
    expect_no_fold("\xE0\x80\xAF", 16);     /* overlong "/" */
    expect_no_fold("\xED\xA0\x80", 16);     /* surrogate */
    expect_no_fold("\xF4\x90\x80\x80", 16); /* above U+10FFFF */
    expect_no_fold("\xFF", 16);
    expect_no_fold("paris", 5); /* no room for the NUL */
    expect_no_fold("Straße", 6);
    expect_no_fold("", 0);
    assert_true(city_fold("paris", out, 6));
    assert_string_equal(out, "paris");
    assert_true(city_fold("  paris  ", out, 6)); /* spaces that fold away need no room */
    assert_string_equal(out, "paris");
    assert_true(city_fold("\xF0\x9F\x8C\x8D", out, sizeof out)); /* 4-byte UTF-8 kept */
    assert_string_equal(out, "\xF0\x9F\x8C\x8D");
    assert_false(city_fold(NULL, out, sizeof out));
    assert_false(city_fold("x", NULL, 4));
}

/* ---- small tables ---- */

static const char small_csv[] = "\xEF\xBB\xBF# attribution line\r\n"
                                "# another comment\n"
                                "name,country,lat,lon\r\n"
                                "\n"
                                "Paris,FR,48.8534,2.3488\r\n"
                                "Paris,US,33.6609,-95.5555\n"
                                "Paris,CA,43.2000,-80.3833\n"
                                "Paris,US,44.2598,-70.5006\n"
                                "   \n"
                                "São Paulo,BR,-23.5475,-46.6361\n"
                                "Sao Paulo,PT,38.7125,-9.1431\n"
                                "Zürich,CH,47.3667,8.5500\n"
                                "\"Misato, Saitama\",JP,35.8437,139.8835\n"
                                "\"Say \"\"Hi\"\"\",US,1.5,-2.25\n"
                                "\"Foo, AB\",us,10,20\n"
                                "Ab,AB,-1,-2\n"
                                "New York,US,40.7143,-74.0060\n"
                                "# a comment between cities\n"
                                "Sydney,AU,-33.8678,151.2073"; /* no final newline */

static void test_load_small(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok(small_csv);
    assert_int_equal(city_table_count(t), 13);
    const struct city *c = expect(t, "Sydney", "Sydney", "AU");
    assert_true(fabs(c->lat - -33.8678) < 1e-9);
    assert_true(fabs(c->lon - 151.2073) < 1e-9);
    c = expect(t, "foo, ab", "Foo, AB", "US");
    assert_string_equal(c->country, "US"); /* country upper-cased */
    assert_true(fabs(c->lat - 10) < 1e-9);
    city_table_free(t);
}

static void test_lookup_folding(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok(small_csv);
    expect(t, "zurich", "Zürich", "CH");
    expect(t, "ZÜRICH", "Zürich", "CH");
    expect(t, "Zu\xCC\x88rich", "Zürich", "CH");
    expect(t, "  new   york ", "New York", "US");
    expect(t, "NEW-YORK", "New York", "US");
    expect(t, "sydney", "Sydney", "AU");
    expect(t, "say \"hi\"", "Say \"Hi\"", "US");
    assert_null(city_table_lookup(t, "Lyon"));
    assert_null(city_table_lookup(t, ""));
    assert_null(city_table_lookup(t, "   "));
    assert_null(city_table_lookup(t, "Par"));
    assert_null(city_table_lookup(t, "Pariss"));
    assert_null(city_table_lookup(t, "Zu\xC3"));
    assert_null(city_table_lookup(t, NULL));
    assert_null(city_table_lookup(NULL, "Paris"));
    city_table_free(t);
}

static void test_lookup_long_query(void **state)
{
    char q[CITY_NAME_MAX * 4];
    struct city_table *t;

    (void)state;
    t = load_ok(small_csv);
    memset(q, 'a', sizeof q - 1);
    q[sizeof q - 1] = '\0';
    assert_null(city_table_lookup(t, q));
    /* Padding that folds away does not count against the limit. */
    memset(q, ' ', sizeof q - 1);
    memcpy(q + 100, "Sydney", 6);
    expect(t, q, "Sydney", "AU");
    city_table_free(t);
}

static void test_country_suffix(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok(small_csv);
    expect(t, "paris, fr", "Paris", "FR");
    expect(t, "Paris,FR", "Paris", "FR");
    expect(t, "Paris,US", "Paris", "US");
    expect(t, "Paris , ca ", "Paris", "CA");
    expect(t, "São Paulo, PT", "Sao Paulo", "PT");
    expect(t, "sao paulo, br", "São Paulo", "BR");
    expect(t, "Sydney, au", "Sydney", "AU");
    assert_null(city_table_lookup(t, "Paris, XX"));
    assert_null(city_table_lookup(t, "Paris, DE"));
    assert_null(city_table_lookup(t, "Sydney, CA"));
    assert_null(city_table_lookup(t, ", FR"));
    /* Not a country suffix: the whole text is the name. */
    expect(t, "Misato, Saitama", "Misato, Saitama", "JP");
    assert_null(city_table_lookup(t, "Paris, F"));
    assert_null(city_table_lookup(t, "Paris, FRA"));
    assert_null(city_table_lookup(t, "Paris, F1"));
    /* A name ending in ", XX" is still found when no city XX-restricted matches. */
    expect(t, "Foo, AB", "Foo, AB", "US");
    expect(t, "Ab, AB", "Ab", "AB");
    city_table_free(t);
}

static void test_ambiguity_first_line(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok(small_csv);
    const struct city *c = expect(t, "Paris", "Paris", "FR");
    assert_true(fabs(c->lat - 48.8534) < 1e-9);
    /* With a country, the first line of that country: Texas before Maine here. */
    c = expect(t, "Paris, US", "Paris", "US");
    assert_true(fabs(c->lat - 33.6609) < 1e-9);
    /* "São Paulo" and "Sao Paulo" are one name: the first line wins. */
    expect(t, "Sao Paulo", "São Paulo", "BR");
    expect(t, "SÃO PAULO", "São Paulo", "BR");
    city_table_free(t);

    t = load_ok("name,country,lat,lon\n"
                "Paris,US,33.6609,-95.5555\n"
                "Paris,FR,48.8534,2.3488\n");
    expect(t, "Paris", "Paris", "US");
    expect(t, "Paris, FR", "Paris", "FR");
    city_table_free(t);
}

static void test_ambiguity_population(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok("name,country,lat,lon,population\n"
                "Paris,US,33.6609,-95.5555,24782\n"
                "Paris,FR,48.8534,2.3488,2138551\n"
                "Paris,CA,43.2000,-80.3833,\n"
                "Dublin,US,37.7022,-121.9358,72589\n"
                "Dublin,IE,53.3331,-6.2489,72589\n"
                "Dublin,US,32.5404,-82.9038,16201\n");
    assert_int_equal(city_table_count(t), 6);
    expect(t, "paris", "Paris", "FR");
    expect(t, "paris, ca", "Paris", "CA");
    /* Equal populations: the first line. */
    const struct city *c = expect(t, "Dublin", "Dublin", "US");
    assert_true(fabs(c->lat - 37.7022) < 1e-9);
    c = expect(t, "Dublin, US", "Dublin", "US");
    assert_true(fabs(c->lat - 37.7022) < 1e-9);
    city_table_free(t);
}

static void test_many_duplicates(void **state)
{
    size_t cap = 64 + 400 * 32, len = 0;
    char *text = malloc(cap);
    struct city_table *t;

    (void)state;
    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len, "name,country,lat,lon\n");
    for (int i = 0; i < 400; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s,%c%c,%d,0\n", i % 2 ? "Same" : "Other",
                                'A' + i % 26, 'A' + (i / 26) % 26, i % 90);
    t = load_ok(text);
    free(text);
    assert_int_equal(city_table_count(t), 400);
    const struct city *c = expect(t, "same", "Same", "BA"); /* i = 1 */
    assert_true(fabs(c->lat - 1) < 1e-9);
    c = expect(t, "other", "Other", "AA");   /* i = 0 */
    c = expect(t, "same, ZO", "Same", "ZO"); /* i = 25 + 26 * 14 = 389 */
    assert_true(fabs(c->lat - 389 % 90) < 1e-9);
    city_table_free(t);
}

static void test_bad_lines(void **state)
{
    (void)state;
    LOAD_FAILS("# c\nname,country,lat,lon\nParis,FR,48.85,2.35\n\"Paris,FR,1,2\n", 4,
               "unterminated quoted field");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,48.85,2.35,7\n", 2, "expected 4 fields");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,48.85\n", 2, "expected 4 fields");
    LOAD_FAILS("name,country,lat,lon\na,FR,1,2,3,4,5,6\n", 2, "too many fields");
    LOAD_FAILS("name,country,lat,lon,population\nParis,FR,48.85,2.35\n", 2, "expected 5 fields");
    LOAD_FAILS("name,country,lat,lon,population\nParis,FR,48.85,2.35,-5\n", 2, "population");
    LOAD_FAILS("name,country,lat,lon,population\nParis,FR,48.85,2.35,1e6\n", 2, "population");
    LOAD_FAILS("name,country,lat,lon,population\nParis,FR,1,2,1234567890123456789\n", 2,
               "population");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,91,2.35\n", 2, "latitude");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,48.85,-180.5\n", 2, "longitude");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,,2.35\n", 2, "latitude");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,nan,2.35\n", 2, "latitude");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,inf,2.35\n", 2, "latitude");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,0x10,2.35\n", 2, "latitude");
    LOAD_FAILS("name,country,lat,lon\nParis,FR, 48.85,2.35\n", 2, "latitude");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,48.85.1,2.35\n", 2, "latitude");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,1e999,2.35\n", 2, "latitude");
    LOAD_FAILS("name,country,lat,lon\nParis,FRA,48.85,2.35\n", 2, "country");
    LOAD_FAILS("name,country,lat,lon\nParis,F1,48.85,2.35\n", 2, "country");
    LOAD_FAILS("name,country,lat,lon\nParis,,48.85,2.35\n", 2, "country");
    LOAD_FAILS("name,country,lat,lon\n,FR,48.85,2.35\n", 2, "empty name");
    LOAD_FAILS("name,country,lat,lon\n\" - \",FR,48.85,2.35\n", 2, "name is blank");
    LOAD_FAILS("name,country,lat,lon\nPa\"ris,FR,48.85,2.35\n", 2, "quote inside");
    LOAD_FAILS("name,country,lat,lon\n\"Paris\"x,FR,48.85,2.35\n", 2, "after a closing quote");
    LOAD_FAILS("name,country,lat,lon\nPar\xC3is,FR,48.85,2.35\n", 2, "UTF-8");
    LOAD_FAILS("name,country,lat,lon\nPa\tris,FR,48.85,2.35\n", 2, "control character");
    LOAD_FAILS("name,country,lat,lon\nParis,FR,48.85,2.35\nLy\0on,FR,45.7,4.8\n", 3, "NUL");
    LOAD_FAILS("# only comments\n\n", 0, "no header");
    LOAD_FAILS("name,country,lat,lon\n# nothing else\n", 0, "no cities");
    LOAD_FAILS("", 0, "no header");
    LOAD_FAILS("Paris,FR,48.85,2.35\n", 1, "expected the header");
    LOAD_FAILS("name,country,lat\n", 1, "expected the header");
    LOAD_FAILS("name,country,lon,lat\n", 1, "expected the header");
}

static void test_long_name(void **state)
{
    char text[64 + 2 * CITY_NAME_MAX];
    char err[512];
    struct city_table *t;

    (void)state;
    /* The longest accepted name, then one byte more. */
    int n =
        snprintf(text, sizeof text, "NAME,Country,LAT,Lon\n%0*d,FR,1,2\n", CITY_NAME_MAX - 1, 7);
    t = load_bytes(text, (size_t)n, err, sizeof err);
    if (!t)
        fail_msg("%s", err);
    assert_int_equal(city_table_count(t), 1);
    city_table_free(t);
    n = snprintf(text, sizeof text, "name,country,lat,lon\n%0*d,FR,1,2\n", CITY_NAME_MAX, 7);
    load_fails(text, (size_t)n, 2, "name too long");
}

static void test_missing_file(void **state)
{
    char err[256], path[sizeof tmpdir + 16];

    (void)state;
    snprintf(path, sizeof path, "%s/absent.csv", tmpdir);
    assert_null(city_table_load(path, err, sizeof err));
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "cannot open"));
    assert_null(city_table_load(path, NULL, 0)); /* no room for the message is fine */
    assert_null(city_table_load(NULL, err, sizeof err));
    assert_int_equal(city_table_count(NULL), 0);
    city_table_free(NULL);
}

/* ---- the real table ---- */

/* conf/cities.csv of the source tree, loaded once for the tests below. */
static const struct city_table *real_table(void)
{
    const char *srcdir = getenv("PGNEAR_SRCDIR");
    char path[4096], err[512];
    struct timespec a, b;

    if (real)
        return real;
    if (!srcdir || !*srcdir)
        fail_msg("PGNEAR_SRCDIR is not set: run through the test runner, or set it to the "
                 "source tree (the directory holding conf/cities.csv)");
    snprintf(path, sizeof path, "%s/conf/cities.csv", srcdir);
    clock_gettime(CLOCK_MONOTONIC, &a);
    real = city_table_load(path, err, sizeof err);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (!real)
        fail_msg("%s", err);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    printf("# loaded %zu cities from %s in %.0f ms\n", city_table_count(real), path, ms);
    return real;
}

struct known {
    const char *query, *country;
    double lat, lon;
};

static void expect_near(const struct city_table *t, const struct known *k)
{
    const struct city *c = city_table_lookup(t, k->query);

    if (!c)
        fail_msg("\"%s\": not found", k->query);
    if (strcmp(c->country, k->country) != 0 || fabs(c->lat - k->lat) > 0.5 ||
        fabs(c->lon - k->lon) > 0.5)
        fail_msg("\"%s\": %s, %s at %.4f,%.4f; expected %s near %.2f,%.2f", k->query, c->name,
                 c->country, c->lat, c->lon, k->country, k->lat, k->lon);
}

static void test_real_load(void **state)
{
    const struct city_table *t = real_table();

    (void)state;
    assert_true(city_table_count(t) > 100000);
}

static void test_real_cities(void **state)
{
    static const struct known cities[] = {
        {"Seattle", "US", 47.61, -122.33},      {"seattle", "US", 47.61, -122.33},
        {"Tokyo", "JP", 35.68, 139.69},         {"São Paulo", "BR", -23.55, -46.63},
        {"Sao Paulo", "BR", -23.55, -46.63},    {"SÃO PAULO", "BR", -23.55, -46.63},
        {"Zürich", "CH", 47.37, 8.54},          {"Zurich", "CH", 47.37, 8.54},
        {"Dublin", "IE", 53.35, -6.26},         {"Paris", "FR", 48.86, 2.35},
        {"paris, fr", "FR", 48.86, 2.35},       {"Mumbai", "IN", 19.08, 72.88},
        {"Sydney", "AU", -33.87, 151.21},       {"Cape Town", "ZA", -33.92, 18.42},
        {"Reykjavík", "IS", 64.15, -21.94},     {"Reykjavik", "IS", 64.15, -21.94},
        {"  new   york ", "US", 40.71, -74.01}, {"Washington", "US", 38.90, -77.04},
        {"London", "GB", 51.51, -0.13},         {"Perth", "AU", -31.95, 115.86},
    };
    const struct city_table *t = real_table();

    (void)state;
    for (size_t i = 0; i < sizeof cities / sizeof cities[0]; i++)
        expect_near(t, &cities[i]);
}

static void test_real_country_suffix(void **state)
{
    static const struct known cities[] = {
        /* North to south among the US ones, by the documented rule: Maine. */
        {"Paris, US", "US", 44.26, -70.50},  {"Paris,US", "US", 44.26, -70.50},
        {"Sydney, CA", "CA", 46.14, -60.18}, /* Nova Scotia */
        {"Dublin, us", "US", 42.91, -72.06}, {"São Paulo, PT", "PT", 38.71, -9.14},
        {"London, CA", "CA", 42.98, -81.23},
    };
    const struct city_table *t = real_table();

    (void)state;
    for (size_t i = 0; i < sizeof cities / sizeof cities[0]; i++)
        expect_near(t, &cities[i]);
    assert_null(city_table_lookup(t, "Tokyo, US"));
    assert_null(city_table_lookup(t, "Xyzzy Upon Plugh"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_ascii),
        cmocka_unit_test(test_fold_latin1),
        cmocka_unit_test(test_fold_latin_extended),
        cmocka_unit_test(test_fold_marks_and_punctuation),
        cmocka_unit_test(test_fold_rejects),
        cmocka_unit_test(test_load_small),
        cmocka_unit_test(test_lookup_folding),
        cmocka_unit_test(test_lookup_long_query),
        cmocka_unit_test(test_country_suffix),
        cmocka_unit_test(test_ambiguity_first_line),
        cmocka_unit_test(test_ambiguity_population),
        cmocka_unit_test(test_many_duplicates),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_long_name),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_real_load),
        cmocka_unit_test(test_real_cities),
        cmocka_unit_test(test_real_country_suffix),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("cities", tests, group_setup, group_teardown);
}
