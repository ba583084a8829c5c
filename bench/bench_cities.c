/*
 * bench_cities.c — microbenchmark of the city table: loading it, looking up
 * names (plain, qualified, other spellings, unknown), and suggestions for
 * misspelled names.  Not a test.
 *
 *   bench_cities [-n LOOKUPS] [CSV]
 *
 * CSV defaults to $PGNEAR_SRCDIR/conf/cities.csv, else conf/cities.csv.
 * Prints the median and the slowest of 7 loads, the resident memory the
 * table holds (VmRSS before and after the first load: a table is a mapping
 * of its own, not heap), the median and the 99th percentile of the per-lookup time
 * of batches of 1000 lookups (default 2,000,000 lookups, cycling through
 * the queries below), then the same per kind of query, and the time of one
 * city_table_suggest() call for a few misspellings.
 *
 * Build (from a build directory): make bench/bench_cities
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "routing/cities.h"

#define LOADS 7
#define BATCH 1000

static const char *const plain[] = {
    "Boston", "Portland", "Cambridge", "San Jose", "Valencia", "Paris",       "London",
    "Sydney", "Seattle",  "Tokyo",     "Berlin",   "Mumbai",   "São Paulo",   "new york",
    "Zürich", "Perth",    "Victoria",  "Kingston", "Toronto",  "Springfield",
};
static const char *const qualified[] = {
    "Portland, ME",  "Portland, Maine", "Springfield, IL", "London, ON",       "London, ON, CA",
    "Boston, US",    "Paris, TX",       "Perth, Scotland", "Valencia, VE",     "Salem, IN",
    "Cambridge, MA", "Perth, WA, AU",   "Kingston, NY",    "Paris, Texas, US", "Vancouver, WA",
};
static const char *const spellings[] = {
    "Muenchen", "Koeln",    "Sao Paulo", "Zuerich", "Kiev",
    "Bombay",   "St Louis", "Xian",      "NYC",     "SÃO PAULO",
};
static const char *const unknown[] = {
    "Xyzzy", "Seatle", "Paris, DE", "Paris, France", "Portland, Oregan", "Sanfrancisco",
};
static const char *const misspelled[] = {
    "Seatle",  "Sanfrancisco", "Lodnon",        "Philadelpia",
    "Muenchn", "Portlnd, ME",  "Paris, France", "Xyzzy Upon Plugh",
};

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* This process's resident memory, from /proc/self/status; 0 when unknown. */
static double rss_mib(void)
{
    char line[256];
    long kib = 0;
    FILE *f = fopen("/proc/self/status", "r");

    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib / 1024.0;
}

/* Loads path LOADS times; prints the times and the memory the table holds. */
static struct city_table *bench_load(const char *path)
{
    double ms[LOADS];
    char err[512];
    struct city_table *t = NULL;

    for (int i = 0; i < LOADS; i++) {
        double before = rss_mib();
        double a = now_ns();

        city_table_free(t);
        t = city_table_load(path, err, sizeof err);
        ms[i] = (now_ns() - a) / 1e6;
        if (!t) {
            fprintf(stderr, "bench_cities: %s\n", err);
            exit(1);
        }
        if (i == 0)
            printf("table: %zu places, %.1f MiB resident\n", city_table_count(t),
                   rss_mib() - before);
    }
    qsort(ms, LOADS, sizeof ms[0], cmp_double);
    printf("load: median %.1f ms, slowest %.1f ms (%d loads)\n", ms[LOADS / 2], ms[LOADS - 1],
           LOADS);
    return t;
}

/* Times n lookups cycling through q; prints median and p99 ns per lookup. */
static void bench_lookups(const struct city_table *t, const char *what, const char *const *q,
                          size_t nq, size_t n)
{
    size_t batches = n / BATCH ? n / BATCH : 1, found = 0, k = 0;
    double *per = malloc(batches * sizeof *per);

    if (!per) {
        fprintf(stderr, "bench_cities: out of memory\n");
        exit(1);
    }
    for (size_t b = 0; b < batches; b++) {
        double a = now_ns();

        for (size_t i = 0; i < BATCH; i++, k = (k + 1) % nq)
            found += city_table_lookup(t, q[k]) != NULL;
        per[b] = (now_ns() - a) / BATCH;
    }
    qsort(per, batches, sizeof per[0], cmp_double);
    printf("lookup %-10s median %5.0f ns, p99 %5.0f ns (%zu lookups, %.0f%% found)\n", what,
           per[batches / 2], per[batches * 99 / 100], batches * BATCH,
           100.0 * (double)found / (double)(batches * BATCH));
    free(per);
}

/* Times city_table_suggest() for each misspelling. */
static void bench_suggest(const struct city_table *t)
{
    for (size_t i = 0; i < sizeof misspelled / sizeof misspelled[0]; i++) {
        const struct city *out[3];
        size_t n = 0;
        double a = now_ns();

        for (int r = 0; r < 20; r++)
            n = city_table_suggest(t, misspelled[i], out, 3);
        printf("suggest %-18s %6.0f us, %zu: %s%s%s\n", misspelled[i], (now_ns() - a) / 20 / 1e3, n,
               n ? out[0]->name : "", n ? ", " : "", n ? out[0]->country : "");
    }
}

int main(int argc, char **argv)
{
    const char *srcdir = getenv("PGNEAR_SRCDIR");
    char path[4096];
    size_t n = 2000000;
    int opt;

    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt != 'n' || (n = strtoul(optarg, NULL, 10)) == 0) {
            fprintf(stderr, "usage: bench_cities [-n LOOKUPS] [CSV]\n");
            return 2;
        }
    }
    if (optind < argc)
        snprintf(path, sizeof path, "%s", argv[optind]);
    else
        snprintf(path, sizeof path, "%s/conf/cities.csv", srcdir && *srcdir ? srcdir : ".");
    struct city_table *t = bench_load(path);
    static const char
        *all[sizeof plain / sizeof plain[0] + sizeof qualified / sizeof qualified[0] +
             sizeof spellings / sizeof spellings[0] + sizeof unknown / sizeof unknown[0]];
    size_t na = 0;
#define ADD(v)                                                                                     \
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)                                            \
    all[na++] = v[i]
    ADD(plain);
    ADD(qualified);
    ADD(spellings);
    ADD(unknown);
#undef ADD
    bench_lookups(t, "all", all, na, n);
    bench_lookups(t, "plain", plain, sizeof plain / sizeof plain[0], n / 4);
    bench_lookups(t, "qualified", qualified, sizeof qualified / sizeof qualified[0], n / 4);
    bench_lookups(t, "spellings", spellings, sizeof spellings / sizeof spellings[0], n / 4);
    bench_lookups(t, "unknown", unknown, sizeof unknown / sizeof unknown[0], n / 4);
    bench_suggest(t);
    city_table_free(t);
    return 0;
}
