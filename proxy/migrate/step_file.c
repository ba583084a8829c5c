/*
 * step_file.c — one migration step file: its name, its normalised text,
 * its header directives, its statements and its checksum.
 *
 * The directory loader, migrate_steps_load, is in step_dir.c.
 */
#include "proxy/migrate/step_file.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#define SQL_EXT  ".sql"
#define DOWN_EXT ".down.sql"

/* Blanks within a line; the newline is not one, since lines are what normalising keeps. */
static bool is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/*
 * Does s[0..len) end in suffix? any_case for ".SQL", which is meant as a step
 * too and then refused by name.
 */
static bool ends_with(const char *s, size_t len, const char *suffix, bool any_case)
{
    size_t n = strlen(suffix);
    if (len < n)
        return false;
    return any_case ? strncasecmp(s + len - n, suffix, n) == 0
                    : memcmp(s + len - n, suffix, n) == 0;
}

/* What a step's name may hold, so that it reads the same in every shell and file system. */
static bool is_name_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* "NNNN_name" (the file name without its extension) into out; false if it is not one. */
static bool parse_stem(const char *s, size_t len, struct migrate_name *out)
{
    size_t digits = 0;
    int64_t version = 0;
    while (digits < len && s[digits] >= '0' && s[digits] <= '9') {
        if (digits == MIGRATE_VERSION_DIGITS)
            return false;
        version = version * 10 + (s[digits] - '0');
        digits++;
    }
    if (digits == 0 || version == 0 || digits >= len || s[digits] != '_')
        return false;
    size_t name_len = len - digits - 1;
    if (name_len == 0 || name_len > MIGRATE_NAME_MAX)
        return false;
    for (size_t i = digits + 1; i < len; i++)
        if (!is_name_char((unsigned char)s[i]))
            return false;
    out->version = version;
    memcpy(out->name, s + digits + 1, name_len);
    out->name[name_len] = '\0';
    return true;
}

void migrate_name_parse(const char *name, size_t len, struct migrate_name *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = MIGRATE_NAME_OTHER;
    /* hidden files (editors' and tools') are not steps; any .sql, .SQL file is meant as one */
    if (len == 0 || name[0] == '.' || !ends_with(name, len, SQL_EXT, true))
        return;
    bool down = ends_with(name, len, DOWN_EXT, false);
    size_t stem = len - strlen(down ? DOWN_EXT : SQL_EXT);
    if (!ends_with(name, len, SQL_EXT, false) || !parse_stem(name, stem, out)) {
        memset(out, 0, sizeof(*out));
        out->kind = MIGRATE_NAME_BAD;
        return;
    }
    out->kind = down ? MIGRATE_NAME_DOWN : MIGRATE_NAME_UP;
}

int migrate_text_normalise(const char *text, size_t len, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    while (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0) { /* all of them: idempotent */
        text += 3;
        len -= 3;
    }
    char *buf = len < SIZE_MAX - 2 ? malloc(len + 2) : NULL;
    if (buf == NULL)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t keep = end;
        while (keep > i && is_blank((unsigned char)text[keep - 1]))
            keep--;
        memcpy(buf + n, text + i, keep - i);
        n += keep - i;
        if (nl != NULL)
            buf[n++] = '\n';
        i = end + 1;
    }
    while (n > 0 && (buf[n - 1] == '\n' || is_blank((unsigned char)buf[n - 1])))
        n--;
    if (n > 0)
        buf[n++] = '\n';
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

/* ---- header directives ---- */

/* The first position from i that is not a blank (or len). */
static size_t skip_blanks(const char *s, size_t len, size_t i)
{
    while (i < len && is_blank((unsigned char)s[i]))
        i++;
    return i;
}

/* The position after "pgnear:" if the comment s[0..len) (from its "--") is a directive, else 0. */
static size_t directive_start(const char *s, size_t len)
{
    if (len < 2)
        return 0;
    size_t i = skip_blanks(s, len, 2);
    if (len - i < 6 || strncasecmp(s + i, "pgnear", 6) != 0)
        return 0;
    i = skip_blanks(s, len, i + 6);
    return i < len && s[i] == ':' ? i + 1 : 0;
}

/* "file:line: before"key"after" into err; -1. */
static int line_error(char *err, size_t errcap, const char *file, unsigned line, const char *before,
                      const char *key, size_t key_len, const char *after)
{
    snprintf(err, errcap, "%s:%u: %s\"%.*s\"%s", file, line, before, (int)key_len, key, after);
    return -1;
}

