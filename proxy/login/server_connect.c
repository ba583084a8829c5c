/*
 * server_connect.c — opening a connection to a server of the chosen
 * region (CONNECT, SERVER_SSL, SERVER_TLS): which host and region to try
 * next, the dial (TCP, SSLRequest and TLS per server_tls), and what a
 * failed attempt says about its host.  The login on the open connection
 * is server_login.c's.
 */
#include "proxy/login/server_connect.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "protocol/clock.h"
#include "protocol/lsn.h"
#include "protocol/tls.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/login/login_greet.h"
#include "proxy/login/session_route.h"
#include "proxy/pool/pool.h"
#include "proxy/pool/pool_wait.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/server_dial.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/need.h"
#include "routing/region.h"
#include "routing/route.h"

/* The region of the plan being tried. */
static struct region *server_region(const struct session *s)
{
    return s->login->plan[s->login->plan_index];
}

/*
 * The order to try the region's hosts in (need_host_order): best fit for
 * the session's need first (for "any": up primaries, then up standbys, a
 * region of standbys still serving read-only work), then the fallbacks,
 * then the hosts that are down.
 */
static void server_order_hosts(struct session *s)
{
    s->login->host_pos = 0;
    s->login->host_count =
        (uint8_t)need_host_order(server_region(s), &s->need, s->login->host_order);
}

/* From *pos on, the next host of order worth trying: up, unless any is (none was); else NULL. */
static struct region_host *server_order_next(struct region *r, const uint8_t *order, uint8_t count,
                                             uint8_t *pos, bool any)
{
    while (*pos < count) {
        struct region_host *h = &r->hosts[order[(*pos)++]];
        if (any || host_is_up(h))
            return h;
    }
    return NULL;
}

/* The next host worth trying (still up, unless none was); NULL when none is left. */
static struct region_host *server_pick_host(struct session *s)
{
    struct session_login *l = s->login;
    return server_order_next(server_region(s), l->host_order, l->host_count, &l->host_pos,
                             l->region_any_host);
}

/* Whether a login entering r tries every host, up or down: none that fits is up. */
static bool server_region_any_host(const struct region *r, const struct need_spec *need)
{
    return need_region_fit(r, need) == NEED_FIT_LAST;
}

struct region_host *server_connect_first_host(struct region *r, const struct need_spec *need)
{
    uint8_t order[REGION_MAX_HOSTS], pos = 0;
    uint8_t count = (uint8_t)need_host_order(r, need, order);
    return server_order_next(r, order, count, &pos, server_region_any_host(r, need));
}

/* Enters plan[index]: its hosts that fit, or those that are down when none that fits is up. */
static struct region_host *server_enter_region(struct session *s, size_t index)
{
    s->login->plan_index = index;
    s->region = server_region(s);
    s->login->region_any_host = server_region_any_host(server_region(s), &s->need);
    server_order_hosts(s);
    return server_pick_host(s);
}

/* Marks the host as the verdict says, for every session, without waiting for its health check. */
static void server_mark_host(struct session *s, const struct server_conn *sc, enum server_verdict v,
                             const char *why)
{
    struct region_host *h = sc->host;
    bool down = false;
    if (v == HOST_UNREACHABLE || v == HOST_CLOSING)
        down = health_mark_down(h);
    if (v == HOST_SLOW) {
        int n = health_count_timeout(h, s->cfg->health_check_fall, &down);
        if (!down && n < s->cfg->health_check_fall)
            slog_info(s, "host %s:%d of region %s timed out (%d of %d); it stays up for now",
                      h->name, h->port, sc->region->name, n, s->cfg->health_check_fall);
    }
    if (down)
        slog_warn(s, "host %s:%d of region %s is down: %s", h->name, h->port, sc->region->name,
                  why);
}

void server_connect_failed(struct session *s, const char *why, enum server_verdict v)
{
    struct server_conn *sc = s->server_conn;
    stat_inc(&s->w->stats.server_connect_failures);
    slog_warn(s, "server %s:%d of region %s failed: %s", sc->host->name, sc->host->port,
              sc->region->name, why);
    server_mark_host(s, sc, v, why);
    server_conn_close(sc, false);
}

bool server_connect_wait_busy(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    struct session_login *l = s->login;
    if (sc == NULL || l == NULL || l->resumed || sc->answered ||
        !health_answered_since(sc->host, l->server_wait_mark_ms))
        return false;
    int64_t now = monotonic_ms();
    slog_debug(s,
               "host %s:%d answers other connections, not yet this one (%.1f s): busy, waiting on",
               sc->host->name, sc->host->port, (double)(now - l->server_wait_start_ms) / 1000.0);
    l->server_wait_mark_ms = now;
    session_set_timer(s, s->cfg->server_connect_timeout_ms);
    return true;
}

