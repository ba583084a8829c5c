/*
 * config.c — INI loading (iniparser) driven by one table of settings, so
 * that parsing, SHOW CONFIG and reload checks cannot disagree.
 */
#include "proxy/config.h"

#include "proxy/log.h"
#include "routing/cities.h"
#include "routing/geoip.h"

#include <ctype.h>
#include <errno.h>
#include <iniparser/iniparser.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum setting_type { T_STR, T_INT, T_MS, T_BOOL, T_ENUM, T_TLV };

struct setting {
    const char *name;
    enum setting_type type;
    size_t offset;
    const char *def;
    bool reloadable;
    const char *const *choices; /* T_ENUM: index is the stored value */
};

static const char *const auth_choices[] = {"scram", "passthrough", NULL};
static const char *const client_tls_choices[] = {"disable", "allow", "require", NULL};
static const char *const server_tls_choices[] = {"disable",   "prefer",      "require",
                                                 "verify-ca", "verify-full", NULL};
static const char *const proxy_protocol_choices[] = {"off", "optional", "required", NULL};

#define S(n, t, d, r)                                                                              \
    {                                                                                              \
#n, t, offsetof(struct config, n), d, r, NULL                                              \
    }
#define E(n, d, r, c)                                                                              \
    {                                                                                              \
#n, T_ENUM, offsetof(struct config, n), d, r, c                                            \
    }

static const struct setting config_settings[] = {
    S(listen_addr, T_STR, "127.0.0.1", false),
    S(listen_port, T_INT, "6432", false),
    S(unix_socket_dir, T_STR, "/tmp", false),
    S(admin_db, T_STR, "pgnear", true),
    S(admin_users, T_STR, "", true),
    E(auth, "", true, auth_choices),
    S(auth_file, T_STR, "", true),
    S(auth_query, T_STR, "", true),
    E(client_tls, "disable", true, client_tls_choices),
    S(client_tls_cert_file, T_STR, "", true),
    S(client_tls_key_file, T_STR, "", true),
    E(server_tls, "prefer", true, server_tls_choices),
    S(server_tls_ca_file, T_STR, "", true),
    S(server_tls_cert_file, T_STR, "", true),
    S(server_tls_key_file, T_STR, "", true),
    S(server_conninfo, T_STR, "", true),
    E(proxy_protocol, "off", true, proxy_protocol_choices),
    S(proxy_tlv_city, T_TLV, "0xE3", true),
    S(proxy_tlv_region, T_TLV, "0xE4", true),
    S(proxy_tlv_location, T_TLV, "0xE5", true),
    S(trusted_proxies, T_STR, "", true),
    S(client_hints, T_BOOL, "on", true),
    S(geoip_db, T_STR, "", true),
    S(cities_file, T_STR, "", true),
    S(default_region, T_STR, "", true),
    S(health_check_interval_ms, T_MS, "2s", true),
    S(health_check_timeout_ms, T_MS, "1s", true),
    S(max_client_conn, T_INT, "10000", true),
    S(client_login_timeout_ms, T_MS, "15s", true),
    S(server_connect_timeout_ms, T_MS, "5s", true),
    S(shutdown_timeout_ms, T_MS, "30s", true),
    S(tcp_keepalive, T_BOOL, "on", true),
    S(tcp_keepidle_ms, T_MS, "60s", true),
    S(tcp_keepintvl_ms, T_MS, "10s", true),
    S(tcp_keepcnt, T_INT, "6", true),
    S(workers, T_INT, "1", false),
    S(websocket_port, T_INT, "0", false),
    S(metrics_addr, T_STR, "", false),
    S(migrations_dir, T_STR, "", true),
    S(migrations_db, T_STR, "", true),
    S(peers, T_STR, "", true),
    S(pool_mode, T_STR, "none", true),
    S(logfile, T_STR, "", true),
};
#define N_SETTINGS (sizeof(config_settings) / sizeof(config_settings[0]))

/* Users write health_check_interval, the struct stores milliseconds. */
static bool setting_name_matches(const struct setting *s, const char *name)
{
    size_t n = strlen(name);
    if (s->type == T_MS)
        return strncmp(s->name, name, n) == 0 && strcmp(s->name + n, "_ms") == 0;
    return strcmp(s->name, name) == 0;
}

