/*
 * cities.h — the city table: city names to coordinates, for callers whose
 * load balancer or client names a city (pgnear.city, X-City, TLV 0xE3, ...).
 *
 * The table is a CSV file (conf/cities.csv, from GeoNames): "#" comment
 * lines, a header "name,country,lat,lon[,population]", then one city a line.
 * Names are compared folded (see city_fold).  Several lines may share a
 * name: the one with the largest population wins, or, without populations
 * or among equals, the first in the file.  conf/cities.README.md says how
 * the generated file orders them.
 *
 * A loaded table is read-only: lookups from several threads are safe.
 */
#ifndef PGNEAR_ROUTING_CITIES_H
#define PGNEAR_ROUTING_CITIES_H

#include <stdbool.h>
#include <stddef.h>

/* Longest name, in bytes, that the table and the lookups accept. */
#define CITY_NAME_MAX 256

struct city {
    const char *name; /* as written in the file; points into the table */
    char country[3];  /* ISO 3166-1 alpha-2, upper case */
    double lat, lon;  /* degrees */
};

struct city_table;

/* Loads the CSV; on error returns NULL with "file:line: why" in err. */
struct city_table *city_table_load(const char *path, char *err, size_t errcap);

void city_table_free(struct city_table *t);

size_t city_table_count(const struct city_table *t);

/*
 * "seattle", "Seattle", "SÃO PAULO", "Sao Paulo", "paris, fr", "Paris,US",
 * "  new   york ": case and accents ignored, whitespace collapsed; a trailing
 * ", CC" (ISO 3166 alpha-2) restricts the country (when no city of that
 * name is in that country, the whole text is tried as a name, since a few
 * names hold a comma).  Ambiguous names resolve by the rule above.  NULL
 * when unknown.
 */
const struct city *city_table_lookup(const struct city_table *t, const char *query);

/*
 * The folding used for keys, exposed for the [cities] overrides of the
 * config: ASCII lower-cased; Latin letters with diacritics (Latin-1
 * Supplement, Latin Extended-A and -B, Latin Extended Additional) to their
 * base letters, ß to "ss", æ to "ae", ø to "o", þ to "th" and so on;
 * combining marks dropped; ’ ‘ ʻ ʼ ´ to "'"; "-", "_", dashes and all
 * whitespace to one space, trimmed at both ends; anything else kept as is.
 * Writes the folded form into out; returns false when cap is short or the
 * input is not UTF-8.
 */
bool city_fold(const char *in, char *out, size_t cap);

#endif
