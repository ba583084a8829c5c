/*
 * health.c — health checks: one query (HEALTH_QUERY: role, read-only,
 * WAL positions) per host and interval, bounded by the timeout, on a
 * libpq connection kept per host between checks.  A check logs in afresh
 * when there is no kept connection (the first, after any failure, after
 * the server closed it), when a session took the host down since it was
 * kept (a refused login), and once health_check_login_interval passed since
 * the kept one logged in, so that a login path that breaks (pg_hba.conf,
 * a password) is seen within that bound without a login every interval.
 * A refused, reset or failed check marks the host down at once; a check
 * that only timed out does so at the fall-th timeout in a row (a busy host
 * is slow, not gone).  A host comes back after HEALTH_RISE successes in a
 * row, or when a session logs in through it.
 */
#include "routing/health.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/pgasync.h"
#include "routing/claimants.h"
#include "routing/lag.h"
#include "routing/region.h"
#include "routing/route_rtt.h"

/*
 * What a check reads, in one round trip: whether the server is a standby,
 * whether its sessions start read-only, its WAL position (a primary's
 * insert position, a standby's replayed one) and, on a standby, what it
 * has received and how old its last replayed commit is; the timeline (a
 * primary's from its WAL file name; a standby's from its WAL receiver,
 * which shows it only to roles with pg_read_all_stats, else NULL); the
 * cluster's system identifier, which a primary and its streaming standbys
 * share (so that a standby is measured against its own primary, and a
 * region of standbys is known to follow another region's primary); and,
 * on a standby, the latest timeline its control file names (its last
 * restartpoint's, or its minimum recovery point's), which any role may
 * read: the timeline it replays is that one or a later one
 * (health_standby_timeline); and when the server started, which tells
 * two addresses of one server (a relay in front of it) from two servers
 * of one system (claimants.h); and, last, the server's own time for the
 * query, which the round trip less it leaves the network's (rtt.h's
 * floor).  Positions come as byte offsets (numeric),
 * NULL where they do not apply.  A primary's position is where its WAL
 * is inserted, past every commit it has answered: the written position
 * (pg_current_wal_lsn) lags behind a commit by up to wal_writer_delay
 * under synchronous_commit = off, and a standby that replayed only that
 * far would pass for having what a session read or wrote.
 */
#define HEALTH_QUERY                                                                               \
    "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only'), "               \
    "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE "                            \
    "pg_current_wal_insert_lsn() "                                                                 \
    "END "                                                                                         \
    "- '0/0', pg_last_wal_receive_lsn() - '0/0', "                                                 \
    "extract(epoch FROM now() - pg_last_xact_replay_timestamp()), "                                \
    "CASE WHEN pg_is_in_recovery() THEN (SELECT received_tli FROM pg_stat_wal_receiver) "          \
    "ELSE ('x' || substr(pg_walfile_name(pg_current_wal_insert_lsn()), 1, 8))::bit(32)::int END, " \
    "(SELECT system_identifier FROM pg_control_system()), "                                        \
    "CASE WHEN pg_is_in_recovery() THEN greatest((SELECT timeline_id FROM "                        \
    "pg_control_checkpoint()), "                                                                   \
    "(SELECT min_recovery_end_timeline FROM pg_control_recovery())) END, "                         \
    "(extract(epoch FROM pg_postmaster_start_time()) * 1000000)::int8, "                           \
    "(extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000000)::int8"
#define HEALTH_QUERY_COLUMNS 10

struct health_checker {
    struct event_base *base;
    struct region_set *regions;
    struct health_params params;
    health_conninfo_fn conninfo;
    health_log_fn log;
    void *arg;
    struct event *timer;
    struct event *hurry_timer;   /* every HEALTH_HURRY_MS: the standbys sessions wait on */
    struct claimants *claimants; /* which primary serves each database system */
};

struct health_probe {
    struct health_checker *hc;
    struct region_host *host;
    struct timeval started;
    int64_t started_ms; /* monotonic_ms */
    int64_t login_ms;   /* when its connection logged in: started_ms for a fresh one */
    bool on_kept;       /* it runs on the kept connection (no login) */
};

static void health_probe_fresh(struct health_checker *hc, struct region_host *h);

/* Milliseconds since since, by the wall clock: the RTT that SHOW REGIONS and the metrics show. */
static double elapsed_ms(const struct timeval *since)
{
    struct timeval now;
    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - since->tv_sec) * 1000.0 +
           (double)(now.tv_usec - since->tv_usec) / 1000.0;
}

