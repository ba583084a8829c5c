/*
 * config_int.h — what the parts of the configuration's loading share, and
 * the rest of pgnear does not see: config.c (the settings table and the
 * load's steps), config_ini.c (the file, its lines and sections) and
 * config_check.c (the checks of what the file said), config_sections.c
 * (the [database NAME] and [user NAME] sections).
 */
#ifndef PGNEAR_PROXY_CONFIG_INT_H
#define PGNEAR_PROXY_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/base/config.h"

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
    const struct config *running; /* a reload's: tables of unchanged files are shared; or NULL */
};

/* A setting of config.c's table. */
struct setting;

/* The setting of that name as written in the file (health_check_interval); NULL if none. */
const struct setting *config_setting_find(const char *name);

/* Parses value into cfg's field of s; false when it is not a valid value (or out of memory). */
bool config_setting_assign(struct config *cfg, const struct setting *s, const char *value);

/* "15s", "1500ms", "2min", "1h" or a bare number of seconds, as milliseconds; false: invalid. */
bool config_parse_duration_ms(const char *v, int *out);

/* The line of "[section]" or "section:key" in the file; 0 when it is not there. */
int config_ini_line_of(const struct ini_names *names, const char *name);

/* Records a problem at a line; false, so that callers can return it. */
bool config_problem_at(struct load_ctx *lc, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a problem at the line of name ("[region eu]", "pgnear:auth", NULL for none). */
bool config_problem(struct load_ctx *lc, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Loads section when it is a [database NAME] or [user NAME] one: true when it is (handled). */
struct _dictionary_;
bool config_load_need_sections(struct load_ctx *lc, struct _dictionary_ *d, const char *section);

/* The sections, then the checks of what they say; false when the file cannot be read. */
bool config_load_file(struct load_ctx *lc);

/* The regions: each has hosts, and default_region is one of them (config_load_file). */
void config_check_regions(struct load_ctx *lc);

/* The fleet's settings (config_peers.c): peer_id, peers, peer_secret_file, the cancel limits. */
void config_check_peers(struct load_ctx *lc);

/* After the file: the routing tables, then (scope all) the checks of every other setting. */
void config_check_loaded(struct load_ctx *lc);

#endif