/* A timeout's value: digits, then ms, s, min, h or nothing (ms, as in PostgreSQL). */
static int parse_timeout(const char *s, size_t len, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"", 1}, {"ms", 1}, {"s", 1000}, {"min", 60000}, {"h", 3600000}};
    size_t i = 0;
    int64_t value = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        value = value * 10 + (s[i] - '0');
        if (value > INT32_MAX)
            return -1;
        i++;
    }
    if (i == 0)
        return -1;
    i = skip_blanks(s, len, i);
    for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
        if (len - i == strlen(units[u].unit) && memcmp(s + i, units[u].unit, len - i) == 0) {
            *ms = value * units[u].ms;
            return *ms > INT32_MAX ? -1 : 0;
        }
    }
    return -1;
}

/* A directive as it was read: its key and, after an '=', its value. */
struct directive {
    const char *file;
    unsigned line;
    const char *key;
    size_t key_len;
    bool has_value;
    const char *value;
    size_t value_len;
};

/* Directive keys compare without case, as SQL's keywords do. */
static bool key_is(const struct directive *d, const char *name)
{
    return strlen(name) == d->key_len && strncasecmp(d->key, name, d->key_len) == 0;
}

/* A directive without a value; given twice or with a value it is an error, not a silent choice. */
static int set_flag(bool *flag, const struct directive *d, char *err, size_t errcap)
{
    if (d->has_value)
        return line_error(err, errcap, d->file, d->line, "directive ", d->key, d->key_len,
                          " takes no value");
    if (*flag)
        return line_error(err, errcap, d->file, d->line, "directive ", d->key, d->key_len,
                          " is given twice");
    *flag = true;
    return 0;
}

/* A timeout directive; a negative *ms means not given yet, so a second one is an error. */
static int set_timeout(int64_t *ms, const struct directive *d, char *err, size_t errcap)
{
    if (!d->has_value)
        return line_error(err, errcap, d->file, d->line, "directive ", d->key, d->key_len,
                          " needs a value, such as = 5s");
    if (*ms >= 0)
        return line_error(err, errcap, d->file, d->line, "directive ", d->key, d->key_len,
                          " is given twice");
    if (parse_timeout(d->value, d->value_len, ms) != 0)
        return line_error(err, errcap, d->file, d->line, "invalid value for ", d->key, d->key_len,
                          ": a whole number with a unit ms, s, min or h, at most 2147483647 ms");
    return 0;
}

/*
 * One directive into out; an unknown key is an error naming the known ones,
 * since a typo would otherwise be ignored.
 */
static int apply_directive(const struct directive *d, struct migrate_directives *out, char *err,
                           size_t errcap)
{
    if (key_is(d, "no-transaction"))
        return set_flag(&out->no_transaction, d, err, errcap);
    if (key_is(d, "pause"))
        return set_flag(&out->pause, d, err, errcap);
    if (key_is(d, "lock_timeout"))
        return set_timeout(&out->lock_timeout_ms, d, err, errcap);
    if (key_is(d, "statement_timeout"))
        return set_timeout(&out->statement_timeout_ms, d, err, errcap);
    return line_error(err, errcap, d->file, d->line, "unknown directive ", d->key, d->key_len,
                      " (known: no-transaction, pause, lock_timeout, statement_timeout)");
}

/* s[0..len) is what follows "pgnear:": a key, then nothing or "= value". */
static int parse_directive(const char *s, size_t len, const char *file, unsigned line,
                           struct migrate_directives *out, char *err, size_t errcap)
{
    struct directive d = {.file = file, .line = line};
    size_t i = skip_blanks(s, len, 0);
    d.key = s + i;
    while (i < len && is_name_char((unsigned char)s[i]))
        i++;
    d.key_len = (size_t)(s + i - d.key);
    i = skip_blanks(s, len, i);
    if (d.key_len == 0)
        return line_error(err, errcap, file, line, "expected a directive name after ",
                          "-- pgnear:", 10, "");
    if (i < len && s[i] != '=')
        return line_error(err, errcap, file, line, "directive ", d.key, d.key_len,
                          " must be followed by nothing, or by = and a value");
    if (i < len) {
        d.has_value = true;
        i = skip_blanks(s, len, i + 1);
        d.value = s + i;
        d.value_len = len - i;
        while (d.value_len > 0 && is_blank((unsigned char)d.value[d.value_len - 1]))
            d.value_len--;
    }
    return apply_directive(&d, out, err, errcap);
}

