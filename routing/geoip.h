/*
 * geoip.h — the caller's locality from its address, through one or more
 * GeoIP databases (.mmdb): the MaxMind GeoIP2/GeoLite2 City layout and the
 * flat DB-IP / ip-location-db layout.
 *
 * A set is read-only once open: several threads may look up in it at once.
 */
#ifndef PGNEAR_ROUTING_GEOIP_H
#define PGNEAR_ROUTING_GEOIP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct geoip_set;

/*
 * Opens one or more .mmdb files (comma-separated paths); the layout of each
 * is recognised from its metadata (database_type, and the presence of
 * keys): the MaxMind GeoIP2/GeoLite2 City layout (city.names.en,
 * location.latitude/longitude, country.iso_code) and the flat DB-IP /
 * ip-location-db layout (city, latitude, longitude as floats or doubles,
 * country_code), including sets split into separate IPv4 and IPv6 files.
 * NULL with err on failure.
 */
struct geoip_set *geoip_open(const char *paths, char *err, size_t errcap);

/*
 * A set is shared by the configurations that open the same files, unchanged
 * (a reload): each holds a reference, taken and dropped from any thread;
 * geoip_close drops one, and the last one closes the databases.  The set
 * comes from geoip_open with one reference, its caller's.
 */
struct geoip_set *geoip_ref(struct geoip_set *g);
void geoip_close(struct geoip_set *g);

/*
 * Whether g was opened from paths (the same list) and each file is
 * unchanged since (file_id.h).  Databases are mapped, not read: replace
 * them by renaming a new file over the old, never by rewriting in place.
 */
bool geoip_unchanged(const struct geoip_set *g, const char *paths);

struct geoip_result {
    bool found;        /* some database has an entry for the address */
    bool has_location; /* lat and lon are set */
    double lat, lon;
    char city[128];  /* UTF-8, "" when unknown */
    char country[3]; /* ISO 3166-1 alpha-2, "" when unknown */
    const char *db;  /* file that answered, valid while the set is open */
};

/*
 * Looks the address up in each database in order, first answer with
 * coordinates wins (failing that, the first entry without them);
 * IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are unmapped to IPv4 first;
 * an IPv4 address is looked up in an IPv6-only database the way
 * libmaxminddb does it (through the IPv4 subtree, ::/96), and an IPv6
 * address is skipped for IPv4-only databases (ip_version 4 in the
 * metadata).  Other address families (Unix sockets) are simply not found.
 * Allocates nothing.  Returns 0, or -1 on a database error (with err).
 */
int geoip_lookup(const struct geoip_set *g, const struct sockaddr *addr, struct geoip_result *out,
                 char *err, size_t errcap);

/* Describes the databases for logs and --check: count, layouts, build epochs. */
void geoip_describe(const struct geoip_set *g, char *out, size_t cap);

#endif
