/*
 * cities_lookup.c — a query of the city table (city_table_lookup,
 * cities.h): its name and the qualifiers after its commas (a country, a
 * state, province or nation by code or by name), and the best-ranked
 * place of that name that the qualifiers allow, searched in the sorted
 * index and then among the names of several words written together.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "routing/cities.h"
#include "routing/cities_int.h"

/* Longest folded qualifier ("northwest territories" and the like). */
#define QUALIFIER_MAX 64

/* ---- qualifiers ---- */

/* A state, province or nation that a qualifier may name, folded. */
struct admin_name {
    char cc[3];
    char code[4];
    const char *name;
};

static const struct admin_name admin_names[] = {
    {"US", "AL", "alabama"},
    {"US", "AK", "alaska"},
    {"US", "AZ", "arizona"},
    {"US", "AR", "arkansas"},
    {"US", "CA", "california"},
    {"US", "CO", "colorado"},
    {"US", "CT", "connecticut"},
    {"US", "DE", "delaware"},
    {"US", "DC", "district of columbia"},
    {"US", "FL", "florida"},
    {"US", "GA", "georgia"},
    {"US", "HI", "hawaii"},
    {"US", "ID", "idaho"},
    {"US", "IL", "illinois"},
    {"US", "IN", "indiana"},
    {"US", "IA", "iowa"},
    {"US", "KS", "kansas"},
    {"US", "KY", "kentucky"},
    {"US", "LA", "louisiana"},
    {"US", "ME", "maine"},
    {"US", "MD", "maryland"},
    {"US", "MA", "massachusetts"},
    {"US", "MI", "michigan"},
    {"US", "MN", "minnesota"},
    {"US", "MS", "mississippi"},
    {"US", "MO", "missouri"},
    {"US", "MT", "montana"},
    {"US", "NE", "nebraska"},
    {"US", "NV", "nevada"},
    {"US", "NH", "new hampshire"},
    {"US", "NJ", "new jersey"},
    {"US", "NM", "new mexico"},
    {"US", "NY", "new york"},
    {"US", "NC", "north carolina"},
    {"US", "ND", "north dakota"},
    {"US", "OH", "ohio"},
    {"US", "OK", "oklahoma"},
    {"US", "OR", "oregon"},
    {"US", "PA", "pennsylvania"},
    {"US", "RI", "rhode island"},
    {"US", "SC", "south carolina"},
    {"US", "SD", "south dakota"},
    {"US", "TN", "tennessee"},
    {"US", "TX", "texas"},
    {"US", "UT", "utah"},
    {"US", "VT", "vermont"},
    {"US", "VA", "virginia"},
    {"US", "WA", "washington"},
    {"US", "WV", "west virginia"},
    {"US", "WI", "wisconsin"},
    {"US", "WY", "wyoming"},
    {"CA", "AB", "alberta"},
    {"CA", "BC", "british columbia"},
    {"CA", "MB", "manitoba"},
    {"CA", "NB", "new brunswick"},
    {"CA", "NL", "newfoundland and labrador"},
    {"CA", "NL", "newfoundland"},
    {"CA", "NS", "nova scotia"},
    {"CA", "NT", "northwest territories"},
    {"CA", "NU", "nunavut"},
    {"CA", "ON", "ontario"},
    {"CA", "PE", "prince edward island"},
    {"CA", "QC", "quebec"},
    {"CA", "SK", "saskatchewan"},
    {"CA", "YT", "yukon"},
    {"AU", "ACT", "australian capital territory"},
    {"AU", "NSW", "new south wales"},
    {"AU", "NT", "northern territory"},
    {"AU", "QLD", "queensland"},
    {"AU", "SA", "south australia"},
    {"AU", "TAS", "tasmania"},
    {"AU", "VIC", "victoria"},
    {"AU", "WA", "western australia"},
    {"GB", "ENG", "england"},
    {"GB", "NIR", "northern ireland"},
    {"GB", "SCT", "scotland"},
    {"GB", "WLS", "wales"},
};

/* Reads len bytes of s as a qualifier; false when it can mean nothing. */
static bool parse_qualifier(const char *s, size_t len, struct qualifier *q)
{
    char buf[QUALIFIER_MAX];
    size_t n;

    memset(q, 0, sizeof *q);
    if (!cities_fold_n(s, len, buf, sizeof buf, &n) || n == 0)
        return false;
    if (strcmp(buf, "uk") == 0)
        memcpy(q->cc, "GB", 3);
    else if (strcmp(buf, "usa") == 0)
        memcpy(q->cc, "US", 3);
    else if (n == 2 && isalpha_ascii(buf[0]) && isalpha_ascii(buf[1]))
        for (size_t i = 0; i < 3; i++)
            q->cc[i] = upper_ascii(buf[i]);
    if (!cities_parse_admin1(buf, q->code)) /* longer, or not letters and digits */
        q->code[0] = '\0';
    for (size_t i = 0; n > 3 && i < sizeof admin_names / sizeof admin_names[0]; i++)
        if (buf[0] == admin_names[i].name[0] && strcmp(buf, admin_names[i].name) == 0)
            q->named = &admin_names[i];
    return q->cc[0] || q->code[0] || q->named;
}

