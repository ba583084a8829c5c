/*
 * cities.c — the city table: conf/cities.csv read into an array of places,
 * in file order, and an index of the folded names and alternate names,
 * sorted by folded name and then by rank (prefer, population, line), which
 * lookups search by binary search.
 *
 * The file is read whole; names are unquoted in place and point into that
 * copy.  Folded keys are written into a second buffer of the file's size (a
 * folded name is never longer than the name as written), then, once the
 * index is sorted, copied in its order into the part that keeps them: the
 * index addresses them by offset.  Suggestions walk the sorted index as if
 * it were a trie (see suggest_state).
 *
 * A table is one anonymous mapping of its own (see "memory" below), freed
 * whole.
 */
#include "routing/cities.h"
#include "routing/file_id.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CITIES_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(CITIES_ASAN)
/* The room parts do not use is poisoned: AddressSanitizer knows no parts of a mapping. */
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(addr, size)   ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

/* Refuse files that cannot be a city table rather than eat memory. */
#define CITIES_FILE_MAX ((size_t)256 << 20)

/* Longest folded qualifier ("northwest territories" and the like). */
#define QUALIFIER_MAX 64

/* Longest folded name that city_table_suggest() compares; longer ones get none. */
#define SUGGEST_NAME_MAX 64

/* Largest edit distance of a suggestion. */
#define SUGGEST_DISTANCE_MAX 2

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

