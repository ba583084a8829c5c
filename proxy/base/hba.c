/*
 * hba.c — auth_hba_file (hba.h): pg_hba.conf's lines read into fields of
 * comma lists of tokens, as PostgreSQL reads them (quotes, # comments, a
 * trailing backslash continuing a line), each checked as it is read, and
 * the first line a connection matches.
 */
#include "proxy/base/hba.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define HBA_FIELDS_MAX 32
#define HBA_FILE_MAX   (16 * 1024 * 1024)

struct hba_token {
    char text[HBA_TOKEN_MAX + 1];
    bool quoted;
};

/* One field: a comma list of tokens. */
struct hba_field {
    struct hba_token *tokens;
    size_t n;
};

struct hba_fields {
    struct hba_field items[HBA_FIELDS_MAX];
    size_t n;
};

/* What reading one line needs besides its fields. */
struct hba_reader {
    hba_include_fn include;
    void *arg;
    int line;
    struct hba_error *err;
};

static int hba_fail(struct hba_reader *rd, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Says why the line being read is refused (into rd's error, with its line
 * number); returns rc, so a caller writes return hba_fail(...).
 */
static int hba_fail(struct hba_reader *rd, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rd->err->why, sizeof(rd->err->why), fmt, ap);
    va_end(ap);
    rd->err->line = rd->line;
    return rc;
}

/*
 * The next token of a NUL-terminated line: 1 read (*comma: a comma ends
 * it, so the list goes on), 0 at the line's end or a comment, or an error.
 */
static int hba_next_token(struct hba_reader *rd, const char **p, struct hba_token *t, bool *comma)
{
    const char *s = *p;
    size_t n = 0;
    bool in_quote = false;
    while (*s == ' ' || *s == '\t')
        s++;
    t->quoted = false;
    *comma = false;
    if (*s == '\0' || *s == '#') {
        *p = s;
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (!in_quote && (isspace((unsigned char)*s) || *s == ',' || *s == '#'))
            break;
        if (*s == '"') {
            if (in_quote && s[1] == '"') {
                s++; /* "" inside quotes: one quote */
            } else {
                in_quote = !in_quote;
                t->quoted = true;
                continue;
            }
        }
        if (n >= HBA_TOKEN_MAX)
            return hba_fail(rd, HBA_ESYNTAX, "a token is longer than %d bytes", HBA_TOKEN_MAX);
        t->text[n++] = *s;
    }
    if (in_quote)
        return hba_fail(rd, HBA_ESYNTAX, "unterminated quoted string");
    t->text[n] = '\0';
    if (*s == ',') {
        *comma = true;
        s++;
    }
    *p = s;
    return 1;
}

/* Appends token t to field f (a comma list grows a field). */
static int hba_field_add(struct hba_reader *rd, struct hba_field *f, const struct hba_token *t)
{
    struct hba_token *grown = realloc(f->tokens, (f->n + 1) * sizeof(*grown));
    if (grown == NULL)
        return hba_fail(rd, HBA_ENOMEM, "out of memory");
    f->tokens = grown;
    f->tokens[f->n++] = *t;
    return HBA_OK;
}

/* Frees the tokens of a line's fields; fs itself is the caller's (on its stack). */
static void hba_fields_free(struct hba_fields *fs)
{
    for (size_t i = 0; i < fs->n; i++)
        free(fs->items[i].tokens);
    fs->n = 0;
}

/* A line's fields; none for a blank line or a comment. */
static int hba_split_fields(struct hba_reader *rd, const char *line, struct hba_fields *fs)
{
    const char *p = line;
    struct hba_token t;
    bool comma = false;
    int rc;
    fs->n = 0;
    while ((rc = hba_next_token(rd, &p, &t, &comma)) == 1) {
        if (fs->n == HBA_FIELDS_MAX)
            return hba_fail(rd, HBA_ESYNTAX, "more than %d fields", HBA_FIELDS_MAX);
        struct hba_field *f = &fs->items[fs->n++];
        memset(f, 0, sizeof(*f));
        if ((rc = hba_field_add(rd, f, &t)) != HBA_OK)
            return rc;
        while (comma) {
            if ((rc = hba_next_token(rd, &p, &t, &comma)) < 0)
                return rc;
            if (rc == 0)
                return hba_fail(rd, HBA_ESYNTAX, "a list ends with a comma");
            if ((rc = hba_field_add(rd, f, &t)) != HBA_OK)
                return rc;
        }
    }
    return rc;
}

