/*
 * flow.c — the phases of a session's login and what each does: the table
 * the phase engine (session/phase.c) runs, handed to it at start through
 * struct shared.  Every phase file's entry points meet here and nowhere
 * else, so the engine and the session below know none of them.
 */
#include "proxy/login/flow.h"

#include <stdio.h>

#include "protocol/tls.h"
#include "proxy/admin/console.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/login/client_auth.h"
#include "proxy/login/client_login.h"
#include "proxy/login/hba_auth.h"
#include "proxy/login/login_limits.h"
#include "proxy/login/login_throttle.h"
#include "proxy/login/server_connect.h"
#include "proxy/login/server_handover.h"
#include "proxy/login/server_login.h"
#include "proxy/login/ws_ingress.h"
#include "proxy/pool/pool.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/fetch.h"
#include "proxy/session/former_primary.h"
#include "proxy/session/latency_hooks.h"
#include "proxy/session/move.h"
#include "proxy/session/relay.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/timeouts.h"
#include "proxy/session/txn.h"

static void flow_to_startup(struct session *s)
{
    phase_enter(s, PHASE_STARTUP);
}

/* The TLS of wss comes before the HTTP request; any other before the startup packet proper. */
static void flow_after_client_tls(struct session *s)
{
    phase_enter(s, s->websocket && s->client.stream.ws == NULL ? PHASE_WEBSOCKET : PHASE_STARTUP);
}

/*
 * The startup packet is in.  The admin console takes its trusted peer at
 * once; anyone else passes auth_hba_file (auth = hba, cert) and is
 * authenticated — by pgnear (auth = scram, an hba line's scram-sha-256,
 * and always for the console) or by the server (passthrough, an hba
 * line's cert or trust: CONNECT) — after the wait this caller and user
 * earned by failing.
 */
static void flow_after_startup(struct session *s)
{
    if (s->login->for_console && console_trusts_peer(s)) {
        slog_info(s, "admin console: trusted over the Unix socket (same OS user as pgnear)");
        phase_enter(s, PHASE_ADMIN);
        return;
    }
    if (!hba_auth_admit(s))
        return;
    bool by_pgnear = hba_auth_by_pgnear(s);
    if (!by_pgnear && !login_limits_admit(s)) /* the server authenticates: known before it says */
        return;
    login_throttle_gate(s, by_pgnear ? PHASE_CLIENT_AUTH : PHASE_CONNECT);
}

/* pgnear verified the client: the console answers it, or a server of its route serves it. */
static void flow_after_client_auth(struct session *s)
{
    if (!s->login->for_console && !login_limits_admit(s))
        return;
    phase_enter(s, s->login->for_console ? PHASE_ADMIN : PHASE_CONNECT);
}

static void flow_to_connect(struct session *s)
{
    phase_enter(s, PHASE_CONNECT);
}

static void flow_to_server_login(struct session *s)
{
    phase_enter(s, PHASE_SERVER_LOGIN);
}

/*
 * Relaying starts: what only the login needed is let go first, since
 * whether transaction pooling applies depends on what it kept (the keys
 * pgnear logs in with elsewhere).
 */
static void flow_active_enter(struct session *s)
{
    latency_session_login_end(s);
    session_login_end(s);
    txn_session_start(s);
    s->busy++; /* relay_start may end the session (a bad first message): read it after */
    if (s->server_conn != NULL)
        relay_start(s);
    else
        relay_start_detached(s); /* answered without a server (login_greet.h) */
    if (!s->closed && s->phase == PHASE_ACTIVE)
        timeouts_start(s);
    session_callback_done(s);
}

/* A fetcher's connection is its owner's (a move's, a transaction's, the pool's warm-up). */
static void flow_to_active(struct session *s)
{
    if (!fetch_ready(s))
        phase_enter(s, PHASE_ACTIVE);
}

/* No PROXY header in time: a load balancer sends it at once, so this is no client of ours. */
static void flow_proxy_header_timeout(struct session *s)
{
    session_login_closed(s, "no PROXY protocol header in time");
}

static void flow_login_timeout(struct session *s)
{
    if (s->websocket && s->client.stream.ws == NULL) {
        session_login_closed(s, "wss TLS handshake not done within websocket_handshake_timeout");
        return;
    }
    session_fail_msg(s, "57014", "canceling authentication due to timeout");
}

static void flow_server_timeout(struct session *s)
{
    if (!server_connect_wait_busy(s))
        phase_server_failed(s, "timeout", HOST_SLOW);
}

/* A server that has not answered yet counts as unreachable; after its answer the login is late. */
static void flow_server_login_timeout(struct session *s)
{
    if (s->server_conn != NULL && !s->server_conn->answered)
        flow_server_timeout(s);
    else
        flow_login_timeout(s);
}