/* Where the dial is, as a phase (for SHOW and the logs; the timer means the same in each). */
static enum session_phase server_dial_phase(enum server_dial_stage stage)
{
    switch (stage) {
    case DIAL_SSL_ANSWER:
        return PHASE_SERVER_SSL;
    case DIAL_HANDSHAKE:
        return PHASE_SERVER_TLS;
    default:
        return PHASE_CONNECT;
    }
}

/* The server endpoint's reader until the connection is up (TLS included). */
static void server_dialing(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    bool asked = s->login->dial.stage == DIAL_SSL_ANSWER;
    int rc = server_dial_step(&s->login->dial);
    if (asked && rc != DIAL_FAILED && (rc == DIAL_DONE || s->login->dial.stage != DIAL_SSL_ANSWER))
        health_note_answer(sc->host); /* the SSLRequest was answered */
    enum session_phase stage = server_dial_phase(s->login->dial.stage);
    if (stage != s->phase)
        phase_enter(s, stage);
    if (rc == DIAL_AGAIN) {
        endpoint_arm(&sc->ep); /* for what the dial now waits for */
        return;
    }
    if (rc == DIAL_FAILED) {
        phase_server_failed(s, s->login->dial.why, HOST_UNREACHABLE);
        return;
    }
    sc->tls = sc->ep.stream.ssl != NULL;
    if (sc->tls)
        slog_debug(s, "server TLS established (%s)", SSL_get_version(sc->ep.stream.ssl));
    phase_done(s);
}

/* Errors of this machine, not of the host: out of descriptors, memory or local ports. */
static bool server_error_is_local(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM ||
           err == EADDRNOTAVAIL;
}

/*
 * pgnear itself ran out of something: this login fails, and nobody else
 * pays — the host is not marked down (it was never asked) and no other
 * host or region is tried, since they would fail the same way.
 */
static void server_fail_local(struct session *s, const char *call, int err)
{
    slog_warn(s, "no server connection for this login: %s failed: %s", call, strerror(err));
    struct pg_error e;
    pg_error_set(&e, "53300", "pgnear could not open a connection to the server");
    pg_error_detail(&e, "%s failed: %s.", call, strerror(err));
    pg_error_hint(&e, "pgnear is out of file descriptors, memory or local ports; raise its "
                      "open-files limit (ulimit -n) or lower max_client_conn.");
    session_fail(s, &e);
}

/* A kept connection to h takes the session, if one fits: handed over instead of dialed. */
static bool server_take_kept(struct session *s, struct region_host *h)
{
    if (!s->login->pool_share || s->login->warming)
        return false;
    struct server_conn *sc = pool_take(s, server_region(s), h, false);
    if (sc == NULL)
        return false;
    pool_unreserve(s); /* a slot counted for a new connection is not needed */
    s->login->resumed = true;
    s->login->host_downs_seen = health_downs(h);
    phase_enter(s, PHASE_SERVER_LOGIN);
    return true;
}

static void server_connect_host(struct session *s, struct region_host *h)
{
    s->login->resumed = false;
    if (login_greet(s, server_region(s), h))
        return;
    if (server_take_kept(s, h) || !pool_reserve(s, h))
        return;
    struct server_conn *sc = server_conn_new(s, server_region(s), h);
    if (sc == NULL) {
        pool_unreserve(s);
        session_fail_msg(s, "53200", "out of memory");
        return;
    }
    sc->poolable = s->login->pool_share;
    sc->counted = s->login->slot_reserved; /* the connection holds the slot from now on */
    sc->pool_slice = s->login->slot_slice;
    s->login->slot_reserved = false;
    struct server_dial *d = &s->login->dial;
    server_dial_init(d, &sc->ep.stream, s->cfg->server_tls_ctx,
                     (enum tls_server_mode)s->cfg->server_tls, h->name);
    if (server_dial_start(d, (const struct sockaddr *)&h->addr, h->addrlen) == DIAL_FAILED) {
        if (server_error_is_local(d->failed_errno))
            server_fail_local(s, d->failed_call, d->failed_errno);
        else
            phase_server_failed(s, d->why, HOST_UNREACHABLE);
        return;
    }
    session_tune_tcp(s->cfg, sc->ep.stream.fd);
    /* On failure the socket stays in the stream, and closing the connection closes it. */
    if (endpoint_attach(&sc->ep, sc->ep.stream.fd) != 0) {
        session_close(s, "out of memory");
        return;
    }
    s->login->host_downs_seen = health_downs(h);
    slog_debug(s, "connecting to %s:%d in region %s", h->name, h->port, sc->region->name);
    session_set_timer(s, s->cfg->server_connect_timeout_ms);
    s->login->server_wait_start_ms = s->login->server_wait_mark_ms = monotonic_ms();
    endpoint_wait_writable(&sc->ep, server_dialing);
}

