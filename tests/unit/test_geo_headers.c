/*
 * test_geo_headers.c
 *    Unit tests for protocol/geo_headers.c (cmocka, TAP output).  Each test
 *    builds a request's headers as (name, value) pairs, names spelled in a
 *    case other than the table's where it matters, and reads them with the
 *    default names unless it is about the configurable ones.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "protocol/geo_headers.h"

#define MAX_PAIRS 12

/* Reads pairs (name, value, ..., NULL) with names (NULL: the defaults). */
static void read_with(const struct geo_header_names *names, geo_trusted_fn trusted,
                      struct geo_headers *out, ...)
{
    struct geo_header_pair pairs[MAX_PAIRS];
    struct geo_header_list list = {pairs, 0};
    struct geo_header_names defaults;
    const char *name;
    va_list ap;

    geo_header_names_default(&defaults);
    va_start(ap, out);
    while ((name = va_arg(ap, const char *)) != NULL) {
        assert_true(list.count < MAX_PAIRS);
        pairs[list.count].name = name;
        pairs[list.count++].value = va_arg(ap, const char *);
    }
    va_end(ap);
    geo_headers_read(names ? names : &defaults, geo_header_pairs_get, &list, trusted, NULL, out);
}

#define READ(out, ...) read_with(NULL, NULL, out, __VA_ARGS__, NULL)

/* Our proxies: 10.0.0.0/8 and 2001:db8:ffff::/48. */
static bool trusted_proxies(void *arg, const struct sockaddr *sa)
{
    (void)arg;
    if (sa->sa_family == AF_INET) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        return a[0] == 10;
    }
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    return a[0] == 0x20 && a[1] == 0x01 && a[2] == 0x0d && a[3] == 0xb8 && a[4] == 0xff &&
           a[5] == 0xff;
}

static void assert_addr(const struct geo_headers *g, const char *header, const char *text,
                        uint16_t port)
{
    char got[INET6_ADDRSTRLEN];

    assert_true(g->has_addr);
    assert_string_equal(g->addr_header, header);
    if (g->addr.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&g->addr;
        assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, got, sizeof(got)));
        assert_int_equal(ntohs(sin->sin_port), port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&g->addr;
        assert_int_equal(g->addr.ss_family, AF_INET6);
        assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, got, sizeof(got)));
        assert_int_equal(ntohs(sin6->sin6_port), port);
    }
    assert_string_equal(got, text);
}

static void assert_city(const struct geo_headers *g, const char *header, const char *city,
                        const char *country)
{
    assert_true(g->has_city);
    assert_string_equal(g->city_header, header);
    assert_string_equal(g->city, city);
    assert_string_equal(g->country, country);
    if (country[0] == '\0')
        assert_null(g->country_header);
    else
        assert_non_null(g->country_header);
}

static void assert_coords(const struct geo_headers *g, const char *header, double lat, double lon)
{
    assert_true(g->has_coords);
    assert_string_equal(g->coords_header, header);
    if (g->lat != lat)
        print_error("lat %.17g != %.17g\n", g->lat, lat);
    assert_true(g->lat == lat);
    assert_true(g->lon == lon);
}

/* ---- São Paulo, four ways ---- */

static void test_sao_paulo(void **state)
{
    struct geo_headers g;

    (void)state;
    READ(&g, "CF-IPCity", "S\\u00c3\\u00a3o Paulo", "CF-IPCountry", "BR");
    assert_city(&g, "cf-ipcity", "S\xc3\xa3o Paulo", "BR");
    READ(&g, "cloudfront-viewer-city", "S%C3%A3o%20Paulo", "cloudfront-viewer-country", "BR");
    assert_city(&g, "CloudFront-Viewer-City", "S\xc3\xa3o Paulo", "BR");
    READ(&g, "X-Vercel-IP-City", "S%c3%a3o%20Paulo", "X-Vercel-IP-Country", "BR");
    assert_city(&g, "x-vercel-ip-city", "S\xc3\xa3o Paulo", "BR");
    READ(&g, "X-Akamai-Edgescape",
         "georegion=31,country_code=BR,region_code=SP,city=SAOPAULO,lat=-23.53,long=-46.62");
    assert_city(&g, "X-Akamai-Edgescape", "SAOPAULO", "BR");
    assert_coords(&g, "X-Akamai-Edgescape", -23.53, -46.62);
}

