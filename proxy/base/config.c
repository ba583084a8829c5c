/*
 * config.c — INI loading (iniparser) driven by one table of settings, so
 * that parsing, SHOW CONFIG and reload checks cannot disagree.
 */
#include "proxy/config.h"

#include "proxy/auth_throttle.h"
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

enum setting_type { T_STR, T_INT, T_MS, T_BOOL, T_ENUM, T_TLV, T_SIZE };

struct setting {
    const char *name;
    enum setting_type type;
    size_t offset;
    const char *def;
    bool reloadable;
    const char *const *choices; /* T_ENUM: index is the stored value */
};

static const char *const auth_choices[] = {"scram", "passthrough", NULL};
static const char *const pool_mode_choices[] = {"none", "session", NULL};
static const char *const client_tls_choices[] = {"disable", "allow", "require", NULL};
static const char *const server_tls_choices[] = {"disable",   "prefer",      "require",
                                                 "verify-ca", "verify-full", NULL};
static const char *const proxy_protocol_choices[] = {"off", "optional", "required", NULL};
static const char *const websocket_untrusted_choices[] = {"ignore", "refuse", NULL};
static const char *const websocket_auth_choices[] = {"cleartext", "scram", NULL};

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
    S(auth_failure_threshold, T_INT, "3", true),
    S(auth_failure_delay_ms, T_MS, "100ms", true),
    S(auth_failure_max_delay_ms, T_MS, "10s", true),
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
    S(health_check_fall, T_INT, "3", true),
    S(max_client_conn, T_INT, "10000", true),
    S(client_login_timeout_ms, T_MS, "15s", true),
    S(server_connect_timeout_ms, T_MS, "5s", true),
    S(shutdown_timeout_ms, T_MS, "30s", true),
    S(pause_timeout_ms, T_MS, "10s", true),
    S(tcp_keepalive, T_BOOL, "on", true),
    S(tcp_keepidle_ms, T_MS, "60s", true),
    S(tcp_keepintvl_ms, T_MS, "10s", true),
    S(tcp_keepcnt, T_INT, "6", true),
    S(workers, T_INT, "1", false),
    S(websocket_port, T_INT, "0", false),
    S(websocket_tls, T_BOOL, "off", true),
    S(websocket_path, T_STR, "/, /v2", true),
    E(websocket_untrusted, "ignore", true, websocket_untrusted_choices),
    S(websocket_max_frame, T_SIZE, "64MB", true),
    S(websocket_ping_interval_ms, T_MS, "0", true),
    S(websocket_handshake_timeout_ms, T_MS, "5s", true),
    E(websocket_auth, "cleartext", true, websocket_auth_choices),
    S(geo_region_header, T_STR, "X-Region", true),
    S(geo_city_header, T_STR, "X-City", true),
    S(geo_country_header, T_STR, "X-Country", true),
    S(geo_lat_long_header, T_STR, "", true),
    S(metrics_addr, T_STR, "", false),
    S(migrations_dir, T_STR, "", true),
    S(migrations_db, T_STR, "", true),
    S(migration_order, T_STR, "", true),
    S(migration_hold_timeout_ms, T_MS, "10s", true),
    S(peers, T_STR, "", true),
    E(pool_mode, "session", true, pool_mode_choices),
    S(server_reset_query, T_STR, "DISCARD ALL", true),
    S(server_check_query, T_STR, "", true),
    S(server_check_delay_ms, T_MS, "30s", true),
    S(server_lifetime_ms, T_MS, "3600s", true),
    S(server_idle_timeout_ms, T_MS, "600s", true),
    S(query_wait_timeout_ms, T_MS, "120s", true),
    S(pool_size, T_INT, "20", true),
    S(min_pool_size, T_INT, "0", true),
    S(max_db_connections, T_INT, "0", true),
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

/* "64MB", "16kB", "1GB" or a bare number of bytes; at most 1GB (PostgreSQL's largest message). */
static bool parse_size(const char *v, int *out)
{
    static const struct {
        const char *unit;
        long long mult;
    } units[] = {{"", 1}, {"B", 1}, {"kB", 1024}, {"MB", 1024 * 1024}, {"GB", 1024 * 1024 * 1024}};
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (end == v || errno != 0 || n < 0)
        return false;
    while (isspace((unsigned char)*end))
        end++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].unit) != 0)
            continue;
        if (n > (1024LL * 1024 * 1024) / units[i].mult)
            return false;
        *out = (int)(n * units[i].mult);
        return true;
    }
    return false;
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
    case T_SIZE:
        return parse_size(value, (int *)field);
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
    case T_SIZE:
        snprintf(buf, cap, "%dB", *(const int *)field);
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

