/*
 * test_config.c
 *    Unit tests for proxy/base/config.c, routing/region.c and proxy/base/userlist.c
 *    (cmocka, TAP output).  Every test writes its files into a fresh
 *    mkdtemp directory; TLS certificates are made with the OpenSSL API.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <libpq-fe.h>

#include "proxy/base/config.h"
#include "proxy/base/pgconn.h"
#include "proxy/base/userlist.h"
#include "proxy/runtime/placement.h"
#include "routing/cities.h"
#include "routing/region.h"
#include "routing/route.h"

#define MAX_FILES 16

struct fixture {
    char dir[256];
    char paths[MAX_FILES][320];
    int nfiles;
};

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    if (fx == NULL)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(fx->dir, sizeof(fx->dir), "%s/pgnear-test-config-XXXXXX", tmp ? tmp : "/tmp");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    for (int i = 0; i < fx->nfiles; i++)
        unlink(fx->paths[i]);
    int rc = rmdir(fx->dir);
    free(fx);
    return rc;
}

/* A path for name inside the test directory, removed at teardown. */
static const char *path_in(struct fixture *fx, const char *name)
{
    for (int i = 0; i < fx->nfiles; i++)
        if (strcmp(strrchr(fx->paths[i], '/') + 1, name) == 0)
            return fx->paths[i];
    assert_true(fx->nfiles < MAX_FILES);
    char *p = fx->paths[fx->nfiles++];
    size_t n = strlen(fx->dir);
    memcpy(p, fx->dir, n);
    snprintf(p + n, sizeof(fx->paths[0]) - n, "/%s", name);
    return p;
}