/* ---- cities ---- */

static void test_city_sources(void **state)
{
    struct geo_headers g;

    (void)state;
    READ(&g, "x-city", "Zürich", "X-Country", "CH");
    assert_city(&g, "X-City", "Zürich", "CH");
    READ(&g, "X-Appengine-City", "mountain view", "X-Appengine-Country", "US");
    assert_city(&g, "X-Appengine-City", "mountain view", "US");
    READ(&g, "X-Client-Geo-Location", "US,San Francisco");
    assert_city(&g, "X-Client-Geo-Location", "San Francisco", "US");
    /* only the first comma splits: the rest is the city */
    READ(&g, "X-Client-Geo-Location", "US, Washington, D.C.");
    assert_city(&g, "X-Client-Geo-Location", "Washington, D.C.", "US");
    READ(&g, "X-Client-Geo-Location", "San Francisco");
    assert_false(g.has_city);
    /* no country sent, or a bad one: the city alone */
    READ(&g, "cf-ipcity", "Lyon");
    assert_city(&g, "cf-ipcity", "Lyon", "");
    READ(&g, "cf-ipcity", "Lyon", "cf-ipcountry", "F R");
    assert_city(&g, "cf-ipcity", "Lyon", "");
    READ(&g, "X-Akamai-Edgescape", "city=SANFRANCISCO");
    assert_city(&g, "X-Akamai-Edgescape", "SANFRANCISCO", "");
}

static void test_city_precedence(void **state)
{
    struct geo_headers g;

    (void)state;
    READ(&g, "X-Akamai-Edgescape", "city=PARIS", "X-Appengine-City", "paris", "X-City", "Lille");
    assert_city(&g, "X-City", "Lille", "");
    READ(&g, "X-Akamai-Edgescape", "city=PARIS", "X-Appengine-City", "paris", "cf-ipcity", "Lyon");
    assert_city(&g, "cf-ipcity", "Lyon", "");
    READ(&g, "X-Akamai-Edgescape", "city=PARIS", "X-Client-Geo-Location", "FR,Nice");
    assert_city(&g, "X-Client-Geo-Location", "Nice", "FR");
    /* a malformed source gives way to the next */
    READ(&g, "CloudFront-Viewer-City", "S%C3", "x-vercel-ip-city", "Recife");
    assert_city(&g, "x-vercel-ip-city", "Recife", "");
}

static void test_city_malformed(void **state)
{
    struct geo_headers g;
    char longest[GEO_CITY_MAX + 2];

    (void)state;
    READ(&g, "CloudFront-Viewer-City", "S%C3%A");
    assert_false(g.has_city);
    READ(&g, "CloudFront-Viewer-City", "S%G3o");
    assert_false(g.has_city);
    READ(&g, "CloudFront-Viewer-City", "S%C3o"); /* decodes to bad UTF-8 */
    assert_false(g.has_city);
    READ(&g, "CloudFront-Viewer-City", "A%0Ab"); /* a control character */
    assert_false(g.has_city);
    READ(&g, "x-vercel-ip-city", "A%C2%85b"); /* a C1 control */
    assert_false(g.has_city);
    READ(&g, "cf-ipcity", "S\\u00e3o"); /* Latin-1, not UTF-8 */
    assert_false(g.has_city);
    READ(&g, "cf-ipcity", "S\\u0163o"); /* above 00FF */
    assert_false(g.has_city);
    READ(&g, "cf-ipcity", "S\\u00c");
    assert_false(g.has_city);
    READ(&g, "cf-ipcity", "S\\n");
    assert_false(g.has_city);
    READ(&g, "X-City", "\xc3\x28");
    assert_false(g.has_city);
    READ(&g, "X-Appengine-City", "?");
    assert_false(g.has_city);
    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    READ(&g, "X-City", longest);
    assert_false(g.has_city);
    longest[GEO_CITY_MAX] = '\0';
    READ(&g, "X-City", longest);
    assert_city(&g, "X-City", longest, "");
}

