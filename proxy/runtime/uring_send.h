/*
 * uring_send.h — the sends of a worker's io_uring (uring_send.c): one
 * socket's send at a time, from a block a relay read landed in (no copy)
 * or from a buffer, queued during a loop turn and started at its end, and
 * the ring's caches of idle sends and of blocks.  uring.h is the ring's
 * own, and includes this.
 */
#ifndef PGNEAR_PROXY_URING_SEND_H
#define PGNEAR_PROXY_URING_SEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "proxy/base/list.h"

struct evbuffer;
struct uring;
struct uring_send;

/* Told when the send completes: the bytes the kernel took, or -errno. */
typedef void (*uring_send_done)(struct uring_send *op, int res);
/*
 * Puts the owner's queued bytes into op->buf for a send asked for with
 * uring_send_later, at the end of the loop turn, when no caller holds
 * the owner's buffers; false: nothing to send.
 */
typedef bool (*uring_send_fill)(struct uring_send *op);

/* The most pieces of a buffer one send takes. */
#define URING_SEND_IOV 8
/* A block's size: a relay read's most (RELAY_BLOCK_SIZE). */
#define URING_BLOCK_SIZE (64 * 1024)

/*
 * One socket's send, at most one at a time: the bytes go from a block of
 * the ring's (block_len of them from block_off, when block_len > 0: a
 * read that landed there, sent without a copy) or else from the front of
 * buf; nobody touches either until the completion has been told (the
 * owner queues what comes meanwhile elsewhere).
 */
struct uring_send {
    struct uring *ring;
    struct evbuffer *buf;
    uint8_t *block; /* URING_BLOCK_SIZE bytes from uring_block_take; NULL: none */
    uint32_t block_off, block_len;
    uring_send_done done; /* NULL: orphaned, freed when it completes */
    uring_send_fill fill;
    void *owner;
    int fd;
    bool busy;               /* queued or in the kernel, its completion not yet told */
    bool later;              /* to be filled and started at the turn's end (on the ring's list) */
    unsigned long queued_at; /* the ring's count of submissions when it was queued */
    struct list_node node;   /* on the ring's list of later sends, or of orphans */
    struct msghdr msg;
    struct iovec iov[URING_SEND_IOV];
};

/*
 * A send for fd, filled through fill and told through done, from the
 * ring's cache of idle ones: a socket holds one only while it has bytes
 * to send (idle sessions hold none).  NULL when out of memory.
 */
struct uring_send *uring_send_get(struct uring *u, int fd, uring_send_done done,
                                  uring_send_fill fill, void *owner);
/*
 * The owner has bytes queued: at the end of the loop turn op is filled
 * and started, once for all the bytes the turn queued (a busy op is
 * filled when its send completes instead: its done starts the next).
 */
void uring_send_later(struct uring_send *op);
/*
 * A block for a read that a send will own (op->block), from the ring's
 * cache of them, which keeps what the busiest turn needed (up to a cap);
 * NULL when out of memory.
 */
uint8_t *uring_block_take(struct uring *u);
void uring_block_give(struct uring *u, uint8_t *block);
/*
 * Queues a send of op's block bytes, else of what op->buf holds; it is submitted at the end of the
 * loop turn (uring_turn).  0, or -1 when the ring has no room even after
 * submitting what it holds (the caller sends otherwise).
 */
int uring_send_start(struct uring_send *op);
/*
 * The owner is done with op: back in the cache now when idle (what its
 * buffer holds dropped), else when its request ends, which is cancelled
 * (the owner is closing the socket).
 */
void uring_send_release(struct uring_send *op);

#endif
