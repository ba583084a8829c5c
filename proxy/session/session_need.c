/*
 * session_need.c — what a session's server must be at each stage, and
 * the one plan of regions for it (session_need.h, which states the
 * precedence).
 */
#include "proxy/session/session_need.h"

#include <string.h>

#include "protocol/clock.h"
#include "protocol/lsn.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/near.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/region.h"
#include "routing/route.h"

const char *session_nearest_shortfall(const struct session *s)
{
    const struct startup_hints *h = &s->login->hints;
    const struct startup_packet *sp = &s->login->startup;
    bool movable = true;
    if (s->cfg->auth != AUTH_SCRAM)
        return "auth = passthrough: pgnear cannot log in for it on a primary";
    if (config_session_pool_mode(s->cfg, sp->user, sp->database) == POOL_NONE)
        return "pooling is off";
    /* A walsender (replication=database: logical decoding) must log in on a primary. */
    if (!session_may_share_server(s))
        return "its server connection cannot be pooled (replication, a protocol option)";
    if (s->cfg->max_prepared_statements == 0)
        return "max_prepared_statements = 0";
    if ((h->has_movable && config_parse_bool(h->movable, &movable) && !movable) ||
        !config_session_movable(s->cfg, sp->user, sp->database))
        return "it is not movable";
    return NULL;
}

/* The startup packet's ask (its hints' values already checked by the login). */
static struct need_spec session_need_at_login(const struct session *s)
{
    const struct startup_hints *h = &s->login->hints;
    const struct startup_packet *sp = &s->login->startup;
    struct need_spec need = {.role = NEED_ANY};
    enum session_need role;
    if (h->has_need && need_parse(h->need, &role))
        need.role = role;
    else
        need.role = (enum session_need)config_session_need(s->cfg, sp->user, sp->database);
    const char *why;
    if (need.role == NEED_NEAREST && (why = session_nearest_shortfall(s)) != NULL) {
        need.role = NEED_READ_WRITE; /* on a primary: never a write refused */
        slog_info(s, "needs nearest, placed as read-write: %s", why);
    }
    if (h->has_min_lsn &&
        lsn_parse(h->min_lsn, strlen(h->min_lsn), &need.min_tli, &need.min_lsn) != LSN_OK) {
        need.min_tli = 0;
        need.min_lsn = 0;
    }
    return need;
}

void session_note_read(struct session *s, const struct registry_host *at)
{
    const struct host_health *hh = &at->health;
    struct need_spec *mark = &s->need;
    mark->read_at = at;
    mark->read_until_ms = monotonic_ms();
    mark->read_downs = __atomic_load_n(&hh->downs, __ATOMIC_ACQUIRE);
    mark->read_started_us = __atomic_load_n(&hh->started_us, __ATOMIC_ACQUIRE);
    /* Only a read before the host's first check needs it (need_read_at_same_run). */
    mark->read_wall_us = mark->read_started_us == 0 ? (uint64_t)wall_clock_us() : 0;
}

/*
 * An up primary of at's database system (the same system identifier, where
 * both are known): what any of its standbys replayed, it had written first.
 */
static const struct registry_host *session_primary_of(const struct session *s,
                                                      const struct registry_host *at)
{
    const struct region_set *regions = &s->w->cfg->regions;
    uint64_t system = __atomic_load_n(&at->health.system_id, __ATOMIC_RELAXED);
    for (size_t i = 0; i < regions->count; i++) {
        const struct region *r = &regions->items[i];
        for (size_t j = 0; j < r->nhosts; j++) {
            const struct region_host *h = &r->hosts[j];
            const struct host_health *hh = &h->runtime->health;
            uint64_t sys = __atomic_load_n(&hh->system_id, __ATOMIC_RELAXED);
            if (!host_is_up(h) || host_is_fenced(h) ||
                !__atomic_load_n(&hh->role_known, __ATOMIC_RELAXED) || host_is_standby(h) ||
                (system != 0 && sys != system))
                continue;
            return h->runtime;
        }
    }
    return NULL;
}

/*
 * What the session has read, for its next server (need, a copy of
 * s->need, which keeps its reads: need.h, read_at and the rest): a
 * standby that has replayed it, the server it read on if it has not
 * restarted, or a primary.  A bound its server's check gives is kept in
 * the session at once: a restart may hide it later.
 */