static const char *const column_names[COL_COUNT] = {
    "name", "country", "lat", "lon", "population", "admin1", "alternates", "prefer",
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

/* ---- folding ---- */

/*
 * ASCII replacements of U+00C0..U+024F and U+1E00..U+1EFF; "" keeps the
 * character.  Printed by scripts/gen-cities.js --fold-table, which folds the
 * same way when it orders the CSV.
 */
static const char fold_latin[0x250 - 0xC0][3] = {
    "a", "a",  "a",  "a",  "a",  "a",  "ae", "c",  "e",  "e",  "e",  "e",  "i",  "i", "i",  "i",
    "d", "n",  "o",  "o",  "o",  "o",  "o",  "",   "o",  "u",  "u",  "u",  "u",  "y", "th", "ss",
    "a", "a",  "a",  "a",  "a",  "a",  "ae", "c",  "e",  "e",  "e",  "e",  "i",  "i", "i",  "i",
    "d", "n",  "o",  "o",  "o",  "o",  "o",  "",   "o",  "u",  "u",  "u",  "u",  "y", "th", "y",
    "a", "a",  "a",  "a",  "a",  "a",  "c",  "c",  "c",  "c",  "c",  "c",  "c",  "c", "d",  "d",
    "d", "d",  "e",  "e",  "e",  "e",  "e",  "e",  "e",  "e",  "e",  "e",  "g",  "g", "g",  "g",
    "g", "g",  "g",  "g",  "h",  "h",  "h",  "h",  "i",  "i",  "i",  "i",  "i",  "i", "i",  "i",
    "i", "i",  "ij", "ij", "j",  "j",  "k",  "k",  "k",  "l",  "l",  "l",  "l",  "l", "l",  "l",
    "l", "l",  "l",  "n",  "n",  "n",  "n",  "n",  "n",  "n",  "n",  "n",  "o",  "o", "o",  "o",
    "o", "o",  "oe", "oe", "r",  "r",  "r",  "r",  "r",  "r",  "s",  "s",  "s",  "s", "s",  "s",
    "s", "s",  "t",  "t",  "t",  "t",  "t",  "t",  "u",  "u",  "u",  "u",  "u",  "u", "u",  "u",
    "u", "u",  "u",  "u",  "w",  "w",  "y",  "y",  "y",  "z",  "z",  "z",  "z",  "z", "z",  "s",
    "b", "b",  "",   "",   "",   "",   "",   "",   "",   "d",  "d",  "",   "",   "",  "",   "",
    "",  "f",  "f",  "",   "",   "",   "",   "i",  "",   "",   "l",  "",   "",   "",  "",   "o",
    "o", "o",  "",   "",   "",   "",   "",   "",   "",   "",   "",   "",   "",   "",  "",   "u",
    "u", "",   "",   "",   "",   "",   "",   "",   "",   "",   "",   "",   "",   "",  "",   "",
    "",  "",   "",   "",   "dz", "dz", "dz", "lj", "lj", "lj", "nj", "nj", "nj", "a", "a",  "i",
    "i", "o",  "o",  "u",  "u",  "u",  "u",  "u",  "u",  "u",  "u",  "u",  "u",  "",  "a",  "a",
    "a", "a",  "",   "",   "g",  "g",  "g",  "g",  "k",  "k",  "o",  "o",  "o",  "o", "",   "",
    "j", "dz", "dz", "dz", "g",  "g",  "",   "",   "n",  "n",  "a",  "a",  "",   "",  "",   "",
    "a", "a",  "a",  "a",  "e",  "e",  "e",  "e",  "i",  "i",  "i",  "i",  "o",  "o", "o",  "o",
    "r", "r",  "r",  "r",  "u",  "u",  "u",  "u",  "s",  "s",  "t",  "t",  "",   "",  "h",  "h",
    "",  "",   "",   "",   "",   "",   "a",  "a",  "e",  "e",  "o",  "o",  "o",  "o", "o",  "o",
    "o", "o",  "y",  "y",  "",   "",   "",   "",   "",   "",   "a",  "c",  "c",  "l", "t",  "",
    "",  "",   "",   "b",  "",   "",   "e",  "e",  "",   "",   "",   "",   "",   "",  "",   "",
};

static const char fold_latin_ext[0x100][3] = {
    "a", "a", "b", "b", "b", "b", "b",  "b", "c", "c", "d", "d", "d", "d", "d", "d", "d", "d", "d",
    "d", "e", "e", "e", "e", "e", "e",  "e", "e", "e", "e", "f", "f", "g", "g", "h", "h", "h", "h",
    "h", "h", "h", "h", "h", "h", "i",  "i", "i", "i", "k", "k", "k", "k", "k", "k", "l", "l", "l",
    "l", "l", "l", "l", "l", "m", "m",  "m", "m", "m", "m", "n", "n", "n", "n", "n", "n", "n", "n",
    "o", "o", "o", "o", "o", "o", "o",  "o", "p", "p", "p", "p", "r", "r", "r", "r", "r", "r", "r",
    "r", "s", "s", "s", "s", "s", "s",  "s", "s", "s", "s", "t", "t", "t", "t", "t", "t", "t", "t",
    "u", "u", "u", "u", "u", "u", "u",  "u", "u", "u", "v", "v", "v", "v", "w", "w", "w", "w", "w",
    "w", "w", "w", "w", "w", "x", "x",  "x", "x", "y", "y", "z", "z", "z", "z", "z", "z", "h", "t",
    "w", "y", "",  "s", "",  "",  "ss", "",  "a", "a", "a", "a", "a", "a", "a", "a", "a", "a", "a",
    "a", "a", "a", "a", "a", "a", "a",  "a", "a", "a", "a", "a", "a", "e", "e", "e", "e", "e", "e",
    "e", "e", "e", "e", "e", "e", "e",  "e", "e", "e", "i", "i", "i", "i", "o", "o", "o", "o", "o",
    "o", "o", "o", "o", "o", "o", "o",  "o", "o", "o", "o", "o", "o", "o", "o", "o", "o", "o", "o",
    "u", "u", "u", "u", "u", "u", "u",  "u", "u", "u", "u", "u", "u", "u", "y", "y", "y", "y", "y",
    "y", "y", "y", "",  "",  "",  "",   "",  "",
};

/*
 * Decodes the UTF-8 sequence at s (n > 0 bytes available) into *cp; returns
 * its length, or 0 when it is malformed, overlong, a surrogate or too large.
 */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t c = s[0], min;

    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, min = 0x80, c &= 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, min = 0x800, c &= 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, min = 0x10000, c &= 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

enum fold_kind { FOLD_SPACE, FOLD_DROP, FOLD_TEXT, FOLD_KEEP };

/* True for the apostrophes that fold away: ' ` ´ ʻ ʼ ‘ ’. */
static bool is_apostrophe(uint32_t cp)
{
    return cp == '\'' || cp == '`' || cp == 0xB4 || cp == 0x2BB || cp == 0x2BC || cp == 0x2018 ||
           cp == 0x2019;
}

/* What one code point folds to: a space, nothing, the text *rep, or itself. */
static enum fold_kind fold_char(uint32_t cp, char *ascii, const char **rep)
{
    if (cp == '.' || is_apostrophe(cp))
        return FOLD_DROP;
    if (cp < 0x80) {
        if (cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == '-' || cp == '_')
            return FOLD_SPACE;
        *ascii = (char)(cp >= 'A' && cp <= 'Z' ? cp + ('a' - 'A') : cp);
        ascii[1] = '\0';
        *rep = ascii;
        return FOLD_TEXT;
    }
    if (cp >= 0x300 && cp <= 0x36F) /* combining marks of decomposed input */
        return FOLD_DROP;
    if (cp == 0xA0 || (cp >= 0x2010 && cp <= 0x2015))
        return FOLD_SPACE;
    if (cp >= 0xC0 && cp < 0x250)
        *rep = fold_latin[cp - 0xC0];
    else if (cp >= 0x1E00 && cp < 0x1F00)
        *rep = fold_latin_ext[cp - 0x1E00];
    else
        return FOLD_KEEP;
    return **rep ? FOLD_TEXT : FOLD_KEEP;
}

/* Appends n bytes to out, a space first when one is pending; false when full. */
static bool fold_put(char *out, size_t cap, size_t *used, bool *space, const char *s, size_t n)
{
    size_t need = n + (*space ? 1 : 0);

    if (cap - *used <= need) /* keep room for the NUL */
        return false;
    if (*space)
        out[(*used)++] = ' ';
    *space = false;
    memcpy(out + *used, s, n);
    *used += n;
    return true;
}

/*
 * Rewrites the words "saint" and "sainte" of the folded text s (len bytes,
 * words separated by single spaces) as "st" and "ste", in place; returns the
 * new length.
 */
static size_t fold_saints(char *s, size_t len)
{
    size_t w = 0;

    for (size_t r = 0; r < len;) {
        const char *end = memchr(s + r, ' ', len - r);
        size_t n = end ? (size_t)(end - (s + r)) : len - r;
        const char *word = s + r;
        size_t wn = n;

        if (n == 5 && memcmp(word, "saint", 5) == 0)
            word = "st", wn = 2;
        else if (n == 6 && memcmp(word, "sainte", 6) == 0)
            word = "ste", wn = 3;
        memmove(s + w, word, wn);
        w += wn;
        r += n;
        if (r < len) {
            s[w++] = ' ';
            r++;
        }
    }
    s[w] = '\0';
    return w;
}

/* city_fold() of the first len bytes of in; the folded length in *outlen. */
static bool fold_n(const char *in, size_t len, char *out, size_t cap, size_t *outlen)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t used = 0;
    bool space = false; /* a space is owed before the next character */

    if (!in || !out || cap == 0)
        return false;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = utf8_decode(s + i, len - i, &cp);
        char ascii[2];
        const char *rep = NULL;
        bool ok = true;

        if (n == 0 || cp == 0)
            return false;
        switch (fold_char(cp, ascii, &rep)) {
        case FOLD_SPACE:
            space = used > 0;
            break;
        case FOLD_DROP:
            break;
        case FOLD_TEXT:
            ok = fold_put(out, cap, &used, &space, rep, strlen(rep));
            break;
        case FOLD_KEEP:
            ok = fold_put(out, cap, &used, &space, in + i, n);
            break;
        }
        if (!ok)
            return false;
        i += n;
    }
    out[used] = '\0';
    used = fold_saints(out, used);
    if (outlen)
        *outlen = used;
    return true;
}

