/*
 * crowd_memory.h — giving back what a crowd of clients held, once it has
 * gone.  Two things kept glibc from returning a crowd's memory to the
 * system (its Rss stayed at 1.4 to 1.5 times what it was before a crowd
 * of 4,000):
 *
 * - libevent makes a small entry (32 bytes) for a descriptor number the
 *   first time an event on it is added, and keeps it until the loop
 *   ends.  Made one by one as a crowd arrives, they lay between the
 *   crowd's sessions, one or two in every page, and held the pages after
 *   the sessions were freed.  crowd_memory_fd makes them ahead, a block
 *   of numbers at a time (CROWD_FD_BLOCK), so that they lie together.
 * - free() returns only the heap's top; pages freed in its middle stay
 *   until malloc_trim.  Once CROWD_TRIM_CLIENTS have left since the most
 *   the worker held, the heap is trimmed CROWD_TRIM_DELAY_MS later (the
 *   rest of a crowd leaving meanwhile), at most once in that time; and
 *   so once a crowd that stays has let go of its ring receives.
 */
#ifndef PGNEAR_PROXY_CROWD_MEMORY_H
#define PGNEAR_PROXY_CROWD_MEMORY_H

#include <stdbool.h>
#include <stddef.h>

struct event;
struct event_base;

/* Descriptor numbers whose libevent entries are made together: 32 KiB of them. */
#define CROWD_FD_BLOCK 1024
/* Clients gone since the most held that make a trim worth its walk of the heap. */
#define CROWD_TRIM_CLIENTS  256
#define CROWD_TRIM_DELAY_MS 500

struct crowd_memory {
    struct event_base *base;
    struct event *trim;   /* the timer of the next trim */
    int fd_entries_end;   /* libevent's entries are made for the numbers below */
    size_t clients, most; /* the worker's clients now, and the most since the last trim */
};

/* 0, or -1 when out of memory (crowd_memory_free cleans up). */
int crowd_memory_init(struct crowd_memory *cm, struct event_base *base);
void crowd_memory_free(struct crowd_memory *cm);
/*
 * A descriptor the worker is about to watch (an accepted client): when
 * it is past the numbers made so far, libevent's entries are made for
 * the block it is in, and for it.
 */
void crowd_memory_fd(struct crowd_memory *cm, int fd);
/* The worker's clients now, after one came or went. */
void crowd_memory_clients(struct crowd_memory *cm, size_t clients);
/*
 * Many allocations of a crowd's went while it stays (the receives its idle
 * clients held, uring_recv_quiet): the heap is trimmed CROWD_TRIM_DELAY_MS
 * later, unless a trim is due already.
 */
void crowd_memory_trim_soon(struct crowd_memory *cm);

#endif
