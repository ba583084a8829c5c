/*
 * geo_headers.c — decoding the locality headers of HTTP load balancers and
 * CDNs (see geo_headers.h).
 *
 * Encodings, per sender:
 *  - CloudFront and Vercel percent-encode non-ASCII bytes (RFC 3986).  A
 *    '+' stays a '+': it means a space only in form encoding, which neither
 *    uses (they write a space as %20).
 *  - Cloudflare writes each byte of a non-ASCII UTF-8 sequence as \u00XX.
 *  - Akamai EdgeScape, App Engine, GCP custom headers and pgnear's own
 *    X-City are taken as they are, as UTF-8.
 * Whatever the decoding, the result must be valid UTF-8 without control
 * characters, fit its bound and (for a city) hold a letter: "?" or "-" is
 * a sender's way of saying it does not know.
 */
#include "protocol/geo_headers.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/hex.h"
#include "protocol/utf8.h"

/* A span of a header value: not NUL-terminated. */
struct span {
    const char *p;
    size_t n;
};

/* The headers pgnear reads when the configuration names none; no lat/long header by default. */
void geo_header_names_default(struct geo_header_names *names)
{
    names->region = "X-Region";
    names->city = "X-City";
    names->country = "X-Country";
    names->lat_long = NULL;
}

const char *geo_header_pairs_get(void *arg, const char *name)
{
    const struct geo_header_list *list = arg;

    for (size_t i = 0; i < list->count; i++) {
        if (strcasecmp(list->pairs[i].name, name) == 0)
            return list->pairs[i].value;
    }
    return NULL;
}

/* ---- spans ---- */

