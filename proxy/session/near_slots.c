/*
 * near_slots.c — a nearest session's own server connections under session
 * pooling (near_int.h's slots): parked while it runs elsewhere, taken
 * again by the transaction they fit, given back as session pooling gives
 * one back; and the generation of the session's state each one has
 * (near_sync.h).
 */
#include "proxy/session/near_slots.h"

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/near_int.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/need.h"
#include "routing/region.h"

/*
 * A parked connection goes back to the pool, as session pooling gives one
 * back (reset), while the session may be relaying on another.
 */
void near_slot_give_back(struct session *s, struct server_conn *sc)
{
    struct server_conn *current = s->server_conn;
    server_conn_attach(sc, s);
    sc->txn_return = false;
    s->w->shared->flow->server_release(sc); /* detaches it, or closes it */
    s->server_conn = current;
}

/* Every parked connection back to the pool: the session ends, or stays where it is. */
void near_slots_give_back(struct session *s)
{
    struct near_state *n = s->near;
    if (n == NULL)
        return;
    for (int i = 0; i < NEAR_SLOTS; i++) {
        struct server_conn *sc = n->slots.conn[i];
        n->slots.conn[i] = NULL;
        if (sc != NULL)
            near_slot_give_back(s, sc);
    }
}

/*
 * The session's connection between transactions parks in its slot (a
 * standby's or a primary's), unread and unlinked from the relay; the one
 * it replaces goes back to the pool.
 */
void near_slot_park(struct session *s, struct server_conn *sc)
{
    struct near_state *n = s->near;
    enum near_slot i = host_is_standby(sc->host) ? NEAR_SLOT_NEAR : NEAR_SLOT_PRIMARY;
    struct server_conn *old = n->slots.conn[i];
    /* What its transaction may have changed is on this connection alone now (near_sync.h). */
    if (n->slots.state_changing) {
        n->slots.state_changing = false;
        n->slots.conn_gen = ++n->slots.state_gen;
    }
    n->slots.gen[i] = n->slots.conn_gen;
    server_conn_detach(sc); /* s->server_conn is NULL */
    sc->ep.read_paused = true;
    endpoint_arm(&sc->ep); /* no reader, nothing to write: no event until it is taken again */
    n->slots.conn[i] = sc;
    if (old != NULL)
        near_slot_give_back(s, old);
}

/*
 * Whether looking for a connection may find what the parked ones are not:
 * a standby up and known to fit need.  With none (down, lagging, or no
 * role known, when the checks cannot log in), a look would only log in
 * again where the session already is.
 */
static bool near_standby_fits(const struct session *s, const struct need_spec *need)
{
    for (size_t i = 0; i < s->cfg->regions.count; i++) {
        const struct region *r = &s->cfg->regions.items[i];
        for (size_t j = 0; j < r->nhosts; j++)
            if (host_is_standby(&r->hosts[j]) && need_host_fit(&r->hosts[j], need) == NEED_FIT_GOOD)
                return true;
    }
    return false;
}

/*
 * Which parked connection fits need (near.h): its standby's when it fits;
 * for a transaction that needs a primary, its primary's.  A transaction
 * placed near (nearest fits a primary too) runs on its primary's only as
 * a fallback, where no standby of its own fits.
 */