bool city_fold(const char *in, char *out, size_t cap)
{
    return in && fold_n(in, strlen(in), out, cap, NULL);
}

/* ---- CSV ---- */

static bool isalpha_ascii(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static char upper_ascii(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - ('a' - 'A')) : c;
}

static void set_err(char *err, size_t errcap, const char *path, size_t line, const char *why)
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
static bool parse_admin1(const char *s, char out[4])
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

    if (!fold_n(name, strlen(name), key, t->len + 1 - t->keys_used, &klen))
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
    if (!parse_admin1(field(t, f, COL_ADMIN1), r->city.admin1))
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
static bool parse_all(struct city_table *t, const char *path, char *err, size_t errcap)
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
            set_err(err, errcap, path, line, why);
            return false;
        }
        p = end + 1;
    }
    if (!t->header_seen || t->n == 0) {
        set_err(err, errcap, path, 0, t->header_seen ? "no cities" : "no header line");
        return false;
    }
    return true;
}

/* The number of bytes c in the first len bytes of s. */
static size_t count_byte(const char *s, size_t len, char c)
{
    size_t n = 0;

    for (const char *p = s; (p = memchr(p, c, len - (size_t)(p - s))) != NULL; p++)
        n++;
    return n;
}

/* 1 + the number of newlines in the first len bytes of s. */
static size_t count_lines(const char *s, size_t len)
{
    return count_byte(s, len, '\n') + 1;
}

