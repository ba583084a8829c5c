/*
 * config_load.c — the loader: a configuration made from its defaults
 * (config.c), the file read (config_ini.c), the regions checked, [cities]
 * read, then every other check (config_check.c), in that order; NULL with
 * the problems found when there is one.  It is the top of the load: the
 * parts it runs record problems (config_problem.c) and call nothing back.
 */
#include "proxy/base/config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The file's steps, each after the one it needs: [cities] names the regions checked before it. */
static void load_steps(struct load_ctx *lc)
{
    struct _dictionary_ *d = config_ini_read(lc);
    if (d == NULL)
        return;
    config_check_regions(lc);
    config_ini_cities(lc, d);
    config_ini_close(d);
    config_check_loaded(lc);
}

/*
 * Loads path over the defaults, with ov applied and running's unchanged tables
 * shared; NULL with problems filled, anything made freed.
 */
static struct config *config_load_with(const char *path, enum config_scope scope,
                                       const struct config_override *ov, int nov,
                                       const struct config *running,
                                       struct config_problems *problems)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    struct load_ctx lc = {cfg, scope, problems, {NULL, 0, 0, ""}, ov, nov, running};
    problems->count = problems->dropped = 0;
    problems->log_format = 0; /* LOG_FORMAT_TEXT */
    if (cfg == NULL || (cfg->path = strdup(path)) == NULL || !config_set_defaults(cfg)) {
        snprintf(problems->items[0], sizeof(problems->items[0]), "%s: out of memory", path);
        problems->count = 1;
        config_free(cfg);
        return NULL;
    }
    load_steps(&lc);
    free(lc.names.items);
    if (problems->count > 0) {
        problems->log_format = cfg->log_format > 0 ? cfg->log_format : 0;
        config_free(cfg);
        return NULL;
    }
    cfg->refcount = 1;
    return cfg;
}

struct config *config_load_scoped(const char *path, enum config_scope scope,
                                  struct config_problems *problems)
{
    return config_load_with(path, scope, NULL, 0, NULL, problems);
}

struct config *config_load(const char *path, char *err, size_t errcap)
{
    return config_load_overridden(path, NULL, 0, NULL, err, errcap);
}

struct config *config_load_overridden(const char *path, const struct config_override *ov, int nov,
                                      const struct config *running, char *err, size_t errcap)
{
    struct config_problems *problems = malloc(sizeof(*problems));
    if (problems == NULL) {
        snprintf(err, errcap, "%s: out of memory", path);
        return NULL;
    }
    struct config *cfg = config_load_with(path, CONFIG_SCOPE_ALL, ov, nov, running, problems);
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
