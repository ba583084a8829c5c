/*
 * config_ini.c — reading the configuration file: its lines (each section
 * and key noted with its line, for messages; repeats refused), iniparser's
 * syntax errors, the [pgnear] keys through the settings table, the
 * [region NAME] sections with their hosts and location, and [cities].
 * It records problems (config_problem.c) and hands [database NAME] and
 * [user NAME] to config_sections.c; the loader (config_load.c) runs it.
 */
#include "proxy/base/config_int.h"

#include "proxy/base/log.h"
#include "routing/cities.h"
#include "routing/need.h"

#include <ctype.h>
#include <errno.h>
#include <iniparser/iniparser.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * --explain needs only these of [pgnear] (target_session_attrs: the need
 * of a caller that names none); the rest is not even read.
 */
static bool setting_for_routing(const char *name)
{
    static const char *const names[] = {"cities_file",          "geoip_db", "default_region",
                                        "target_session_attrs", "route_by", "route_candidates",
                                        "route_candidate_km"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

/* key is the whole "pgnear:name" of the file, for the line number. */
static void load_pgnear_key(struct load_ctx *lc, const char *key, const char *name,
                            const char *value)
{
    if (lc->scope == CONFIG_SCOPE_ROUTING && !setting_for_routing(name))
        return;
    const struct setting *s = config_setting_find(name);
    if (s == NULL)
        config_problem(lc, key, "unrecognized setting \"%s\" in [pgnear]", name);
    else if (!config_setting_assign(lc->cfg, s, value))
        config_problem(lc, key, "invalid value \"%s\" for setting \"%s\"", value, name);
}

/* One key of [region NAME]: location or hosts; anything else is a problem naming the region. */
static void load_region_key(struct load_ctx *lc, struct region *r, const char *key,
                            const char *name, const char *value)
{
    if (strcmp(name, "location") == 0) {
        double lat, lon;
        if (region_parse_location(value, &lat, &lon))
            region_set_location(r, lat, lon);
        else
            config_problem(
                lc, key,
                "invalid location \"%s\" for region \"%s\": expected latitude, longitude "
                "in degrees",
                value, r->name);
        return;
    }
    if (strcmp(name, "hosts") == 0) {
        char why[512];
        if (value[strspn(value, " \t")] == '\0')
            return; /* none: the region's hosts come from Patroni (config_check says otherwise) */
        /* Resolved once the file is read (config_check_regions): dns_server may come later. */
        if (region_parse_hosts_unresolved(r, value, why, sizeof(why)) != NULL)
            config_problem(lc, key, "%s", why);
        return;
    }
    config_problem(lc, key, "unrecognized setting \"%s\" in [region %s]", name, r->name);
}

/* Region names are letters, digits, - and _: they appear in SQL answers, logs and labels. */
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
        config_problem(lc, NULL, "out of memory");
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

/*
 * One section by its name; an unknown one is a problem only in the full scope,
 * since a partial load reads some only.
 */
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
    if (config_load_need_sections(lc, d, section))
        return;
    if (strncmp(section, "region ", 7) != 0) {
        if (lc->scope == CONFIG_SCOPE_ALL)
            config_problem(lc, at, "unrecognized section [%s]", section);
        return;
    }
    const char *name = section + 7;
    while (*name == ' ')
        name++;
    if (!valid_region_name(name)) {
        config_problem(lc, at, "invalid region name \"%s\"", name);
        return;
    }
    struct region *r = region_set_add(&lc->cfg->regions, name);
    if (r == NULL) {
        config_problem(lc, NULL, "out of memory");
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

/*
 * iniparser's error callback: its message parsed for the line and text, and
 * recorded as the load's problem (or logged when no load runs).
 */
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
        config_problem_at(syntax_ctx, line, "syntax error: %.*s", (int)strcspn(text + 3, "\n"),
                          text + 3);
    else if (strstr(msg, "too long") != NULL)
        config_problem_at(syntax_ctx, line, "syntax error: line too long");
    else
        config_problem_at(syntax_ctx, line, "%.*s", (int)strcspn(msg, "\n"), msg);
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
        config_problem(lc, key, "[cities] %s = %s: no such region", city, name);
    else if (!city_fold(city, folded, sizeof(folded)))
        config_problem(lc, key, "[cities] invalid city name \"%s\"", city);
    else if ((o->city = strdup(folded)) == NULL)
        config_problem(lc, NULL, "out of memory");
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
        config_problem(lc, NULL, "out of memory");
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
    int first = config_line_of(n, name);
    if (first > 0) {
        if (name[0] == '[')
            config_problem_at(lc, lineno, "section %s appears again (first at line %d)", name,
                              first);
        else
            config_problem_at(lc, lineno, "\"%s\" is set again in [%s] (first at line %d)",
                              strchr(name, ':') + 1, n->section, first);
        return true;
    }
    if (n->count == n->cap) {
        size_t ncap = n->cap ? n->cap * 2 : 64;
        struct ini_seen *grown = realloc(n->items, ncap * sizeof(*grown));
        if (grown == NULL)
            return config_problem_at(lc, 0, "out of memory");
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
        config_problem_at(lc, lineno, "\"%s\" is set before any section: put it under [pgnear]",
                          name + 1);
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
        return config_problem(lc, NULL, "could not open configuration file: %s", strerror(errno));
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
        config_problem(lc, NULL, "could not prepare the configuration: %s", strerror(errno));
        return NULL;
    }
    bool prepared = load_prepare(lc, out);
    if (fclose(out) != 0 && prepared)
        prepared =
            config_problem(lc, NULL, "could not prepare the configuration: %s", strerror(errno));
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

struct _dictionary_ *config_ini_read(struct load_ctx *lc)
{
    if (access(lc->cfg->path, R_OK) != 0) {
        config_problem(lc, NULL, "could not open configuration file: %s", strerror(errno));
        return NULL;
    }
    dictionary *d = load_dictionary(lc);
    if (d == NULL) { /* why is in the problems: every syntax error is there */
        if (lc->problems->count == 0)
            config_problem(lc, NULL, "could not load the configuration");
        return NULL;
    }
    if (lc->noverrides > 0 && iniparser_find_entry(d, "pgnear") == 0)
        iniparser_set(d, "pgnear", NULL); /* the section the overrides go in */
    for (int i = 0; i < lc->noverrides; i++) {
        char key[80];
        snprintf(key, sizeof(key), "pgnear:%s", lc->overrides[i].name);
        if (iniparser_set(d, key, lc->overrides[i].value) != 0)
            config_problem(lc, NULL, "out of memory");
    }
    int nsec = iniparser_getnsec(d);
    for (int i = 0; i < nsec; i++)
        load_section(lc, d, iniparser_getsecname(d, i));
    return d;
}

void config_ini_cities(struct load_ctx *lc, struct _dictionary_ *d)
{
    load_city_overrides(lc, d);
}

void config_ini_close(struct _dictionary_ *d)
{
    iniparser_freedict(d);
}
