/*
 * config_check.c — the checks of a loaded configuration, and what is
 * derived from it on the way: the regions and default_region, the city
 * table and GeoIP databases (shared with the running configuration when
 * their files are unchanged), the limits of every numeric setting,
 * migration_order, trusted_proxies and the PROXY TLV types, the auth
 * source, and the TLS contexts.
 */
#include "proxy/base/config_int.h"
#include "proxy/base/dns_lookup.h"

#include "proxy/base/auth_throttle.h"
#include "proxy/base/log.h"
#include "proxy/base/log_syslog.h"
#include "routing/cities.h"
#include "routing/geoip.h"
#include "routing/health.h"
#include "routing/need.h"
#include "routing/patroni.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each [database] section's regions name configured regions, each once. */
static void config_check_placement(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    for (size_t i = 0; i < cfg->n_need_rules; i++) {
        const struct need_rule *r = &cfg->need_rules[i];
        struct region_subset placed;
        char why[200], key[400];
        if (r->regions == NULL ||
            region_subset_parse(&cfg->regions, r->regions, &placed, why, sizeof(why)) == 0)
            continue;
        snprintf(key, sizeof(key), "database %s:regions", r->name);
        config_problem(lc, key, "[database %s] regions: %s", r->name, why);
    }
}

/*
 * The regions' hosts resolved, now that the whole file is read: through
 * dns_server where it names one (dns_lookup.h), else the system's resolver.
 */
static void config_resolve_regions(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    char at[320], err[512];
    bool own = cfg->dns_server[0] != '\0';
    if (own && !dns_server_valid(cfg->dns_server, err, sizeof(err))) {
        config_problem(lc, "pgnear:dns_server", "%s", err);
        return;
    }
    for (size_t i = 0; i < cfg->regions.count; i++) {
        struct region *r = &cfg->regions.items[i];
        snprintf(at, sizeof(at), "[region %s]", r->name);
        if (region_resolve_hosts(r, own ? dns_lookup_blocking : NULL, cfg->dns_server, err,
                                 sizeof(err)) != NULL)
            config_problem(lc, at, "%s", err);
    }
}

void config_check_regions(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    char at[320];
    if (cfg->regions.count == 0) {
        config_problem(lc, NULL, "no [region NAME] section");
        return;
    }
    for (size_t i = 0; i < cfg->regions.count; i++) {
        struct region *r = &cfg->regions.items[i];
        for (size_t h = 0; h < r->nhosts; h++)
            r->hosts[h].region = r;
        snprintf(at, sizeof(at), "[region %s]", r->name);
        if (r->nhosts == 0 && cfg->patroni[0] == '\0')
            config_problem(lc, at, "region \"%s\" has no hosts", r->name);
    }
    config_resolve_regions(lc);
    char err[256];
    if (cfg->patroni[0] != '\0' && patroni_check_urls(cfg->patroni, err, sizeof(err)) != NULL)
        config_problem(lc, NULL, "%s", err);
    else if (patroni_allowed_addrs(cfg->patroni, cfg->patroni_hosts, &cfg->patroni_allowed, err,
                                   sizeof(err)) != NULL)
        config_problem(lc, "pgnear:patroni_hosts", "%s", err);
    config_check_placement(lc);
    cfg->default_region_ptr = &cfg->regions.items[0];
    if (cfg->default_region[0] == '\0')
        return;
    cfg->default_region_ptr = region_set_find(&cfg->regions, cfg->default_region);
    if (cfg->default_region_ptr == NULL)
        config_problem(lc, "pgnear:default_region",
                       "default_region \"%s\" is not a configured region", cfg->default_region);
}

/*
 * auth = hba reads auth_hba_file here: a malformed line refuses the load
 * (a reload keeps the file it had) with FILE:LINE.  What its lines use
 * must be there: a source of secrets for scram-sha-256, a CA for
 * certificates.  auth = cert needs the CA as well.
 */
