/*
 * pg_encoding.c — client encodings to and from UTF8 (pg_encoding.h).
 */
#include "protocol/pg_encoding.h"

#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "protocol/pg_error.h"
#include "protocol/utf8.h"

/* PostgreSQL's client encodings (pg_enc2name_tbl) and iconv's names for them. */
static const struct {
    const char *pg, *iconv;
} pg_encoding_names[] = {
    {"LATIN1", "ISO-8859-1"},
    {"LATIN2", "ISO-8859-2"},
    {"LATIN3", "ISO-8859-3"},
    {"LATIN4", "ISO-8859-4"},
    {"LATIN5", "ISO-8859-9"},
    {"LATIN6", "ISO-8859-10"},
    {"LATIN7", "ISO-8859-13"},
    {"LATIN8", "ISO-8859-14"},
    {"LATIN9", "ISO-8859-15"},
    {"LATIN10", "ISO-8859-16"},
    {"ISO_8859_5", "ISO-8859-5"},
    {"ISO_8859_6", "ISO-8859-6"},
    {"ISO_8859_7", "ISO-8859-7"},
    {"ISO_8859_8", "ISO-8859-8"},
    {"WIN1250", "CP1250"},
    {"WIN1251", "CP1251"},
    {"WIN1252", "CP1252"},
    {"WIN1253", "CP1253"},
    {"WIN1254", "CP1254"},
    {"WIN1255", "CP1255"},
    {"WIN1256", "CP1256"},
    {"WIN1257", "CP1257"},
    {"WIN1258", "CP1258"},
    {"WIN866", "CP866"},
    {"WIN874", "CP874"},
    {"KOI8R", "KOI8-R"},
    {"KOI8U", "KOI8-U"},
    {"EUC_JP", "EUC-JP"},
    {"EUC_CN", "EUC-CN"},
    {"EUC_KR", "EUC-KR"},
    {"EUC_TW", "EUC-TW"},
    {"EUC_JIS_2004", "EUC-JISX0213"},
    {"SJIS", "CP932"},
    {"SHIFT_JIS_2004", "SHIFT_JISX0213"},
    {"BIG5", "CP950"},
    {"GBK", "GBK"},
    {"UHC", "CP949"},
    {"GB18030", "GB18030"},
    {"JOHAB", "JOHAB"},
};

/* name's letters and digits alone, lower case, into out (cap bytes): "ISO-8859-1" -> "iso88591". */
static void pg_encoding_clean(const char *name, char *out, size_t cap)
{
    size_t n = 0;
    for (; *name != '\0' && n + 1 < cap; name++)
        if ((*name >= 'a' && *name <= 'z') || (*name >= '0' && *name <= '9'))
            out[n++] = *name;
        else if (*name >= 'A' && *name <= 'Z')
            out[n++] = (char)(*name - 'A' + 'a');
    out[n] = '\0';
}

/* PostgreSQL's other spellings of a client encoding (pg_encname_tbl's, the common ones). */
static const struct {
    const char *alias, *pg;
} pg_encoding_aliases[] = {
    {"unicode", "UTF8"},        {"iso88591", "LATIN1"},     {"iso88592", "LATIN2"},
    {"iso88593", "LATIN3"},     {"iso88594", "LATIN4"},     {"iso88599", "LATIN5"},
    {"iso885910", "LATIN6"},    {"iso885913", "LATIN7"},    {"iso885914", "LATIN8"},
    {"iso885915", "LATIN9"},    {"iso885916", "LATIN10"},   {"windows1250", "WIN1250"},
    {"windows1251", "WIN1251"}, {"windows1252", "WIN1252"}, {"windows1253", "WIN1253"},
    {"windows1254", "WIN1254"}, {"windows1255", "WIN1255"}, {"windows1256", "WIN1256"},
    {"windows1257", "WIN1257"}, {"windows1258", "WIN1258"}, {"windows866", "WIN866"},
    {"windows874", "WIN874"},   {"shiftjis", "SJIS"},       {"mskanji", "SJIS"},
    {"koi8", "KOI8R"},          {"sqlascii", "SQL_ASCII"},  {"utf8", "UTF8"},
};

const char *pg_encoding_canonical(const char *name)
{
    char clean[32], pg[32];
    pg_encoding_clean(name, clean, sizeof(clean));
    for (size_t i = 0; i < sizeof(pg_encoding_aliases) / sizeof(pg_encoding_aliases[0]); i++)
        if (strcmp(clean, pg_encoding_aliases[i].alias) == 0)
            return pg_encoding_aliases[i].pg;
    for (size_t i = 0; i < sizeof(pg_encoding_names) / sizeof(pg_encoding_names[0]); i++) {
        pg_encoding_clean(pg_encoding_names[i].pg, pg, sizeof(pg));
        if (strcmp(clean, pg) == 0)
            return pg_encoding_names[i].pg;
    }
    return NULL;
}

/* Numbers: UTF8 1, SQL_ASCII 2 (neither converts, neither is in pg_encoding_names), then its. */
#define PG_ENCODING_NAMES (sizeof(pg_encoding_names) / sizeof(pg_encoding_names[0]))

unsigned pg_encoding_number(const char *canonical)
{
    if (strcmp(canonical, "UTF8") == 0)
        return 1;
    if (strcmp(canonical, "SQL_ASCII") == 0)
        return 2;
    for (size_t i = 0; i < PG_ENCODING_NAMES; i++)
        if (strcmp(canonical, pg_encoding_names[i].pg) == 0)
            return (unsigned)i + 3;
    return 0;
}