static void flow_closing_timeout(struct session *s)
{
    session_close(s, "client did not read the final error");
}

/* websocket_port: wss's TLS first, or the HTTP request; the whole upgrade within its timeout. */
static enum session_phase flow_first_websocket(struct session *s)
{
    session_set_timer(s, s->cfg->websocket_handshake_timeout_ms);
    if (!s->cfg->websocket_tls)
        return PHASE_WEBSOCKET;
    if (s->cfg->client_tls_ctx == NULL ||
        (s->client.stream.ssl = tls_new_client_ssl(s->cfg->client_tls_ctx, s->client.stream.fd)) ==
            NULL)
        return PHASE_COUNT;
    tls_alpn_skip(s->client.stream.ssl); /* a browser's ALPN (http/1.1) is HTTP's, not ours */
    return PHASE_CLIENT_TLS;
}

/*
 * A new connection: wss's TLS or the HTTP request on websocket_port, else
 * the PROXY header when one is expected, else the startup packet.
 * PHASE_COUNT: the session could not start (closed).
 */
static enum session_phase flow_first_phase(struct session *s)
{
    /* The fleet's peers send one ahead of the cancel requests they forward, whatever the mode. */
    bool proxy_header = (s->cfg->proxy_protocol != PROXY_PROTOCOL_OFF ||
                         config_is_peer_addr(s->cfg, (const struct sockaddr *)&s->addr)) &&
                        !s->unix_socket;
    enum session_phase first = proxy_header ? PHASE_PROXY_HEADER : PHASE_STARTUP;
    if (s->websocket && (first = flow_first_websocket(s)) == PHASE_COUNT)
        session_close(s, "could not create the TLS session of wss");
    return first;
}

/* A kept connection is handed over; a new one logs in. */
static void flow_server_login_enter(struct session *s)
{
    if (s->login->resumed)
        server_handover_enter(s);
    else
        server_login_enter(s);
}

/* Closed during its login: what it waits for or holds lets go of it. */
static void flow_login_abort(struct session *s)
{
    pool_wait_stop(s);
    pool_unreserve(s);
    login_throttle_release(s); /* a held login must not wake up */
    fetch_lost(s);
}

static void flow_server_failed(struct session *s, const char *why, enum server_verdict v)
{
    bool sent_to_client = s->server_conn->sent_to_client;
    if (s->login->resumed && !sent_to_client) {
        server_connect_kept_failed(s, why);
        return;
    }
    server_connect_failed(s, why, v);
    if (sent_to_client) {
        struct pg_error err;
        pg_error_set(&err, "08006", "lost the server connection during login");
        pg_error_detail(&err, "%s", why);
        session_fail(s, &err);
        return;
    }
    snprintf(s->login->server_failure, sizeof(s->login->server_failure), "%s", why);
    phase_enter(s, PHASE_CONNECT);
}