static void config_check_hba(struct load_ctx *lc, bool have_source)
{
    struct config *cfg = lc->cfg;
    char err[1024];
    bool certificates = cfg->auth == AUTH_CERT;
    if (cfg->auth == AUTH_HBA && cfg->auth_hba_file[0] == '\0') {
        config_problem(lc, "pgnear:auth", "auth = hba needs auth_hba_file");
    } else if (cfg->auth == AUTH_HBA) {
        if (hba_load(cfg->auth_hba_file, &cfg->hba, err, sizeof(err)) != HBA_OK)
            config_problem(lc, "pgnear:auth_hba_file", "%s", err);
        else if (hba_uses_method(&cfg->hba, HBA_METHOD_SCRAM) && !have_source)
            config_problem(lc, "pgnear:auth_hba_file",
                           "%s has scram-sha-256 lines, which need auth_file or auth_query",
                           cfg->auth_hba_file);
        certificates = hba_uses_certificates(&cfg->hba);
    }
    if (certificates && cfg->client_tls_ca_file[0] == '\0')
        config_problem(lc, cfg->auth == AUTH_CERT ? "pgnear:auth" : "pgnear:auth_hba_file",
                       "client certificates (%s) need client_tls_ca_file",
                       cfg->auth == AUTH_CERT ? "auth = cert" : "a cert or clientcert= line");
    if (certificates && cfg->client_tls == CLIENT_TLS_DISABLE && !cfg->websocket_tls)
        config_problem(lc, cfg->auth == AUTH_CERT ? "pgnear:auth" : "pgnear:auth_hba_file",
                       "client certificates (%s) need client_tls = allow or require",
                       cfg->auth == AUTH_CERT ? "auth = cert" : "a cert or clientcert= line");
}

/*
 * auth's default follows from the sources given (scram with auth_file or
 * auth_query, else passthrough); auth_file is read here, so a bad one refuses
 * the load.
 */
static void config_check_auth(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    char err[1024];
    bool have_source = cfg->auth_file[0] != '\0' || cfg->auth_query[0] != '\0';
    if (cfg->auth < 0)
        cfg->auth = have_source ? AUTH_SCRAM : AUTH_PASSTHROUGH;
    if (cfg->auth == AUTH_SCRAM && !have_source)
        config_problem(lc, "pgnear:auth", "auth = scram needs auth_file or auth_query");
    if (cfg->auth_file[0] != '\0' &&
        userlist_load(&cfg->users, cfg->auth_file, err, sizeof(err)) != 0)
        config_problem(lc, "pgnear:auth_file", "%s", err);
    config_check_hba(lc, have_source);
}

/* The line of the first of names ([pgnear] keys) that msg mentions and the file sets. */
static int line_of_named(struct load_ctx *lc, const char *msg, const char *const names[],
                         const char *fallback)
{
    char key[64];
    for (size_t i = 0; names[i] != NULL; i++) {
        snprintf(key, sizeof(key), "pgnear:%s", names[i]);
        int line = config_line_of(&lc->names, key);
        if (strstr(msg, names[i]) != NULL && line > 0)
            return line;
    }
    snprintf(key, sizeof(key), "pgnear:%s", fallback);
    return config_line_of(&lc->names, key);
}

/*
 * client_tls_crl_file and client_tls_crl_dir, into the client context that
 * verifies against client_tls_ca_file: read at each load, so a reload takes
 * a new list (and sessions already logged in stay, as with PostgreSQL).
 */
static void config_check_client_crls(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    char err[1024];
    bool file = cfg->client_tls_crl_file[0] != '\0';
    if (!file && cfg->client_tls_crl_dir[0] == '\0')
        return;
    const char *key = file ? "pgnear:client_tls_crl_file" : "pgnear:client_tls_crl_dir";
    if (cfg->client_tls_ca_file[0] == '\0')
        config_problem(lc, key,
                       "%s needs client_tls_ca_file: client certificates are verified "
                       "only against it",
                       key + strlen("pgnear:"));
    else if (cfg->client_tls_ctx != NULL &&
             !tls_check_client_crls(cfg->client_tls_ctx, cfg->client_tls_crl_file,
                                    cfg->client_tls_crl_dir, err, sizeof(err)))
        config_problem(lc, key, "%s", err);
}