/* Whether t is the keyword word: quoted, "all" is a name, as in PostgreSQL. */
static bool hba_keyword(const struct hba_token *t, const char *word)
{
    return !t->quoted && strcmp(t->text, word) == 0;
}

/* A field that must hold one value, what it is named in the error otherwise. */
static int hba_single(struct hba_reader *rd, const struct hba_field *f, const char *what)
{
    if (f->n != 1)
        return hba_fail(rd, HBA_ESYNTAX, "multiple values specified for %s", what);
    return HBA_OK;
}

/* Appends a name of kind to a line's database or user list (text kept only for an exact name). */
static int hba_name_add(struct hba_reader *rd, struct hba_name **names, size_t *n,
                        enum hba_name_kind kind, const char *text)
{
    struct hba_name *grown = realloc(*names, (*n + 1) * sizeof(*grown));
    if (grown == NULL)
        return hba_fail(rd, HBA_ENOMEM, "out of memory");
    *names = grown;
    grown[*n].kind = kind;
    grown[*n].name = NULL;
    if (kind == HBA_NAME_EXACT && (grown[*n].name = strdup(text)) == NULL)
        return hba_fail(rd, HBA_ENOMEM, "out of memory");
    (*n)++;
    return HBA_OK;
}

/* One database or user token, not an @file: a keyword or a name. */
static int hba_name_token(struct hba_reader *rd, const struct hba_token *t, bool database,
                          struct hba_name **names, size_t *n)
{
    if (hba_keyword(t, "all"))
        return hba_name_add(rd, names, n, HBA_NAME_ALL, NULL);
    if (database && hba_keyword(t, "sameuser"))
        return hba_name_add(rd, names, n, HBA_NAME_SAMEUSER, NULL);
    if (database && (hba_keyword(t, "samerole") || hba_keyword(t, "samegroup")))
        return hba_fail(rd, HBA_EUNSUPPORTED,
                        "\"%s\" is not supported: pgnear cannot know role membership before the "
                        "login",
                        t->text);
    if (database && hba_keyword(t, "replication"))
        return hba_fail(rd, HBA_EUNSUPPORTED,
                        "\"replication\" is not supported: pgnear does not tell replication "
                        "connections apart in auth_hba_file");
    if (!database && !t->quoted && t->text[0] == '+')
        return hba_fail(rd, HBA_EUNSUPPORTED,
                        "group \"%s\" is not supported: pgnear cannot know role membership "
                        "before the login",
                        t->text);
    if (!t->quoted && t->text[0] == '/')
        return hba_fail(rd, HBA_EUNSUPPORTED, "regular expression \"%s\" is not supported",
                        t->text);
    if (!t->quoted && t->text[0] == '@')
        return hba_fail(rd, HBA_EUNSUPPORTED, "a file included by @ may not include another");
    return hba_name_add(rd, names, n, HBA_NAME_EXACT, t->text);
}

