/*
 * buffer_pool.h — a worker's spare evbuffers, lent to the sockets that
 * have bytes to hold and taken back from those that went quiet (an idle
 * client between transactions: session/endpoint.h's endpoint_park), and
 * the one empty buffer a quiet socket's input and output point to
 * meanwhile.
 *
 * A crowd of idle clients then holds no buffer at all, where each held
 * two, and the clients that are busy take theirs from the spares without
 * a malloc a transaction.  The quiet buffer is frozen at both ends: it
 * reads as empty, and whatever adds to it or drains it fails as out of
 * memory would, so a write that forgot to wake its socket is refused,
 * never mixed into another's.
 */
#ifndef PGNEAR_PROXY_BUFFER_POOL_H
#define PGNEAR_PROXY_BUFFER_POOL_H

#include <stdint.h>

struct evbuffer;

/*
 * Spares a worker keeps: enough for the clients that go quiet and wake
 * within a loop turn or two of each other under a busy crowd; a crowd
 * going idle gives the rest back to malloc.
 */
#define BUFFER_POOL_SPARES 256

struct buffer_pool {
    struct evbuffer *quiet; /* empty and frozen: a quiet socket's in and out */
    struct evbuffer *spare[BUFFER_POOL_SPARES];
    unsigned nspare;
    uint64_t quiet_users; /* sockets whose in and out are quiet now (SHOW LISTS: clients_quiet) */
};

/* 0, or -1 when out of memory (buffer_pool_free cleans up). */
int buffer_pool_init(struct buffer_pool *bp);
void buffer_pool_free(struct buffer_pool *bp);
/* An empty buffer: a spare, else a new one; NULL when out of memory. */
struct evbuffer *buffer_pool_get(struct buffer_pool *bp);
/* An empty buffer back: kept as a spare, or freed when there are enough (or it is not empty). */
void buffer_pool_put(struct buffer_pool *bp, struct evbuffer *b);

#endif
