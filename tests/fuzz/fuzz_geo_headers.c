/*
 * fuzz_geo_headers.c
 *    libFuzzer target for protocol/geo_headers.c: the input is cut at '\n'
 *    into header lines, the first byte of each picking the header's name
 *    (every name geo_headers_read looks up, in some case) and the rest its
 *    value.  Besides not crashing: decoded strings are valid UTF-8 text
 *    within their bounds, coordinates are in range, the address is IPv4 or
 *    IPv6, and reading twice gives the same result.  The whole input also
 *    goes through the percent and \u00XX decoders on their own.
 */
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/geo_headers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 16

static const char *const names[] = {
    "X-Region",
    "X-City",
    "X-Country",
    "X-LatLong",
    "cf-iplatitude",
    "CF-IPLONGITUDE",
    "CloudFront-Viewer-Latitude",
    "CloudFront-Viewer-Longitude",
    "x-vercel-ip-latitude",
    "x-vercel-ip-longitude",
    "X-Appengine-CityLatLong",
    "X-Akamai-Edgescape",
    "cf-ipcity",
    "cf-ipcountry",
    "CloudFront-Viewer-City",
    "CloudFront-Viewer-Country",
    "x-vercel-ip-city",
    "x-vercel-ip-country",
    "X-Appengine-City",
    "X-Appengine-Country",
    "X-Client-Geo-Location",
    "X-Forwarded-For",
    "Forwarded",
    "CloudFront-Viewer-Address",
    "cf-connecting-ip",
};

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

/* Trusts addresses whose first byte is even: some hops, not all. */
static bool trusted_even(void *arg, const struct sockaddr *sa)
{
    (void)arg;
    if (sa->sa_family == AF_INET)
        return (((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr)[0] & 1) == 0;
    return (((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr[0] & 1) == 0;
}

static void check_text(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);

    check(n <= max);
    check(geo_text_valid(s, n));
}

static void check_result(const struct geo_headers *g)
{
    if (g->has_region) {
        check(g->region_header != NULL && g->region[0] != '\0');
        check_text(g->region, GEO_REGION_MAX);
    }
    if (g->has_coords) {
        check(g->coords_header != NULL);
        check(isfinite(g->lat) && g->lat >= -90.0 && g->lat <= 90.0);
        check(isfinite(g->lon) && g->lon >= -180.0 && g->lon <= 180.0);
    }
    if (g->has_city) {
        check(g->city_header != NULL && g->city[0] != '\0');
        check_text(g->city, GEO_CITY_MAX);
        check_text(g->country, GEO_COUNTRY_MAX);
        check((g->country[0] != '\0') == (g->country_header != NULL));
    }
    if (g->has_addr)
        check(g->addr.ss_family == AF_INET || g->addr.ss_family == AF_INET6);
}

static void check_decoders(const uint8_t *data, size_t size)
{
    char out[GEO_CITY_MAX + 1];

    if (geo_percent_decode((const char *)data, size, out, sizeof(out)))
        check_text(out, GEO_CITY_MAX);
    if (geo_cf_unescape((const char *)data, size, out, sizeof(out)))
        check_text(out, GEO_CITY_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct geo_header_pair pairs[MAX_HEADERS];
    struct geo_header_list list = {pairs, 0};
    struct geo_header_names cfg;
    struct geo_headers first, second;
    char *copy = malloc(size + 1), *line, *next;

    check(copy != NULL);
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (line = copy; line != NULL && list.count < MAX_HEADERS; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (line[0] == '\0')
            continue;
        pairs[list.count].name = names[(uint8_t)line[0] % (sizeof(names) / sizeof(names[0]))];
        pairs[list.count++].value = line + 1;
    }
    geo_header_names_default(&cfg);
    cfg.lat_long = "X-LatLong";
    geo_headers_read(&cfg, geo_header_pairs_get, &list, trusted_even, NULL, &first);
    geo_headers_read(&cfg, geo_header_pairs_get, &list, trusted_even, NULL, &second);
    check_result(&first);
    check(memcmp(&first, &second, sizeof(first)) == 0);
    check_decoders(data, size);
    free(copy);
    return 0;
}
