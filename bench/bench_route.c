/*
 * bench_route.c — microbenchmark of one routing decision: locality_resolve
 * with only the caller's address (a GeoIP lookup), then route_plan over 30
 * regions spread over the globe.  Not a test.
 *
 *   bench_route [-n DECISIONS] [MMDB[,MMDB...]]
 *
 * Without MMDB, writes a GeoIP database of 4000 networks (/16 to /24, all
 * over the world) with tests/lib/make_mmdb.pl into a temporary directory
 * ($PGNEAR_SRCDIR, else ".", must hold tests/lib/make_mmdb.pl) and looks up
 * addresses inside those networks.  With MMDB (for example the DB-IP lite
 * files of `make geoip-db`), looks up random public IPv4 addresses in it.
 *
 * Times DECISIONS (default 1,000,000) decisions in batches of 1000 with
 * clock_gettime(CLOCK_MONOTONIC) and prints the median and the 99th
 * percentile of the per-decision time of the batches, in nanoseconds; then
 * the parts on fewer batches: locality_resolve alone (and the GeoIP lookup
 * in it), route_plan alone (and the 30 great-circle distances in it).
 *
 * Build (from a build directory): make bench/bench_route
 */
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "routing/geoip.h"
#include "routing/region.h"
#include "routing/registry.h"
#include "routing/route.h"
#include "tests/unit/mmdb_writer.h"

