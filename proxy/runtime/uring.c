/*
 * uring.c — a worker's io_uring: the sends of plain sockets queued during
 * a loop turn and submitted in one io_uring_enter at its end, and the
 * receives of logged-in plain sockets.  A turn with one send and nothing
 * else for the ring makes it with one sendmsg instead (the same system
 * call count, none of the ring's bookkeeping), unless the socket has no
 * room.
 *
 * A receive is multishot: armed once, it tells what the peer sends as it
 * comes, in buffers the ring provides (a ring of them registered with the
 * kernel, each given back once its bytes are told).  Where the kernel
 * can (6.1 on), the ring's work waits for the loop to ask for it
 * (IORING_SETUP_DEFER_TASKRUN): a receive interrupts no epoll_wait, and
 * one io_uring_enter runs every receive that became ready since the last.
 * The loop learns of such work, and of completions posted later (a send
 * that waited for room), through an eventfd the kernel signals, watched
 * edge-triggered and never read.  Without deferred work, reads stay with
 * epoll.
 *
 * A request names its struct uring_send or struct uring_recv (the low bit
 * of its id tells which), which a socket holds only while it has bytes to
 * send or reads; an owner that goes away while a request is in flight
 * leaves it here as an orphan until the kernel is done with it (after a
 * cancel: the socket is being closed).
 *
 * This file holds the ring's life (made, begun, quiesced, freed), the
 * loop's side (the turn's submissions, the eventfd, the completions told
 * to their sends and receives) and the weighing of where sockets read;
 * the sends are uring_send.c's, the receives uring_recv.c's, and what the
 * three share is in uring_int.h.
 */
#include "proxy/runtime/uring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <liburing.h>

#include "protocol/clock.h"
#include "proxy/runtime/uring_int.h"

/* The submission ring's entries. */
#define URING_ENTRIES 256
/* Room for the completions of many slow readers' sends at once (the kernel keeps any overflow). */
#define URING_CQ_ENTRIES 4096
/* Rounds of submit-and-tell a turn runs before leaving the rest to the next (bounded work). */
#define URING_TURN_ROUNDS 16

/*
 * Whether sockets receive through the ring is weighed by the reads of a
 * wake-up of the loop (from one wait to the next), over windows of
 * URING_WEIGH_WAKEUPS wake-ups.  A wake-up that carries one socket's
 * bytes (a client or two, each waiting on its last answer) costs more
 * through the ring than on the socket's readiness: the eventfd's signal
 * and then an io_uring_enter to run the receive, where epoll would have
 * woken the loop on the socket itself and a recv read it; from a few
 * reads a wake-up on, one io_uring_enter for all of them pays (measured on
 * one worker, session relay: one client costs 9 % more CPU a transaction
 * through the ring, two about the same, four and eight 10-20 % less).
 *
 * The ring's loop counts more reads a wake-up than readiness's at the
 * same load, since it takes bytes that came while it ran without a wait
 * (uring_sleep), where each is a wake-up of epoll's: one client reads 1.0
 * a wake-up on readiness and 1.3 through the ring, two 1.45 and 2.0.  So
 * each side has its own threshold: on readiness above 1.25 moves to the
 * ring, through the ring below 1.6 moves back.  A window starts after the
 * last, so it counts one side (but for sockets still moving, each as it
 * next reads), and a load between the two moves once a window at most.
 *
 * A window also ends after URING_WEIGH_MS, weighed by the wake-ups it
 * had: a worker that went quiet (a crowd built, then idle) wakes too
 * seldom to fill one for minutes, and its idle clients' receives stay
 * armed in the ring until it is weighed quiet (uring_recv_quiet).
 */
#define URING_WEIGH_WAKEUPS 1024
#define URING_WEIGH_MS      1000

/* A request's id is its op's address, a receive's with the low bit set; a cancel's is 0. */
static void uring_complete(struct uring *u, uint64_t id, int res, unsigned flags)
{
    if (id == 0)
        return;
    if (id & URING_ID_RECV)
        uring_recv_complete(u, (struct uring_recv *)(uintptr_t)(id & ~(uint64_t)URING_ID_RECV), res,
                            flags);
    else
        uring_send_complete(u, (struct uring_send *)(uintptr_t)id, res);
}

/*
 * Tells every completion waiting in the ring, oldest first.  Each is read
 * from the ring itself: liburing's peek is asked only while one is there,
 * or while the kernel keeps some back (an overflow, which its slow path
 * flushes), so that the last look costs no call into it.
 */
static void uring_reap(struct uring *u)
{
    struct io_uring_cqe *cqe;
    while ((io_uring_cq_ready(&u->ring) > 0 || io_uring_cq_has_overflow(&u->ring)) &&
           io_uring_peek_cqe(&u->ring, &cqe) == 0) {
        uint64_t id = io_uring_cqe_get_data64(cqe);
        int res = cqe->res;
        unsigned flags = cqe->flags;
        io_uring_cqe_seen(&u->ring, cqe);
        uring_complete(u, id, res, flags);
    }
}

