/*
 * uring_recv.h — the receives of a worker's io_uring (uring_recv.c): a
 * logged-in plain socket's multishot receive, told what the peer sends in
 * buffers the ring provides.  uring.h is the ring's own, and includes
 * this.
 */
#ifndef PGNEAR_PROXY_URING_RECV_H
#define PGNEAR_PROXY_URING_RECV_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/base/list.h"

struct uring;

/*
 * A socket's multishot receive: what the peer sends is told as it comes,
 * each piece in a buffer of the ring's, which the owner may keep until it
 * has taken the bytes (uring_buf_give), else the ring's again once done
 * returns.
 */
struct uring_recv;
/*
 * res > 0: res bytes at p, in the ring's buffer bid; 0: the peer's end;
 * -ECANCELED: stopped as asked (nothing more comes); another <0: -errno.
 * True: the owner keeps the buffer, to give it back itself.
 */
typedef bool (*uring_recv_done)(struct uring_recv *op, const uint8_t *p, int res, unsigned bid);

struct uring_recv {
    struct uring *ring;
    uring_recv_done done; /* NULL: orphaned, freed when its last completion comes */
    void *owner;
    int fd;
    bool armed;            /* queued or in the kernel: more completions will come */
    bool stopping;         /* a cancel of it is on its way */
    bool rearm;            /* armed again while stopping: armed anew once the cancel ends it */
    bool starved;          /* ended by the kernel out of buffers: armed again as one comes back */
    unsigned long gives;   /* the ring's buffers given back when it was last armed */
    struct list_node node; /* on the ring's list of orphans, or of the starved */
    /* On the ring's list of those armed for an owner and not being stopped (uring_recv_quiet). */
    struct list_node armed_node;
    bool on_armed;
    /*
     * Its owner's: the bytes of the last completion it kept, not yet taken
     * (kept_len of them, in the ring's buffer kept_bid; kept NULL: none),
     * and the failure it met, which its next read tells (0: none).
     */
    const uint8_t *kept;
    size_t kept_len;
    unsigned kept_bid;
    int error;
};

/* Whether op (NULL: none) holds bytes of a completion its owner has not taken yet. */
static inline bool uring_recv_holds(const struct uring_recv *op)
{
    return op != NULL && op->kept != NULL;
}

/* A buffer an owner kept (uring_recv_done), its bytes taken: the kernel's again. */
void uring_buf_give(struct uring *u, unsigned bid);
/* A receive for fd, not yet armed; NULL when out of memory. */
struct uring_recv *uring_recv_new(struct uring *u, int fd, uring_recv_done done, void *owner);
/* Arms op (submitted at the end of the turn) unless it is; -1 when the ring has no room. */
int uring_recv_arm(struct uring_recv *op);
/* Cancels an armed op: completions already made may still be told. */
void uring_recv_stop(struct uring_recv *op);
/*
 * The worker's load no longer pays for the ring: up to max of its armed
 * receives stop (their owners are told, and read on readiness from then
 * on), the oldest armed first; true while more are left.  The idle
 * sockets of a crowd that logged in while the ring paid do not read
 * again to move; a batch a loop turn keeps their cancels and the read
 * events their owners arm from holding the loop up.
 */
bool uring_recv_quiet(struct uring *u, unsigned max);
/*
 * Whether a completion of op's, bytes or an end, waits in the ring to be
 * told as the turn's reaping goes on: the kernel has taken them from the
 * socket, and op's owner has not yet heard of them.
 */
bool uring_recv_completion_waits(const struct uring_recv *op);
/* The owner is done with op (the socket closes next): told nothing more, freed when the kernel is.
 */
void uring_recv_release(struct uring_recv *op);

#endif