static const char *setting_display_name(const struct setting *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", s->name);
    if (s->type == T_MS)
        buf[strlen(buf) - 3] = '\0';
    return buf;
}

/* "15s", "1500ms", "2min", "1h" or a bare number of seconds. */
static bool parse_duration_ms(const char *v, int *out)
{
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    if (end == v || errno != 0 || !isfinite(n) || n < 0)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    double mult;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "min") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return false;
    if (n * mult > INT_MAX)
        return false;
    *out = (int)(n * mult);
    return true;
}

static bool parse_bool(const char *v, bool *out)
{
    static const char *const yes[] = {"on", "true", "yes", "1"}, *const no[] = {"off", "false",
                                                                                "no", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return *out = true, true;
        if (strcasecmp(v, no[i]) == 0)
            return *out = false, true;
    }
    return false;
}

static bool setting_assign(struct config *cfg, const struct setting *s, const char *value)
{
    char *field = (char *)cfg + s->offset;
    char *end;
    long n;
    switch (s->type) {
    case T_STR: {
        char *copy = strdup(value);
        if (copy == NULL)
            return false;
        free(*(char **)field);
        *(char **)field = copy;
        return true;
    }
    case T_INT:
        errno = 0;
        n = strtol(value, &end, 10);
        if (end == value || *end != '\0' || errno != 0 || n < 0 || n > INT_MAX)
            return false;
        *(int *)field = (int)n;
        return true;
    case T_MS:
        return parse_duration_ms(value, (int *)field);
    case T_TLV: /* PROXY v2 custom range only */
        errno = 0;
        n = strtol(value, &end, 0);
        if (end == value || *end != '\0' || errno != 0 || n < PP2_TYPE_MIN_CUSTOM ||
            n > PP2_TYPE_MAX_CUSTOM)
            return false;
        *(int *)field = (int)n;
        return true;
    case T_BOOL:
        return parse_bool(value, (bool *)field);
    case T_ENUM:
        if (value[0] == '\0') {
            *(int *)field = -1;
            return true;
        }
        for (int i = 0; s->choices[i] != NULL; i++)
            if (strcasecmp(value, s->choices[i]) == 0)
                return *(int *)field = i, true;
        return false;
    }
    return false;
}

static void setting_format(const struct config *cfg, const struct setting *s, char *buf, size_t cap)
{
    const char *field = (const char *)cfg + s->offset;
    switch (s->type) {
    case T_STR:
        snprintf(buf, cap, "%s", *(char *const *)field ? *(char *const *)field : "");
        break;
    case T_INT:
        snprintf(buf, cap, "%d", *(const int *)field);
        break;
    case T_TLV:
        snprintf(buf, cap, "0x%02X", *(const int *)field);
        break;
    case T_MS:
        snprintf(buf, cap, "%dms", *(const int *)field);
        break;
    case T_BOOL:
        snprintf(buf, cap, "%s", *(const bool *)field ? "on" : "off");
        break;
    case T_ENUM: {
        int v = *(const int *)field;
        snprintf(buf, cap, "%s", v >= 0 ? s->choices[v] : "");
        break;
    }
    }
}

/* Errors name the file, section and key: iniparser keeps no line numbers. */
static bool load_fail(char *err, size_t errcap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool load_fail(char *err, size_t errcap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errcap, fmt, ap);
    va_end(ap);
    return false;
}

static bool load_pgnear_key(struct config *cfg, const char *name, const char *value, char *err,
                            size_t errcap)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (!setting_name_matches(&config_settings[i], name))
            continue;
        if (!setting_assign(cfg, &config_settings[i], value))
            return load_fail(err, errcap, "%s: invalid value \"%s\" for setting \"%s\"", cfg->path,
                             value, name);
        return true;
    }
    return load_fail(err, errcap, "%s: unrecognized setting \"%s\" in [pgnear]", cfg->path, name);
}

