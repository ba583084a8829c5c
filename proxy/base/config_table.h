/*
 * config_table.h — what config.c, the settings of [pgnear] in one table,
 * gives the parts of a load (config_int.h includes it): a setting found
 * by name and a value parsed into it, durations as the table reads them,
 * the defaults a load starts from, and a failed load's free.  config.c
 * includes this and not config_int.h, so that the table stays under the
 * load and never sees it.
 */
#ifndef PGNEAR_PROXY_CONFIG_TABLE_H
#define PGNEAR_PROXY_CONFIG_TABLE_H

#include <stdbool.h>

struct config;

/* A setting of config.c's table. */
struct setting;

/* The setting of that name as written in the file (health_check_interval); NULL if none. */
const struct setting *config_setting_find(const char *name);

/* Parses value into cfg's field of s; false when it is not a valid value (or out of memory). */
bool config_setting_assign(struct config *cfg, const struct setting *s, const char *value);

/* "15s", "1500ms", "2min", "1h" or a bare number of seconds, as milliseconds; false: invalid. */
bool config_parse_duration_ms(const char *v, int *out);

/* Every setting at its default; false when out of memory. */
bool config_set_defaults(struct config *cfg);

/* Frees a configuration and everything it owns (a failed load's; else config_unref). */
void config_free(struct config *cfg);

#endif
