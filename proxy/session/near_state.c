/*
 * near_state.c — what others read of a nearest session's state, and what
 * they note in it (near_state.h); and what it wrote, for the position its
 * next transaction must see (near_position, near_wrote).
 */
#include "proxy/session/near_state.h"

#include <event2/buffer.h>

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/fence.h"
#include "proxy/session/near_int.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/region.h"
#include "routing/registry.h"

bool near_owes_request(const struct session *s, bool for_close)
{
    const struct near_state *ns = s->near;
    return ns != NULL && (near_leg_holds(ns->leg) || (for_close && ns->leg == NEAR_FORWARDING));
}

void near_note_serializable(struct session *s, const char *how)
{
    if (s->near->serializable)
        return;
    s->near->serializable = true;
    slog_info(s,
              "nearest: %s make its transactions serializable, which a standby cannot run: "
              "on a primary from now on",
              how);
}

void near_note_state_change(struct session *s)
{
    s->near->slots.state_changing = true;
}

void near_note_routines_changed(const struct session *s)
{
    s->near->routines_changed = true;
}

bool near_pin_move_may_ask(struct session *s)
{
    if (s->near->leg != NEAR_BETWEEN)
        return false; /* a request of it still runs there (a refusal shown, a stand-in's) */
    bool may = !s->near->pin_move_asked;
    s->near->pin_move_asked = true;
    return may;
}

struct evbuffer *near_answers(const struct session *s)
{
    return s->near != NULL && near_leg_holds(s->near->leg) ? s->near->held.answer : s->client.out;
}

bool near_reads_client(const struct session *s)
{
    return s->near == NULL || !near_leg_asked(s->near->leg);
}

bool near_own_slots(const struct session *s)
{
    return s->near != NULL && s->near->slots.own;
}

bool near_serializable(const struct session *s)
{
    return s->near != NULL && s->near->serializable;
}

bool near_held_for_primary(const struct session *s)
{
    return s->near != NULL && near_leg_holds(s->near->leg) && s->near->held.must_forward;
}

struct func_database *near_routines(const struct session *s)
{
    return s->near != NULL ? s->near->routines : NULL;
}

void near_show(const struct session *s, struct near_show *out)
{
    const struct near_state *n = s->near;
    *out = (struct near_show){.forwarded = n != NULL ? (int64_t)n->forward.total : -1};
    if (n == NULL)
        return;
    out->owns_parked =
        n->slots.own && (n->slots.conn[NEAR_SLOT_NEAR] || n->slots.conn[NEAR_SLOT_PRIMARY]);
    out->reads_at = n->reads_at != NULL ? n->reads_at->name : NULL;
    out->writes_at = n->writes_at != NULL ? n->writes_at->name : NULL;
}

struct near_sync *near_sync_of(const struct session *s)
{
    return s->near != NULL ? s->near->sync : NULL;
}

void near_sync_set(struct session *s, struct near_sync *y)
{
    s->near->sync = y;
}

void near_position(struct session *s, struct need_spec *need)
{
    struct near_state *ns = s->near;
    const struct registry_host *at = ns->wrote_on;
    /*
     * What it read on a primary is what it may have written there: the
     * position below covers it.  What it read on a standby, the next
     * standby must have too (need.h: read_at; monotonic reads), unless
     * no check can tell what that server is: then no standby is known to
     * have replayed anything, and reads go where the session logged in.
     */
    if (need->read_at != NULL &&
        (need->read_at == ns->last_primary ||
         !__atomic_load_n(&need->read_at->health.role_known, __ATOMIC_ACQUIRE)))
        need->read_at = NULL;
    if (at != NULL && !__atomic_load_n(&at->health.role_known, __ATOMIC_ACQUIRE)) {
        /*
         * Its checks cannot tell what the host is (they cannot log in): no
         * standby is known to have replayed anything, and a position would
         * fit no host of unknown role, that one included.  Reads stay where
         * the session wrote.
         */
        need->read_at = at;
        need->read_until_ms = ns->wrote_at_ms;
        return;
    }
    if (at != NULL && s->fence != NULL && s->fence->position_after != 0) {
        /* The server said where its WAL was right after the session's last transaction there. */
        if (s->fence->position_after > ns->write_lsn)
            ns->write_lsn = s->fence->position_after;
        ns->wrote_on = NULL;
    } else if (at != NULL) {
        /* Started in a later millisecond: after the commit (need.h's read_until_ms). */
        if (__atomic_load_n(&at->health.lsn_since_ms, __ATOMIC_ACQUIRE) > ns->wrote_at_ms) {
            uint64_t lsn = __atomic_load_n(&at->health.lsn, __ATOMIC_ACQUIRE);
            if (lsn > ns->write_lsn)
                ns->write_lsn = lsn;
            ns->wrote_on = NULL;
        } else {
            /* Not checked since: no standby is known to have it, the primary has. */
            need->read_at = at;
            need->read_until_ms = ns->wrote_at_ms;
        }
    }
    if (ns->write_lsn > need->min_lsn) {
        need->min_lsn = ns->write_lsn;
        need->min_tli = 0;
    }
    slog_debug(s, "nearest: its next transaction must see %X/%X%s", (unsigned)(need->min_lsn >> 32),
               (unsigned)need->min_lsn,
               need->read_at != NULL ? ", or run on the primary it wrote on" : "");
}

/*
 * A transaction ended on a primary: until a check of it that starts now
 * has read its position and the standbys' checks show one replayed, the
 * session reads there too (need.h).  Those checks come every
 * HEALTH_HURRY_MS for a while instead of every health_check_interval, so
 * that reads come back near within a few local round trips, not a second.
 */
static bool near_hurry_standby(const struct region_host *h, void *arg)
{
    return host_is_up(h) && host_is_standby(h);
}

static void near_hurry_checks(struct session *s, struct region_host *primary)
{
    int64_t until = monotonic_ms() + NEAR_HURRY_MS;
    bool wake = health_hurry(primary, until);
    if (health_hurry_hosts(&s->cfg->regions, near_hurry_standby, NULL, until) || wake)
        worker_wake_checks(s->w);
}

/*
 * A transaction ended on a primary: it may have written (pgnear parses no
 * SQL; a SELECT may call a function that writes).  The session reads
 * there until it knows a position past it (near_position): the server is
 * asked at once, its answer following on the connection without holding
 * the client (fence_ask_after); should it not say, a check of the primary
 * that starts from now tells.  False: the session ended.
 */
bool near_wrote(struct session *s, struct region_host *primary)
{
    struct near_state *ns = s->near;
    ns->wrote_on = primary->runtime;
    ns->last_primary = primary->runtime;
    ns->wrote_at_ms = monotonic_ms();
    /* No role known there: its position would help no read (near_position); none is asked. */
    if (!__atomic_load_n(&primary->runtime->health.role_known, __ATOMIC_ACQUIRE))
        return true;
    if (s->cfg->health_check_interval_ms > 0)
        near_hurry_checks(s, primary);
    return fence_asking(s->fence) || fence_ask_after(s) == 0;
}