/*
 * Whether the kernel signals the eventfd: a flag of the completion ring,
 * changed with an atomic read-modify-write, whose full barrier orders the
 * change before whatever the caller then reads of the ring (uring_sleep).
 */
static void uring_signal_wanted(struct uring *u, bool want)
{
    if (u->ring.cq.kflags == NULL)
        return; /* before Linux 5.8: always signalled */
    if (want)
        __atomic_fetch_and(u->ring.cq.kflags, ~(unsigned)IORING_CQ_EVENTFD_DISABLED,
                           __ATOMIC_SEQ_CST);
    else
        __atomic_fetch_or(u->ring.cq.kflags, (unsigned)IORING_CQ_EVENTFD_DISABLED,
                          __ATOMIC_RELAXED);
}

/*
 * The kernel signalled: deferred work is run (receives that became
 * ready, sends that found room) and what completed is told.
 */
static void uring_on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct uring *u = arg;
    (void)fd;
    (void)what;
    /* Awake now: what this call posts is taken here, not signalled to the next wait. */
    uring_signal_wanted(u, false);
    if (u->deferred)
        io_uring_get_events(&u->ring);
    uring_reap(u);
}

/*
 * What every send needs (Linux 5.6 on); an older ring would fail each
 * session's first send.  A ring that cannot be asked (io_uring_register
 * refused, as a seccomp filter may) is not taken either.
 */
static bool uring_has_opcodes(struct io_uring *ring, char *err, size_t errcap)
{
    enum { OPS = 256 };
    struct io_uring_probe *probe = calloc(1, sizeof(*probe) + OPS * sizeof(probe->ops[0]));
    if (probe == NULL) {
        snprintf(err, errcap, "out of memory");
        return false;
    }
    int rc = io_uring_register_probe(ring, probe, OPS);
    if (rc < 0) {
        snprintf(err, errcap, "could not probe the kernel's io_uring operations: %s",
                 strerror(-rc));
        free(probe);
        return false;
    }
    bool ok = io_uring_opcode_supported(probe, IORING_OP_SEND) &&
              io_uring_opcode_supported(probe, IORING_OP_SENDMSG) &&
              io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL);
    free(probe);
    if (!ok)
        snprintf(err, errcap, "the kernel's io_uring lacks send, sendmsg or cancel");
    return ok;
}

/*
 * The ring, its work deferred to the loop where the kernel can (6.1 on),
 * and taking requests only from the thread that uring_begin runs on;
 * else as older kernels make it.  <0: -errno.
 */
static int uring_setup(struct uring *u)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_R_DISABLED;
    p.cq_entries = URING_CQ_ENTRIES;
    int rc = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
    if (rc == 0) {
        u->deferred = true;
        return 0;
    }
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = URING_CQ_ENTRIES;
    return io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
}

struct uring *uring_new(struct event_base *base, char *err, size_t errcap)
{
    struct uring *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    u->efd = -1;
    int rc = uring_setup(u);
    if (rc < 0) {
        snprintf(err, errcap, "io_uring_setup: %s", strerror(-rc));
        free(u);
        return NULL;
    }
    list_init(&u->later);
    list_init(&u->orphans);
    list_init(&u->recv_orphans);
    list_init(&u->starved);
    list_init(&u->recv_armed);
    list_init(&u->free_sends);
    if (!uring_has_opcodes(&u->ring, err, errcap)) {
        uring_free(u);
        return NULL;
    }
    u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (u->efd < 0 || (rc = io_uring_register_eventfd(&u->ring, u->efd)) < 0) {
        snprintf(err, errcap, "could not register the io_uring's eventfd: %s",
                 strerror(u->efd < 0 ? errno : -rc));
        uring_free(u);
        return NULL;
    }
    /* Edge-triggered: each signal wakes the loop once, the counter never read. */
    u->ev = event_new(base, u->efd, EV_READ | EV_PERSIST | EV_ET, uring_on_ready, u);
    if (u->ev == NULL || event_add(u->ev, NULL) != 0) {
        snprintf(err, errcap, "could not watch the io_uring");
        uring_free(u);
        return NULL;
    }
    return u;
}

int uring_begin(struct uring *u)
{
    if (!u->deferred)
        return 0; /* made enabled: nothing to do */
    /* liburing 2.3 declares io_uring_enable_rings without exporting it: the system call. */
    long rc =
        syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
    return rc != 0 ? -errno : 0;
}

bool uring_can_recv(const struct uring *u)
{
    return u->deferred;
}

void uring_receive_always(struct uring *u, bool always)
{
    u->recv_always = always;
}

bool uring_recv_wanted(const struct uring *u)
{
    return u->deferred && (u->recv_always || u->recv_busy);
}

void uring_count_read(struct uring *u)
{
    u->reads++;
}

