/*
 * geo_headers.h — the locality evidence HTTP load balancers and CDNs put in
 * request headers (Cloudflare, CloudFront, Vercel, App Engine, Google Cloud
 * load balancers' custom headers, Akamai EdgeScape, X-Forwarded-For and
 * Forwarded), decoded into UTF-8, bounded and validated.  Pure functions:
 * the caller hands a lookup over a parsed request's headers.
 *
 * Each decoded item says which header it came from (a string that lives as
 * long as the names config, for logs and SHOW CLIENTS).  A malformed value
 * is ignored as a whole, never half-decoded; the next source is tried.
 *
 * Cities are kept as their sender spells them: Akamai writes upper case
 * without spaces ("SAOPAULO"), App Engine lower case.  The city table lookup
 * that consumes them ignores case and spaces.
 */
#ifndef PGNEAR_PROTOCOL_GEO_HEADERS_H
#define PGNEAR_PROTOCOL_GEO_HEADERS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* Longest decoded strings kept, in bytes (the buffers have one more for NUL). */
#define GEO_REGION_MAX  63
#define GEO_CITY_MAX    127
#define GEO_COUNTRY_MAX 15
/* Longer header values are ignored (a forwarding chain of ~100 hops fits). */
#define GEO_VALUE_MAX 4096

/*
 * Returns the value of the request header name (names compare without
 * case), or NULL when absent.  A header sent more than once must be given
 * as one value, its occurrences joined by ", " in order (RFC 9110 5.3).
 */
typedef const char *(*geo_header_get)(void *arg, const char *name);

/* Says whether a hop's address is one of the operator's own proxies. */
typedef bool (*geo_trusted_fn)(void *arg, const struct sockaddr *addr);

/*
 * The operator-chosen header names.  NULL leaves that source out.  For
 * Google Cloud load balancers, coordinates are a custom header whose value
 * is "{client_city_lat_long}"; it has no fixed name, so none by default.
 */
struct geo_header_names {
    const char *region;   /* default "X-Region" */
    const char *city;     /* default "X-City", plain UTF-8 */
    const char *country;  /* default "X-Country", goes with city */
    const char *lat_long; /* default NULL: "lat,long" as GCP writes it */
};

/* A parsed request's headers as an array, for geo_header_pairs_get. */
struct geo_header_pair {
    const char *name;
    const char *value;
};

struct geo_header_list {
    const struct geo_header_pair *pairs;
    size_t count;
};

struct geo_headers {
    bool has_region;
    char region[GEO_REGION_MAX + 1];
    const char *region_header;

    bool has_coords;
    double lat, lon;           /* decimal degrees, in range */
    const char *coords_header; /* e.g. "cf-iplatitude" (and its pair) */

    bool has_city;
    char city[GEO_CITY_MAX + 1];
    char country[GEO_COUNTRY_MAX + 1]; /* "" when none came with the city */
    const char *city_header;
    const char *country_header; /* NULL when country is "" */

    bool has_addr;
    struct sockaddr_storage addr; /* port 0 where the header had none */
    const char *addr_header;
};

void geo_header_names_default(struct geo_header_names *names);

/* geo_header_get over a struct geo_header_list (arg): the first match. */
const char *geo_header_pairs_get(void *arg, const char *name);

/*
 * Reads every kind of evidence into out (cleared first).  trusted may be
 * NULL: then no hop of X-Forwarded-For or Forwarded is trusted.
 */
void geo_headers_read(const struct geo_header_names *names, geo_header_get get, void *get_arg,
                      geo_trusted_fn trusted, void *trusted_arg, struct geo_headers *out);

/* Exposed for tests and the fuzz target: strict decoders into dst[cap]. */
bool geo_percent_decode(const char *src, size_t len, char *dst, size_t cap);
bool geo_cf_unescape(const char *src, size_t len, char *dst, size_t cap);
bool geo_parse_degrees(const char *src, size_t len, double min, double max, double *out);
bool geo_text_valid(const char *s, size_t len);

#endif /* PGNEAR_PROTOCOL_GEO_HEADERS_H */