/* A section or a key seen by load_prepare, and the line it was on. */
struct ini_seen {
    char name[320];
    int line;
};

/* The names of one file: "[section]" and "section:key", as iniparser folds them. */
struct ini_names {
    struct ini_seen *items;
    size_t count, cap;
    char section[300];
};

/*
 * One load: the configuration being built and every problem found so far.
 * Loading goes on after a problem wherever what follows does not depend
 * on it, so that pgnear --check can list them all at once.
 */
struct load_ctx {
    struct config *cfg;
    enum config_scope scope;
    struct config_problems *problems;
    struct ini_names names; /* the lines of sections and keys, for messages */
    const struct config_override *overrides;
    int noverrides;
};

static void problem_v(struct load_ctx *lc, int line, const char *fmt, va_list ap)
{
    struct config_problems *p = lc->problems;
    if (p->count == CONFIG_MAX_PROBLEMS) {
        p->dropped++;
        return;
    }
    char *out = p->items[p->count++];
    size_t cap = sizeof(p->items[0]);
    int n = line > 0 ? snprintf(out, cap, "%s:%d: ", lc->cfg->path, line)
                     : snprintf(out, cap, "%s: ", lc->cfg->path);
    if (n > 0 && (size_t)n < cap)
        vsnprintf(out + n, cap - (size_t)n, fmt, ap);
}

/* The line of "[section]" or "section:key" in the file; 0 when it is not there. */
static int ini_line_of(const struct ini_names *names, const char *name)
{
    for (size_t i = 0; name != NULL && i < names->count; i++)
        if (strcmp(names->items[i].name, name) == 0)
            return names->items[i].line;
    return 0;
}

