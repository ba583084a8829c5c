/*
 * show.h — the SHOW commands (show.c and the show_*.c beside it): each
 * one's struct admin_command, whose columns and code are in its file;
 * the command table in commands.c points at them.
 */
#ifndef PGNEAR_PROXY_ADMIN_SHOW_H
#define PGNEAR_PROXY_ADMIN_SHOW_H

#include "proxy/admin/command_def.h"

struct session;

/* What the admin's own worker answers at once. */
extern const struct admin_command show_help_command;
extern const struct admin_command show_version_command;
extern const struct admin_command show_config_command;
extern const struct admin_command show_route_command; /* show_route.c */
extern const struct admin_command show_peers_command;
extern const struct admin_command show_users_command; /* show_users.c */
extern const struct admin_command show_homes_command; /* show_homes.c */
/* show_users.c */
extern const struct admin_command show_databases_command;

/* What is rendered from a snapshot of every worker. */
extern const struct admin_command show_stats_command;
extern const struct admin_command show_lists_command;
/* show_clients.c */
extern const struct admin_command show_clients_command;
extern const struct admin_command show_servers_command;
extern const struct admin_command show_regions_command;
extern const struct admin_command show_rtt_command;   /* show_rtt.c */
extern const struct admin_command show_pools_command; /* show_pools.c */

/*
 * Takes a snapshot of every worker (SNAPSHOT_* in what, beyond the
 * counters) and answers later with render's rows: CMD_PENDING, or
 * CMD_ERROR when out of memory.
 */
int show_snapshot(struct session *s, unsigned what, snapshot_render_fn render,
                  struct console_wait *wait);

#endif
