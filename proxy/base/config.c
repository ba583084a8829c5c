/*
 * config.c — the settings of [pgnear] in one table, so that parsing, SHOW
 * CONFIG and reload checks cannot disagree: their values parsed and
 * formatted, the defaults a load starts from, references, and what the
 * rest of pgnear asks of a loaded configuration.  The load itself is
 * config_load.c's, above this file: nothing here calls back into it.
 */
#include "proxy/base/config.h"
#include "proxy/base/config_table.h"

#include "routing/cities.h"
#include "routing/geoip.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
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

static const char *const auth_choices[] = {"scram", "passthrough", "hba", "cert", NULL};
static const char *const pool_mode_choices[] = {"none", "session", "transaction", NULL};
static const char *const client_tls_choices[] = {"disable", "allow", "require", NULL};
static const char *const server_tls_choices[] = {"disable",   "prefer",      "require",
                                                 "verify-ca", "verify-full", NULL};
static const char *const proxy_protocol_choices[] = {"off", "optional", "required", NULL};
static const char *const websocket_untrusted_choices[] = {"ignore", "refuse", NULL};
static const char *const io_backend_choices[] = {"auto", "epoll", "io_uring", NULL};
static const char *const websocket_auth_choices[] = {"cleartext", "scram", NULL};
/* enum log_format's order (log.h). */
static const char *const log_format_choices[] = {"text", "json", NULL};
/* enum route_by's order (routing/rtt.h). */
static const char *const route_by_choices[] = {"hybrid", "distance", "latency", NULL};
/* enum session_need's order (routing/need.h). */
static const char *const session_need_choices[] = {
    "any",     "read-write", "read-only", "primary", "standby", "prefer-standby", "prefer-primary",
    "nearest", NULL};

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
    S(auth_hba_file, T_STR, "", true),
    S(auth_failure_threshold, T_INT, "3", true),
    S(auth_failure_delay_ms, T_MS, "100ms", true),
    S(auth_failure_max_delay_ms, T_MS, "10s", true),
    E(client_tls, "disable", true, client_tls_choices),
    S(client_tls_cert_file, T_STR, "", true),
    S(client_tls_key_file, T_STR, "", true),
    S(client_tls_ca_file, T_STR, "", true),
    S(client_tls_crl_file, T_STR, "", true),
    S(client_tls_crl_dir, T_STR, "", true),
    S(client_tls_direct_without_alpn, T_BOOL, "off", true),
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
    S(trusted_http_proxies, T_STR, "", true),
    S(client_hints, T_BOOL, "on", true),
    S(geoip_db, T_STR, "", true),
    S(cities_file, T_STR, "", true),
    S(default_region, T_STR, "", true),
    S(health_check_interval_ms, T_MS, "2s", true),
    S(health_check_timeout_ms, T_MS, "1s", true),
    S(health_check_fall, T_INT, "3", true),
    S(health_check_login_interval_ms, T_MS, "60s", true),
    E(target_session_attrs, "any", true, session_need_choices),
    S(failover_wait_ms, T_MS, "10s", true),
    S(max_standby_lag_ms, T_MS, "30s", true),
    S(max_standby_lag_bytes, T_SIZE, "0", true),
    E(route_by, "hybrid", true, route_by_choices),
    S(route_candidates, T_INT, "3", true),
    S(route_candidate_km, T_INT, "1500", true),
    S(route_deadband, T_INT, "20", true),
    S(route_deadband_min_ms, T_MS, "5ms", true),
    S(route_hold_down_ms, T_MS, "60s", true),
    S(report_fence, T_BOOL, "off", true),
    S(min_lsn_wait_ms, T_MS, "1s", true),
    S(nearest_read_functions, T_STR, "", true),
    S(patroni, T_STR, "", true),
    S(patroni_hosts, T_STR, "", true),
    S(dns_max_ttl_ms, T_MS, "15s", true),
    S(dns_server, T_STR, "", true),
    S(max_client_conn, T_INT, "10000", true),
    S(client_login_timeout_ms, T_MS, "60s", true),
    S(server_connect_timeout_ms, T_MS, "5s", true),
    S(shutdown_timeout_ms, T_MS, "30s", true),
    S(shutdown_ready_grace_ms, T_MS, "0", true),
    S(pause_timeout_ms, T_MS, "10s", true),
    S(move_timeout_ms, T_MS, "10s", true),
    S(movable, T_BOOL, "on", true),
    S(tcp_keepalive, T_BOOL, "on", true),
    S(tcp_keepidle_ms, T_MS, "60s", true),
    S(tcp_keepintvl_ms, T_MS, "10s", true),
    S(tcp_keepcnt, T_INT, "6", true),
    S(workers, T_INT, "1", false),
    E(io_backend, "auto", false, io_backend_choices),
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
    S(moves_db, T_STR, "postgres", true),
    S(pg_dump, T_STR, "pg_dump", true),
    S(peer_id, T_INT, "0", false),
    S(peers, T_STR, "", true),
    S(peer_secret_file, T_STR, "", true),
    S(cancel_forward_timeout_ms, T_MS, "2s", true),
    S(cancel_rate_limit, T_INT, "100", true),
    S(cancel_max_inflight, T_INT, "64", true),
    E(pool_mode, "session", true, pool_mode_choices),
    S(server_reset_query, T_STR, "DISCARD ALL", true),
    S(server_check_query, T_STR, "", true),
    S(server_check_delay_ms, T_MS, "30s", true),
    S(server_lifetime_ms, T_MS, "3600s", true),
    S(server_idle_timeout_ms, T_MS, "600s", true),
    S(server_rollback_timeout_ms, T_MS, "5s", true),
    S(query_wait_timeout_ms, T_MS, "120s", true),
    S(query_wait_notify_ms, T_MS, "0", true),
    S(pool_size, T_INT, "0", true),
    S(min_pool_size, T_INT, "0", true),
    S(max_db_connections, T_INT, "0", true),
    S(max_user_connections, T_INT, "0", true),
    S(max_user_client_connections, T_INT, "0", true),
    S(max_db_client_connections, T_INT, "0", true),
    S(max_prepared_statements, T_INT, "200", true),
    /* PgBouncer's timeouts (session/timeouts.h); 0: off.  [database]/[user] keys too. */
    S(query_timeout_ms, T_MS, "0", true),
    S(transaction_timeout_ms, T_MS, "0", true),
    S(idle_transaction_timeout_ms, T_MS, "0", true),
    S(client_idle_timeout_ms, T_MS, "0", true),
    S(logfile, T_STR, "", true),
    E(log_format, "text", true, log_format_choices),
    S(syslog, T_BOOL, "off", true),
    S(syslog_ident, T_STR, "pgnear", true),
    S(syslog_facility, T_STR, "daemon", true),
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