/* Does the qualifier name c's country (by code, "uk" and "usa" included)? */
static bool is_country(const struct qualifier *q, const struct city *c)
{
    return q->cc[0] && strcmp(c->country, q->cc) == 0;
}

/* Does the qualifier name c's state or province, by code or by its name? */
static bool is_admin1(const struct qualifier *q, const struct city *c)
{
    if (!c->admin1[0])
        return false;
    if (q->code[0] && strcmp(c->admin1, q->code) == 0)
        return true;
    return q->named && strcmp(c->country, q->named->cc) == 0 &&
           strcmp(c->admin1, q->named->code) == 0;
}

/* Whether c is a place the qualifiers allow. */
bool cities_qualifiers_match(const struct qualifiers *q, const struct city *c)
{
    if (!q->three)
        return is_country(&q->last, c) || is_admin1(&q->last, c);
    /* a place without admin1 cannot be ruled out by one */
    return is_country(&q->last, c) && (!c->admin1[0] || is_admin1(&q->admin, c));
}

/*
 * Reads query (len bytes) as "name, Q" (commas 1) or "name, admin1, CC"
 * (commas 2); false when it does not read so: too few commas, or a last
 * part that is no qualifier (for commas 2, no country).
 */
bool cities_read_qualified(const char *query, size_t len, int commas, struct reading *r)
{
    const char *last = memrchr(query, ',', len);
    const char *mid = last ? memrchr(query, ',', (size_t)(last - query)) : NULL;

    if (!last || (commas == 2 && !mid))
        return false;
    r->name_len = (size_t)(last - query);
    r->q.three = commas == 2;
    if (!parse_qualifier(last + 1, len - r->name_len - 1, &r->q.last))
        return false;
    if (commas == 1)
        return true;
    if (!r->q.last.cc[0])
        return false;
    parse_qualifier(mid + 1, r->name_len - (size_t)(mid - query) - 1, &r->q.admin);
    r->name_len = (size_t)(mid - query);
    return true;
}

/* ---- lookup ---- */

/* Index of the first of n entries of idx whose key (in keys) is not below key. */
static size_t lower_bound(const struct city_key *idx, size_t n, const char *keys, const char *key)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(keys + idx[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The best-ranked place of one index named key that the qualifiers (if any) allow. */
static const struct city *find_in(const struct city_table *t, const struct city_key *idx, size_t n,
                                  const char *keys, const char *key, const struct qualifiers *q)
{
    for (size_t i = lower_bound(idx, n, keys, key); i < n && strcmp(keys + idx[i].key, key) == 0;
         i++) {
        const struct city *c = &t->rows[idx[i].row].city;

        if (!q || cities_qualifiers_match(q, c))
            return c;
    }
    return NULL;
}

/* By name; a name of one word may also be one of several written together. */
static const struct city *find(const struct city_table *t, const char *key,
                               const struct qualifiers *q)
{
    const struct city *c = find_in(t, t->idx, t->nidx, t->keys, key, q);

    if (c == NULL && t->cidx != NULL && strchr(key, ' ') == NULL)
        c = find_in(t, t->cidx, t->ncidx, t->ckeys, key, q);
    return c;
}

/* find() of the first len bytes of query, folded. */
static const struct city *find_n(const struct city_table *t, const char *query, size_t len,
                                 const struct qualifiers *q)
{
    char key[CITY_NAME_MAX];
    size_t klen;

    if (!cities_fold_n(query, len, key, sizeof key, &klen) || klen == 0)
        return NULL;
    return find(t, key, q);
}

const struct city *city_table_lookup(const struct city_table *t, const char *query)
{
    size_t len;

    if (!t || !query)
        return NULL;
    len = strlen(query);
    for (int commas = 2; commas >= 1; commas--) {
        struct reading r;
        const struct city *c;

        if (cities_read_qualified(query, len, commas, &r) &&
            (c = find_n(t, query, r.name_len, &r.q)) != NULL)
            return c;
    }
    return find_n(t, query, len, NULL);
}