/* Records a problem at a line; false, so that callers can return it. */
static bool problem_at(struct load_ctx *lc, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool problem_at(struct load_ctx *lc, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(lc, line, fmt, ap);
    va_end(ap);
    return false;
}

/* Records a problem at the line of name ("[region eu]", "pgnear:auth", NULL for none). */
static bool problem(struct load_ctx *lc, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool problem(struct load_ctx *lc, const char *name, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(lc, ini_line_of(&lc->names, name), fmt, ap);
    va_end(ap);
    return false;
}

/* --explain needs only these of [pgnear]; the rest is not even read. */
static bool setting_for_routing(const char *name)
{
    return strcmp(name, "cities_file") == 0 || strcmp(name, "geoip_db") == 0 ||
           strcmp(name, "default_region") == 0;
}

/* key is the whole "pgnear:name" of the file, for the line number. */
static void load_pgnear_key(struct load_ctx *lc, const char *key, const char *name,
                            const char *value)
{
    if (lc->scope == CONFIG_SCOPE_ROUTING && !setting_for_routing(name))
        return;
    for (size_t i = 0; i < N_SETTINGS; i++) {
        if (!setting_name_matches(&config_settings[i], name))
            continue;
        if (!setting_assign(lc->cfg, &config_settings[i], value))
            problem(lc, key, "invalid value \"%s\" for setting \"%s\"", value, name);
        return;
    }
    problem(lc, key, "unrecognized setting \"%s\" in [pgnear]", name);
}

static void load_region_key(struct load_ctx *lc, struct region *r, const char *key,
                            const char *name, const char *value)
{
    if (strcmp(name, "location") == 0) {
        double lat, lon;
        if (region_parse_location(value, &lat, &lon))
            region_set_location(r, lat, lon);
        else
            problem(lc, key,
                    "invalid location \"%s\" for region \"%s\": expected latitude, longitude "
                    "in degrees",
                    value, r->name);
        return;
    }
    if (strcmp(name, "hosts") == 0) {
        char why[512];
        if (region_parse_hosts(r, value, why, sizeof(why)) != NULL)
            problem(lc, key, "%s", why);
        return;
    }
    problem(lc, key, "unrecognized setting \"%s\" in [region %s]", name, r->name);
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

/* Every key of one section, with the "section:" prefix removed. */
static void load_section_keys(struct load_ctx *lc, dictionary *d, const char *section,
                              struct region *r)
{
    int n = iniparser_getsecnkeys(d, section);
    if (n <= 0)
        return;
    const char **keys = calloc((size_t)n, sizeof(*keys));
    if (keys == NULL || iniparser_getseckeys(d, section, keys) == NULL) {
        free(keys);
        problem(lc, NULL, "out of memory");
        return;
    }
    size_t prefix = strlen(section) + 1;
    for (int i = 0; i < n; i++) {
        const char *value = iniparser_getstring(d, keys[i], "");
        if (r != NULL)
            load_region_key(lc, r, keys[i], keys[i] + prefix, value);
        else
            load_pgnear_key(lc, keys[i], keys[i] + prefix, value);
    }
    free(keys);
}

static void load_section(struct load_ctx *lc, dictionary *d, const char *section)
{
    char at[320];
    snprintf(at, sizeof(at), "[%s]", section);
    if (strcmp(section, "cities") == 0)
        return; /* after the regions: load_city_overrides() */
    if (strcmp(section, "pgnear") == 0) {
        load_section_keys(lc, d, section, NULL);
        return;
    }
    if (strncmp(section, "region ", 7) != 0) {
        if (lc->scope == CONFIG_SCOPE_ALL)
            problem(lc, at, "unrecognized section [%s]", section);
        return;
    }
    const char *name = section + 7;
    while (*name == ' ')
        name++;
    if (!valid_region_name(name)) {
        problem(lc, at, "invalid region name \"%s\"", name);
        return;
    }
    struct region *r = region_set_add(&lc->cfg->regions, name);
    if (r == NULL) {
        problem(lc, NULL, "out of memory");
        return;
    }
    load_section_keys(lc, d, section, r);
}

/*
 * iniparser reports syntax errors through a callback without a context
 * argument, naming the file it read (our prepared copy, see load_prepare)
 * and the line: the load in progress on this thread records them.
 */
static __thread struct load_ctx *syntax_ctx;

static int load_syntax_error(const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const char *at = strstr(msg, " ("), *text = strstr(msg, "-> ");
    int line = 0;
    if (at == NULL || sscanf(at, " (%d)", &line) != 1)
        line = 0;
    if (syntax_ctx == NULL)
        log_error(0, "%s", msg);
    else if (text != NULL)
        problem_at(syntax_ctx, line, "syntax error: %.*s", (int)strcspn(text + 3, "\n"), text + 3);
    else if (strstr(msg, "too long") != NULL)
        problem_at(syntax_ctx, line, "syntax error: line too long");
    else
        problem_at(syntax_ctx, line, "%.*s", (int)strcspn(msg, "\n"), msg);
    return 0;
}

/* One [cities] entry: city = region, names folded like lookups. */
static void load_city_override(struct load_ctx *lc, dictionary *d, const char *key)
{
    struct config *cfg = lc->cfg;
    const char *city = key + strlen("cities:");
    const char *name = iniparser_getstring(d, key, "");
    struct city_override *o = &cfg->overrides[cfg->n_overrides];
    char folded[256];
    o->region = region_set_find(&cfg->regions, name);
    if (o->region == NULL)
        problem(lc, key, "[cities] %s = %s: no such region", city, name);
    else if (!city_fold(city, folded, sizeof(folded)))
        problem(lc, key, "[cities] invalid city name \"%s\"", city);
    else if ((o->city = strdup(folded)) == NULL)
        problem(lc, NULL, "out of memory");
    else
        cfg->n_overrides++;
}

/* [cities]: city = region, like PARTITION BY LIST (city). */
static void load_city_overrides(struct load_ctx *lc, dictionary *d)
{
    int n = iniparser_getsecnkeys(d, "cities");
    if (n <= 0)
        return;
    const char **keys = calloc((size_t)n, sizeof(*keys));
    lc->cfg->overrides = calloc((size_t)n, sizeof(*lc->cfg->overrides));
    if (keys == NULL || lc->cfg->overrides == NULL ||
        iniparser_getseckeys(d, "cities", keys) == NULL) {
        free(keys);
        problem(lc, NULL, "out of memory");
        return;
    }
    for (int i = 0; i < n; i++)
        load_city_override(lc, d, keys[i]);
    free(keys);
}

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

/*
 * Records a section or key name with its line.  One seen before is a
 * problem (iniparser would merge a repeated section and let a repeated key
 * win without a word; in a proxy's configuration both are mistakes: two
 * [region x] sections would mix their hosts).  False only when out of memory.
 */
static bool ini_note_name(struct load_ctx *lc, const char *name, int lineno)
{
    struct ini_names *n = &lc->names;
    int first = ini_line_of(n, name);
    if (first > 0) {
        if (name[0] == '[')
            problem_at(lc, lineno, "section %s appears again (first at line %d)", name, first);
        else
            problem_at(lc, lineno, "\"%s\" is set again in [%s] (first at line %d)",
                       strchr(name, ':') + 1, n->section, first);
        return true;
    }
    if (n->count == n->cap) {
        size_t ncap = n->cap ? n->cap * 2 : 64;
        struct ini_seen *grown = realloc(n->items, ncap * sizeof(*grown));
        if (grown == NULL)
            return problem_at(lc, 0, "out of memory");
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

/* One line of the file into out, and its name into lc->names; false when out of memory. */
static bool load_prepare_line(struct load_ctx *lc, char *line, int lineno, bool *continued,
                              FILE *out)
{
    char name[320];
    size_t len = strlen(line);
    bool long_line = len > 0 && line[len - 1] != '\n';
    while (len > 0 && isspace((unsigned char)line[len - 1]))
        line[--len] = '\0';
    ini_cut_section_comment(line);
    fprintf(out, "%s%s", line, long_line ? "" : "\n");
    len = strlen(line);
    bool was_continued = *continued;
    *continued = len > 0 && line[len - 1] == '\\';
    if (was_continued || !ini_line_name(line, lc->names.section, name, sizeof(name)))
        return true;
    if (name[0] == '[')
        snprintf(lc->names.section, sizeof(lc->names.section), "%.*s", (int)strlen(name) - 2,
                 name + 1);
    else if (lc->names.section[0] == '\0') { /* iniparser would drop it without a word */
        problem_at(lc, lineno, "\"%s\" is set before any section: put it under [pgnear]", name + 1);
        return true;
    }
    return ini_note_name(lc, name, lineno);
}

/*
 * Reads the file once, line by line, into out (the copy iniparser loads),
 * noting the line of every section and key; a repeated one is a problem.
 */
static bool load_prepare(struct load_ctx *lc, FILE *out)
{
    FILE *f = fopen(lc->cfg->path, "r");
    if (f == NULL)
        return problem(lc, NULL, "could not open configuration file: %s", strerror(errno));
    char line[4096];
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
        ok = load_prepare_line(lc, line, ++lineno, &continued, out);
    }
    fclose(f);
    return ok;
}

/* iniparser 4.1 loads only by path: the prepared copy lives in a memfd. */
static dictionary *load_dictionary(struct load_ctx *lc)
{
    int fd = memfd_create("pgnear-config", MFD_CLOEXEC);
    FILE *out = fd >= 0 ? fdopen(dup(fd), "w") : NULL;
    if (out == NULL) {
        if (fd >= 0)
            close(fd);
        problem(lc, NULL, "could not prepare the configuration: %s", strerror(errno));
        return NULL;
    }
    bool prepared = load_prepare(lc, out);
    if (fclose(out) != 0 && prepared)
        prepared = problem(lc, NULL, "could not prepare the configuration: %s", strerror(errno));
    char copy[64];
    snprintf(copy, sizeof(copy), "/proc/self/fd/%d", fd);
    dictionary *d = NULL;
    if (prepared) {
        iniparser_set_error_callback(load_syntax_error);
        syntax_ctx = lc;
        d = iniparser_load(copy);
        syntax_ctx = NULL;
    }
    close(fd);
    return d;
}

static void config_check_regions(struct load_ctx *lc);

/* The sections, then the checks of what they say; false when the file cannot be read. */
static bool load_file(struct load_ctx *lc)
{
    if (access(lc->cfg->path, R_OK) != 0)
        return problem(lc, NULL, "could not open configuration file: %s", strerror(errno));
    dictionary *d = load_dictionary(lc);
    if (d == NULL) { /* why is in the problems: every syntax error is there */
        if (lc->problems->count == 0)
            problem(lc, NULL, "could not load the configuration");
        return false;
    }
    if (lc->noverrides > 0 && iniparser_find_entry(d, "pgnear") == 0)
        iniparser_set(d, "pgnear", NULL); /* the section the overrides go in */
    for (int i = 0; i < lc->noverrides; i++) {
        char key[80];
        snprintf(key, sizeof(key), "pgnear:%s", lc->overrides[i].name);
        if (iniparser_set(d, key, lc->overrides[i].value) != 0)
            problem(lc, NULL, "out of memory");
    }
    int nsec = iniparser_getnsec(d);
    for (int i = 0; i < nsec; i++)
        load_section(lc, d, iniparser_getsecname(d, i));
    config_check_regions(lc);
    load_city_overrides(lc, d);
    iniparser_freedict(d);
    return true;
}

static bool config_set_defaults(struct config *cfg)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!setting_assign(cfg, &config_settings[i], config_settings[i].def))
            return false;
    return true;
}

static void config_check_regions(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    char at[320];
    if (cfg->regions.count == 0) {
        problem(lc, NULL, "no [region NAME] section");
        return;
    }
    for (size_t i = 0; i < cfg->regions.count; i++) {
        struct region *r = &cfg->regions.items[i];
        for (size_t h = 0; h < r->nhosts; h++)
            r->hosts[h].region = r;
        snprintf(at, sizeof(at), "[region %s]", r->name);
        if (r->nhosts == 0)
            problem(lc, at, "region \"%s\" has no hosts", r->name);
    }
    cfg->default_region_ptr = &cfg->regions.items[0];
    if (cfg->default_region[0] == '\0')
        return;
    cfg->default_region_ptr = region_set_find(&cfg->regions, cfg->default_region);
    if (cfg->default_region_ptr == NULL)
        problem(lc, "pgnear:default_region", "default_region \"%s\" is not a configured region",
                cfg->default_region);
}

static void config_check_auth(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    char err[1024];
    bool have_source = cfg->auth_file[0] != '\0' || cfg->auth_query[0] != '\0';
    if (cfg->auth < 0)
        cfg->auth = have_source ? AUTH_SCRAM : AUTH_PASSTHROUGH;
    if (cfg->auth == AUTH_SCRAM && !have_source)
        problem(lc, "pgnear:auth", "auth = scram needs auth_file or auth_query");
    if (cfg->auth_file[0] != '\0' &&
        userlist_load(&cfg->users, cfg->auth_file, err, sizeof(err)) != 0)
        problem(lc, "pgnear:auth_file", "%s", err);
}

/* The line of the first of names ([pgnear] keys) that msg mentions and the file sets. */
static int line_of_named(struct load_ctx *lc, const char *msg, const char *const names[],
                         const char *fallback)
{
    char key[64];
    for (size_t i = 0; names[i] != NULL; i++) {
        snprintf(key, sizeof(key), "pgnear:%s", names[i]);
        int line = ini_line_of(&lc->names, key);
        if (strstr(msg, names[i]) != NULL && line > 0)
            return line;
    }
    snprintf(key, sizeof(key), "pgnear:%s", fallback);
    return ini_line_of(&lc->names, key);
}

static void config_check_tls(struct load_ctx *lc)
{
    static const char *const files[] = {"client_tls_cert_file", "client_tls_key_file",
                                        "server_tls_ca_file",   "server_tls_cert_file",
                                        "server_tls_key_file",  NULL};
    struct config *cfg = lc->cfg;
    char err[1024];
    bool wss = cfg->websocket_tls && cfg->websocket_port != 0;
    if (cfg->client_tls != CLIENT_TLS_DISABLE || wss) {
        /* wss takes the same certificate, even where clients of the TCP port get no TLS. */
        if (cfg->client_tls_cert_file[0] == '\0' || cfg->client_tls_key_file[0] == '\0')
            problem(lc,
                    cfg->client_tls != CLIENT_TLS_DISABLE ? "pgnear:client_tls"
                                                          : "pgnear:websocket_tls",
                    "%s needs client_tls_cert_file and client_tls_key_file",
                    cfg->client_tls != CLIENT_TLS_DISABLE ? "client_tls" : "websocket_tls");
        else if ((cfg->client_tls_ctx =
                      tls_make_client_side_ctx(cfg->client_tls_cert_file, cfg->client_tls_key_file,
                                               err, sizeof(err))) == NULL)
            problem_at(lc, line_of_named(lc, err, files, "client_tls"), "%s", err);
    }
    if (cfg->server_tls != TLS_SERVER_DISABLE) {
        cfg->server_tls_ctx = tls_make_server_side_ctx(
            (enum tls_server_mode)cfg->server_tls, cfg->server_tls_ca_file,
            cfg->server_tls_cert_file, cfg->server_tls_key_file, err, sizeof(err));
        if (cfg->server_tls_ctx == NULL)
            problem_at(lc, line_of_named(lc, err, files, "server_tls"), "%s", err);
    }
}

/* Who may send PROXY headers and the TLV types they use: not routing decisions. */
static void config_check_proxy(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    char why[512];
    if (!cidr_list_parse(&cfg->trusted, cfg->trusted_proxies, why, sizeof(why)))
        problem(lc, "pgnear:trusted_proxies", "trusted_proxies: %s", why);
    cfg->tlv_types.city = (uint8_t)cfg->proxy_tlv_city;
    cfg->tlv_types.region = (uint8_t)cfg->proxy_tlv_region;
    cfg->tlv_types.location = (uint8_t)cfg->proxy_tlv_location;
    if (cfg->tlv_types.city == cfg->tlv_types.region ||
        cfg->tlv_types.city == cfg->tlv_types.location ||
        cfg->tlv_types.region == cfg->tlv_types.location)
        problem(lc, NULL, "proxy_tlv_city, proxy_tlv_region and proxy_tlv_location must differ");
}

/* The city table and the GeoIP databases: what routing looks callers up in. */
static void config_load_routing(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    char why[512];
    if (cfg->cities_file[0] != '\0' &&
        (cfg->cities = city_table_load(cfg->cities_file, why, sizeof(why))) == NULL)
        problem(lc, "pgnear:cities_file", "cities_file: %s", why);
    if (cfg->geoip_db[0] != '\0' &&
        (cfg->geoip = geoip_open(cfg->geoip_db, why, sizeof(why))) == NULL)
        problem(lc, "pgnear:geoip_db", "geoip_db: %s", why);
    cfg->routing = (struct routing_data){&cfg->regions, cfg->default_region_ptr, cfg->cities,
                                         cfg->geoip,    cfg->overrides,          cfg->n_overrides};
}

/* The pooling settings: bounds, and min_pool_size within pool_size. */
static void check_pool_settings(struct load_ctx *lc)
{
    const struct config *cfg = lc->cfg;
    if (cfg->pool_size < 1 || cfg->pool_size > 10000)
        problem(lc, "pgnear:pool_size", "pool_size must be between 1 and 10000");
    if (cfg->min_pool_size < 0 || cfg->min_pool_size > cfg->pool_size)
        problem(lc, "pgnear:min_pool_size", "min_pool_size must be between 0 and pool_size (%d)",
                cfg->pool_size);
    if (cfg->max_db_connections < 0)
        problem(lc, "pgnear:max_db_connections", "max_db_connections must be 0 (no limit) or more");
    if (cfg->server_lifetime_ms < 1000 || cfg->server_idle_timeout_ms < 1000)
        problem(lc, "pgnear:server_lifetime",
                "server_lifetime and server_idle_timeout must be 1s or more");
    if (cfg->query_wait_timeout_ms < 1 || cfg->server_check_delay_ms < 0)
        problem(lc, "pgnear:query_wait_timeout",
                "query_wait_timeout must be positive and server_check_delay not negative");
}

/* Whether the comma list of websocket_path holds only paths ("/x/y", no blanks or '?'). */
static bool websocket_paths_valid(const char *list)
{
    const char *p = list;
    int count = 0;
    while (*p != '\0') {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        if (n == 0)
            break;
        if (p[0] != '/' || memchr(p, '?', n) != NULL || memchr(p, '#', n) != NULL || n > 255)
            return false;
        count++;
        p += n;
    }
    return count > 0;
}

bool config_websocket_path(const struct config *cfg, const char *path)
{
    size_t len = strlen(path);
    for (const char *p = cfg->websocket_path; *p != '\0';) {
        p += strspn(p, ", \t");
        size_t n = strcspn(p, ", \t");
        if (n > 0 && n == len && memcmp(p, path, n) == 0)
            return true;
        p += n;
    }
    return false;
}

static void check_websocket_settings(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    if (cfg->websocket_port < 0 || cfg->websocket_port > 65535)
        problem(lc, "pgnear:websocket_port", "websocket_port must be between 0 (off) and 65535");
    else if (cfg->websocket_port != 0 && cfg->websocket_port == cfg->listen_port)
        problem(lc, "pgnear:websocket_port", "websocket_port must differ from listen_port");
    if (!websocket_paths_valid(cfg->websocket_path))
        problem(lc, "pgnear:websocket_path",
                "websocket_path must be a comma list of paths, each beginning with \"/\"");
    if (cfg->websocket_max_frame < 1024)
        problem(lc, "pgnear:websocket_max_frame", "websocket_max_frame must be 1kB or more");
    if (cfg->websocket_handshake_timeout_ms < 100)
        problem(lc, "pgnear:websocket_handshake_timeout",
                "websocket_handshake_timeout must be 100ms or more");
    if (cfg->websocket_ping_interval_ms != 0 && cfg->websocket_ping_interval_ms < 1000)
        problem(lc, "pgnear:websocket_ping_interval",
                "websocket_ping_interval must be 0 (off) or 1s or more");
}

static void config_check_limits(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    if (cfg->listen_port <= 0 || cfg->listen_port > 65535)
        problem(lc, "pgnear:listen_port", "listen_port must be between 1 and 65535");
    if (cfg->workers < 1 || cfg->workers > 64)
        problem(lc, "pgnear:workers", "workers must be between 1 and 64");
    if (cfg->max_client_conn <= 0)
        problem(lc, "pgnear:max_client_conn", "max_client_conn must be positive");
    check_pool_settings(lc);
    check_websocket_settings(lc);
    if (cfg->tcp_keepidle_ms < 1000)
        problem(lc, "pgnear:tcp_keepidle", "tcp_keepidle must be 1s or more");
    if (cfg->tcp_keepintvl_ms < 1000)
        problem(lc, "pgnear:tcp_keepintvl", "tcp_keepintvl must be 1s or more");
    if (cfg->tcp_keepcnt < 1)
        problem(lc, "pgnear:tcp_keepcnt", "tcp_keepcnt must be 1 or more");
    if (cfg->health_check_fall < HEALTH_FALL_MIN || cfg->health_check_fall > HEALTH_FALL_MAX)
        problem(lc, "pgnear:health_check_fall", "health_check_fall must be between %d and %d",
                HEALTH_FALL_MIN, HEALTH_FALL_MAX);
}

/* The auth throttle's settings (auth_throttle.h). */
static void config_check_throttle(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    if (cfg->auth_failure_threshold > THROTTLE_THRESHOLD_MAX)
        problem(lc, "pgnear:auth_failure_threshold",
                "auth_failure_threshold must be between 0 (off) and %d", THROTTLE_THRESHOLD_MAX);
    if (cfg->auth_failure_delay_ms < 1 || cfg->auth_failure_delay_ms > THROTTLE_DELAY_MAX_MS)
        problem(lc, "pgnear:auth_failure_delay", "auth_failure_delay must be between 1ms and 1h");
    else if (cfg->auth_failure_max_delay_ms < cfg->auth_failure_delay_ms ||
             cfg->auth_failure_max_delay_ms > THROTTLE_DELAY_MAX_MS)
        problem(lc, "pgnear:auth_failure_max_delay",
                "auth_failure_max_delay must be between auth_failure_delay and 1h");
}

static void config_check_pause(struct load_ctx *lc)
{
    if (lc->cfg->pause_timeout_ms < 1 || lc->cfg->pause_timeout_ms > 3600 * 1000)
        problem(lc, "pgnear:pause_timeout", "pause_timeout must be between 1ms and 1h");
}

/* s without its leading and trailing blanks, in place. */
static char *trim_blanks(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* One name of migration_order: a configured region, named once; its index, or -1. */
static int migration_order_name(struct load_ctx *lc, const char *name, const bool *seen)
{
    struct config *cfg = lc->cfg;
    const struct region *r = region_set_find(&cfg->regions, name);
    if (r == NULL) {
        problem(lc, "pgnear:migration_order",
                "migration_order names \"%s\", which is not a configured region", name);
        return -1;
    }
    size_t i = (size_t)(r - cfg->regions.items);
    if (seen[i]) {
        problem(lc, "pgnear:migration_order", "migration_order names region \"%s\" twice", r->name);
        return -1;
    }
    return (int)i;
}

/*
 * migration_order: the regions it names, in its order, then the others in
 * the order of the file, as indices into regions.items.
 */
static void config_check_migrations(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    size_t n = cfg->regions.count, used = 0;
    if (cfg->migration_hold_timeout_ms < 1 || cfg->migration_hold_timeout_ms > 3600 * 1000)
        problem(lc, "pgnear:migration_hold_timeout",
                "migration_hold_timeout must be between 1ms and 1h");
    bool *seen = calloc(n > 0 ? n : 1, sizeof(*seen));
    char *list = strdup(cfg->migration_order);
    cfg->migration_order_index = calloc(n > 0 ? n : 1, sizeof(size_t));
    if (seen == NULL || list == NULL || cfg->migration_order_index == NULL) {
        problem(lc, NULL, "out of memory");
        free(seen);
        free(list);
        return;
    }
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *name = trim_blanks(tok);
        if (name[0] == '\0') {
            problem(lc, "pgnear:migration_order", "migration_order has an empty region name");
            continue;
        }
        int i = migration_order_name(lc, name, seen);
        if (i >= 0) {
            seen[i] = true;
            cfg->migration_order_index[used++] = (size_t)i;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!seen[i])
            cfg->migration_order_index[used++] = i;
    free(seen);
    free(list);
}

static void config_free(struct config *cfg);

static struct config *config_load_with(const char *path, enum config_scope scope,
                                       const struct config_override *ov, int nov,
                                       struct config_problems *problems);

struct config *config_load_scoped(const char *path, enum config_scope scope,
                                  struct config_problems *problems)
{
    return config_load_with(path, scope, NULL, 0, problems);
}

static struct config *config_load_with(const char *path, enum config_scope scope,
                                       const struct config_override *ov, int nov,
                                       struct config_problems *problems)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    struct load_ctx lc = {cfg, scope, problems, {NULL, 0, 0, ""}, ov, nov};
    problems->count = problems->dropped = 0;
    if (cfg == NULL || (cfg->path = strdup(path)) == NULL || !config_set_defaults(cfg)) {
        snprintf(problems->items[0], sizeof(problems->items[0]), "%s: out of memory", path);
        problems->count = 1;
        config_free(cfg);
        return NULL;
    }
    if (load_file(&lc)) {
        config_load_routing(&lc);
        if (scope == CONFIG_SCOPE_ALL) {
            config_check_limits(&lc);
            config_check_throttle(&lc);
            config_check_pause(&lc);
            if (cfg->regions.count > 0)
                config_check_migrations(&lc);
            config_check_proxy(&lc);
            config_check_auth(&lc);
            config_check_tls(&lc);
        }
    }
    free(lc.names.items);
    if (problems->count > 0) {
        config_free(cfg);
        return NULL;
    }
    cfg->refcount = 1;
    return cfg;
}

struct config *config_load(const char *path, char *err, size_t errcap)
{
    return config_load_overridden(path, NULL, 0, err, errcap);
}

bool config_setting_known(const char *name, bool *reloadable)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (setting_name_matches(&config_settings[i], name)) {
            *reloadable = config_settings[i].reloadable;
            return true;
        }
    return false;
}

struct config *config_load_overridden(const char *path, const struct config_override *ov, int nov,
                                      char *err, size_t errcap)
{
    struct config_problems *problems = malloc(sizeof(*problems));
    if (problems == NULL) {
        snprintf(err, errcap, "%s: out of memory", path);
        return NULL;
    }
    struct config *cfg = config_load_with(path, CONFIG_SCOPE_ALL, ov, nov, problems);
    if (cfg == NULL) {
        int more = problems->count - 1 + problems->dropped;
        if (more > 0)
            snprintf(err, errcap, "%s (and %d more problem%s: pgnear --check lists them all)",
                     problems->items[0], more, more == 1 ? "" : "s");
        else
            snprintf(err, errcap, "%s", problems->items[0]);
    }
    free(problems);
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
    free(cfg->migration_order_index);
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
    if (n < max && cfg->auth_failure_threshold > 0 && cfg->client_login_timeout_ms > 0 &&
        cfg->auth_failure_max_delay_ms >= cfg->client_login_timeout_ms)
        snprintf(warnings[n++], 256,
                 "auth_failure_max_delay is not shorter than client_login_timeout: a login "
                 "whose throttle wait would outlast the timeout is refused (53300) at once");
    if (n < max && cfg->websocket_port != 0 && cfg->auth == AUTH_SCRAM &&
        cfg->websocket_auth == WS_AUTH_CLEARTEXT && !cfg->websocket_tls)
        snprintf(warnings[n++], 256,
                 "websocket_auth = cleartext without websocket_tls: WebSocket clients send their "
                 "password in clear unless they use TLS inside the WebSocket or a TLS load "
                 "balancer is in front on a private network");
    if (n < max && cfg->websocket_port != 0 && cfg->trusted_proxies[0] == '\0')
        snprintf(warnings[n++], 256,
                 "websocket_port without trusted_proxies: the locality headers of load balancers "
                 "in front are ignored");
    return n;
}

bool config_is_admin_user(const struct config *cfg, const char *user)
{
    size_t ulen = strlen(user);
    const char *p = cfg->admin_users;
    while (*p != '\0') {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        size_t n = strcspn(p, ",");
        size_t end = n;
        while (end > 0 && isspace((unsigned char)p[end - 1]))
            end--;
        if (end > 0 && end == ulen && memcmp(p, user, ulen) == 0)
            return true;
        p += n;
    }
    return false;
}
