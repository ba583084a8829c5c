/*
 * config.h — the loaded configuration.  A reload builds a new struct
 * config aside and swaps it in only when all of it loaded.
 */
#ifndef PGNEAR_PROXY_CONFIG_H
#define PGNEAR_PROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "protocol/cancel_key.h"
#include "protocol/proxy_proto.h"
#include "protocol/tls.h"
#include "proxy/base/hba.h"
#include "proxy/base/peer_stats.h"
#include "proxy/base/userlist.h"
#include "routing/cidr.h"
#include "routing/region.h"
#include "routing/route.h"

/* auth = hba: each connection as the first line of auth_hba_file it matches says; cert: by its
 * client certificate. */
enum auth_mode { AUTH_SCRAM, AUTH_PASSTHROUGH, AUTH_HBA, AUTH_CERT };
enum pool_mode { POOL_NONE, POOL_SESSION, POOL_TRANSACTION };

/* pool_size under pool_mode = transaction when the file says 0 (no limit): the mode needs a bound.
 */
#define POOL_SIZE_TRANSACTION_DEFAULT 20
enum client_tls_mode { CLIENT_TLS_DISABLE, CLIENT_TLS_ALLOW, CLIENT_TLS_REQUIRE };
enum websocket_untrusted { WS_UNTRUSTED_IGNORE, WS_UNTRUSTED_REFUSE };
/* How a worker's logged-in plain sockets send: io_uring where the kernel allows it, or epoll. */
enum io_backend { IO_BACKEND_AUTO, IO_BACKEND_EPOLL, IO_BACKEND_URING };
enum websocket_auth { WS_AUTH_CLEARTEXT, WS_AUTH_SCRAM };
enum proxy_protocol_mode { PROXY_PROTOCOL_OFF, PROXY_PROTOCOL_OPTIONAL, PROXY_PROTOCOL_REQUIRED };

/*
 * The keys of [database NAME] and [user NAME] sections that hold a choice,
 * each with the [pgnear] setting of its name as the default; their table
 * is section_keys[] (config_sections.c).
 */
enum section_key {
    SECTION_NEED,      /* target_session_attrs: an enum session_need */
    SECTION_MOVABLE,   /* movable: 0 or 1 */
    SECTION_POOL_MODE, /* pool_mode: POOL_SESSION or POOL_TRANSACTION */
    /* The limits of their names, each 0 (no limit) or more: */
    SECTION_MAX_USER_CONNECTIONS,
    SECTION_MAX_USER_CLIENT_CONNECTIONS,
    SECTION_MAX_DB_CLIENT_CONNECTIONS,
    /* PgBouncer's timeouts, in milliseconds (0: off) */
    SECTION_QUERY_TIMEOUT,
    SECTION_TRANSACTION_TIMEOUT,
    SECTION_IDLE_TRANSACTION_TIMEOUT,
    SECTION_CLIENT_IDLE_TIMEOUT,
    SECTION_CHOICES
};

/* A [database NAME] or [user NAME] section. */
struct need_rule {
    bool is_user;
    char *name;                 /* as iniparser read it: in lower case */
    int value[SECTION_CHOICES]; /* by enum section_key; -1: not set */
    char *regions; /* a database's "r1, r2" as written (checked at load); NULL: every region */
    char *home_by; /* a database's column that homes its rows by city; NULL: none */
};

/* One entry of peers: an instance of the fleet (maybe this one) and where it listens. */
struct peer {
    int id;
    struct host_addr where;
};

struct peer_list {
    size_t count;
    struct peer *items; /* owned */
};

