/*
 * uring.c — a worker's io_uring: the sends of plain sockets queued during
 * a loop turn and submitted in one io_uring_enter at its end.  A turn
 * with one send and nothing else for the ring makes it with one sendmsg
 * instead (the same system call count, none of the ring's bookkeeping),
 * unless the socket has no room.
 *
 * A send the socket takes at once completes inside that submission, and
 * uring_turn tells its owner before the loop waits again.  One that waits
 * for room (a slow reader) completes later through the kernel's task
 * work, which wakes the loop's epoll_wait; the ring's descriptor, watched
 * by the loop while a request is in the kernel, then has the completion
 * to tell.
 *
 * A request names its struct uring_send, which a socket holds only while
 * it has bytes to send (the ring keeps the idle ones); an owner that goes
 * away while its send is in flight leaves it here as an orphan until the
 * kernel is done with it (after a cancel: the socket is being closed).
 */
#include "proxy/runtime/uring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <liburing.h>

#define URING_ENTRIES 256
/* Room for the completions of many slow readers' sends at once (the kernel keeps any overflow). */
#define URING_CQ_ENTRIES 4096
/* Rounds of submit-and-tell a turn runs before leaving the rest to the next (bounded work). */
#define URING_TURN_ROUNDS 16
/* Free blocks kept: a turn with as many relay reads in flight takes no malloc. */
#define URING_BLOCKS_KEPT 32
/* Free sends kept: as many sockets sending at once take no malloc either. */
#define URING_SENDS_KEPT 256

struct uring {
    struct io_uring ring;
    struct event *ev;      /* the ring's descriptor: completions that came later */
    bool watched;          /* ev is added: a request is in the kernel */
    unsigned queued;       /* prepared, not yet submitted */
    unsigned inflight;     /* submitted, their completions not yet reaped */
    unsigned long submits; /* submissions so far: a send queued before the last one is in */
    struct list later;     /* sends to fill and start at the end of the turn */
    struct list orphans;   /* sends whose owner left while they were in flight */
    void *free_blocks;     /* a stack of blocks, each starting with the next's address */
    unsigned nfree_blocks;
    struct list free_sends; /* sends no socket holds, ready for the next */
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

/* A struct uring_send's request id is its address; a cancel's is 0 (nothing to tell). */
static void uring_complete(struct uring *u, void *data, int res)
{
    struct uring_send *op = data;
    if (op == NULL)
        return;
    op->busy = false;
    if (op->done != NULL) {
        op->done(op, res);
        return;
    }
    list_remove(&u->orphans, &op->node);
    uring_send_free(u, op);
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
        void *data = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&u->ring, cqe);
        if (u->inflight > 0)
            u->inflight--;
        uring_complete(u, data, res);
    }
}

/*
 * The loop watches the ring's descriptor only while a request is in the
 * kernel (a send that waits for room, a cancel): a completion posted
 * inside the submission, the usual, then wakes no epoll entry.
 */
static void uring_watch(struct uring *u)
{
    bool want = u->inflight > 0;
    if (want == u->watched)
        return;
    if ((want ? event_add(u->ev, NULL) : event_del(u->ev)) == 0)
        u->watched = want;
}

static void uring_on_ready(evutil_socket_t fd, short what, void *arg)
{
    struct uring *u = arg;
    (void)fd;
    (void)what;
    uring_reap(u);
    uring_watch(u);
}

/* Submits what is queued; false when the kernel takes nothing now (tell completions first). */
static bool uring_submit(struct uring *u)
{
    int rc = io_uring_submit(&u->ring);
    if (rc < 0)
        return false;
    u->submits++;
    u->inflight += (unsigned)rc;
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

struct uring *uring_new(struct event_base *base, char *err, size_t errcap)
{
    struct uring *u = calloc(1, sizeof(*u));
    if (u == NULL) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = URING_CQ_ENTRIES;
    int rc = io_uring_queue_init_params(URING_ENTRIES, &u->ring, &p);
    if (rc < 0) {
        snprintf(err, errcap, "io_uring_setup: %s", strerror(-rc));
        free(u);
        return NULL;
    }
    list_init(&u->later);
    list_init(&u->orphans);
    list_init(&u->free_sends);
    if (!uring_has_opcodes(&u->ring, err, errcap)) {
        uring_free(u);
        return NULL;
    }
    u->ev = event_new(base, u->ring.ring_fd, EV_READ | EV_PERSIST, uring_on_ready, u);
    if (u->ev == NULL) {
        snprintf(err, errcap, "could not watch the io_uring");
        uring_free(u);
        return NULL;
    }
    return u;
}

void uring_free(struct uring *u)
{
    if (u == NULL)
        return;
    if (u->ev != NULL)
        event_free(u->ev);
    /* Exiting the ring cancels what is in flight and waits for it: the orphans are free to go. */
    io_uring_queue_exit(&u->ring);
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
    while (u->free_blocks != NULL) {
        void *b = u->free_blocks;
        memcpy(&u->free_blocks, b, sizeof(void *));
        free(b);
    }
    free(u);
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
    struct io_uring_sqe *sqe = uring_sqe(u);
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
    return u->orphans.count;
}

bool uring_has_queued(const struct uring *u)
{
    return u->later.count > 0 || u->queued > 0 || io_uring_cq_ready(&u->ring) > 0;
}

void uring_turn(struct uring *u)
{
    for (int round = 0; round < URING_TURN_ROUNDS; round++) {
        bool alone = u->later.count == 1 && u->queued == 0;
        while (u->later.count > 0)
            uring_start_one(list_entry(u->later.head.next, struct uring_send, node), alone);
        if (u->queued > 0)
            uring_submit(u);
        if (io_uring_cq_ready(&u->ring) == 0)
            break;
        uring_reap(u);
    }
    uring_watch(u);
}
