/*
 * stats.c — summing workers' counters (stats.h).
 */
#include "proxy/stats.h"

#include <stddef.h>

/* Every field is a uint64_t counter: the struct is read as an array of them. */
_Static_assert(sizeof(struct worker_stats) % sizeof(uint64_t) == 0,
               "struct worker_stats holds only uint64_t counters");

void stats_accumulate(struct worker_stats *sum, const struct worker_stats *one)
{
    uint64_t *to = (uint64_t *)sum;
    const uint64_t *from = (const uint64_t *)one;
    for (size_t i = 0; i < sizeof(*sum) / sizeof(uint64_t); i++)
        to[i] += stat_read(&from[i]);
}
