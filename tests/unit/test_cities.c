/*
 * test_cities.c
 *    Unit tests for the city table, routing/cities.h (cmocka, TAP
 *    output): folding, small tables written to a temporary directory
 *    (quoting, comments, optional columns, qualifiers, alternate names,
 *    the ambiguity rule, bad lines, suggestions), and the real
 *    conf/cities.csv found through $PGNEAR_SRCDIR: well-known ambiguous
 *    names, qualified forms, other spellings and suggestions for
 *    misspelled names.
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
    expect_fold("St. John's, AG", "st johns, ag");
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
    expect_fold("Ta’ Xbiex", "ta xbiex"); /* apostrophes of every kind dropped */
    expect_fold("Ta‘ Xbiex", "ta xbiex");
    expect_fold("ʻEwa Beach", "ewa beach");
    expect_fold("Xi'an Xi`an Xi´an Xiʼan", "xian xian xian xian");
    expect_fold("Washington, D.C.", "washington, dc");
    expect_fold("St.Louis", "stlouis");
    expect_fold(" . ", "");
    expect_fold("Saint\xC2\xA0Louis", "st louis"); /* no-break space */
    expect_fold("Stratford–on–Avon", "stratford on avon");
    expect_fold("Москва", "Москва"); /* other scripts as written */
    expect_fold("東京", "東京");
}

