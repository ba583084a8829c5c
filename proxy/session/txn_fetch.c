/*
 * txn_fetch.c — the server connection for a session's next transaction
 * under transaction pooling: a parked one (txn_slots.c), an idle one taken
 * at once, or one a fetcher (fetch.h) logs in for or waits for.
 */
#include "proxy/session/txn_fetch.h"

#include <string.h>
#include <sys/time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/pkt.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/session/fetch.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/near.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/session_need.h"
#include "proxy/session/txn_slots.h"
#include "routing/need.h"

/* ---- the fetcher: an internal session logging in for the next transaction ---- */

/* What the next transaction needs (session_need.h: TRANSACTION). */
static struct need_spec txn_need(struct session *s)
{
    return session_need_for(s, NEED_AT_TRANSACTION, 0);
}

static void txn_fetch_failed(struct session *s, const char *why)
{
    log_warn(s->id, "no server connection for its next transaction: %s", why);
    struct pg_error err;
    pg_error_set(&err, "08006", "pgnear could not get a server connection for the transaction");
    if (why != NULL)
        pg_error_detail(&err, "%s", why);
    session_fail(s, &err);
}

/* The fetcher m logged in: its connection takes the session's waiting message on. */
static void txn_fetch_ready(struct session *m, void *arg)
{
    struct session *s = arg;
    struct server_conn *ns = m->server_conn;
    s->fetcher = NULL;
    s->busy++;
    session_set_timer(m, 0);
    server_conn_hand_over(ns, m, s);
    fetch_close(m, "its connection went to the session's transaction");
    if (s->near != NULL)
        s->near->conn_gen = 0; /* as at login: the session's startup parameters alone */
    s->txn->attached(s);
    session_callback_done(s);
}

/* The fetcher m failed: the session ends with m's own error, or with why. */
static void txn_fetch_lost(struct session *m, void *arg, const char *why)
{
    struct session *s = arg;
    if (why == NULL)
        why = "its login failed";
    s->fetcher = NULL;
    s->busy++;
    /* The fetcher's own error, as its login wrote it for a client it does not have. */
    uint8_t err[2048];
    size_t n = 0;
    struct evbuffer *out = m->client.out;
    if (out != NULL && evbuffer_copyout(out, err, 5) == 5 && err[0] == 'E')
        n = 1 + (size_t)pkt_be32(err + 1);
    if (n > 5 && n <= sizeof(err) && evbuffer_copyout(out, err, n) == (ssize_t)n) {
        log_warn(s->id, "no server connection for its next transaction: %s", why);
        session_send_last(s, err, n, why);
    } else {
        txn_fetch_failed(s, why);
    }
    session_callback_done(s);
}

static const struct fetch_ops txn_fetch_ops = {
    .what = "transaction",
    .ready = txn_fetch_ready,
    .lost = txn_fetch_lost,
};

/* The connection taken for the session's next transaction runs it. */
static void txn_took(struct session *s)
{
    s->busy++;
    if (s->near != NULL)
        s->near->conn_gen = 0; /* as txn_fetch_ready's */
    s->txn->attached(s);
    session_callback_done(s);
}

/* A fetcher for the next transaction of s, whose client has waited since waited_since_us (0). */
static void txn_fetch_by_fetcher(struct session *s, struct fetch_want *want,
                                 int64_t waited_since_us)
{
    want->waited_since_us = waited_since_us;
    const char *why = fetch_start(s, want, &txn_fetch_ops, s, &s->fetcher);
    if (why != NULL)
        txn_fetch_failed(s, why);
}

/* ---- waiting for a connection given back, with no fetcher ---- */

void txn_wait_leave(struct session *s)
{
    if (!s->txn_wait.waiting)
        return;
    s->txn_wait.waiting = false;
    list_remove(&s->w->txn_waiters, &s->txn_wait.node);
    s->w->shared->flow->server_wait_end(s);
}

/* A waiter goes the fetcher's way after all, its wait so far counted (query_wait_timeout). */
static void txn_wait_to_fetcher(struct session *s)
{
    int64_t since = s->txn_wait.since_us;
    struct fetch_want want = {.need = txn_need(s), .region = s->txn_region};
    txn_wait_leave(s);
    s->busy++;
    txn_fetch_by_fetcher(s, &want, since);
    session_callback_done(s);
}

