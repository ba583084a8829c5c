/*
 * main.c — command line, configuration check, and the daemon's start.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgnear-build.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/daemon.h"
#include "routing/cities.h"
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

/* Every problem of the file, one a line. */
static void report_problems(const char *path, const struct config_problems *p)
{
    for (int i = 0; i < p->count; i++)
        fprintf(stderr, "pgnear: %s\n", p->items[i]);
    if (p->dropped > 0)
        fprintf(stderr, "pgnear: %s: %d more problems not shown\n", path, p->dropped);
    if (p->count + p->dropped > 1)
        fprintf(stderr, "pgnear: configuration file \"%s\" has %d problems\n", path,
                p->count + p->dropped);
}

static int run_check(const char *path)
{
    char warnings[8][256];
    struct config_problems problems;
    struct config *cfg = config_load_scoped(path, CONFIG_SCOPE_ALL, &problems);
    if (cfg == NULL) {
        report_problems(path, &problems);
        return 1;
    }
    int n = config_warnings(cfg, warnings, 8);
    for (int i = 0; i < n; i++)
        fprintf(stderr, "pgnear: WARNING: %s\n", warnings[i]);
    printf("%s: configuration OK (%zu regions, default region %s)\n", path, cfg->regions.count,
           cfg->default_region_ptr->name);
    if (cfg->cities != NULL)
        printf("city table: %zu cities from %s\n", city_table_count(cfg->cities), cfg->cities_file);
    if (cfg->geoip != NULL) {
        char desc[512];
        geoip_describe(cfg->geoip, desc, sizeof(desc));
        printf("GeoIP: %s\n", desc);
    }
    config_unref(cfg);
    return 0;
}

/* "city=Seattle", "ip=81.2.69.142", "location=47.6,-122.3", "region=us-east" */
static bool explain_parse_arg(const char *arg, struct locality_input *in,
                              struct sockaddr_storage *addr)
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
    else if (n == 2 && strncmp(arg, "ip", 2) == 0) {
        struct sockaddr_in *a4 = (struct sockaddr_in *)addr;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)addr;
        memset(addr, 0, sizeof(*addr));
        if (inet_pton(AF_INET, v, &a4->sin_addr) == 1)
            a4->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, v, &a6->sin6_addr) == 1)
            a6->sin6_family = AF_INET6;
        else
            return false;
        in->addr = (const struct sockaddr *)addr;
    } else
        return false;
    return true;
}

/* What the evidence given could not do, so that a quiet default does not look like a decision. */
static void explain_notes(const struct config *cfg, const struct locality_input *in,
                          const struct locality *loc)
{
    if (in->addr != NULL && loc->source == LOCALITY_DEFAULT) {
        if (cfg->geoip == NULL)
            printf("note: no GeoIP database is configured (geoip_db is not set), so ip= cannot "
                   "place the caller\n");
        else
            printf("note: the GeoIP databases have no location for this address\n");
    }
    char nearby[400];
    if (in->city != NULL && (loc->unplaced & LOCALITY_UNPLACED_CITY) &&
        locality_city_suggestions(&cfg->routing, in->city, nearby, sizeof(nearby))[0] != '\0')
        printf("note: did you mean %s?\n", nearby);
    if (in->city != NULL && cfg->cities == NULL)
        printf("note: no city table is configured (cities_file is not set): only [cities] "
               "places a city\n");
    printf("note: health is not checked by --explain; the running proxy may pass over a region "
           "that is down\n");
}

static void explain_print(const struct config *cfg, const struct locality_input *in,
                          const struct locality *loc)
{
    struct region *plan[ROUTE_MAX_REGIONS];
    double cosines[ROUTE_MAX_REGIONS];
    size_t n = route_plan(&cfg->routing, loc, plan, cosines, ROUTE_MAX_REGIONS);
    bool distances = locality_caller_placed(loc);
    char reason[512];
    printf("source: %s (%s)\n", route_source_name(loc->source), loc->via);
    printf("reason: %s\n", locality_reason(loc, reason, sizeof(reason)));
    printf("region: %s\n", plan[0]->name);
    for (size_t i = 0; i < n; i++) {
        if (distances && route_km(cosines[i]) >= 0)
            printf("  %zu. %-16s %8.0f km\n", i + 1, plan[i]->name, route_km(cosines[i]));
        else
            printf("  %zu. %s\n", i + 1, plan[i]->name);
    }
    explain_notes(cfg, in, loc);
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
    for (int i = 0; i < argc; i++) {
        if (!explain_parse_arg(argv[i], &in, &addr)) {
            fprintf(stderr,
                    "pgnear: --explain takes city=NAME, ip=ADDRESS, location=LAT,LON or "
                    "region=NAME, not \"%s\"\n",
                    argv[i]);
            return 2;
        }
    }
    struct config_problems problems;
    struct config *cfg = config_load_scoped(path, CONFIG_SCOPE_ROUTING, &problems);
    if (cfg == NULL) {
        report_problems(path, &problems);
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
    struct locality loc;
    locality_resolve(&cfg->routing, &in, &loc);
    explain_print(cfg, &in, &loc);
    config_unref(cfg);
    registry_free(registry);
    return 0;
}

static int run_proxy(const char *path, bool background, enum log_level level)
{
    struct config_problems problems;
    struct config *cfg = config_load_scoped(path, CONFIG_SCOPE_ALL, &problems);
    if (cfg == NULL) {
        report_problems(path, &problems);
        return 1;
    }
    if (background && cfg->logfile[0] == '\0') {
        fprintf(stderr, "pgnear: -d needs a logfile in the configuration\n");
        config_unref(cfg);
        return 1;
    }
    if (log_open(cfg->logfile, level) != 0) {
        fprintf(stderr, "pgnear: could not open logfile \"%s\"\n", cfg->logfile);
        config_unref(cfg);
        return 1;
    }
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