static void test_fold_saints(void **state)
{
    (void)state;
    expect_fold("Saint Louis", "st louis");
    expect_fold("St. Louis", "st louis");
    expect_fold("ST LOUIS", "st louis");
    expect_fold("Saint-Étienne", "st etienne");
    expect_fold("Sainte-Foy", "ste foy");
    expect_fold("Ste. Foy", "ste foy");
    expect_fold("Port Saint Lucie", "port st lucie");
    expect_fold("Saints Saintes Saintly saint", "saints saintes saintly st");
    expect_fold("  saint  ", "st");
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
    LOAD_FAILS("name,country,lat,lon\na,FR,1,2,3,4,5,6,7,8,9\n", 2, "too many fields");
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
    LOAD_FAILS("name,country,lat,lon,inhabitants\n", 1, "expected the header");
    LOAD_FAILS("population,name,country,lat,lon\n", 1, "expected the header");
    LOAD_FAILS("name,country,lat,lon,admin1,lat\n", 1, "expected the header");
    LOAD_FAILS("name,country,lat,lon,admin1,Admin1\n", 1, "appears twice");
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

/* ---- sharing ---- */

/* Writes the small table again, in place. */
static void rewrite_small(void)
{
    FILE *fp = fopen(csv_path, "r+b");

    assert_non_null(fp);
    assert_int_equal(fwrite(small_csv, 1, sizeof small_csv - 1, fp), sizeof small_csv - 1);
    assert_int_equal(fclose(fp), 0);
}

static void test_shared_and_unchanged(void **state)
{
    char err[256], other[sizeof tmpdir + 16];
    const struct timespec settle = {1, 100 * 1000 * 1000};

    (void)state;
    struct city_table *fresh = load_ok(small_csv);
    /* read right after it was written: a change in the same tick would not show */
    assert_false(city_table_settled(fresh));
    assert_false(city_table_unchanged(fresh, csv_path));
    city_table_free(fresh);
    nanosleep(&settle, NULL);
    struct city_table *t = city_table_load(csv_path, err, sizeof err);
    assert_non_null(t);
    assert_true(city_table_settled(t));
    assert_true(city_table_unchanged(t, csv_path));
    snprintf(other, sizeof other, "%s/./t.csv", tmpdir);
    assert_false(city_table_unchanged(t, other)); /* the same file by another name: not shared */
    /* Two holders: the first to let go leaves the table to the other. */
    assert_ptr_equal(city_table_ref(t), t);
    city_table_free(t);
    expect(t, "sydney", "Sydney", "AU");
    rewrite_small(); /* the same bytes, but written again */
    assert_false(city_table_unchanged(t, csv_path));
    city_table_free(t);
}

/* ---- optional columns, qualifiers, alternate names ---- */

static const char full_csv[] =
    "name,country,lat,lon,population,admin1,alternates,prefer\n"
    "Portland,US,45.5234,-122.6762,632309,or,,\n"
    "Portland,US,43.6574,-70.2589,66881,ME,,\n"
    "Portland,AU,-38.3423,141.6036,10900,VIC,,0\n"
    "Springfield,US,37.2153,-93.2982,166810,MO,,\n"
    "Springfield,US,39.8017,-89.6437,116565,IL,,\n"
    "London,GB,51.5085,-0.1257,7556900,ENG,Londres,\n"
    "London,CA,42.9834,-81.2330,346765,ON,,\n"
    "Cambridge,GB,52.2000,0.1167,158434,ENG,,\n"
    "Cambridge,CA,43.3601,-80.3127,120372,ON,,\n"
    "Cambridge,US,42.3751,-71.1056,110402,MA,,\n"
    "Valencia,VE,10.1620,-68.0076,1385083,,,\n"
    "Valencia,ES,39.4697,-0.3774,814208,,València,1\n"
    "Valencia,US,34.4436,-118.6095,148456,CA,,\n"
    "Munich,DE,48.1374,11.5755,1260391,,München|Muenchen|MUNICH|Munchen,\n"
    "Köln,DE,50.9333,6.9500,963395,,Cologne|Koeln,\n"
    "Cologne,IT,45.5786,9.9418,7032,,,\n"
    "Salem,IN,11.6538,78.1554,778396,,,\n"
    "Salem,US,44.9429,-123.0351,164549,OR,,\n"
    "Salem,US,38.6056,-86.1011,6319,IN,,\n"
    "Perth,AU,-31.9522,115.8614,1896548,WA,,\n"
    "Perth,GB,56.3952,-3.4314,47180,SCT,,\n"
    "San Jose,US,37.3394,-121.8950,1026908,CA,,\n"
    "San José,CR,9.9333,-84.0833,335007,,,\n"
    "\"Washington, D.C.\",US,38.8951,-77.0364,601723,DC,Washington|Washington DC,\n"
    "Washington,GB,54.9000,-1.5167,53526,ENG,,\n"
    "Seattle,US,47.6062,-122.3321,737015,WA,,\n"
    "Darwin,AU,-12.4611,130.8418,129062,NT,,\n"
    "Paris,FR,48.8534,2.3488,2138551,,,\n"
    "Paris,US,33.6609,-95.5555,24782,TX,,\n"
    "Munchin,DE,50.0000,10.0000,100,,,\n";

#define FULL_CSV_PLACES 30

/* Asserts that query finds the place of that name, country and admin1 ("" for none). */
static const struct city *expect3(const struct city_table *t, const char *query, const char *name,
                                  const char *cc, const char *admin1)
{
    const struct city *c = expect(t, query, name, cc);

    if (strcmp(c->admin1, admin1) != 0)
        fail_msg("\"%s\": %s, %s-%s; expected %s-%s", query, c->name, c->country, c->admin1, cc,
                 admin1);
    return c;
}

static void test_optional_columns(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok(full_csv);
    assert_int_equal(city_table_count(t), FULL_CSV_PLACES);
    const struct city *c = expect3(t, "Portland", "Portland", "US", "OR"); /* upper-cased */
    assert_int_equal(c->population, 632309);
    c = expect3(t, "San José", "San Jose", "US", "CA");
    assert_true(fabs(c->lat - 37.3394) < 1e-9);
    city_table_free(t);

    /* The optional columns in any order, or only some of them. */
    t = load_ok("name,country,lat,lon,prefer,alternates,admin1,population\n"
                "Paris,US,33.6609,-95.5555,,Lutetia,TX,24782\n"
                "Paris,FR,48.8534,2.3488,,,,2138551\n");
    expect3(t, "Paris", "Paris", "FR", "");
    expect3(t, "Lutetia", "Paris", "US", "TX");
    city_table_free(t);
    t = load_ok("name,country,lat,lon,admin1\nParis,US,33.6609,-95.5555,TX\n");
    c = expect3(t, "Paris, Texas", "Paris", "US", "TX");
    assert_int_equal(c->population, 0);
    city_table_free(t);
}

static void test_bad_optional_columns(void **state)
{
    (void)state;
#define HDR "name,country,lat,lon,population,admin1,alternates,prefer\n"
    LOAD_FAILS(HDR "Paris,FR,1,2,,ABCD,,\n", 2, "admin1");
    LOAD_FAILS(HDR "Paris,FR,1,2,,A-B,,\n", 2, "admin1");
    LOAD_FAILS(HDR "Paris,FR,1,2,,,,yes\n", 2, "prefer");
    LOAD_FAILS(HDR "Paris,FR,1,2,,,,2\n", 2, "prefer");
    LOAD_FAILS(HDR "Paris,FR,1,2,,,a||b,\n", 2, "alternate name 2: empty name");
    LOAD_FAILS(HDR "Paris,FR,1,2,,,a|,\n", 2, "alternate name 2: empty name");
    LOAD_FAILS(HDR "Paris,FR,1,2,,,\" - \",\n", 2, "alternate name 1: name is blank");
    LOAD_FAILS(HDR "Paris,FR,1,2,,,Pa\xC3,\n", 2, "alternate name 1: name is not valid UTF-8");
    LOAD_FAILS(HDR "Paris,FR,1,2,,,x|Pa\tris,\n", 2, "alternate name 2: control character");
    LOAD_FAILS(HDR "Paris,FR,1,2,,,a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q,\n", 2,
               "too many alternate names");
    LOAD_FAILS(HDR "Paris,FR,1,2,,,\n", 2, "expected 8 fields");
#undef HDR
    /* Sixteen alternates are fine. */
    struct city_table *t = load_ok("name,country,lat,lon,alternates\n"
                                   "Paris,FR,1,2,a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p\n");
    expect(t, "p", "Paris", "FR");
    city_table_free(t);
}

static void test_prefer_and_population(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok(full_csv);
    expect(t, "Valencia", "Valencia", "ES"); /* prefer beats a larger population */
    expect(t, "Valencia, VE", "Valencia", "VE");
    expect3(t, "Portland", "Portland", "US", "OR");
    expect3(t, "Springfield", "Springfield", "US", "MO");
    expect3(t, "Cambridge", "Cambridge", "GB", "ENG");
    expect(t, "Salem", "Salem", "IN");
    expect3(t, "Washington", "Washington, D.C.", "US", "DC"); /* by an alternate name */
    city_table_free(t);
}

static void test_qualifier_country_or_admin1(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok(full_csv);
    expect3(t, "Portland, ME", "Portland", "US", "ME"); /* ME: Montenegro has no Portland */
    expect3(t, "portland,me", "Portland", "US", "ME");
    expect3(t, "Portland, Maine", "Portland", "US", "ME");
    expect3(t, "Portland, OR", "Portland", "US", "OR");
    expect3(t, "Portland, oregon", "Portland", "US", "OR");
    expect3(t, "Portland, US", "Portland", "US", "OR");
    expect3(t, "Portland, USA", "Portland", "US", "OR");
    expect3(t, "Portland, AU", "Portland", "AU", "VIC");
    expect3(t, "Portland, VIC", "Portland", "AU", "VIC");
    expect3(t, "Portland, Victoria", "Portland", "AU", "VIC");
    expect3(t, "Springfield, IL", "Springfield", "US", "IL"); /* IL: not Israel's */
    expect3(t, "Springfield, Illinois", "Springfield", "US", "IL");
    expect3(t, "London, ON", "London", "CA", "ON");
    expect3(t, "London, Ontario", "London", "CA", "ON");
    expect3(t, "London, UK", "London", "GB", "ENG");
    expect3(t, "London, England", "London", "GB", "ENG");
    expect3(t, "Cambridge, MA", "Cambridge", "US", "MA");
    expect3(t, "Cambridge, CA", "Cambridge", "CA", "ON"); /* Canada: no Cambridge in California */
    expect3(t, "Perth, Scotland", "Perth", "GB", "SCT");
    expect3(t, "Perth, WA", "Perth", "AU", "WA");
    expect3(t, "Perth, Western Australia", "Perth", "AU", "WA");
    expect3(t, "San Jose, CA", "San Jose", "US", "CA");
    expect3(t, "Valencia, CA", "Valencia", "US", "CA");
    expect3(t, "Darwin, NT", "Darwin", "AU", "NT");
    expect3(t, "Washington, DC", "Washington, D.C.", "US", "DC");
    expect3(t, "Washington, D.C.", "Washington, D.C.", "US", "DC");
    expect3(t, "Washington, District of Columbia", "Washington, D.C.", "US", "DC");
    expect3(t, "Washington, GB", "Washington", "GB", "ENG");
    /* Both readings of a two-letter code: the larger place wins. */
    expect(t, "Salem, IN", "Salem", "IN");
    expect3(t, "Salem, Indiana", "Salem", "US", "IN");
    city_table_free(t);
}

static void test_qualifier_admin1_and_country(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok(full_csv);
    expect3(t, "Portland, ME, US", "Portland", "US", "ME");
    expect3(t, "Portland , maine , usa ", "Portland", "US", "ME");
    expect3(t, "London, ON, CA", "London", "CA", "ON");
    expect3(t, "London, Ontario, CA", "London", "CA", "ON");
    expect3(t, "Salem, IN, US", "Salem", "US", "IN");
    expect3(t, "Washington, DC, US", "Washington, D.C.", "US", "DC");
    /* No admin1 in the table for these places: the middle part cannot rule them out. */
    expect(t, "Munich, Bavaria, DE", "Munich", "DE");
    expect(t, "Muenchen, BY, DE", "Munich", "DE");
    assert_null(city_table_lookup(t, "Munich, Bavaria, AT"));
    assert_null(city_table_lookup(t, "Portland, ME, AU"));
    assert_null(city_table_lookup(t, "Portland, Oregan, US"));
    assert_null(city_table_lookup(t, "Portland, ON, CA"));
    city_table_free(t);
}

static void test_qualifier_matches_nothing(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok(full_csv);
    /* A qualifier is never dropped to answer with a place it rules out. */
    assert_null(city_table_lookup(t, "Paris, DE"));
    assert_null(city_table_lookup(t, "Paris, France")); /* country names are not known */
    assert_null(city_table_lookup(t, "Portland, Oregan"));
    assert_null(city_table_lookup(t, "Portland, NSW"));
    assert_null(city_table_lookup(t, "Portland, XX"));
    assert_null(city_table_lookup(t, "Portland, 7"));
    assert_null(city_table_lookup(t, "Portland,"));
    assert_null(city_table_lookup(t, "Portland, , US"));
    assert_null(city_table_lookup(t, ", US"));
    city_table_free(t);
}

static void test_alternate_names(void **state)
{
    struct city_table *t;

    (void)state;
    t = load_ok(full_csv);
    expect(t, "München", "Munich", "DE");
    expect(t, "MUENCHEN", "Munich", "DE");
    expect(t, "Munchen", "Munich", "DE"); /* folds like München: indexed once */
    expect(t, "Koeln", "Köln", "DE");
    expect(t, "Cologne", "Köln", "DE"); /* the larger place of that name */
    expect(t, "Cologne, IT", "Cologne", "IT");
    expect(t, "Cologne, DE", "Köln", "DE");
    expect(t, "Londres", "London", "GB");
    expect(t, "Valencia", "Valencia", "ES");
    expect(t, "València", "Valencia", "ES");
    expect3(t, "Washington DC", "Washington, D.C.", "US", "DC");
    city_table_free(t);
}

/* ---- suggestions ---- */

/* Asserts that query suggests exactly the places "Name CC[-admin1]" of want, in order. */
static void expect_suggest(const struct city_table *t, const char *query, size_t max,
                           const char *const *want, size_t nwant)
{
    const struct city *got[CITY_SUGGEST_MAX];
    size_t n = city_table_suggest(t, query, got, max);
    char buf[CITY_SUGGEST_MAX][CITY_NAME_MAX + 16];

    for (size_t i = 0; i < n; i++)
        snprintf(buf[i], sizeof buf[i], "%s %s%s%s", got[i]->name, got[i]->country,
                 got[i]->admin1[0] ? "-" : "", got[i]->admin1);
    for (size_t i = 0; i < n || i < nwant; i++)
        if (i >= n || i >= nwant || strcmp(buf[i], want[i]) != 0)
            fail_msg("\"%s\": suggestion %zu is \"%s\", expected \"%s\" (%zu, expected %zu)", query,
                     i + 1, i < n ? buf[i] : "(none)", i < nwant ? want[i] : "(none)", n, nwant);
}

#define SUGGEST(t, query, max, ...)                                                                \
    do {                                                                                           \
        static const char *const want_[] = {__VA_ARGS__};                                          \
        expect_suggest(t, query, max, want_, sizeof want_ / sizeof want_[0]);                      \
    } while (0)

static void test_suggest_small(void **state)
{
    const struct city *out[CITY_SUGGEST_MAX];
    struct city_table *t;

    (void)state;
    t = load_ok(full_csv);
    SUGGEST(t, "Seatle", 5, "Seattle US-WA");
    SUGGEST(t, "Seattttle", 5, "Seattle US-WA"); /* two edits */
    SUGGEST(t, "Portlnd", 5, "Portland US-OR", "Portland US-ME", "Portland AU-VIC");
    SUGGEST(t, "Portlnd", 2, "Portland US-OR", "Portland US-ME");
    SUGGEST(t, "Protland", 5, "Portland US-OR", "Portland US-ME", "Portland AU-VIC");
    SUGGEST(t, "Portlnd, ME", 5, "Portland US-ME");
    SUGGEST(t, "Portlnd, Maine, US", 5, "Portland US-ME");
    SUGGEST(t, "Valenca", 5, "Valencia ES", "Valencia VE", "Valencia US-CA");
    SUGGEST(t, "Muenchn", 5, "Munich DE", "Munchin DE"); /* Munich once, though near two names */
    /* One edit from "Munchen", two from "Muenchen" which comes first in the index. */
    SUGGEST(t, "Munchn", 5, "Munich DE", "Munchin DE");
    SUGGEST(t, "Prais", 5, "Paris FR", "Paris US-TX"); /* a transposition is one edit */
    SUGGEST(t, "Sanjose", 5, "San Jose US-CA", "San José CR");
    /* A qualifier that leaves nothing is dropped; so is one that means nothing. */
    SUGGEST(t, "Paris, DE", 5, "Paris FR", "Paris US-TX");
    SUGGEST(t, "Paris, France", 5, "Paris FR", "Paris US-TX");
    SUGGEST(t, "Pariss", 1, "Paris FR");
    assert_int_equal(city_table_suggest(t, "Seattttttle", out, 5), 0); /* three edits */
    assert_int_equal(city_table_suggest(t, "Pa", out, 5), 0);          /* short: exact only */
    assert_int_equal(city_table_suggest(t, "Prss", out, 5), 0); /* 4 bytes: one edit, not 2 */
    assert_int_equal(city_table_suggest(t, "Xyzzy", out, 5), 0);
    assert_int_equal(city_table_suggest(t, "", out, 5), 0);
    assert_int_equal(city_table_suggest(t, " - ", out, 5), 0);
    assert_int_equal(city_table_suggest(t, "Se\xC3", out, 5), 0);
    assert_int_equal(city_table_suggest(t, "Seatle", out, 0), 0);
    assert_int_equal(city_table_suggest(t, NULL, out, 5), 0);
    assert_int_equal(city_table_suggest(t, "Seatle", NULL, 5), 0);
    assert_int_equal(city_table_suggest(NULL, "Seatle", out, 5), 0);
    city_table_free(t);
}

static void test_suggest_limits(void **state)
{
    const struct city *out[CITY_SUGGEST_MAX + 4];
    char q[CITY_NAME_MAX * 2];
    size_t len = 0, cap = 64 + 40 * 32;
    char *text = malloc(cap);
    struct city_table *t;

    (void)state;
    assert_non_null(text);
    len += (size_t)snprintf(text + len, cap - len, "name,country,lat,lon,population\n");
    for (int i = 0; i < 40; i++) /* Aaaaaa00 .. Aaaaaa39, larger as i grows */
        len += (size_t)snprintf(text + len, cap - len, "Aaaaaa%02d,FR,1,2,%d\n", i, i);
    t = load_ok(text);
    free(text);
    /* No more than CITY_SUGGEST_MAX, the most populous of those as near. */
    assert_int_equal(city_table_suggest(t, "Aaaaaa", out, CITY_SUGGEST_MAX + 4), CITY_SUGGEST_MAX);
    for (size_t i = 0; i < CITY_SUGGEST_MAX; i++)
        assert_int_equal(out[i]->population, 39 - i);
    /* Nearer beats more populous. */
    assert_int_equal(city_table_suggest(t, "Aaaaaa05", out, 3), 3);
    assert_string_equal(out[0]->name, "Aaaaaa05");
    assert_string_equal(out[1]->name, "Aaaaaa35"); /* one edit, as are 00..09, 15, 25 */
    assert_string_equal(out[2]->name, "Aaaaaa25");
    /* Names longer than the suggestions compare get none, and cost nothing. */
    memset(q, 'a', sizeof q - 1);
    q[sizeof q - 1] = '\0';
    assert_int_equal(city_table_suggest(t, q, out, 3), 0);
    city_table_free(t);
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
        /* The most populous of the US ones: Paris, Texas; Dublin, California. */
        {"Paris, US", "US", 33.66, -95.56},   {"Paris,US", "US", 33.66, -95.56},
        {"Sydney, CA", "CA", 46.14, -60.18}, /* Nova Scotia */
        {"Dublin, us", "US", 37.70, -121.94}, {"Birmingham, US", "US", 33.52, -86.80},
        {"London, CA", "CA", 42.98, -81.23},
    };
    const struct city_table *t = real_table();

    (void)state;
    for (size_t i = 0; i < sizeof cities / sizeof cities[0]; i++)
        expect_near(t, &cities[i]);
    assert_null(city_table_lookup(t, "Tokyo, US"));
    assert_null(city_table_lookup(t, "Xyzzy Upon Plugh"));
}