struct config {
    int refcount; /* the worker and every session started under it */
    char *path;
    /* [pgnear] settings, in the order of config_settings[] */
    char *listen_addr;
    int listen_port;
    char *unix_socket_dir;
    char *admin_db;
    char *admin_users;
    int auth; /* enum auth_mode; -1 until derived */
    char *auth_file;
    char *auth_query;
    char *auth_hba_file;        /* pg_hba.conf's syntax (hba.h), under auth = hba */
    int auth_failure_threshold; /* failed logins of one (address, user) before waits; 0: off */
    int auth_failure_delay_ms;
    int auth_failure_max_delay_ms;
    int client_tls;
    char *client_tls_cert_file;
    char *client_tls_key_file;
    char *client_tls_ca_file;  /* client certificates are asked for and verified against it */
    char *client_tls_crl_file; /* ... and checked against these revocation lists */
    char *client_tls_crl_dir;
    bool client_tls_direct_without_alpn; /* a direct TLS handshake without ALPN is let in */
    int server_tls;
    char *server_tls_ca_file;
    char *server_tls_cert_file;
    char *server_tls_key_file;
    char *server_conninfo;
    int proxy_protocol;
    int proxy_tlv_city;
    int proxy_tlv_region;
    int proxy_tlv_location;
    char *trusted_proxies;
    char *trusted_http_proxies; /* whose forwarded-address headers decide access too */
    bool client_hints;
    char *geoip_db;
    char *cities_file;
    char *default_region;
    int health_check_interval_ms;
    int health_check_timeout_ms;
    int health_check_fall;
    int health_check_login_interval_ms; /* a check logs in afresh at least this often */
    int target_session_attrs;  /* enum session_need: what sessions need unless told otherwise */
    int failover_wait_ms;      /* how long a session waits for a host that fits its need */
    int max_standby_lag_ms;    /* a standby further behind is passed over for reads; 0: off */
    int route_by;              /* enum route_by: how regions are ordered (routing/rtt.h) */
    int route_candidates;      /* hybrid: the regions nearest the caller ordered by measurement */
    int route_candidate_km;    /* ... and any within this many km */
    int route_deadband;        /* percent a challenger must be better by to be preferred ... */
    int route_deadband_min_ms; /* ... and at least this much */
    int route_hold_down_ms;    /* no change of a group's preferred region sooner after the last */
    int max_standby_lag_bytes; /* the same in bytes of WAL; 0: off */
    bool report_fence;         /* sessions get pgnear.fence after each transaction that wrote */
    int min_lsn_wait_ms;       /* how long pgnear.min_lsn waits for a standby to replay it */
    char *nearest_read_functions; /* volatile routines vouched to only read: nearest runs near */
    char *patroni; /* Patroni's REST endpoints: members, regions and leader (routing/patroni.h) */
    char *patroni_hosts; /* addresses and CIDRs where a member no region lists may be added */
    /* A host name is resolved again at its record's TTL, at most this long after; 0: not again. */
    int dns_max_ttl_ms;
    char *dns_server; /* "address:port" asked instead of /etc/resolv.conf's; "": resolv.conf */
    int max_client_conn;
    int client_login_timeout_ms;
    int server_connect_timeout_ms;
    int shutdown_timeout_ms;
    int shutdown_ready_grace_ms; /* a stop signal: not ready this long before listeners close */
    int pause_timeout_ms;        /* PAUSE gives up (and undoes itself) after this */
    int move_timeout_ms; /* a move whose session reached no safe point by then is given up */
    bool movable;        /* sessions may be moved to another server (move.h) */
    bool tcp_keepalive;  /* on client and server TCP connections */
    int tcp_keepidle_ms;
    int tcp_keepintvl_ms;
    int tcp_keepcnt;
    int workers;
    int io_backend; /* enum io_backend */
    int websocket_port;
    bool websocket_tls;             /* the WebSocket port speaks wss */
    char *websocket_path;           /* upgrade paths, a comma list */
    int websocket_untrusted;        /* enum websocket_untrusted */
    int websocket_max_frame;        /* bytes of one client frame's payload */
    int websocket_ping_interval_ms; /* 0: no pings */
    int websocket_handshake_timeout_ms;
    int websocket_auth;      /* enum websocket_auth (under auth = scram) */
    char *geo_region_header; /* locality headers with operator-chosen names */
    char *geo_city_header;
    char *geo_country_header;
    char *geo_lat_long_header;
    char *metrics_addr;
    char *migrations_dir;
    char *migrations_db;
    char *migration_order;         /* region names, a comma list */
    int migration_hold_timeout_ms; /* a pause step is not started if the gate cannot close */
    char *moves_db;                /* where each region's primary keeps pgnear_database_moves */
    char *pg_dump;                 /* the program that copies a moving database's schema */
    int peer_id;            /* this instance in the fleet, 1..CANCEL_PEER_ID_MAX; 0: no peering */
    char *peers;            /* "id@host:port, ...": the fleet, for forwarding cancel requests */
    char *peer_secret_file; /* the fleet's secret, which authenticates 3.2 cancel keys */
    int cancel_forward_timeout_ms; /* a cancel request forwarded to a peer: connect and send */
    int cancel_rate_limit; /* cancel requests that cancel nothing, per second per network; 0: off */
    int cancel_max_inflight; /* cancel requests being forwarded to peers at once, per worker */
    int pool_mode;           /* enum pool_mode */
    /* Server-connection pooling (pool_mode = session): */
    char *server_reset_query; /* run as a connection is given back */
    char *server_check_query; /* run before reuse after server_check_delay idle ("": empty query) */
    int server_check_delay_ms;
    int server_lifetime_ms;     /* a connection older than this is closed, not kept */
    int server_idle_timeout_ms; /* an idle connection is closed after this */
    int query_wait_timeout_ms;  /* how long a client waits for a connection of a full pool */
    int query_wait_notify_ms;   /* then, after this long, it gets one NOTICE saying why; 0: none */
    int pool_size;              /* connections per region, database and user; 0: no limit */
    int min_pool_size;          /* kept open in the background */
    int max_db_connections;     /* per host; 0: no limit */
    /* A vanished client's connection canceled, rolled back and kept within; 0: closed. */
    int server_rollback_timeout_ms;
    /* Limits per user and database, each 0 (no limit) unless a section says (SECTION_MAX_*): */
    int max_user_connections;        /* a user's server connections per host */
    int max_user_client_connections; /* a user's client sessions, all workers */
    int max_db_client_connections;   /* a database's client sessions, all workers */
    /* pool_mode = transaction: statements kept per server connection; 0: named ones pin */
    int max_prepared_statements;
    /* PgBouncer's timeouts (session/timeouts.h), each 0: off */
    int query_timeout_ms;            /* a request running longer is canceled on its server */
    int transaction_timeout_ms;      /* a transaction open longer ends its session */
    int idle_transaction_timeout_ms; /* idle in a transaction longer: the session ends */
    int client_idle_timeout_ms;      /* a client idle between transactions longer is closed */
    char *logfile;
    int log_format;        /* enum log_format (log.h): text or one JSON object a line */
    bool syslog;           /* every line also to syslog(3) */
    char *syslog_ident;    /* PgBouncer's names */
    char *syslog_facility; /* daemon, user, local0 .. local7 */