const struct setting *config_setting_find(const char *name)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (setting_name_matches(&config_settings[i], name))
            return &config_settings[i];
    return NULL;
}

/*
 * The name SHOW CONFIG shows: a _ms setting without its suffix, since its value
 * carries its unit.
 */
static const char *setting_display_name(const struct setting *s, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", s->name);
    if (s->type == T_MS)
        buf[strlen(buf) - 3] = '\0';
    return buf;
}

/* "15s", "1500ms", "2min", "1h" or a bare number of seconds. */
bool config_parse_duration_ms(const char *v, int *out)
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

bool config_parse_bool(const char *v, bool *out)
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

bool config_setting_assign(struct config *cfg, const struct setting *s, const char *value)
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
        return config_parse_duration_ms(value, (int *)field);
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
        return config_parse_bool(value, (bool *)field);
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

/*
 * A setting's value as text in a form config_setting_assign reads back
 * (keep_restart_only relies on it).
 */
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

/*
 * Every setting to its default, through the same parser as the file's values;
 * false when out of memory.
 */
bool config_set_defaults(struct config *cfg)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (!config_setting_assign(cfg, &config_settings[i], config_settings[i].def))
            return false;
    return true;
}

bool config_setting_known(const char *name, bool *reloadable)
{
    const struct setting *s = config_setting_find(name);
    if (s != NULL)
        *reloadable = s->reloadable;
    return s != NULL;
}