/* The names of an @file: whitespace or comma separated, # comments, quotes as in the file. */
static int hba_include_names(struct hba_reader *rd, const char *name, bool database,
                             struct hba_name **names, size_t *n)
{
    char *text = NULL, why[200];
    size_t len = 0;
    if (rd->include == NULL || !rd->include(rd->arg, name, &text, &len, why, sizeof(why)))
        return hba_fail(rd, HBA_EFILE, "could not read @%s: %s", name,
                        rd->include == NULL ? "no file may be included here" : why);
    size_t before = *n;
    char *room = realloc(text, len + 1); /* each line is terminated in place */
    if (room == NULL) {
        free(text);
        return hba_fail(rd, HBA_ENOMEM, "out of memory");
    }
    text = room;
    int rc = HBA_OK;
    if (len > HBA_INCLUDE_TEXT_MAX || memchr(text, '\0', len) != NULL)
        rc = hba_fail(rd, HBA_ESYNTAX, "@%s is too long or holds a zero byte", name);
    for (size_t pos = 0; rc == HBA_OK && pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        text[end] = '\0';
        struct hba_fields fs;
        rc = hba_split_fields(rd, text + pos, &fs);
        for (size_t i = 0; rc == HBA_OK && i < fs.n; i++)
            for (size_t j = 0; rc == HBA_OK && j < fs.items[i].n; j++)
                rc = hba_name_token(rd, &fs.items[i].tokens[j], database, names, n);
        hba_fields_free(&fs);
        pos = end + 1;
    }
    free(text);
    if (rc == HBA_OK && *n == before)
        rc = hba_fail(rd, HBA_ESYNTAX, "@%s names no one", name);
    return rc;
}

/* A database or user field into names: each token, or each name of a file @name includes. */
static int hba_names(struct hba_reader *rd, const struct hba_field *f, bool database,
                     struct hba_name **names, size_t *n)
{
    int rc = HBA_OK;
    for (size_t i = 0; i < f->n && rc == HBA_OK; i++) {
        const struct hba_token *t = &f->tokens[i];
        if (!t->quoted && t->text[0] == '@')
            rc = hba_include_names(rd, t->text + 1, database, names, n);
        else
            rc = hba_name_token(rd, t, database, names, n);
    }
    return rc;
}

/* A netmask's prefix length: its ones must be contiguous; -1 when not a mask. */
static int hba_mask_prefix(const uint8_t *mask, size_t bytes)
{
    int prefix = 0;
    bool zeros = false;
    for (size_t i = 0; i < bytes * 8; i++) {
        bool one = (mask[i / 8] >> (7 - i % 8)) & 1;
        if (one && zeros)
            return -1;
        if (one)
            prefix++;
        else
            zeros = true;
    }
    return prefix;
}

/* An address and its mask in two fields; *next moves past both. */
static int hba_address_mask(struct hba_reader *rd, const struct hba_fields *fs, size_t *next,
                            struct hba_line *l)
{
    const char *addr = fs->items[*next].tokens[0].text;
    uint8_t mask[16];
    l->address.family = cidr_addr_parse(addr, l->address.addr);
    if (l->address.family == 0)
        return hba_fail(rd, HBA_EUNSUPPORTED,
                        "host name \"%s\" is not supported: write an address with its netmask "
                        "or a CIDR",
                        addr);
    if (*next + 1 >= fs->n || fs->items[*next + 1].n != 1)
        return hba_fail(rd, HBA_ESYNTAX, "end-of-line before netmask specification");
    const char *text = fs->items[*next + 1].tokens[0].text;
    size_t bytes = l->address.family == AF_INET ? 4 : 16;
    if (cidr_addr_parse(text, mask) != l->address.family ||
        (l->address.prefix = hba_mask_prefix(mask, bytes)) < 0)
        return hba_fail(rd, HBA_ESYNTAX, "invalid IP mask \"%s\"", text);
    *next += 2;
    return HBA_OK;
}

