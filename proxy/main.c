/*
 * main.c — command line, configuration check, and the daemon's start.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgnear-build.h"
#include "proxy/base/config.h"
#include "proxy/dbmove/follow.h"
#include "proxy/base/fd_limit.h"
#include "proxy/base/log.h"
#include "proxy/daemon.h"
#include "routing/cities.h"
#include "routing/explain.h"
#include "routing/geoip.h"
#include "routing/registry.h"
#include "routing/route.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage:\n"
            "  pgnear [-d] [-v] [-q] CONFIG.ini      run the proxy\n"
            "  pgnear --check CONFIG.ini             validate the configuration and exit 0/1\n"
            "  pgnear --explain CONFIG.ini city=Seattle | ip=81.2.69.142 | location=47.6,-122.3\n"
            "                                        print the routing decision and why\n"
            "  pgnear --version\n"
            "\n"
            "  -d  run in the background (logs go to the configured logfile)\n"
            "  -v  verbose: log debug messages\n"
            "  -q  quiet: log warnings and errors only\n");
}

/*
 * A line of why pgnear does not start, to stderr: "pgnear: why" under
 * log_format = text (and for --check and --explain, which report to a
 * terminal), and a FATAL line of the log's own form under json, so that
 * a log pipeline reads it as it reads the rest.
 */
