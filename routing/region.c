/*
 * region.c — region definitions (region.h): location and host lists, the
 * set of regions, and which of a region's hosts is its primary.
 */
#include "routing/region.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A finite number at s, *end past it; false for none, an overflow, inf or nan. */
static bool parse_double(const char *s, char **end, double *out)
{
    errno = 0;
    double v = strtod(s, end);
    if (*end == s || errno != 0 || !isfinite(v))
        return false;
    *out = v;
    return true;
}

double region_km(double dot)
{
    if (dot < -1.5)
        return -1;
    /* Through the chord: precise near 0, where the arccosine of the dot product is not. */
    double chord = sqrt(fmax(0.0, 2.0 - 2.0 * dot));
    return 2.0 * REGION_EARTH_RADIUS_KM * asin(fmin(1.0, chord / 2.0));
}

void region_unit_vector(double lat, double lon, double v[3])
{
    double rad = M_PI / 180.0;
    v[0] = cos(lat * rad) * cos(lon * rad);
    v[1] = cos(lat * rad) * sin(lon * rad);
    v[2] = sin(lat * rad);
}

void region_set_location(struct region *r, double lat, double lon)
{
    r->has_location = true;
    r->lat = lat;
    r->lon = lon;
    region_unit_vector(lat, lon, r->unit);
}

bool region_parse_location(const char *text, double *lat, double *lon)
{
    char *end;
    if (!parse_double(text, &end, lat))
        return false;
    while (isspace((unsigned char)*end))
        end++;
    if (*end != ',')
        return false;
    if (!parse_double(end + 1, &end, lon))
        return false;
    while (isspace((unsigned char)*end))
        end++;
    return *end == '\0' && *lat >= -90 && *lat <= 90 && *lon >= -180 && *lon <= 180;
}

/* Splits "host:port" or "[v6]:port"; host and port point into the copy in buf. */
static bool split_host_port(char *buf, char **host, char **port)
{
    if (buf[0] == '[') {
        char *close = strchr(buf, ']');
        if (close == NULL || close[1] != ':')
            return false;
        *close = '\0';
        *host = buf + 1;
        *port = close + 2;
        return true;
    }
    char *colon = strrchr(buf, ':');
    if (colon == NULL || strchr(buf, ':') != colon)
        return false;
    *colon = '\0';
    *host = buf;
    *port = colon + 1;
    return true;
}

/* host (a name or an address literal, never split) and port, resolved now into out. */
static bool host_addr_lookup(const char *host, int port, struct host_addr *out, char *err,
                             size_t errcap)
{
    size_t host_len = strlen(host);
    if (host_len >= sizeof(out->host)) {
        snprintf(err, errcap, "host name \"%.40s...\" is too long", host);
        return false;
    }
    char service[16];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, errcap, "could not resolve host \"%s\": %s", host, gai_strerror(rc));
        return false;
    }
    memcpy(out->host, host, host_len + 1);
    out->port = port;
    memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
    out->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return true;
}

/* host at port resolved by lookup with arg, or by the system's resolver when lookup is NULL. */
static bool host_addr_lookup_by(host_lookup_fn lookup, void *arg, const char *host, int port,
                                struct host_addr *out, char *err, size_t errcap)
{
    return lookup != NULL ? lookup(arg, host, port, out, err, errcap)
                          : host_addr_lookup(host, port, out, err, errcap);
}

/* Splits spec ("host:port" or "[v6]:port") into out's host and port, resolving nothing. */
static bool host_addr_split(const char *spec, struct host_addr *out, char *err, size_t errcap)
{
    char buf[sizeof(out->host) + 8], *host, *port, *end;
    if (strlen(spec) >= sizeof(buf)) {
        snprintf(err, errcap, "host \"%.40s...\" is too long", spec);
        return false;
    }
    strcpy(buf, spec);
    long p;
    if (!split_host_port(buf, &host, &port) || host[0] == '\0' ||
        (p = strtol(port, &end, 10)) <= 0 || p > 65535 || *end != '\0' ||
        strlen(host) >= sizeof(out->host)) {
        snprintf(err, errcap, "invalid host \"%s\": expected host:port", spec);
        return false;
    }
    memset(out, 0, sizeof(*out));
    strcpy(out->host, host);
    out->port = (int)p;
    return true;
}

bool host_addr_resolve(const char *spec, struct host_addr *out, char *err, size_t errcap)
{
    struct host_addr split;
    if (!host_addr_split(spec, &split, err, errcap))
        return false;
    return host_addr_lookup(split.host, split.port, out, err, errcap);
}