/* '+' is literal in RFC 3986 percent-encoding (CloudFront, Vercel) */
static void test_percent_plus(void **state)
{
    struct geo_headers g;

    (void)state;
    READ(&g, "CloudFront-Viewer-City", "A+B");
    assert_city(&g, "CloudFront-Viewer-City", "A+B", "");
    READ(&g, "x-vercel-ip-city", "New%20York");
    assert_city(&g, "x-vercel-ip-city", "New York", "");
}

/* ---- coordinates ---- */

static void test_coord_sources(void **state)
{
    struct geo_headers g;
    struct geo_header_names names;

    (void)state;
    READ(&g, "CF-IPLatitude", "48.8566", "CF-IPLongitude", "2.3522");
    assert_coords(&g, "cf-iplatitude", 48.8566, 2.3522);
    READ(&g, "CloudFront-Viewer-Latitude", "-33.87", "CloudFront-Viewer-Longitude", "151.21");
    assert_coords(&g, "CloudFront-Viewer-Latitude", -33.87, 151.21);
    READ(&g, "x-vercel-ip-latitude", "+1.5", "x-vercel-ip-longitude", "-180");
    assert_coords(&g, "x-vercel-ip-latitude", 1.5, -180);
    READ(&g, "X-AppEngine-CityLatLong", "37.386051,-122.083851");
    assert_coords(&g, "X-Appengine-CityLatLong", 37.386051, -122.083851);
    READ(&g, "X-Akamai-Edgescape", "lat=90, long=180, city=X");
    assert_coords(&g, "X-Akamai-Edgescape", 90, 180);
    /* the GCP header only when named */
    READ(&g, "X-Client-LatLong", "1,2");
    assert_false(g.has_coords);
    geo_header_names_default(&names);
    names.lat_long = "X-Client-LatLong";
    read_with(&names, NULL, &g, "x-client-latlong", " 1.25 , 2.5 ", NULL);
    assert_coords(&g, "X-Client-LatLong", 1.25, 2.5);
}

static void test_coord_precedence(void **state)
{
    struct geo_headers g;
    struct geo_header_names names;

    (void)state;
    geo_header_names_default(&names);
    names.lat_long = "X-LL";
    read_with(&names, NULL, &g, "X-Akamai-Edgescape", "lat=1,long=1", "X-LL", "2,2",
              "X-Appengine-CityLatLong", "3,3", "x-vercel-ip-latitude", "4",
              "x-vercel-ip-longitude", "4", "CloudFront-Viewer-Latitude", "5",
              "CloudFront-Viewer-Longitude", "5", "cf-iplatitude", "6", "cf-iplongitude", "6",
              NULL);
    assert_coords(&g, "cf-iplatitude", 6, 6);
    read_with(&names, NULL, &g, "X-Akamai-Edgescape", "lat=1,long=1", "X-LL", "2,2",
              "X-Appengine-CityLatLong", "3,3", "x-vercel-ip-latitude", "4",
              "x-vercel-ip-longitude", "4", "CloudFront-Viewer-Latitude", "5",
              "CloudFront-Viewer-Longitude", "5", NULL);
    assert_coords(&g, "CloudFront-Viewer-Latitude", 5, 5);
    read_with(&names, NULL, &g, "X-Akamai-Edgescape", "lat=1,long=1", "X-LL", "2,2",
              "X-Appengine-CityLatLong", "3,3", "x-vercel-ip-latitude", "4",
              "x-vercel-ip-longitude", "4", NULL);
    assert_coords(&g, "x-vercel-ip-latitude", 4, 4);
    read_with(&names, NULL, &g, "X-Akamai-Edgescape", "lat=1,long=1", "X-LL", "2,2",
              "X-Appengine-CityLatLong", "3,3", NULL);
    assert_coords(&g, "X-Appengine-CityLatLong", 3, 3);
    read_with(&names, NULL, &g, "X-Akamai-Edgescape", "lat=1,long=1", "X-LL", "2,2", NULL);
    assert_coords(&g, "X-LL", 2, 2);
    /* a half pair or a bad number gives way to the next source */
    read_with(&names, NULL, &g, "X-Akamai-Edgescape", "lat=1,long=1", "cf-iplatitude", "6",
              "CloudFront-Viewer-Longitude", "5", "x-vercel-ip-latitude", "4x",
              "x-vercel-ip-longitude", "4", NULL);
    assert_coords(&g, "X-Akamai-Edgescape", 1, 1);
}