    /* derived at load */
    struct region_set regions;
    struct region *default_region_ptr;
    size_t *migration_order_index; /* regions.count indices into regions.items: migrations' order */
    struct cidr_list trusted;
    struct cidr_list trusted_http;    /* trusted_http_proxies */
    struct cidr_list patroni_allowed; /* patroni_hosts and the patroni endpoints' addresses */
    struct pp_tlv_types tlv_types;
    struct city_table *cities;       /* NULL without cities_file */
    struct geoip_set *geoip;         /* NULL without geoip_db */
    struct city_override *overrides; /* [cities] */
    size_t n_overrides;
    struct peer_list peer_list;  /* peers, parsed and resolved */
    struct cidr_list peer_addrs; /* their addresses (PEERS_MAX fits CIDR_MAX) */
    uint8_t peer_secret[CANCEL_SECRET_MAX];
    size_t peer_secret_len;       /* 0: no peer_secret_file */
    struct need_rule *need_rules; /* [database NAME] and [user NAME] sections */
    size_t n_need_rules;
    /* pool_size as the file gave it (0: no limit): session-mode pools' under a transaction-mode
     * pool_mode, whose pool_size is then the mode's bound */
    int pool_size_given;
    struct routing_data routing;   /* the above, as routing sees them */
    struct health_checker *health; /* running while this is the current config */
    struct userlist users;
    struct hba_file hba;     /* auth_hba_file, read at each load */
    SSL_CTX *client_tls_ctx; /* NULL when client_tls = disable */
    SSL_CTX *server_tls_ctx; /* NULL when server_tls = disable */
};