/*
 * The header: the lines at the top that are blank or -- comments.  Parses
 * the directives among them into out and sets *header_end to the offset of
 * the first line after it.
 */
static int walk_header(const char *text, size_t len, const char *file,
                       struct migrate_directives *out, size_t *header_end, char *err, size_t errcap)
{
    size_t i = 0;
    unsigned line = 1;
    out->no_transaction = false;
    out->pause = false;
    out->lock_timeout_ms = -1;
    out->statement_timeout_ms = -1;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t j = skip_blanks(text, end, i);
        if (j < end) {
            if (end - j < 2 || text[j] != '-' || text[j + 1] != '-')
                break;
            size_t d = directive_start(text + j, end - j);
            if (d > 0 &&
                parse_directive(text + j + d, end - j - d, file, line, out, err, errcap) != 0)
                return -1;
        }
        i = nl ? end + 1 : len;
        line++;
    }
    *header_end = i;
    return 0;
}

int migrate_directives_parse(const char *text, size_t len, const char *file,
                             struct migrate_directives *out, char *err, size_t errcap)
{
    size_t header_end;
    return walk_header(text, len, file, out, &header_end, err, errcap);
}

/* ---- a whole file ---- */

struct comment_check {
    const char *text;
    size_t header_end;
    const char *file;
    char *err;
    size_t errcap;
};

/* sql_split's comment callback: a directive below the header is an error. */
static int check_comment(void *ctx, size_t offset, size_t length, unsigned line)
{
    struct comment_check *cc = ctx;
    if (offset < cc->header_end || directive_start(cc->text + offset, length) == 0)
        return 0;
    snprintf(cc->err, cc->errcap,
             "%s:%u: a \"-- pgnear:\" directive must be in the comment lines at the top of the "
             "file, before any statement",
             cc->file, line);
    return 1;
}

/*
 * SHA-256 of the normalised text, in lower-case hex: what the history compares
 * to spot an edited step.
 */
static int checksum_hex(const char *text, size_t len, char hex[MIGRATE_CHECKSUM_HEX + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(text, len, md, &n, EVP_sha256(), NULL) != 1 || n * 2 != MIGRATE_CHECKSUM_HEX)
        return -1;
    for (unsigned int i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 0xf];
    }
    hex[MIGRATE_CHECKSUM_HEX] = '\0';
    return 0;
}

/*
 * The text as statements (sql_split), with the directive checks on the
 * comments; an error names the file and line.
 */
static int split_statements(struct migrate_script *out, size_t header_end, char *err, size_t errcap)
{
    struct comment_check cc = {out->text, header_end, out->file, err, errcap};
    struct sql_split_error serr;
    int rc = sql_split(out->text, out->len, &out->sql, &serr, check_comment, &cc);
    if (rc > 0)
        return -1;
    if (rc != SQL_SPLIT_OK && serr.line > 0)
        snprintf(err, errcap, "%s:%u: %s", out->file, serr.line, serr.message);
    else if (rc != SQL_SPLIT_OK)
        snprintf(err, errcap, "%s: %s", out->file, serr.message);
    else if (out->sql.count == 0)
        snprintf(err, errcap, "%s: no SQL statement in the file", out->file);
    return rc == SQL_SPLIT_OK && out->sql.count > 0 ? 0 : -1;
}

int migrate_script_parse(const char *raw, size_t len, const char *file, struct migrate_script *out,
                         char *err, size_t errcap)
{
    memset(out, 0, sizeof(*out));
    out->file = strdup(file);
    if (out->file == NULL || migrate_text_normalise(raw, len, &out->text, &out->len) != 0) {
        snprintf(err, errcap, "%s: out of memory", file);
        return -1;
    }
    size_t header_end;
    if (walk_header(out->text, out->len, out->file, &out->directives, &header_end, err, errcap) !=
        0)
        return -1;
    if (split_statements(out, header_end, err, errcap) != 0)
        return -1;
    if (checksum_hex(out->text, out->len, out->checksum) != 0) {
        snprintf(err, errcap, "%s: SHA-256 failed", file);
        return -1;
    }
    return 0;
}

/* Frees what a script owns and zeroes it, so freeing twice is harmless. */
void migrate_script_free(struct migrate_script *script)
{
    free(script->file);
    free(script->text);
    sql_script_free(&script->sql);
    memset(script, 0, sizeof(*script));
}