/* Ranks two places of one name: prefer first, then population, then file order. */
static int rank_cmp(const struct city_row *x, const struct city_row *y)
{
    if (x->prefer != y->prefer)
        return x->prefer ? -1 : 1;
    if (x->city.population != y->city.population)
        return x->city.population > y->city.population ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* Order of the index: folded name, then rank. */
static int key_cmp(const void *a, const void *b, void *arg)
{
    const struct city_table *t = arg;
    const struct city_key *x = a, *y = b;
    int c = strcmp(t->keys + x->key, t->keys + y->key);

    return c ? c : rank_cmp(&t->rows[x->row], &t->rows[y->row]);
}

/* Order of the compact index: name without spaces, then rank. */
static int ckey_cmp(const void *a, const void *b, void *arg)
{
    const struct city_table *t = arg;
    const struct city_key *x = a, *y = b;
    int c = strcmp(t->ckeys + x->key, t->ckeys + y->key);

    return c ? c : rank_cmp(&t->rows[x->row], &t->rows[y->row]);
}

/* ---- memory ---- */

/*
 * A table lives in one anonymous mapping of its own, freed whole with
 * munmap.  From malloc, blocks of this size would be mapped too, but glibc
 * raises its mmap threshold to the size of a mapped block once one is
 * freed: the next table (a reload's) would come from the heap, where what
 * is freed stays resident between smaller blocks.  Each part is reserved
 * at its largest, what the file's bytes and lines allow; pages never
 * written are never resident.  The mapping, in order: the file's text
 * (read first; the mapping then grows past it), this struct, the path, the
 * rows, the index, the keys, the compact index and keys; then what only
 * loading needs, cut off once it is done: the keys in file order, and room
 * for sorting the index (glibc's qsort_r would malloc that room, 2 MiB).
 */

static size_t page_size(void)
{
    long pg = sysconf(_SC_PAGESIZE);
    return pg > 0 ? (size_t)pg : 4096;
}

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

/* A new mapping of size bytes (base NULL), or base's of old bytes grown; NULL without memory. */
static char *map_grow(char *base, size_t old, size_t size)
{
    void *p = base ? mremap(base, old, size, MREMAP_MAYMOVE)
                   : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

/*
 * Reads fd to its end into the start of a new mapping (*base, of *mapped
 * bytes), NUL-terminated after *len bytes; size is fstat's, so that a
 * regular file is read without growing the mapping.  Returns why not.
 */
static const char *read_file(int fd, off_t size, char **base, size_t *mapped, size_t *len)
{
    size_t cap = 0, n = 0;
    char *b = NULL;

    if (size < 0 || (uint64_t)size >= CITIES_FILE_MAX)
        return size < 0 ? "read error" : "file too large";
    for (;;) {
        if (n + 1 >= cap) { /* room for one more byte, and the NUL */
            size_t bigger = cap ? cap * 2 : round_up((size_t)size + 2, page_size());
            char *grown = cap < CITIES_FILE_MAX ? map_grow(b, cap, bigger) : NULL;
            if (!grown) {
                if (b)
                    munmap(b, cap);
                return cap < CITIES_FILE_MAX ? "out of memory" : "file too large";
            }
            b = grown;
            cap = bigger;
        }
        ssize_t got = read(fd, b + n, cap - 1 - n);
        if (got == 0)
            break;
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            munmap(b, cap);
            return "read error";
        }
        n += (size_t)got;
    }
    b[n] = '\0';
    *base = b;
    *mapped = cap;
    *len = n;
    return NULL;
}

/* Where each part goes, for len bytes of text, cap lines and idx_cap names; false if too large. */
static bool plan_layout(struct layout *l, size_t len, size_t pathlen, size_t cap, size_t idx_cap)
{
    const size_t a = alignof(max_align_t);
    uint64_t total = 4 * ((uint64_t)len + a) + (uint64_t)cap * sizeof(struct city_row) +
                     3 * ((uint64_t)idx_cap * sizeof(struct city_key) + a) + pathlen + 4 * a +
                     sizeof(struct city_table) + page_size();
    size_t at;

    if (total > SIZE_MAX)
        return false;
    at = round_up(len + 1, a);
    l->table = at;
    at = round_up(at + sizeof(struct city_table), a);
    l->path = at;
    at = round_up(at + pathlen + 1, a);
    l->rows = at;
    at = round_up(at + cap * sizeof(struct city_row), a);
    l->idx = at;
    at = round_up(at + idx_cap * sizeof(struct city_key), a);
    l->keys = at;
    at = round_up(at + len + 1, a);
    l->cidx = at;
    at = round_up(at + idx_cap * sizeof(struct city_key), a);
    l->ckeys = at;
    at = round_up(at + len + 1, a);
    l->fold = at;
    at = round_up(at + len + 1, a);
    l->scratch = at;
    l->end = round_up(at + idx_cap * sizeof(struct city_key), page_size());
    return true;
}

/*
 * Grows the mapping that holds the text (len bytes) to the whole table and
 * points the table's parts into it; NULL without memory (the mapping is
 * then gone too).
 */
static struct city_table *lay_out(char *base, size_t mapped, size_t len, const char *path,
                                  const struct file_id *id)
{
    struct layout l;
    size_t cap = count_byte(base, len, '\n') + 1;
    /* each line has a name and at most one alternate more than it has "|" */
    size_t idx_cap = 2 * cap + count_byte(base, len, '|');
    char *grown = len <= UINT32_MAX && plan_layout(&l, len, strlen(path), cap, idx_cap)
                      ? map_grow(base, mapped, l.end)
                      : NULL;

    if (!grown) {
        munmap(base, mapped);
        return NULL;
    }
    struct city_table *t = (struct city_table *)(grown + l.table);
    t->refcount = 1;
    t->base = grown;
    t->mapped = l.end;
    t->lay = l;
    t->path = strcpy(grown + l.path, path);
    t->id = *id;
    t->text = grown;
    t->len = len;
    t->rows = (struct city_row *)(grown + l.rows);
    t->cap = cap;
    t->idx = (struct city_key *)(grown + l.idx);
    t->idx_cap = idx_cap;
    t->keys = grown + l.fold;
    return t;
}

/* Poisons the room from used (a pointer into the mapping) up to offset next of the mapping. */
static void poison_rest(const struct city_table *t, const void *used, size_t next)
{
    const char *from = used;

    ASAN_POISON_MEMORY_REGION(from, (size_t)(t->base + next - from));
}

/* Under AddressSanitizer, the room no part uses: reading past a part's end is caught. */
static void poison_unused(const struct city_table *t)
{
    const struct layout *l = &t->lay;

    poison_rest(t, t->text + t->len + 1, l->table);
    poison_rest(t, t + 1, l->path);
    poison_rest(t, t->path + strlen(t->path) + 1, l->rows);
    poison_rest(t, t->rows + t->n, l->idx);
    poison_rest(t, t->idx + t->nidx, l->keys);
    poison_rest(t, t->keys + t->keys_used, l->cidx);
    poison_rest(t, t->base + l->cidx + t->ncidx * sizeof *t->cidx, l->ckeys);
    poison_rest(t, t->base + l->ckeys + t->ckeys_used, t->mapped);
}

typedef int (*key_order)(const void *, const void *, void *);

/*
 * Sorts the n keys of idx (merge sort, bottom up), with room for n keys in
 * the mapping's scratch part.
 */
static void sort_keys(struct city_table *t, struct city_key *idx, size_t n, key_order cmp)
{
    struct city_key *from = idx, *to = (struct city_key *)(t->base + t->lay.scratch), *swap;

    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = lo + width < n ? lo + width : n,
                   hi = lo + 2 * width < n ? lo + 2 * width : n;
            size_t i = lo, j = mid, k = lo;

            while (i < mid && j < hi)
                to[k++] = cmp(&from[j], &from[i], t) < 0 ? from[j++] : from[i++];
            while (i < mid)
                to[k++] = from[i++];
            while (j < hi)
                to[k++] = from[j++];
        }
        swap = from, from = to, to = swap;
    }
    if (from != idx)
        memcpy(idx, from, n * sizeof *idx);
}

