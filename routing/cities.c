/*
 * cities.c — the city table: conf/cities.csv read into one array sorted by
 * folded name (then population, then line), searched by binary search.
 *
 * The file is read whole; names are unquoted in place and point into that
 * copy; folded keys live in a second buffer of the same size (a folded
 * name is never longer than the name as written).
 */
#include "routing/cities.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Refuse files that cannot be a city table rather than eat memory. */
#define CITIES_FILE_MAX ((size_t)256 << 20)

/* Fields of a line: name, country, lat, lon and an optional population. */
#define CITY_FIELDS_MAX 5

struct city_entry {
    struct city city; /* first: lookups hand out &entry->city */
    const char *key;  /* folded name, in t->keys */
    uint64_t population;
    size_t line;
};

struct city_table {
    char *text; /* the file, NUL-terminated; names point into it */
    size_t len;
    char *keys; /* folded names, each NUL-terminated */
    size_t keys_used;
    struct city_entry *v;
    size_t n, cap;
    bool header_seen;
    bool has_population;
};

/* ---- folding ---- */

/*
 * ASCII replacements of U+00C0..U+024F and U+1E00..U+1EFF; "" keeps the
 * character.  Printed by scripts/gen-cities.pl --fold-table, which folds the
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

/* What one code point folds to: a space, nothing, the text *rep, or itself. */
static enum fold_kind fold_char(uint32_t cp, char *ascii, const char **rep)
{
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
    if (cp == 0xB4 || cp == 0x2BB || cp == 0x2BC || cp == 0x2018 || cp == 0x2019) {
        *rep = "'";
        return FOLD_TEXT;
    }
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

/* city_fold() of the first len bytes of in. */
static bool fold_n(const char *in, size_t len, char *out, size_t cap)
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
    return true;
}

