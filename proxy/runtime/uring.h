/*
 * uring.h — a worker's io_uring (uring.c): the sends of plain sockets,
 * queued during a loop turn and submitted together at its end, one
 * system call for all of them where each would have made its own; and
 * the multishot receives of logged-in plain sockets, whose completions
 * the kernel keeps for the loop to run when it asks (Linux 6.1's
 * deferred task work): one io_uring_enter runs the receives of every
 * socket that became ready since the last, where each read was a recv
 * of its own.  Before 6.1 a receive's task work interrupted the loop's
 * epoll_wait (one EINTR a wake-up), costing the system call it saved, so
 * reads stay with the event loop there.
 */
#ifndef PGNEAR_PROXY_URING_H
#define PGNEAR_PROXY_URING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "proxy/base/list.h"

struct evbuffer;
struct event_base;
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
};

/*
 * The worker's ring, its completions watched on base; NULL with err
 * when the kernel refuses it (not built in, disabled, a sandbox's
 * filter).  It takes requests only once uring_begin has run on the
 * thread that submits them all (the worker's).
 */
struct uring *uring_new(struct event_base *base, char *err, size_t errcap);
/* The calling thread is the ring's from now on (called once); <0: -errno. */
int uring_begin(struct uring *u);
/*
 * Whether sockets may receive through the ring: its completions wait for
 * the loop to ask for them (Linux 6.1's deferred task work), so that no
 * receive interrupts the loop's epoll_wait; else reads stay with epoll.
 */
bool uring_can_recv(const struct uring *u);
/*
 * io_backend = io_uring: sockets receive through the ring whatever the
 * load (the default weighs it: uring_weigh_wakeup); false weighs it again.
 */
void uring_receive_always(struct uring *u, bool always);
/*
 * Whether a socket that reads should receive through the ring now: it can,
 * and always is asked, or the reads of the loop's recent wake-ups make
 * one io_uring_enter for them pay; otherwise it reads on its readiness.
 */
bool uring_recv_wanted(const struct uring *u);
/* A read of a socket that could receive through the ring, made on its readiness. */
void uring_count_read(struct uring *u);
/*
 * The loop is about to wait: a wake-up counted, and at the end of a window
 * of them the reads a wake-up weighed (*avg), which decide
 * uring_recv_wanted.  True when that changed (the sockets move as they
 * next read); *avg is set only then.
 */
bool uring_weigh_wakeup(struct uring *u, double *avg);
/* A buffer an owner kept (uring_recv_done), its bytes taken: the kernel's again. */
void uring_buf_give(struct uring *u, unsigned bid);
/* A receive for fd, not yet armed; NULL when out of memory. */
struct uring_recv *uring_recv_new(struct uring *u, int fd, uring_recv_done done, void *owner);
/* Arms op (submitted at the end of the turn) unless it is; -1 when the ring has no room. */
int uring_recv_arm(struct uring_recv *op);
/* Cancels an armed op: completions already made may still be told. */
void uring_recv_stop(struct uring_recv *op);
/* The owner is done with op (the socket closes next): told nothing more, freed when the kernel is.
 */
void uring_recv_release(struct uring_recv *op);
/*
 * The worker's loop has ended: everything in flight is cancelled and its
 * end run and told here, on the ring's own thread, within timeout_ms; no
 * request is started after.  Returns the requests still in flight (0:
 * the ring is idle, and whoever frees it later waits on nothing).
 */
unsigned uring_quiesce(struct uring *u, int timeout_ms);
/* Cancels what is in flight and frees everything; NULL is fine. */
void uring_free(struct uring *u);

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
/* Sends and receives whose owner left while they were in flight, not yet ended by the kernel. */
size_t uring_orphans(const struct uring *u);
/* Whether sends are waiting for the end of the loop turn. */
bool uring_has_queued(const struct uring *u);
/*
 * Submits what the turn queued, runs the kernel's deferred work and tells
 * the completions that came, until nothing more is queued: the worker's
 * loop calls it after each turn.
 */
void uring_turn(struct uring *u);
/*
 * The loop is about to wait for its events: true when it may (the
 * kernel's signal is wanted from now on), false when something waits
 * for the ring already (the loop is not to block).
 */
bool uring_sleep(struct uring *u);
/* The loop's wait is over: no signal is wanted while it runs. */
void uring_awake(struct uring *u);

#endif