/* A query and the country and admin1 ("" for any) of the place it must find. */
struct expected {
    const char *query, *country, *admin1;
};

/* Checks every query of v; fails listing all those that found something else. */
static void expect_all(const char *what, const struct expected *v, size_t n)
{
    const struct city_table *t = real_table();
    char wrong[4096] = "";
    size_t used = 0, right = 0;

    for (size_t i = 0; i < n; i++) {
        const struct city *c = city_table_lookup(t, v[i].query);

        if (c && strcmp(c->country, v[i].country) == 0 &&
            (!v[i].admin1[0] || strcmp(c->admin1, v[i].admin1) == 0)) {
            right++;
            continue;
        }
        int k =
            snprintf(wrong + used, sizeof wrong - used, "\n#   \"%s\": %s %s-%s, expected %s-%s",
                     v[i].query, c ? c->name : "(none)", c ? c->country : "", c ? c->admin1 : "",
                     v[i].country, v[i].admin1);
        if (k > 0 && (size_t)k < sizeof wrong - used)
            used += (size_t)k;
    }
    printf("# %zu of %zu %s resolved as expected\n", right, n, what);
    if (right != n)
        fail_msg("%s:%s", what, wrong);
}

#define EXPECT_ALL(what, v) expect_all(what, v, sizeof(v) / sizeof((v)[0]))