/*
 * The next host to try: the first of the plan, the first time; then the
 * rest of its region, then the regions after it in the plan's order.
 */
static struct region_host *server_next_host(struct session *s)
{
    struct session_login *l = s->login;
    struct region_host *h;
    size_t from = 0;
    if (l->servers_tried) {
        if ((h = server_pick_host(s)) != NULL)
            return h;
        from = l->plan_index + 1;
    }
    for (size_t i = from; i < l->plan_len; i++) {
        if ((h = server_enter_region(s, i)) == NULL)
            continue;
        if (l->servers_tried) {
            stat_inc(&s->w->stats.failovers);
            slog_info(s, "failing over to region %s", server_region(s)->name);
        }
        return h;
    }
    return NULL;
}

void server_connect_kept_failed(struct session *s, const char *why)
{
    struct server_conn *sc = s->server_conn;
    struct region_host *h = sc->host;
    slog_info(s, "kept server connection %llu to %s:%d failed: %s; trying another",
              (unsigned long long)sc->id, h->name, h->port, why);
    server_conn_close(sc, false);
    s->login->retry_host = h;
    phase_enter(s, PHASE_CONNECT);
}

/*
 * Whether the session's need passes some hosts over: a role, or a
 * position that only some hosts have (pgnear.min_lsn, nearest's own
 * writes): one of them may come to fit.  A need for any host with no
 * position takes whatever is up: when none is left, none will come.
 */
static bool server_need_excludes_hosts(const struct session *s)
{
    return !need_takes_any_role(s->need.role) || need_has_position(&s->need);
}

/*
 * No host that fits the session's need is left to try: one may come (a
 * standby promoted, a primary back, a standby replaying the position), so
 * a session whose need excludes hosts waits up to failover_wait for one,
 * from the first time it found none.  One rule for every login: a
 * client's, a move's mover, a transaction's fetcher (nearest's own writes
 * make its need a position), when the primary it needs refuses logins as
 * it shuts down (57P03, 57P01: HOST_CLOSING) or refuses the connection.
 */
static bool server_may_wait_for_role(struct session *s)
{
    struct session_login *l = s->login;
    if (session_route_waits_for_replay(s))
        return true; /* for a standby to replay pgnear.min_lsn: min_lsn_wait */
    if (!server_need_excludes_hosts(s) || s->cfg->failover_wait_ms <= 0 || l->warming)
        return false;
    int64_t now = monotonic_ms();
    if (l->need_wait_until_ms == 0)
        l->need_wait_until_ms = now + s->cfg->failover_wait_ms;
    return now < l->need_wait_until_ms;
}

/*
 * A fenced session (pgnear.min_lsn) that some up host of its role could
 * serve but for the position: the position is what is missing.
 */
static bool server_position_missing(const struct session *s)
{
    struct need_spec role_only = {.role = s->need.role};
    if (s->need.min_lsn == 0) /* (a last read to follow alone: the shortfall says so) */
        return false;
    for (size_t i = 0; i < s->cfg->regions.count; i++) {
        const struct region *r = &s->cfg->regions.items[i];
        for (size_t j = 0; j < r->nhosts; j++)
            if (host_is_up(&r->hosts[j]) &&
                need_host_fit(&r->hosts[j], &role_only) != NEED_FIT_NONE)
                return true;
    }
    return false;
}

/* Why no host served the need, for the client: each region that could not, and why. */
static void server_fail_need(struct session *s)
{
    char detail[600] = "", msg[200];
    size_t len = 0;
    bool position = server_position_missing(s);
    for (size_t i = 0; i < s->cfg->regions.count && len < sizeof(detail) - 1; i++) {
        const struct region *r = &s->cfg->regions.items[i];
        char why[160];
        if (need_region_shortfall(r, &s->need, why, sizeof(why))[0] == '\0')
            snprintf(why, sizeof(why), "its hosts failed");
        int w = snprintf(detail + len, sizeof(detail) - len, "%s%s: %s",
                         len ? "; " : "Regions: ", r->name, why);
        if (w > 0)
            len += (size_t)w;
    }
    if (position) {
        char lsn[LSN_TEXT_MAX];
        snprintf(msg, sizeof(msg), "no %s server has replayed pgnear.min_lsn %s yet",
                 need_name(s->need.role),
                 lsn_format(s->need.min_tli, s->need.min_lsn, lsn, sizeof(lsn)));
    } else {
        snprintf(msg, sizeof(msg), "no server that is %s is available", need_name(s->need.role));
    }
    slog_warn(s, "%s (waited up to failover_wait = %d ms): %s", msg, s->cfg->failover_wait_ms,
              detail);
    struct pg_error err;
    pg_error_set(&err, "08001", "%s", msg);
    pg_error_detail(&err, "%s", detail);
    pg_error_hint(&err, "%s",
                  position ? "Retry; or connect with pgnear.target_session_attrs=prefer-standby, "
                             "which reads from the primary when no standby has the position; or "
                             "raise min_lsn_wait, how long a read waits for a standby to replay it."
                           : "The primary may be failing over; retry, or connect with a "
                             "pgnear.target_session_attrs that other hosts satisfy.");
    session_fail(s, &err);
}

