/*
 * txn_cancel.c — a cancel request for a session while no server runs its
 * statement (txn_cancel.h).
 */
#include "proxy/session/txn_cancel.h"

#include <stdint.h>

#include <event2/buffer.h>

#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/pkt_add.h"
#include "proxy/base/log.h"
#include "proxy/session/near.h"
#include "proxy/session/near_sync.h"
#include "proxy/session/session.h"
#include "proxy/session/timeouts.h"
#include "proxy/session/txn_fetch.h"

/* The bytes of the first request in in, through its Query, Sync or FunctionCall; 0: not whole. */
static size_t txn_cancel_request_len(struct evbuffer *in)
{
    struct frame_walk w;
    char type;
    uint32_t len;
    frame_walk_init(&w, in, 0);
    while (frame_walk_next(&w, &type, &len) && w.at <= w.have)
        if (type == 'Q' || type == 'S' || type == 'F')
            return w.at;
    return 0;
}

/*
 * The answer of the canceled request (n bytes at the head of client.in) to
 * the client: after a standby's own answer to it when it was to run again
 * on a primary.  False: out of memory.
 */
static bool txn_cancel_answer(struct session *s, size_t n)
{
    if (s->near != NULL)
        return near_cancel_unsent(s, n);
    const struct pkt_report *why = timeouts_cancel_report(s); /* query_timeout's, or none */
    bool ok = (why != NULL ? pkt_add_canceled_as(s->client.out, why)
                           : pkt_add_canceled(s->client.out)) == 0;
    evbuffer_drain(s->client.in, n);
    return ok;
}

bool txn_cancel(struct session *s)
{
    /* Its state carried to the connection its request waits for (near_sync.h): no server runs it.
     */
    bool syncing = near_sync_running(s);
    if (s->server_conn != NULL && !syncing) {
        near_on_cancel(s);
        return false;
    }
    size_t n = txn_next_waiting(s) || syncing ? txn_cancel_request_len(s->client.in) : 0;
    if (n == 0)
        return false;
    s->busy++;
    if (!txn_cancel_answer(s, n)) {
        session_close(s, "out of memory");
    } else if (evbuffer_get_length(s->client.in) == 0 && !syncing) {
        /* Nothing else waits for the connection: the client is read again, as between requests. */
        txn_next_stop(s, "the request it was for was canceled");
        endpoint_resume_read(&s->client);
    }
    if (!s->closed)
        endpoint_flush(s, &s->client);
    session_callback_done(s);
    return true;
}