static void __attribute__((format(printf, 2, 3)))
startup_problem(enum log_format format, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (format == LOG_FORMAT_JSON) {
        log_set_format(LOG_FORMAT_JSON);
        log_vat(LOG_FATAL, NULL, fmt, ap);
    } else {
        fputs("pgnear: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
}

/* Every problem of the file, one a line; format: the file's log_format, or text for a report. */
static void report_problems(const char *path, const struct config_problems *p,
                            enum log_format format)
{
    for (int i = 0; i < p->count; i++)
        startup_problem(format, "%s", p->items[i]);
    if (p->dropped > 0)
        startup_problem(format, "%s: %d more problems not shown", path, p->dropped);
    if (p->count + p->dropped > 1)
        startup_problem(format, "configuration file \"%s\" has %d problems", path,
                        p->count + p->dropped);
}

/* "1st", "22nd", "113th": the ordinal of n. */
static const char *ordinal_suffix(long long n)
{
    if (n % 100 >= 11 && n % 100 <= 13)
        return "th";
    return n % 10 == 1 ? "st" : n % 10 == 2 ? "nd" : n % 10 == 3 ? "rd" : "th";
}

/* What --check says of server-connection pooling: whether connections are kept, and how many. */
static void print_pooling(const struct config *cfg)
{
    if (cfg->pool_mode == POOL_NONE)
        printf(
            "pooling: off (pool_mode = none): each client gets a server connection of its own\n");
    else if (cfg->auth == AUTH_PASSTHROUGH)
        printf("pooling: off: under auth = passthrough pgnear cannot log in to a server for a "
               "client it did not verify, so no server connection is kept for another client "
               "(auth = scram pools)\n");
    else if (cfg->auth != AUTH_SCRAM)
        printf("pooling: off: under auth = hba or cert a server may authenticate the client "
               "itself, so no server connection is kept for another client (auth = scram "
               "pools)\n");
    else
        printf("pooling: pool_mode = %s, pool_size %d%s per region, database and user, "
               "min_pool_size %d, max_db_connections %d%s\n",
               cfg->pool_mode == POOL_TRANSACTION ? "transaction" : "session", cfg->pool_size,
               cfg->pool_size == 0 ? " (no limit)" : "", cfg->min_pool_size,
               cfg->max_db_connections, cfg->max_db_connections == 0 ? " (no limit)" : "");
    for (size_t i = 0; i < cfg->n_need_rules && config_pooling(cfg); i++) {
        const struct need_rule *r = &cfg->need_rules[i];
        if (r->value[SECTION_POOL_MODE] >= 0)
            printf("pooling: [%s %s]: pool_mode = %s, pool_size %d%s\n",
                   r->is_user ? "user" : "database", r->name,
                   r->value[SECTION_POOL_MODE] == POOL_TRANSACTION ? "transaction" : "session",
                   config_pool_size(cfg, r->value[SECTION_POOL_MODE]),
                   config_pool_size(cfg, r->value[SECTION_POOL_MODE]) == 0 ? " (no limit)" : "");
    }
    if (config_txn_pooling(cfg))
        printf("pooling: a session holds a server connection only while a transaction runs; "
               "max_prepared_statements %d per server connection%s\n",
               cfg->max_prepared_statements,
               cfg->max_prepared_statements == 0 ? " (named statements pin their session)" : "");
}

/* What --check says of the need of a session that names none (target_session_attrs). */
static void print_need(const struct config *cfg)
{
    enum session_need need = (enum session_need)cfg->target_session_attrs;
    if (need == NEED_NEAREST)
        printf("need: target_session_attrs = nearest: each transaction on the nearest host that "
               "can run it; reads on a standby near the caller, a write the standby refuses "
               "(25006) run again on a primary, and the session's next reads where its writes "
               "are seen\n");
    else if (need == NEED_ANY)
        printf("need: target_session_attrs = any: a session goes to the nearest host that is up, "
               "whatever its role (a write on a standby fails with 25006)\n");
    else
        printf("need: target_session_attrs = %s for a session that names no need\n",
               need_name(need));
}

/* What --check says of the limits a client can meet: who waits, who is refused, and when. */
static void print_limits(const struct config *cfg)
{
    double wait_s = cfg->query_wait_timeout_ms / 1000.0;
    printf("limit: max_client_conn %d: a client connection beyond that many at once gets 53300 "
           "(sorry, too many clients already)\n",
           cfg->max_client_conn);
    if (!config_pooling(cfg))
        printf("limit: none per pool or host: every client session gets a server connection of "
               "its own\n");
    else if (cfg->pool_size == 0 && cfg->max_db_connections == 0)
        printf("limit: none per pool or host: every client session gets a server connection, "
               "a kept one when one fits\n");
    long long n;
    if (config_pooling(cfg) && cfg->pool_size > 0) {
        n = (long long)cfg->pool_size + 1;
        printf("limit: pool_size %d: the %lld%s concurrent %s of one region, database and "
               "user waits for a server connection up to query_wait_timeout (%g s), then gets "
               "53300\n",
               cfg->pool_size, n, ordinal_suffix(n),
               config_txn_pooling(cfg) ? "transaction" : "session", wait_s);
    }
    if (config_pooling(cfg) && cfg->max_db_connections > 0) {
        n = (long long)cfg->max_db_connections + 1;
        printf("limit: max_db_connections %d: a session that needs the %lld%s server connection "
               "of one host waits up to query_wait_timeout (%g s), then gets 53300\n",
               cfg->max_db_connections, n, ordinal_suffix(n), wait_s);
    }
}

/* What --check says of the NOTICE a client waiting for a full pool gets (query_wait_notify). */
static void print_wait_notify(const struct config *cfg)
{
    if (!config_pooling(cfg))
        return;
    if (cfg->query_wait_notify_ms == 0)
        printf("limit: query_wait_notify 0: a client waiting for a server connection is not told "
               "why until query_wait_timeout\n");
    else
        printf("limit: query_wait_notify %g s: a client waiting that long for a server connection "
               "of a full pool, past its login, gets one NOTICE saying why\n",
               cfg->query_wait_notify_ms / 1000.0);
}

/* What --check says of a client that vanishes inside a transaction (server_rollback_timeout). */
static void print_rollback(const struct config *cfg)
{
    if (!config_txn_pooling(cfg))
        return;
    if (cfg->server_rollback_timeout_ms == 0)
        printf(
            "pooling: server_rollback_timeout 0: the server connection of a client gone inside a "
            "transaction is closed\n");
    else
        printf(
            "pooling: server_rollback_timeout %g s: the server connection of a client gone inside "
            "a transaction is canceled, rolled back and kept, or closed past that\n",
            cfg->server_rollback_timeout_ms / 1000.0);
}

/* What --check says of the global limits per user and database (a section may set others). */
static void print_user_limits(const struct config *cfg)
{
    if (config_pooling(cfg) && cfg->max_user_connections > 0)
        printf("limit: max_user_connections %d: a session that needs its user's %lld%s server "
               "connection to one host waits up to query_wait_timeout (%g s), then gets 53300\n",
               cfg->max_user_connections, (long long)cfg->max_user_connections + 1,
               ordinal_suffix((long long)cfg->max_user_connections + 1),
               cfg->query_wait_timeout_ms / 1000.0);
    if (cfg->max_user_client_connections > 0)
        printf("limit: max_user_client_connections %d: a user's next client session gets 53300 "
               "(too many client connections for user)\n",
               cfg->max_user_client_connections);
    if (cfg->max_db_client_connections > 0)
        printf("limit: max_db_client_connections %d: a database's next client session gets 53300 "
               "(too many client connections for database)\n",
               cfg->max_db_client_connections);
}

/* Who is believed: revoked client certificates, and whose forwarded addresses decide access. */
static void print_access(const struct config *cfg)
{
    if (cfg->client_tls_crl_file[0] != '\0' || cfg->client_tls_crl_dir[0] != '\0')
        printf("client certificates: revoked ones refused at the TLS handshake (%s%s%s)\n",
               cfg->client_tls_crl_file,
               cfg->client_tls_crl_file[0] && cfg->client_tls_crl_dir[0] ? ", " : "",
               cfg->client_tls_crl_dir);
    if (cfg->client_tls_direct_without_alpn && cfg->client_tls != CLIENT_TLS_DISABLE)
        printf("client TLS: direct handshakes without ALPN \"postgresql\" let in "
               "(client_tls_direct_without_alpn = on; PostgreSQL closes them)\n");
    if (cfg->websocket_port == 0)
        return;
    if (cfg->trusted_http.count > 0)
        printf("websocket: a forwarded address decides access (the hba line) from "
               "trusted_http_proxies' %zu entries, and only places the caller from "
               "trusted_proxies\n",
               cfg->trusted_http.count);
    else
        printf("websocket: a forwarded address only places the caller: access is the "
               "connection's address (no trusted_http_proxies)\n");
}

/*
 * What --check says of the open-files limit, as this shell would give it
 * to pgnear (a service manager may give another: pgnear warns in its log
 * at start when the one it runs under is short).
 */
static void print_fd_limit(const struct config *cfg)
{
    long long soft, hard;
    if (!fd_limit_get(&soft, &hard)) {
        printf("open files: the limit cannot be read here\n");
        return;
    }
    long long usable = hard == LLONG_MAX ? fd_limit_needed(cfg) : hard;
    long long sessions = fd_limit_sessions(cfg, usable);
    char hard_text[32] = "none";
    if (hard != LLONG_MAX)
        snprintf(hard_text, sizeof(hard_text), "%lld", hard);
    printf("open files: soft limit %lld, hard %s in this shell; pgnear raises the soft limit to "
           "the hard one, room for about %lld client sessions%s\n",
           soft, hard_text, sessions,
           sessions >= cfg->max_client_conn ? ""
                                            : ", fewer than max_client_conn: raise the hard "
                                              "limit (ulimit -Hn, LimitNOFILE)");
}

/*
 * Measured costs of an idle client (doc/performance.md, "A crowd of idle
 * clients" and "Memory a session"), in bytes: pgnear's own under
 * transaction pooling, plain and with client TLS; the kernel's for one TCP
 * socket (its TCP and sock_inode_cache slabs, nothing queued).
 */
#define CROWD_CLIENT_BYTES     (0.89 * 1024)
#define CROWD_TLS_CLIENT_BYTES (17.0 * 1024)
#define CROWD_SOCKET_BYTES     (3.7 * 1024)

/* What --check says a crowd of max_client_conn idle clients costs: the capacity model's numbers. */
static void print_crowd(const struct config *cfg)
{
    double n = cfg->max_client_conn, mib = 1024.0 * 1024.0;
    int per = fd_limit_per_client(cfg);
    printf("crowd: %d idle clients need about %lld open files (%d a client%s) and about %.0f MiB "
           "of pgnear's memory (%.1f KiB a client, %.0f with TLS%s), the kernel about %.0f MiB "
           "more for their sockets (%.1f KiB a socket)\n",
           cfg->max_client_conn, fd_limit_needed(cfg), per,
           per == 1 ? ", and the pools' server connections" : ": its own and its server's",
           n * CROWD_CLIENT_BYTES / mib, CROWD_CLIENT_BYTES / 1024, CROWD_TLS_CLIENT_BYTES / 1024,
           per == 1 ? "" : ", its server connection's not counted",
           n * per * CROWD_SOCKET_BYTES / mib, CROWD_SOCKET_BYTES / 1024);
}

static void check_tell_warning(const char *line, void *arg)
{
    (void)arg;
    fprintf(stderr, "pgnear: WARNING: %s\n", line);
}

static int run_check(const char *path)
{
    char warnings[8][256];
    struct config_problems problems;
    struct config *cfg = config_load_scoped(path, CONFIG_SCOPE_ALL, &problems);
    if (cfg == NULL) {
        report_problems(path, &problems, LOG_FORMAT_TEXT);
        return 1;
    }
    int n = config_warnings(cfg, warnings, 8);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "pgnear: WARNING: %s\n", warnings[i]);
    printf("%s: configuration OK (%zu regions, default region %s)\n", path, cfg->regions.count,
           cfg->default_region_ptr->name);
    if (cfg->auth == AUTH_HBA)
        printf("auth: hba: %zu lines from %s, the first that matches decides\n", cfg->hba.count,
               cfg->auth_hba_file);
    print_pooling(cfg);
    print_need(cfg);
    print_limits(cfg);
    print_user_limits(cfg);
    print_wait_notify(cfg);
    print_rollback(cfg);
    print_fd_limit(cfg);
    print_crowd(cfg);
    print_access(cfg);
    if (cfg->cities != NULL)
        printf("city table: %zu cities from %s\n", city_table_count(cfg->cities), cfg->cities_file);
    if (cfg->geoip != NULL) {
        char desc[512];
        geoip_describe(cfg->geoip, desc, sizeof(desc));
        printf("GeoIP: %s\n", desc);
    }
    /* Where a move left a database outranks the file: say where they disagree. */
    dbmove_check_file(cfg, check_tell_warning, NULL);
    config_unref(cfg);
    return 0;
}

/* "city=Seattle", "ip=81.2.69.142", "location=47.6,-122.3", "region=us-east", "need=read-write" */
static bool explain_parse_arg(const char *arg, struct locality_input *in,
                              struct sockaddr_storage *addr, int *need)
{
    const char *eq = strchr(arg, '=');
    if (eq == NULL)
        return false;
    size_t n = (size_t)(eq - arg);
    const char *v = eq + 1;
    if (n == 4 && strncmp(arg, "city", 4) == 0)
        in->city = v, in->city_via = "command line";
    else if (n == 6 && strncmp(arg, "region", 6) == 0)
        in->region = v, in->region_via = "command line";
    else if (n == 8 && strncmp(arg, "location", 8) == 0)
        in->location = v, in->location_via = "command line";
    else if (n == 2 && strncmp(arg, "ip", 2) == 0 && route_parse_address(v, addr))
        in->addr = (const struct sockaddr *)addr;
    else if (n == 4 && strncmp(arg, "need", 4) == 0) {
        enum session_need parsed;
        if (!need_parse(v, &parsed))
            return false;
        *need = (int)parsed;
    } else
        return false;
    return true;
}

/* A plan's regions, one a line, with why each stands there: "  1. eu-west  0 km  candidate: ...".
 */
static void explain_print_plan(const struct routing_data *rd, const struct route_explanation *e,
                               struct region *const *plan, const double *km, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char why[400];
        route_explain_order(rd, e, plan[i], i + 1, why, sizeof(why));
        if (km[i] >= 0)
            printf("  %zu. %-16s %8.0f km  %s\n", i + 1, plan[i]->name, km[i], why);
        else
            printf("  %zu. %-16s %s\n", i + 1, plan[i]->name, why);
    }
}