static bool load_region_key(struct config *cfg, struct region *r, const char *name,
                            const char *value, char *err, size_t errcap)
{
    if (strcmp(name, "location") == 0) {
        double lat, lon;
        if (!region_parse_location(value, &lat, &lon))
            return load_fail(err, errcap,
                             "%s: invalid location \"%s\" for region \"%s\": expected "
                             "latitude, longitude in degrees",
                             cfg->path, value, r->name);
        region_set_location(r, lat, lon);
        return true;
    }
    if (strcmp(name, "hosts") == 0) {
        char why[512];
        if (region_parse_hosts(r, value, why, sizeof(why)) != NULL)
            return load_fail(err, errcap, "%s: %s", cfg->path, why);
        return true;
    }
    return load_fail(err, errcap, "%s: unrecognized setting \"%s\" in [region %s]", cfg->path, name,
                     r->name);
}

static bool valid_region_name(const char *name)
{
    if (*name == '\0')
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_')
            return false;
    return true;
}

/* Calls fn for every key of one section, with the "section:" prefix removed. */
static bool load_section_keys(struct config *cfg, dictionary *d, const char *section,
                              struct region *r, char *err, size_t errcap)
{
    int n = iniparser_getsecnkeys(d, section);
    if (n <= 0)
        return true;
    const char **keys = calloc((size_t)n, sizeof(*keys));
    if (keys == NULL || iniparser_getseckeys(d, section, keys) == NULL) {
        free(keys);
        return load_fail(err, errcap, "out of memory");
    }
    bool ok = true;
    size_t prefix = strlen(section) + 1;
    for (int i = 0; i < n && ok; i++) {
        const char *value = iniparser_getstring(d, keys[i], "");
        const char *name = keys[i] + prefix;
        if (r != NULL)
            ok = load_region_key(cfg, r, name, value, err, errcap);
        else if (strcmp(section, "pgnear") == 0)
            ok = load_pgnear_key(cfg, name, value, err, errcap);
    }
    free(keys);
    return ok;
}

static bool load_section(struct config *cfg, dictionary *d, const char *section, char *err,
                         size_t errcap)
{
    if (strcmp(section, "cities") == 0)
        return true; /* after the regions: load_city_overrides() */
    if (strcmp(section, "pgnear") == 0)
        return load_section_keys(cfg, d, section, NULL, err, errcap);
    if (strncmp(section, "region ", 7) != 0)
        return load_fail(err, errcap, "%s: unrecognized section [%s]", cfg->path, section);
    const char *name = section + 7;
    while (*name == ' ')
        name++;
    if (!valid_region_name(name))
        return load_fail(err, errcap, "%s: invalid region name \"%s\"", cfg->path, name);
    struct region *r = region_set_add(&cfg->regions, name);
    if (r == NULL)
        return load_fail(err, errcap, "out of memory");
    return load_section_keys(cfg, d, section, r, err, errcap);
}

/*
 * iniparser reports syntax errors through a callback, naming the file it
 * read (our prepared copy, see load_prepare) and the line; the log gets the
 * line number and text, and the caller names the real file.
 */
static int load_syntax_error(const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *at = strstr(msg, " ("), *text = strstr(msg, "-> ");
    int line;
    if (at != NULL && text != NULL && sscanf(at, " (%d)", &line) == 1)
        log_error(0, "configuration syntax error on line %d: %.*s", line,
                  (int)strcspn(text + 3, "\n"), text + 3);
    else
        log_error(0, "%s", msg);
    return 0;
}

static bool config_check_regions(struct config *cfg, char *err, size_t errcap);

