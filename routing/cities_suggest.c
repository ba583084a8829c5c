/*
 * cities_suggest.c — suggestions for a misspelled city name
 * (city_table_suggest, cities.h): the places whose folded names are
 * within a small edit distance of the query's, found in one walk of the
 * sorted index read as a trie, restricted by the query's qualifiers
 * (cities_lookup.c) unless that leaves none.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "routing/cities.h"
#include "routing/cities_int.h"

/* Longest folded name that city_table_suggest() compares; longer ones get none. */
#define SUGGEST_NAME_MAX 64

/* Largest edit distance of a suggestion. */
#define SUGGEST_DISTANCE_MAX 2

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

/* The smaller of two. */
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

        if (d <= s->limit && (!s->q || cities_qualifiers_match(s->q, &row->city)))
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

    if (!cities_fold_n(query, len, key, sizeof key, &s.qlen) || s.qlen == 0)
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
        qualified = cities_read_qualified(query, len, commas, &r);
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