/* How regions that fit alike are ordered: route_by and hybrid's candidates (rtt.h). */
static void explain_print_rank(const struct route_rank *rank)
{
    if (rank->by == ROUTE_BY_HYBRID)
        printf("route_by: hybrid (route_candidates %u, route_candidate_km %.0f): round trips are "
               "not measured by --explain: every region is cold\n",
               rank->candidates, rank->candidate_km);
    else if (rank->by == ROUTE_BY_LATENCY)
        printf("route_by: latency (round trips are not measured by --explain: every region is "
               "cold)\n");
    else
        printf("route_by: distance\n");
}

/* need nearest: where its writes go, as need=read-write would place them. */
static void explain_print_writes(const struct routing_data *rd, const struct route_explanation *e)
{
    printf("writes: %s (needing %s)\n", e->nwrites > 0 ? e->writes[0]->name : "(none)",
           need_name(e->write_need.role));
    explain_print_plan(rd, e, e->writes, e->writes_km, e->nwrites);
    if (e->writes_passed_over[0] != '\0')
        printf("writes pass over: %s\n", e->writes_passed_over);
}

static void explain_print(const struct config *cfg, const struct locality_input *in,
                          enum session_need need)
{
    struct route_explanation e;
    struct need_spec spec = {.role = need};
    route_explain(&cfg->routing, in, &spec, false, &e);
    printf("source: %s (%s)\n", e.source, e.loc.via);
    printf("reason: %s\n", e.reason);
    explain_print_rank(&cfg->routing.rank);
    printf("needing: %s\n", need_name(need));
    if (e.passed_over[0] != '\0')
        printf("passed over: %s\n", e.passed_over);
    printf("region: %s\n", e.n > 0 ? e.plan[0]->name : "(none)");
    explain_print_plan(&cfg->routing, &e, e.plan, e.km, e.n);
    if (need == NEED_NEAREST)
        explain_print_writes(&cfg->routing, &e);
    for (int i = 0; i < e.nnotes; i++)
        printf("note: %s\n", e.notes[i]);
}

