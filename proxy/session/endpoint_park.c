/*
 * endpoint_park.c — an idle endpoint lets go of what it can make again:
 * its buffers go back to its worker (runtime/buffer_pool.h), its
 * stream's frame state (a WebSocket's), and its write event, which a
 * client's first flush may have made (its login's last messages, sent as
 * it waits to read) and which it may not need again.  A client that
 * sits idle for hours carries none of them; endpoint_wake (endpoint.c)
 * lends it buffers again.  Its ring receive, armed while its worker's load
 * made the ring pay, goes once it no longer does (endpoint_park_rx, and
 * the ring's own uring_recv_quiet for those parked before): an idle
 * client then waits on its socket's readiness, as on a quiet worker.
 */
#include "proxy/session/endpoint.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/runtime/buffer_pool.h"
#include "proxy/runtime/uring.h"
#include "proxy/runtime/worker.h"

/*
 * The write event goes: nothing is left to write, so none waits for room
 * — unless a drain is waited for, or its event is told already (a ring's
 * send that completed), whose callback must still run.  endpoint_wev
 * makes it again as a send next waits.
 */
static void endpoint_let_go_wev(struct endpoint *ep)
{
    if (ep->wev == NULL || ep->drain_wanted ||
        (!ep->wev_armed && event_pending(ep->wev, EV_WRITE, NULL)))
        return;
    event_free(ep->wev);
    ep->wev = NULL;
    ep->wev_armed = false;
}

/*
 * Its ring receive stops, when one is armed and the worker's load no
 * longer makes the ring pay: let go as its stop is told
 * (endpoint_received), the socket's readiness watched instead; one is made
 * again as a read finds it wanted.
 */
static void endpoint_park_rx(struct endpoint *ep)
{
    if (ep->rx != NULL && ep->rx->armed && !ep->rx->stopping && !uring_recv_wanted(ep->rx->ring))
        uring_recv_stop(ep->rx);
}

bool endpoint_park(struct endpoint *ep)
{
    if (ep->parked || ep->in == NULL || ep->tx != NULL || uring_recv_holds(ep->rx) ||
        ep->rx_unread || ep->writes_held || ep->eof || ep->fwd_remaining != 0 ||
        evbuffer_get_length(ep->in) > 0 || evbuffer_get_length(ep->out) > 0 ||
        stream_has_output(&ep->stream) || stream_has_pending(&ep->stream))
        return false;
    struct buffer_pool *bp = &ep->w->buffers;
    buffer_pool_put(bp, ep->in);
    buffer_pool_put(bp, ep->out);
    ep->in = ep->out = bp->quiet;
    ep->parked = true;
    bp->quiet_users++;
    stream_rest(&ep->stream);
    endpoint_let_go_wev(ep);
    endpoint_park_rx(ep);
    return true;
}
