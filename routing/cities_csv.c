/*
 * cities_csv.c — the lines of conf/cities.csv (the format cities.h
 * describes): RFC 4180 fields unquoted in place, the header's columns, and
 * each city line checked into a row of the table, with its name and
 * alternate names folded into the index (not yet sorted: cities_table.c
 * sorts it once every line is read).
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "routing/cities.h"
#include "routing/cities_int.h"

static const char *const column_names[COL_COUNT] = {
    "name", "country", "lat", "lon", "population", "admin1", "alternates", "prefer",
};

/* "path:line: why", or "path: why" for the file as a whole (line 0). */
void cities_set_err(char *err, size_t errcap, const char *path, size_t line, const char *why)
{
    if (!err || errcap == 0)
        return;
    if (line)
        snprintf(err, errcap, "%s:%zu: %s", path, line, why);
    else
        snprintf(err, errcap, "%s: %s", path, why);
}

/*
 * Splits the line [p, end) into at most max RFC 4180 fields, unquoting in
 * place and NUL-terminating each (the byte at end is writable).  Returns
 * the number of fields, or 0 with *why set.
 */
static size_t split_fields(char *p, char *end, char **fields, size_t max, const char **why)
{
    size_t n = 0;

    for (;;) {
        char *w = p;

        if (n == max) {
            *why = "too many fields";
            return 0;
        }
        fields[n++] = w;
        if (p < end && *p == '"') {
            for (p++;; p++) {
                if (p == end) {
                    *why = "unterminated quoted field";
                    return 0;
                }
                if (*p == '"' && p + 1 < end && p[1] == '"')
                    *w++ = *p++; /* "" is one quote */
                else if (*p == '"')
                    break;
                else
                    *w++ = *p;
            }
            p++;
            if (p < end && *p != ',') {
                *why = "text after a closing quote";
                return 0;
            }
        } else {
            for (; p < end && *p != ','; p++) {
                if (*p == '"') {
                    *why = "quote inside an unquoted field";
                    return 0;
                }
                *w++ = *p;
            }
        }
        bool more = p < end;
        *w = '\0';
        if (!more)
            return n;
        p++; /* the comma */
    }
}

/* Parses a coordinate in [-limit, limit]: plain decimal notation only. */
static bool parse_coord(const char *s, double limit, double *out)
{
    char *endp;

    if (!*s || strspn(s, "0123456789+-.") != strlen(s))
        return false;
    errno = 0;
    double v = strtod(s, &endp);
    if (errno || *endp || !isfinite(v) || v < -limit || v > limit)
        return false;
    *out = v;
    return true;
}

/* Parses an optional population: empty, or at most 18 decimal digits. */
static bool parse_population(const char *s, uint64_t *out)
{
    size_t n = strlen(s);
    uint64_t v = 0;

    if (n > 18 || strspn(s, "0123456789") != n)
        return false;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    *out = v;
    return true;
}

/* Checks a name: not empty, not too long, no control characters. */
static const char *check_name(const char *name)
{
    size_t n = strlen(name);

    if (n == 0)
        return "empty name";
    if (n >= CITY_NAME_MAX)
        return "name too long";
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)name[i] < 0x20 || name[i] == 0x7F)
            return "control character in the name";
    return NULL;
}

/* Checks the header line: the columns, and where each is. */
static const char *parse_header(struct city_table *t, char **f, size_t nf)
{
    static const char usage[] =
        "expected the header name,country,lat,lon[,population][,admin1][,alternates][,prefer]";

    for (size_t c = 0; c < COL_COUNT; c++)
        t->col[c] = -1;
    if (nf < 4)
        return usage;
    for (size_t i = 0; i < nf; i++) {
        size_t c = 0;

        while (c < COL_COUNT && strcasecmp(f[i], column_names[c]) != 0)
            c++;
        if (c == COL_COUNT || (i < COL_POPULATION) != (c < COL_POPULATION) ||
            (i < COL_POPULATION && c != i))
            return usage;
        if (t->col[c] >= 0)
            return "a column appears twice in the header";
        t->col[c] = (int)i;
    }
    t->nfields = nf;
    t->header_seen = true;
    return NULL;
}

/* The field of column c, or "" when the file has no such column. */
static char *field(const struct city_table *t, char **f, enum city_column c)
{
    static char empty[] = "";

    return t->col[c] >= 0 ? f[t->col[c]] : empty;
}

/* Parses an optional admin1 code: empty, or 1 to 3 ASCII letters and digits. */
bool cities_parse_admin1(const char *s, char out[4])
{
    size_t n = strlen(s);

    if (n > 3)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalpha_ascii(s[i]) && !(s[i] >= '0' && s[i] <= '9'))
            return false;
        out[i] = upper_ascii(s[i]);
    }
    out[n] = '\0';
    return true;
}

/* Parses the prefer column: empty or "0" for no, "1" for yes. */
static bool parse_prefer(const char *s, bool *out)
{
    if (strcmp(s, "") != 0 && strcmp(s, "0") != 0 && strcmp(s, "1") != 0)
        return false;
    *out = s[0] == '1';
    return true;
}

/*
 * Indexes name as a name of row: folds it into t->keys; a name that folds
 * like one this row already has (from index entry first on) is skipped.
 */