bool uring_weigh_wakeup(struct uring *u, double *avg)
{
    int64_t now = monotonic_ms();
    if (u->window_ms == 0)
        u->window_ms = now;
    if (++u->wakeups < URING_WEIGH_WAKEUPS && now - u->window_ms < URING_WEIGH_MS)
        return false;
    unsigned long reads = u->reads, wakeups = u->wakeups;
    u->reads = 0;
    u->wakeups = 0;
    u->window_ms = now;
    *avg = (double)reads / (double)wakeups;
    /* Through the ring below 1.6 reads a wake-up moves back; on readiness above 1.25 moves. */
    bool busy = u->recv_busy ? reads * 5 >= wakeups * 8 : reads * 4 > wakeups * 5;
    if (busy == u->recv_busy)
        return false;
    u->recv_busy = busy;
    return !u->recv_always && u->deferred;
}

void uring_free(struct uring *u)
{
    if (u == NULL)
        return;
    if (u->ev != NULL)
        event_free(u->ev);
    /* Exiting the ring cancels what is in flight and waits for it: the orphans are free to go. */
    io_uring_queue_exit(&u->ring);
    if (u->efd >= 0)
        close(u->efd);
    struct list *lists[2] = {&u->orphans, &u->free_sends};
    for (int i = 0; i < 2; i++) {
        struct list_node *pos, *tmp;
        list_for_each_safe(pos, tmp, lists[i])
        {
            struct uring_send *op = list_entry(pos, struct uring_send, node);
            free(op->block);
            evbuffer_free(op->buf);
            free(op);
        }
    }
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &u->recv_orphans)
    {
        free(list_entry(pos, struct uring_recv, node));
    }
    if (u->bufs != NULL)
        munmap(u->bufs, URING_RECV_BUFS * sizeof(struct io_uring_buf));
    if (u->buf_mem != NULL)
        munmap(u->buf_mem, (size_t)URING_RECV_BUFS * URING_RECV_BUF_SIZE);
    while (u->free_blocks != NULL) {
        void *b = u->free_blocks;
        memcpy(&u->free_blocks, b, sizeof(void *));
        free(b);
    }
    free(u);
}

size_t uring_orphans(const struct uring *u)
{
    return u->orphans.count + u->recv_orphans.count;
}

/* The kernel holds work for the loop to run (IORING_SQ_TASKRUN: set with the first of it). */
static bool uring_work_waits(const struct uring *u)
{
    return u->deferred &&
           (__atomic_load_n(u->ring.sq.kflags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN);
}

bool uring_has_queued(const struct uring *u)
{
    return u->later.count > 0 || u->queued > 0 || io_uring_cq_ready(&u->ring) > 0 ||
           uring_work_waits(u);
}

/*
 * The kernel signals the eventfd only while the loop sleeps: a signal
 * for work or a completion the awake loop takes itself (its own
 * submissions' among them) would wake the next wait for nothing.  The
 * signal is wanted first and the ring looked at after, so that what came
 * in between is seen either way.
 */
bool uring_sleep(struct uring *u)
{
    if (uring_has_queued(u))
        return false;
    uring_signal_wanted(u, true);
    if (io_uring_cq_ready(&u->ring) == 0 && !uring_work_waits(u))
        return true;
    uring_signal_wanted(u, false);
    return false;
}

void uring_awake(struct uring *u)
{
    uring_signal_wanted(u, false);
}

void uring_turn(struct uring *u)
{
    for (int round = 0; round < URING_TURN_ROUNDS; round++) {
        bool alone = u->later.count == 1 && u->queued == 0;
        while (u->later.count > 0)
            uring_start_one(list_entry(u->later.head.next, struct uring_send, node), alone);
        if (u->queued > 0)
            uring_submit(u);
        else if (uring_work_waits(u))
            io_uring_get_events(&u->ring);
        if (io_uring_cq_ready(&u->ring) == 0)
            break;
        uring_reap(u);
    }
}

/*
 * Why on the ring's own thread: with deferred work (IORING_SETUP_
 * DEFER_TASKRUN) only that thread runs the ends of cancelled requests.
 * Left in flight when it exits, they are the kernel's to end, on a task
 * that can no longer run them: on some kernels the exit of the process
 * then waits on them for ever, SIGKILL included (a pgnear that served
 * thousands of sessions through the ring did not stop).
 */
unsigned uring_quiesce(struct uring *u, int timeout_ms)
{
    u->closing = true;
    struct io_uring_sqe *sqe = uring_sqe(u);
    if (sqe != NULL) {
        io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
        io_uring_sqe_set_data64(sqe, 0);
        u->queued++;
    }
    int64_t deadline = monotonic_us() + (int64_t)timeout_ms * 1000;
    while ((u->inflight > 0 || u->queued > 0 || uring_work_waits(u)) && monotonic_us() < deadline) {
        struct __kernel_timespec ts = {0, 20 * 1000 * 1000};
        struct io_uring_cqe *cqe;
        int rc = io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
        if (rc >= 0 || rc == -ETIME)
            u->queued = 0;
        uring_reap(u);
    }
    return u->inflight;
}
