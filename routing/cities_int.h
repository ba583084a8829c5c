/*
 * cities_int.h — what the parts of the city table (cities.h) share and the
 * rest of pgnear does not see: the table's layout, the qualifiers of a
 * query, and the few functions one part offers the others.
 *
 * The parts, each of which uses only the ones before it:
 *   cities_fold.c    the folding of names (city_fold);
 *   cities_csv.c     the lines of the file, into rows and index entries;
 *   cities_table.c   the load that drives them: the file read into one
 *                    mapping, the index sorted, the references;
 *   cities_lookup.c  a query's name and qualifiers, and its place;
 *   cities_suggest.c the places whose names are near a misspelled one.
 */
#ifndef PGNEAR_ROUTING_CITIES_INT_H
#define PGNEAR_ROUTING_CITIES_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "routing/cities.h"
#include "routing/file_id.h"

/* The columns of the file; the first four are required, in this order. */
enum city_column {
    COL_NAME,
    COL_COUNTRY,
    COL_LAT,
    COL_LON,
    COL_POPULATION,
    COL_ADMIN1,
    COL_ALTERNATES,
    COL_PREFER,
    COL_COUNT
};

struct city_row {
    struct city city; /* first: lookups hand out &row->city */
    bool prefer;
};

/* One name of one place: the index that lookups search. */
struct city_key {
    uint32_t key; /* offset of the folded name in t->keys */
    uint32_t row; /* index into t->rows */
};

/* Offsets of the parts of a table's mapping (see "memory"), in their order. */
struct layout {
    size_t table, path, rows, idx, keys, cidx, ckeys, fold, scratch, end;
};

struct city_table {
    int refcount;      /* one for each holder (atomic): configurations share a table */
    char *base;        /* the mapping that holds the table, this struct included */
    size_t mapped;     /* its bytes */
    struct layout lay; /* where its parts are */
    char *path;        /* the file it was read from */
    struct file_id id; /* and which file that was, when */
    char *text;        /* the file, NUL-terminated; names point into it */
    size_t len;
    char *keys; /* folded names, each NUL-terminated (in file order while loading) */
    size_t keys_used;
    struct city_row *rows; /* in file order */
    size_t n, cap;
    struct city_key *idx; /* sorted by folded name, then rank */
    size_t nidx, idx_cap;
    /*
     * The names of more than one word again, without their spaces, sorted
     * the same way: "SANFRANCISCO" (Akamai's spelling) finds "San
     * Francisco".  NULL when no name has more than one word.
     */
    char *ckeys;
    size_t ckeys_used;
    struct city_key *cidx;
    size_t ncidx;
    int col[COL_COUNT]; /* field number of each column, -1 when absent */
    size_t nfields;
    bool header_seen;
    char why[96]; /* a message made up for the current line */
};

static inline bool isalpha_ascii(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline char upper_ascii(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - ('a' - 'A')) : c;
}

/* Ranks two places of one name: prefer first, then population, then file order. */
static inline int rank_cmp(const struct city_row *x, const struct city_row *y)
{
    if (x->prefer != y->prefer)
        return x->prefer ? -1 : 1;
    if (x->city.population != y->city.population)
        return x->city.population > y->city.population ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* cities_fold.c: city_fold() of the first len bytes of in; the folded length in *outlen. */
bool cities_fold_n(const char *in, size_t len, char *out, size_t cap, size_t *outlen);

/* cities_csv.c: "path:line: why" (line 0: "path: why") into err, when err is given. */
void cities_set_err(char *err, size_t errcap, const char *path, size_t line, const char *why);
/* Parses every line of t->text into rows and index entries; false with the error in err. */
bool cities_parse_all(struct city_table *t, const char *path, char *err, size_t errcap);
/* Parses an optional admin1 code: empty, or 1 to 3 ASCII letters and digits, upper-cased. */
bool cities_parse_admin1(const char *s, char out[4]);

/* cities_lookup.c: the qualifiers a query may end with. */
struct admin_name;

/* What the text after a comma may mean: a country, an admin1 code, an admin1 name. */
struct qualifier {
    char cc[3];
    char code[4];
    const struct admin_name *named;
};

/* "name, Q" (three == false) or "name, admin1, CC" (three == true). */
struct qualifiers {
    struct qualifier admin, last;
    bool three;
};

/* One reading of a query: the bytes of the name, and the qualifiers after it. */
struct reading {
    size_t name_len;
    struct qualifiers q;
};

/*
 * Reads query (len bytes) as "name, Q" (commas 1) or "name, admin1, CC"
 * (commas 2); false when it does not read so.
 */
bool cities_read_qualified(const char *query, size_t len, int commas, struct reading *r);
/* Whether c is a place the qualifiers allow. */
bool cities_qualifiers_match(const struct qualifiers *q, const struct city *c);

#endif