/*
 * Well-known names that several places bear: the most populous place of the
 * name, as GeoNames counts them, except Valencia (marked prefer, see
 * conf/cities.README.md).  Cambridge is England's: 158,000 people against
 * 120,000 in Cambridge, Ontario and 110,000 in Cambridge, Massachusetts.
 */
static void test_real_ambiguous(void **state)
{
    static const struct expected v[] = {
        {"Boston", "US", "MA"},       {"Portland", "US", "OR"},  {"Cambridge", "GB", "ENG"},
        {"San Jose", "US", "CA"},     {"Valencia", "ES", ""},    {"Paris", "FR", ""},
        {"London", "GB", "ENG"},      {"Sydney", "AU", "NSW"},   {"Birmingham", "GB", "ENG"},
        {"Springfield", "US", "MO"},  {"Dublin", "IE", ""},      {"Perth", "AU", "WA"},
        {"Victoria", "CA", "BC"},     {"Kingston", "JM", ""},    {"Hamilton", "CA", "ON"},
        {"Richmond", "US", "VA"},     {"Santiago", "CL", ""},    {"Córdoba", "AR", ""},
        {"Cartagena", "CO", ""},      {"Mérida", "MX", ""},      {"Alexandria", "EG", ""},
        {"Tripoli", "LY", ""},        {"Hyderabad", "IN", ""},   {"Manchester", "GB", "ENG"},
        {"Moscow", "RU", ""},         {"Rome", "IT", ""},        {"Athens", "GR", ""},
        {"Berlin", "DE", ""},         {"Toledo", "US", "OH"},    {"Florence", "IT", ""},
        {"Naples", "IT", ""},         {"Venice", "IT", ""},      {"Memphis", "US", "TN"},
        {"Lima", "PE", ""},           {"La Paz", "BO", ""},      {"Georgetown", "GY", ""},
        {"Vancouver", "CA", "BC"},    {"Columbus", "US", "OH"},  {"Austin", "US", "TX"},
        {"Dallas", "US", "TX"},       {"Houston", "US", "TX"},   {"Phoenix", "US", "AZ"},
        {"Melbourne", "AU", "VIC"},   {"Brisbane", "AU", "QLD"}, {"Adelaide", "AU", "SA"},
        {"Halifax", "CA", "NS"},      {"Windsor", "CA", "ON"},   {"Wellington", "NZ", ""},
        {"Toronto", "CA", "ON"},      {"Montreal", "CA", "QC"},  {"Ottawa", "CA", "ON"},
        {"Durham", "US", "NC"},       {"Plymouth", "GB", "ENG"}, {"Oxford", "GB", "ENG"},
        {"Bristol", "GB", "ENG"},     {"Worcester", "US", "MA"}, {"Newport", "GB", "WLS"},
        {"Aberdeen", "GB", "SCT"},    {"Glasgow", "GB", "SCT"},  {"Edinburgh", "GB", "SCT"},
        {"Belfast", "GB", "NIR"},     {"Milan", "IT", ""},       {"Vienna", "AT", ""},
        {"Prague", "CZ", ""},         {"Warsaw", "PL", ""},      {"Lisbon", "PT", ""},
        {"Brussels", "BE", ""},       {"Delhi", "IN", ""},       {"Cairo", "EG", ""},
        {"Lagos", "NG", ""},          {"Barcelona", "ES", ""},   {"Madrid", "ES", ""},
        {"Granada", "ES", ""},        {"Odessa", "UA", ""},      {"Salem", "IN", ""},
        {"Washington", "US", "DC"},   {"New York", "US", "NY"},  {"Saint Petersburg", "RU", ""},
        {"St. Petersburg", "RU", ""}, {"Frankfurt", "DE", ""},   {"Hanover", "DE", ""},
        {"Panama City", "PA", ""},    {"Mexico City", "MX", ""}, {"Kansas City", "US", "MO"},
    };

    (void)state;
    EXPECT_ALL("ambiguous names", v);
}