/* A DNS name as RFC 1123 spells one: dot-separated labels of letters, digits and inner hyphens. */
static bool host_is_dns_name(const char *s)
{
    size_t len = strlen(s), label = 0;
    if (len == 0 || len > 253 || (len == 253 && s[len - 1] != '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum(c) || (c == '-' && label > 0)) {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return label == 0 ? len > 1 : s[len - 1] != '-';
}

bool host_is_address_or_name(const char *s)
{
    struct in6_addr a6;
    struct in_addr a4;
    return inet_pton(AF_INET, s, &a4) == 1 || inet_pton(AF_INET6, s, &a6) == 1 ||
           host_is_dns_name(s);
}

bool host_addr_resolve_at(const char *host, int port, host_lookup_fn lookup, void *arg,
                          struct host_addr *out, char *err, size_t errcap)
{
    if (port <= 0 || port > 65535) {
        snprintf(err, errcap, "port %d is not one", port);
        return false;
    }
    if (!host_is_address_or_name(host)) {
        snprintf(err, errcap, "\"%.80s\" is neither an IP address nor a DNS name", host);
        return false;
    }
    return host_addr_lookup_by(lookup, arg, host, port, out, err, errcap);
}

const char *region_add_addr(struct region *r, const struct host_addr *ep, char *err, size_t errcap)
{
    if (r->nhosts >= REGION_MAX_HOSTS) {
        snprintf(err, errcap, "too many hosts in region \"%s\"", r->name);
        return err;
    }
    struct region_host *h = &r->hosts[r->nhosts];
    h->name = strdup(ep->host);
    if (h->name == NULL) {
        snprintf(err, errcap, "out of memory");
        return err;
    }
    h->port = ep->port;
    memcpy(&h->addr, &ep->addr, ep->addrlen); /* addrlen 0: not resolved yet */
    h->addrlen = ep->addrlen;
    h->region = r;
    r->nhosts++;
    return NULL;
}

/*
 * One "host:port" of a region's hosts list, resolved now or (resolve
 * false) left for region_resolve_hosts; NULL, or err (returned) saying why.
 */
static const char *region_add_host(struct region *r, const char *spec, bool resolve, char *err,
                                   size_t errcap)
{
    struct host_addr ep;
    char why[384];
    if (r->nhosts >= REGION_MAX_HOSTS) {
        snprintf(err, errcap, "too many hosts in region \"%s\"", r->name);
        return err;
    }
    if (!(resolve ? host_addr_resolve(spec, &ep, why, sizeof(why))
                  : host_addr_split(spec, &ep, why, sizeof(why)))) {
        snprintf(err, errcap, "region \"%s\": %s", r->name, why);
        return err;
    }
    return region_add_addr(r, &ep, err, errcap);
}

/* region_parse_hosts, each host resolved now or left for region_resolve_hosts. */
static const char *region_parse_hosts_as(struct region *r, const char *text, bool resolve,
                                         char *err, size_t errcap)
{
    char *copy = strdup(text), *save = NULL;
    if (copy == NULL) {
        snprintf(err, errcap, "out of memory");
        return err;
    }
    const char *msg = NULL;
    for (char *tok = strtok_r(copy, ", \t", &save); tok && !msg;
         tok = strtok_r(NULL, ", \t", &save))
        msg = region_add_host(r, tok, resolve, err, errcap);
    free(copy);
    if (msg == NULL && r->nhosts == 0) {
        snprintf(err, errcap, "region \"%s\" has no hosts", r->name);
        msg = err;
    }
    return msg;
}

const char *region_parse_hosts(struct region *r, const char *text, char *err, size_t errcap)
{
    return region_parse_hosts_as(r, text, true, err, errcap);
}

const char *region_parse_hosts_unresolved(struct region *r, const char *text, char *err,
                                          size_t errcap)
{
    return region_parse_hosts_as(r, text, false, err, errcap);
}

const char *region_resolve_hosts(struct region *r, host_lookup_fn lookup, void *arg, char *err,
                                 size_t errcap)
{
    for (size_t i = 0; i < r->nhosts; i++) {
        struct region_host *h = &r->hosts[i];
        struct host_addr ep;
        char why[384];
        if (h->addrlen > 0)
            continue;
        if (!host_addr_lookup_by(lookup, arg, h->name, h->port, &ep, why, sizeof(why))) {
            snprintf(err, errcap, "region \"%s\": %s", r->name, why);
            return err;
        }
        memcpy(&h->addr, &ep.addr, ep.addrlen);
        h->addrlen = ep.addrlen;
    }
    return NULL;
}

/* The region named so, its case ignored, or NULL. */
struct region *region_set_find(const struct region_set *set, const char *name)
{
    for (size_t i = 0; i < set->count; i++)
        if (strcasecmp(set->items[i].name, name) == 0)
            return &set->items[i];
    return NULL;
}

/*
 * A new empty region at the end of set; NULL when out of memory (no region added).
 * The pointer is good until the next add.
 */
struct region *region_set_add(struct region_set *set, const char *name)
{
    struct region *grown = realloc(set->items, (set->count + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    set->items = grown;
    struct region *r = &grown[set->count];
    memset(r, 0, sizeof(*r));
    r->name = strdup(name);
    if (r->name == NULL)
        return NULL;
    set->count++;
    return r;
}

/* Frees the regions, their hosts' names and the array; set is left empty. */
void region_set_free(struct region_set *set)
{
    for (size_t i = 0; i < set->count; i++) {
        for (size_t h = 0; h < set->items[i].nhosts; h++)
            free(set->items[i].hosts[h].name);
        free(set->items[i].name);
    }
    free(set->items);
    set->items = NULL;
    set->count = 0;
}

bool region_is_up(const struct region *r)
{
    for (size_t i = 0; i < r->nhosts; i++)
        if (host_is_up(&r->hosts[i]))
            return true;
    return false;
}

const struct region_host *region_primary(const struct region *r, const struct region_host **standby)
{
    if (standby != NULL)
        *standby = NULL;
    for (size_t i = 0; r != NULL && i < r->nhosts; i++) {
        const struct region_host *h = &r->hosts[i];
        if (!host_is_up(h))
            continue;
        if (!host_is_standby(h))
            return h;
        if (standby != NULL && *standby == NULL)
            *standby = h;
    }
    return NULL;
}

const struct region *region_with_primary(const struct region_set *set, const struct region *except,
                                         uint64_t system_id)
{
    for (size_t i = 0; system_id != 0 && i < set->count; i++) {
        const struct region *other = &set->items[i];
        for (size_t j = 0; other != except && j < other->nhosts; j++) {
            const struct region_host *h = &other->hosts[j];
            if (host_is_up(h) && !host_is_standby(h) && host_system_id(h) == system_id)
                return other;
        }
    }
    return NULL;
}

const struct region *region_followed(const struct region_set *set, const struct region *r)
{
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct region_host *h = &r->hosts[i];
        const struct region *leader = host_is_up(h) && host_is_standby(h)
                                          ? region_with_primary(set, r, host_system_id(h))
                                          : NULL;
        if (leader != NULL)
            return leader;
    }
    return NULL;
}

bool registry_bind(struct registry *reg, struct region_set *set)
{
    for (size_t r = 0; r < set->count; r++) {
        struct region *region = &set->items[r];
        region->runtime = registry_region_entry(reg, region->name);
        if (region->runtime == NULL)
            return false;
        for (size_t i = 0; i < region->nhosts; i++) {
            struct region_host *h = &region->hosts[i];
            h->runtime = registry_host_entry(reg, h->name, h->port, &h->addr, h->addrlen);
            if (h->runtime == NULL)
                return false;
        }
    }
    return true;
}

/* Is r one of the subset's regions? Compared by address, so r must come from the same set. */
bool region_subset_has(const struct region_subset *set, const struct region *r)
{
    for (size_t i = 0; i < set->count; i++)
        if (set->items[i] == r)
            return true;
    return false;
}

/* One name of a list, trimmed, into name: false when it does not fit. */
static bool subset_next_name(const char **p, char *name, size_t cap)
{
    const char *s = *p, *end = strchr(s, ',');
    if (end == NULL)
        end = s + strlen(s);
    *p = *end == ',' ? end + 1 : end;
    while (s < end && isspace((unsigned char)*s))
        s++;
    while (end > s && isspace((unsigned char)end[-1]))
        end--;
    if ((size_t)(end - s) >= cap)
        return false;
    memcpy(name, s, (size_t)(end - s));
    name[end - s] = '\0';
    return true;
}

int region_subset_parse(const struct region_set *set, const char *list, struct region_subset *out,
                        char *why, size_t cap)
{
    char name[128]; /* a region's name is far shorter */
    out->count = 0;
    for (const char *p = list; *p != '\0';) {
        if (!subset_next_name(&p, name, sizeof(name)) || name[0] == '\0') {
            snprintf(why, cap, "an empty or overlong region name in \"%s\"", list);
            return -1;
        }
        struct region *r = region_set_find(set, name);
        if (r == NULL) {
            snprintf(why, cap, "\"%s\" is not a configured region", name);
            return -1;
        }
        if (region_subset_has(out, r)) {
            snprintf(why, cap, "region \"%s\" is named twice", name);
            return -1;
        }
        if (out->count == REGION_SUBSET_MAX) {
            snprintf(why, cap, "more than %d regions", REGION_SUBSET_MAX);
            return -1;
        }
        out->items[out->count++] = r;
    }
    if (out->count == 0) {
        snprintf(why, cap, "no region named");
        return -1;
    }
    return 0;
}

const char *region_subset_format(const struct region_subset *set, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < set->count && len < cap; i++) {
        int n = snprintf(buf + len, cap - len, "%s%s", i > 0 ? ", " : "", set->items[i]->name);
        if (n < 0)
            break;
        len += (size_t)n;
    }
    return buf;
}