#define N_REGIONS 30
#define N_NETS    4000
#define N_ADDRS   4096 /* distinct callers, cycled through */
#define BATCH     1000
#define WARMUP    20 /* batches not counted */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint64_t rng(void)
{
    /* xorshift64*: deterministic, so every run routes the same callers */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

/* 30 points spread evenly over the sphere (Fibonacci lattice), as regions. */
static void build_regions(struct registry *registry, struct region_set *set)
{
    const double golden = M_PI * (3.0 - sqrt(5.0));
    for (int i = 0; i < N_REGIONS; i++) {
        char name[16];
        snprintf(name, sizeof name, "r%02d", i);
        struct region *r = region_set_add(set, name);
        if (r == NULL) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        double y = 1.0 - (2.0 * i + 1.0) / N_REGIONS; /* sin(latitude) */
        double lon = fmod(golden * i, 2 * M_PI) * 180.0 / M_PI;
        region_set_location(r, asin(y) * 180.0 / M_PI, lon > 180.0 ? lon - 360.0 : lon);
    }
    for (size_t i = 0; i < set->count; i++) {
        struct region_host *h = &set->items[i].hosts[0];
        char host[32];
        snprintf(host, sizeof host, "10.0.%zu.1", i);
        h->name = strdup(host);
        h->port = 5432;
        h->region = &set->items[i];
        set->items[i].nhosts = 1;
    }
    /* Every region enabled and every host up: fresh entries. */
    if (!registry_bind(registry, set)) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
}

struct net {
    uint32_t base; /* host order */
    int prefix;
};

/* A first octet that is public unicast (not 0, 10, 100, 127, 169, 172, 192, 198, 203, >= 224). */
static uint32_t public_octet(void)
{
    for (;;) {
        uint32_t a = 1 + (uint32_t)(rng() % 222);
        if (a != 10 && a != 100 && a != 127 && a != 169 && a != 172 && a != 192 && a != 198 &&
            a != 203)
            return a;
    }
}

/* Writes the database with make_mmdb.pl; fills nets with what it holds. */
static int write_mmdb(const char *path, struct net *nets)
{
    const char **specs = calloc(N_NETS, sizeof(*specs));
    char *text = calloc(N_NETS, 96);
    int rc = -1;
    if (specs != NULL && text != NULL) {
        for (int i = 0; i < N_NETS; i++) {
            /* mostly /24, some /20 and /16, as in real city databases */
            int prefix = i % 10 == 0 ? 16 : i % 5 == 0 ? 20 : 24;
            uint32_t base = public_octet() << 24 | (uint32_t)(rng() & 0xffffff);
            base &= ~(uint32_t)0 << (32 - prefix);
            nets[i] = (struct net){base, prefix};
            double lat = -55.0 + (double)(rng() % 12500) / 100.0;
            double lon = -180.0 + (double)(rng() % 36000) / 100.0;
            char *t = text + (size_t)i * 96;
            snprintf(t, 96, "%u.%u.%u.%u/%d=City%d,%c%c,%.4f,%.4f", base >> 24, (base >> 16) & 255,
                     (base >> 8) & 255, base & 255, prefix, i, 'A' + i % 26, 'A' + (i / 26) % 26,
                     lat, lon);
            specs[i] = t;
        }
        rc = mmdb_write(getenv("PGNEAR_SRCDIR"), path, "maxmind", "6", NULL, specs, N_NETS);
    }
    free(specs);
    free(text);
    return rc;
}

struct decision_sink {
    uintptr_t regions;
    double km;
    size_t sources[LOCALITY_DEFAULT + 1];
};

static void report(const char *what, double *per, int batches)
{
    qsort(per, (size_t)batches, sizeof per[0], mmdb_cmp_double);
    double sum = 0;
    for (int i = 0; i < batches; i++)
        sum += per[i];
    printf("%-34s median %6.0f ns  p99 %6.0f ns  mean %6.0f ns  min %6.0f ns  (%d x %d)\n", what,
           per[batches / 2], per[(int)((double)batches * 0.99)], sum / batches, per[0], batches,
           BATCH);
}

int main(int argc, char **argv)
{
    long decisions = 1000000;
    const char *mmdb = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            decisions = strtol(argv[++i], NULL, 10);
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: %s [-n DECISIONS] [MMDB[,MMDB...]]\n", argv[0]);
            return 2;
        } else
            mmdb = argv[i];
    }
    int batches = (int)(decisions / BATCH);
    if (batches < 10) {
        fprintf(stderr, "bench_route: at least %d decisions\n", 10 * BATCH);
        return 2;
    }

    struct region_set set = {0};
    struct registry *registry = registry_new();
    if (registry == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    build_regions(registry, &set);

    static struct net nets[N_NETS];
    char dir[] = "/tmp/bench_route.XXXXXX", path[64] = "";
    if (mmdb == NULL) {
        if (mkdtemp(dir) == NULL) {
            perror("mkdtemp");
            return 1;
        }
        snprintf(path, sizeof path, "%s/bench.mmdb", dir);
        double t0 = mmdb_now_ns();
        if (write_mmdb(path, nets) != 0)
            return 1;
        printf("wrote %d networks to %s in %.1f s\n", N_NETS, path, (mmdb_now_ns() - t0) / 1e9);
        mmdb = path;
    }
    char err[512];
    struct geoip_set *geo = geoip_open(mmdb, err, sizeof err);
    if (geo == NULL) {
        fprintf(stderr, "bench_route: %s\n", err);
        return 1;
    }
    char desc[512];
    geoip_describe(geo, desc, sizeof desc);
    printf("GeoIP: %s\n", desc);

    /* The callers: inside the generated networks, or random public addresses. */
    static struct sockaddr_in addrs[N_ADDRS];
    for (int i = 0; i < N_ADDRS; i++) {
        uint32_t a;
        if (path[0] != '\0') {
            const struct net *n = &nets[rng() % N_NETS];
            a = n->base | (uint32_t)(rng() & ((1u << (32 - n->prefix)) - 1));
        } else {
            a = public_octet() << 24 | (uint32_t)(rng() & 0xffffff);
        }
        addrs[i].sin_family = AF_INET;
        addrs[i].sin_port = htons(50000);
        addrs[i].sin_addr.s_addr = htonl(a);
    }

    /* Ordered by distance alone: no round trips are measured here. */
    struct routing_data rd = {
        .regions = &set,
        .fallback = &set.items[0],
        .geoip = geo,
        .rank = {.by = ROUTE_BY_DISTANCE},
    };
    struct decision_sink sink = {0};
    struct region *plan[ROUTE_MAX_REGIONS];
    double km[ROUTE_MAX_REGIONS];
    static struct locality locs[N_ADDRS];
    double *per = calloc((size_t)batches, sizeof(*per));
    if (per == NULL)
        return 1;

    /* The whole decision, as a session makes it. */
    size_t k = 0;
    for (int b = -WARMUP; b < batches; b++) {
        double t0 = mmdb_now_ns();
        for (int i = 0; i < BATCH; i++) {
            struct locality_input in = {.addr = (const struct sockaddr *)&addrs[k]};
            struct locality loc;
            locality_resolve(&rd, &in, &loc);
            size_t n = route_plan(&rd, &loc, &(struct need_spec){.role = NEED_ANY}, NULL, plan, km,
                                  ROUTE_MAX_REGIONS);
            sink.regions += (uintptr_t)plan[0] + n;
            if (b >= 0) {
                sink.km += route_km(km[0]);
                sink.sources[loc.source]++;
            }
            k = (k + 1) % N_ADDRS;
        }
        double t = (mmdb_now_ns() - t0) / BATCH;
        if (b >= 0)
            per[b] = t;
    }
    printf("%ld decisions: %zu by GeoIP, %zu by default_region; nearest region %.0f km away on "
           "average\n",
           (long)batches * BATCH, sink.sources[LOCALITY_GEOIP], sink.sources[LOCALITY_DEFAULT],
           sink.km / (double)((size_t)batches * BATCH));
    report("locality_resolve + route_plan:", per, batches);
    double median_total = per[batches / 2];

    /* The halves, on fewer batches. */
    int part = batches < 200 ? batches : 200;
    for (int i = 0; i < N_ADDRS; i++) {
        struct locality_input in = {.addr = (const struct sockaddr *)&addrs[i]};
        locality_resolve(&rd, &in, &locs[i]);
    }
    for (int b = -WARMUP; b < part; b++) {
        double t0 = mmdb_now_ns();
        for (int i = 0; i < BATCH; i++) {
            struct locality_input in = {.addr = (const struct sockaddr *)&addrs[k]};
            struct locality loc;
            locality_resolve(&rd, &in, &loc);
            sink.regions += loc.source;
            k = (k + 1) % N_ADDRS;
        }
        double t = (mmdb_now_ns() - t0) / BATCH;
        if (b >= 0)
            per[b] = t;
    }
    report("  locality_resolve alone:", per, part);
    for (int b = -WARMUP; b < part; b++) {
        double t0 = mmdb_now_ns();
        for (int i = 0; i < BATCH; i++) {
            struct geoip_result g;
            geoip_lookup(geo, (const struct sockaddr *)&addrs[k], &g, err, sizeof err);
            sink.km += g.lat;
            k = (k + 1) % N_ADDRS;
        }
        double t = (mmdb_now_ns() - t0) / BATCH;
        if (b >= 0)
            per[b] = t;
    }
    report("    of which geoip_lookup:", per, part);
    for (int b = -WARMUP; b < part; b++) {
        double t0 = mmdb_now_ns();
        for (int i = 0; i < BATCH; i++) {
            size_t n = route_plan(&rd, &locs[k], &(struct need_spec){.role = NEED_ANY}, NULL, plan,
                                  km, ROUTE_MAX_REGIONS);
            sink.regions += (uintptr_t)plan[0] + n;
            k = (k + 1) % N_ADDRS;
        }
        double t = (mmdb_now_ns() - t0) / BATCH;
        if (b >= 0)
            per[b] = t;
    }
    report("  route_plan alone (30 regions):", per, part);
    /* For comparison: one haversine distance per region (route_plan compares cosines instead). */
    for (int b = -WARMUP; b < part; b++) {
        double t0 = mmdb_now_ns();
        for (int i = 0; i < BATCH; i++) {
            const struct locality *l = &locs[k];
            double d = 0;
            for (size_t r = 0; r < set.count; r++)
                d += route_distance_km(l->lat, l->lon, set.items[r].lat, set.items[r].lon);
            sink.km += d;
            k = (k + 1) % N_ADDRS;
        }
        double t = (mmdb_now_ns() - t0) / BATCH;
        if (b >= 0)
            per[b] = t;
    }
    report("    of which 30 route_distance_km:", per, part);
    printf("target: median <= 2000 ns per decision: %s (checksum %zx)\n",
           median_total <= 2000 ? "met" : "NOT met", (size_t)(sink.regions & 0xfff));

    free(per);
    geoip_close(geo);
    region_set_free(&set);
    registry_free(registry);
    if (path[0] != '\0') {
        unlink(path);
        rmdir(dir);
    }
    return 0;
}
