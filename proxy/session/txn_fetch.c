/*
 * txn_fetch.c — the server connection for a session's next transaction
 * under transaction pooling, one way with four outcomes (txn_fetch_start):
 * a parked one (near_slots.c), an idle one taken at once, one given back
 * while it waits in the pool's queue (pool_wait.h), or one a fetcher
 * (fetch.h) logs in for; and how it is getting it, s->txn_next
 * (txn_next.h), which only this file writes and its predicates read.
 */
#include "proxy/session/txn_fetch.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "proxy/base/log.h"
#include "proxy/session/fetch.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/near.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/near_slots.h"
#include "proxy/session/session_need.h"
#include "protocol/pg_error.h"
#include "routing/need.h"

/* ---- the fetcher: an internal session logging in for the next transaction ---- */

/* What the next transaction needs (session_need.h: TRANSACTION). */
static struct need_spec txn_need(struct session *s)
{
    return session_need_for(s, NEED_AT_TRANSACTION, 0);
}

static void txn_fetch_failed(struct session *s, const char *why)
{
    slog_warn(s, "no server connection for its next transaction: %s", why);
    struct pg_error err;
    pg_error_set(&err, "08006", "pgnear could not get a server connection for the transaction");
    if (why != NULL)
        pg_error_detail(&err, "%s", why);
    session_fail(s, &err);
}

/*
 * s->txn_next, made as the session sets out to get a connection (how
 * NONE until it is on its way): most sessions, an idle client's above
 * all, are getting none.  NULL when out of memory.
 */
static struct txn_next *txn_next_begin(struct session *s)
{
    if (s->txn_next == NULL)
        s->txn_next = calloc(1, sizeof(*s->txn_next));
    return s->txn_next;
}

/* The session gets no connection now (it has one, or waits for no message). */
static void txn_next_end(struct session *s)
{
    free(s->txn_next);
    s->txn_next = NULL;
}

/* s's fetcher is done (it logged in, failed, or was let go): none gets its connection now. */
static void txn_fetcher_done(struct session *s)
{
    txn_next_end(s);
}

/* The fetcher m logged in: its connection takes the session's waiting message on. */
static void txn_fetch_ready(struct session *m, void *arg)
{
    struct session *s = arg;
    struct server_conn *ns = m->server_conn;
    txn_fetcher_done(s);
    s->busy++;
    session_set_timer(m, 0);
    server_conn_hand_over(ns, m, s);
    fetch_close(m, "its connection went to the session's transaction");
    s->txn->attached(s);
    session_callback_done(s);
}

/* The fetcher m failed: the session ends with m's own error, or with why. */
static void txn_fetch_lost(struct session *m, void *arg, const char *why)
{
    struct session *s = arg;
    if (why == NULL)
        why = "its login failed";
    txn_fetcher_done(s);
    s->busy++;
    /* The fetcher's own error, as its login wrote it for a client it does not have. */
    uint8_t err[2048];
    size_t n = 0;
    struct evbuffer *out = m->client.out;
    if (out != NULL && evbuffer_copyout(out, err, 5) == 5 && err[0] == 'E')
        n = 1 + (size_t)pkt_be32(err + 1);
    if (n > 5 && n <= sizeof(err) && evbuffer_copyout(out, err, n) == (ssize_t)n) {
        slog_warn(s, "no server connection for its next transaction: %s", why);
        session_send_last(s, err, n, why);
    } else {
        txn_fetch_failed(s, why);
    }
    session_callback_done(s);
}

/* The session whose next transaction the fetcher is for: its client waits, told why if long. */
static struct session *txn_fetch_client(void *arg)
{
    return arg;
}

static const struct fetch_ops txn_fetch_ops = {
    .what = "transaction",
    .ready = txn_fetch_ready,
    .lost = txn_fetch_lost,
    .waiting_client = txn_fetch_client,
};

/* The connection taken for the session's next transaction runs it. */
static void txn_took(struct session *s)
{
    s->busy++;
    s->txn->attached(s);
    session_callback_done(s);
}

/*
 * A fetcher for the next transaction of s, whose client has waited since
 * waited_since_us (0), and was told of the wait since told_since_us (0).
 */
static void txn_fetch_by_fetcher(struct session *s, struct fetch_want *want,
                                 int64_t waited_since_us, int64_t told_since_us)
{
    want->waited_since_us = waited_since_us;
    if (txn_next_begin(s) == NULL) {
        txn_fetch_failed(s, "out of memory");
        return;
    }
    s->txn_next->turn.told_since_us = told_since_us;
    /*
     * FETCHER before its login begins: a kept connection's handover may end
     * it at once, s->txn_next freed (fetch_start names the fetcher first).
     */
    s->txn_next->how = TXN_NEXT_FETCHER;
    const char *why = fetch_start(s, want, &txn_fetch_ops, s, &s->txn_next->fetcher);
    if (why != NULL) {
        txn_fetcher_done(s);
        txn_fetch_failed(s, why);
    }
}

