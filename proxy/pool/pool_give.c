/*
 * pool_give.c — a server connection given back by its client: kept for
 * the next one when it can serve it, else closed.
 */
#include "proxy/pool/pool_give.h"

#include <stdint.h>

#include <event2/buffer.h>

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "proxy/pool/pool_idle.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/region.h"

/*
 * The connection owes only the answer to pgnear's own question of its WAL
 * position after a transaction on a primary (fence_ask_after, asked as
 * the client got its ReadyForQuery): the pool reads it before the reset,
 * so that a client that leaves right after a write does not cost its
 * connection.  (The session's other connections are at safe points.)
 */
static bool pool_owes_fence(const struct server_conn *sc, const struct session *s)
{
    return s->fence != NULL && s->fence->after && sc->tx.status == 'I' && sc->tx.outstanding == 1 &&
           sc->cancels_in_flight == 0 && !(sc->tx.flags & (TX_BATCH | TX_COPYING | TX_UNSURE));
}

/* Nothing of the client's is in flight, either way. */
static bool pool_client_done(const struct server_conn *sc, const struct session *s)
{
    if (s->client.fwd_remaining != 0 || sc->ep.fwd_remaining != 0 ||
        evbuffer_get_length(sc->ep.in) > 0)
        return false;
    return server_conn_at_safe_point(sc) || pool_owes_fence(sc, s);
}

/* Why sc cannot be kept now (now_us: worker_clock_us) that its client leaves; NULL when it can. */
static const char *pool_refusal(const struct server_conn *sc, const struct session *s,
                                int64_t now_us)
{
    if (sc->fatal_read || server_conn_error_waits(sc))
        return "its server ended it";
    if (!sc->poolable || !config_pooling(s->cfg))
        return "pooling is off for it";
    if (s->phase != PHASE_ACTIVE)
        return "its client did not finish logging in";
    if (sc->reconnect)
        return "RECONNECT asked for a new connection";
    if (sc->cancel_unsure)
        return "a cancel request sent to it may still arrive";
    if (sc->w->draining)
        return "pgnear is shutting down";
    if (!pool_client_done(sc, s) && sc->rollback_owed == 0)
        return "its client left inside a transaction, a COPY or a request";
    if (now_us - sc->connect_time > (int64_t)s->cfg->server_lifetime_ms * 1000)
        return "it is older than server_lifetime";
    if (!host_is_up(sc->host))
        return "its host is down";
    return NULL;
}

/* A kept connection goes idle as it is (txn_return), or reset first; now_us: the clock read. */
static void pool_keep(struct server_conn *sc, int64_t now_us)
{
    if (sc->rollback_owed > 0) {
        pool_roll_back(sc); /* then kept as below (pool_idle.c) */
        return;
    }
    bool as_is = sc->txn_return && !sc->owes_fence; /* an answer owed is read first */
    sc->txn_return = false;
    if (as_is) {
        /* Its session is the one its next clients would have (pool_find takes exact fits). */
        pool_now_idle_at(sc, now_us);
        endpoint_arm(&sc->ep);
        return;
    }
    stat_inc(&sc->w->stats.servers_kept);
    pool_reset(sc);
}

void pool_release(struct server_conn *sc)
{
    struct session *s = sc->client;
    int64_t now_us = worker_clock_us(sc->w); /* once: the refusal's age and the idle time */
    const char *refusal = pool_refusal(sc, s, now_us);
    if (refusal != NULL) {
        sc->txn_return = false;
        sc->rollback_owed = 0;
        if (sc->poolable) {
            stat_inc(&sc->w->stats.servers_not_kept);
            slog_debug(s, "server connection %llu not kept: %s", (unsigned long long)sc->id,
                       refusal);
        }
        server_conn_close(sc, true);
        return;
    }
    sc->owes_fence = sc->rollback_owed == 0 && pool_owes_fence(sc, s);
    if (sc->owes_fence)
        slog_debug(s, "server connection %llu kept once it has said where its WAL ends",
                   (unsigned long long)sc->id);
    pool_park(sc);
    if (sc->cancels_in_flight > 0) {
        /* Not idle, not reset yet: the cancel must land before anyone else's query can. */
        sc->cancel_held = true;
        server_conn_move(sc, &sc->w->used_servers);
        sc->idle_since = wall_clock_us();
        pool_arm_sweep(sc->w);
        endpoint_arm(&sc->ep);
        slog_debug(s, "server connection %llu held back until its cancel is delivered",
                   (unsigned long long)sc->id);
        return;
    }
    pool_keep(sc, now_us);
}

void pool_cancel_done(struct server_conn *sc)
{
    if (!sc->cancel_held)
        return; /* its session still has it */
    sc->cancel_held = false;
    if (sc->cancel_unsure || sc->w->draining) {
        stat_inc(&sc->w->stats.servers_not_kept);
        pool_close(sc, sc->cancel_unsure ? "a cancel request sent to it may still arrive"
                                         : "pgnear is shutting down");
        return;
    }
    pool_keep(sc, worker_clock_us(sc->w));
}