/* Takes h down; true when it was up (the caller says so). */
static bool health_take_down(struct region_host *h)
{
    if (!__atomic_exchange_n(&h->runtime->health.up, false, __ATOMIC_RELAXED))
        return false;
    __atomic_add_fetch(&h->runtime->health.downs, 1, __ATOMIC_RELAXED);
    return true;
}

/* A failed check: the run of successes ends; the reason kept, cut to fit, for SHOW REGIONS. */
static void health_note_failure(struct host_health *hh, const char *why)
{
    hh->consecutive_ok = 0;
    hh->consecutive_fail++;
    /* Kept short for SHOW REGIONS; the log gets the whole message. */
    size_t n = strnlen(why, sizeof(hh->last_error) - 1);
    memcpy(hh->last_error, why, n);
    hh->last_error[n] = '\0';
}

/*
 * A failure that takes h down at once; logged only when h was up, so a down
 * host does not log every round.
 */
static void health_set_down(struct health_checker *hc, struct region_host *h, const char *why)
{
    health_note_failure(&h->runtime->health, why);
    if (health_take_down(h))
        hc->log(hc->arg, h->region, h, HEALTH_DOWN, why);
}

/* A check that timed out: counted; the host goes down at the fall-th in a row. */
static void health_check_timed_out(struct health_checker *hc, struct region_host *h)
{
    char why[160];
    int fall = hc->params.fall;
    int n = __atomic_add_fetch(&h->runtime->health.consecutive_timeouts, 1, __ATOMIC_RELAXED);
    if (n >= fall || !host_is_reachable(h)) {
        snprintf(why, sizeof(why), "health check timed out (%d in a row, health_check_fall = %d)",
                 n, fall);
        health_set_down(hc, h, why);
        return;
    }
    snprintf(why, sizeof(why), "timed out (%d of %d)", n, fall);
    health_note_failure(&h->runtime->health, why);
    hc->log(hc->arg, h->region, h, HEALTH_TIMEOUT, why);
}

/* Sessions choose hosts by role (need.h); a host that changes role (promotion, a rejoined old
 * primary) is said. */
static void health_note_role(struct health_checker *hc, struct region_host *h, bool standby)
{
    struct host_health *hh = &h->runtime->health;
    bool changed = hh->role_known ? hh->in_recovery != standby : standby;
    __atomic_store_n(&hh->in_recovery, standby, __ATOMIC_RELAXED);
    __atomic_store_n(&hh->role_known, true, __ATOMIC_RELAXED);
    if (!changed)
        return;
    /* A new role starts its positions afresh: the old ones belong to another history. */
    hh->lsn_history_count = hh->lsn_history_next = 0;
    hh->lag_ok_checks = 0;
    __atomic_store_n(&hh->lagging, false, __ATOMIC_RELAXED);
    hc->log(hc->arg, h->region, h, HEALTH_UP,
            standby ? "it is a standby (in recovery): sessions that need a primary go elsewhere"
                    : "it is a primary now");
}

/* A boolean column as the health query gives it: "t" from a function, "on" from a setting. */
static bool health_column_true(const PGresult *res, int col)
{
    const char *v = PQgetisnull(res, 0, col) ? "" : PQgetvalue(res, 0, col);
    return strcmp(v, "t") == 0 || strcmp(v, "on") == 0;
}

/* An unsigned number (a WAL position as a byte offset, a system identifier); 0 for NULL
 * (or anything that is not one). */
static uint64_t health_column_uint(const PGresult *res, int col)
{
    if (PQgetisnull(res, 0, col))
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(PQgetvalue(res, 0, col), &end, 10);
    return errno == 0 && *end == '\0' ? (uint64_t)v : 0;
}

/* The server's own time for the check, ms: its last column (0 when it did not answer it). */
static double health_server_ms(const PGresult *res)
{
    if (res == NULL || PQntuples(res) < 1 || PQnfields(res) < HEALTH_QUERY_COLUMNS)
        return 0;
    return health_column_uint(res, HEALTH_QUERY_COLUMNS - 1) / 1000.0;
}

/*
 * The primary a standby is measured against: an up primary of the same
 * cluster (system identifier), the one furthest ahead should two claim it
 * during a switchover.  Regions of unrelated clusters are not compared.
 */
