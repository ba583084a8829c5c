/*
 * config_int.h — what the parts of the configuration's loading share, and
 * the rest of pgnear does not see.  They call one way, down: the loader
 * (config_load.c) runs the file's reading (config_ini.c, which hands
 * [database NAME] and [user NAME] to config_sections.c) and the checks
 * (config_check.c, with the fleet's in config_peers.c); each of them
 * records its problems in config_problem.c and parses values through the
 * settings table (config.c), and none calls back up.
 */
#ifndef PGNEAR_PROXY_CONFIG_INT_H
#define PGNEAR_PROXY_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "proxy/base/config.h"
#include "proxy/base/config_table.h"

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

/* ---- config_problem.c: the problems of a load (each part below records there) ---- */

/* The line of "[section]" or "section:key" in the file; 0 when it is not there. */
int config_line_of(const struct ini_names *names, const char *name);

/* Records a problem at a line; false, so that callers can return it. */
bool config_problem_at(struct load_ctx *lc, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Records a problem at the line of name ("[region eu]", "pgnear:auth", NULL for none). */
bool config_problem(struct load_ctx *lc, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- config_sections.c ---- */

/* Loads section when it is a [database NAME] or [user NAME] one: true when it is (handled). */
struct _dictionary_;
bool config_load_need_sections(struct load_ctx *lc, struct _dictionary_ *d, const char *section);

/* ---- config_ini.c: the file, run by the loader (config_load.c) in three steps ---- */

/*
 * The file read, the overrides set in it and its sections loaded but
 * [cities] (which needs the regions checked first); NULL, with the
 * problem recorded, when it cannot be read.
 */
struct _dictionary_ *config_ini_read(struct load_ctx *lc);

/* [cities]: city = region, once the regions are checked (config_check_regions). */
void config_ini_cities(struct load_ctx *lc, struct _dictionary_ *d);

/* Frees what config_ini_read returned. */
void config_ini_close(struct _dictionary_ *d);

/* ---- config_peers.c, config_check.c: the checks, run by the loader ---- */

/* The fleet's settings (config_peers.c): peer_id, peers, peer_secret_file, the cancel limits. */
void config_check_peers(struct load_ctx *lc);

/* The regions: each has hosts, and default_region is one of them (between the two ini steps). */
void config_check_regions(struct load_ctx *lc);

/* After the file: the routing tables, then (scope all) the checks of every other setting. */
void config_check_loaded(struct load_ctx *lc);

#endif
