/*
 * show_clients.c — SHOW CLIENTS and SHOW SERVERS: one row for each client
 * session and each server connection of every worker, rendered from a
 * snapshot of them all (snapshot.c), which commands.c takes through
 * show.c's show_snapshot; a column a session does not know (yet) is NULL,
 * not empty.
 */
#include "proxy/admin/show.h"

#include "protocol/clock.h"
#include "proxy/admin/snapshot.h"

static const struct admin_column show_clients_cols[] = {{"id", ADMIN_INT8, 0},
                                                        {"address", ADMIN_TEXT, 0},
                                                        {"user", ADMIN_TEXT, 0},
                                                        {"database", ADMIN_TEXT, 0},
                                                        {"application_name", ADMIN_TEXT, 0},
                                                        {"state", ADMIN_TEXT, 0},
                                                        {"tls", ADMIN_BOOL, 0},
                                                        {"region", ADMIN_TEXT, 0},
                                                        {"server", ADMIN_TEXT, 0},
                                                        {"locality_source", ADMIN_TEXT, 0},
                                                        {"city", ADMIN_TEXT, 0},
                                                        {"latitude", ADMIN_NUMERIC, 4},
                                                        {"longitude", ADMIN_NUMERIC, 4},
                                                        {"distance_km", ADMIN_NUMERIC, 0},
                                                        {"connected_at", ADMIN_TIMESTAMPTZ, 0},
                                                        {"bytes_in", ADMIN_INT8, 0},
                                                        {"bytes_out", ADMIN_INT8, 0},
                                                        {"worker", ADMIN_INT8, 0},
                                                        {"in_transaction", ADMIN_BOOL, 0},
                                                        {"transport", ADMIN_TEXT, 0},
                                                        {"locality_via", ADMIN_TEXT, 0},
                                                        {"needing", ADMIN_TEXT, 0},
                                                        {"fence", ADMIN_TEXT, 0},
                                                        {"min_lsn", ADMIN_TEXT, 0},
                                                        {"moves", ADMIN_INT8, 0},
                                                        {"movable", ADMIN_TEXT, 0},
                                                        {"pinned", ADMIN_TEXT, 0},
                                                        {"reads_at", ADMIN_TEXT, 0},
                                                        {"writes_at", ADMIN_TEXT, 0},
                                                        {"forwarded", ADMIN_INT8, 0},
                                                        {"settings", ADMIN_INT8, 0}};

/* One SHOW CLIENTS row; a column the session does not know (yet) is NULL, not empty. */
static void client_row(struct admin_result *res, const struct client_row *c)
{
    result_int(res, (int64_t)c->id);
    result_text(res, c->addr);
    result_text(res, c->user);
    result_text(res, c->database);
    result_text_or_null(res, c->application_name);
    result_text(res, client_row_state_name(c->state));
    result_bool(res, c->tls);
    result_text_or_null(res, c->region);
    result_text_or_null(res, c->server);
    result_text_or_null(res, c->source);
    result_text_or_null(res, c->place);
    if (c->has_coords) {
        result_numeric(res, c->lat);
        result_numeric(res, c->lon);
    } else {
        result_null(res);
        result_null(res);
    }
    if (c->km >= 0)
        result_numeric(res, c->km);
    else
        result_null(res);
    result_time(res, c->connected_at);
    result_int(res, (int64_t)c->bytes_in);
    result_int(res, (int64_t)c->bytes_out);
    result_int(res, c->worker);
    result_bool(res, c->in_transaction);
    result_text(res, c->transport);
    result_text_or_null(res, c->via);
    result_text(res, c->need);
    result_text_or_null(res, c->fence);
    result_text_or_null(res, c->min_lsn);
    result_int(res, c->moves);
    result_text_or_null(res, c->movable);
    result_text_or_null(res, c->pinned);
    result_text_or_null(res, c->reads_at);
    result_text_or_null(res, c->writes_at);
    if (c->forwarded >= 0)
        result_int(res, c->forwarded);
    else
        result_null(res);
    if (c->settings >= 0)
        result_int(res, c->settings);
    else
        result_null(res);
}

