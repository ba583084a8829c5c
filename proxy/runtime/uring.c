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
 */
#include "proxy/runtime/uring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <liburing.h>

#include "protocol/clock.h"

#define URING_ENTRIES 256
/* Room for the completions of many slow readers' sends at once (the kernel keeps any overflow). */
#define URING_CQ_ENTRIES 4096
/* Rounds of submit-and-tell a turn runs before leaving the rest to the next (bounded work). */
#define URING_TURN_ROUNDS 16
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
 */
#define URING_WEIGH_WAKEUPS 1024
#define URING_READS_QUIET   (URING_WEIGH_WAKEUPS * 8 / 5) /* 1.6 a wake-up, through the ring */
#define URING_READS_BUSY    (URING_WEIGH_WAKEUPS * 5 / 4) /* 1.25 a wake-up, on readiness */

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
};

uint8_t *uring_block_take(struct uring *u)
{
    void *b = u->free_blocks;
    if (b == NULL)
        return malloc(URING_BLOCK_SIZE);
    memcpy(&u->free_blocks, b, sizeof(void *));
    u->nfree_blocks--;
    return b;
}

void uring_block_give(struct uring *u, uint8_t *block)
{
    if (block == NULL)
        return;
    if (u->nfree_blocks >= URING_BLOCKS_KEPT) {
        free(block);
        return;
    }
    memcpy(block, &u->free_blocks, sizeof(void *));
    u->free_blocks = block;
    u->nfree_blocks++;
}

/*
 * A send its owner let go of, idle: back in the cache, empty, its block
 * given back (freed beyond the cache's cap).
 */
static void uring_send_free(struct uring *u, struct uring_send *op)
{
    uring_block_give(u, op->block);
    op->block = NULL;
    op->block_off = op->block_len = 0;
    op->done = NULL;
    op->owner = NULL;
    if (u->free_sends.count >= URING_SENDS_KEPT) {
        evbuffer_free(op->buf);
        free(op);
        return;
    }
    size_t left = evbuffer_get_length(op->buf);
    if (left > 0)
        evbuffer_drain(op->buf, left);
    list_append(&u->free_sends, &op->node);
}

static void uring_recv_unstarve(struct uring_recv *op)
{
    if (!op->starved)
        return;
    list_remove(&op->ring->starved, &op->node);
    op->starved = false;
    op->armed = false;
}

/*
 * A buffer back: the receives the kernel ended for want of one are armed
 * again (those that find none wait again, for the next: nothing spins).
 */
void uring_buf_give(struct uring *u, unsigned bid)
{
    io_uring_buf_ring_add(u->bufs, u->buf_mem + (size_t)bid * URING_RECV_BUF_SIZE,
                          URING_RECV_BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(URING_RECV_BUFS), 0);
    io_uring_buf_ring_advance(u->bufs, 1);
    u->buf_gives++;
    while (u->starved.count > 0) {
        struct uring_recv *op = list_entry(u->starved.head.next, struct uring_recv, node);
        uring_recv_unstarve(op);
        if (uring_recv_arm(op) != 0) {
            /* No room in the ring even after a submission: starved till the next give. */
            op->armed = op->starved = true;
            list_append(&u->starved, &op->node);
            break;
        }
    }
}

static void uring_send_complete(struct uring *u, struct uring_send *op, int res)
{
    u->inflight--;
    op->busy = false;
    if (op->done != NULL) {
        op->done(op, res);
        return;
    }
    list_remove(&u->orphans, &op->node);
    uring_send_free(u, op);
}

/*
 * A receive's completion: its bytes told (the buffer given back after,
 * unless the owner keeps it), the end or a failure told, and the receive
 * armed again where the kernel ended it while its owner still reads.
 */
