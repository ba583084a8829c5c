/*
 * mmdb_writer.h — test GeoIP databases, written at test time by
 * tests/lib/make_mmdb.pl (Debian's MaxMind::DB::Writer), and the timing
 * helpers the lookup-cost checks share.  For the unit tests and the
 * routing benchmark only.
 */
#ifndef PGNEAR_TESTS_MMDB_WRITER_H
#define PGNEAR_TESTS_MMDB_WRITER_H

#include <stddef.h>
#include <time.h>

/*
 * Writes path from nets ("CIDR=City,CC,lat,lon"): layout "maxmind" or
 * "dbip", ipv "4" or "6", type NULL for the default database type.
 * srcdir NULL or "" means ".".  0, or -1 with the reason on stderr.
 */
int mmdb_write(const char *srcdir, const char *path, const char *layout, const char *ipv,
               const char *type, const char *const *nets, size_t nnets);

static inline double mmdb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* For qsort of doubles, to take medians. */
static inline int mmdb_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