/* [cities]: city = region, like PARTITION BY LIST (city); names are folded like lookups. */
static bool load_city_overrides(struct config *cfg, dictionary *d, char *err, size_t errcap)
{
    int n = iniparser_getsecnkeys(d, "cities");
    if (n <= 0)
        return true;
    const char **keys = calloc((size_t)n, sizeof(*keys));
    cfg->overrides = calloc((size_t)n, sizeof(*cfg->overrides));
    if (keys == NULL || cfg->overrides == NULL || iniparser_getseckeys(d, "cities", keys) == NULL) {
        free(keys);
        return load_fail(err, errcap, "out of memory");
    }
    bool ok = true;
    for (int i = 0; i < n && ok; i++) {
        const char *city = keys[i] + strlen("cities:");
        const char *name = iniparser_getstring(d, keys[i], "");
        struct city_override *o = &cfg->overrides[cfg->n_overrides];
        char folded[256];
        o->region = region_set_find(&cfg->regions, name);
        if (o->region == NULL)
            ok = load_fail(err, errcap, "%s: [cities] %s = %s: no such region", cfg->path, city,
                           name);
        else if (!city_fold(city, folded, sizeof(folded)) || (o->city = strdup(folded)) == NULL)
            ok = load_fail(err, errcap, "%s: [cities] invalid city name \"%s\"", cfg->path, city);
        else
            cfg->n_overrides++;
    }
    free(keys);
    return ok;
}

/* A section or a key seen by load_check_duplicates, and the line it was on. */
struct ini_seen {
    char name[320];
    int line;
};

/* Lowercased and trimmed, as iniparser stores names. */
static void ini_fold_name(char *dst, size_t cap, const char *p, size_t n)
{
    while (n > 0 && isspace((unsigned char)*p))
        p++, n--;
    while (n > 0 && isspace((unsigned char)p[n - 1]))
        n--;
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        dst[i] = (char)tolower((unsigned char)p[i]);
    dst[n] = '\0';
}

/* The name of a "[section]" or "key = value" line in out; false for anything else. */
static bool ini_line_name(const char *line, const char *section, char *out, size_t cap)
{
    char name[300];
    while (isspace((unsigned char)*line))
        line++;
    if (*line == '\0' || *line == ';' || *line == '#')
        return false;
    if (*line == '[') {
        const char *end = strchr(line, ']');
        if (end == NULL)
            return false; /* iniparser reports it */
        ini_fold_name(name, sizeof(name), line + 1, (size_t)(end - line - 1));
        int w = snprintf(out, cap, "[%s]", name);
        return w > 0 && (size_t)w < cap; /* a name too long to compare is left to iniparser */
    }
    const char *eq = strchr(line, '=');
    if (eq == NULL)
        return false;
    ini_fold_name(name, sizeof(name), line, (size_t)(eq - line));
    int w = snprintf(out, cap, "%s:%s", section, name);
    return w > 0 && (size_t)w < cap;
}

/* The names seen so far in one file. */
struct ini_names {
    struct ini_seen *items;
    size_t count, cap;
    char section[300];
};

/* Records a section or key name; false (err set) when it was seen before. */
static bool ini_note_name(struct ini_names *n, const char *name, const char *path, int lineno,
                          char *err, size_t errcap)
{
    for (size_t i = 0; i < n->count; i++) {
        if (strcmp(n->items[i].name, name) != 0)
            continue;
        if (name[0] == '[')
            return load_fail(err, errcap, "%s:%d: section %s appears again (first at line %d)",
                             path, lineno, name, n->items[i].line);
        return load_fail(err, errcap, "%s:%d: \"%s\" is set again in [%s] (first at line %d)", path,
                         lineno, strchr(name, ':') + 1, n->section, n->items[i].line);
    }
    if (n->count == n->cap) {
        size_t ncap = n->cap ? n->cap * 2 : 64;
        struct ini_seen *grown = realloc(n->items, ncap * sizeof(*grown));
        if (grown == NULL)
            return load_fail(err, errcap, "out of memory");
        n->items = grown;
        n->cap = ncap;
    }
    snprintf(n->items[n->count].name, sizeof(n->items[0].name), "%s", name);
    n->items[n->count++].line = lineno;
    return true;
}

/*
 * "[region us-east]   ; Dublin": iniparser refuses a comment after a
 * section header (DESIGN.md's own example has one), so the comment is cut
 * off; anything else after the "]" is left for iniparser to refuse.
 */
static void ini_cut_section_comment(char *line)
{
    char *p = line;
    while (isspace((unsigned char)*p))
        p++;
    char *end = *p == '[' ? strchr(p, ']') : NULL;
    if (end == NULL)
        return;
    char *rest = end + 1;
    while (isspace((unsigned char)*rest))
        rest++;
    if (*rest == ';' || *rest == '#')
        end[1] = '\0';
}