static void test_real_qualified(void **state)
{
    static const struct expected v[] = {
        {"Portland, ME", "US", "ME"},
        {"Portland, Maine", "US", "ME"},
        {"Portland, OR", "US", "OR"},
        {"Portland, ME, US", "US", "ME"},
        {"Portland, Maine, USA", "US", "ME"},
        {"Springfield, IL", "US", "IL"},
        {"Springfield, Illinois", "US", "IL"},
        {"Springfield, MA", "US", "MA"},
        {"London, ON", "CA", "ON"},
        {"London, Ontario", "CA", "ON"},
        {"London, ON, CA", "CA", "ON"},
        {"London, UK", "GB", "ENG"},
        {"Boston, US", "US", "MA"},
        {"Boston, USA", "US", "MA"},
        {"Boston, GB", "GB", "ENG"},
        {"Boston, England", "GB", "ENG"},
        {"Cambridge, MA", "US", "MA"},
        {"Cambridge, US", "US", "MA"},
        {"Cambridge, ON", "CA", "ON"},
        {"Perth, Scotland", "GB", "SCT"},
        {"Perth, WA", "AU", "WA"},
        {"Sydney, NS", "CA", "NS"},
        {"Sydney, Nova Scotia", "CA", "NS"},
        {"Paris, TX", "US", "TX"},
        {"Paris, Texas", "US", "TX"},
        {"Paris, TN", "US", "TN"},
        {"Birmingham, AL", "US", "AL"},
        {"Birmingham, Alabama", "US", "AL"},
        {"Athens, GA", "US", "GA"},
        {"Valencia, VE", "VE", ""},
        {"Valencia, US", "US", "CA"},
        {"Valencia, CA", "US", "CA"},
        {"San Jose, CR", "CR", ""},
        {"San José, CR", "CR", ""},
        {"San Jose, CA", "US", "CA"},
        {"Vancouver, WA", "US", "WA"},
        {"Kingston, ON", "CA", "ON"},
        {"Kingston, NY", "US", "NY"},
        {"Richmond, BC", "CA", "BC"},
        {"Columbus, GA", "US", "GA"},
        {"Salem, OR", "US", "OR"},
        {"Salem, Indiana", "US", "IN"},
        {"Washington, DC", "US", "DC"},
        {"Washington, D.C.", "US", "DC"},
        {"Newcastle, NSW", "AU", "NSW"},
        {"Munich, Bavaria, DE", "DE", ""},
    };
    static const char *const unknown[] = {
        "Paris, DE", "Paris, France", "Portland, Oregan", "Portland, Oregan, US", "Boston, JP",
    };
    const struct city_table *t = real_table();

    (void)state;
    EXPECT_ALL("qualified names", v);
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++)
        if (city_table_lookup(t, unknown[i]))
            fail_msg("\"%s\": found, expected nothing", unknown[i]);
}