static void test_coord_malformed(void **state)
{
    static const char *const bad[] = {
        "",     "-",    "+",      "1.",    ".5",
        "1e2",  "0x10", "inf",    "nan",   "1 .5",
        "1,5",  "--1",  "90.001", "-90.5", "1.5x",
        " 1 2", "١",    "1.5.",   "+-1",   "999999999999999999999999999999999999999",
    };
    struct geo_headers g;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        READ(&g, "cf-iplatitude", bad[i], "cf-iplongitude", "0");
        assert_false(g.has_coords);
    }
    READ(&g, "cf-iplatitude", "0", "cf-iplongitude", "180.5");
    assert_false(g.has_coords);
    READ(&g, "cf-iplatitude", "0", "cf-iplongitude", "-180.0001");
    assert_false(g.has_coords);
    READ(&g, "cf-iplatitude", "-90", "cf-iplongitude", "180.000");
    assert_coords(&g, "cf-iplatitude", -90, 180);
    READ(&g, "X-Appengine-CityLatLong", "1,2,3");
    assert_false(g.has_coords);
    READ(&g, "X-Appengine-CityLatLong", "1;2");
    assert_false(g.has_coords);
    READ(&g, "X-Akamai-Edgescape", "lat=1,longitude=2");
    assert_false(g.has_coords);
    READ(&g, "X-Akamai-Edgescape", "lat=1");
    assert_false(g.has_coords);
}

/* ---- region and configurable names ---- */

static void test_region_and_names(void **state)
{
    struct geo_headers g;
    struct geo_header_names names;

    (void)state;
    READ(&g, "x-region", " eu-west-1 ");
    assert_true(g.has_region);
    assert_string_equal(g.region, "eu-west-1");
    assert_string_equal(g.region_header, "X-Region");
    READ(&g, "X-Region", "eu west");
    assert_false(g.has_region);
    READ(&g, "X-Region", "eu.west");
    assert_false(g.has_region);
    READ(&g, "X-Region", "Asia_Tokyo-2");
    assert_string_equal(g.region, "Asia_Tokyo-2");
    READ(&g, "X-Region", "r\xc3\xa9gion");
    assert_false(g.has_region);

    geo_header_names_default(&names);
    names.region = "X-Edge-Region";
    names.city = "X-Edge-City";
    names.country = "X-Edge-Country";
    read_with(&names, NULL, &g, "X-Region", "ignored", "X-City", "ignored", "x-edge-region",
              "us-central1", "x-edge-city", "Des Moines", "x-edge-country", "US", NULL);
    assert_string_equal(g.region, "us-central1");
    assert_string_equal(g.region_header, "X-Edge-Region");
    assert_city(&g, "X-Edge-City", "Des Moines", "US");
    assert_string_equal(g.country_header, "X-Edge-Country");
    names.region = NULL;
    names.city = NULL;
    read_with(&names, NULL, &g, "X-Region", "r", "X-City", "c", NULL);
    assert_false(g.has_region);
    assert_false(g.has_city);
}

/* ---- addresses ---- */