/*
 * Reads the file once, line by line, into out (the copy iniparser loads).
 * iniparser merges a repeated section and lets a repeated key win without
 * a word.  In a proxy's configuration both are mistakes (two [region x]
 * sections would mix their hosts), so they are refused, with line numbers.
 */
static bool load_prepare(const char *path, FILE *out, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return load_fail(err, errcap, "could not open configuration file \"%s\": %s", path,
                         strerror(errno));
    struct ini_names names = {NULL, 0, 0, ""};
    char line[4096], name[320];
    int lineno = 0;
    bool ok = true, continued = false, in_long_line = false;
    while (ok && fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        bool rest_of_long_line = in_long_line;
        in_long_line = len > 0 && line[len - 1] != '\n';
        if (rest_of_long_line) {
            fputs(line, out); /* iniparser refuses such lines itself */
            continue;
        }
        lineno++;
        while (len > 0 && isspace((unsigned char)line[len - 1]))
            line[--len] = '\0';
        ini_cut_section_comment(line);
        fprintf(out, "%s%s", line, in_long_line ? "" : "\n");
        len = strlen(line);
        bool was_continued = continued;
        continued = len > 0 && line[len - 1] == '\\';
        if (was_continued || !ini_line_name(line, names.section, name, sizeof(name)))
            continue;
        if (name[0] == '[')
            snprintf(names.section, sizeof(names.section), "%.*s", (int)strlen(name) - 2, name + 1);
        ok = ini_note_name(&names, name, path, lineno, err, errcap);
    }
    free(names.items);
    fclose(f);
    return ok;
}

static bool load_file(struct config *cfg, char *err, size_t errcap)
{
    if (access(cfg->path, R_OK) != 0)
        return load_fail(err, errcap, "could not open configuration file \"%s\": %s", cfg->path,
                         strerror(errno));
    /* iniparser 4.1 loads only by path: the prepared copy lives in a memfd. */
    int fd = memfd_create("pgnear-config", MFD_CLOEXEC);
    FILE *out = fd >= 0 ? fdopen(dup(fd), "w") : NULL;
    if (out == NULL) {
        if (fd >= 0)
            close(fd);
        return load_fail(err, errcap, "could not prepare the configuration: %s", strerror(errno));
    }
    bool prepared = load_prepare(cfg->path, out, err, errcap);
    if (fclose(out) != 0 && prepared)
        prepared =
            load_fail(err, errcap, "could not prepare the configuration: %s", strerror(errno));
    char copy[64];
    snprintf(copy, sizeof(copy), "/proc/self/fd/%d", fd);
    dictionary *d = NULL;
    if (prepared) {
        iniparser_set_error_callback(load_syntax_error);
        d = iniparser_load(copy);
    }
    close(fd);
    if (!prepared)
        return false;
    if (d == NULL)
        return load_fail(err, errcap, "%s: syntax error (see the log above)", cfg->path);
    bool ok = true;
    int nsec = iniparser_getnsec(d);
    for (int i = 0; i < nsec && ok; i++)
        ok = load_section(cfg, d, iniparser_getsecname(d, i), err, errcap);
    ok = ok && config_check_regions(cfg, err, errcap) && load_city_overrides(cfg, d, err, errcap);
    iniparser_freedict(d);
    return ok;
}

static bool config_set_defaults(struct config *cfg)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!setting_assign(cfg, &config_settings[i], config_settings[i].def))
            return false;
    return true;
}

static bool config_check_regions(struct config *cfg, char *err, size_t errcap)
{
    if (cfg->regions.count == 0)
        return load_fail(err, errcap, "%s: no [region NAME] section", cfg->path);
    for (size_t i = 0; i < cfg->regions.count; i++) {
        struct region *r = &cfg->regions.items[i];
        for (size_t h = 0; h < r->nhosts; h++)
            r->hosts[h].region = r;
    }
    for (size_t i = 0; i < cfg->regions.count; i++)
        if (cfg->regions.items[i].nhosts == 0)
            return load_fail(err, errcap, "%s: region \"%s\" has no hosts", cfg->path,
                             cfg->regions.items[i].name);
    if (cfg->default_region[0] == '\0') {
        cfg->default_region_ptr = &cfg->regions.items[0];
        return true;
    }
    cfg->default_region_ptr = region_set_find(&cfg->regions, cfg->default_region);
    if (cfg->default_region_ptr == NULL)
        return load_fail(err, errcap, "default_region \"%s\" is not a configured region",
                         cfg->default_region);
    return true;
}