/* Drops a reference; the last one frees the configuration. NULL is fine. */
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
        if (!config_setting_assign(fresh, st, value))
            return -1;
    }
    return 0;
}

/* Frees a configuration and everything it owns; only through config_unref once loaded. */
void config_free(struct config *cfg)
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
    for (size_t i = 0; i < cfg->n_need_rules; i++) {
        free(cfg->need_rules[i].name);
        free(cfg->need_rules[i].regions);
        free(cfg->need_rules[i].home_by);
    }
    free(cfg->need_rules);
    if (cfg->cities)
        city_table_free(cfg->cities);
    if (cfg->geoip)
        geoip_close(cfg->geoip);
    free(cfg->peer_list.items);
    userlist_free(&cfg->users);
    hba_free(&cfg->hba);
    SSL_CTX_free(cfg->client_tls_ctx);
    SSL_CTX_free(cfg->server_tls_ctx);
    free(cfg->path);
    free(cfg);
}

/* Every setting in table order, as SHOW CONFIG lists them. */
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

/* The name of an enum setting's stored value ("?" when out of range). */
static const char *setting_choice_name(const char *setting, int value)
{
    const struct setting *st = config_setting_find(setting);
    for (int i = 0; st != NULL && st->choices != NULL && st->choices[i] != NULL; i++)
        if (i == value)
            return st->choices[i];
    return "?";
}

/* Whether the setting or a [user]/[database] section asks for nearest. */
static bool config_names_nearest(const struct config *cfg)
{
    if (cfg->target_session_attrs == NEED_NEAREST)
        return true;
    for (size_t i = 0; i < cfg->n_need_rules; i++)
        if (cfg->need_rules[i].value[SECTION_NEED] == NEED_NEAREST)
            return true;
    return false;
}

/*
 * What keeps every session from having its transactions placed one by
 * one (nearest), as the login finds it (client_login.c); NULL when
 * nothing does.
 */
static const char *config_nearest_shortfall(const struct config *cfg)
{
    if (cfg->auth != AUTH_SCRAM)
        return cfg->auth == AUTH_PASSTHROUGH ? "auth = passthrough"
                                             : "auth is not scram (pgnear has no client key)";
    if (!config_pooling(cfg))
        return "pool_mode = none";
    if (cfg->max_prepared_statements == 0)
        return "max_prepared_statements = 0";
    return NULL; /* movable = off may be a section's to undo: the log says */
}

/*
 * Where sessions that name no need get any: "the default" (the setting's)
 * or the first [user]/[database] section that sets it, into out; false
 * when none does.
 */
static bool config_any_source(const struct config *cfg, char *out, size_t cap)
{
    if (cfg->target_session_attrs == NEED_ANY) {
        snprintf(out, cap, "%s", "the setting's, as by default");
        return true;
    }
    for (size_t i = 0; i < cfg->n_need_rules; i++) {
        const struct need_rule *r = &cfg->need_rules[i];
        if (r->value[SECTION_NEED] == NEED_ANY) {
            snprintf(out, cap, "[%s %s]", r->is_user ? "user" : "database", r->name);
            return true;
        }
    }
    return false;
}

/*
 * any where a host may be a standby.  --check knows no role (the health
 * checks learn them, and a role changes with a failover), and nothing in
 * the file says one: with more than one host, some may well be standbys
 * of another, and a session placed near one gets 25006 on its writes.
 */