static void session_read_position(struct session *s, struct need_spec *need)
{
    need->read_primary = NULL;
    if (need->read_at == NULL)
        return;
    uint64_t bound;
    if (need_read_bound(need, true, &bound)) {
        if (bound > s->need.read_lsn)
            s->need.read_lsn = need->read_lsn = bound;
        return;
    }
    need->read_primary = session_primary_of(s, need->read_at);
}

/* A need that follows no reads: the session's role and position alone. */
static struct need_spec session_need_without_reads(const struct session *s)
{
    struct need_spec need = s->need;
    need_forget_reads(&need);
    return need;
}

/*
 * The next transaction's: no standby older than what the session has
 * seen: its reads (session_read_position), its own last write
 * (pgnear.fence), nearest's writes.
 */
static struct need_spec session_need_at_transaction(struct session *s)
{
    struct need_spec need = s->need;
    if (s->near != NULL)
        need.role = near_next_need(s);
    if (!need_reads_standbys(need.role)) {
        need_forget_reads(&need);
        return need;
    }
    /* Without health checks no position is ever known: nothing to follow by. */
    if (s->cfg->health_check_interval_ms > 0)
        session_read_position(s, &need);
    else
        need_forget_reads(&need);
    if (s->fence != NULL && s->fence->lsn > need.min_lsn) {
        need.min_lsn = s->fence->lsn;
        need.min_tli = 0;
    }
    if (s->near != NULL)
        near_position(s, &need);
    return need;
}

struct need_spec session_need_for(struct session *s, enum need_at at, uint64_t seen_lsn)
{
    struct need_spec need = s->need;
    switch (at) {
    case NEED_AT_LOGIN:
        return session_need_at_login(s);
    case NEED_AT_ROUTE:
        need = session_need_without_reads(s);
        if (s->login->replay_waiting)
            need.role = NEED_STANDBY; /* one that has replayed it, or none yet */
        return need;
    case NEED_AT_TRANSACTION:
        return session_need_at_transaction(s);
    case NEED_AT_MOVE:
        if (need_reads_standbys(need.role) && s->cfg->health_check_interval_ms > 0)
            session_read_position(s, &need);
        else
            need_forget_reads(&need);
        /* Raised to what it has seen, never lowered (a position on an older timeline that is
         * past what the session's server has may be a write a failover lost: none has it). */
        if (seen_lsn != 0 && need.min_lsn < seen_lsn) {
            need.min_lsn = seen_lsn;
            need.min_tli = 0;
        }
        return need;
    }
    return need;
}

const struct region_subset *session_placed(const struct session *s, const struct config *cfg,
                                           const struct locality *loc, struct region_subset *where)
{
    return placement_of_city(&s->w->shared->placement, cfg, s->database, loc, where);
}

size_t session_replan(const struct session *s, const struct config *cfg, const struct locality *loc,
                      const struct need_spec *need, struct region **plan, double *cosines,
                      size_t max)
{
    struct region_subset where;
    if (max > ROUTE_MAX_REGIONS)
        max = ROUTE_MAX_REGIONS;
    return route_plan(&cfg->routing, loc, need, session_placed(s, cfg, loc, &where), plan, cosines,
                      max);
}

_Static_assert(ORIGIN_CITY_MAX < ROUTE_TEXT_MAX, "a session's city fits a locality's");

void session_locality(const struct session *s, const char *region, struct locality *loc)
{
    const struct config *cfg = s->w->cfg;
    const struct session_origin *o = &s->origin;
    /* Field by field: each transaction's route asks (no memset of the notes, no snprintf). */
    const char *origin_region = session_origin_text(o, ORIGIN_REGION);
    const char *city = session_origin_text(o, ORIGIN_CITY);
    const char *place = session_origin_text(o, ORIGIN_PLACE);
    size_t city_len = strlen(city);
    loc->source = (enum locality_source)o->source;
    loc->via = "the session's login";
    loc->has_coords = o->has_coords;
    loc->lat = o->lat;
    loc->lon = o->lon;
    loc->region = origin_region[0] ? region_set_find(&cfg->regions, origin_region) : NULL;
    memcpy(loc->city, city, city_len);
    loc->city[city_len] = '\0';
    loc->country[0] = '\0';
    loc->unplaced = 0;
    loc->note[0] = '\0';
    /* The city table's name, as the login matched it: a home is found by it too (Seattle, US). */
    loc->matched = place[0] != '\0' ? place : NULL;
    if (region != NULL && region[0] != '\0') {
        loc->source = LOCALITY_REGION_HINT;
        loc->region = region_set_find(&cfg->regions, region);
    }
}