static bool config_check_auth(struct config *cfg, char *err, size_t errcap)
{
    bool have_source = cfg->auth_file[0] != '\0' || cfg->auth_query[0] != '\0';
    if (cfg->auth < 0)
        cfg->auth = have_source ? AUTH_SCRAM : AUTH_PASSTHROUGH;
    if (cfg->auth == AUTH_SCRAM && !have_source)
        return load_fail(err, errcap, "%s", "auth = scram needs auth_file or auth_query");
    if (cfg->auth_file[0] != '\0' && userlist_load(&cfg->users, cfg->auth_file, err, errcap) != 0)
        return false;
    return true;
}

static bool config_check_tls(struct config *cfg, char *err, size_t errcap)
{
    if (cfg->client_tls != CLIENT_TLS_DISABLE) {
        if (cfg->client_tls_cert_file[0] == '\0' || cfg->client_tls_key_file[0] == '\0')
            return load_fail(err, errcap, "%s",
                             "client_tls needs client_tls_cert_file and client_tls_key_file");
        cfg->client_tls_ctx = tls_make_client_side_ctx(cfg->client_tls_cert_file,
                                                       cfg->client_tls_key_file, err, errcap);
        if (cfg->client_tls_ctx == NULL)
            return false;
    }
    if (cfg->server_tls != TLS_SERVER_DISABLE) {
        cfg->server_tls_ctx = tls_make_server_side_ctx(
            (enum tls_server_mode)cfg->server_tls, cfg->server_tls_ca_file,
            cfg->server_tls_cert_file, cfg->server_tls_key_file, err, errcap);
        if (cfg->server_tls_ctx == NULL)
            return false;
    }
    return true;
}

/* Locality sources: trusted proxies, TLV types, the city table, GeoIP databases. */
static bool config_load_routing(struct config *cfg, char *err, size_t errcap)
{
    char why[512];
    if (!cidr_list_parse(&cfg->trusted, cfg->trusted_proxies, why, sizeof(why)))
        return load_fail(err, errcap, "%s: trusted_proxies: %s", cfg->path, why);
    cfg->tlv_types.city = (uint8_t)cfg->proxy_tlv_city;
    cfg->tlv_types.region = (uint8_t)cfg->proxy_tlv_region;
    cfg->tlv_types.location = (uint8_t)cfg->proxy_tlv_location;
    if (cfg->tlv_types.city == cfg->tlv_types.region ||
        cfg->tlv_types.city == cfg->tlv_types.location ||
        cfg->tlv_types.region == cfg->tlv_types.location)
        return load_fail(err, errcap, "%s: proxy_tlv_city, _region and _location must differ",
                         cfg->path);
    if (cfg->cities_file[0] != '\0' &&
        (cfg->cities = city_table_load(cfg->cities_file, why, sizeof(why))) == NULL)
        return load_fail(err, errcap, "cities_file: %s", why);
    if (cfg->geoip_db[0] != '\0' &&
        (cfg->geoip = geoip_open(cfg->geoip_db, why, sizeof(why))) == NULL)
        return load_fail(err, errcap, "geoip_db: %s", why);
    cfg->routing = (struct routing_data){&cfg->regions, cfg->default_region_ptr, cfg->cities,
                                         cfg->geoip,    cfg->overrides,          cfg->n_overrides};
    return true;
}