/* The compact index, from the sorted one, into its part of the mapping. */
static void build_compact(struct city_table *t)
{
    struct city_key *cidx = (struct city_key *)(t->base + t->lay.cidx);
    char *ckeys = t->base + t->lay.ckeys;
    size_t used = 0;

    for (size_t i = 0; i < t->nidx; i++) {
        const char *key = t->keys + t->idx[i].key;
        if (strchr(key, ' ') == NULL)
            continue;
        cidx[t->ncidx].key = (uint32_t)used;
        cidx[t->ncidx++].row = t->idx[i].row;
        for (; *key; key++)
            if (*key != ' ')
                ckeys[used++] = *key;
        ckeys[used++] = '\0';
    }
    t->ckeys_used = used;
    if (t->ncidx == 0)
        return;
    t->cidx = cidx;
    t->ckeys = ckeys;
    sort_keys(t, t->cidx, t->ncidx, ckey_cmp);
}

/*
 * Sorts the index, and lays the keys out in its order (suggestions read
 * them all in that order) in the part that keeps them; then cuts off
 * what only loading needed.
 */
static void finish(struct city_table *t)
{
    char *keys = t->base + t->lay.keys;
    size_t used = 0;

    sort_keys(t, t->idx, t->nidx, key_cmp);
    for (size_t i = 0; i < t->nidx; i++) {
        const char *key = t->keys + t->idx[i].key;
        size_t n = strlen(key) + 1;

        memcpy(keys + used, key, n);
        t->idx[i].key = (uint32_t)used;
        used += n;
    }
    t->keys = keys;
    t->keys_used = used;
    build_compact(t);
    size_t end = round_up(t->lay.ckeys + t->ckeys_used, page_size());
    if (end < t->mapped && munmap(t->base + end, t->mapped - end) == 0)
        t->mapped = end;
    poison_unused(t);
}