static void test_real_spellings(void **state)
{
    static const struct expected v[] = {
        {"Muenchen", "DE", ""},
        {"München", "DE", ""},
        {"Munich", "DE", ""},
        {"Koeln", "DE", ""},
        {"Köln", "DE", ""},
        {"Cologne", "DE", ""},
        {"Zuerich", "CH", ""},
        {"Duesseldorf", "DE", ""},
        {"Nuernberg", "DE", ""},
        {"Nuremberg", "DE", ""},
        {"Sao Paulo", "BR", ""},
        {"Kiev", "UA", ""},
        {"Bombay", "IN", ""},
        {"Peking", "CN", ""},
        {"Den Haag", "NL", ""},
        {"Geneva", "CH", ""},
        {"Wien", "AT", ""},
        {"Roma", "IT", ""},
        {"St Louis", "US", "MO"},
        {"Saint Louis", "US", "MO"},
        {"Xian", "CN", ""},
        {"NYC", "US", "NY"},
        {"Washington DC", "US", "DC"},
        {"Montréal", "CA", "QC"},
        /* Akamai EdgeScape: upper case, the words written together */
        {"SAOPAULO", "BR", ""},
        {"SANFRANCISCO", "US", "CA"},
        {"NEWYORK", "US", "NY"},
        {"FRANKFURTAMMAIN", "DE", ""},
        {"LOSANGELES", "US", "CA"},
        {"STLOUIS", "US", "MO"},
        {"NEWARK", "US", "NJ"}, /* a name of one word is itself first */
        {"SAOPAULO, BR", "BR", ""},
    };

    (void)state;
    EXPECT_ALL("other spellings", v);
}

