/*
 * need.c — target_session_attrs: names, the fit of hosts and regions by
 * their last health checks, and the order to try a region's hosts in
 * (need.h).
 */
#include "routing/need.h"

#include <stdio.h>
#include <strings.h>

#include "routing/region.h"

static const char *const need_names[NEED_COUNT] = {
    "any",     "read-write",     "read-only",      "primary",
    "standby", "prefer-standby", "prefer-primary", "nearest",
};

bool need_parse(const char *text, enum session_need *out)
{
    for (int i = 0; i < NEED_COUNT; i++) {
        if (strcasecmp(text, need_names[i]) == 0) {
            *out = (enum session_need)i;
            return true;
        }
    }
    return false;
}

const char *need_name(enum session_need need)
{
    return (unsigned)need < NEED_COUNT ? need_names[need] : "any";
}

const char *need_choices(void)
{
    return "any, read-write, read-only, primary, standby, prefer-standby, prefer-primary, nearest";
}

bool need_wants_primary(enum session_need need)
{
    return need == NEED_READ_WRITE || need == NEED_PRIMARY;
}

/* Whether a host of this (known) role serves the need; libpq's rules. */
static bool need_role_fits(enum session_need need, bool standby, bool read_only)
{
    switch (need) {
    case NEED_READ_WRITE:
        return !standby && !read_only;
    case NEED_READ_ONLY:
        return standby || read_only;
    case NEED_PRIMARY:
    case NEED_PREFER_PRIMARY:
        return !standby;
    case NEED_STANDBY:
    case NEED_PREFER_STANDBY:
        return standby;
    default:
        return true;
    }
}

/*
 * Needs that settle for less than their first choice: the prefer- needs,
 * and nearest, which takes a standby passed over for lag as a last choice
 * (its role fits always).
 */
static bool need_is_prefer(enum session_need need)
{
    return need == NEED_PREFER_STANDBY || need == NEED_PREFER_PRIMARY || need == NEED_NEAREST;
}

/* An up host whose role is known: lag passes a standby over where the session reads from it. */
static enum need_fit need_known_fit(enum session_need need, bool standby, bool read_only,
                                    bool lagging)
{
    bool prefer = need_is_prefer(need);
    if (standby && lagging)
        return prefer ? NEED_FIT_LAST : NEED_FIT_NONE;
    if (need_role_fits(need, standby, read_only))
        return NEED_FIT_GOOD;
    return prefer ? NEED_FIT_FALLBACK : NEED_FIT_NONE;
}

void need_forget_reads(struct need_spec *need)
{
    need->read_at = NULL;
    need->read_until_ms = 0;
    need->read_downs = 0;
    need->read_started_us = 0;
    need->read_wall_us = 0;
    need->read_lsn = 0;
    need->read_primary = NULL;
}

bool need_has_position(const struct need_spec *need)
{
    return need->min_lsn != 0 || need->read_at != NULL || need->read_lsn != 0;
}

/*
 * Whether hh's checks have read its position since its server last ended
 * a connection of pgnear's (host_health.doubted_ms): until then it may
 * have restarted behind what they read.
 */
static bool need_position_current(const struct host_health *hh, int64_t *doubted_ms)
{
    *doubted_ms = __atomic_load_n(&hh->doubted_ms, __ATOMIC_ACQUIRE);
    return *doubted_ms == 0 || __atomic_load_n(&hh->lsn_since_ms, __ATOMIC_ACQUIRE) > *doubted_ms;
}

/*
 * A read before the host's first check knew its run (read_started_us 0)
 * was on the run that started before the read ended: a restart since
 * would have started later.  A connection ended by the server after the
 * read may have been a restart: not the same run until a check says.
 */
bool need_read_at_same_run(const struct need_spec *need)
{
    const struct host_health *hh = &need->read_at->health;
    if (__atomic_load_n(&hh->downs, __ATOMIC_ACQUIRE) != need->read_downs)
        return false;
    int64_t doubted_ms;
    if (!need_position_current(hh, &doubted_ms) && doubted_ms >= need->read_until_ms)
        return false;
    uint64_t started = __atomic_load_n(&hh->started_us, __ATOMIC_ACQUIRE);
    if (need->read_started_us == 0 && started != 0)
        return started < need->read_wall_us;
    return started == need->read_started_us;
}

/*
 * The position of hh by a check that started after until_ms, into *lsn.
 * A check that started in the very millisecond the transaction ended may
 * have read the position before it: only a later millisecond counts.  The
 * time is read first: the position is that check's or a later one's.
 */