/* What config_load_scoped loads and checks. */
enum config_scope {
    CONFIG_SCOPE_ALL,     /* everything: the proxy, reloads, pgnear --check */
    CONFIG_SCOPE_ROUTING, /* regions, [cities], cities_file, geoip_db, default_region,
                             target_session_attrs and route_by's (--explain) */
};

#define CONFIG_MAX_PROBLEMS 32

/* The most max_prepared_statements may say. */
#define PREPARED_MAX 100000

/* The most pool_size may say (0 says no limit). */
#define POOL_SIZE_MAX 10000

/* Every problem of one load, each "file:line: why", or "file: why" where no line is known. */
struct config_problems {
    int count;   /* in items, in the order found */
    int dropped; /* found beyond CONFIG_MAX_PROBLEMS */
    /* The file's log_format as far as it was read (enum log_format), for where the problems go. */
    int log_format;
    char items[CONFIG_MAX_PROBLEMS][512];
};

/*
 * Loads and validates what scope asks for, going on after a problem
 * wherever what follows does not depend on it; NULL when there was any.
 */
struct config *config_load_scoped(const char *path, enum config_scope scope,
                                  struct config_problems *problems);

/*
 * The whole configuration; on failure returns NULL with the first problem
 * in err ("file:line: why"), and how many more there are.
 */
struct config *config_load(const char *path, char *err, size_t errcap);

/* A setting's value given apart from the file (the admin console's SET). */
struct config_override {
    char name[64]; /* as written in the file: health_check_interval, not ..._ms */
    char value[1025];
};

/*
 * config_load, with each override taking the place of the file's [pgnear]
 * value.  A reload passes the running configuration (else NULL): the city
 * table and GeoIP databases of files unchanged since it loaded them are
 * shared with it, not built again.  running must stay alive and unchanged
 * meanwhile; only its tables are read (they are immutable), so the load may
 * run on another thread.
 */
struct config *config_load_overridden(const char *path, const struct config_override *ov, int nov,
                                      const struct config *running, char *err, size_t errcap);

/* Whether name is a setting (as written in the file), and whether a reload applies it. */
bool config_setting_known(const char *name, bool *reloadable);
/* References are taken and dropped by every worker thread. */
static inline struct config *config_ref(struct config *cfg)
{
    __atomic_add_fetch(&cfg->refcount, 1, __ATOMIC_RELAXED);
    return cfg;
}
void config_unref(struct config *cfg);

/*
 * Whether server connections are kept between clients: pool_mode = session
 * or transaction, under auth = scram.
 */
/* route_by and its settings as routing takes them (routing/rtt.h). */
static inline struct route_rank config_route_rank(const struct config *cfg)
{
    return (struct route_rank){
        .by = (enum route_by)cfg->route_by,
        .candidates = cfg->route_candidates > 0 ? (unsigned)cfg->route_candidates : 0,
        .candidate_km = cfg->route_candidate_km,
        .damping = {.deadband = cfg->route_deadband / 100.0,
                    .deadband_min_ms = cfg->route_deadband_min_ms,
                    .hold_down_ms = cfg->route_hold_down_ms},
    };
}

static inline bool config_pooling(const struct config *cfg)
{
    return cfg->pool_mode != POOL_NONE && cfg->auth == AUTH_SCRAM;
}

