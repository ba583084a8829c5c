/*
 * endpoint_look.c — what an endpoint holds and what its peer sent, as
 * others look at it without touching it (endpoint.h): bytes queued, the
 * peer's unread bytes or end, whether the ring receives for it.
 */
#include "proxy/session/endpoint.h"

#include <errno.h>
#include <sys/socket.h>

#include <event2/buffer.h>

#include "proxy/runtime/uring.h"

bool endpoint_peer_spoke(const struct endpoint *ep)
{
    uint8_t b;
    if (evbuffer_get_length(ep->in) > 0 || ep->eof || uring_recv_holds(ep->rx) ||
        (ep->rx != NULL && ep->rx->error != 0))
        return true;
    if (ep->stream.fd < 0)
        return false;
    /*
     * Through the ring's armed receive, bytes come as the loop's turn ends
     * (its work is deferred to this thread), their completions told in the
     * order they came: one may wait in the ring behind the one being told.
     * Bytes that came during this turn are taken at its end, as if they had
     * come just after: no look at the socket, a system call per request.
     */
    if (ep->rx != NULL && ep->rx->armed)
        return uring_recv_completion_waits(ep->rx);
    ssize_t n = recv(ep->stream.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

bool endpoint_ring_receiving(const struct endpoint *ep)
{
    return ep->rx != NULL && ep->rx->armed;
}

size_t endpoint_queued(const struct endpoint *ep)
{
    size_t n = evbuffer_get_length(ep->out);
    return ep->tx != NULL ? n + ep->tx->block_len + evbuffer_get_length(ep->tx->buf) : n;
}
