/*
 * uring_int.h — what the files of a worker's io_uring share, and the rest
 * of pgnear does not see: the ring itself and its limits, the two small
 * steps every request takes (a submission entry, a submission), and the
 * completions uring.c tells the sends (uring_send.c) and the receives
 * (uring_recv.c).  The arrows run one way: uring.c, the ring's life and
 * the loop's side, calls into the other two; they call nothing of it.
 */
#ifndef PGNEAR_PROXY_URING_INT_H
#define PGNEAR_PROXY_URING_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <liburing.h>

#include "proxy/base/list.h"

struct event;
struct uring_recv;
struct uring_send;

/* Free blocks kept: a turn with as many relay reads in flight takes no malloc. */
#define URING_BLOCKS_KEPT 32
/* Free sends kept: as many sockets sending at once take no malloc either. */
#define URING_SENDS_KEPT 256

/* The buffers a receive lands in: as many as sockets may receive in one turn, each this large. */
#define URING_RECV_BUFS     128
#define URING_RECV_BUF_SIZE (8 * 1024)
/* The buffer group of the receives' buffers. */
#define URING_RECV_GROUP 0
/* A request id's low bit: a receive's (a send's address is even). */
#define URING_ID_RECV ((uintptr_t)1)

struct uring {
    struct io_uring ring;
    int efd;               /* signalled by the kernel: work and completions wait */
    struct event *ev;      /* efd, edge-triggered */
    bool deferred;         /* the kernel's work waits for the loop (IORING_SETUP_DEFER_TASKRUN) */
    unsigned queued;       /* prepared, not yet submitted */
    unsigned long submits; /* submissions so far: a send queued before the last one is in */
    struct list later;     /* sends to fill and start at the end of the turn */
    struct list orphans;   /* sends whose owner left while they were in flight */
    struct list recv_orphans; /* receives whose owner left while they were armed */
    struct list starved;      /* receives waiting for a buffer to come back */
    struct list recv_armed;   /* receives armed for an owner, not being stopped (armed_node) */
    /* The receives' buffers, as the kernel takes them (NULL: none yet), and their memory. */
    struct io_uring_buf_ring *bufs;
    uint8_t *buf_mem;
    unsigned long buf_gives; /* buffers given back so far: a stale "out of buffers" is seen */
    void *free_blocks;       /* a stack of blocks, each starting with the next's address */
    unsigned nfree_blocks;
    struct list free_sends; /* sends no socket holds, ready for the next */
    unsigned inflight;   /* sends and receives submitted or queued whose last completion is due */
    bool closing;        /* quiesced: no request starts any more */
    bool recv_always;    /* io_backend = io_uring: receives through the ring whatever the load */
    bool recv_busy;      /* the reads a wake-up make receiving through the ring pay */
    unsigned long reads; /* reads in this window of wake-ups */
    unsigned wakeups;    /* wake-ups in it, up to URING_WEIGH_WAKEUPS */
    int64_t window_ms;   /* when it began (monotonic_ms); 0: with the next wake-up */
};

/* Submits what is queued; false when the kernel takes nothing now (tell completions first). */
static inline bool uring_submit(struct uring *u)
{
    /* Deferred work runs in the same call: receives ready now are told this turn. */
    int rc = u->deferred ? io_uring_submit_and_get_events(&u->ring) : io_uring_submit(&u->ring);
    if (rc < 0)
        return false;
    u->submits++;
    u->queued = (unsigned)rc >= u->queued ? 0 : u->queued - (unsigned)rc;
    return true;
}

/*
 * A submission entry for a request; when the ring is full, what it holds
 * is submitted first.  NULL when the kernel takes nothing now.
 */
static inline struct io_uring_sqe *uring_sqe(struct uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL && uring_submit(u))
        sqe = io_uring_get_sqe(&u->ring);
    return sqe;
}

/* ---- uring_send.c */

/* A send's completion: told to its owner, or an orphan's freed. */
void uring_send_complete(struct uring *u, struct uring_send *op, int res);
/* Fills and starts a later send at the turn's end; alone: nothing else is for the ring. */
void uring_start_one(struct uring_send *op, bool alone);

/* ---- uring_recv.c */

/* A receive's completion (flags: the completion's, with its buffer's id). */
void uring_recv_complete(struct uring *u, struct uring_recv *op, int res, unsigned flags);

#endif