/* Whether a session's server connection goes back to the pool after each transaction. */
static inline bool config_txn_pooling(const struct config *cfg)
{
    return cfg->pool_mode == POOL_TRANSACTION && cfg->auth == AUTH_SCRAM;
}

/* Whether path is one of websocket_path's (compared exactly). */
bool config_websocket_path(const struct config *cfg, const char *path);

/* Whether nearest_read_functions names the routine name (len bytes, as pg_proc spells it). */
bool config_nearest_read_function(const struct config *cfg, const char *name, size_t len);

/*
 * What the sections say of key for user's sessions on database: a [user]
 * section's over a [database] one's, else the [pgnear] setting.
 */
int config_section_value(const struct config *cfg, enum section_key key, const char *user,
                         const char *database);

/*
 * What a session of user on database needs when its startup packet does
 * not say: the [user] section's, else the [database] section's, else
 * target_session_attrs (an enum session_need).
 */
int config_session_need(const struct config *cfg, const char *user, const char *database);
/* Whether sessions of user and database may be moved: their sections, else movable. */
bool config_session_movable(const struct config *cfg, const char *user, const char *database);

/*
 * The pool_mode of user's sessions on database: their sections' (a [user]
 * section's over a [database] one's), else pool_mode; POOL_NONE whenever
 * pooling is off (config_pooling).
 */
int config_session_pool_mode(const struct config *cfg, const char *user, const char *database);

/* pool_size for pools of mode: the transaction mode's bound when pool_size is 0 (no limit). */
int config_pool_size(const struct config *cfg, int mode);

/* "session" or "transaction" (a section's pool_mode); false for anything else. */
bool config_parse_section_pool_mode(const char *text, int *mode);
/*
 * The regions database lives in by its [database] section ("r1, r2", names
 * of configured regions: the load checked them); NULL: every region.
 */
const char *config_database_regions(const struct config *cfg, const char *database);
/*
 * The column that homes database's rows by city ([database] home_by, which
 * the load allowed only beside regions); NULL: none.
 */
const char *config_database_home_by(const struct config *cfg, const char *database);
/*
 * The same as regions of cfg: out, filled, or NULL when database may go to
 * every region (what route_plan takes).
 */
const struct region_subset *config_database_placement(const struct config *cfg,
                                                      const char *database,
                                                      struct region_subset *out);

/* "on", "off", "true", "false", "yes", "no", "1", "0", in any case; false for anything else. */
bool config_parse_bool(const char *v, bool *out);

/* Whether user is one of admin_users (a comma list; names compared exactly). */
bool config_is_admin_user(const struct config *cfg, const char *user);

/* Calls fn for every setting with its current value as text (SHOW CONFIG, --check -v). */
typedef void (*config_visit_fn)(void *arg, const char *name, const char *value, bool reloadable);
void config_visit(const struct config *cfg, config_visit_fn fn, void *arg);

/* Names the settings whose new value cannot take effect without a restart; returns count. */
int config_restart_only_changes(const struct config *old_cfg, const struct config *new_cfg,
                                const char **names, int max);

/* A reload keeps the running values of what needs a restart (listeners, workers); -1 OOM. */
int config_keep_restart_only(struct config *fresh, const struct config *running);

/* The entry of peers with that id; NULL when none. */
const struct peer *config_peer(const struct config *cfg, int id);

/*
 * The Unix socket a draining pgnear keeps for the cancel requests its
 * successor on the same port receives for its sessions
 * ("unix_socket_dir/.s.PGNEAR.PORT.draining"); false without
 * unix_socket_dir, or when the path is too long.
 */
struct sockaddr_un;
bool config_cancel_socket_path(const struct config *cfg, struct sockaddr_un *sun);

/* Whether sa is one of the peers' addresses (any port). */
bool config_is_peer_addr(const struct config *cfg, const struct sockaddr *sa);

/* Warnings for setups that load but will not work as users expect (pgnear --check). */
int config_warnings(const struct config *cfg, char warnings[][256], int max);

#endif