static void test_xff(void **state)
{
    struct geo_headers g;

    (void)state;
    read_with(NULL, trusted_proxies, &g, "x-forwarded-for", "203.0.113.7, 198.51.100.1, 10.0.0.2",
              NULL);
    assert_addr(&g, "X-Forwarded-For", "198.51.100.1", 0);
    read_with(NULL, trusted_proxies, &g, "X-Forwarded-For",
              "203.0.113.7,10.1.1.1, 2001:db8:ffff::5 ,10.0.0.2", NULL);
    assert_addr(&g, "X-Forwarded-For", "203.0.113.7", 0);
    /* nothing trusted: the right-most */
    READ(&g, "X-Forwarded-For", "203.0.113.7, 2001:db8::1");
    assert_addr(&g, "X-Forwarded-For", "2001:db8::1", 0);
    /* all trusted: the left-most */
    read_with(NULL, trusted_proxies, &g, "X-Forwarded-For", "10.9.9.9, 10.0.0.2", NULL);
    assert_addr(&g, "X-Forwarded-For", "10.9.9.9", 0);
    /* a hop that is not an address spoils the header; the next source is used */
    READ(&g, "X-Forwarded-For", "203.0.113.7, evil", "cf-connecting-ip", "192.0.2.9");
    assert_addr(&g, "cf-connecting-ip", "192.0.2.9", 0);
    READ(&g, "X-Forwarded-For", "203.0.113.7:80");
    assert_false(g.has_addr);
    READ(&g, "X-Forwarded-For", "1.2.3.04");
    assert_false(g.has_addr);
    READ(&g, "X-Forwarded-For", "unknown, 192.0.2.1, ,");
    assert_addr(&g, "X-Forwarded-For", "192.0.2.1", 0);
}

/* A long chain: the value's bound, and only the right-most hops kept. */
static void test_xff_long(void **state)
{
    static char chain[GEO_VALUE_MAX + 2];
    struct geo_headers g;
    size_t n = 0;

    (void)state;
    /* 192.0.2.1 then 40 trusted hops: the left-most kept is a trusted one */
    n += (size_t)snprintf(chain, sizeof(chain), "192.0.2.1");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(chain + n, sizeof(chain) - n, ", 10.0.0.%d", i);
    read_with(NULL, trusted_proxies, &g, "X-Forwarded-For", chain, NULL);
    assert_addr(&g, "X-Forwarded-For", "10.0.0.8", 0);
    /* GEO_VALUE_MAX bytes is read, one more is not */
    memset(chain, ' ', GEO_VALUE_MAX);
    memcpy(chain + GEO_VALUE_MAX - 9, "192.0.2.7", 9);
    chain[GEO_VALUE_MAX] = '\0';
    READ(&g, "X-Forwarded-For", chain);
    assert_addr(&g, "X-Forwarded-For", "192.0.2.7", 0);
    chain[GEO_VALUE_MAX] = ' ';
    chain[GEO_VALUE_MAX + 1] = '\0';
    READ(&g, "X-Forwarded-For", chain);
    assert_false(g.has_addr);
}

static void test_forwarded(void **state)
{
    struct geo_headers g;

    (void)state;
    READ(&g, "forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43");
    assert_addr(&g, "Forwarded", "192.0.2.60", 0);
    READ(&g, "Forwarded", "For=\"[2001:db8:cafe::17]:4711\"");
    assert_addr(&g, "Forwarded", "2001:db8:cafe::17", 4711);
    READ(&g, "Forwarded", "for=\"[2001:db8::1]\", for=\"198.51.100.17:80\";proto=https");
    assert_addr(&g, "Forwarded", "198.51.100.17", 80);
    read_with(
        NULL, trusted_proxies, &g, "Forwarded",
        "for=192.0.2.43, for=\"[2001:db8::7]\";by=x, for=10.0.0.1, for=\"[2001:db8:ffff::1]\"",
        NULL);
    assert_addr(&g, "Forwarded", "2001:db8::7", 0);
    /* unknown and obfuscated hops are skipped, as are elements without for= */
    READ(&g, "Forwarded", "for=192.0.2.43, for=unknown, for=_hidden, proto=https;by=_x");
    assert_addr(&g, "Forwarded", "192.0.2.43", 0);
    READ(&g, "Forwarded", "for=\"192.0.2.43:_port\"");
    assert_addr(&g, "Forwarded", "192.0.2.43", 0);
    /* a quoted comma does not split elements; an escaped quote is a quote */
    READ(&g, "Forwarded", "for=192.0.2.1;ext=\"a,\\\"b\"");
    assert_addr(&g, "Forwarded", "192.0.2.1", 0);
    /* X-Forwarded-For comes first */
    READ(&g, "Forwarded", "for=192.0.2.1", "X-Forwarded-For", "192.0.2.2");
    assert_addr(&g, "X-Forwarded-For", "192.0.2.2", 0);
}