static int config_any_warning(const struct config *cfg, char warnings[][256], int n, int max)
{
    char source[48]; /* a section's long name cut short */
    size_t hosts = 0;
    for (size_t i = 0; i < cfg->regions.count; i++)
        hosts += cfg->regions.items[i].nhosts;
    if (n < max && hosts > 1 && config_any_source(cfg, source, sizeof(source)))
        snprintf(warnings[n++], 256,
                 "target_session_attrs = any (%s) among %zu hosts: a session near a standby "
                 "gets 25006 on its writes; nearest runs them on a primary, read-write puts the "
                 "session on one",
                 source, hosts);
    return n;
}

/* target_session_attrs: what --check can say without asking a server for its role. */
static int config_need_warnings(const struct config *cfg, char warnings[][256], int n, int max)
{
    bool needs_roles = cfg->target_session_attrs != 0 || cfg->n_need_rules > 0;
    if (n < max && needs_roles && cfg->health_check_interval_ms <= 0)
        snprintf(warnings[n++], 256,
                 "target_session_attrs asks for roles, but health_check_interval = 0: no host's "
                 "role is ever learned, and the servers decide (a write on a standby fails with "
                 "25006)");
    const char *name = setting_choice_name("target_session_attrs", cfg->target_session_attrs);
    if (n < max && (strcmp(name, "read-write") == 0 || strcmp(name, "primary") == 0))
        snprintf(warnings[n++], 256,
                 "target_session_attrs = %s for every session that names no need: when no host "
                 "is a primary (standbys only, or during a failover) they wait failover_wait, "
                 "then get 08001; SHOW REGIONS shows the roles the health checks found",
                 name);
    const char *shortfall = config_names_nearest(cfg) ? config_nearest_shortfall(cfg) : NULL;
    if (n < max && shortfall != NULL)
        snprintf(warnings[n++], 256,
                 "target_session_attrs = nearest, but %s: its sessions run as read-write, on a "
                 "primary (pgnear must log in for them there and follow their transactions)",
                 shortfall);
    return config_any_warning(cfg, warnings, n, max);
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
    if (n < max && cfg->patroni[0] != '\0' && cfg->server_tls < TLS_SERVER_VERIFY_FULL)
        snprintf(warnings[n++], 256,
                 "patroni with server_tls below verify-full: a server at an address Patroni names "
                 "(and patroni_hosts allows) is not verified, and may ask for pgnear's or a "
                 "client's password in clear");
    if (n < max && cfg->websocket_port != 0 && cfg->trusted_proxies[0] == '\0' &&
        cfg->trusted_http_proxies[0] == '\0')
        snprintf(warnings[n++], 256,
                 "websocket_port without trusted_proxies: the locality headers of load balancers "
                 "in front are ignored");
    return config_need_warnings(cfg, warnings, n, max);
}

int config_pool_size(const struct config *cfg, int mode)
{
    if (mode != POOL_TRANSACTION)
        return cfg->pool_size_given;
    return cfg->pool_size > 0 ? cfg->pool_size : POOL_SIZE_TRANSACTION_DEFAULT;
}

/*
 * Whether the comma list holds item (len bytes): its entries are cut at
 * commas, blanks around them dropped, and compared whole.
 */
static bool comma_list_has(const char *list, const char *item, size_t len)
{
    for (const char *p = list; *p != '\0';) {
        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        size_t n = strcspn(p, ",");
        size_t end = n;
        while (end > 0 && isspace((unsigned char)p[end - 1]))
            end--;
        if (end > 0 && end == len && memcmp(p, item, len) == 0)
            return true;
        p += n;
    }
    return false;
}

bool config_is_admin_user(const struct config *cfg, const char *user)
{
    return comma_list_has(cfg->admin_users, user, strlen(user));
}

bool config_websocket_path(const struct config *cfg, const char *path)
{
    return comma_list_has(cfg->websocket_path, path, strlen(path));
}

bool config_nearest_read_function(const struct config *cfg, const char *name, size_t len)
{
    return comma_list_has(cfg->nearest_read_functions, name, len);
}