const char *pg_encoding_name(unsigned number)
{
    if (number == 1)
        return "UTF8";
    if (number == 2)
        return "SQL_ASCII";
    return number >= 3 && number - 3 < PG_ENCODING_NAMES ? pg_encoding_names[number - 3].pg : NULL;
}

bool pg_encoding_is_utf8(const char *name)
{
    return strcasecmp(name, "UTF8") == 0 || strcasecmp(name, "SQL_ASCII") == 0;
}

/*
 * iconv's name for a server encoding PostgreSQL names (UTF8 is UTF-8);
 * NULL for one pgnear does not convert.
 */
static const char *pg_encoding_iconv_name(const char *name)
{
    if (strcasecmp(name, "UTF8") == 0)
        return "UTF-8";
    for (size_t i = 0; i < sizeof(pg_encoding_names) / sizeof(pg_encoding_names[0]); i++)
        if (strcasecmp(name, pg_encoding_names[i].pg) == 0)
            return pg_encoding_names[i].iconv;
    return NULL;
}

/* The bytes unchanged (no conversion is needed), NUL-terminated, when they fit. */
static enum pg_enc_rc pg_encoding_copy(const void *in, size_t len, char *out, size_t cap,
                                       size_t *out_len)
{
    if (len >= cap)
        return PG_ENC_NOSPACE;
    memcpy(out, in, len);
    out[len] = '\0';
    *out_len = len;
    return PG_ENC_OK;
}

enum pg_enc_rc pg_encoding_convert(const char *from, const char *to, const void *in, size_t len,
                                   char *out, size_t cap, size_t *out_len, size_t *bad_at)
{
    *out_len = 0;
    *bad_at = 0;
    if (cap == 0)
        return PG_ENC_NOSPACE;
    /* UTF8 (or SQL_ASCII, whose bytes the server checks as its own) is checked before it goes. */
    if (pg_encoding_is_utf8(from) && (*bad_at = utf8_invalid_at(in, len)) < len)
        return PG_ENC_INVALID;
    if (pg_encoding_is_utf8(from) && pg_encoding_is_utf8(to))
        return pg_encoding_copy(in, len, out, cap, out_len);
    const char *f = pg_encoding_iconv_name(pg_encoding_is_utf8(from) ? "UTF8" : from);
    const char *t = pg_encoding_iconv_name(pg_encoding_is_utf8(to) ? "UTF8" : to);
    iconv_t cd = f != NULL && t != NULL ? iconv_open(t, f) : (iconv_t)-1;
    if (cd == (iconv_t)-1)
        return PG_ENC_UNKNOWN;
    char *ip = (char *)(uintptr_t)in, *op = out;
    size_t ileft = len, oleft = cap - 1;
    enum pg_enc_rc rc = PG_ENC_OK;
    if (iconv(cd, &ip, &ileft, &op, &oleft) == (size_t)-1)
        rc = errno == E2BIG              ? PG_ENC_NOSPACE
             : pg_encoding_is_utf8(from) ? PG_ENC_UNMAPPABLE
                                         : PG_ENC_INVALID;
    /* A stateful target's closing shift, then no reversible-conversion count: none is lossy. */
    if (rc == PG_ENC_OK && iconv(cd, NULL, NULL, &op, &oleft) == (size_t)-1)
        rc = PG_ENC_NOSPACE;
    iconv_close(cd);
    *bad_at = (size_t)(ip - (const char *)in);
    *out_len = (size_t)(op - out);
    out[*out_len] = '\0';
    return rc;
}

/* The bytes of the sequence at at, as the server prints them: "0xe6 0x97". */
static void pg_encoding_bytes(char *buf, size_t cap, const uint8_t *at, size_t avail, bool utf8)
{
    size_t n = 1; /* the length the lead byte claims, as the server's mblen reads it */
    if (utf8 && at[0] >= 0xc0 && at[0] < 0xf8)
        n = at[0] >= 0xf0 ? 4 : at[0] >= 0xe0 ? 3 : 2;
    else if (!utf8 && at[0] >= 0x80)
        n = 2; /* a multibyte encoding's lead byte and the one after it */
    if (n > avail)
        n = avail;
    size_t w = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && w + 6 < cap; i++)
        w += (size_t)snprintf(buf + w, cap - w, "%s0x%02x", i > 0 ? " " : "", at[i]);
}

void pg_encoding_error(struct pg_error *e, enum pg_enc_rc rc, const char *from, const char *to,
                       const void *in, size_t len, size_t bad_at)
{
    char bytes[64] = "";
    if (bad_at < len)
        pg_encoding_bytes(bytes, sizeof(bytes), (const uint8_t *)in + bad_at, len - bad_at,
                          pg_encoding_is_utf8(from) || rc == PG_ENC_UNMAPPABLE);
    const char *fname = strcasecmp(from, "SQL_ASCII") == 0 ? "UTF8" : from;
    if (rc == PG_ENC_UNMAPPABLE)
        pg_error_set(e, "22P05",
                     "character with byte sequence %s in encoding \"%s\" has no "
                     "equivalent in encoding \"%s\"",
                     bytes, fname, to);
    else
        pg_error_set(e, "22021", "invalid byte sequence for encoding \"%s\": %s", fname, bytes);
}