static const struct host_health *health_primary(const struct health_checker *hc, uint64_t system_id)
{
    const struct host_health *best = NULL;
    for (size_t r = 0; r < hc->regions->count; r++) {
        const struct region *reg = &hc->regions->items[r];
        for (size_t i = 0; i < reg->nhosts; i++) {
            const struct host_health *hh = &reg->hosts[i].runtime->health;
            if (host_is_up(&reg->hosts[i]) && hh->role_known && !hh->in_recovery &&
                hh->system_id == system_id && hh->lsn_history_count > 0 &&
                (best == NULL || hh->lsn > best->lsn))
                best = hh;
        }
    }
    return best;
}

/*
 * A standby's replay position against its primary's: passed over for reads past
 * max_standby_lag, back after HEALTH_LAG_RISE good checks; each change is
 * logged.  Measured as of the check's start (started_ms), when the standby
 * had replayed at most what it read: a check that a busy machine kept
 * waiting adds nothing to the lag.
 */
static void health_note_lag(struct health_checker *hc, struct region_host *h, const PGresult *res,
                            int64_t started_ms)
{
    /* The servers' clocks may differ a little: a commit "from the future" is 0 s old. */
    double age = PQgetisnull(res, 0, 4) ? -1.0 : fmax(0.0, strtod(PQgetvalue(res, 0, 4), NULL));
    struct standby_position pos = {health_column_uint(res, 2), health_column_uint(res, 3), age};
    struct lag_reading r =
        lag_measure(health_primary(hc, h->runtime->health.system_id), &pos, started_ms);
    struct lag_limits limits = {hc->params.max_lag_ms, hc->params.max_lag_bytes};
    int change = lag_judge(&h->runtime->health, r, &limits);
    char why[200];
    if (change > 0)
        snprintf(why, sizeof(why),
                 "%.1f s and %lld bytes behind its primary, over max_standby_lag: "
                 "passed over for reads",
                 (double)r.ms / 1000.0, (long long)r.bytes);
    else if (change < 0)
        snprintf(why, sizeof(why),
                 "%.1f s behind, under max_standby_lag for %d checks: reads again",
                 (double)r.ms / 1000.0, HEALTH_LAG_RISE);
    if (change != 0)
        hc->log(hc->arg, h->region, h, HEALTH_LAG, why);
}