/* Opens path and reads it into a new mapping, refusing NUL bytes (they would cut lines short). */
static struct city_table *read_table(const char *path, char *err, size_t errcap)
{
    struct file_id id;
    char why[160], *base;
    size_t mapped, len;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || !file_id_of_fd(fd, &id)) {
        snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
        set_err(err, errcap, path, 0, why);
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    const char *failed = read_file(fd, id.size, &base, &mapped, &len);
    close(fd);
    if (failed) {
        set_err(err, errcap, path, 0, failed);
        return NULL;
    }
    const char *nul = memchr(base, '\0', len);
    if (nul) {
        set_err(err, errcap, path, count_lines(base, (size_t)(nul - base)), "NUL byte");
        munmap(base, mapped);
        return NULL;
    }
    struct city_table *t = lay_out(base, mapped, len, path, &id);
    if (!t)
        set_err(err, errcap, path, 0, "out of memory");
    return t;
}

struct city_table *city_table_load(const char *path, char *err, size_t errcap)
{
    if (!path) {
        set_err(err, errcap, "(null)", 0, "no file name");
        return NULL;
    }
    struct city_table *t = read_table(path, err, errcap);
    if (t && !parse_all(t, path, err, errcap)) {
        city_table_free(t);
        return NULL;
    }
    if (t)
        finish(t);
    return t;
}

struct city_table *city_table_ref(struct city_table *t)
{
    __atomic_add_fetch(&t->refcount, 1, __ATOMIC_RELAXED);
    return t;
}

bool city_table_unchanged(const struct city_table *t, const char *path)
{
    return strcmp(t->path, path) == 0 && file_id_unchanged(&t->id, path);
}

bool city_table_settled(const struct city_table *t)
{
    return t->id.settled;
}

void city_table_free(struct city_table *t)
{
    if (!t || __atomic_sub_fetch(&t->refcount, 1, __ATOMIC_ACQ_REL) > 0)
        return;
    char *base = t->base; /* t is in the mapping */
    size_t mapped = t->mapped;
    ASAN_UNPOISON_MEMORY_REGION(base, mapped);
    munmap(base, mapped);
}

size_t city_table_count(const struct city_table *t)
{
    return t ? t->n : 0;
}

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

/* Reads len bytes of s as a qualifier; false when it can mean nothing. */
static bool parse_qualifier(const char *s, size_t len, struct qualifier *q)
{
    char buf[QUALIFIER_MAX];
    size_t n;

    memset(q, 0, sizeof *q);
    if (!fold_n(s, len, buf, sizeof buf, &n) || n == 0)
        return false;
    if (strcmp(buf, "uk") == 0)
        memcpy(q->cc, "GB", 3);
    else if (strcmp(buf, "usa") == 0)
        memcpy(q->cc, "US", 3);
    else if (n == 2 && isalpha_ascii(buf[0]) && isalpha_ascii(buf[1]))
        for (size_t i = 0; i < 3; i++)
            q->cc[i] = upper_ascii(buf[i]);
    if (!parse_admin1(buf, q->code)) /* longer, or not letters and digits */
        q->code[0] = '\0';
    for (size_t i = 0; n > 3 && i < sizeof admin_names / sizeof admin_names[0]; i++)
        if (buf[0] == admin_names[i].name[0] && strcmp(buf, admin_names[i].name) == 0)
            q->named = &admin_names[i];
    return q->cc[0] || q->code[0] || q->named;
}