static int near_slot_pick(const struct session *s, const struct need_spec *need)
{
    const struct near_state *n = s->near;
    int fallback = -1;
    for (int i = 0; i < NEAR_SLOTS; i++) {
        const struct server_conn *sc = n->slots.conn[i];
        if (sc == NULL ||
            (s->rare->txn_region != NULL && strcmp(sc->region->name, s->rare->txn_region)))
            continue; /* (a move named another region: that one's) */
        enum need_fit fit = need_host_fit(sc->host, need);
        if (fit == NEED_FIT_GOOD && (i == NEAR_SLOT_NEAR || need->role != NEED_NEAREST))
            return i;
        if (fit <= NEED_FIT_FALLBACK && fallback < 0)
            fallback = i;
    }
    /*
     * The primary's for reads while the standby parked has not replayed
     * the session's write (or is down); with none parked, until the next
     * health check may have found one (a standby down or lagging: not a
     * login for each transaction, nor the primary for good).
     */
    int64_t again_ms =
        s->cfg->health_check_interval_ms > 0 ? s->cfg->health_check_interval_ms : 1000;
    if (n->slots.conn[NEAR_SLOT_NEAR] != NULL ||
        monotonic_ms() - n->slots.near_sought_ms < again_ms || !near_standby_fits(s, need))
        return fallback;
    return -1;
}

/*
 * Whether a parked connection's server sent anything while it was parked,
 * or hung up: an idle server of a session that does not LISTEN (that
 * pins) says nothing unless it ends the connection (a FATAL: terminated,
 * idle_session_timeout, shut down).
 */
static bool near_slot_ended(const struct server_conn *sc)
{
    /* (The ring's receive may hold its bytes, not yet told: endpoint_peer_spoke looks there too.)
     */
    return sc->ep.stream.fd < 0 || sc->fatal_read || stream_has_pending(&sc->ep.stream) ||
           endpoint_peer_spoke(&sc->ep);
}

/* Parked connections whose server ended them are closed: the transaction gets another. */
static void near_slots_drop_ended(struct session *s)
{
    for (int i = 0; i < NEAR_SLOTS; i++) {
        struct server_conn *sc = s->near->slots.conn[i];
        if (sc == NULL || !near_slot_ended(sc))
            continue;
        slog_info(s, "its server connection %llu to %s:%d ended while parked",
                  (unsigned long long)sc->id, sc->host->name, sc->host->port);
        s->near->slots.conn[i] = NULL;
        server_conn_close(sc, true);
    }
}

/* A parked connection that fits takes the session's waiting message on; false: none fits. */
bool near_slot_take(struct session *s, const struct need_spec *need)
{
    if (s->near == NULL || !s->near->slots.own)
        return false;
    near_slots_drop_ended(s);
    int i = near_slot_pick(s, need);
    if (i < 0) {
        if (s->near->slots.conn[NEAR_SLOT_NEAR] == NULL)
            s->near->slots.near_sought_ms = monotonic_ms();
        return false;
    }
    struct server_conn *sc = s->near->slots.conn[i];
    s->near->slots.conn[i] = NULL;
    s->near->slots.conn_gen = s->near->slots.gen[i];
    s->near->slots.taken = sc; /* near_slots_attach keeps its generation */
    s->busy++;
    server_conn_attach(sc, s);
    s->txn->attached(s);
    session_callback_done(s);
    return true;
}

bool near_slots_behind(const struct session *s)
{
    const struct near_state *n = s->near;
    return n != NULL && n->slots.own && n->slots.conn_gen != n->slots.state_gen;
}

void near_slots_attach(struct session *s)
{
    struct near_slots *sl = &s->near->slots;
    /* A connection not parked is as at login: the session's startup parameters alone. */
    if (sl->taken != s->server_conn)
        sl->conn_gen = 0;
    sl->taken = NULL;
}

int near_slot_newest(const struct session *s)
{
    const struct near_slots *sl = &s->near->slots;
    for (int i = 0; i < NEAR_SLOTS; i++)
        if (sl->conn[i] != NULL && sl->gen[i] == sl->state_gen)
            return i;
    return -1;
}

struct server_conn *near_slot_remove(struct session *s, int i)
{
    struct server_conn *sc = s->near->slots.conn[i];
    s->near->slots.conn[i] = NULL;
    return sc;
}

void near_slot_put(struct session *s, int i, struct server_conn *sc)
{
    s->near->slots.conn[i] = sc;
}

void near_state_carried(struct session *s)
{
    s->near->slots.conn_gen = s->near->slots.state_gen;
}