/* host lines: all, a CIDR, or an address and netmask. */
static int hba_address(struct hba_reader *rd, const struct hba_fields *fs, size_t *next,
                       struct hba_line *l)
{
    int rc;
    if (*next >= fs->n)
        return hba_fail(rd, HBA_ESYNTAX, "end-of-line before IP address specification");
    const struct hba_field *f = &fs->items[*next];
    if ((rc = hba_single(rd, f, "the IP address")) != HBA_OK)
        return rc;
    const struct hba_token *t = &f->tokens[0];
    if (hba_keyword(t, "all")) {
        l->any_address = true;
        (*next)++;
        return HBA_OK;
    }
    if (hba_keyword(t, "samehost") || hba_keyword(t, "samenet"))
        return hba_fail(rd, HBA_EUNSUPPORTED,
                        "\"%s\" is not supported: name the addresses, or a CIDR", t->text);
    if (strchr(t->text, '/') == NULL)
        return hba_address_mask(rd, fs, next, l);
    struct cidr_list one;
    char why[128];
    if (strpbrk(t->text, ", \t") != NULL || !cidr_list_parse(&one, t->text, why, sizeof(why)) ||
        one.count != 1)
        return hba_fail(rd, HBA_ESYNTAX, "invalid IP address or CIDR \"%s\"", t->text);
    l->address = one.items[0];
    (*next)++;
    return HBA_OK;
}

/*
 * The method field (scram-sha-256 and md5 as SCRAM, cert, trust, reject);
 * the methods pgnear does not speak are refused by name.
 */
static int hba_method(struct hba_reader *rd, const struct hba_field *f, struct hba_line *l)
{
    static const char *const refused[] = {"password", "peer",   "ident", "gss", "sspi",
                                          "ldap",     "radius", "pam",   "bsd", NULL};
    int rc = hba_single(rd, f, "the authentication type");
    if (rc != HBA_OK)
        return rc;
    const char *m = f->tokens[0].text;
    /* md5: PostgreSQL uses SCRAM for a user whose secret is SCRAM, and pgnear has no other. */
    if (strcmp(m, "scram-sha-256") == 0 || strcmp(m, "md5") == 0)
        l->method = HBA_METHOD_SCRAM;
    else if (strcmp(m, "cert") == 0)
        l->method = HBA_METHOD_CERT;
    else if (strcmp(m, "trust") == 0)
        l->method = HBA_METHOD_TRUST;
    else if (strcmp(m, "reject") == 0)
        l->method = HBA_METHOD_REJECT;
    else {
        for (size_t i = 0; refused[i] != NULL; i++)
            if (strcmp(m, refused[i]) == 0)
                return hba_fail(rd, HBA_EUNSUPPORTED,
                                "authentication method \"%s\" is not supported by pgnear", m);
        return hba_fail(rd, HBA_ESYNTAX, "invalid authentication method \"%s\"", m);
    }
    if (l->method == HBA_METHOD_CERT && l->conn != HBA_HOSTSSL)
        return hba_fail(rd, HBA_ESYNTAX,
                        "cert authentication is only supported on hostssl connections");
    if (l->method == HBA_METHOD_CERT)
        l->clientcert = HBA_CLIENTCERT_VERIFY_FULL;
    return HBA_OK;
}

/*
 * One name=value option after the method: clientcert (verify-ca, verify-
 * full) and clientname=CN; any other is refused.
 */
static int hba_option(struct hba_reader *rd, const struct hba_token *t, struct hba_line *l)
{
    const char *eq = strchr(t->text, '=');
    if (eq == NULL)
        return hba_fail(rd, HBA_ESYNTAX, "authentication option not in name=value format: %s",
                        t->text);
    size_t n = (size_t)(eq - t->text);
    const char *value = eq + 1;
    if (n == strlen("clientcert") && strncmp(t->text, "clientcert", n) == 0) {
        if (l->conn != HBA_HOSTSSL)
            return hba_fail(rd, HBA_ESYNTAX,
                            "clientcert can only be configured for \"hostssl\" rows");
        if (strcmp(value, "verify-full") == 0)
            l->clientcert = HBA_CLIENTCERT_VERIFY_FULL;
        else if (strcmp(value, "verify-ca") == 0 && l->method != HBA_METHOD_CERT)
            l->clientcert = HBA_CLIENTCERT_VERIFY_CA;
        else if (strcmp(value, "verify-ca") == 0)
            return hba_fail(rd, HBA_ESYNTAX,
                            "clientcert only accepts \"verify-full\" when using \"cert\" "
                            "authentication");
        else
            return hba_fail(rd, HBA_ESYNTAX, "invalid value for clientcert: \"%s\"", value);
        return HBA_OK;
    }
    if (n == strlen("clientname") && strncmp(t->text, "clientname", n) == 0) {
        if (strcmp(value, "CN") == 0)
            return HBA_OK;
        return hba_fail(rd, HBA_EUNSUPPORTED,
                        "clientname=%s is not supported: pgnear matches the certificate's CN",
                        value);
    }
    return hba_fail(rd, HBA_EUNSUPPORTED, "authentication option \"%.*s\" is not supported", (int)n,
                    t->text);
}