/* SHOW CLIENTS: every worker's sessions, worker by worker. */
static void render_clients(const struct snapshot *snap, struct admin_result *res)
{
    result_init(res, ADMIN_COLS(show_clients_cols));
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nclients; j++)
            client_row(res, &snap->parts[i].clients[j]);
}

const struct admin_command show_clients_command = {
    .cols = show_clients_cols,
    .ncols = ADMIN_NCOLS(show_clients_cols),
    .render = render_clients,
    .snapshot = SNAPSHOT_CLIENTS,
};

static const struct admin_column show_servers_cols[] = {{"region", ADMIN_TEXT, 0},
                                                        {"server", ADMIN_TEXT, 0},
                                                        {"state", ADMIN_TEXT, 0},
                                                        {"client", ADMIN_INT8, 0},
                                                        {"connected_at", ADMIN_TIMESTAMPTZ, 0},
                                                        {"bytes_in", ADMIN_INT8, 0},
                                                        {"bytes_out", ADMIN_INT8, 0},
                                                        {"worker", ADMIN_INT8, 0},
                                                        {"id", ADMIN_INT8, 0},
                                                        {"pid", ADMIN_INT8, 0},
                                                        {"tls", ADMIN_BOOL, 0},
                                                        {"tx_status", ADMIN_TEXT, 0},
                                                        {"requests_outstanding", ADMIN_INT8, 0},
                                                        {"safe_point", ADMIN_BOOL, 0},
                                                        {"server_version", ADMIN_TEXT, 0},
                                                        {"uses", ADMIN_INT8, 0},
                                                        {"database", ADMIN_TEXT, 0},
                                                        {"user", ADMIN_TEXT, 0},
                                                        {"age", ADMIN_INT8, 0},
                                                        {"idle", ADMIN_INT8, 0}};

/* The transaction status as PostgreSQL's ReadyForQuery names it. */
static const char *tx_status_name(char status)
{
    switch (status) {
    case 'I':
        return "idle";
    case 'T':
        return "in transaction";
    case 'E':
        return "failed transaction";
    default:
        return "unknown";
    }
}

/* One SHOW SERVERS row; ages are in seconds, NULL when the connection never was idle. */
static void server_row(struct admin_result *res, const struct server_row *sv)
{
    result_text(res, sv->region);
    result_text(res, sv->server);
    result_text(res, server_row_state_name(sv->state));
    if (sv->client != 0)
        result_int(res, (int64_t)sv->client);
    else
        result_null(res);
    result_time_us(res, sv->connected_at_us);
    result_int(res, (int64_t)sv->bytes_in);
    result_int(res, (int64_t)sv->bytes_out);
    result_int(res, sv->worker);
    result_int(res, (int64_t)sv->id);
    if (sv->pid != 0)
        result_int(res, sv->pid);
    else
        result_null(res);
    result_bool(res, sv->tls);
    result_text(res, tx_status_name(sv->tx_status));
    result_int(res, sv->outstanding);
    result_bool(res, sv->safe_point);
    if (sv->server_version[0] != '\0')
        result_text(res, sv->server_version);
    else
        result_null(res);
    result_int(res, sv->uses);
    result_text(res, sv->database);
    result_text(res, sv->user);
    int64_t now_us = wall_clock_us();
    result_int(res, (now_us - sv->connected_at_us) / 1000000);
    if (sv->idle_since_us != 0)
        result_int(res, (now_us - sv->idle_since_us) / 1000000);
    else
        result_null(res);
}

/* Every server connection, from the workers' server lists: logging in, or serving a client. */
static void render_servers(const struct snapshot *snap, struct admin_result *res)
{
    result_init(res, ADMIN_COLS(show_servers_cols));
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nservers; j++)
            server_row(res, &snap->parts[i].servers[j]);
}

const struct admin_command show_servers_command = {
    .cols = show_servers_cols,
    .ncols = ADMIN_NCOLS(show_servers_cols),
    .render = render_servers,
    .snapshot = SNAPSHOT_SERVERS,
};