/*
 * The TLS contexts are made at load, so a bad certificate or key refuses the
 * load (or reload) instead of failing the first client; the problem points at
 * the file's line.
 */
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
            config_problem(lc,
                           cfg->client_tls != CLIENT_TLS_DISABLE ? "pgnear:client_tls"
                                                                 : "pgnear:websocket_tls",
                           "%s needs client_tls_cert_file and client_tls_key_file",
                           cfg->client_tls != CLIENT_TLS_DISABLE ? "client_tls" : "websocket_tls");
        else if ((cfg->client_tls_ctx =
                      tls_make_client_side_ctx(cfg->client_tls_cert_file, cfg->client_tls_key_file,
                                               err, sizeof(err))) == NULL)
            config_problem_at(lc, line_of_named(lc, err, files, "client_tls"), "%s", err);
        else if (cfg->client_tls_ca_file[0] != '\0' &&
                 !tls_verify_clients(cfg->client_tls_ctx, cfg->client_tls_ca_file, err,
                                     sizeof(err)))
            config_problem(lc, "pgnear:client_tls_ca_file", "%s", err);
    }
    config_check_client_crls(lc);
    if (cfg->server_tls != TLS_SERVER_DISABLE) {
        cfg->server_tls_ctx = tls_make_server_side_ctx(
            (enum tls_server_mode)cfg->server_tls, cfg->server_tls_ca_file,
            cfg->server_tls_cert_file, cfg->server_tls_key_file, err, sizeof(err));
        if (cfg->server_tls_ctx == NULL)
            config_problem_at(lc, line_of_named(lc, err, files, "server_tls"), "%s", err);
    }
}

/* Who may send PROXY headers and the TLV types they use: not routing decisions. */
static void config_check_proxy(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    char why[512];
    if (!cidr_list_parse(&cfg->trusted, cfg->trusted_proxies, why, sizeof(why)))
        config_problem(lc, "pgnear:trusted_proxies", "trusted_proxies: %s", why);
    if (!cidr_list_parse(&cfg->trusted_http, cfg->trusted_http_proxies, why, sizeof(why)))
        config_problem(lc, "pgnear:trusted_http_proxies", "trusted_http_proxies: %s", why);
    cfg->tlv_types.city = (uint8_t)cfg->proxy_tlv_city;
    cfg->tlv_types.region = (uint8_t)cfg->proxy_tlv_region;
    cfg->tlv_types.location = (uint8_t)cfg->proxy_tlv_location;
    if (cfg->tlv_types.city == cfg->tlv_types.region ||
        cfg->tlv_types.city == cfg->tlv_types.location ||
        cfg->tlv_types.region == cfg->tlv_types.location)
        config_problem(lc, NULL,
                       "proxy_tlv_city, proxy_tlv_region and proxy_tlv_location must differ");
    if (cfg->tlv_types.city == PP2_TYPE_PGNEAR_PEER ||
        cfg->tlv_types.region == PP2_TYPE_PGNEAR_PEER ||
        cfg->tlv_types.location == PP2_TYPE_PGNEAR_PEER)
        config_problem(lc, NULL,
                       "PROXY TLV type 0xE8 carries the peer of a forwarded cancel request: "
                       "proxy_tlv_city, proxy_tlv_region and proxy_tlv_location must use another");
}

/*
 * The city table: the running configuration's when its file is unchanged
 * (a reload that built it again would hold two for a while, and churn
 * 15 MiB of memory each time), else read from the file.
 */
static void load_cities(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    struct city_table *had = lc->running != NULL ? lc->running->cities : NULL;
    char why[512];
    if (had != NULL && city_table_unchanged(had, cfg->cities_file)) {
        cfg->cities = city_table_ref(had);
        log_info(0, "cities_file %s is unchanged: its city table is shared", cfg->cities_file);
    } else if ((cfg->cities = city_table_load(cfg->cities_file, why, sizeof(why))) == NULL) {
        config_problem(lc, "pgnear:cities_file", "cities_file: %s", why);
    } else if (lc->running != NULL) {
        log_info(0, "city table loaded from %s: %zu places%s", cfg->cities_file,
                 city_table_count(cfg->cities),
                 city_table_settled(cfg->cities)
                     ? ""
                     : " (the file changed less than a second before: the next reload reads it "
                       "again)");
    }
}