/* The connection type field: local, host, hostssl or hostnossl; the GSSAPI ones are refused. */
static int hba_conn_type(struct hba_reader *rd, const struct hba_field *f, struct hba_line *l)
{
    int rc = hba_single(rd, f, "connection type");
    if (rc != HBA_OK)
        return rc;
    const char *c = f->tokens[0].text;
    if (strcmp(c, "local") == 0)
        l->conn = HBA_LOCAL;
    else if (strcmp(c, "host") == 0)
        l->conn = HBA_HOST;
    else if (strcmp(c, "hostssl") == 0)
        l->conn = HBA_HOSTSSL;
    else if (strcmp(c, "hostnossl") == 0)
        l->conn = HBA_HOSTNOSSL;
    else if (strcmp(c, "hostgssenc") == 0 || strcmp(c, "hostnogssenc") == 0)
        return hba_fail(rd, HBA_EUNSUPPORTED,
                        "connection type \"%s\" is not supported: pgnear has no GSSAPI "
                        "encryption",
                        c);
    else
        return hba_fail(rd, HBA_ESYNTAX, "invalid connection type \"%s\"", c);
    return HBA_OK;
}

/* One line's fields into l: type, database, user, [address], method, options. */
static int hba_line_read(struct hba_reader *rd, const struct hba_fields *fs, struct hba_line *l)
{
    int rc;
    size_t next = 1;
    l->line = rd->line;
    if ((rc = hba_conn_type(rd, &fs->items[0], l)) != HBA_OK)
        return rc;
    if (fs->n < 2)
        return hba_fail(rd, HBA_ESYNTAX, "end-of-line before database specification");
    if ((rc = hba_names(rd, &fs->items[next++], true, &l->databases, &l->n_databases)) != HBA_OK)
        return rc;
    if (fs->n < 3)
        return hba_fail(rd, HBA_ESYNTAX, "end-of-line before role specification");
    if ((rc = hba_names(rd, &fs->items[next++], false, &l->users, &l->n_users)) != HBA_OK)
        return rc;
    if (l->conn == HBA_LOCAL)
        l->any_address = true;
    else if ((rc = hba_address(rd, fs, &next, l)) != HBA_OK)
        return rc;
    if (next >= fs->n)
        return hba_fail(rd, HBA_ESYNTAX, "end-of-line before authentication method");
    if ((rc = hba_method(rd, &fs->items[next++], l)) != HBA_OK)
        return rc;
    for (; next < fs->n; next++)
        for (size_t i = 0; i < fs->items[next].n; i++)
            if ((rc = hba_option(rd, &fs->items[next].tokens[i], l)) != HBA_OK)
                return rc;
    return HBA_OK;
}

