/*
 * server_connect.c — opening a connection to a server of the chosen
 * region (CONNECT, SERVER_SSL, SERVER_TLS): which host and region to try
 * next, the dial (TCP, SSLRequest and TLS per server_tls), and what a
 * failed attempt says about its host.  The login on the open connection
 * is server_login.c's.
 */
#include "proxy/server_connect.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "protocol/tls.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/phase.h"
#include "proxy/pool.h"
#include "proxy/server_conn.h"
#include "proxy/server_dial.h"
#include "proxy/session.h"
#include "proxy/worker.h"
#include "routing/health.h"
#include "routing/region.h"

/* The region of the plan being tried. */
static struct region *server_region(const struct session *s)
{
    return s->login->plan[s->login->plan_index];
}

/*
 * The order to try the region's hosts in: up primaries, then up standbys
 * (by their last health check; a region of standbys still serves
 * read-only work), each group in configured order; all hosts in
 * configured order when none is up.
 */
static void server_order_hosts(struct session *s)
{
    const struct region *r = server_region(s);
    s->login->host_count = s->login->host_pos = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < r->nhosts; i++) {
            const struct region_host *h = &r->hosts[i];
            bool take = s->login->region_any_host
                            ? pass == 0
                            : host_is_up(h) && host_is_standby(h) == (pass == 1);
            if (take)
                s->login->host_order[s->login->host_count++] = (uint8_t)i;
        }
    }
}

/* The next host worth trying (still up, unless none was); NULL when none is left. */
static struct region_host *server_pick_host(struct session *s)
{
    struct region *r = server_region(s);
    while (s->login->host_pos < s->login->host_count) {
        struct region_host *h = &r->hosts[s->login->host_order[s->login->host_pos++]];
        if (s->login->region_any_host || host_is_up(h))
            return h;
    }
    return NULL;
}

/* Enters plan[index]: its up hosts, or all of them when none is up. */
static struct region_host *server_enter_region(struct session *s, size_t index)
{
    s->login->plan_index = index;
    s->region = server_region(s);
    s->login->region_any_host = !region_is_up(server_region(s));
    server_order_hosts(s);
    return server_pick_host(s);
}

/* Marks the host as the verdict says, for every session, without waiting for its health check. */
static void server_mark_host(struct session *s, const struct server_conn *sc, enum server_verdict v,
                             const char *why)
{
    struct region_host *h = sc->host;
    bool down = false;
    if (v == HOST_UNREACHABLE)
        down = health_mark_down(h);
    if (v == HOST_SLOW) {
        int n = health_count_timeout(h, s->cfg->health_check_fall, &down);
        if (!down && n < s->cfg->health_check_fall)
            log_info(s->id, "host %s:%d of region %s timed out (%d of %d); it stays up for now",
                     h->name, h->port, sc->region->name, n, s->cfg->health_check_fall);
    }
    if (down)
        log_warn(s->id, "host %s:%d of region %s is down: %s", h->name, h->port, sc->region->name,
                 why);
}

void server_connect_failed(struct session *s, const char *why, enum server_verdict v)
{
    struct server_conn *sc = s->server_conn;
    stat_inc(&s->w->stats.server_connect_failures);
    log_warn(s->id, "server %s:%d of region %s failed: %s", sc->host->name, sc->host->port,
             sc->region->name, why);
    server_mark_host(s, sc, v, why);
    server_conn_close(sc, false);
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
    int rc = server_dial_step(&s->login->dial);
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
        log_debug(s->id, "server TLS established (%s)", SSL_get_version(sc->ep.stream.ssl));
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
    char detail[160];
    snprintf(detail, sizeof(detail), "%s failed: %s.", call, strerror(err));
    stat_inc(&s->w->stats.login_failures);
    log_warn(s->id, "no server connection for this login: %s failed: %s", call, strerror(err));
    session_fail(s, "53300", "pgnear could not open a connection to the server", detail,
                 "pgnear is out of file descriptors, memory or local ports; raise its "
                 "open-files limit (ulimit -n) or lower max_client_conn.");
}

/* A kept connection to h takes the session, if one fits: handed over instead of dialed. */
static bool server_take_kept(struct session *s, struct region_host *h)
{
    if (!s->login->pool_share || s->login->warming)
        return false;
    struct server_conn *sc = pool_take(s, server_region(s), h);
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
    if (server_take_kept(s, h) || !pool_reserve(s, h))
        return;
    struct server_conn *sc = server_conn_new(s, server_region(s), h);
    if (sc == NULL) {
        pool_unreserve(s);
        session_fail(s, "53200", "out of memory", NULL, NULL);
        return;
    }
    sc->counted = s->login->slot_reserved; /* the connection holds the slot from now on */
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
    if (endpoint_attach(s, &sc->ep, sc->ep.stream.fd) != 0) {
        session_close(s, "out of memory");
        return;
    }
    s->login->host_downs_seen = health_downs(h);
    log_debug(s->id, "connecting to %s:%d in region %s", h->name, h->port, sc->region->name);
    session_set_timer(s, s->cfg->server_connect_timeout_ms);
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
            log_info(s->id, "failing over to region %s", server_region(s)->name);
        }
        return h;
    }
    return NULL;
}

void server_connect_kept_failed(struct session *s, const char *why)
{
    struct server_conn *sc = s->server_conn;
    struct region_host *h = sc->host;
    log_info(s->id, "kept server connection %llu to %s:%d failed: %s; trying another",
             (unsigned long long)sc->id, h->name, h->port, why);
    server_conn_close(sc, false);
    s->login->retry_host = h;
    phase_enter(s, PHASE_CONNECT);
}

void server_connect_enter(struct session *s)
{
    struct session_login *l = s->login;
    l->pool_share = pool_session_may_share(s);
    if (l->retry_host != NULL) {
        struct region_host *again = l->retry_host;
        l->retry_host = NULL;
        server_connect_host(s, again);
        return;
    }
    struct region_host *h = server_next_host(s);
    if (h != NULL) {
        l->servers_tried = true;
        server_connect_host(s, h);
        return;
    }
    if (!l->servers_tried) {
        session_fail(s, "08001", "no region has a host to connect to", NULL, NULL);
        return;
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "could not connect to any server of region \"%s\"%s",
             l->plan[0]->name, l->plan_len > 1 ? " or of the regions after it" : "");
    stat_inc(&s->w->stats.login_failures);
    session_fail(s, "08001", msg, l->server_failure, NULL);
}