/*
 * pgnear --explain: the decision a caller would get, and why.  Only what
 * routing needs is loaded (no credentials, no TLS files), and health is
 * not known here.
 */
static int run_explain(const char *path, int argc, char **argv)
{
    struct locality_input in = {0};
    struct sockaddr_storage addr;
    int need = -1;
    for (int i = 0; i < argc; i++) {
        if (!explain_parse_arg(argv[i], &in, &addr, &need)) {
            fprintf(stderr,
                    "pgnear: --explain takes city=NAME, ip=ADDRESS, location=LAT,LON, "
                    "region=NAME or need=TARGET_SESSION_ATTRS (one of: %s), not \"%s\"\n",
                    need_choices(), argv[i]);
            return 2;
        }
    }
    struct config_problems problems;
    struct config *cfg = config_load_scoped(path, CONFIG_SCOPE_ROUTING, &problems);
    if (cfg == NULL) {
        report_problems(path, &problems, LOG_FORMAT_TEXT);
        return 1;
    }
    /* No daemon here: a registry of its own, every region enabled and every host up. */
    struct registry *registry = registry_new();
    if (registry == NULL || !registry_bind(registry, &cfg->regions)) {
        fprintf(stderr, "pgnear: out of memory\n");
        config_unref(cfg);
        registry_free(registry);
        return 1;
    }
    /* No need= given: what a session that names none needs, as the file says. */
    explain_print(cfg, &in, (enum session_need)(need >= 0 ? need : cfg->target_session_attrs));
    config_unref(cfg);
    registry_free(registry);
    return 0;
}