static bool need_checked_after(const struct host_health *hh, int64_t until_ms, uint64_t *lsn)
{
    if (__atomic_load_n(&hh->lsn_since_ms, __ATOMIC_ACQUIRE) <= until_ms)
        return false;
    *lsn = __atomic_load_n(&hh->lsn, __ATOMIC_ACQUIRE);
    return *lsn != 0;
}

bool need_read_bound(const struct need_spec *need, bool own_only, uint64_t *bound)
{
    const struct registry_host *at = need->read_at;
    if (at == NULL)
        return false;
    /* The run is read after the position: a restart's check stores its start time first. */
    if (need_checked_after(&at->health, need->read_until_ms, bound) && need_read_at_same_run(need))
        return true;
    const struct registry_host *p = need->read_primary;
    if (own_only || p == NULL || __atomic_load_n(&p->health.in_recovery, __ATOMIC_ACQUIRE))
        return false;
    return need_checked_after(&p->health, need->read_until_ms, bound);
}

/* Whether h (a standby at position lsn) is known to have what the session read before. */
static bool need_past_last_read(const struct region_host *h, uint64_t lsn,
                                const struct need_spec *need)
{
    const struct registry_host *at = need->read_at;
    /* The server the session read on, still running: it has what it showed, and what before. */
    if (at != NULL && h->runtime == at && need_read_at_same_run(need))
        return true;
    if (lsn < need->read_lsn)
        return false;
    uint64_t bound;
    if (at == NULL)
        return true;
    /* Not checked since: how far the session read is not known. */
    return need_read_bound(need, false, &bound) && lsn >= bound;
}

/* Whether the standby h is known to have replayed the session's position (need_spec). */
static bool need_has_replayed(const struct region_host *h, const struct need_spec *need)
{
    const struct host_health *hh = &h->runtime->health;
    if (need->min_tli != 0 && __atomic_load_n(&hh->timeline, __ATOMIC_RELAXED) != need->min_tli)
        return false;
    int64_t doubted_ms;
    if (!need_position_current(hh, &doubted_ms))
        return false; /* it may have restarted behind its position (health_note_conn_lost) */
    uint64_t lsn = __atomic_load_n(&hh->lsn, __ATOMIC_RELAXED);
    return lsn >= need->min_lsn && need_past_last_read(h, lsn, need);
}

/* h by its role alone. */
static enum need_fit need_role_fit(const struct region_host *h, enum session_need need)
{
    const struct host_health *hh = &h->runtime->health;
    bool known = __atomic_load_n(&hh->role_known, __ATOMIC_RELAXED);
    bool standby = host_is_standby(h);
    bool read_only = __atomic_load_n(&hh->read_only, __ATOMIC_RELAXED);
    if (host_is_fenced(h)) /* a former primary serves nobody, not even last (claimants.h) */
        return NEED_FIT_NONE;
    /* Its HA manager's noloadbalance tag: no reads, as Patroni's /replica answers HAProxy. */
    if (standby && __atomic_load_n(&hh->ha_noloadbalance, __ATOMIC_RELAXED))
        return NEED_FIT_NONE;
    if (!host_is_up(h)) {
        /* Tried last, as its checks may be stale, unless its last known role rules it out. */
        bool ruled_out =
            known && !need_role_fits(need, standby, read_only) && !need_is_prefer(need);
        return ruled_out ? NEED_FIT_NONE : NEED_FIT_LAST;
    }
    if (need == NEED_ANY)
        return NEED_FIT_GOOD;
    if (!known) {
        /* No check says its role; a login said it is a standby (health_note_login_role). */
        return standby && !need_role_fits(need, true, read_only) && !need_is_prefer(need)
                   ? NEED_FIT_NONE
                   : NEED_FIT_FALLBACK;
    }
    return need_known_fit(need, standby, read_only,
                          __atomic_load_n(&hh->lagging, __ATOMIC_RELAXED));
}

bool need_reads_standbys(enum session_need role)
{
    return role == NEED_ANY || role == NEED_READ_ONLY || role == NEED_STANDBY ||
           role == NEED_PREFER_STANDBY || role == NEED_NEAREST;
}

bool need_takes_any_role(enum session_need role)
{
    return role == NEED_ANY || role == NEED_NEAREST;
}