static bool is_country(const struct qualifier *q, const struct city *c)
{
    return q->cc[0] && strcmp(c->country, q->cc) == 0;
}

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
static bool qualifiers_match(const struct qualifiers *q, const struct city *c)
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
static bool read_qualified(const char *query, size_t len, int commas, struct reading *r)
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

        if (!q || qualifiers_match(q, c))
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

    if (!fold_n(query, len, key, sizeof key, &klen) || klen == 0)
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

        if (read_qualified(query, len, commas, &r) &&
            (c = find_n(t, query, r.name_len, &r.q)) != NULL)
            return c;
    }
    return find_n(t, query, len, NULL);
}

/* ---- suggestions ---- */

/* Rows of the edit distance matrix: one per byte of a name, and row 0. */
#define SUGGEST_ROWS (SUGGEST_NAME_MAX + SUGGEST_DISTANCE_MAX + 2)

struct suggestion {
    const struct city_row *row;
    unsigned dist;
};

/*
 * A search for the places whose names are near one folded name.  The index
 * is walked in order, so that a name shares a prefix with the one before
 * it: the rows of the edit distance matrix for that prefix are kept, and a
 * prefix already too far from the query rules out every name it starts.
 */
struct suggest_state {
    const struct city_table *t;
    const char *query; /* folded, qlen bytes */
    size_t qlen;
    const struct qualifiers *q; /* or NULL */
    struct suggestion best[CITY_SUGGEST_MAX];
    size_t n, max;
    unsigned limit;   /* the largest distance still of use */
    const char *prev; /* the name whose rows dp holds */
    size_t depth;     /* rows 0..depth of dp are prev's first depth bytes */
    size_t dead;      /* prev's first dead bytes are too far from the query; 0: no */
    unsigned char dp[SUGGEST_ROWS][SUGGEST_NAME_MAX + 1];
};