/* A new line at the end of out, zeroed, so that hba_free frees whatever it gets. */
static struct hba_line *hba_line_new(struct hba_file *out)
{
    struct hba_line *grown = realloc(out->lines, (out->count + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    out->lines = grown;
    memset(&grown[out->count], 0, sizeof(*grown));
    return &grown[out->count++];
}

/*
 * The next logical line from text[*pos..len): physical lines joined where
 * one ends with a backslash; *physical counts them.  NULL at the end.
 */
static char *hba_logical_line(const char *text, size_t len, size_t *pos, int *physical,
                              struct hba_reader *rd, int *rc)
{
    size_t cap = 0, n = 0;
    char *line = NULL;
    rd->line = *physical + 1;
    while (*pos < len) {
        const char *nl = memchr(text + *pos, '\n', len - *pos);
        size_t end = nl != NULL ? (size_t)(nl - text) : len, piece = end - *pos;
        (*physical)++;
        if (piece > 0 && text[end - 1] == '\r')
            piece--;
        bool more = piece > 0 && text[*pos + piece - 1] == '\\';
        if (more)
            piece--;
        if (memchr(text + *pos, '\0', piece) != NULL) {
            *rc = hba_fail(rd, HBA_ESYNTAX, "the line holds a zero byte");
            free(line);
            return NULL;
        }
        char *grown = n + piece + 1 > cap ? realloc(line, cap = n + piece + 1) : line;
        if (grown == NULL) {
            *rc = hba_fail(rd, HBA_ENOMEM, "out of memory");
            free(line);
            return NULL;
        }
        line = grown;
        memcpy(line + n, text + *pos, piece);
        n += piece;
        line[n] = '\0';
        *pos = end + (nl != NULL);
        if (!more)
            break;
    }
    return line;
}

int hba_parse(const char *text, size_t len, hba_include_fn include, void *arg, struct hba_file *out,
              struct hba_error *err)
{
    struct hba_reader rd = {include, arg, 0, err};
    size_t pos = 0;
    int physical = 0, rc = HBA_OK;
    memset(out, 0, sizeof(*out));
    err->line = 0;
    err->why[0] = '\0';
    while (rc == HBA_OK && pos < len) {
        char *line = hba_logical_line(text, len, &pos, &physical, &rd, &rc);
        if (line == NULL)
            break;
        struct hba_fields fs;
        rc = hba_split_fields(&rd, line, &fs);
        if (rc == HBA_OK && fs.n > 0) {
            struct hba_line *l = hba_line_new(out);
            rc =
                l == NULL ? hba_fail(&rd, HBA_ENOMEM, "out of memory") : hba_line_read(&rd, &fs, l);
        }
        hba_fields_free(&fs);
        free(line);
    }
    return rc;
}

/* Frees a line's database or user list. */
static void hba_names_free(struct hba_name *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i].name);
    free(names);
}

void hba_free(struct hba_file *f)
{
    for (size_t i = 0; i < f->count; i++) {
        hba_names_free(f->lines[i].databases, f->lines[i].n_databases);
        hba_names_free(f->lines[i].users, f->lines[i].n_users);
    }
    free(f->lines);
    f->lines = NULL;
    f->count = 0;
}

/* A whole file, malloc'd; false with why. */
static bool hba_read_file(const char *path, char **text, size_t *len, char *why, size_t whycap)
{
    FILE *fp = fopen(path, "rb");
    struct stat st;
    if (fp == NULL || fstat(fileno(fp), &st) != 0) {
        snprintf(why, whycap, "could not open \"%s\": %s", path, strerror(errno));
        if (fp != NULL)
            fclose(fp);
        return false;
    }
    /* One byte more than the size: a file that grew meanwhile is seen, not cut short. */
    size_t cap = st.st_size >= 0 && st.st_size < HBA_FILE_MAX ? (size_t)st.st_size + 1 : 0;
    char *buf = cap > 0 ? malloc(cap) : NULL;
    size_t n = buf != NULL ? fread(buf, 1, cap, fp) : 0;
    const char *failed = cap == 0      ? "too long"
                         : buf == NULL ? "out of memory"
                         : ferror(fp)  ? "read error"
                         : n >= cap    ? "it grew while read"
                                       : NULL;
    fclose(fp);
    if (failed != NULL) {
        snprintf(why, whycap, "could not read \"%s\": %s", path, failed);
        free(buf);
        return false;
    }
    *text = buf;
    *len = n;
    return true;
}