/*
 * A login that began before a reload and finds no host under the
 * configuration it began with (a name DNS moved: its one address fenced)
 * takes the one swapped in since, once, and plans again; its named region
 * is looked up there by name.
 */
static bool server_take_reload(struct session *s)
{
    struct session_login *l = s->login;
    struct config *now = s->w->cfg;
    if (now == s->cfg || l->cfg_began != NULL)
        return false;
    l->cfg_began = s->cfg;
    s->cfg = config_ref(now);
    if (l->loc.region != NULL)
        l->loc.region = region_set_find(&now->regions, l->loc.region->name);
    l->retry_host = NULL;
    session_route_plan(s);
    slog_info(s, "route: planned again under the configuration loaded since it came: %s",
              l->plan_len > 0 ? l->plan[0]->name : "no region has a host that fits yet");
    return true;
}

void server_connect_enter(struct session *s)
{
    latency_wait_begin(&s->lat);
    struct session_login *l = s->login;
    l->pool_share = session_may_share_server(s);
    if (l->retry_host != NULL) {
        struct region_host *again = l->retry_host;
        l->retry_host = NULL;
        server_connect_host(s, again);
        return;
    }
    struct region_host *h = server_next_host(s);
    if (h == NULL && server_take_reload(s))
        h = server_next_host(s);
    if (h != NULL) {
        l->servers_tried = true;
        server_connect_host(s, h);
        return;
    }
    if (server_may_wait_for_role(s)) {
        phase_enter(s, PHASE_WAIT_ROLE);
        return;
    }
    if (!need_takes_any_role(s->need.role)) {
        server_fail_need(s);
        return;
    }
    if (!l->servers_tried) {
        session_fail_msg(s, "08001", "no region has a host to connect to");
        return;
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "could not connect to any server of region \"%s\"%s",
             l->plan[0]->name, l->plan_len > 1 ? " or of the regions after it" : "");
    struct pg_error err;
    pg_error_set(&err, "08001", "%s", msg);
    pg_error_detail(&err, "%s", l->server_failure);
    session_fail(s, &err);
}

/* How often a session waiting for a role looks again: health checks change roles. */
#define ROLE_WAIT_POLL_MS 50

/*
 * While a session waits for a role (a primary failing over), every host is
 * checked every HEALTH_HURRY_MS instead of every health_check_interval, a
 * while at a time that each look renews: the promoted host is known, and
 * the session goes on, a few local round trips after it takes writes.
 */
#define ROLE_WAIT_HURRY_MS 250

void server_role_wait_enter(struct session *s)
{
    session_route_check_all_soon(s, monotonic_ms() + ROLE_WAIT_HURRY_MS);
    session_set_timer(s, ROLE_WAIT_POLL_MS);
}

/* WAIT_ROLE's timer: plans again; connects when a host fits, else waits on until failover_wait. */
void server_role_wait_tick(struct session *s)
{
    struct session_login *l = s->login;
    bool nearer_waited = l->nearer_waiting;
    if (!server_take_reload(s))
        session_route_plan(s);
    if (l->nearer_waiting && !nearer_waited)
        slog_info(s,
                  "route: region %s has replayed pgnear.min_lsn; waiting up to %d ms for a "
                  "nearer standby on its way there",
                  l->plan[0]->name, NEARER_REPLAY_GRACE_MS);
    for (size_t i = 0; i < l->plan_len; i++) {
        if (need_region_fit(l->plan[i], &s->need) >= NEED_FIT_LAST)
            continue; /* the named region may come first, down */
        slog_info(s, "route: region %s now has a host that is %s", l->plan[i]->name,
                  need_name(s->need.role));
        phase_done(s);
        return;
    }
    if (monotonic_ms() >= l->need_wait_until_ms) {
        phase_done(s); /* CONNECT tries what is left (hosts down), then fails */
        return;
    }
    pool_wait_role_tick(s);
    session_route_check_all_soon(s, monotonic_ms() + ROLE_WAIT_HURRY_MS);
    session_set_timer(s, ROLE_WAIT_POLL_MS);
}