bool city_fold(const char *in, char *out, size_t cap)
{
    return in && fold_n(in, strlen(in), out, cap);
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

/* Checks the header line and notes whether populations follow. */
static const char *parse_header(struct city_table *t, char **f, size_t nf)
{
    static const char *const names[CITY_FIELDS_MAX] = {"name", "country", "lat", "lon",
                                                       "population"};

    if (nf < 4)
        return "expected the header name,country,lat,lon[,population]";
    for (size_t i = 0; i < nf; i++)
        if (strcasecmp(f[i], names[i]) != 0)
            return "expected the header name,country,lat,lon[,population]";
    t->header_seen = true;
    t->has_population = nf == 5;
    return NULL;
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

/* Fills in e from the fields of a city line; returns why it cannot. */
static const char *parse_city(struct city_table *t, char **f, size_t nf, struct city_entry *e)
{
    char *key = t->keys + t->keys_used;

    if (nf != (t->has_population ? 5u : 4u))
        return t->has_population ? "expected 5 fields" : "expected 4 fields";
    const char *why = check_name(f[0]);
    if (why)
        return why;
    if (!fold_n(f[0], strlen(f[0]), key, t->len + 1 - t->keys_used))
        return "name is not valid UTF-8";
    if (!*key)
        return "name is blank";
    const char *cc = f[1];
    if (strlen(cc) != 2 || !isalpha_ascii(cc[0]) || !isalpha_ascii(cc[1]))
        return "country is not an ISO 3166 alpha-2 code";
    if (!parse_coord(f[2], 90, &e->city.lat))
        return "latitude is not a number in [-90, 90]";
    if (!parse_coord(f[3], 180, &e->city.lon))
        return "longitude is not a number in [-180, 180]";
    e->population = 0;
    if (t->has_population && !parse_population(f[4], &e->population))
        return "population is not a whole number";
    e->city.name = f[0];
    e->city.country[0] = upper_ascii(cc[0]);
    e->city.country[1] = upper_ascii(cc[1]);
    e->city.country[2] = '\0';
    e->key = key;
    t->keys_used += strlen(key) + 1;
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
static const char *parse_line(struct city_table *t, char *p, char *end, size_t line)
{
    char *f[CITY_FIELDS_MAX];
    const char *why = NULL;

    if (end > p && end[-1] == '\r')
        end--;
    if ((p < end && *p == '#') || is_blank(p, end))
        return NULL;
    size_t nf = split_fields(p, end, f, CITY_FIELDS_MAX, &why);
    if (nf == 0)
        return why;
    if (!t->header_seen)
        return parse_header(t, f, nf);
    if (t->n == t->cap) /* cannot happen: cap counts the lines */
        return "too many lines";
    struct city_entry *e = &t->v[t->n];
    why = parse_city(t, f, nf, e);
    if (why)
        return why;
    e->line = line;
    t->n++;
    return NULL;
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
        const char *why = parse_line(t, p, end, line);

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

/* 1 + the number of newlines in the first len bytes of s. */
static size_t count_lines(const char *s, size_t len)
{
    size_t n = 1;

    for (const char *p = s; (p = memchr(p, '\n', len - (size_t)(p - s))) != NULL; p++)
        n++;
    return n;
}

/* Reads fp to its end into a NUL-terminated buffer; returns why it cannot. */
static const char *slurp(FILE *fp, char **buf, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);

    if (!b)
        return "out of memory";
    for (;;) {
        n += fread(b + n, 1, cap - 1 - n, fp);
        if (ferror(fp)) {
            free(b);
            return "read error";
        }
        if (n < cap - 1) /* end of file */
            break;
        char *bigger = cap < CITIES_FILE_MAX ? realloc(b, cap * 2) : NULL;
        if (!bigger) {
            free(b);
            return cap < CITIES_FILE_MAX ? "out of memory" : "file too large";
        }
        b = bigger;
        cap *= 2;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return NULL;
}

/* Reads the whole file into t->text, refusing NUL bytes (they would cut lines short). */
static bool read_all(struct city_table *t, const char *path, char *err, size_t errcap)
{
    FILE *fp = fopen(path, "rb");
    char why[160];

    if (!fp) {
        snprintf(why, sizeof why, "cannot open: %s", strerror(errno));
        set_err(err, errcap, path, 0, why);
        return false;
    }
    const char *failed = slurp(fp, &t->text, &t->len);
    fclose(fp);
    if (failed) {
        set_err(err, errcap, path, 0, failed);
        return false;
    }
    const char *nul = memchr(t->text, '\0', t->len);
    if (nul) {
        set_err(err, errcap, path, count_lines(t->text, (size_t)(nul - t->text)), "NUL byte");
        return false;
    }
    return true;
}

/* Order of the array: folded name, then largest population, then file order. */
static int entry_cmp(const void *a, const void *b)
{
    const struct city_entry *x = a, *y = b;
    int c = strcmp(x->key, y->key);

    if (c)
        return c;
    if (x->population != y->population)
        return x->population > y->population ? -1 : 1;
    return x->line < y->line ? -1 : x->line > y->line;
}

struct city_table *city_table_load(const char *path, char *err, size_t errcap)
{
    struct city_table *t = calloc(1, sizeof *t);

    if (!t || !path) {
        set_err(err, errcap, path ? path : "(null)", 0, t ? "no file name" : "out of memory");
        free(t);
        return NULL;
    }
    if (!read_all(t, path, err, errcap))
        goto fail;
    t->cap = count_lines(t->text, t->len);
    t->keys = malloc(t->len + 1);
    t->v = calloc(t->cap, sizeof *t->v);
    if (!t->keys || !t->v) {
        set_err(err, errcap, path, 0, "out of memory");
        goto fail;
    }
    if (!parse_all(t, path, err, errcap))
        goto fail;
    qsort(t->v, t->n, sizeof *t->v, entry_cmp);
    return t;
fail:
    city_table_free(t);
    return NULL;
}

void city_table_free(struct city_table *t)
{
    if (!t)
        return;
    free(t->v);
    free(t->keys);
    free(t->text);
    free(t);
}

size_t city_table_count(const struct city_table *t)
{
    return t ? t->n : 0;
}

/* ---- lookup ---- */

/* Index of the first entry whose key is not below key. */
static size_t lower_bound(const struct city_table *t, const char *key)
{
    size_t lo = 0, hi = t->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(t->v[mid].key, key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The first entry of key (in country cc unless cc is NULL): the winner by the array's order. */
static const struct city *find(const struct city_table *t, const char *key, const char *cc)
{
    for (size_t i = lower_bound(t, key); i < t->n && strcmp(t->v[i].key, key) == 0; i++)
        if (!cc || strcmp(t->v[i].city.country, cc) == 0)
            return &t->v[i].city;
    return NULL;
}

/* Splits a trailing ", CC" off q: the length of the name before it, and CC in upper case. */
static bool split_country(const char *q, size_t *name_len, char cc[3])
{
    const char *comma = strrchr(q, ',');

    if (!comma)
        return false;
    const char *p = comma + 1 + strspn(comma + 1, " \t");
    if (!isalpha_ascii(p[0]) || !isalpha_ascii(p[1]) || p[2 + strspn(p + 2, " \t")] != '\0')
        return false;
    cc[0] = upper_ascii(p[0]);
    cc[1] = upper_ascii(p[1]);
    cc[2] = '\0';
    *name_len = (size_t)(comma - q);
    return true;
}

const struct city *city_table_lookup(const struct city_table *t, const char *query)
{
    char key[CITY_NAME_MAX];
    char cc[3];
    size_t name_len;

    if (!t || !query)
        return NULL;
    if (split_country(query, &name_len, cc) && fold_n(query, name_len, key, sizeof key)) {
        const struct city *c = find(t, key, cc);
        if (c)
            return c;
    }
    if (!city_fold(query, key, sizeof key))
        return NULL;
    return find(t, key, NULL);
}