/* @name: relative to the folder of the file that includes it (arg: its path). */
static bool hba_include_file(void *arg, const char *name, char **text, size_t *len, char *why,
                             size_t whycap)
{
    const char *path = arg;
    const char *slash = strrchr(path, '/');
    char full[4096];
    int dir = slash != NULL && name[0] != '/' ? (int)(slash - path + 1) : 0;
    if (snprintf(full, sizeof(full), "%.*s%s", dir, path, name) >= (int)sizeof(full)) {
        snprintf(why, whycap, "the path is too long");
        return false;
    }
    return hba_read_file(full, text, len, why, whycap);
}

int hba_load(const char *path, struct hba_file *out, char *err, size_t errcap)
{
    char *text = NULL, why[300];
    size_t len = 0;
    memset(out, 0, sizeof(*out));
    if (!hba_read_file(path, &text, &len, why, sizeof(why))) {
        snprintf(err, errcap, "%s", why);
        return HBA_EFILE;
    }
    struct hba_error e;
    int rc = hba_parse(text, len, hba_include_file, (void *)path, out, &e);
    free(text);
    if (rc != HBA_OK) {
        snprintf(err, errcap, "%s:%d: %s", path, e.line, e.why);
    } else if (out->count == 0) {
        /* As PostgreSQL refuses it: every connection would be refused. */
        snprintf(err, errcap, "configuration file \"%s\" contains no entries", path);
        rc = HBA_ESYNTAX;
    }
    return rc;
}

/*
 * Whether a list of names takes name: all, the exact name, or sameuser (a
 * database list only) when the database is named as the user is.
 */
static bool hba_names_match(const struct hba_name *names, size_t n, const char *name,
                            const char *user)
{
    for (size_t i = 0; i < n; i++) {
        if (names[i].kind == HBA_NAME_ALL ||
            (names[i].kind == HBA_NAME_SAMEUSER && strcmp(name, user) == 0) ||
            (names[i].kind == HBA_NAME_EXACT && strcmp(names[i].name, name) == 0))
            return true;
    }
    return false;
}

/*
 * Whether the line's connection type takes the request: local the Unix
 * socket, host any TCP one, hostssl and hostnossl by TLS.
 */
static bool hba_conn_match(enum hba_conn conn, const struct hba_request *r)
{
    switch (conn) {
    case HBA_LOCAL:
        return r->addr == NULL;
    case HBA_HOST:
        return r->addr != NULL;
    case HBA_HOSTSSL:
        return r->addr != NULL && r->tls;
    case HBA_HOSTNOSSL:
        return r->addr != NULL && !r->tls;
    }
    return false;
}

const struct hba_line *hba_match(const struct hba_file *f, const struct hba_request *r)
{
    for (size_t i = 0; i < f->count; i++) {
        const struct hba_line *l = &f->lines[i];
        if (hba_conn_match(l->conn, r) &&
            hba_names_match(l->databases, l->n_databases, r->database, r->user) &&
            hba_names_match(l->users, l->n_users, r->user, r->user) &&
            (l->any_address || cidr_contains(&l->address, r->addr)))
            return l;
    }
    return NULL;
}

const char *hba_method_name(enum hba_method m)
{
    switch (m) {
    case HBA_METHOD_SCRAM:
        return "scram-sha-256";
    case HBA_METHOD_CERT:
        return "cert";
    case HBA_METHOD_TRUST:
        return "trust";
    case HBA_METHOD_REJECT:
        return "reject";
    }
    return "?";
}

bool hba_uses_method(const struct hba_file *f, enum hba_method m)
{
    for (size_t i = 0; i < f->count; i++)
        if (f->lines[i].method == m)
            return true;
    return false;
}

bool hba_uses_certificates(const struct hba_file *f)
{
    for (size_t i = 0; i < f->count; i++)
        if (f->lines[i].clientcert != HBA_CLIENTCERT_NONE)
            return true;
    return false;
}