static void uring_recv_complete(struct uring *u, struct uring_recv *op, int res, unsigned flags)
{
    const uint8_t *p = NULL;
    unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
    if (flags & IORING_CQE_F_BUFFER)
        p = u->buf_mem + (size_t)bid * URING_RECV_BUF_SIZE;
    if (!(flags & IORING_CQE_F_MORE)) {
        /*
         * Its last: armed anew when armed again while a cancel ended it;
         * out of buffers, as the next comes back (it counts as armed till).
         */
        bool again = op->rearm && (res > 0 || res == -ECANCELED || res == -ENOBUFS);
        bool starve = res == -ENOBUFS && !op->stopping;
        /*
         * Out of buffers, but one came back since it was armed: that
         * buffer's give found it in flight, not starved, and armed
         * nothing; waiting for the next give could be waiting for ever
         * (every buffer back, its peer's bytes or end never told).
         */
        if (starve && op->gives != u->buf_gives && op->done != NULL) {
            starve = false;
            again = true;
        }
        op->armed = op->stopping = op->rearm = false;
        u->inflight--;
        if (op->done == NULL) {
            list_remove(&u->recv_orphans, &op->node);
            free(op);
            op = NULL;
        } else if (starve) {
            op->armed = op->starved = true;
            list_append(&u->starved, &op->node);
        } else if (again) {
            uring_recv_arm(op);
        }
    }
    if (res > 0)
        u->reads++;
    bool kept = false;
    /*
     * A stopped receive's end is told too, so that its owner may read the
     * socket itself now (a starved receive is still armed: not yet).
     */
    if (op != NULL && op->done != NULL && res != -ENOBUFS && (res != -ECANCELED || !op->armed))
        kept = op->done(op, p, res, bid); /* may stop or release op */
    if (p != NULL && !kept)
        uring_buf_give(u, bid);
}

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

/* Submits what is queued; false when the kernel takes nothing now (tell completions first). */
static bool uring_submit(struct uring *u)
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
    if (++u->wakeups < URING_WEIGH_WAKEUPS)
        return false;
    unsigned long reads = u->reads;
    u->reads = 0;
    u->wakeups = 0;
    *avg = (double)reads / URING_WEIGH_WAKEUPS;
    bool busy = u->recv_busy ? reads >= URING_READS_QUIET : reads > URING_READS_BUSY;
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

/*
 * The receives' buffers, made with the first receive: memory the kernel
 * fills only as bytes come (untouched pages cost nothing).  False when
 * out of memory or refused.
 */
static bool uring_recv_buffers(struct uring *u)
{
    if (u->bufs != NULL)
        return true;
    size_t ring_len = URING_RECV_BUFS * sizeof(struct io_uring_buf);
    size_t mem_len = (size_t)URING_RECV_BUFS * URING_RECV_BUF_SIZE;
    void *ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    void *mem = mmap(NULL, mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)ring,
                                   .ring_entries = URING_RECV_BUFS,
                                   .bgid = URING_RECV_GROUP};
    if (ring == MAP_FAILED || mem == MAP_FAILED ||
        io_uring_register_buf_ring(&u->ring, &reg, 0) != 0) {
        if (ring != MAP_FAILED)
            munmap(ring, ring_len);
        if (mem != MAP_FAILED)
            munmap(mem, mem_len);
        return false;
    }
    u->bufs = ring;
    u->buf_mem = mem;
    io_uring_buf_ring_init(u->bufs);
    for (unsigned bid = 0; bid < URING_RECV_BUFS; bid++)
        uring_buf_give(u, bid);
    return true;
}

struct uring_recv *uring_recv_new(struct uring *u, int fd, uring_recv_done done, void *owner)
{
    if (!u->deferred || !uring_recv_buffers(u))
        return NULL;
    struct uring_recv *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return NULL;
    op->ring = u;
    op->fd = fd;
    op->done = done;
    op->owner = owner;
    return op;
}

struct uring_send *uring_send_get(struct uring *u, int fd, uring_send_done done,
                                  uring_send_fill fill, void *owner)
{
    struct uring_send *op;
    if (u->free_sends.count > 0) {
        op = list_entry(u->free_sends.head.next, struct uring_send, node);
        list_remove(&u->free_sends, &op->node);
    } else {
        op = calloc(1, sizeof(*op));
        if (op == NULL)
            return NULL;
        op->buf = evbuffer_new();
        if (op->buf == NULL) {
            free(op);
            return NULL;
        }
    }
    op->ring = u;
    op->fd = fd;
    op->done = done;
    op->fill = fill;
    op->owner = owner;
    return op;
}

static struct io_uring_sqe *uring_sqe(struct uring *u)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
    if (sqe == NULL && uring_submit(u))
        sqe = io_uring_get_sqe(&u->ring);
    return sqe;
}

int uring_recv_arm(struct uring_recv *op)
{
    if (op->armed) {
        op->rearm = op->stopping;
        return 0;
    }
    struct uring *u = op->ring;
    struct io_uring_sqe *sqe = u->closing ? NULL : uring_sqe(u);
    if (sqe == NULL)
        return -1;
    io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = URING_RECV_GROUP;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | URING_ID_RECV);
    op->gives = u->buf_gives;
    op->armed = true;
    op->stopping = false;
    u->queued++;
    u->inflight++;
    return 0;
}