static void test_forwarded_malformed(void **state)
{
    static const char *const bad[] = {
        "for=\"[2001:db8::1]",
        "for=[2001:db8::1",
        "for=\"[192.0.2.1]\"",
        "for=\"2001:db8::1\"",
        "for=192.0.2.1:",
        "for=192.0.2.1:99999",
        "for=1.2.3.4;for=5.6.7.8",
        "for=",
        "=1.2.3.4",
        "for=1.2.3.4 x",
        "for=\"[::1]x\"",
        "for=\"[::1]:\"",
        "for=1.2.3.4:1:2",
        "for=host.example",
        "for=\"1.2.3.4",
    };
    struct geo_headers g;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        READ(&g, "Forwarded", bad[i]);
        assert_false(g.has_addr);
    }
}

static void test_viewer_address(void **state)
{
    struct geo_headers g;

    (void)state;
    READ(&g, "CloudFront-Viewer-Address", "192.0.2.1:46532");
    assert_addr(&g, "CloudFront-Viewer-Address", "192.0.2.1", 46532);
    READ(&g, "cloudfront-viewer-address", "2001:db8:abcd::1:443");
    assert_addr(&g, "CloudFront-Viewer-Address", "2001:db8:abcd::1", 443);
    READ(&g, "CloudFront-Viewer-Address", "192.0.2.1");
    assert_false(g.has_addr);
    READ(&g, "CloudFront-Viewer-Address", "192.0.2.1:65536");
    assert_false(g.has_addr);
    READ(&g, "CloudFront-Viewer-Address", "[2001:db8::1]:443");
    assert_false(g.has_addr);
    READ(&g, "CloudFront-Viewer-Address", "192.0.2.1:x", "CF-Connecting-IP", "2001:db8::9");
    assert_addr(&g, "cf-connecting-ip", "2001:db8::9", 0);
    READ(&g, "CF-Connecting-IP", "192.0.2.1 x");
    assert_false(g.has_addr);
    /* Forwarded comes before CloudFront's header */
    READ(&g, "CloudFront-Viewer-Address", "192.0.2.1:1", "Forwarded", "for=192.0.2.2");
    assert_addr(&g, "Forwarded", "192.0.2.2", 0);
}

/* ---- the decoders on their own ---- */

static void test_decoders(void **state)
{
    char buf[8];

    (void)state;
    assert_true(geo_percent_decode("a%41", 4, buf, sizeof(buf)));
    assert_string_equal(buf, "aA");
    assert_false(geo_percent_decode("%00", 3, buf, sizeof(buf)));
    assert_true(geo_percent_decode("1234567", 7, buf, sizeof(buf)));
    assert_false(geo_percent_decode("12345678", 8, buf, sizeof(buf)));
    assert_true(geo_cf_unescape("\\u00C3\\u00A3", 12, buf, sizeof(buf)));
    assert_string_equal(buf, "\xc3\xa3");
    assert_false(geo_cf_unescape("\\U00c3\\u00a3", 12, buf, sizeof(buf)));
    assert_false(geo_cf_unescape("\\u00c3", 6, buf, sizeof(buf))); /* a lone lead byte */
    assert_false(geo_text_valid("\xed\xa0\x80", 3));               /* a surrogate */
    assert_false(geo_text_valid("\xc0\xaf", 2));                   /* overlong */
    assert_false(geo_text_valid("a\x7f", 2));
    assert_true(geo_text_valid("\xf0\x9f\x98\x80", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sao_paulo),
        cmocka_unit_test(test_city_sources),
        cmocka_unit_test(test_city_precedence),
        cmocka_unit_test(test_city_malformed),
        cmocka_unit_test(test_percent_plus),
        cmocka_unit_test(test_coord_sources),
        cmocka_unit_test(test_coord_precedence),
        cmocka_unit_test(test_coord_malformed),
        cmocka_unit_test(test_region_and_names),
        cmocka_unit_test(test_xff),
        cmocka_unit_test(test_xff_long),
        cmocka_unit_test(test_forwarded),
        cmocka_unit_test(test_forwarded_malformed),
        cmocka_unit_test(test_viewer_address),
        cmocka_unit_test(test_decoders),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("geo_headers", tests, NULL, NULL);
}