static int run_proxy(const char *path, bool background, enum log_level level)
{
    struct config_problems problems;
    struct config *cfg = config_load_scoped(path, CONFIG_SCOPE_ALL, &problems);
    if (cfg == NULL) {
        report_problems(path, &problems, (enum log_format)problems.log_format);
        return 1;
    }
    enum log_format format = (enum log_format)cfg->log_format;
    if (background && cfg->logfile[0] == '\0') {
        startup_problem(format, "-d needs a logfile in the configuration");
        config_unref(cfg);
        return 1;
    }
    if (log_open(cfg->logfile, level) != 0) {
        startup_problem(format, "could not open logfile \"%s\"", cfg->logfile);
        config_unref(cfg);
        return 1;
    }
    log_set_format(format);
    if (cfg->syslog && log_set_syslog(true, cfg->syslog_ident, cfg->syslog_facility) != 0)
        log_warn(0, "syslog_facility \"%s\" is unknown: nothing goes to syslog",
                 cfg->syslog_facility);
    signal(SIGPIPE, SIG_IGN);
    int rc = daemon_run(cfg, (int)level, background);
    log_info(0, "pgnear stopped");
    log_close();
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"check", no_argument, NULL, 'c'},   {"explain", no_argument, NULL, 'e'},
        {"version", no_argument, NULL, 'V'}, {"help", no_argument, NULL, 'h'},
        {"daemon", no_argument, NULL, 'd'},  {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},   {NULL, 0, NULL, 0},
    };
    bool check = false, background = false, explain = false;
    enum log_level level = LOG_INFO;
    int c;
    while ((c = getopt_long(argc, argv, "dvqh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            check = true;
            break;
        case 'e':
            explain = true;
            break;
        case 'V':
            printf("pgnear %s\n", PACKAGE_VERSION);
            return 0;
        case 'd':
            background = true;
            break;
        case 'v':
            level = LOG_DEBUG;
            break;
        case 'q':
            level = LOG_WARNING;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (explain && optind < argc)
        return run_explain(argv[optind], argc - optind - 1, argv + optind + 1);
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    return check ? run_check(argv[optind]) : run_proxy(argv[optind], background, level);
}
