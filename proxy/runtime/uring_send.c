/*
 * uring_send.c — the sends of a worker's io_uring: a socket's send taken
 * from the ring's cache of idle ones, filled at the end of the loop turn
 * with what its owner queued (or a block a relay read landed in, sent
 * without a copy), and started; a turn's only send goes with one sendmsg
 * instead.  A send whose owner leaves while it is in flight stays an
 * orphan until the kernel is done with it (cancelled: the socket is being
 * closed).  uring.c tells the completions.
 */
#include "proxy/runtime/uring_send.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "proxy/runtime/uring_int.h"

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

void uring_send_complete(struct uring *u, struct uring_send *op, int res)
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
void uring_start_one(struct uring_send *op, bool alone)
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