static const char *write_file(struct fixture *fx, const char *name, const char *text)
{
    const char *path = path_in(fx, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

static struct config *load_text(struct fixture *fx, const char *text, char *err, size_t errcap)
{
    err[0] = '\0';
    return config_load(write_file(fx, "pgnear.ini", text), err, errcap);
}

/* Loading must fail with a message that contains each of the needles. */
static void expect_error(struct fixture *fx, const char *text, const char *needle1,
                         const char *needle2)
{
    char err[1024];
    struct config *cfg = load_text(fx, text, err, sizeof(err));
    if (cfg != NULL) {
        config_unref(cfg);
        fail_msg("loaded although it should not:\n%s", text);
    }
    assert_true(err[0] != '\0');
    if (strstr(err, needle1) == NULL || (needle2 && strstr(err, needle2) == NULL))
        fail_msg("error \"%s\" does not name \"%s\"%s%s", err, needle1, needle2 ? " and " : "",
                 needle2 ? needle2 : "");
}

static struct config *expect_load(struct fixture *fx, const char *text)
{
    char err[1024];
    struct config *cfg = load_text(fx, text, err, sizeof(err));
    if (cfg == NULL)
        fail_msg("config_load failed: %s", err);
    return cfg;
}

#define REGION_OK "[region eu]\nhosts = 127.0.0.1:5432\n"

/* ---- a valid file ---- */

static const char valid_ini[] = "; two regions\n"
                                "[pgnear]\n"
                                "listen_port = 7432\n"
                                "default_region = eu\n"
                                "health_check_interval = 2s\n"
                                "health_check_timeout = 1500ms\n"
                                "client_login_timeout = 1min\n"
                                "\n"
                                "[region us]\n"
                                "location = 40.7, -74.0\n"
                                "hosts = 127.0.0.1:5432\n"
                                "\n"
                                "[region eu]\n"
                                "location = 50.1, 8.7\n"
                                "hosts = [::1]:5433, 127.0.0.1:6543\n";

static void check_v4(const struct region_host *h, const char *name, int port)
{
    assert_string_equal(h->name, name);
    assert_int_equal(h->port, port);
    assert_int_equal(h->addr.ss_family, AF_INET);
    assert_int_equal(h->addrlen, sizeof(struct sockaddr_in));
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&h->addr;
    assert_int_equal(ntohs(sin->sin_port), port);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
}

static void check_v6_loopback(const struct region_host *h, int port)
{
    assert_string_equal(h->name, "::1");
    assert_int_equal(h->port, port);
    assert_int_equal(h->addr.ss_family, AF_INET6);
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&h->addr;
    assert_int_equal(ntohs(sin6->sin6_port), port);
    assert_memory_equal(&sin6->sin6_addr, &in6addr_loopback, sizeof(in6addr_loopback));
}

static void test_valid_two_regions(void **state)
{
    struct config *cfg = expect_load(*state, valid_ini);
    assert_int_equal(cfg->refcount, 1);
    assert_int_equal(cfg->listen_port, 7432);
    assert_int_equal(cfg->regions.count, 2);
    struct region *us = region_set_find(&cfg->regions, "us");
    struct region *eu = region_set_find(&cfg->regions, "eu");
    assert_non_null(us);
    assert_non_null(eu);
    assert_true(us->has_location);
    assert_true(us->lat > 40.69 && us->lat < 40.71);
    assert_true(us->lon > -74.01 && us->lon < -73.99);
    assert_int_equal(us->nhosts, 1);
    check_v4(&us->hosts[0], "127.0.0.1", 5432);
    assert_int_equal(eu->nhosts, 2);
    check_v6_loopback(&eu->hosts[0], 5433);
    check_v4(&eu->hosts[1], "127.0.0.1", 6543);
    assert_ptr_equal(cfg->default_region_ptr, eu);
    config_unref(cfg);
}

static void test_valid_durations(void **state)
{
    struct config *cfg = expect_load(*state, valid_ini);
    assert_int_equal(cfg->health_check_interval_ms, 2000);
    assert_int_equal(cfg->health_check_timeout_ms, 1500);
    assert_int_equal(cfg->client_login_timeout_ms, 60000);
    assert_int_equal(cfg->server_connect_timeout_ms, 5000); /* default 5s */
    config_unref(cfg);

    cfg = expect_load(*state, "[pgnear]\nhealth_check_interval = 3\n"
                              "health_check_timeout = 0.5s\nshutdown_timeout = 1h\n"
                              "health_check_login_interval = 0\n" REGION_OK);
    assert_int_equal(cfg->health_check_login_interval_ms, 0);
    assert_int_equal(cfg->health_check_interval_ms, 3000);
    assert_int_equal(cfg->health_check_timeout_ms, 500);
    assert_int_equal(cfg->shutdown_timeout_ms, 3600000);
    config_unref(cfg);
}

static void test_defaults(void **state)
{
    struct config *cfg = expect_load(*state, REGION_OK);
    assert_int_equal(cfg->listen_port, 6432);
    assert_string_equal(cfg->listen_addr, "127.0.0.1");
    assert_int_equal(cfg->max_client_conn, 10000);
    assert_int_equal(cfg->client_tls, CLIENT_TLS_DISABLE);
    assert_null(cfg->client_tls_ctx);
    assert_int_equal(cfg->server_tls, TLS_SERVER_PREFER);
    assert_non_null(cfg->server_tls_ctx);
    assert_int_equal(cfg->auth, AUTH_PASSTHROUGH); /* no auth source */
    assert_true(cfg->client_hints);
    assert_int_equal(cfg->health_check_fall, 3);
    assert_int_equal(cfg->health_check_login_interval_ms, 60000);
    assert_int_equal(cfg->auth_failure_threshold, 3);
    assert_int_equal(cfg->auth_failure_delay_ms, 100);
    assert_int_equal(cfg->auth_failure_max_delay_ms, 10000);
    assert_ptr_equal(cfg->default_region_ptr, &cfg->regions.items[0]);
    config_unref(cfg);
}

/* Without default_region the first region of the file is the default. */
static void test_default_region_first(void **state)
{
    struct config *cfg = expect_load(*state, "[region zz]\nhosts = 127.0.0.1:1\n"
                                             "[region aa]\nhosts = 127.0.0.1:2\n");
    assert_non_null(cfg->default_region_ptr);
    assert_string_equal(cfg->default_region_ptr->name, "zz");
    config_unref(cfg);
}

static void test_enums_and_bools(void **state)
{
    struct config *cfg = expect_load(*state, "[pgnear]\nserver_tls = DISABLE\nclient_hints = off\n"
                                             "proxy_protocol = required\n" REGION_OK);
    assert_int_equal(cfg->server_tls, TLS_SERVER_DISABLE);
    assert_null(cfg->server_tls_ctx);
    assert_false(cfg->client_hints);
    assert_int_equal(cfg->proxy_protocol, PROXY_PROTOCOL_REQUIRED);
    config_unref(cfg);
}

static void test_ref_unref(void **state)
{
    struct config *cfg = expect_load(*state, REGION_OK);
    assert_ptr_equal(config_ref(cfg), cfg);
    assert_int_equal(cfg->refcount, 2);
    config_unref(cfg);
    assert_int_equal(cfg->refcount, 1);
    config_unref(cfg); /* freed: ASan's leak check would notice otherwise */
    config_unref(NULL);
}

/* ---- a reload shares the tables of unchanged files ---- */

/* A reload of ini (cities_file and all) with running, which must load. */
static struct config *expect_reload(struct fixture *fx, const char *ini,
                                    const struct config_override *ov, int nov,
                                    const struct config *running)
{
    char err[1024] = "";
    struct config *cfg =
        config_load_overridden(path_in(fx, "pgnear.ini"), ov, nov, running, err, sizeof(err));
    if (cfg == NULL)
        fail_msg("reload failed: %s\n%s", err, ini);
    return cfg;
}

static void test_reload_shares_tables(void **state)
{
    struct fixture *fx = *state;
    const char *csv = "name,country,lat,lon\nDublin,IE,53.35,-6.26\nTokyo,JP,35.68,139.69\n";
    const char *a = write_file(fx, "a.csv", csv);
    write_file(fx, "b.csv", csv);
    char ini[1024];
    snprintf(ini, sizeof(ini), "[pgnear]\ncities_file = %s\n" REGION_OK, a);
    write_file(fx, "pgnear.ini", ini);
    /* Just written: a change in the same tick would not show, so nothing is shared yet. */
    struct config *first = expect_reload(fx, ini, NULL, 0, NULL);
    struct config *again = expect_reload(fx, ini, NULL, 0, first);
    assert_ptr_not_equal(again->cities, first->cities);
    config_unref(first);
    const struct timespec settle = {1, 100 * 1000 * 1000};
    nanosleep(&settle, NULL);
    struct config *running = expect_reload(fx, ini, NULL, 0, again);
    config_unref(again);
    struct config *fresh = expect_reload(fx, ini, NULL, 0, running);
    assert_ptr_equal(fresh->cities, running->cities);
    config_unref(running); /* the table lives on in fresh */
    assert_non_null(city_table_lookup(fresh->cities, "tokyo"));
    /* Another file, even with the same bytes, is read. */
    struct config_override ov = {"cities_file", ""};
    snprintf(ov.value, sizeof(ov.value), "%s", path_in(fx, "b.csv"));
    struct config *other = expect_reload(fx, ini, &ov, 1, fresh);
    assert_ptr_not_equal(other->cities, fresh->cities);
    config_unref(other);
    /* And so is the same file changed. */
    write_file(fx, "a.csv", csv);
    struct config *changed = expect_reload(fx, ini, NULL, 0, fresh);
    assert_ptr_not_equal(changed->cities, fresh->cities);
    config_unref(changed);
    config_unref(fresh);
}

/* ---- config_visit ---- */

struct visited {
    int n;
    char name[128][48];
    char value[128][64];
    bool reloadable[128];
};

static void visit_cb(void *arg, const char *name, const char *value, bool reloadable)
{
    struct visited *v = arg;
    assert_true(v->n < 128);
    snprintf(v->name[v->n], sizeof(v->name[0]), "%s", name);
    snprintf(v->value[v->n], sizeof(v->value[0]), "%s", value);
    v->reloadable[v->n] = reloadable;
    v->n++;
}

static int visited_index(const struct visited *v, const char *name)
{
    for (int i = 0; i < v->n; i++)
        if (strcmp(v->name[i], name) == 0)
            return i;
    fail_msg("setting %s not visited", name);
    return -1;
}

static void expect_visited(const struct visited *v, const char *name, const char *value,
                           bool reloadable)
{
    int i = visited_index(v, name);
    assert_string_equal(v->value[i], value);
    assert_int_equal(v->reloadable[i], reloadable);
}

static void test_visit(void **state)
{
    struct config *cfg = expect_load(*state, valid_ini);
    struct visited v = {0};
    config_visit(cfg, visit_cb, &v);
    assert_true(v.n >= 30);
    for (int i = 0; i < v.n; i++)
        for (int j = 0; j < i; j++)
            assert_string_not_equal(v.name[i], v.name[j]);
    expect_visited(&v, "listen_port", "7432", false);
    expect_visited(&v, "default_region", "eu", true);
    expect_visited(&v, "health_check_interval", "2000ms", true);
    expect_visited(&v, "client_login_timeout", "60000ms", true);
    expect_visited(&v, "auth", "passthrough", true);
    expect_visited(&v, "client_tls", "disable", true);
    expect_visited(&v, "client_hints", "on", true);
    expect_visited(&v, "auth_file", "", true);
    config_unref(cfg);
}

/* ---- files that must not load ---- */

static void test_err_unknown_setting(void **state)
{
    expect_error(*state, "[pgnear]\nfrobnicate = 1\n" REGION_OK, "frobnicate", NULL);
    /* Durations are known by their short name only. */
    expect_error(*state, "[pgnear]\nhealth_check_interval_ms = 5\n" REGION_OK,
                 "health_check_interval_ms", NULL);
    expect_error(*state, REGION_OK "colour = red\n", "colour", NULL);
}

/*
 * dns_max_ttl (PgBouncer's, 15 s) and dns_server: an address and port, the
 * regions' address literals taken as they are (no question asked of it).
 */
static void test_dns_settings(void **state)
{
    struct config *cfg = expect_load(*state, "[pgnear]\n" REGION_OK);
    assert_int_equal(cfg->dns_max_ttl_ms, 15000);
    assert_string_equal(cfg->dns_server, "");
    config_unref(cfg);
    cfg = expect_load(*state, "[pgnear]\ndns_max_ttl = 5\ndns_server = 127.0.0.1:5353\n" REGION_OK);
    assert_int_equal(cfg->dns_max_ttl_ms, 5000);
    assert_string_equal(cfg->dns_server, "127.0.0.1:5353");
    config_unref(cfg);
    cfg = expect_load(*state, "[pgnear]\ndns_server = [::1]:53\n" REGION_OK);
    config_unref(cfg);
    expect_error(*state, "[pgnear]\ndns_server = localhost:53\n" REGION_OK, "dns_server",
                 "localhost:53");
    expect_error(*state, "[pgnear]\ndns_server = 127.0.0.1\n" REGION_OK, "dns_server", NULL);
    expect_error(*state, "[pgnear]\ndns_server = 127.0.0.1:0\n" REGION_OK, "dns_server", NULL);
}

static void test_err_unknown_section(void **state)
{
    expect_error(*state, REGION_OK "[mystery]\nx = 1\n", "mystery", NULL);
}

/* DESIGN.md's example has comments after section headers and values. */
static void test_inline_comments(void **state)
{
    struct config *cfg =
        expect_load(*state, "[pgnear]                      ; the proxy\n"
                            "listen_port = 6433            ; a comment\n"
                            "default_region = eu # another\n"
                            "[region eu]   ; Dublin\n"
                            "location = 53.35, -6.26        ; lat, lon\n"
                            "hosts = 127.0.0.1:5432\n"
                            "  [ region us ]   # Virginia\n"
                            "hosts = 127.0.0.1:5433\n"
                            "[cities]                           ; explicit overrides\n"
                            "dublin = eu\n");
    assert_int_equal(cfg->listen_port, 6433);
    assert_string_equal(cfg->default_region, "eu");
    assert_int_equal(cfg->regions.count, 2);
    assert_non_null(region_set_find(&cfg->regions, "us"));
    assert_int_equal(cfg->n_overrides, 1);
    config_unref(cfg);
    /* Text after a header that is not a comment is not taken for one. */
    expect_error(*state, REGION_OK "[cities] dublin = eu\n", "unrecognized setting", "[cities]");
    expect_error(*state, REGION_OK "no equals sign here\n", "pgnear.ini:3: syntax error",
                 "no equals sign here");
}

/* iniparser would merge these silently; pgnear refuses them, with line numbers. */
static void test_err_duplicates(void **state)
{
    expect_error(*state,
                 "[region eu]\nhosts = 127.0.0.1:5432\n\n[region us]\nhosts = 127.0.0.1:5433\n"
                 "[ Region EU ]\nhosts = 127.0.0.1:5434\n",
                 ":6: section [region eu] appears again (first at line 1)", NULL);
    expect_error(*state, "[pgnear]\nlisten_port = 6432\n; comment\nLISTEN_PORT = 6433\n" REGION_OK,
                 ":4: \"listen_port\" is set again in [pgnear] (first at line 2)", NULL);
    expect_error(*state, REGION_OK "[cities]\nparis = eu\nlyon = eu\n  paris=eu\n",
                 "\"paris\" is set again in [cities]", NULL);
    /* The same key in two sections, and a repeated value, are fine. */
    struct config *cfg = expect_load(*state, "[pgnear]\ndefault_region = eu\n" REGION_OK
                                             "[region us]\nhosts = 127.0.0.1:5432\n"
                                             "[cities]\nparis = eu\nlyon = eu\n");
    config_unref(cfg);
}

static void test_err_bad_enum(void **state)
{
    expect_error(*state, "[pgnear]\nclient_tls = maybe\n" REGION_OK, "maybe", "client_tls");
    expect_error(*state, "[pgnear]\nauth = md5\n" REGION_OK, "md5", "auth");
    expect_error(*state, "[pgnear]\nclient_hints = perhaps\n" REGION_OK, "perhaps", "client_hints");
}

static void test_err_bad_number(void **state)
{
    expect_error(*state, "[pgnear]\nmax_client_conn = 12abc\n" REGION_OK, "12abc",
                 "max_client_conn");
    expect_error(*state, "[pgnear]\nlisten_port = 70000\n" REGION_OK, "listen_port", NULL);
    expect_error(*state, "[pgnear]\nlisten_port = 0\n" REGION_OK, "listen_port", NULL);
}

/* A setting before any section would be dropped by iniparser: it is an error instead. */
static void test_err_setting_before_section(void **state)
{
    expect_error(*state, "listen_port = 7000\n" REGION_OK, "listen_port", "before any section");
    expect_error(*state, "; a comment first\n\nworkers = 2\n[pgnear]\n" REGION_OK, "workers",
                 "[pgnear]");
}

static void test_err_bad_duration(void **state)
{
    expect_error(*state, "[pgnear]\nhealth_check_interval = 5 parsecs\n" REGION_OK,
                 "health_check_interval", "5 parsecs");
    expect_error(*state, "[pgnear]\nhealth_check_interval = -1s\n" REGION_OK,
                 "health_check_interval", NULL);
    expect_error(*state, "[pgnear]\nshutdown_timeout = 1000h\n" REGION_OK, "shutdown_timeout",
                 NULL);
}

/* strtod reads "nan" and "inf" as numbers; neither is a duration. */
static void test_err_nonfinite_duration(void **state)
{
    expect_error(*state, "[pgnear]\nhealth_check_interval = inf\n" REGION_OK,
                 "health_check_interval", NULL);
    expect_error(*state, "[pgnear]\nhealth_check_interval = nan\n" REGION_OK,
                 "health_check_interval", NULL);
    expect_error(*state, "[pgnear]\nhealth_check_interval = nans\n" REGION_OK,
                 "health_check_interval", NULL);
}

static void test_err_bad_port(void **state)
{
    expect_error(*state, "[region eu]\nhosts = 127.0.0.1:99999\n", "127.0.0.1:99999", "eu");
    expect_error(*state, "[region eu]\nhosts = 127.0.0.1:0\n", "127.0.0.1:0", NULL);
    expect_error(*state, "[region eu]\nhosts = 127.0.0.1:54x\n", "127.0.0.1:54x", NULL);
    expect_error(*state, "[region eu]\nhosts = 127.0.0.1:\n", "127.0.0.1:", NULL);
}

/* The pooling settings: defaults, and bounds. */
static void test_pool_settings(void **state)
{
    struct config *cfg = expect_load(*state, REGION_OK);
    assert_string_equal(cfg->server_reset_query, "DISCARD ALL");
    assert_int_equal(cfg->pool_size, 0); /* no limit: a default limits nobody */
    assert_int_equal(cfg->max_db_connections, 0);
    assert_int_equal(cfg->min_pool_size, 0);
    assert_int_equal(cfg->server_lifetime_ms, 3600 * 1000);
    assert_int_equal(cfg->server_idle_timeout_ms, 600 * 1000);
    assert_int_equal(cfg->query_wait_timeout_ms, 120 * 1000);
    assert_int_equal(cfg->query_wait_notify_ms, 0); /* off: a NOTICE is something a client sees */
    config_unref(cfg);
    cfg = expect_load(*state, "[pgnear]\nquery_wait_notify = 5\n" REGION_OK);
    assert_int_equal(cfg->query_wait_notify_ms, 5000); /* seconds, as PgBouncer's */
    config_unref(cfg);
    expect_error(*state, "[pgnear]\nquery_wait_notify = -1\n" REGION_OK, "query_wait_notify", NULL);
    cfg = expect_load(*state, REGION_OK);
    assert_int_equal(cfg->server_rollback_timeout_ms,
                     5000); /* a vanished client's connection kept */
    config_unref(cfg);
    cfg = expect_load(*state, "[pgnear]\nserver_rollback_timeout = 0\n" REGION_OK);
    assert_int_equal(cfg->server_rollback_timeout_ms, 0); /* off: closed, as before */
    config_unref(cfg);
    expect_error(*state, "[pgnear]\nserver_rollback_timeout = -1\n" REGION_OK,
                 "server_rollback_timeout", NULL);
    config_unref(expect_load(*state, "[pgnear]\npool_size = 0\nmin_pool_size = 10000\n" REGION_OK));
    expect_error(*state, "[pgnear]\npool_size = -1\n" REGION_OK, "pool_size", NULL);
    expect_error(*state, "[pgnear]\npool_size = 10001\n" REGION_OK, "pool_size", NULL);
    expect_error(*state, "[pgnear]\nmin_pool_size = 10001\n" REGION_OK, "min_pool_size", "10000");
    expect_error(*state, "[pgnear]\npool_size = 5\nmin_pool_size = 6\n" REGION_OK, "min_pool_size",
                 "5");
    expect_error(*state, "[pgnear]\nmax_db_connections = -1\n" REGION_OK, "max_db_connections",
                 NULL);
    expect_error(*state, "[pgnear]\nserver_lifetime = 10ms\n" REGION_OK, "server_lifetime", NULL);
}

static void test_err_host_without_port(void **state)
{
    expect_error(*state, "[region eu]\nhosts = 127.0.0.1\n", "127.0.0.1", "host:port");
    expect_error(*state, "[region eu]\nhosts = 127.0.0.1:5432, ::1\n", "::1", NULL);
}

static void test_err_region_without_hosts(void **state)
{
    expect_error(*state, "[region nohosts]\nlocation = 1, 2\n", "nohosts", "no hosts");
    expect_error(*state, REGION_OK "[region empty]\nhosts =\n", "empty", "no hosts");
}

static void test_err_no_region(void **state)
{
    expect_error(*state, "[pgnear]\nlisten_port = 7000\n", "region", NULL);
}

static void test_err_default_region_unknown(void **state)
{
    expect_error(*state, "[pgnear]\ndefault_region = mars\n" REGION_OK, "mars", "default_region");
}

static void test_err_bad_location(void **state)
{
    expect_error(*state, "[region eu]\nlocation = 91, 0\nhosts = 127.0.0.1:1\n", "91, 0", "eu");
    expect_error(*state, "[region eu]\nlocation = north\nhosts = 127.0.0.1:1\n", "north",
                 "location");
}

static void test_err_bad_region_name(void **state)
{
    expect_error(*state, "[region eu/west]\nhosts = 127.0.0.1:1\n", "eu/west", NULL);
}

static void test_err_scram_without_source(void **state)
{
    expect_error(*state, "[pgnear]\nauth = scram\n" REGION_OK, "auth_file", "auth_query");
}

static void test_err_missing_file(void **state)
{
    struct fixture *fx = *state;
    char err[512] = "";
    const char *path = path_in(fx, "absent.ini");
    assert_null(config_load(path, err, sizeof(err)));
    assert_non_null(strstr(err, path));
}

static void test_err_health_check_fall(void **state)
{
    expect_error(*state, "[pgnear]\nhealth_check_fall = 0\n" REGION_OK, "health_check_fall",
                 "1 and 100");
    expect_error(*state, "[pgnear]\nhealth_check_fall = 101\n" REGION_OK, "health_check_fall",
                 NULL);
    struct config *cfg = expect_load(*state, "[pgnear]\nhealth_check_fall = 100\n" REGION_OK);
    assert_int_equal(cfg->health_check_fall, 100);
    config_unref(cfg);
}

#define THREE_REGIONS                                                                              \
    "[region a]\nhosts = 127.0.0.1:1\n[region b]\nhosts = 127.0.0.1:2\n"                           \
    "[region c]\nhosts = 127.0.0.1:3\n"

/* The names of the regions in migration order, "c,a,b". */
static void migration_order_names(const struct config *cfg, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < cfg->regions.count && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%s", i ? "," : "",
                                 cfg->regions.items[cfg->migration_order_index[i]].name);
}

static void expect_migration_order(void **state, const char *setting, const char *expected)
{
    char text[512], names[64];
    snprintf(text, sizeof(text), "[pgnear]\nmigration_order = %s\n" THREE_REGIONS, setting);
    struct config *cfg = expect_load(*state, text);
    migration_order_names(cfg, names, sizeof(names));
    assert_string_equal(names, expected);
    config_unref(cfg);
}

static void test_migration_order(void **state)
{
    struct config *cfg = expect_load(*state, THREE_REGIONS);
    char names[64];
    migration_order_names(cfg, names, sizeof(names));
    assert_string_equal(names, "a,b,c"); /* the file's order by default */
    assert_int_equal(cfg->migration_hold_timeout_ms, 10000);
    config_unref(cfg);
    expect_migration_order(state, "c, a, b", "c,a,b");
    expect_migration_order(state, "b", "b,a,c"); /* the others after, in the file's order */
    expect_migration_order(state, " C ,b", "c,b,a");
    expect_error(*state, "[pgnear]\nmigration_order = a, mars\n" THREE_REGIONS, "mars",
                 "not a configured region");
    expect_error(*state, "[pgnear]\nmigration_order = a, b, A\n" THREE_REGIONS, "\"a\" twice",
                 "migration_order");
    expect_error(*state, "[pgnear]\nmigration_order = a, ,b\n" THREE_REGIONS, "empty region name",
                 NULL);
    expect_error(*state, "[pgnear]\nmigration_hold_timeout = 0\n" THREE_REGIONS,
                 "migration_hold_timeout", "1ms and 1h");
    expect_error(*state, "[pgnear]\nmigration_hold_timeout = 2h\n" THREE_REGIONS,
                 "migration_hold_timeout", NULL);
    cfg = expect_load(*state, "[pgnear]\nmigration_hold_timeout = 1500ms\n" THREE_REGIONS);
    assert_int_equal(cfg->migration_hold_timeout_ms, 1500);
    config_unref(cfg);
}

static void test_err_auth_failure_settings(void **state)
{
    struct fixture *fx = *state;
    expect_error(fx, "[pgnear]\nauth_failure_threshold = 1001\n" REGION_OK,
                 "auth_failure_threshold", NULL);
    expect_error(fx, "[pgnear]\nauth_failure_delay = 0\n" REGION_OK, "auth_failure_delay", NULL);
    expect_error(fx, "[pgnear]\nauth_failure_delay = 2h\n" REGION_OK, "auth_failure_delay", NULL);
    expect_error(fx,
                 "[pgnear]\nauth_failure_delay = 1s\nauth_failure_max_delay = 500ms\n" REGION_OK,
                 "auth_failure_max_delay", NULL);
    struct config *cfg =
        expect_load(fx, "[pgnear]\nauth_failure_threshold = 0\nauth_failure_delay = 1ms\n"
                        "auth_failure_max_delay = 1ms\n" REGION_OK);
    assert_int_equal(cfg->auth_failure_threshold, 0);
    assert_int_equal(cfg->auth_failure_max_delay_ms, 1);
    config_unref(cfg);
}

static void test_err_unsupported(void **state)
{
    expect_error(*state, "[pgnear]\nworkers = 0\n" REGION_OK, "workers", NULL);
    expect_error(*state, "[pgnear]\nworkers = 65\n" REGION_OK, "workers", NULL);
    expect_error(*state, "[pgnear]\npool_mode = statement\n" REGION_OK, "statement", NULL);
}

/* pool_mode = transaction: pool_size 0 becomes the mode's bound; a size given is kept. */
static void test_transaction_pool_size(void **state)
{
    struct fixture *fx = *state;
    const char *path =
        write_file(fx, "pgnear.ini", "[pgnear]\npool_mode = transaction\n" REGION_OK);
    char err[512];
    struct config *cfg = config_load(path, err, sizeof(err));
    assert_non_null(cfg);
    assert_int_equal(cfg->pool_mode, POOL_TRANSACTION);
    assert_int_equal(cfg->pool_size, POOL_SIZE_TRANSACTION_DEFAULT);
    config_unref(cfg);
    path = write_file(fx, "pgnear.ini",
                      "[pgnear]\npool_mode = transaction\npool_size = 7\n" REGION_OK);
    assert_non_null(cfg = config_load(path, err, sizeof(err)));
    assert_int_equal(cfg->pool_size, 7);
    config_unref(cfg);
    path = write_file(fx, "pgnear.ini", "[pgnear]\npool_mode = session\n" REGION_OK);
    assert_non_null(cfg = config_load(path, err, sizeof(err)));
    assert_int_equal(cfg->pool_size, 0); /* session mode keeps no limit */
    config_unref(cfg);
}

/* pool_mode per [database] and [user]: a user's over its database's, each pool's own pool_size. */
static void test_section_pool_mode(void **state)
{
    struct fixture *fx = *state;
    char text[1024];
    const char *users = write_file(fx, "users.txt", "\"app\" \"secret\"\n");
    snprintf(text, sizeof(text),
             "[pgnear]\nauth = scram\nauth_file = %s\n" REGION_OK
             "[database shop]\npool_mode = transaction\n"
             "[user batch]\npool_mode = session\n",
             users);
    struct config *cfg = expect_load(fx, text);
    assert_int_equal(config_session_pool_mode(cfg, "app", "shop"), POOL_TRANSACTION);
    assert_int_equal(config_session_pool_mode(cfg, "batch", "shop"), POOL_SESSION);
    assert_int_equal(config_session_pool_mode(cfg, "app", "other"), POOL_SESSION);
    assert_int_equal(config_pool_size(cfg, POOL_SESSION), 0); /* no limit, as the file says */
    assert_int_equal(config_pool_size(cfg, POOL_TRANSACTION), POOL_SIZE_TRANSACTION_DEFAULT);
    config_unref(cfg);
    /* Transaction mode for all: a session-mode section keeps the no-limit default. */
    snprintf(text, sizeof(text),
             "[pgnear]\nauth = scram\nauth_file = %s\npool_mode = transaction\n" REGION_OK
             "[user batch]\npool_mode = session\n",
             users);
    cfg = expect_load(fx, text);
    assert_int_equal(config_session_pool_mode(cfg, "batch", "shop"), POOL_SESSION);
    assert_int_equal(config_pool_size(cfg, POOL_SESSION), 0);
    assert_int_equal(config_pool_size(cfg, POOL_TRANSACTION), POOL_SIZE_TRANSACTION_DEFAULT);
    config_unref(cfg);
    snprintf(text, sizeof(text),
             "[pgnear]\nauth = scram\nauth_file = %s\n" REGION_OK
             "[database shop]\npool_mode = statement\n",
             users);
    expect_error(fx, text, "invalid pool_mode \"statement\"", "session or transaction");
    /* Pooling off: a section cannot turn it on. */
    expect_error(
        fx, "[pgnear]\npool_mode = none\n" REGION_OK "[database shop]\npool_mode = transaction\n",
        "[database shop]: pool_mode needs pooling on", NULL);
    expect_error(fx, REGION_OK "[user x]\npool_mode = transaction\n",
                 "[user x]: pool_mode needs pooling on", "auth = scram");
}

#define TWO_REGIONS                                                                                \
    "[region us-east]\nhosts = 127.0.0.1:5432\n[region us-west]\nhosts = 127.0.0.2:5432\n"

/* A home of city in database (region "": where the database lives, as an aborted move leaves it).
 */
static struct placement_home home(const char *database, const char *city, const char *region)
{
    struct placement_home h = {.move_id = 1};
    snprintf(h.database, sizeof(h.database), "%s", database);
    snprintf(h.city, sizeof(h.city), "%s", city);
    assert_true(city[0] == '\0' || city_fold(city, h.key, sizeof(h.key)));
    snprintf(h.region, sizeof(h.region), "%s", region);
    return h;
}

/* The one region a session of database from city (NULL: no city known) is placed in. */
static const char *placed_from(struct placement_table *t, const struct config *cfg,
                               const char *database, const char *city)
{
    struct locality loc = {0};
    struct region_subset where;
    if (city != NULL)
        snprintf(loc.city, sizeof(loc.city), "%s", city);
    const struct region_subset *placed =
        placement_of_city(t, cfg, database, city != NULL ? &loc : NULL, &where);
    assert_non_null(placed);
    assert_int_equal(placed->count, 1);
    return placed->items[0]->name;
}

/*
 * [database] home_by: a column name beside regions; a session of such a
 * database from a city with a home goes there (names compared folded),
 * any other where the database lives; a database without it ignores homes.
 */
static void test_home_by(void **state)
{
    struct fixture *fx = *state;
    struct config *cfg = expect_load(fx, TWO_REGIONS "[database movr]\nregions = us-east\n"
                                                     "home_by = city\n"
                                                     "[database plain]\nregions = us-east\n");
    assert_string_equal(config_database_home_by(cfg, "movr"), "city");
    assert_null(config_database_home_by(cfg, "plain"));
    struct placement_table t;
    placement_init(&t);
    const struct placement_home homes[] = {
        home("movr", "new york", "us-west"), home("movr", "boston", ""),
        home("movr", "paris", "mars"), /* a region no longer configured */
        home("movr", "", "us-east"),         home("plain", "seattle", "us-west"),
    };
    assert_string_equal(placed_from(&t, cfg, "movr", "New-York"), "us-east"); /* no homes yet */
    placement_set_homes(&t, homes, sizeof(homes) / sizeof(homes[0]));
    assert_string_equal(placed_from(&t, cfg, "movr", "New-York"), "us-west");
    assert_string_equal(placed_from(&t, cfg, "movr", "NEW YORK"), "us-west");
    assert_string_equal(placed_from(&t, cfg, "movr", "Boston"), "us-east");
    assert_string_equal(placed_from(&t, cfg, "movr", "Paris"), "us-east");
    assert_string_equal(placed_from(&t, cfg, "movr", "Amsterdam"), "us-east");
    assert_string_equal(placed_from(&t, cfg, "movr", NULL), "us-east");
    assert_string_equal(placed_from(&t, cfg, "movr", ""), "us-east");
    assert_string_equal(placed_from(&t, cfg, "plain", "Seattle"), "us-east");
    struct placement_home copy[8];
    assert_int_equal(placement_homes(&t, copy, 8), 5);
    assert_int_equal(placement_homes(&t, copy, 2), 2);
    placement_destroy(&t);
    config_unref(cfg);
    expect_error(fx, TWO_REGIONS "[database movr]\nhome_by = city\n",
                 "[database movr]: home_by needs regions", NULL);
    expect_error(fx, TWO_REGIONS "[database movr]\nregions = us-east\nhome_by = 1city\n",
                 "invalid home_by \"1city\"", "a column name");
    expect_error(fx, TWO_REGIONS "[user app]\nhome_by = city\n", "[user app]: a user section takes",
                 NULL);
}

/* ---- every problem of a file in one load (pgnear --check) ---- */

/* Loads text with config_load_scoped; every needle must be in a problem of its own, in order. */
static void expect_problems(struct fixture *fx, const char *text, enum config_scope scope,
                            const char *const needles[])
{
    struct config_problems *p = malloc(sizeof(*p));
    assert_non_null(p);
    const char *path = write_file(fx, "pgnear.ini", text);
    struct config *cfg = config_load_scoped(path, scope, p);
    if (cfg != NULL) {
        config_unref(cfg);
        free(p);
        fail_msg("loaded although it should not:\n%s", text);
    }
    int n = 0;
    while (needles[n] != NULL)
        n++;
    for (int i = 0; i < p->count; i++)
        print_message("# problem %d: %s\n", i + 1, p->items[i]);
    assert_int_equal(p->count, n);
    for (int i = 0; i < n; i++) {
        if (strncmp(p->items[i], path, strlen(path)) != 0 ||
            strstr(p->items[i], needles[i]) == NULL)
            fail_msg("problem %d \"%s\" does not name %s and \"%s\"", i + 1, p->items[i], path,
                     needles[i]);
    }
    free(p);
}

static void test_problems_all_reported(void **state)
{
    struct fixture *fx = *state;
    char text[1024];
    snprintf(text, sizeof(text),
             "[pgnear]\n"               /* 1 */
             "listen_port = 70000\n"    /* 2 */
             "auth = kerberos\n"        /* 3 */
             "frobnicate = 1\n"         /* 4 */
             "auth_file = %s\n"         /* 5 */
             "client_tls = require\n"   /* 6 */
             "default_region = mars\n"  /* 7 */
             "[region eu]\n"            /* 8 */
             "location = 91, 0\n"       /* 9 */
             "hosts = 127.0.0.1:5432\n" /* 10 */
             "[region empty]\n"         /* 11 */
             "location = 1, 2\n"        /* 12 */
             "[cities]\n"               /* 13 */
             "paris = nowhere\n",       /* 14 */
             path_in(fx, "no-users.txt"));
    const char *const expected[] = {
        ":3: invalid value \"kerberos\" for setting \"auth\"",
        ":4: unrecognized setting \"frobnicate\"",
        ":9: invalid location \"91, 0\"",
        ":11: region \"empty\" has no hosts",
        ":7: default_region \"mars\" is not a configured region",
        ":14: [cities] paris = nowhere: no such region",
        ":2: listen_port must be between 1 and 65535",
        ":5: could not open auth_file",
        ":6: client_tls needs client_tls_cert_file and client_tls_key_file",
        NULL,
    };
    expect_problems(fx, text, CONFIG_SCOPE_ALL, expected);
}

/* Every repeated name and every syntax error, each with its line. */
static void test_problems_duplicates_and_syntax(void **state)
{
    const char *const dups[] = {
        ":4: \"listen_port\" is set again in [pgnear] (first at line 2)",
        ":7: section [region eu] appears again (first at line 5)",
        ":9: \"hosts\" is set again in [region eu] (first at line 6)",
        NULL,
    };
    expect_problems(*state,
                    "[pgnear]\nlisten_port = 6432\n; comment\nlisten_port = 6433\n"
                    "[region eu]\nhosts = 127.0.0.1:5432\n[Region EU]\nlocation = 1, 2\n"
                    "hosts = 127.0.0.1:5433\n",
                    CONFIG_SCOPE_ALL, dups);
    const char *const syntax[] = {
        ":2: syntax error: no equals sign",
        ":5: syntax error: [unclosed",
        NULL,
    };
    expect_problems(*state, "[pgnear]\nno equals sign\n" REGION_OK "[unclosed\n", CONFIG_SCOPE_ALL,
                    syntax);
}

/* A config_load caller (a reload) gets the first problem and how many more there are. */
static void test_problems_first_and_count(void **state)
{
    expect_error(*state, "[pgnear]\nworkers = 0\nauth = md5\nlisten_port = 0\n" REGION_OK, "md5",
                 "(and 2 more problems: pgnear --check lists them all)");
}

/* More problems than CONFIG_MAX_PROBLEMS are counted, not lost silently. */
static void test_problems_overflow(void **state)
{
    struct fixture *fx = *state;
    char text[4096] = "[pgnear]\n";
    for (int i = 0; i < CONFIG_MAX_PROBLEMS + 5; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "unknown_%d = 1\n", i);
    strcat(text, REGION_OK);
    struct config_problems *p = malloc(sizeof(*p));
    assert_non_null(p);
    assert_null(config_load_scoped(write_file(fx, "pgnear.ini", text), CONFIG_SCOPE_ALL, p));
    assert_int_equal(p->count, CONFIG_MAX_PROBLEMS);
    assert_int_equal(p->dropped, 5);
    free(p);
}

/* --explain: only what routing needs; credentials, TLS and other settings are not read. */
static void test_scope_routing(void **state)
{
    struct fixture *fx = *state;
    struct config_problems *p = malloc(sizeof(*p));
    assert_non_null(p);
    const char *path = write_file(fx, "pgnear.ini",
                                  "[pgnear]\nauth = scram\nauth_file = /nonexistent/users.txt\n"
                                  "client_tls = require\nlisten_port = 0\nfrobnicate = 1\n"
                                  "default_region = us\ntarget_session_attrs = nearest\n"
                                  "[region eu]\nlocation = 50.1, 8.7\nhosts = 127.0.0.1:5432\n"
                                  "[region us]\nhosts = 127.0.0.1:5433\n"
                                  "[cities]\nparis = eu\n");
    struct config *cfg = config_load_scoped(path, CONFIG_SCOPE_ROUTING, p);
    if (cfg == NULL)
        fail_msg("routing scope failed: %s", p->count > 0 ? p->items[0] : "?");
    assert_string_equal(cfg->default_region_ptr->name, "us");
    assert_int_equal(cfg->target_session_attrs, NEED_NEAREST); /* --explain's default need */
    assert_ptr_equal(cfg->routing.fallback, cfg->default_region_ptr);
    assert_int_equal(cfg->n_overrides, 1);
    assert_int_equal(cfg->regions.count, 2);
    config_unref(cfg);
    /* The same file does not load whole. */
    assert_null(config_load_scoped(path, CONFIG_SCOPE_ALL, p));
    assert_true(p->count >= 3);
    free(p);
    /* What routing needs is still checked. */
    const char *const routing[] = {
        ":4: invalid location \"north\"",
        ":2: default_region \"mars\" is not a configured region",
        NULL,
    };
    expect_problems(fx,
                    "[pgnear]\ndefault_region = mars\n[region eu]\nlocation = north\n"
                    "hosts = 127.0.0.1:1\n",
                    CONFIG_SCOPE_ROUTING, routing);
}

/* ---- region.h directly ---- */

static void expect_location(const char *text, double lat, double lon)
{
    double a = 999, b = 999;
    if (!region_parse_location(text, &a, &b))
        fail_msg("location \"%s\" rejected", text);
    assert_true(a > lat - 1e-9 && a < lat + 1e-9);
    assert_true(b > lon - 1e-9 && b < lon + 1e-9);
}

static void test_location_valid(void **state)
{
    expect_location("40.7, -74.0", 40.7, -74.0);
    expect_location("-90,180", -90, 180);
    expect_location("90 , -180 ", 90, -180);
    expect_location("0,0", 0, 0);
}

static void test_location_invalid(void **state)
{
    static const char *const bad[] = {"91, 0", "-90.5, 0", "0, 181", "0, -180.01", "1",
                                      "1 2",   "1,",       ",1",     "1,2,3",      "",
                                      "a, b",  "nan, 0",   "0, inf", "1, 2x",      "1e999, 0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        double lat, lon;
        if (region_parse_location(bad[i], &lat, &lon))
            fail_msg("location \"%s\" accepted", bad[i]);
    }
}

static void test_hosts_valid(void **state)
{
    struct region_set set = {0};
    struct region *r = region_set_add(&set, "t");
    assert_non_null(r);
    char err[256] = "";
    assert_null(region_parse_hosts(r, "127.0.0.1:5432,[::1]:5433\t127.0.0.1:1", err, sizeof(err)));
    assert_int_equal(r->nhosts, 3);
    check_v4(&r->hosts[0], "127.0.0.1", 5432);
    check_v6_loopback(&r->hosts[1], 5433);
    check_v4(&r->hosts[2], "127.0.0.1", 1);
    assert_ptr_equal(region_set_find(&set, "T"), r); /* names match without case */
    assert_null(region_set_find(&set, "u"));
    region_set_free(&set);
    assert_int_equal(set.count, 0);
}

/*
 * A host from outside the file (a Patroni member): an address or a DNS
 * name, never split; added with its region (issue 63 item 3).
 */
static void test_member_host(void **state)
{
    static const char *const good[] = {"127.0.0.1",
                                       "::1",
                                       "fe80::1",
                                       "10.2.0.10",
                                       "localhost",
                                       "pg-euw1.example.com",
                                       "pg-euw1.example.com.",
                                       "a",
                                       "127.1"};
    static const char *const bad[] = {
        "127.1]:5432,[127.0.0.1",
        "10.0.0.1:5432",
        "10.0.0.1,10.0.0.2",
        "a b",
        "[::1]",
        "-pg.example",
        "pg-.example",
        "pg..example",
        ".",
        "",
        "pg_1.example",
        "host=evil",
        "a\tb",
        "x.example/y",
        "0123456789012345678901234567890123456789012345678901234567890123.example"};
    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!host_is_address_or_name(good[i]))
            fail_msg("\"%s\" refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (host_is_address_or_name(bad[i]))
            fail_msg("\"%s\" taken as an address or a DNS name", bad[i]);
    struct host_addr a;
    char err[256] = "";
    assert_false(
        host_addr_resolve_at("127.1]:5432,[127.0.0.1", 5433, NULL, NULL, &a, err, sizeof(err)));
    assert_non_null(strstr(err, "neither an IP address nor a DNS name"));
    assert_false(host_addr_resolve_at("127.0.0.1", 0, NULL, NULL, &a, err, sizeof(err)));
    assert_true(host_addr_resolve_at("::1", 5433, NULL, NULL, &a, err, sizeof(err)));
    struct region_set set = {0};
    struct region *r = region_set_add(&set, "eu-west");
    assert_non_null(r);
    assert_null(region_add_addr(r, &a, err, sizeof(err)));
    assert_int_equal(r->nhosts, 1);
    assert_ptr_equal(r->hosts[0].region, r);
    assert_string_equal(r->hosts[0].name, "::1");
    check_v6_loopback(&r->hosts[0], 5433);
    region_set_free(&set);
}

static void expect_bad_hosts(const char *text, const char *needle)
{
    struct region_set set = {0};
    struct region *r = region_set_add(&set, "t");
    assert_non_null(r);
    char err[256] = "";
    const char *msg = region_parse_hosts(r, text, err, sizeof(err));
    if (msg == NULL)
        fail_msg("hosts \"%s\" accepted", text);
    assert_ptr_equal(msg, err);
    if (strstr(err, needle) == NULL)
        fail_msg("error \"%s\" does not name \"%s\"", err, needle);
    region_set_free(&set);
}

static void test_hosts_invalid(void **state)
{
    expect_bad_hosts("127.0.0.1", "127.0.0.1");
    expect_bad_hosts("::1:5432", "::1:5432");
    expect_bad_hosts("[::1]5432", "[::1]5432");
    expect_bad_hosts("[::1", "[::1");
    expect_bad_hosts(":5432", ":5432");
    expect_bad_hosts("[]:5432", "[]:5432");
    expect_bad_hosts("127.0.0.1:65536", "65536");
    expect_bad_hosts("127.0.0.1:-1", "-1");
    expect_bad_hosts("", "no hosts");
    expect_bad_hosts(" , ", "no hosts");
}

static void test_hosts_too_many(void **state)
{
    char text[1024] = "";
    for (int i = 0; i <= REGION_MAX_HOSTS; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "127.0.0.1:%d,", 1000 + i);
    expect_bad_hosts(text, "too many");
}

/* ---- auth_file ---- */

static const char auth_ok[] = "# comment\n"
                              "; another comment\n"
                              "\n"
                              "\"alice\" \"SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5\"\n"
                              "   \"bob\"\t\"md5abc\"   \n"
                              "\"we\"\"ird\" \"pa\"\"ss\"\"\"\n"
                              "\"spaced name\" \"\"\n";

static void test_userlist_ok(void **state)
{
    const char *path = write_file(*state, "users.txt", auth_ok);
    struct userlist ul = {0};
    char err[256] = "";
    assert_int_equal(userlist_load(&ul, path, err, sizeof(err)), 0);
    assert_int_equal(ul.count, 4);
    assert_string_equal(userlist_find(&ul, "alice"), "SCRAM-SHA-256$4096:c2FsdA==$a2V5:a2V5");
    assert_string_equal(userlist_find(&ul, "bob"), "md5abc");
    assert_string_equal(userlist_find(&ul, "we\"ird"), "pa\"ss\"");
    assert_string_equal(userlist_find(&ul, "spaced name"), "");
    assert_null(userlist_find(&ul, "carol"));
    assert_null(userlist_find(&ul, "Alice"));
    userlist_free(&ul);
    assert_int_equal(ul.count, 0);
}

/* The line is rejected and the error names file and line. */
static void expect_bad_userlist(struct fixture *fx, const char *text, const char *where)
{
    const char *path = write_file(fx, "bad-users.txt", text);
    struct userlist ul = {0};
    char err[512] = "";
    assert_int_equal(userlist_load(&ul, path, err, sizeof(err)), -1);
    if (strstr(err, path) == NULL || strstr(err, where) == NULL)
        fail_msg("error \"%s\" does not name %s%s", err, path, where);
    userlist_free(&ul);
}

static void test_userlist_malformed(void **state)
{
    expect_bad_userlist(*state, "alice \"x\"\n", ":1:");
    expect_bad_userlist(*state, "\"alice\"\n", ":1:");
    expect_bad_userlist(*state, "\"a\" \"b\"\n# c\n\"alice\" \"unterminated\n", ":3:");
    expect_bad_userlist(*state, "\"alice\" secret\n", ":1:");
    expect_bad_userlist(*state, "\"al\"ice\" \"x\"\n", ":1:");
    expect_bad_userlist(*state, "\"a\" \"b\"\n\"unterminated \"\" user\n", ":2:");
}

static void test_userlist_missing_file(void **state)
{
    struct userlist ul = {0};
    char err[512] = "";
    const char *path = path_in(*state, "no-users.txt");
    assert_int_equal(userlist_load(&ul, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, path));
    assert_int_equal(ul.count, 0);
}

static void test_config_with_auth_file(void **state)
{
    struct fixture *fx = *state;
    const char *users = write_file(fx, "users.txt", auth_ok);
    char ini[1024];
    snprintf(ini, sizeof(ini), "[pgnear]\nauth_file = %s\n" REGION_OK, users);
    struct config *cfg = expect_load(fx, ini);
    assert_int_equal(cfg->auth, AUTH_SCRAM); /* derived from the auth source */
    assert_int_equal(cfg->users.count, 4);
    assert_string_equal(userlist_find(&cfg->users, "bob"), "md5abc");
    config_unref(cfg);

    write_file(fx, "users.txt", "\"ok\" \"x\"\nbroken\n");
    expect_error(fx, ini, users, ":2:");
}

/* ---- TLS and warnings ---- */

static void make_cert(struct fixture *fx, const char *cert_name, const char *key_name)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    assert_true(key && x);
    assert_int_equal(X509_set_version(x, 2), 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    assert_int_equal(X509_set_pubkey(x, key), 1);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1,
                               0);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    FILE *f = fopen(path_in(fx, cert_name), "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    fclose(f);
    f = fopen(path_in(fx, key_name), "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* [pgnear] with client TLS on the generated certificate, plus extra lines. */
static void tls_ini(struct fixture *fx, char *out, size_t cap, const char *extra)
{
    snprintf(out, cap,
             "[pgnear]\nclient_tls = require\nclient_tls_cert_file = %s\n"
             "client_tls_key_file = %s\n%s" REGION_OK,
             path_in(fx, "cert.pem"), path_in(fx, "key.pem"), extra);
}

static int warnings_of(struct fixture *fx, const char *extra, char warnings[][256])
{
    char ini[2048];
    tls_ini(fx, ini, sizeof(ini), extra);
    struct config *cfg = expect_load(fx, ini);
    int n = config_warnings(cfg, warnings, 4);
    config_unref(cfg);
    return n;
}

static void test_tls_loads(void **state)
{
    struct fixture *fx = *state;
    make_cert(fx, "cert.pem", "key.pem");
    char ini[2048];
    tls_ini(fx, ini, sizeof(ini), "");
    struct config *cfg = expect_load(fx, ini);
    assert_int_equal(cfg->client_tls, CLIENT_TLS_REQUIRE);
    assert_non_null(cfg->client_tls_ctx);
    config_unref(cfg);
}

static void test_passthrough_tls_warning(void **state)
{
    struct fixture *fx = *state;
    make_cert(fx, "cert.pem", "key.pem");
    char w[4][256] = {{0}};
    assert_int_equal(warnings_of(fx, "", w), 1);
    assert_non_null(strstr(w[0], "passthrough"));
    assert_non_null(strstr(w[0], "channel_binding"));
    assert_int_equal(warnings_of(fx, "auth = passthrough\nserver_tls = require\n", w), 1);
}

static void test_no_warning_without_both_tls(void **state)
{
    struct fixture *fx = *state;
    make_cert(fx, "cert.pem", "key.pem");
    char w[4][256];
    assert_int_equal(warnings_of(fx, "server_tls = disable\n", w), 0);
    const char *users = write_file(fx, "users.txt", auth_ok);
    char extra[512];
    snprintf(extra, sizeof(extra), "auth_file = %s\n", users);
    assert_int_equal(warnings_of(fx, extra, w), 0);

    struct config *cfg = expect_load(fx, REGION_OK); /* client TLS off */
    assert_int_equal(config_warnings(cfg, w, 4), 0);
    config_unref(cfg);
}

static void test_warnings_respect_max(void **state)
{
    struct fixture *fx = *state;
    make_cert(fx, "cert.pem", "key.pem");
    char ini[2048];
    tls_ini(fx, ini, sizeof(ini), "");
    struct config *cfg = expect_load(fx, ini);
    char w[1][256];
    memset(w, 'x', sizeof(w));
    assert_int_equal(config_warnings(cfg, w, 0), 0);
    assert_int_equal(w[0][0], 'x');
    config_unref(cfg);
}

/* A throttle wait that could outlast the login timeout is worth a warning. */
static void test_auth_failure_delay_warning(void **state)
{
    struct fixture *fx = *state;
    make_cert(fx, "cert.pem", "key.pem");
    char w[4][256];
    assert_int_equal(warnings_of(fx, "auth = passthrough\nserver_tls = disable\n", w), 0);
    assert_int_equal(warnings_of(fx, "server_tls = disable\nauth_failure_max_delay = 60s\n", w), 1);
    assert_non_null(strstr(w[0], "client_login_timeout"));
    assert_int_equal(
        warnings_of(
            fx, "server_tls = disable\nauth_failure_max_delay = 60s\nauth_failure_threshold = 0\n",
            w),
        0);
}

/* nearest where pgnear cannot place each transaction: its sessions run as read-write. */
static void test_nearest_shortfall_warning(void **state)
{
    struct fixture *fx = *state;
    make_cert(fx, "cert.pem", "key.pem");
    char w[4][256];
    assert_int_equal(warnings_of(fx, "server_tls = disable\ntarget_session_attrs = nearest\n", w),
                     1);
    assert_non_null(strstr(w[0], "nearest, but auth = passthrough"));
    assert_int_equal(
        warnings_of(fx, "server_tls = disable\n[user bob]\ntarget_session_attrs = nearest\n", w),
        1);
    assert_non_null(strstr(w[0], "nearest, but auth = passthrough"));

    const char *users = write_file(fx, "users.txt", auth_ok);
    const char *const tail[] = {"", "max_prepared_statements = 0\n", "pool_mode = none\n"};
    const char *const why[] = {NULL, "max_prepared_statements = 0", "pool_mode = none"};
    for (size_t i = 0; i < sizeof(tail) / sizeof(tail[0]); i++) {
        char extra[1024];
        snprintf(extra, sizeof(extra),
                 "server_tls = disable\nauth = scram\nauth_file = %s\n"
                 "target_session_attrs = nearest\n%s",
                 users, tail[i]);
        assert_int_equal(warnings_of(fx, extra, w), why[i] != NULL);
        if (why[i] != NULL)
            assert_non_null(strstr(w[0], why[i]));
    }
}

/*
 * any among more than one host: some may be standbys (--check knows no
 * role), and a write placed near one gets 25006.  Once, naming where the
 * any comes from; none with one host, nor where no session gets any.
 */
static void test_any_among_standbys_warning(void **state)
{
    struct fixture *fx = *state;
    make_cert(fx, "cert.pem", "key.pem");
    char w[4][256];
    const char *users = write_file(fx, "users.txt", auth_ok);
    char base[1024], extra[2048];
    snprintf(base, sizeof(base), "server_tls = disable\nauth = scram\nauth_file = %s\n", users);
    const char *second = "[region us]\nhosts = 127.0.0.1:5433\n";

    snprintf(extra, sizeof(extra), "%s%s", base, second);
    assert_int_equal(warnings_of(fx, extra, w), 1);
    assert_non_null(strstr(w[0], "target_session_attrs = any (the setting's, as by default)"));
    assert_non_null(strstr(w[0], "among 2 hosts"));
    assert_non_null(strstr(w[0], "25006"));
    assert_int_equal(warnings_of(fx, base, w), 0); /* one host */

    snprintf(extra, sizeof(extra), "%starget_session_attrs = nearest\n%s", base, second);
    assert_int_equal(warnings_of(fx, extra, w), 0);
    snprintf(extra, sizeof(extra),
             "%starget_session_attrs = nearest\n%s[user bob]\n"
             "target_session_attrs = any\n",
             base, second);
    assert_int_equal(warnings_of(fx, extra, w), 1);
    assert_non_null(strstr(w[0], "target_session_attrs = any ([user bob])"));
    snprintf(extra, sizeof(extra), "%starget_session_attrs = read-only\n%s", base, second);
    assert_int_equal(warnings_of(fx, extra, w), 0);
}

static void test_err_tls_files(void **state)
{
    struct fixture *fx = *state;
    expect_error(fx, "[pgnear]\nclient_tls = allow\n" REGION_OK, "client_tls_cert_file", NULL);
    char ini[2048];
    tls_ini(fx, ini, sizeof(ini), ""); /* the files do not exist yet */
    expect_error(fx, ini, "cert.pem", NULL);

    make_cert(fx, "cert.pem", "key.pem");
    make_cert(fx, "other-cert.pem", "other-key.pem");
    snprintf(ini, sizeof(ini),
             "[pgnear]\nclient_tls = require\nclient_tls_cert_file = %s\n"
             "client_tls_key_file = %s\n" REGION_OK,
             path_in(fx, "cert.pem"), path_in(fx, "other-key.pem"));
    expect_error(fx, ini, "other-key.pem", "client_tls_key_file");
}

/* ---- conninfo of pgnear's own connections ---- */

static const char *conninfo_value(PQconninfoOption *opts, const char *key)
{
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val;
    return NULL;
}

static void test_pgconn_conninfo(void **state)
{
    struct config *cfg =
        expect_load(*state, "[pgnear]\nserver_conninfo = user=pgnear host=elsewhere port=1 "
                            "password='it\\'s'\nserver_tls = require\n"
                            "[region eu]\nhosts = localhost:5433, 127.0.0.2:5434\n");
    char buf[2048], *msg = NULL;
    const struct region *r = &cfg->regions.items[0];
    assert_true(pgconn_conninfo(cfg, &r->hosts[0], "movr", "pgnear auth_query", buf, sizeof(buf)));
    PQconninfoOption *opts = PQconninfoParse(buf, &msg);
    if (opts == NULL)
        fail_msg("libpq cannot parse \"%s\": %s", buf, msg ? msg : "?");
    /* The region's host wins over server_conninfo's; the address needs no lookup. */
    assert_string_equal(conninfo_value(opts, "host"), "localhost");
    const char *addr = conninfo_value(opts, "hostaddr");
    assert_non_null(addr);
    assert_true(strcmp(addr, "127.0.0.1") == 0 || strcmp(addr, "::1") == 0);
    assert_string_equal(conninfo_value(opts, "port"), "5433");
    assert_string_equal(conninfo_value(opts, "dbname"), "movr");
    assert_string_equal(conninfo_value(opts, "user"), "pgnear");
    assert_string_equal(conninfo_value(opts, "password"), "it's");
    assert_string_equal(conninfo_value(opts, "sslmode"), "require");
    assert_string_equal(conninfo_value(opts, "application_name"), "pgnear auth_query");
    PQconninfoFree(opts);

    assert_true(
        pgconn_conninfo(cfg, &r->hosts[1], "postgres", "pgnear health check", buf, sizeof(buf)));
    opts = PQconninfoParse(buf, &msg);
    assert_non_null(opts);
    assert_string_equal(conninfo_value(opts, "host"), "127.0.0.2");
    assert_string_equal(conninfo_value(opts, "hostaddr"), "127.0.0.2");
    assert_string_equal(conninfo_value(opts, "port"), "5434");
    PQconninfoFree(opts);
    /* Too small a buffer is refused, not truncated. */
    assert_false(pgconn_conninfo(cfg, &r->hosts[1], "postgres", "x", buf, 40));
    config_unref(cfg);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_valid_two_regions),
        T(test_home_by),
        T(test_valid_durations),
        T(test_defaults),
        T(test_default_region_first),
        T(test_enums_and_bools),
        T(test_ref_unref),
        T(test_reload_shares_tables),
        T(test_visit),
        T(test_err_unknown_setting),
        T(test_dns_settings),
        T(test_err_unknown_section),
        T(test_err_duplicates),
        T(test_inline_comments),
        T(test_pgconn_conninfo),
        T(test_err_bad_enum),
        T(test_err_bad_number),
        T(test_err_bad_duration),
        T(test_err_nonfinite_duration),
        T(test_err_bad_port),
        T(test_err_setting_before_section),
        T(test_pool_settings),
        T(test_err_host_without_port),
        T(test_err_region_without_hosts),
        T(test_err_no_region),
        T(test_err_default_region_unknown),
        T(test_err_bad_location),
        T(test_err_bad_region_name),
        T(test_err_scram_without_source),
        T(test_err_missing_file),
        T(test_err_unsupported),
        T(test_transaction_pool_size),
        T(test_section_pool_mode),
        T(test_err_health_check_fall),
        T(test_err_auth_failure_settings),
        T(test_migration_order),
        T(test_auth_failure_delay_warning),
        T(test_problems_all_reported),
        T(test_problems_duplicates_and_syntax),
        T(test_problems_first_and_count),
        T(test_problems_overflow),
        T(test_scope_routing),
        T(test_nearest_shortfall_warning),
        T(test_any_among_standbys_warning),
        T(test_location_valid),
        T(test_location_invalid),
        T(test_hosts_valid),
        T(test_hosts_invalid),
        T(test_member_host),
        T(test_hosts_too_many),
        T(test_userlist_ok),
        T(test_userlist_malformed),
        T(test_userlist_missing_file),
        T(test_config_with_auth_file),
        T(test_tls_loads),
        T(test_passthrough_tls_warning),
        T(test_no_warning_without_both_tls),
        T(test_warnings_respect_max),
        T(test_err_tls_files),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