/* The GeoIP databases: as the city table, the running configuration's when unchanged. */
static void load_geoip(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    struct geoip_set *had = lc->running != NULL ? lc->running->geoip : NULL;
    char why[512];
    if (had != NULL && geoip_unchanged(had, cfg->geoip_db)) {
        cfg->geoip = geoip_ref(had);
        log_info(0, "geoip_db %s is unchanged: its database is shared", cfg->geoip_db);
    } else if ((cfg->geoip = geoip_open(cfg->geoip_db, why, sizeof(why))) == NULL) {
        config_problem(lc, "pgnear:geoip_db", "geoip_db: %s", why);
    } else if (lc->running != NULL) {
        geoip_describe(cfg->geoip, why, sizeof(why));
        log_info(0, "geoip_db %s opened: %s", cfg->geoip_db, why);
    }
}

/* The city table and the GeoIP databases: what routing looks callers up in. */
static void config_load_routing(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    if (cfg->cities_file[0] != '\0')
        load_cities(lc);
    if (cfg->geoip_db[0] != '\0')
        load_geoip(lc);
    cfg->routing = (struct routing_data){.regions = &cfg->regions,
                                         .fallback = cfg->default_region_ptr,
                                         .cities = cfg->cities,
                                         .geoip = cfg->geoip,
                                         .overrides = cfg->overrides,
                                         .n_overrides = cfg->n_overrides,
                                         .health_checked = cfg->health_check_interval_ms > 0,
                                         .rank = config_route_rank(cfg)};
}

/* route_by's settings (routing/rtt.h). */
static void check_route_settings(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    if (cfg->route_by < 0) /* "route_by =" */
        cfg->route_by = ROUTE_BY_HYBRID;
    if (cfg->route_candidates < 1 || cfg->route_candidates > ROUTE_MAX_REGIONS)
        config_problem(lc, "pgnear:route_candidates", "route_candidates must be between 1 and %d",
                       ROUTE_MAX_REGIONS);
    if (cfg->route_candidate_km < 0)
        config_problem(lc, "pgnear:route_candidate_km", "route_candidate_km must be 0 or more");
    if (cfg->route_deadband < 0 || cfg->route_deadband > 100)
        config_problem(lc, "pgnear:route_deadband",
                       "route_deadband must be a percentage between 0 and 100");
}

