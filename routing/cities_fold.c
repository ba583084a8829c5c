/*
 * cities_fold.c — the folding of city names (city_fold, cities.h): the form
 * in which the table keeps its keys and in which queries are compared.
 * UTF-8 is decoded here, Latin letters lose their diacritics through the
 * tables below, punctuation and spaces are made uniform, "saint" becomes
 * "st".  scripts/gen-cities.js folds the same way when it orders the CSV.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "routing/cities.h"
#include "routing/cities_int.h"

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
bool cities_fold_n(const char *in, size_t len, char *out, size_t cap, size_t *outlen)
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
    return in && cities_fold_n(in, strlen(in), out, cap, NULL);
}