/* HTTP's optional white space: space and tab. */
static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* s without the optional white space at either end. */
static struct span span_trim(struct span s)
{
    while (s.n > 0 && is_ows(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n > 0 && is_ows(s.p[s.n - 1]))
        s.n--;
    return s;
}

/* The header's value, trimmed; false when absent, empty or too long. */
static bool get_value(geo_header_get get, void *arg, const char *name, struct span *out)
{
    const char *v;
    size_t n;

    if (name == NULL || (v = get(arg, name)) == NULL)
        return false;
    n = strnlen(v, GEO_VALUE_MAX + 1);
    if (n > GEO_VALUE_MAX)
        return false;
    *out = span_trim((struct span){v, n});
    return out->n > 0;
}

/* Splits s at the first sep: head before, rest after; false if none. */
static bool span_split(struct span s, char sep, struct span *head, struct span *rest)
{
    const char *at = memchr(s.p, sep, s.n);

    if (at == NULL)
        return false;
    *head = (struct span){s.p, (size_t)(at - s.p)};
    *rest = (struct span){at + 1, s.n - (size_t)(at - s.p) - 1};
    return true;
}

/* ---- UTF-8 text ---- */

/* Valid UTF-8 with no C0 or C1 control character and no DEL. */
bool geo_text_valid(const char *s, size_t len)
{
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;

    while (i < len) {
        size_t k = utf8_seq_len(u + i, len - i);

        if (k == 0 || u[i] < 0x20 || u[i] == 0x7F)
            return false;
        /* C1 controls U+0080..U+009F are C2 80..C2 9F */
        if (k == 2 && u[i] == 0xC2 && u[i + 1] <= 0x9F)
            return false;
        i += k;
    }
    return true;
}

/* Two hex digits' value, or -1 when either is not one. */
static int hex_byte(const char *p)
{
    int hi = hex_digit_value((unsigned char)p[0]), lo = hex_digit_value((unsigned char)p[1]);

    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

/* Stores the NUL-terminated result; false unless it is valid text. */
static bool finish_text(char *dst, size_t used)
{
    dst[used] = '\0';
    return geo_text_valid(dst, used);
}

bool geo_percent_decode(const char *src, size_t len, char *dst, size_t cap)
{
    size_t used = 0;

    for (size_t i = 0; i < len; used++) {
        int b = (unsigned char)src[i];

        if (used + 1 >= cap)
            return false;
        if (src[i] == '%') {
            if (len - i < 3 || (b = hex_byte(src + i + 1)) < 0)
                return false;
            i += 3;
        } else {
            i++;
        }
        dst[used] = (char)b;
    }
    return cap > 0 && finish_text(dst, used);
}

/*
 * Cloudflare's escaping of non-ASCII (\u00XX per UTF-8 byte) undone into dst;
 * false when malformed, too long or not valid text.
 */
bool geo_cf_unescape(const char *src, size_t len, char *dst, size_t cap)
{
    size_t used = 0;

    for (size_t i = 0; i < len; used++) {
        int b = (unsigned char)src[i];

        if (used + 1 >= cap)
            return false;
        if (src[i] == '\\') {
            /* \u00XX only: one byte of a UTF-8 sequence each */
            if (len - i < 6 || src[i + 1] != 'u' || src[i + 2] != '0' || src[i + 3] != '0' ||
                (b = hex_byte(src + i + 4)) < 0)
                return false;
            i += 6;
        } else {
            i++;
        }
        dst[used] = (char)b;
    }
    return cap > 0 && finish_text(dst, used);
}

/* A plain value copied as it is; false when it does not fit or is not valid text. */
static bool copy_text(struct span s, char *dst, size_t cap)
{
    if (s.n + 1 > cap)
        return false;
    memcpy(dst, s.p, s.n);
    return finish_text(dst, s.n);
}

/* ---- numbers ---- */

/*
 * Decimal degrees: [+-]digits[.digits], nothing else (no exponent, no
 * "inf", no hex, no spaces inside).  strtod reads only what was checked.
 */
bool geo_parse_degrees(const char *src, size_t len, double min, double max, double *out)
{
    char buf[40];
    size_t i = 0, int_digits = 0, frac_digits = 0;
    char *end;

    if (len == 0 || len >= sizeof(buf))
        return false;
    if (src[0] == '-' || src[0] == '+')
        i++;
    while (i < len && src[i] >= '0' && src[i] <= '9') {
        i++;
        int_digits++;
    }
    if (i < len && src[i] == '.') {
        for (i++; i < len && src[i] >= '0' && src[i] <= '9'; i++)
            frac_digits++;
        if (frac_digits == 0)
            return false;
    }
    if (i != len || int_digits == 0)
        return false;
    memcpy(buf, src, len);
    buf[len] = '\0';
    *out = strtod(buf, &end);
    /* end short of len: a locale whose decimal point is not '.' */
    return end == buf + len && isfinite(*out) && *out >= min && *out <= max;
}

/* Latitude and longitude from two values, each within its range. */
static bool parse_lat_lon(struct span lat, struct span lon, double *la, double *lo)
{
    lat = span_trim(lat);
    lon = span_trim(lon);
    return geo_parse_degrees(lat.p, lat.n, -90.0, 90.0, la) &&
           geo_parse_degrees(lon.p, lon.n, -180.0, 180.0, lo);
}

/* "lat,long" in one value */
static bool parse_lat_comma_lon(struct span v, double *la, double *lo)
{
    struct span lat, lon;

    return span_split(v, ',', &lat, &lon) && parse_lat_lon(lat, lon, la, lo);
}

/* ---- Akamai EdgeScape: "georegion=246,country_code=US,city=SANFRANCISCO,..." ---- */

#define EDGESCAPE "X-Akamai-Edgescape"

/* The first value of key in the list; false if absent or empty. */
static bool edgescape_find(struct span list, const char *key, struct span *val)
{
    size_t klen = strlen(key);
    struct span item, rest;

    while (list.n > 0) {
        if (!span_split(list, ',', &item, &rest)) {
            item = list;
            rest = (struct span){list.p + list.n, 0};
        }
        item = span_trim(item);
        if (item.n > klen && item.p[klen] == '=' && strncasecmp(item.p, key, klen) == 0) {
            *val = span_trim((struct span){item.p + klen + 1, item.n - klen - 1});
            return val->n > 0;
        }
        list = rest;
    }
    return false;
}

/* ---- region ---- */

/* A region name as pgnear's config allows them (valid_region_name): [A-Za-z0-9_-]. */
static bool region_valid(struct span s)
{
    if (s.n > GEO_REGION_MAX)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The region header, when it holds a name the configuration could have (else ignored). */
static void read_region(const struct geo_header_names *names, geo_header_get get, void *arg,
                        struct geo_headers *out)
{
    struct span v;

    if (!get_value(get, arg, names->region, &v) || !region_valid(v))
        return;
    memcpy(out->region, v.p, v.n);
    out->region[v.n] = '\0';
    out->region_header = names->region;
    out->has_region = true;
}

/* ---- coordinates ---- */

static const struct {
    const char *lat, *lon;
} coord_pairs[] = {
    {"cf-iplatitude", "cf-iplongitude"},
    {"CloudFront-Viewer-Latitude", "CloudFront-Viewer-Longitude"},
    {"x-vercel-ip-latitude", "x-vercel-ip-longitude"},
};

/* ll is read only after ok was worked out (it is where ok's parse wrote). */
static bool coords_from(const char *header, bool ok, const double ll[2], struct geo_headers *out)
{
    if (!ok)
        return false;
    out->lat = ll[0];
    out->lon = ll[1];
    out->coords_header = header;
    out->has_coords = true;
    return true;
}

/*
 * Coordinates from the first header that has both halves, in a fixed order: the
 * CDNs' pairs, App Engine's, the configured one, then Akamai's.
 */
static void read_coords(const struct geo_header_names *names, geo_header_get get, void *arg,
                        struct geo_headers *out)
{
    struct span a, b, list;
    double ll[2] = {0, 0};

    for (size_t i = 0; i < sizeof(coord_pairs) / sizeof(coord_pairs[0]); i++) {
        /* a half pair is no evidence */
        if (get_value(get, arg, coord_pairs[i].lat, &a) &&
            get_value(get, arg, coord_pairs[i].lon, &b) &&
            coords_from(coord_pairs[i].lat, parse_lat_lon(a, b, &ll[0], &ll[1]), ll, out))
            return;
    }
    if (get_value(get, arg, "X-Appengine-CityLatLong", &a) &&
        coords_from("X-Appengine-CityLatLong", parse_lat_comma_lon(a, &ll[0], &ll[1]), ll, out))
        return;
    if (get_value(get, arg, names->lat_long, &a) &&
        coords_from(names->lat_long, parse_lat_comma_lon(a, &ll[0], &ll[1]), ll, out))
        return;
    if (get_value(get, arg, EDGESCAPE, &list) && edgescape_find(list, "lat", &a) &&
        edgescape_find(list, "long", &b))
        coords_from(EDGESCAPE, parse_lat_lon(a, b, &ll[0], &ll[1]), ll, out);
}

/* ---- city and country ---- */

enum geo_encoding {
    ENC_PLAIN,   /* UTF-8 as it is */
    ENC_PERCENT, /* RFC 3986 %XX */
    ENC_CF,      /* \u00XX per byte */
};

static const struct {
    const char *city, *country;
    enum geo_encoding enc;
} city_sources[] = {
    {"cf-ipcity", "cf-ipcountry", ENC_CF},
    {"CloudFront-Viewer-City", "CloudFront-Viewer-Country", ENC_PERCENT},
    {"x-vercel-ip-city", "x-vercel-ip-country", ENC_PERCENT},
    {"X-Appengine-City", "X-Appengine-Country", ENC_PLAIN},
};

#define GCP_GEO_LOCATION "X-Client-Geo-Location"

/* "?", "-" or digits alone: the sender does not know the city. */
static bool has_letter(const char *s)
{
    for (; *s; s++) {
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (unsigned char)*s >= 0x80)
            return true;
    }
    return false;
}

/* A city value decoded by its CDN's encoding; it must hold a letter, so "0" or "-" is no city. */
static bool decode_city(struct span v, enum geo_encoding enc, char *dst, size_t cap)
{
    bool ok;

    if (enc == ENC_PERCENT)
        ok = geo_percent_decode(v.p, v.n, dst, cap);
    else if (enc == ENC_CF)
        ok = geo_cf_unescape(v.p, v.n, dst, cap);
    else
        ok = copy_text(v, dst, cap);
    return ok && has_letter(dst);
}

/* A country or region code ("US", "GB", Cloudflare's "T1"): [A-Za-z0-9-]. */
static bool country_valid(struct span s)
{
    if (s.n == 0 || s.n > GEO_COUNTRY_MAX)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    }
    return true;
}

/*
 * Takes a decoded city, with its country when that is valid: a bad country
 * only loses the disambiguation, the city is still evidence.
 */
static bool city_from(const char *city_header, const char *country_header, struct span country,
                      const char *city, struct geo_headers *out)
{
    strcpy(out->city, city);
    out->city_header = city_header;
    out->has_city = true;
    country = span_trim(country);
    if (country_header != NULL && country_valid(country)) {
        memcpy(out->country, country.p, country.n);
        out->country[country.n] = '\0';
        out->country_header = country_header;
    }
    return true;
}

/*
 * A city and its country from a header pair; false when the city is missing or
 * bad, so the next source is tried.
 */
static bool city_pair(const char *city_h, const char *country_h, enum geo_encoding enc,
                      geo_header_get get, void *arg, struct geo_headers *out)
{
    char city[GEO_CITY_MAX + 1];
    struct span v, c = {"", 0};

    if (!get_value(get, arg, city_h, &v) || !decode_city(v, enc, city, sizeof(city)))
        return false;
    if (!get_value(get, arg, country_h, &c))
        country_h = NULL;
    return city_from(city_h, country_h, c, city, out);
}

/* GCP custom header "{client_region},{client_city}": region code, then city. */
static bool city_gcp(geo_header_get get, void *arg, struct geo_headers *out)
{
    char city[GEO_CITY_MAX + 1];
    struct span v, region, rest;

    if (!get_value(get, arg, GCP_GEO_LOCATION, &v) || !span_split(v, ',', &region, &rest) ||
        !decode_city(span_trim(rest), ENC_PLAIN, city, sizeof(city)))
        return false;
    return city_from(GCP_GEO_LOCATION, GCP_GEO_LOCATION, region, city, out);
}

/* Akamai's city and country_code, from the EdgeScape list. */
static bool city_akamai(geo_header_get get, void *arg, struct geo_headers *out)
{
    char city[GEO_CITY_MAX + 1];
    struct span list, v, c = {"", 0};
    const char *country_h = EDGESCAPE;

    if (!get_value(get, arg, EDGESCAPE, &list) || !edgescape_find(list, "city", &v) ||
        !decode_city(v, ENC_PLAIN, city, sizeof(city)))
        return false;
    if (!edgescape_find(list, "country_code", &c))
        country_h = NULL;
    return city_from(EDGESCAPE, country_h, c, city, out);
}

/*
 * The city from the configured headers first, then the known CDNs' in order;
 * the first usable one wins.
 */
static void read_city(const struct geo_header_names *names, geo_header_get get, void *arg,
                      struct geo_headers *out)
{
    if (city_pair(names->city, names->country, ENC_PLAIN, get, arg, out))
        return;
    for (size_t i = 0; i < sizeof(city_sources) / sizeof(city_sources[0]); i++) {
        if (city_pair(city_sources[i].city, city_sources[i].country, city_sources[i].enc, get, arg,
                      out))
            return;
    }
    if (!city_gcp(get, arg, out))
        city_akamai(get, arg, out);
}

/* ---- addresses ---- */

/* A bare IPv4 or IPv6 address, port 0. */
static bool parse_ip(struct span s, struct sockaddr_storage *ss)
{
    char buf[INET6_ADDRSTRLEN];
    struct sockaddr_in *sin = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

    if (s.n == 0 || s.n >= sizeof(buf))
        return false;
    memcpy(buf, s.p, s.n);
    buf[s.n] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (inet_pton(AF_INET, buf, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, buf, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

/* A decimal port (0 to 65535) into ss, whose family is already set. */
static bool parse_port(struct span s, struct sockaddr_storage *ss)
{
    unsigned port = 0;

    if (s.n == 0 || s.n > 5)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        port = port * 10 + (unsigned)(s.p[i] - '0');
    }
    if (port > 65535)
        return false;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    return true;
}

/*
 * The right-most hops of a forwarding chain.  Only the last GEO_HOPS_KEPT
 * can matter: a longer run of trusted proxies is not a real deployment.
 */
#define GEO_HOPS_KEPT 32

struct hops {
    struct sockaddr_storage addr[GEO_HOPS_KEPT];
    size_t total;
};

/* Keeps the last GEO_HOPS_KEPT hops in a ring; total counts them all. */
static void hops_push(struct hops *h, const struct sockaddr_storage *ss)
{
    h->addr[h->total % GEO_HOPS_KEPT] = *ss;
    h->total++;
}

/*
 * The right-most hop that is not one of our proxies.  When every hop is
 * trusted the left-most kept one is the client (as nginx's realip does).
 */
static bool hops_pick(const struct hops *h, geo_trusted_fn trusted, void *targ,
                      struct sockaddr_storage *out)
{
    size_t kept = h->total < GEO_HOPS_KEPT ? h->total : GEO_HOPS_KEPT;
    const struct sockaddr_storage *a = NULL;

    for (size_t i = 0; i < kept; i++) {
        a = &h->addr[(h->total - 1 - i) % GEO_HOPS_KEPT];
        if (trusted == NULL || !trusted(targ, (const struct sockaddr *)a))
            break;
    }
    if (a == NULL)
        return false;
    *out = *a;
    return true;
}

/* Takes ss as the client's address when ok; the header named for SHOW CLIENTS. */
static bool addr_from(const char *header, bool ok, const struct sockaddr_storage *ss,
                      struct geo_headers *out)
{
    if (!ok)
        return false;
    out->addr = *ss;
    out->addr_header = header;
    out->has_addr = true;
    return true;
}

/* "client, proxy1, proxy2": a hop that is not an address spoils it all. */
static bool parse_xff(struct span v, struct hops *h)
{
    struct span item, rest;
    struct sockaddr_storage ss;

    while (v.n > 0) {
        if (!span_split(v, ',', &item, &rest)) {
            item = v;
            rest = (struct span){v.p + v.n, 0};
        }
        item = span_trim(item);
        v = rest;
        if (item.n == 0 || (item.n == 7 && strncasecmp(item.p, "unknown", 7) == 0))
            continue;
        if (!parse_ip(item, &ss))
            return false;
        hops_push(h, &ss);
    }
    return true;
}

/* ---- Forwarded (RFC 7239) ---- */

/* RFC 9110 tchar; unquoted values also take ':' '[' ']' (a port, IPv6). */
static bool is_tchar(char c, bool in_value)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    if (in_value && (c == ':' || c == '[' || c == ']'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

struct fwd_cursor {
    struct span s;
    size_t i;
};

/* Advances over a token (a value's when in_value) and returns its length, 0 when there is none. */
static size_t fwd_token(struct fwd_cursor *c, bool in_value)
{
    size_t start = c->i;

    while (c->i < c->s.n && is_tchar(c->s.p[c->i], in_value))
        c->i++;
    return c->i - start;
}

/* A token or quoted-string value, unescaped into val[cap]; false if malformed. */
static bool fwd_value(struct fwd_cursor *c, char *val, size_t cap, size_t *len)
{
    size_t start = c->i, n = 0;

    if (c->i >= c->s.n || c->s.p[c->i] != '"') {
        n = fwd_token(c, true);
        if (n == 0 || n >= cap)
            return false;
        memcpy(val, c->s.p + start, n);
        *len = n;
        return true;
    }
    for (c->i++; c->i < c->s.n && c->s.p[c->i] != '"'; c->i++) {
        if (c->s.p[c->i] == '\\' && ++c->i >= c->s.n)
            return false;
        if (n + 1 >= cap)
            return false;
        val[n++] = c->s.p[c->i];
    }
    if (c->i >= c->s.n)
        return false;
    c->i++;
    *len = n;
    return true;
}

/* for=: "[v6]", "[v6]:port", v4, "v4:port"; unknown and "_hidden" skipped. */
static bool fwd_node(struct span node, struct hops *h)
{
    struct sockaddr_storage ss;
    struct span addr = node, port = {"", 0};
    const char *colon;
    bool has_port = false;

    if (node.n > 0 && node.p[0] == '_')
        return true;
    if (node.n == 7 && strncasecmp(node.p, "unknown", 7) == 0)
        return true;
    if (node.n > 0 && node.p[0] == '[') {
        const char *close = memchr(node.p, ']', node.n);
        size_t after;

        if (close == NULL)
            return false;
        addr = (struct span){node.p + 1, (size_t)(close - node.p) - 1};
        after = node.n - (size_t)(close - node.p) - 1;
        if (after > 0 && close[1] != ':')
            return false;
        has_port = after > 0;
        if (has_port)
            port = (struct span){close + 2, after - 1};
        if (!parse_ip(addr, &ss) || ss.ss_family != AF_INET6)
            return false;
    } else {
        colon = memchr(node.p, ':', node.n);
        has_port = colon != NULL;
        if (has_port) {
            addr = (struct span){node.p, (size_t)(colon - node.p)};
            port = (struct span){colon + 1, node.n - addr.n - 1};
        }
        if (!parse_ip(addr, &ss) || ss.ss_family != AF_INET)
            return false;
    }
    /* an obfuscated port ("_abc") is dropped; a numeric one kept in ss */
    if (has_port && (port.n == 0 || (port.p[0] != '_' && !parse_port(port, &ss))))
        return false;
    hops_push(h, &ss);
    return true;
}

/* Advances over optional white space. */
static void fwd_skip_ows(struct fwd_cursor *c)
{
    while (c->i < c->s.n && is_ows(c->s.p[c->i]))
        c->i++;
}

/*
 * One forwarded-pair ("name=value"); a for= value goes into node (a second
 * for= in one element is malformed).
 */
static bool fwd_pair(struct fwd_cursor *c, char *node, size_t cap, size_t *node_len)
{
    char val[64];
    size_t name_at = c->i, name_len = fwd_token(c, false), len;

    if (name_len == 0 || c->i >= c->s.n || c->s.p[c->i] != '=')
        return false;
    c->i++;
    if (!fwd_value(c, val, sizeof(val), &len))
        return false;
    if (name_len == 3 && strncasecmp(c->s.p + name_at, "for", 3) == 0) {
        if (*node_len != 0 || len >= cap)
            return false;
        memcpy(node, val, len);
        *node_len = len;
    }
    return true;
}

/* Elements separated by ',', pairs by ';', empty ones allowed. */
static bool parse_forwarded(struct span v, struct hops *h)
{
    struct fwd_cursor c = {v, 0};
    char node[64];
    size_t node_len = 0;

    for (;;) {
        fwd_skip_ows(&c);
        if (c.i < c.s.n && c.s.p[c.i] != ';' && c.s.p[c.i] != ',' &&
            !fwd_pair(&c, node, sizeof(node), &node_len))
            return false;
        fwd_skip_ows(&c);
        if (c.i < c.s.n && c.s.p[c.i] == ';') {
            c.i++;
            continue;
        }
        if (c.i < c.s.n && c.s.p[c.i] != ',')
            return false;
        if (node_len > 0 && !fwd_node((struct span){node, node_len}, h))
            return false;
        node_len = 0;
        if (c.i++ >= c.s.n)
            return true;
    }
}

/* "192.0.2.1:46532" or "2001:db8::1:46532": the port after the last colon. */
static bool parse_viewer_address(struct span v, struct sockaddr_storage *ss)
{
    const char *colon = memrchr(v.p, ':', v.n);
    struct span addr;

    if (colon == NULL)
        return false;
    addr = (struct span){v.p, (size_t)(colon - v.p)};
    return parse_ip(addr, ss) && parse_port((struct span){colon + 1, v.n - addr.n - 1}, ss);
}

/* The client's address from a forwarding chain: the right-most hop that is not a trusted proxy. */
static bool addr_chain(const char *header, bool (*parse)(struct span, struct hops *),
                       geo_header_get get, void *arg, geo_trusted_fn trusted, void *targ,
                       struct geo_headers *out)
{
    struct hops h;
    struct sockaddr_storage ss;
    struct span v;

    h.total = 0;
    if (!get_value(get, arg, header, &v) || !parse(v, &h))
        return false;
    return addr_from(header, hops_pick(&h, trusted, targ, &ss), &ss, out);
}

/* The client's address: X-Forwarded-For, then Forwarded, then the CDNs' single-address headers. */
static void read_addr(geo_header_get get, void *arg, geo_trusted_fn trusted, void *targ,
                      struct geo_headers *out)
{
    struct sockaddr_storage ss;
    struct span v;

    if (addr_chain("X-Forwarded-For", parse_xff, get, arg, trusted, targ, out) ||
        addr_chain("Forwarded", parse_forwarded, get, arg, trusted, targ, out))
        return;
    if (get_value(get, arg, "CloudFront-Viewer-Address", &v) &&
        addr_from("CloudFront-Viewer-Address", parse_viewer_address(v, &ss), &ss, out))
        return;
    if (get_value(get, arg, "cf-connecting-ip", &v))
        addr_from("cf-connecting-ip", parse_ip(v, &ss), &ss, out);
}

void geo_headers_read(const struct geo_header_names *names, geo_header_get get, void *get_arg,
                      geo_trusted_fn trusted, void *trusted_arg, struct geo_headers *out)
{
    memset(out, 0, sizeof(*out));
    read_region(names, get, get_arg, out);
    read_coords(names, get, get_arg, out);
    read_city(names, get, get_arg, out);
    read_addr(get, get_arg, trusted, trusted_arg, out);
}