static unsigned min_u(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

/*
 * Computes row i + 1 of the matrix from byte i of key and rows i and i - 1:
 * optimal string alignment (insertions, deletions, substitutions and
 * transpositions of adjacent bytes).  Returns the row's smallest value.
 */
static unsigned dp_row(struct suggest_state *s, const char *key, size_t i)
{
    unsigned char *r = s->dp[i + 1];
    const unsigned char *p = s->dp[i], *pp = i ? s->dp[i - 1] : NULL;
    const char *q = s->query;
    unsigned lowest = r[0] = (unsigned char)(i + 1);

    for (size_t j = 1; j <= s->qlen; j++) {
        unsigned v = min_u(min_u(p[j], r[j - 1]) + 1, p[j - 1] + (key[i] != q[j - 1]));

        if (pp && j > 1 && key[i] == q[j - 2] && key[i - 1] == q[j - 1])
            v = min_u(v, pp[j - 2] + 1u);
        r[j] = (unsigned char)v;
        lowest = min_u(lowest, v);
    }
    return lowest;
}

/* Edit distance of key from the query, or s->limit + 1 when larger than s->limit. */
static unsigned suggest_distance(struct suggest_state *s, const char *key)
{
    size_t common = 0, bound = s->dead > s->depth ? s->dead : s->depth, i;

    if (s->prev)
        while (common < bound && key[common] && key[common] == s->prev[common])
            common++;
    if (s->dead && common >= s->dead)
        return s->limit + 1;
    s->dead = 0;
    common = common < s->depth ? common : s->depth;
    for (i = common; key[i]; i++) {
        if (i + 1 > s->qlen + s->limit || dp_row(s, key, i) > s->limit) {
            s->dead = i + 1;
            break;
        }
    }
    s->prev = key;
    s->depth = s->dead ? s->dead - 1 : i;
    return s->dead ? s->limit + 1 : min_u(s->dp[i][s->qlen], s->limit + 1);
}

/* Order of suggestions: nearest first, then as ambiguous names resolve. */
static int suggestion_cmp(const struct suggestion *x, const struct suggestion *y)
{
    if (x->dist != y->dist)
        return x->dist < y->dist ? -1 : 1;
    return rank_cmp(x->row, y->row);
}

/* Takes row at distance d into s->best if it is among the s->max best so far. */
static void suggest_add(struct suggest_state *s, const struct city_row *row, unsigned d)
{
    struct suggestion cand = {row, d};
    size_t i;

    for (i = 0; i < s->n && s->best[i].row != row; i++)
        ;
    if (i < s->n) { /* seen under another of its names */
        if (d >= s->best[i].dist)
            return;
        memmove(&s->best[i], &s->best[i + 1], (s->n - i - 1) * sizeof cand);
        s->n--;
    }
    if (s->n == s->max && suggestion_cmp(&cand, &s->best[s->n - 1]) >= 0)
        return;
    if (s->n == s->max)
        s->n--;
    for (i = s->n; i > 0 && suggestion_cmp(&cand, &s->best[i - 1]) < 0; i--)
        s->best[i] = s->best[i - 1];
    s->best[i] = cand;
    s->n++;
    if (s->n == s->max)
        s->limit = min_u(s->limit, s->best[s->n - 1].dist);
}

/* Whether entry i of the index exists and its key starts with the n bytes of prefix. */
static bool has_prefix(const struct city_table *t, size_t i, const char *prefix, size_t n)
{
    return i < t->nidx && strncmp(t->keys + t->idx[i].key, prefix, n) == 0;
}

/*
 * Index of the first entry from i on whose key does not start with the n
 * bytes of prefix: those that do come first, as the index is sorted.  Steps
 * of 1, 2, 4, ... then a binary search, since most such runs are short.
 */
static size_t skip_prefix(const struct city_table *t, size_t i, const char *prefix, size_t n)
{
    size_t step = 1, hi;

    while (has_prefix(t, i + step - 1, prefix, n)) {
        i += step;
        step *= 2;
    }
    hi = i + step - 1 < t->nidx ? i + step - 1 : t->nidx;
    while (i < hi) {
        size_t mid = i + (hi - i) / 2;
        if (has_prefix(t, mid, prefix, n))
            i = mid + 1;
        else
            hi = mid;
    }
    return i;
}

/* Runs s over the whole index, skipping the names that start with a prefix too far away. */
static void suggest_scan(struct suggest_state *s)
{
    const struct city_table *t = s->t;

    for (size_t j = 0; j < SUGGEST_NAME_MAX + 1; j++)
        s->dp[0][j] = (unsigned char)j;
    for (size_t i = 0; i < t->nidx;) {
        const struct city_row *row = &t->rows[t->idx[i].row];
        unsigned d = suggest_distance(s, t->keys + t->idx[i].key);

        if (d <= s->limit && (!s->q || qualifiers_match(s->q, &row->city)))
            suggest_add(s, row, d);
        i = s->dead ? skip_prefix(t, i + 1, s->prev, s->dead) : i + 1;
    }
}

/* Suggestions for the first len bytes of query, among the places q allows. */
static size_t suggest_for(const struct city_table *t, const char *query, size_t len,
                          const struct qualifiers *q, const struct city **out, size_t max)
{
    char key[SUGGEST_NAME_MAX + 1];
    struct suggest_state s = {.t = t, .q = q, .max = max, .query = key};

    if (!fold_n(query, len, key, sizeof key, &s.qlen) || s.qlen == 0)
        return 0;
    s.limit = min_u(SUGGEST_DISTANCE_MAX, (unsigned)(s.qlen / 3));
    suggest_scan(&s);
    for (size_t i = 0; i < s.n; i++)
        out[i] = &s.best[i].row->city;
    return s.n;
}

size_t city_table_suggest(const struct city_table *t, const char *query, const struct city **out,
                          size_t max)
{
    struct reading r;
    const char *comma;
    size_t len, n = 0;
    bool qualified = false;

    if (!t || !query || !out || max == 0)
        return 0;
    max = max < CITY_SUGGEST_MAX ? max : CITY_SUGGEST_MAX;
    len = strlen(query);
    for (int commas = 2; commas >= 1 && !qualified; commas--)
        qualified = read_qualified(query, len, commas, &r);
    if (qualified) {
        n = suggest_for(t, query, r.name_len, &r.q, out, max);
        if (n == 0) /* "Paris, DE": the Paris elsewhere beat nothing */
            n = suggest_for(t, query, r.name_len, NULL, out, max);
    }
    if (n == 0)
        n = suggest_for(t, query, len, NULL, out, max);
    comma = memrchr(query, ',', len);
    if (n == 0 && !qualified && comma) /* "Paris, France" */
        n = suggest_for(t, query, (size_t)(comma - query), NULL, out, max);
    return n;
}