void uring_recv_stop(struct uring_recv *op)
{
    op->rearm = false;
    uring_recv_unstarve(op);
    if (!op->armed || op->stopping)
        return;
    struct uring *u = op->ring;
    struct io_uring_sqe *sqe = uring_sqe(u);
    if (sqe == NULL)
        return; /* it stays armed: what comes is told, and stops it then */
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | URING_ID_RECV, 0);
    io_uring_sqe_set_data64(sqe, 0);
    op->stopping = true;
    u->queued++;
}

void uring_recv_release(struct uring_recv *op)
{
    if (op == NULL)
        return;
    op->done = NULL;
    op->owner = NULL;
    uring_recv_unstarve(op);
    if (!op->armed) {
        free(op);
        return;
    }
    struct uring *u = op->ring;
    uring_recv_stop(op);
    list_append(&u->recv_orphans, &op->node);
    /* The socket closes next: the cancel goes while its descriptor still names it. */
    uring_submit(u);
}

/* The pieces of what op sends now, in op->iov: its block's bytes, or its buffer's first chunks. */
static int uring_send_iov(struct uring_send *op)
{
    if (op->block_len > 0) {
        op->iov[0].iov_base = op->block + op->block_off;
        op->iov[0].iov_len = op->block_len;
        return 1;
    }
    int n = evbuffer_peek(op->buf, -1, NULL, op->iov, URING_SEND_IOV);
    return n > URING_SEND_IOV ? URING_SEND_IOV : n;
}

int uring_send_start(struct uring_send *op)
{
    struct uring *u = op->ring;
    struct io_uring_sqe *sqe = u->closing ? NULL : uring_sqe(u);
    if (sqe == NULL)
        return -1;
    int n = uring_send_iov(op);
    /* One piece (the usual: a reply, a query) needs no message header. */
    if (n == 1) {
        io_uring_prep_send(sqe, op->fd, op->iov[0].iov_base, op->iov[0].iov_len, MSG_NOSIGNAL);
    } else {
        memset(&op->msg, 0, sizeof(op->msg));
        op->msg.msg_iov = op->iov;
        op->msg.msg_iovlen = (size_t)n;
        io_uring_prep_sendmsg(sqe, op->fd, &op->msg, MSG_NOSIGNAL);
    }
    io_uring_sqe_set_data(sqe, op);
    op->busy = true;
    op->queued_at = u->submits;
    u->queued++;
    u->inflight++;
    return 0;
}

void uring_send_later(struct uring_send *op)
{
    if (op->later || op->busy)
        return;
    op->later = true;
    list_append(&op->ring->later, &op->node);
}

/*
 * A turn's only send, with nothing else for the ring to carry: one
 * sendmsg does what io_uring_enter would do for it (the kernel's send,
 * run at once), without the submission's and the completion's work, and
 * its result is told as the completion would tell it.  False: the socket
 * has no room, the ring is to wait for it.
 */
static bool uring_send_now(struct uring_send *op)
{
    struct msghdr msg = {.msg_iov = op->iov, .msg_iovlen = (size_t)uring_send_iov(op)};
    ssize_t n = sendmsg(op->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return false;
    op->done(op, n >= 0 ? (int)n : -errno);
    return true;
}

/*
 * Fills and starts a later send, alone with sendmsg when nothing else is
 * for the ring (uring_send_now); a ring with no room fails it (its owner
 * is told).
 */
static void uring_start_one(struct uring_send *op, bool alone)
{
    list_remove(&op->ring->later, &op->node);
    op->later = false;
    if (op->busy || !op->fill(op))
        return;
    if (alone && op->done != NULL && uring_send_now(op))
        return;
    if (uring_send_start(op) != 0 && op->done != NULL)
        op->done(op, -EAGAIN);
}

void uring_send_release(struct uring_send *op)
{
    if (op == NULL)
        return;
    struct uring *u = op->ring;
    /*
     * What the owner queued this turn goes as it would have (a last
     * message before a close); the owner hears of nothing more.
     */
    op->done = NULL;
    if (op->later)
        uring_start_one(op, false);
    if (!op->busy) {
        uring_send_free(u, op);
        return;
    }
    /*
     * The socket is closed after this: a send still queued is submitted
     * now, while its descriptor names it (a new socket could take the
     * number), and what it cannot send at once is cancelled, as unsent
     * bytes are dropped at a close.
     */
    if (op->queued_at == u->submits)
        uring_submit(u);
    op->owner = NULL;
    list_append(&u->orphans, &op->node);
    struct io_uring_sqe *sqe = uring_sqe(u);
    if (sqe != NULL) {
        io_uring_prep_cancel(sqe, op, 0);
        io_uring_sqe_set_data(sqe, NULL);
        u->queued++;
    }
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