/* The pooling settings: bounds, and min_pool_size within pool_size (0: no limit). */
static void check_pool_settings(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    /* Without a bound, transaction pooling would keep as many connections as clients. */
    cfg->pool_size_given = cfg->pool_size;
    if (cfg->pool_mode == POOL_TRANSACTION && cfg->pool_size == 0)
        cfg->pool_size = POOL_SIZE_TRANSACTION_DEFAULT;
    for (size_t i = 0; i < cfg->n_need_rules && !config_pooling(cfg); i++) {
        const struct need_rule *r = &cfg->need_rules[i];
        if (r->value[SECTION_POOL_MODE] >= 0) {
            config_problem(lc, NULL,
                           "[%s %s]: pool_mode needs pooling on: pool_mode = session or "
                           "transaction under [pgnear], and auth = scram",
                           r->is_user ? "user" : "database", r->name);
            break;
        }
    }
    if (cfg->pool_size < 0 || cfg->pool_size > POOL_SIZE_MAX)
        config_problem(lc, "pgnear:pool_size", "pool_size must be 0 (no limit) or between 1 and %d",
                       POOL_SIZE_MAX);
    int most = cfg->pool_size > 0 ? cfg->pool_size : POOL_SIZE_MAX;
    if (cfg->min_pool_size < 0 || cfg->min_pool_size > most)
        config_problem(lc, "pgnear:min_pool_size", "min_pool_size must be between 0 and %d%s", most,
                       cfg->pool_size > 0 ? " (pool_size)" : "");
    if (cfg->max_prepared_statements < 0 || cfg->max_prepared_statements > PREPARED_MAX)
        config_problem(lc, "pgnear:max_prepared_statements",
                       "max_prepared_statements must be between 0 and %d", PREPARED_MAX);
    if (cfg->max_db_connections < 0)
        config_problem(lc, "pgnear:max_db_connections",
                       "max_db_connections must be 0 (no limit) or more");
    if (cfg->max_user_connections < 0 || cfg->max_user_client_connections < 0 ||
        cfg->max_db_client_connections < 0)
        config_problem(lc, "pgnear:max_user_connections",
                       "max_user_connections, max_user_client_connections and "
                       "max_db_client_connections must be 0 (no limit) or more");
    if (cfg->server_lifetime_ms < 1000 || cfg->server_idle_timeout_ms < 1000)
        config_problem(lc, "pgnear:server_lifetime",
                       "server_lifetime and server_idle_timeout must be 1s or more");
    if (cfg->server_rollback_timeout_ms < 0)
        config_problem(lc, "pgnear:server_rollback_timeout",
                       "server_rollback_timeout must be 0 (off) or more");
    if (cfg->query_wait_timeout_ms < 1 || cfg->server_check_delay_ms < 0)
        config_problem(lc, "pgnear:query_wait_timeout",
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

/* The WebSocket listener's settings, each with its bounds. */
static void check_websocket_settings(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    if (cfg->websocket_port < 0 || cfg->websocket_port > 65535)
        config_problem(lc, "pgnear:websocket_port",
                       "websocket_port must be between 0 (off) and 65535");
    else if (cfg->websocket_port != 0 && cfg->websocket_port == cfg->listen_port)
        config_problem(lc, "pgnear:websocket_port", "websocket_port must differ from listen_port");
    if (!websocket_paths_valid(cfg->websocket_path))
        config_problem(lc, "pgnear:websocket_path",
                       "websocket_path must be a comma list of paths, each beginning with \"/\"");
    if (cfg->websocket_max_frame < 1024)
        config_problem(lc, "pgnear:websocket_max_frame", "websocket_max_frame must be 1kB or more");
    if (cfg->websocket_handshake_timeout_ms < 100)
        config_problem(lc, "pgnear:websocket_handshake_timeout",
                       "websocket_handshake_timeout must be 100ms or more");
    if (cfg->websocket_ping_interval_ms != 0 && cfg->websocket_ping_interval_ms < 1000)
        config_problem(lc, "pgnear:websocket_ping_interval",
                       "websocket_ping_interval must be 0 (off) or 1s or more");
}

/* Ports, workers and the other bounded settings; an empty target_session_attrs means any. */
static void config_check_limits(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    if (cfg->listen_port <= 0 || cfg->listen_port > 65535)
        config_problem(lc, "pgnear:listen_port", "listen_port must be between 1 and 65535");
    if (cfg->workers < 1 || cfg->workers > 64)
        config_problem(lc, "pgnear:workers", "workers must be between 1 and 64");
    if (cfg->max_client_conn <= 0)
        config_problem(lc, "pgnear:max_client_conn", "max_client_conn must be positive");
    check_pool_settings(lc);
    check_websocket_settings(lc);
    if (cfg->tcp_keepidle_ms < 1000)
        config_problem(lc, "pgnear:tcp_keepidle", "tcp_keepidle must be 1s or more");
    if (cfg->tcp_keepintvl_ms < 1000)
        config_problem(lc, "pgnear:tcp_keepintvl", "tcp_keepintvl must be 1s or more");
    if (cfg->tcp_keepcnt < 1)
        config_problem(lc, "pgnear:tcp_keepcnt", "tcp_keepcnt must be 1 or more");
    if (cfg->health_check_fall < HEALTH_FALL_MIN || cfg->health_check_fall > HEALTH_FALL_MAX)
        config_problem(lc, "pgnear:health_check_fall",
                       "health_check_fall must be between %d and %d", HEALTH_FALL_MIN,
                       HEALTH_FALL_MAX);
    if (cfg->target_session_attrs < 0) /* "target_session_attrs =" */
        cfg->target_session_attrs = NEED_ANY;
    if (cfg->log_format < 0) /* "log_format =" */
        cfg->log_format = LOG_FORMAT_TEXT;
    if (!log_syslog_facility_known(cfg->syslog_facility))
        config_problem(lc, "pgnear:syslog_facility",
                       "syslog_facility must be one of daemon, user, local0 .. local7, not \"%s\"",
                       cfg->syslog_facility);
}

/* The auth throttle's settings (auth_throttle.h). */
static void config_check_throttle(struct load_ctx *lc)
{
    struct config *cfg = lc->cfg;
    if (cfg->auth_failure_threshold > THROTTLE_THRESHOLD_MAX)
        config_problem(lc, "pgnear:auth_failure_threshold",
                       "auth_failure_threshold must be between 0 (off) and %d",
                       THROTTLE_THRESHOLD_MAX);
    if (cfg->auth_failure_delay_ms < 1 || cfg->auth_failure_delay_ms > THROTTLE_DELAY_MAX_MS)
        config_problem(lc, "pgnear:auth_failure_delay",
                       "auth_failure_delay must be between 1ms and 1h");
    else if (cfg->auth_failure_max_delay_ms < cfg->auth_failure_delay_ms ||
             cfg->auth_failure_max_delay_ms > THROTTLE_DELAY_MAX_MS)
        config_problem(lc, "pgnear:auth_failure_max_delay",
                       "auth_failure_max_delay must be between auth_failure_delay and 1h");
}

/* PAUSE and session moves wait at most 1 h, so a mistaken value cannot hold sessions forever. */
static void config_check_pause(struct load_ctx *lc)
{
    if (lc->cfg->pause_timeout_ms < 1 || lc->cfg->pause_timeout_ms > 3600 * 1000)
        config_problem(lc, "pgnear:pause_timeout", "pause_timeout must be between 1ms and 1h");
    if (lc->cfg->move_timeout_ms < 1 || lc->cfg->move_timeout_ms > 3600 * 1000)
        config_problem(lc, "pgnear:move_timeout", "move_timeout must be between 1ms and 1h");
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
        config_problem(lc, "pgnear:migration_order",
                       "migration_order names \"%s\", which is not a configured region", name);
        return -1;
    }
    size_t i = (size_t)(r - cfg->regions.items);
    if (seen[i]) {
        config_problem(lc, "pgnear:migration_order", "migration_order names region \"%s\" twice",
                       r->name);
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
        config_problem(lc, "pgnear:migration_hold_timeout",
                       "migration_hold_timeout must be between 1ms and 1h");
    bool *seen = calloc(n > 0 ? n : 1, sizeof(*seen));
    char *list = strdup(cfg->migration_order);
    cfg->migration_order_index = calloc(n > 0 ? n : 1, sizeof(size_t));
    if (seen == NULL || list == NULL || cfg->migration_order_index == NULL) {
        config_problem(lc, NULL, "out of memory");
        free(seen);
        free(list);
        return;
    }
    char *save = NULL;
    for (char *tok = strtok_r(list, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *name = trim_blanks(tok);
        if (name[0] == '\0') {
            config_problem(lc, "pgnear:migration_order",
                           "migration_order has an empty region name");
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

void config_check_loaded(struct load_ctx *lc)
{
    check_route_settings(lc); /* before the routing data takes them, --explain's too */
    config_load_routing(lc);
    if (lc->scope != CONFIG_SCOPE_ALL)
        return;
    config_check_limits(lc);
    config_check_throttle(lc);
    config_check_pause(lc);
    if (lc->cfg->regions.count > 0)
        config_check_migrations(lc);
    config_check_proxy(lc);
    config_check_peers(lc);
    config_check_auth(lc);
    config_check_tls(lc);
}
