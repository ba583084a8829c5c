/*
 * cities.h — the city table: city names to coordinates, for callers whose
 * load balancer or client names a city (pgnear.city, X-City, TLV 0xE3, ...).
 *
 * The table is a CSV file (conf/cities.csv, from GeoNames): "#" comment
 * lines, a header, then one place a line.  The header starts with
 * "name,country,lat,lon"; the optional columns "population", "admin1",
 * "alternates" (other names of the place, separated by "|") and "prefer"
 * ("1" or empty) may follow in any order.  Names are compared folded (see
 * city_fold).  Several places may share a name: one marked prefer wins, then
 * the one with the largest population, then the first in the file.
 * conf/cities.README.md says how the generated file is made.
 *
 * A loaded table is read-only: lookups from several threads are safe.
 */
#ifndef PGNEAR_ROUTING_CITIES_H
#define PGNEAR_ROUTING_CITIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest name, in bytes, that the table and the lookups accept. */
#define CITY_NAME_MAX 256

/* Most alternate names one line may give. */
#define CITY_ALTERNATES_MAX 16

/* Most suggestions city_table_suggest() returns, whatever max says. */
#define CITY_SUGGEST_MAX 16

struct city {
    const char *name;    /* as written in the file; points into the table */
    char country[3];     /* ISO 3166-1 alpha-2, upper case */
    char admin1[4];      /* state, province or nation ("MA", "ON", "NSW", "ENG"), or "" */
    double lat, lon;     /* degrees */
    uint64_t population; /* 0 when the file gives none */
};

struct city_table;

/*
 * Loads the CSV; on error returns NULL with "file:line: why" in err.  The
 * table comes with one reference, its caller's.
 */
struct city_table *city_table_load(const char *path, char *err, size_t errcap);

/*
 * A table is shared by the configurations loaded from the same file (a
 * reload that finds it unchanged): each holds a reference, taken and
 * dropped from any thread; the last one dropped frees the table.
 */
struct city_table *city_table_ref(struct city_table *t);
void city_table_free(struct city_table *t); /* drops a reference; NULL is fine */

/* Whether t was loaded from path and the file is unchanged since (file_id.h). */
bool city_table_unchanged(const struct city_table *t, const char *path);

/*
 * Whether the file had not changed for a second when t read it: else a
 * change since may not show in its times, and city_table_unchanged() is
 * always false.
 */
bool city_table_settled(const struct city_table *t);

/* Number of places (lines), not counting alternate names. */
size_t city_table_count(const struct city_table *t);

/*
 * "seattle", "Seattle", "SÃO PAULO", "Sao Paulo", "  new   york ": case,
 * accents and punctuation ignored as city_fold() says; a name of a line or
 * one of its alternate names.  A name of one word that is none of those may
 * be one of several words written together ("SAOPAULO", as Akamai writes).  Ambiguous names resolve
 * by the rule above, unless qualified:
 *
 *   "Paris, FR"            a country: ISO 3166 alpha-2, or "UK", "USA";
 *   "Portland, ME"         or a state, province or nation (admin1), by code
 *   "Portland, Maine"      or by name (US, Canada, Australia, Great Britain);
 *                          a two-letter qualifier means either, whichever
 *                          place is the larger ("Salem, IN": India's);
 *   "London, ON, CA"       admin1 and country; the admin1 part is ignored
 *                          for places the table gives no admin1.
 *
 * When nothing of that name matches the qualifiers, the whole text is tried
 * as a name (a few names hold a comma); failing that, NULL: the qualifier is
 * never dropped to answer with a place the caller ruled out.  NULL when
 * unknown.
 */
const struct city *city_table_lookup(const struct city_table *t, const char *query);

/*
 * Up to max (at most CITY_SUGGEST_MAX) known places whose folded names are
 * closest to query, for telling a caller about a misspelled name: edit
 * distance (insertions, deletions, substitutions and transpositions of
 * bytes of the folded names) of at most a third of the name's length and at
 * most 2, closest first, then as an ambiguous name resolves.  Qualifiers
 * restrict the suggestions as in city_table_lookup(), unless that leaves
 * none; "Paris, France" suggests Paris.  Each place appears once.  Returns
 * how many were written to out.
 */
size_t city_table_suggest(const struct city_table *t, const char *query, const struct city **out,
                          size_t max);

/*
 * The folding used for keys, exposed for the [cities] overrides of the
 * config: ASCII lower-cased; Latin letters with diacritics (Latin-1
 * Supplement, Latin Extended-A and -B, Latin Extended Additional) to their
 * base letters, ß to "ss", æ to "ae", ø to "o", þ to "th" and so on;
 * combining marks, "." and apostrophes (' ` ´ ‘ ’ ʻ ʼ) dropped; "-", "_",
 * dashes and all whitespace to one space, trimmed at both ends; the words
 * "saint" and "sainte" to "st" and "ste"; anything else kept as is.  Writes
 * the folded form into out; returns false when cap is short or the input is
 * not UTF-8.
 */
bool city_fold(const char *in, char *out, size_t cap);

#endif