/* One row per phase; a session moves down it, to ACTIVE or ADMIN, and may close from anywhere. */
const struct session_flow login_flow =
    {
        .rows =
            {
                [PHASE_PROXY_HEADER] = {.enter = client_proxy_enter,
                                        .on_timeout = flow_proxy_header_timeout,
                                        .done = flow_to_startup,
                                        .exits = PHASE_BIT(PHASE_STARTUP)},
                /* websocket_port: the HTTP request, /healthz, the upgrade; then the startup packet.
                 */
                [PHASE_WEBSOCKET] = {.enter = ws_ingress_enter,
                                     .on_timeout = ws_ingress_timeout,
                                     .done = flow_to_startup,
                                     .exits = PHASE_BIT(PHASE_STARTUP)},
                /*
                 * The TLS handshake (an SSLRequest) comes back here for the startup packet
                 * proper; then the auth throttle may hold the login before it goes on.
                 */
                [PHASE_STARTUP] = {.enter = client_startup_enter,
                                   .on_timeout = flow_login_timeout,
                                   .done = flow_after_startup,
                                   .exits = PHASE_BIT(PHASE_CLIENT_TLS) | PHASE_BIT(PHASE_ADMIN) |
                                            PHASE_BIT(PHASE_CLIENT_AUTH) |
                                            PHASE_BIT(PHASE_CONNECT)},
                [PHASE_CLIENT_TLS] = {.enter = client_tls_enter,
                                      .on_timeout = flow_login_timeout,
                                      .done = flow_after_client_tls,
                                      .exits =
                                          PHASE_BIT(PHASE_WEBSOCKET) | PHASE_BIT(PHASE_STARTUP)},
                [PHASE_CLIENT_AUTH] = {.enter = client_auth_enter,
                                       .on_timeout = flow_login_timeout,
                                       .done = flow_after_client_auth,
                                       .exits = PHASE_BIT(PHASE_ADMIN) | PHASE_BIT(PHASE_CONNECT)},
                /*
                 * A server that does not answer in time counts as unreachable.  The dial
                 * labels its stages (SERVER_SSL, SERVER_TLS); a kept connection is handed
                 * over (SERVER_LOGIN), or the login answered without one (ACTIVE,
                 * login_greet.h); a failed host is left for the next (CONNECT again);
                 * a session may wait for a host that fits (WAIT_ROLE) or for the pool
                 * (WAIT_SERVER).
                 */
                [PHASE_CONNECT] = {.enter = server_connect_enter,
                                   .on_timeout = flow_server_timeout,
                                   .done = flow_to_server_login,
                                   .exits = PHASE_BIT(PHASE_SERVER_SSL) |
                                            PHASE_BIT(PHASE_SERVER_TLS) |
                                            PHASE_BIT(PHASE_SERVER_LOGIN) |
                                            PHASE_BIT(PHASE_CONNECT) | PHASE_BIT(PHASE_WAIT_ROLE) |
                                            PHASE_BIT(PHASE_WAIT_SERVER) | PHASE_BIT(PHASE_ACTIVE)},
                /* No host fits the session's need yet: CONNECT again once one does. */
                [PHASE_WAIT_ROLE] = {.enter = server_role_wait_enter,
                                     .on_timeout = server_role_wait_tick,
                                     .done = flow_to_connect,
                                     .exits = PHASE_BIT(PHASE_CONNECT)},
                /* The dial's stages after the connect: the dial goes on, nothing new starts. */
                [PHASE_SERVER_SSL] = {.on_timeout = flow_server_timeout,
                                      .done = flow_to_server_login,
                                      .exits = PHASE_BIT(PHASE_SERVER_TLS) |
                                               PHASE_BIT(PHASE_SERVER_LOGIN) |
                                               PHASE_BIT(PHASE_CONNECT)},
                [PHASE_SERVER_TLS] = {.on_timeout = flow_server_timeout,
                                      .done = flow_to_server_login,
                                      .exits =
                                          PHASE_BIT(PHASE_SERVER_LOGIN) | PHASE_BIT(PHASE_CONNECT)},
                /* Left for CONNECT when a connection frees up (pool_wake), or failed at
                   query_wait_timeout by the pool's queue (no timer of its own). */
                [PHASE_WAIT_SERVER] = {.enter = pool_wait_enter,
                                       .done = flow_to_connect,
                                       .exits = PHASE_BIT(PHASE_CONNECT)},
                /* A failed server before anything reached the client: the next host (CONNECT). */
                [PHASE_SERVER_LOGIN] = {.enter = flow_server_login_enter,
                                        .on_timeout = flow_server_login_timeout,
                                        .done = flow_to_active,
                                        .exits =
                                            PHASE_BIT(PHASE_ACTIVE) | PHASE_BIT(PHASE_CONNECT)},
                /* The login's timer is stopped; PgBouncer's timeouts take it (timeouts.h). */
                [PHASE_ACTIVE] = {.enter = flow_active_enter, .on_timeout = timeouts_expired},
                /* No timer either; the console's state outlives the phase if the session fails
                   (CLOSING). */
                [PHASE_ADMIN] = {.enter = console_enter,
                                 .end = console_end,
                                 .cancel = console_cancel_session},
                /* Entered from any phase, on the list of the one it ends. */
                [PHASE_CLOSING] = {.on_timeout = flow_closing_timeout},
            },
        .first = flow_first_phase,
        .close = session_close,
        .fail = session_fail,
        /* What first answers, and CONNECT for min_pool_size's sessions of pgnear's own. */
        .entries = PHASE_BIT(PHASE_PROXY_HEADER) | PHASE_BIT(PHASE_WEBSOCKET) |
                   PHASE_BIT(PHASE_STARTUP) | PHASE_BIT(PHASE_CLIENT_TLS) |
                   PHASE_BIT(PHASE_CONNECT),
        .server_failed = flow_server_failed,
        .relay_event = timeouts_note,
        .login_abort = flow_login_abort,
        .login_end = login_throttle_release,
        .server_release = pool_release,
        .server_take = pool_take,
        .server_wait = pool_txn_wait,
        .server_wait_end = pool_txn_wait_end,
        .server_queued = pool_queued,
        .server_cancel_done = pool_cancel_done,
        .server_closed = pool_uncount,
        .server_logged_in = pool_logged_in,
        .server_fenced = former_primary_check,
        .server_ended_idle = move_session_lost,
        .database_unhold = pool_unhold_database,
};
