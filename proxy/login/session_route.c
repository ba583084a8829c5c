/*
 * session_route.c — a session's plan of regions (session_route.h).
 */
#include "proxy/login/session_route.h"

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"
#include "proxy/session/session_need.h"
#include "routing/health.h"
#include "routing/route.h"

void session_route_check_all_soon(struct session *s, int64_t until_ms)
{
    if (health_hurry_hosts(&s->cfg->regions, NULL, NULL, until_ms))
        worker_wake_checks(s->w);
}

/* A host that a session waiting for a standby to replay its position hurries the checks of. */
struct session_replay_pick {
    const struct need_spec *need;
    bool any; /* a standby may still catch up */
};

static bool session_route_replay_pick(const struct region_host *h, void *arg)
{
    struct session_replay_pick *p = arg;
    bool catching_up = need_may_catch_up(h, p->need);
    p->any |= catching_up;
    /* The last read's host and its primary too: their next checks tell how far it read. */
    return catching_up || h->runtime == p->need->read_at || h->runtime == p->need->read_primary;
}

/*
 * A session with pgnear.min_lsn that may read from a standby waits up to
 * min_lsn_wait for one to replay its position, before it settles for the
 * primary: the standbys that could still get there are checked often
 * meanwhile (health_hurry).  True while it waits.
 */
static bool session_route_awaits_replay(struct session *s)
{
    struct session_login *l = s->login;
    if (!need_has_position(&s->need) || s->cfg->min_lsn_wait_ms <= 0 ||
        !need_reads_standbys(s->need.role))
        return false;
    int64_t now = monotonic_ms();
    if (l->replay_wait_until_ms == 0)
        l->replay_wait_until_ms = now + s->cfg->min_lsn_wait_ms;
    if (now >= l->replay_wait_until_ms)
        return false;
    struct session_replay_pick pick = {&s->need, false};
    if (health_hurry_hosts(&s->cfg->regions, session_route_replay_pick, &pick,
                           l->replay_wait_until_ms))
        worker_wake_checks(s->w);
    return pick.any;
}

bool session_route_waits_for_replay(const struct session *s)
{
    return s->login->replay_waiting;
}

/*
 * Whether a region nearer than plan[0] has a standby on its way to s's
 * position (need_may_catch_up).  The regions in the order of distance
 * alone, whatever their hosts' roles.
 */
static bool session_route_nearer_catching_up(const struct session *s)
{
    static const struct need_spec any = {.role = NEED_ANY};
    const struct session_login *l = s->login;
    struct region *order[ROUTE_MAX_REGIONS];
    double cosines[ROUTE_MAX_REGIONS];
    size_t n = session_replan(s, s->cfg, &l->loc, &any, order, cosines, ROUTE_MAX_REGIONS);
    for (size_t i = 0; i < n && order[i] != l->plan[0]; i++)
        for (size_t j = 0; j < order[i]->nhosts; j++)
            if (need_may_catch_up(&order[i]->hosts[j], &s->need))
                return true;
    return false;
}

/*
 * A fenced read whose nearest fitting standby is farther than one still
 * replaying towards its position waits up to NEARER_REPLAY_GRACE_MS for
 * the nearer one (within min_lsn_wait): the session stays where it lands,
 * so a few more health checks cost less than every later query going the
 * long way.  True while it waits: the plan is then empty.
 */
static bool session_route_awaits_nearer(struct session *s)
{
    struct session_login *l = s->login;
    if (!l->replay_waiting || l->plan_len == 0 || !session_route_nearer_catching_up(s))
        return false;
    int64_t now = monotonic_ms();
    if (l->nearer_wait_until_ms == 0)
        l->nearer_wait_until_ms = now + NEARER_REPLAY_GRACE_MS;
    return now < l->nearer_wait_until_ms;
}

void session_route_plan(struct session *s)
{
    struct session_login *l = s->login;
    l->replay_waiting = session_route_awaits_replay(s);
    struct need_spec need = session_need_for(s, NEED_AT_ROUTE, 0);
    l->plan_len =
        session_replan(s, s->cfg, &l->loc, &need, l->plan, l->plan_cos, ROUTE_MAX_REGIONS);
    l->nearer_waiting = session_route_awaits_nearer(s);
    if (l->nearer_waiting)
        l->plan_len = 0;
    l->plan_index = 0;
    l->servers_tried = false;
    s->region = l->plan_len > 0 ? l->plan[0] : NULL;
}

size_t session_route_lookup_plan(const struct session *s, struct region **out, size_t max)
{
    static const struct need_spec any = {.role = NEED_ANY};
    double cosines[ROUTE_MAX_REGIONS];
    return session_replan(s, s->cfg, &s->login->loc, &any, out, cosines, max);
}