/* The first suggestion for query must be name in cc. */
static void expect_first_suggestion(const char *query, const char *name, const char *cc)
{
    const struct city *out[3];
    struct timespec a, b;

    clock_gettime(CLOCK_MONOTONIC, &a);
    size_t n = city_table_suggest(real_table(), query, out, 3);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (n == 0)
        fail_msg("\"%s\": no suggestion, expected %s, %s", query, name, cc);
    if (strcmp(out[0]->name, name) != 0 || strcmp(out[0]->country, cc) != 0)
        fail_msg("\"%s\": suggests %s, %s first; expected %s, %s", query, out[0]->name,
                 out[0]->country, name, cc);
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    printf("# \"%s\": %zu suggestions, %s first, in %.1f ms\n", query, n, out[0]->name, ms);
}

static void test_real_suggest(void **state)
{
    const struct city *out[3];

    (void)state;
    expect_first_suggestion("Seatle", "Seattle", "US");
    expect_first_suggestion("Sanfrancisco", "San Francisco", "US");
    expect_first_suggestion("San Fransisco", "San Francisco", "US");
    expect_first_suggestion("Lodnon", "London", "GB");
    expect_first_suggestion("Philadelpia", "Philadelphia", "US");
    expect_first_suggestion("Muenchn", "Munich", "DE");
    expect_first_suggestion("Amsterdm", "Amsterdam", "NL");
    expect_first_suggestion("Portlnd, ME", "Portland", "US");
    expect_first_suggestion("Paris, France", "Paris", "FR");
    assert_int_equal(city_table_suggest(real_table(), "Xyzzy Upon Plugh", out, 3), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fold_ascii),
        cmocka_unit_test(test_fold_latin1),
        cmocka_unit_test(test_fold_latin_extended),
        cmocka_unit_test(test_fold_marks_and_punctuation),
        cmocka_unit_test(test_fold_saints),
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
        cmocka_unit_test(test_shared_and_unchanged),
        cmocka_unit_test(test_optional_columns),
        cmocka_unit_test(test_bad_optional_columns),
        cmocka_unit_test(test_prefer_and_population),
        cmocka_unit_test(test_qualifier_country_or_admin1),
        cmocka_unit_test(test_qualifier_admin1_and_country),
        cmocka_unit_test(test_qualifier_matches_nothing),
        cmocka_unit_test(test_alternate_names),
        cmocka_unit_test(test_suggest_small),
        cmocka_unit_test(test_suggest_limits),
        cmocka_unit_test(test_real_load),
        cmocka_unit_test(test_real_cities),
        cmocka_unit_test(test_real_country_suffix),
        cmocka_unit_test(test_real_ambiguous),
        cmocka_unit_test(test_real_qualified),
        cmocka_unit_test(test_real_spellings),
        cmocka_unit_test(test_real_suggest),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("cities", tests, group_setup, group_teardown);
}