/* ---- waiting in the pool's queue for a connection given back, with no fetcher ---- */

static void txn_wait_leave(struct session *s)
{
    if (!txn_next_queued(s))
        return;
    s->txn_next->how = TXN_NEXT_NONE;
    s->w->shared->flow->server_wait_end(s); /* by s->txn_next->spot.region, kept till now */
    txn_next_end(s);
}

/* A waiter goes the fetcher's way after all, its wait so far counted (query_wait_timeout). */
static void txn_wait_to_fetcher(struct session *s)
{
    struct wait_turn turn = s->txn_next->turn;
    struct fetch_want want = {.need = txn_need(s), .region = s->rare->txn_region};
    txn_wait_leave(s);
    s->busy++;
    txn_fetch_by_fetcher(s, &want, turn.since_us, turn.told_since_us);
    session_callback_done(s);
}

void txn_wait_give_up(struct session *s, const struct pg_error *err)
{
    txn_wait_leave(s);
    if (s->phase == PHASE_CLOSING)
        return;
    slog_warn(s, "no server connection for its next transaction: %s", err->message);
    session_fail(s, err);
}

/*
 * s waits for a connection to spot's host to be given back, at the end of
 * the pool's queue, when its pool is full on this worker (pool_txn_wait):
 * false when it should not (a fetcher's way).
 */
static bool txn_wait_join(struct session *s, const struct fetch_spot *spot,
                          const struct need_spec *need)
{
    if (s->near != NULL || spot->host == NULL || txn_next_begin(s) == NULL)
        return false;
    s->txn_next->spot.region = spot->region;
    s->region = spot->region; /* the pool's key */
    if (!s->w->shared->flow->server_wait(s, spot->host, true)) {
        txn_next_end(s);
        return false;
    }
    s->txn_next->how = TXN_NEXT_QUEUED;
    s->txn_next->spot.host = spot->host;
    s->txn_next->need = *need;
    return true;
}

/*
 * Whether waiter s still waits for spot: nothing to look at (recheck
 * false: no slot freed, nothing idle it did not take), or its pool is
 * still full with nothing of it idle.  A pool asked
 * and still full is not asked again for the waiters of the same pool
 * behind s (*full_for), nothing in the walk freeing a slot of it.
 */
static bool txn_wait_still(struct session *s, const struct fetch_spot *spot, bool recheck,
                           struct session **full_for)
{
    if (!recheck)
        return true;
    const struct session *f = *full_for;
    if (f != NULL && f->txn_next != NULL && f->txn_next->spot.host == spot->host &&
        f->txn_next->spot.region == spot->region && strcmp(f->database, s->database) == 0 &&
        strcmp(f->user, s->user) == 0)
        return true;
    if (!s->w->shared->flow->server_wait(s, spot->host, false))
        return false;
    *full_for = s;
    return true;
}

void txn_wait_serve(struct session *s, bool recheck, struct session **full_for)
{
    struct fetch_spot spot = s->txn_next->spot;
    struct fetch_want want = {.need = s->txn_next->need};
    struct server_conn *sc = fetch_take(s, &want, &spot);
    if (sc != NULL) {
        txn_wait_leave(s);
        txn_took(s);
    } else if (spot.host == NULL /* the spot serves it no more */ ||
               !txn_wait_still(s, &s->txn_next->spot, recheck || s->w->idle_servers.count > 0,
                               full_for)) {
        /* The fetcher's way: an idle connection of its pool to close for the slot, room. */
        *full_for = NULL;
        txn_wait_to_fetcher(s);
    }
}

/* The session's next transaction: a parked connection, an idle one, one to wait for, a fetcher. */
void txn_fetch_start(struct session *s)
{
    latency_wait_begin(&s->lat);
    struct fetch_want want = {.need = txn_need(s), .region = s->rare->txn_region};
    struct fetch_spot spot = {NULL, NULL}; /* the route's first region and host, planned */
    if (near_slot_take(s, &want.need))
        return;
    if (fetch_take(s, &want, &spot) != NULL) {
        txn_took(s);
        return;
    }
    if (!txn_wait_join(s, &spot, &want.need))
        txn_fetch_by_fetcher(s, &want, 0, 0);
}

/* ---- stopping it ---- */

void txn_next_stop(struct session *s, const char *why)
{
    struct session *m = s->txn_next != NULL ? s->txn_next->fetcher : NULL;
    txn_wait_leave(s);
    txn_next_end(s);
    if (m != NULL)
        fetch_close(m, why);
}
