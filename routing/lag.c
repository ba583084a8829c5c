/*
 * lag.c — a standby's lag from the health checks' positions (lag.h).
 */
#include "routing/lag.h"

/* The longest replay age a reading counts (about 31 years): past it, every age is the same. */
#define LAG_MAX_AGE_S 1e9

void lag_note_primary(struct host_health *primary, uint64_t lsn, int64_t now_ms)
{
    primary->lsn_history[primary->lsn_history_next] = (struct lsn_sample){now_ms, lsn};
    primary->lsn_history_next = (primary->lsn_history_next + 1) % HEALTH_LSN_HISTORY;
    if (primary->lsn_history_count < HEALTH_LSN_HISTORY)
        primary->lsn_history_count++;
}

/* The kept sample k (0 the oldest). */
static const struct lsn_sample *lag_sample(const struct host_health *primary, unsigned k)
{
    unsigned first = (primary->lsn_history_next + HEALTH_LSN_HISTORY - primary->lsn_history_count) %
                     HEALTH_LSN_HISTORY;
    return &primary->lsn_history[(first + k) % HEALTH_LSN_HISTORY];
}

/* When pgnear first saw the primary past replay: the oldest kept sample beyond it. */
static int64_t lag_first_past(const struct host_health *primary, uint64_t replay, bool *beyond)
{
    unsigned count = primary->lsn_history_count;
    *beyond = false;
    for (unsigned k = 0; k < count; k++) {
        const struct lsn_sample *s = lag_sample(primary, k);
        if (s->lsn > replay) {
            *beyond = k == 0 && count == HEALTH_LSN_HISTORY; /* older than what is kept */
            return s->at_ms;
        }
    }
    return -1;
}

struct lag_reading lag_measure(const struct host_health *primary,
                               const struct standby_position *pos, int64_t now_ms)
{
    struct lag_reading r = {-1, -1};
    /* An age past any real one (a server's "1e308" or "Infinity") is that long, not overflow. */
    double age_s = pos->replay_age_s > LAG_MAX_AGE_S ? LAG_MAX_AGE_S : pos->replay_age_s;
    int64_t age_ms = age_s >= 0 ? (int64_t)(age_s * 1000.0) : -1;
    if (pos->replay == 0)
        return r;
    if (primary == NULL || primary->lsn_history_count == 0) {
        if (pos->receive == 0)
            return r;
        r.bytes = pos->receive > pos->replay ? (int64_t)(pos->receive - pos->replay) : 0;
        r.ms = r.bytes == 0 ? 0 : age_ms;
        return r;
    }
    const struct lsn_sample *newest = lag_sample(primary, primary->lsn_history_count - 1);
    r.bytes = newest->lsn > pos->replay ? (int64_t)(newest->lsn - pos->replay) : 0;
    if (r.bytes == 0) {
        r.ms = 0;
        return r;
    }
    bool beyond;
    int64_t since = lag_first_past(primary, pos->replay, &beyond);
    /* A primary's sample taken after the standby's reading began is past it by nothing yet. */
    r.ms = since < 0 || since > now_ms ? 0 : now_ms - since;
    if (beyond && age_ms > r.ms) /* further back than the kept samples reach */
        r.ms = age_ms;
    return r;
}

/* Over either limit that is set (0 is off) counts as lagging. */
static bool lag_over(struct lag_reading r, const struct lag_limits *limits)
{
    return (limits->max_ms > 0 && r.ms > limits->max_ms) ||
           (limits->max_bytes > 0 && r.bytes > limits->max_bytes);
}

int lag_judge(struct host_health *hh, struct lag_reading r, const struct lag_limits *limits)
{
    __atomic_store_n(&hh->lag_bytes, r.bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&hh->lag_ms, r.ms, __ATOMIC_RELAXED);
    if (r.bytes < 0 && r.ms < 0)
        return 0;
    bool lagging = __atomic_load_n(&hh->lagging, __ATOMIC_RELAXED);
    if (lag_over(r, limits)) {
        hh->lag_ok_checks = 0;
        if (lagging)
            return 0;
        __atomic_store_n(&hh->lagging, true, __ATOMIC_RELAXED);
        return 1;
    }
    if (!lagging || ++hh->lag_ok_checks < HEALTH_LAG_RISE)
        return 0;
    hh->lag_ok_checks = 0;
    __atomic_store_n(&hh->lagging, false, __ATOMIC_RELAXED);
    return -1;
}