/* The timer at the first waiter's query_wait_timeout: those past it go to a fetcher, which says so.
 */
static void txn_wait_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    int64_t now = monotonic_ms(), next = 0;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->txn_waiters)
    {
        struct session *s = list_entry(pos, struct session, txn_wait.node);
        if (s->txn_wait.until_ms != 0 && s->txn_wait.until_ms <= now)
            txn_wait_to_fetcher(s);
        else if (s->txn_wait.until_ms != 0 && (next == 0 || s->txn_wait.until_ms < next))
            next = s->txn_wait.until_ms;
    }
    if (next != 0) {
        int64_t ms = next - now;
        struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(w->txn_wait_timer, &tv);
    }
}

/*
 * s waits on its worker for a connection to spot's host to be given back,
 * when its pool is full on this worker (pool_txn_wait): false when it
 * should not (a fetcher's way), or the timer could not be made.
 */
static bool txn_wait_join(struct session *s, const struct fetch_spot *spot,
                          const struct need_spec *need)
{
    struct worker *w = s->w;
    if (s->near != NULL || spot->host == NULL)
        return false;
    if (w->txn_wait_timer == NULL &&
        (w->txn_wait_timer = evtimer_new(w->base, txn_wait_timer_cb, w)) == NULL)
        return false;
    s->txn_wait.region = spot->region;
    s->region = spot->region; /* the pool's key */
    if (!w->shared->flow->server_wait(s, spot->host, true))
        return false;
    s->txn_wait.waiting = true;
    s->txn_wait.host = spot->host;
    s->txn_wait.need = *need;
    s->txn_wait.since_us = wall_clock_us();
    int timeout = s->cfg->query_wait_timeout_ms;
    s->txn_wait.until_ms = timeout > 0 ? monotonic_ms() + timeout : 0;
    list_append(&w->txn_waiters, &s->txn_wait.node);
    if (timeout > 0 && !evtimer_pending(w->txn_wait_timer, NULL)) {
        struct timeval tv = {timeout / 1000, (timeout % 1000) * 1000};
        evtimer_add(w->txn_wait_timer, &tv);
    }
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
    if (f != NULL && f->txn_wait.host == spot->host && f->txn_wait.region == spot->region &&
        strcmp(f->database, s->database) == 0 && strcmp(f->user, s->user) == 0)
        return true;
    if (!s->w->shared->flow->server_wait(s, spot->host, false))
        return false;
    *full_for = s;
    return true;
}

void txn_waiters_serve(struct worker *w, bool recheck)
{
    struct session *full_for = NULL;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->txn_waiters)
    {
        if (w->idle_servers.count == 0 && !recheck)
            return;
        struct session *s = list_entry(pos, struct session, txn_wait.node);
        struct fetch_spot spot = {s->txn_wait.region, s->txn_wait.host};
        bool moved;
        struct server_conn *sc = fetch_take_at(s, &spot, &s->txn_wait.need, &moved);
        if (sc != NULL) {
            txn_wait_leave(s);
            txn_took(s);
        } else if (moved ||
                   !txn_wait_still(s, &spot, recheck || w->idle_servers.count > 0, &full_for)) {
            /* The fetcher's way: an idle connection of its pool to close for the slot, room. */
            full_for = NULL;
            txn_wait_to_fetcher(s);
        }
    }
}

void txn_waiters_free(struct worker *w)
{
    if (w->txn_wait_timer != NULL)
        event_free(w->txn_wait_timer);
    w->txn_wait_timer = NULL;
}

/* The session's next transaction: a parked connection, an idle one, one to wait for, a fetcher. */
void txn_fetch_start(struct session *s)
{
    struct fetch_want want = {.need = txn_need(s), .region = s->txn_region};
    struct fetch_spot spot;
    if (txn_slot_take(s, &want.need))
        return;
    if (fetch_take_idle(s, &want, &spot) != NULL) {
        txn_took(s);
        return;
    }
    if (!txn_wait_join(s, &spot, &want.need))
        txn_fetch_by_fetcher(s, &want, 0);
}