bool need_may_catch_up(const struct region_host *h, const struct need_spec *need)
{
    const struct host_health *hh = &h->runtime->health;
    if (!need_has_position(need) || !host_is_up(h) || !host_is_standby(h) ||
        !__atomic_load_n(&hh->role_known, __ATOMIC_RELAXED) ||
        __atomic_load_n(&hh->lagging, __ATOMIC_RELAXED))
        return false;
    if (need->min_tli != 0 && __atomic_load_n(&hh->timeline, __ATOMIC_RELAXED) != need->min_tli)
        return false;
    return !need_has_replayed(h, need);
}

enum need_fit need_host_fit(const struct region_host *h, const struct need_spec *need)
{
    enum need_fit fit = need_role_fit(h, need->role);
    if (fit == NEED_FIT_NONE || !need_has_position(need))
        return fit;
    /* The host the session last read has what it read, whatever its checks say yet. */
    if (need->min_lsn == 0 && h->runtime == need->read_at && need_read_at_same_run(need))
        return fit;
    /* A position to have replayed: a primary has it; a standby must be known to. */
    const struct host_health *hh = &h->runtime->health;
    if (!__atomic_load_n(&hh->role_known, __ATOMIC_RELAXED))
        return NEED_FIT_NONE;
    if (host_is_standby(h) && !need_has_replayed(h, need))
        return NEED_FIT_NONE;
    return fit;
}

/* h's place in need_host_order; below 0: not tried at all. */
static int need_host_rank(const struct region_host *h, const struct need_spec *need)
{
    enum need_fit fit = need_host_fit(h, need);
    if (fit == NEED_FIT_NONE)
        return -1;
    bool second = need->role == NEED_ANY       ? host_is_standby(h)
                  : need->role == NEED_NEAREST ? !host_is_standby(h)
                                               : false;
    return 2 * (int)fit + (second ? 1 : 0);
}

size_t need_host_order(const struct region *r, const struct need_spec *need, uint8_t *order)
{
    int rank[REGION_MAX_HOSTS];
    size_t n = 0;
    for (size_t i = 0; i < r->nhosts; i++)
        rank[i] = need_host_rank(&r->hosts[i], need);
    for (int want = 0; want <= 2 * NEED_FIT_LAST + 1; want++)
        for (size_t i = 0; i < r->nhosts; i++)
            if (rank[i] == want)
                order[n++] = (uint8_t)i;
    return n;
}

enum need_fit need_region_fit(const struct region *r, const struct need_spec *need)
{
    enum need_fit best = NEED_FIT_NONE;
    for (size_t i = 0; i < r->nhosts && best != NEED_FIT_GOOD; i++) {
        enum need_fit f = need_host_fit(&r->hosts[i], need);
        if (f < best)
            best = f;
    }
    return best;
}

/* What the need is missing, in its own words. */
static const char *need_missing(enum session_need need)
{
    switch (need) {
    case NEED_READ_WRITE:
        return "no writable primary";
    case NEED_PRIMARY:
    case NEED_PREFER_PRIMARY:
        return "no primary";
    case NEED_READ_ONLY:
        return "no read-only host";
    default:
        return "no standby";
    }
}

const char *need_region_shortfall(const struct region *r, const struct need_spec *need, char *buf,
                                  size_t cap)
{
    size_t up = 0, unknown = 0, lagging = 0, behind = 0;
    for (size_t i = 0; i < r->nhosts; i++) {
        const struct region_host *h = &r->hosts[i];
        if (need_host_fit(h, need) == NEED_FIT_GOOD) {
            buf[0] = '\0';
            return buf;
        }
        if (!host_is_up(h))
            continue;
        up++;
        if (!__atomic_load_n(&h->runtime->health.role_known, __ATOMIC_RELAXED))
            unknown++;
        else if (host_is_standby(h) &&
                 __atomic_load_n(&h->runtime->health.lagging, __ATOMIC_RELAXED))
            lagging++;
        else if (host_is_standby(h) && need_has_position(need) && !need_has_replayed(h, need))
            behind++;
    }
    const char *missing = need_missing(need->role);
    if (up == 0)
        snprintf(buf, cap, "every host down");
    else if (unknown > 0)
        snprintf(buf, cap, "%s known (role of %zu host%s not yet checked)", missing, unknown,
                 unknown == 1 ? "" : "s");
    else if (lagging > 0)
        snprintf(buf, cap, "%s (%zu passed over for lag)", missing, lagging);
    else if (behind > 0)
        snprintf(buf, cap, "no host known to have replayed %s (%zu behind)",
                 need->min_lsn != 0 ? "pgnear.min_lsn" : "what the session last read", behind);
    else
        snprintf(buf, cap, "%s", missing);
    return buf;
}