/* A session's word on the role stands until a check that started after it. */
static void health_forget_login_role(int64_t *mark, int64_t check_started_ms)
{
    int64_t at = __atomic_load_n(mark, __ATOMIC_RELAXED);
    if (at != 0 && at < check_started_ms)
        __atomic_compare_exchange_n(mark, &at, 0, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

bool health_note_login_standby(struct region_host *h)
{
    struct host_health *hh = &h->runtime->health;
    int64_t none = 0;
    if (__atomic_load_n(&hh->in_recovery, __ATOMIC_RELAXED))
        return false;
    return __atomic_compare_exchange_n(&hh->login_saw_standby_ms, &none, monotonic_ms(), false,
                                       __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

void health_note_login_role(struct region_host *h, bool standby)
{
    struct host_health *hh = &h->runtime->health;
    if (__atomic_load_n(&hh->role_known, __ATOMIC_RELAXED))
        return;
    int64_t at = __atomic_load_n(&hh->login_saw_standby_ms, __ATOMIC_RELAXED);
    if (standby && at == 0)
        __atomic_compare_exchange_n(&hh->login_saw_standby_ms, &at, monotonic_ms(), false,
                                    __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    else if (!standby && at != 0)
        __atomic_compare_exchange_n(&hh->login_saw_standby_ms, &at, 0, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED);
}

/*
 * The timeline a standby replays: its WAL receiver's when the check's
 * user may see it (pg_read_all_stats).  Otherwise its control file's,
 * which names that timeline or an earlier one: after a promotion upstream
 * the standby replays the new timeline at once, but its control file says
 * so only from its next restartpoint (checkpoint_timeout at the latest).
 * That is taken as the timeline only where it cannot be behind: it is its
 * primary's, or no primary of its cluster is known.  Else 0 (not known):
 * a fence naming a timeline passes it over until then, never the reverse.
 */
static uint32_t health_standby_timeline(struct health_checker *hc, const struct region_host *h,
                                        const PGresult *res)
{
    uint32_t received = (uint32_t)health_column_uint(res, 5);
    uint32_t control = (uint32_t)health_column_uint(res, 7);
    if (received != 0)
        return received;
    const struct host_health *primary = health_primary(hc, h->runtime->health.system_id);
    if (primary == NULL || primary->timeline == control)
        return control;
    return 0;
}

/* What a check that logged in read: role, read-only, position, a standby's lag. */
static void health_note_state(struct health_checker *hc, struct region_host *h, const PGresult *res,
                              int64_t started_ms)
{
    struct host_health *hh = &h->runtime->health;
    if (PQntuples(res) < 1 || PQnfields(res) < HEALTH_QUERY_COLUMNS)
        return;
    health_forget_login_role(&hh->login_saw_standby_ms, started_ms);
    bool standby = health_column_true(res, 0);
    __atomic_store_n(&hh->system_id, health_column_uint(res, 6), __ATOMIC_RELAXED);
    __atomic_store_n(&hh->started_us, health_column_uint(res, 8), __ATOMIC_RELAXED);
    health_note_role(hc, h, standby);
    __atomic_store_n(&hh->read_only, health_column_true(res, 1), __ATOMIC_RELAXED);
    uint64_t lsn = health_column_uint(res, 2);
    /* The position first, its time after: a reader that sees the time sees this position or a
     * later one. */
    __atomic_store_n(&hh->lsn, lsn, __ATOMIC_RELEASE);
    __atomic_store_n(&hh->lsn_since_ms, started_ms, __ATOMIC_RELEASE);
    uint32_t timeline =
        standby ? health_standby_timeline(hc, h, res) : (uint32_t)health_column_uint(res, 5);
    __atomic_store_n(&hh->timeline, timeline, __ATOMIC_RELAXED);
    if (standby) {
        health_note_lag(hc, h, res, started_ms);
        return;
    }
    if (lsn != 0)
        lag_note_primary(hh, lsn, monotonic_ms());
    __atomic_store_n(&hh->lag_bytes, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&hh->lag_ms, 0, __ATOMIC_RELAXED);
}

/* The server answered the check (error NULL: and logged in); up after HEALTH_RISE in a row. */
static void health_check_passed(struct health_probe *p, const PGresult *res, const char *error)
{
    struct region_host *h = p->host;
    struct host_health *hh = &h->runtime->health;
    /* A server that asks for a password is up, even if server_conninfo cannot log in. */
    if (error != NULL && !hh->login_failing) {
        char why[320];
        snprintf(why, sizeof(why),
                 "it answers, but the health check cannot log in "
                 "(check server_conninfo): %s",
                 error);
        p->hc->log(p->hc->arg, h->region, h, HEALTH_UP, why);
    }
    hh->login_failing = error != NULL;
    hh->busy_said = false;
    hh->rtt_ms = elapsed_ms(&p->started);
    if (p->on_kept) { /* a login's round trips are not one (rtt.h) */
        rtt_sample(&hh->rtt, hh->rtt_ms, monotonic_ms());
        rtt_floor_sample(&hh->rtt, hh->rtt_ms - health_server_ms(res));
    }
    if (res != NULL)
        health_note_state(p->hc, h, res, p->started_ms);
    hh->consecutive_fail = 0;
    __atomic_store_n(&hh->consecutive_timeouts, 0, __ATOMIC_RELAXED);
    /* A session that failed to connect meanwhile restarts the count. */
    if (__atomic_exchange_n(&hh->client_failures, 0, __ATOMIC_RELAXED) > 0)
        hh->consecutive_ok = 0;
    hh->consecutive_ok++;
    hh->last_error[0] = '\0';
    if (!host_is_reachable(h) && hh->consecutive_ok >= HEALTH_RISE) {
        __atomic_store_n(&hh->up, true, __ATOMIC_RELAXED);
        p->hc->log(p->hc->arg, h->region, h, HEALTH_UP, "health checks pass again");
    }
}

/* A check timed out on a host that answers sessions: not counted; said once until a check passes.
 */
static void health_check_busy(struct health_checker *hc, struct region_host *h)
{
    if (h->runtime->health.busy_said)
        return;
    h->runtime->health.busy_said = true;
    hc->log(hc->arg, h->region, h, HEALTH_TIMEOUT,
            "timed out, but the host answers sessions: busy, not counted");
}

/*
 * A check that failed before reaching the host because this process ran
 * out of something (libpq's own words for it): another thread can take
 * the descriptor that health_can_open_socket just saw free.  Like a round
 * skipped for it, this says nothing about the host.
 */
static bool health_error_is_local(const char *error)
{
    static const char *const local[] = {"could not create socket", "Too many open files",
                                        "Cannot assign requested address",
                                        "No buffer space available", "out of memory"};
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
        if (strstr(error, local[i]) != NULL)
            return true;
    return false;
}

/* A standby's position in doubt from now (health_note_conn_lost); false for a primary's. */
static bool health_doubt(struct host_health *hh, int64_t now)
{
    if (!__atomic_load_n(&hh->in_recovery, __ATOMIC_RELAXED))
        return false;
    int64_t seen = __atomic_load_n(&hh->doubted_ms, __ATOMIC_RELAXED);
    while (seen < now && !__atomic_compare_exchange_n(&hh->doubted_ms, &seen, now, true,
                                                      __ATOMIC_RELEASE, __ATOMIC_RELAXED))
        ;
    return true;
}

/*
 * The server closed the kept connection while idle: forgotten; the next
 * check logs in.  A standby's may have restarted, and come back behind
 * what it showed (crash recovery replays from its last restartpoint): its
 * position is in doubt until that check, as when it ends a session's
 * connection (health_note_conn_lost), also where pgnear holds no other.
 */
static void health_kept_closed(void *arg)
{
    struct region_host *h = arg;
    struct pgasync *conn = h->check_conn;
    h->check_conn = NULL;
    pgasync_abandon(conn); /* the next check logs in afresh */
    health_doubt(&h->runtime->health, monotonic_ms());
}

/* A check that passed leaves its connection to the next one, within the login bound. */
static void health_keep(struct health_checker *hc, struct region_host *h, struct pgasync *conn,
                        int64_t login_ms)
{
    if (h->check_conn != NULL || monotonic_ms() - login_ms >= hc->params.login_interval_ms)
        return; /* pgasync frees it after the callback */
    if (pgasync_keep(conn, health_kept_closed, h)) {
        h->check_conn = conn;
        h->check_login_ms = login_ms;
        h->check_downs = health_downs(h);
    }
}

/* A host fenced as a former primary, or serving again (claimants.h): for the log and sessions. */
static void health_fence_report(void *arg, const struct region_host *h, bool fenced,
                                const char *why)
{
    struct health_checker *hc = arg;
    hc->log(hc->arg, h->region, h, fenced ? HEALTH_FENCED : HEALTH_UNFENCED, why);
}

/*
 * A check's answer: decides up, down, busy or timed out; a kept connection that
 * failed for another reason gets a fresh login first.
 */
static void health_probe_done(void *arg, const PGresult *res, const char *error,
                              bool server_answered)
{
    struct health_probe *p = arg;
    struct region_host *h = p->host;
    struct health_checker *hc = p->hc;
    struct pgasync *conn = h->check;
    bool timed_out = pgasync_timed_out(conn);
    h->check = NULL;
    /*
     * A kept connection that failed other than by a timeout (the server
     * ended it: a restart, pg_terminate_backend, idle_session_timeout)
     * says nothing of the host yet: a fresh login gives the verdict.
     */
    if (p->on_kept && error != NULL && !timed_out) {
        free(p);
        health_probe_fresh(hc, h);
        return;
    }
    h->runtime->health.checked = true;
    h->runtime->health.last_check = (int64_t)time(NULL);
    /* Sessions' connections got answers meanwhile: the host is busy, this check was queued. */
    bool busy = timed_out && health_answered_since(h, p->started_ms);
    if (server_answered)
        health_note_answer(h);
    if (busy)
        health_check_busy(hc, h);
    else if (timed_out)
        health_check_timed_out(hc, h);
    else if (error != NULL && !server_answered) {
        if (!health_error_is_local(error)) /* else no verdict: the round never reached the host */
            health_set_down(hc, h, error);
    } else {
        health_check_passed(p, res, error);
        if (error == NULL)
            health_keep(hc, h, conn, p->login_ms);
    }
    free(p);
    claimants_judge(hc->claimants, hc->regions, health_fence_report, hc);
}

/*
 * When pgnear itself is out of descriptors or memory, a check would fail
 * here, not at the host: skip the round and leave the host's state as it
 * is (libpq would report "could not create socket" as if the host were
 * down).  Opening a socket and closing it again is the cheapest honest
 * test of that.
 */
static bool health_can_open_socket(const struct region_host *h)
{
    int fd = socket(h->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        close(fd);
        return true;
    }
    return !(errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM);
}

/* A probe for h, timed from now; NULL when out of memory (the round then skips h). */
static struct health_probe *health_probe_new(struct health_checker *hc, struct region_host *h)
{
    struct health_probe *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->hc = hc;
    p->host = h;
    gettimeofday(&p->started, NULL);
    p->started_ms = monotonic_ms();
    p->login_ms = p->started_ms;
    return p;
}

/* A check that logs in afresh. */
static void health_probe_fresh(struct health_checker *hc, struct region_host *h)
{
    char conninfo[2048], err[256];
    if (!hc->conninfo(hc->arg, h, conninfo, sizeof(conninfo))) {
        health_set_down(hc, h, "health check conninfo too long");
        return;
    }
    if (!health_can_open_socket(h))
        return;
    struct health_probe *p = health_probe_new(hc, h);
    if (p == NULL)
        return;
    h->check = pgasync_query(hc->base, conninfo, HEALTH_QUERY, 0, NULL, hc->params.timeout_ms,
                             health_probe_done, p, err, sizeof(err));
    if (h->check == NULL) {
        free(p);
        if (!health_error_is_local(err))
            health_set_down(hc, h, err);
    }
}

/* A check on the kept connection, while it is within the login bound; false: none started. */
static bool health_probe_kept(struct health_checker *hc, struct region_host *h)
{
    struct pgasync *conn = h->check_conn;
    if (conn == NULL)
        return false;
    h->check_conn = NULL;
    struct health_probe *p = NULL;
    /*
     * A session that took the host down since (a login refused, say 57P03 as
     * the server shuts down) is believed over the kept connection: a session
     * admitted before a smart shutdown passes every check, and would hold the
     * shutdown open besides.
     */
    if (monotonic_ms() - h->check_login_ms < hc->params.login_interval_ms &&
        health_downs(h) == h->check_downs && (p = health_probe_new(hc, h)) != NULL) {
        p->on_kept = true;
        p->login_ms = h->check_login_ms;
        if (pgasync_requery(conn, HEALTH_QUERY, 0, NULL, hc->params.timeout_ms, health_probe_done,
                            p) == 0) {
            h->check = conn;
            return true;
        }
    }
    free(p);
    pgasync_abandon(conn); /* due for a fresh login, or it could not be used */
    return false;
}

/*
 * A check of h, on the kept connection when it may be, else with a fresh login;
 * none while the last one runs.
 */
static void health_probe_start(struct health_checker *hc, struct region_host *h)
{
    if (h->check != NULL)
        return; /* the last one is still running; its timeout will end it */
    if (!health_probe_kept(hc, h))
        health_probe_fresh(hc, h);
}

/* A group's preferred region changed (route_rtt.h): the log's line, with the numbers. */
static void health_prefer_log(void *arg, const struct region *home, const struct region *from,
                              const struct region *to, double from_ms, double to_ms,
                              int64_t held_ms, bool from_slow)
{
    struct health_checker *hc = arg;
    char why[320];
    snprintf(why, sizeof(why),
             "callers nearest it now try region %s first (score %.1f ms) instead of %s (%.1f ms), "
             "preferred for %.3f s%s",
             to->name, to_ms, from->name, from_ms, (double)held_ms / 1000.0,
             from_slow ? " (no hold-down: it was just judged slow)" : "");
    hc->log(hc->arg, home, NULL, HEALTH_PREFERENCE, why);
}

/*
 * Every health_check_interval: a check of every host of every region, and
 * the groups' preferred regions from the round trips measured so far.
 */
static void health_tick(evutil_socket_t fd, short what, void *arg)
{
    struct health_checker *hc = arg;
    for (size_t r = 0; r < hc->regions->count; r++) {
        struct region *reg = &hc->regions->items[r];
        for (size_t i = 0; i < reg->nhosts; i++)
            health_probe_start(hc, &reg->hosts[i]);
    }
    route_prefer_update(hc->regions, &hc->params.rank, monotonic_ms(), health_prefer_log, hc);
}

/* Starts the hurry timer unless it runs already. */
static void health_hurry_arm(struct health_checker *hc)
{
    struct timeval hurry = {0, HEALTH_HURRY_MS * 1000};
    if (!evtimer_pending(hc->hurry_timer, NULL))
        evtimer_add(hc->hurry_timer, &hurry);
}

/*
 * Whether sessions still wait on h: else it is marked idle, so that the
 * next health_hurry knows to wake the checker.  The deadline is read again
 * after the mark: a session that moved it meanwhile is seen either here or
 * by its own look at the mark (both sequentially consistent).
 */
static bool health_hurry_wanted(struct host_health *hh, int64_t now)
{
    if (__atomic_load_n(&hh->hurry_until_ms, __ATOMIC_SEQ_CST) > now)
        return true;
    __atomic_store_n(&hh->hurry_idle, true, __ATOMIC_SEQ_CST);
    return __atomic_load_n(&hh->hurry_until_ms, __ATOMIC_SEQ_CST) > now;
}

/*
 * The standbys that sessions wait on, checked again as soon as the last
 * check ended; the timer runs only while some session waits, so an idle
 * pgnear does not wake for it.
 */
static void health_hurry_tick(evutil_socket_t fd, short what, void *arg)
{
    struct health_checker *hc = arg;
    int64_t now = monotonic_ms();
    bool any = false;
    for (size_t r = 0; r < hc->regions->count; r++) {
        struct region *reg = &hc->regions->items[r];
        for (size_t i = 0; i < reg->nhosts; i++) {
            struct region_host *h = &reg->hosts[i];
            if (!health_hurry_wanted(&h->runtime->health, now))
                continue;
            health_probe_start(hc, h);
            any = true;
        }
    }
    if (any)
        health_hurry_arm(hc);
}

void health_judge_now(struct health_checker *hc)
{
    if (hc != NULL)
        claimants_judge(hc->claimants, hc->regions, health_fence_report, hc);
}

void health_wake(struct health_checker *hc)
{
    if (hc != NULL)
        health_hurry_arm(hc);
}

struct health_checker *health_start(struct event_base *base, struct region_set *regions,
                                    const struct health_params *params, health_conninfo_fn conninfo,
                                    health_log_fn log, void *arg)
{
    struct health_checker *hc = calloc(1, sizeof(*hc));
    if (hc == NULL)
        return NULL;
    *hc = (struct health_checker){base, regions, *params, conninfo, log, arg, NULL, NULL, NULL};
    if (hc->params.fall < HEALTH_FALL_MIN)
        hc->params.fall = HEALTH_FALL_MIN;
    int interval_ms = params->interval_ms;
    hc->timer = event_new(base, -1, EV_PERSIST, health_tick, hc);
    hc->hurry_timer = evtimer_new(base, health_hurry_tick, hc);
    hc->claimants = claimants_new(regions);
    struct timeval tv = {interval_ms / 1000, (interval_ms % 1000) * 1000};
    if (hc->timer == NULL || event_add(hc->timer, &tv) != 0 || hc->hurry_timer == NULL ||
        hc->claimants == NULL) {
        health_stop(hc);
        return NULL;
    }
    /* Once, for sessions that asked while no checker ran (a reload): the tick goes on for them. */
    health_hurry_arm(hc);
    health_tick(-1, 0, hc); /* know the state right away, not one interval later */
    return hc;
}

/* Stops the checks and frees the checker, its probes and kept connections; NULL is fine. */
void health_stop(struct health_checker *hc)
{
    if (hc == NULL)
        return;
    for (size_t r = 0; r < hc->regions->count; r++) {
        struct region *reg = &hc->regions->items[r];
        for (size_t i = 0; i < reg->nhosts; i++) {
            struct region_host *h = &reg->hosts[i];
            if (h->check != NULL) {
                /* The probe struct is the callback's argument; abandoning skips the callback. */
                free(pgasync_arg(h->check));
                pgasync_abandon(h->check);
                h->check = NULL;
            }
            pgasync_abandon(h->check_conn); /* idle: its arg is NULL */
            h->check_conn = NULL;
        }
    }
    if (hc->timer)
        event_free(hc->timer);
    if (hc->hurry_timer)
        event_free(hc->hurry_timer);
    claimants_free(hc->claimants);
    free(hc);
}

bool health_mark_down(struct region_host *h)
{
    __atomic_add_fetch(&h->runtime->health.client_failures, 1, __ATOMIC_RELAXED);
    return health_take_down(h);
}

int health_count_timeout(struct region_host *h, int fall, bool *took_down)
{
    int n = __atomic_add_fetch(&h->runtime->health.consecutive_timeouts, 1, __ATOMIC_RELAXED);
    *took_down = n >= fall && health_mark_down(h);
    return n;
}

bool health_hurry(struct region_host *h, int64_t until_ms)
{
    struct host_health *hh = &h->runtime->health;
    int64_t seen = __atomic_load_n(&hh->hurry_until_ms, __ATOMIC_SEQ_CST);
    while (seen < until_ms &&
           !__atomic_compare_exchange_n(&hh->hurry_until_ms, &seen, until_ms, true,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
        ;
    return __atomic_exchange_n(&hh->hurry_idle, false, __ATOMIC_SEQ_CST);
}

bool health_note_conn_lost(struct region_host *h)
{
    int64_t now = monotonic_ms();
    return health_doubt(&h->runtime->health, now) && health_hurry(h, now + HEALTH_DOUBT_HURRY_MS);
}

bool health_hurry_hosts(struct region_set *regions, health_host_pick pick, void *arg,
                        int64_t until_ms)
{
    bool wake = false;
    for (size_t r = 0; r < regions->count; r++) {
        struct region *reg = &regions->items[r];
        for (size_t i = 0; i < reg->nhosts; i++)
            if (pick == NULL || pick(&reg->hosts[i], arg))
                wake |= health_hurry(&reg->hosts[i], until_ms);
    }
    return wake;
}

unsigned health_downs(const struct region_host *h)
{
    return __atomic_load_n(&h->runtime->health.downs, __ATOMIC_RELAXED);
}

bool health_note_login(struct region_host *h, unsigned downs_seen)
{
    struct host_health *hh = &h->runtime->health;
    /* Loaded first: most logins find nothing to change and write nothing (no shared-line
     * ping-pong). */
    if (__atomic_load_n(&hh->consecutive_timeouts, __ATOMIC_RELAXED) != 0)
        __atomic_store_n(&hh->consecutive_timeouts, 0, __ATOMIC_RELAXED);
    if (host_is_reachable(h) || health_downs(h) != downs_seen)
        return false;
    return !__atomic_exchange_n(&hh->up, true, __ATOMIC_RELAXED);
}

void health_note_answer(struct region_host *h)
{
    int64_t now = monotonic_ms();
    /* Loaded first: within a millisecond, the many answers of a busy host write once. */
    if (__atomic_load_n(&h->runtime->health.last_answer_ms, __ATOMIC_RELAXED) < now)
        __atomic_store_n(&h->runtime->health.last_answer_ms, now, __ATOMIC_RELAXED);
}

bool health_answered_since(const struct region_host *h, int64_t since_ms)
{
    int64_t last = __atomic_load_n(&h->runtime->health.last_answer_ms, __ATOMIC_RELAXED);
    return last != 0 && last >= since_ms;
}

unsigned health_login_overlap(int64_t login_us, int64_t rtt_us, int round_trips)
{
    if (login_us <= 0 || rtt_us <= 0 || round_trips <= 0)
        return 1;
    int64_t network_us = rtt_us * round_trips;
    int64_t server_us = login_us - network_us;
    if (server_us * HEALTH_LOGINS_AT_ONCE_MAX <= login_us)
        return HEALTH_LOGINS_AT_ONCE_MAX;
    return (unsigned)(login_us / server_us);
}

void health_note_login_time(struct region_host *h, int64_t login_us, int64_t tcp_rtt_us,
                            int round_trips)
{
    int64_t rtt_us =
        (int64_t)(rtt_floor_ms(&h->runtime->health.rtt) * 1000) - HEALTH_CHECK_SLACK_US;
    if (tcp_rtt_us > rtt_us)
        rtt_us = tcp_rtt_us;
    unsigned n = health_login_overlap(login_us, rtt_us, round_trips);
    /* Loaded first: a crowd's logins to one host mostly find the same figure. */
    if (__atomic_load_n(&h->runtime->health.logins_at_once, __ATOMIC_RELAXED) != n)
        __atomic_store_n(&h->runtime->health.logins_at_once, n, __ATOMIC_RELAXED);
}

unsigned health_logins_at_once(const struct region_host *h)
{
    unsigned n = __atomic_load_n(&h->runtime->health.logins_at_once, __ATOMIC_RELAXED);
    return n > 0 ? n : 1;
}
