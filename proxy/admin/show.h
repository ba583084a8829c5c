/*
 * show.h — the SHOW commands' answers (show.c): each one's columns, and
 * either a handler or a render of a snapshot of every worker.  The
 * command table in commands.c names them.
 */
#ifndef PGNEAR_PROXY_ADMIN_SHOW_H
#define PGNEAR_PROXY_ADMIN_SHOW_H

#include "proxy/admin/command_wait.h"

struct session;
struct snapshot;

/* Turns a snapshot of the workers into a SHOW's rows. */
typedef void (*snapshot_render_fn)(const struct snapshot *snap, struct admin_result *res);

extern const struct admin_column show_help_cols[2];
extern const struct admin_column show_version_cols[1];
extern const struct admin_column show_config_cols[3];
extern const struct admin_column show_stats_cols[3];
extern const struct admin_column show_lists_cols[2];
extern const struct admin_column show_clients_cols[26];
extern const struct admin_column show_servers_cols[20];
extern const struct admin_column show_regions_cols[20];
extern const struct admin_column show_pools_cols[14];
extern const struct admin_column show_route_cols[9];
extern const struct admin_column show_peers_cols[9];

/* What the admin's own worker answers at once. */
int show_help(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait);
int show_version(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait);
int show_config(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait);
int show_route(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait);
int show_peers(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait);

/*
 * Takes a snapshot of every worker (SNAPSHOT_* in what, beyond the
 * counters) and answers later with render's rows: CMD_PENDING, or
 * CMD_ERROR when out of memory.
 */
int show_snapshot(struct session *s, unsigned what, snapshot_render_fn render,
                  struct console_wait *wait);

void show_render_stats(const struct snapshot *snap, struct admin_result *res);
void show_render_lists(const struct snapshot *snap, struct admin_result *res);
void show_render_clients(const struct snapshot *snap, struct admin_result *res);
void show_render_servers(const struct snapshot *snap, struct admin_result *res);
void show_render_regions(const struct snapshot *snap, struct admin_result *res);
void show_render_pools(const struct snapshot *snap, struct admin_result *res);

#endif
