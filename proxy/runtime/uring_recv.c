/*
 * uring_recv.c — the receives of a worker's io_uring: a logged-in plain
 * socket's multishot receive, armed once and told what the peer sends as
 * it comes, in buffers the ring provides (a ring of them registered with
 * the kernel with the first receive, each given back once its bytes are
 * told).  A receive the kernel ends for want of a buffer waits, starved,
 * for the next to come back; one whose owner leaves while it is armed
 * stays an orphan until its last completion.  uring.c tells the
 * completions.
 */
#include "proxy/runtime/uring_recv.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "proxy/runtime/uring_int.h"

/* op leaves the ring's list of armed receives, if it is on it. */
static void uring_recv_unlist(struct uring_recv *op)
{
    if (!op->on_armed)
        return;
    list_remove(&op->ring->recv_armed, &op->armed_node);
    op->on_armed = false;
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

/*
 * A receive's completion: its bytes told (the buffer given back after,
 * unless the owner keeps it), the end or a failure told, and the receive
 * armed again where the kernel ended it while its owner still reads.
 */
void uring_recv_complete(struct uring *u, struct uring_recv *op, int res, unsigned flags)
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
        uring_recv_unlist(op);
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

bool uring_recv_completion_waits(const struct uring_recv *op)
{
    struct io_uring *ring = &op->ring->ring;
    uint64_t id = (uint64_t)(uintptr_t)op | URING_ID_RECV;
    struct io_uring_cqe *cqe;
    unsigned head;
    io_uring_for_each_cqe(ring, head, cqe)
    {
        if (io_uring_cqe_get_data64(cqe) == id && cqe->res != -ECANCELED)
            return true;
    }
    return false;
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
    if (op->done != NULL && !op->on_armed) {
        list_append(&u->recv_armed, &op->armed_node);
        op->on_armed = true;
    }
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
    uring_recv_unlist(op);
    u->queued++;
}

bool uring_recv_quiet(struct uring *u, unsigned max)
{
    for (unsigned n = 0; n < max && u->recv_armed.count > 0; n++) {
        struct uring_recv *op = list_entry(u->recv_armed.head.next, struct uring_recv, armed_node);
        uring_recv_stop(op);
        uring_recv_unlist(op); /* (out of room, the stop waits for its next completion) */
    }
    return u->recv_armed.count > 0;
}

void uring_recv_release(struct uring_recv *op)
{
    if (op == NULL)
        return;
    op->done = NULL;
    op->owner = NULL;
    uring_recv_unlist(op);
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