static const char *add_key(struct city_table *t, const char *name, size_t row, size_t first)
{
    char *key = t->keys + t->keys_used;
    size_t klen;

    if (!cities_fold_n(name, strlen(name), key, t->len + 1 - t->keys_used, &klen))
        return "name is not valid UTF-8";
    if (klen == 0)
        return "name is blank";
    for (size_t i = first; i < t->nidx; i++)
        if (strcmp(t->keys + t->idx[i].key, key) == 0)
            return NULL;
    if (t->nidx == t->idx_cap) /* cannot happen: idx_cap counts lines and "|" */
        return "too many names";
    t->idx[t->nidx].key = (uint32_t)t->keys_used;
    t->idx[t->nidx].row = (uint32_t)row;
    t->nidx++;
    t->keys_used += klen + 1;
    return NULL;
}

/* Indexes the "|"-separated alternate names of s (cut in place) for row. */
static const char *add_alternates(struct city_table *t, char *s, size_t row, size_t first)
{
    size_t n = 0;

    if (!*s)
        return NULL;
    for (char *p = s;; n++) {
        char *bar = strchr(p, '|');
        const char *why;

        if (bar)
            *bar = '\0';
        if (n == CITY_ALTERNATES_MAX)
            return "too many alternate names";
        why = check_name(p);
        if (!why)
            why = add_key(t, p, row, first);
        if (why) {
            snprintf(t->why, sizeof t->why, "alternate name %zu: %s", n + 1, why);
            return t->why;
        }
        if (!bar)
            return NULL;
        p = bar + 1;
    }
}

/* Fills in the numbers and codes of r from the fields of a city line. */
static const char *parse_fields(struct city_table *t, char **f, struct city_row *r)
{
    const char *cc = f[COL_COUNTRY];

    if (strlen(cc) != 2 || !isalpha_ascii(cc[0]) || !isalpha_ascii(cc[1]))
        return "country is not an ISO 3166 alpha-2 code";
    r->city.country[0] = upper_ascii(cc[0]);
    r->city.country[1] = upper_ascii(cc[1]);
    r->city.country[2] = '\0';
    if (!parse_coord(f[COL_LAT], 90, &r->city.lat))
        return "latitude is not a number in [-90, 90]";
    if (!parse_coord(f[COL_LON], 180, &r->city.lon))
        return "longitude is not a number in [-180, 180]";
    if (!parse_population(field(t, f, COL_POPULATION), &r->city.population))
        return "population is not a whole number";
    if (!cities_parse_admin1(field(t, f, COL_ADMIN1), r->city.admin1))
        return "admin1 is not a code of 1 to 3 letters and digits";
    if (!parse_prefer(field(t, f, COL_PREFER), &r->prefer))
        return "prefer is not empty, 0 or 1";
    return NULL;
}

/* Adds the city line of fields f as the next row, with its names indexed. */
static const char *parse_city(struct city_table *t, char **f, size_t nf)
{
    struct city_row *r = &t->rows[t->n];
    size_t first = t->nidx;
    const char *why;

    if (nf != t->nfields) {
        snprintf(t->why, sizeof t->why, "expected %zu fields", t->nfields);
        return t->why;
    }
    why = check_name(f[COL_NAME]);
    if (!why)
        why = add_key(t, f[COL_NAME], t->n, first);
    if (!why)
        why = parse_fields(t, f, r);
    if (!why)
        why = add_alternates(t, field(t, f, COL_ALTERNATES), t->n, first);
    if (why)
        return why;
    r->city.name = f[COL_NAME];
    t->n++;
    return NULL;
}

/* True for a line of nothing but spaces and tabs. */
static bool is_blank(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t')
            return false;
    return true;
}

/* Handles line number line, [p, end): a comment, a blank, the header or a city. */
static const char *parse_line(struct city_table *t, char *p, char *end)
{
    char *f[COL_COUNT];
    const char *why = NULL;

    if (end > p && end[-1] == '\r')
        end--;
    if ((p < end && *p == '#') || is_blank(p, end))
        return NULL;
    size_t nf = split_fields(p, end, f, COL_COUNT, &why);
    if (nf == 0)
        return why;
    if (!t->header_seen)
        return parse_header(t, f, nf);
    if (t->n == t->cap) /* cannot happen: cap counts the lines */
        return "too many lines";
    return parse_city(t, f, nf);
}

/* Parses every line of t->text; false with the error in err. */
bool cities_parse_all(struct city_table *t, const char *path, char *err, size_t errcap)
{
    char *p = t->text, *stop = t->text + t->len;
    size_t line = 1;

    if (t->len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) /* a UTF-8 byte order mark */
        p += 3;
    for (; p <= stop; line++) {
        char *nl = memchr(p, '\n', (size_t)(stop - p));
        char *end = nl ? nl : stop;
        const char *why = parse_line(t, p, end);

        if (why) {
            cities_set_err(err, errcap, path, line, why);
            return false;
        }
        p = end + 1;
    }
    if (!t->header_seen || t->n == 0) {
        cities_set_err(err, errcap, path, 0, t->header_seen ? "no cities" : "no header line");
        return false;
    }
    return true;
}