static bool config_check_limits(struct config *cfg, char *err, size_t errcap)
{
    if (cfg->listen_port <= 0 || cfg->listen_port > 65535)
        return load_fail(err, errcap, "%s", "listen_port must be between 1 and 65535");
    if (cfg->workers < 1 || cfg->workers > 64)
        return load_fail(err, errcap, "%s", "workers must be between 1 and 64");
    if (strcmp(cfg->pool_mode, "none") != 0)
        return load_fail(err, errcap, "pool_mode \"%s\" is not supported yet (use none)",
                         cfg->pool_mode);
    if (cfg->max_client_conn <= 0)
        return load_fail(err, errcap, "%s", "max_client_conn must be positive");
    if (cfg->tcp_keepidle_ms < 1000 || cfg->tcp_keepintvl_ms < 1000 || cfg->tcp_keepcnt < 1)
        return load_fail(
            err, errcap, "%s",
            "tcp_keepidle and tcp_keepintvl must be 1s or more, tcp_keepcnt 1 or more");
    return true;
}

static void config_free(struct config *cfg);

struct config *config_load(const char *path, char *err, size_t errcap)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL || (cfg->path = strdup(path)) == NULL || !config_set_defaults(cfg)) {
        snprintf(err, errcap, "out of memory");
        config_free(cfg);
        return NULL;
    }
    if (!load_file(cfg, err, errcap) || !config_check_limits(cfg, err, errcap) ||
        !config_load_routing(cfg, err, errcap) || !config_check_auth(cfg, err, errcap) ||
        !config_check_tls(cfg, err, errcap)) {
        config_free(cfg);
        return NULL;
    }
    cfg->refcount = 1;
    return cfg;
}

void config_unref(struct config *cfg)
{
    if (cfg != NULL && __atomic_sub_fetch(&cfg->refcount, 1, __ATOMIC_ACQ_REL) <= 0)
        config_free(cfg);
}

int config_keep_restart_only(struct config *fresh, const struct config *running)
{
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *st = &config_settings[i];
        if (st->reloadable)
            continue;
        char value[1024];
        setting_format(running, st, value, sizeof(value));
        if (!setting_assign(fresh, st, value))
            return -1;
    }
    return 0;
}

static void config_free(struct config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (config_settings[i].type == T_STR)
            free(*(char **)((char *)cfg + config_settings[i].offset));
    region_set_free(&cfg->regions);
    for (size_t i = 0; i < cfg->n_overrides; i++)
        free(cfg->overrides[i].city);
    free(cfg->overrides);
    if (cfg->cities)
        city_table_free(cfg->cities);
    if (cfg->geoip)
        geoip_close(cfg->geoip);
    userlist_free(&cfg->users);
    SSL_CTX_free(cfg->client_tls_ctx);
    SSL_CTX_free(cfg->server_tls_ctx);
    free(cfg->path);
    free(cfg);
}

void config_visit(const struct config *cfg, config_visit_fn fn, void *arg)
{
    char name[64], value[1024];
    for (size_t i = 0; i < N_SETTINGS; i++) {
        setting_format(cfg, &config_settings[i], value, sizeof(value));
        fn(arg, setting_display_name(&config_settings[i], name, sizeof(name)), value,
           config_settings[i].reloadable);
    }
}

int config_restart_only_changes(const struct config *old_cfg, const struct config *new_cfg,
                                const char **names, int max)
{
    int n = 0;
    char a[1024], b[1024];
    for (size_t i = 0; i < N_SETTINGS && n < max; i++) {
        if (config_settings[i].reloadable)
            continue;
        setting_format(old_cfg, &config_settings[i], a, sizeof(a));
        setting_format(new_cfg, &config_settings[i], b, sizeof(b));
        if (strcmp(a, b) != 0)
            names[n++] = config_settings[i].name;
    }
    return n;
}

int config_warnings(const struct config *cfg, char warnings[][256], int max)
{
    int n = 0;
    if (n < max && cfg->auth == AUTH_PASSTHROUGH && cfg->client_tls != CLIENT_TLS_DISABLE &&
        cfg->server_tls != TLS_SERVER_DISABLE)
        snprintf(warnings[n++], 256,
                 "auth = passthrough with TLS on both sides: SCRAM logins from clients that "
                 "prefer channel binding (libpq's default) will fail; use auth = scram, or "
                 "have clients set channel_binding=disable");
    return n;
}
