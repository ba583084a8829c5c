/*
 * phase.c — the table of a session's phases, and the transitions between
 * them.
 */
#include "proxy/phase.h"

#include <stdio.h>

#include "protocol/tls.h"
#include "proxy/admin/console.h"
#include "proxy/client_auth.h"
#include "proxy/client_login.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/pool.h"
#include "proxy/pool_warm.h"
#include "proxy/login_throttle.h"
#include "proxy/relay.h"
#include "proxy/server_conn.h"
#include "proxy/server_connect.h"
#include "proxy/server_login.h"
#include "proxy/session.h"
#include "proxy/worker.h"
#include "proxy/ws_ingress.h"

/* Which of the worker's session lists a phase puts the session on: its state there. */
enum phase_list {
    PHASE_LIST_KEEP,    /* the one it is on */
    PHASE_LIST_LOGIN,   /* login_sessions (where a new session starts) */
    PHASE_LIST_WAITING, /* waiting_sessions */
    PHASE_LIST_ACTIVE,  /* active_sessions */
    PHASE_LIST_ADMIN,   /* admin_sessions */
};

struct phase_row {
    const char *name;
    endpoint_handler enter;      /* starts the phase (readers, timers); NULL: nothing to start */
    endpoint_handler on_timeout; /* the session timer expired; NULL: the phase arms none */
    endpoint_handler done;       /* the phase ended as it should: enters the next; NULL: none */
    endpoint_handler end;        /* frees the phase's state as the session is freed; NULL: none */
    enum phase_list list;        /* the worker's list the session sits on */
    bool login;                  /* part of the login: its failures are failed logins */
};

static void phase_to_startup(struct session *s)
{
    phase_enter(s, PHASE_STARTUP);
}

/* The TLS of wss comes before the HTTP request; any other before the startup packet proper. */
static void phase_after_client_tls(struct session *s)
{
    phase_enter(s, s->websocket && s->client.stream.ws == NULL ? PHASE_WEBSOCKET : PHASE_STARTUP);
}

/*
 * The startup packet is in.  The admin console takes its trusted peer at
 * once; anyone else is authenticated — by pgnear (auth = scram, and
 * always for the console) or by the server (passthrough: CONNECT) —
 * after the wait this caller and user earned by failing.
 */
static void phase_after_startup(struct session *s)
{
    if (s->login->for_console && console_trusts_peer(s)) {
        log_info(s->id, "admin console: trusted over the Unix socket (same OS user as pgnear)");
        phase_enter(s, PHASE_ADMIN);
        return;
    }
    bool by_pgnear = s->login->for_console || s->cfg->auth == AUTH_SCRAM;
    login_throttle_gate(s, by_pgnear ? PHASE_CLIENT_AUTH : PHASE_CONNECT);
}

/* pgnear verified the client: the console answers it, or a server of its route serves it. */
static void phase_after_client_auth(struct session *s)
{
    phase_enter(s, s->login->for_console ? PHASE_ADMIN : PHASE_CONNECT);
}

static void phase_to_connect(struct session *s)
{
    phase_enter(s, PHASE_CONNECT);
}

static void phase_to_server_login(struct session *s)
{
    phase_enter(s, PHASE_SERVER_LOGIN);
}

static void phase_to_active(struct session *s)
{
    if (pool_warm_done(s))
        return; /* an internal session: its connection went to the pool, it ended */
    phase_enter(s, PHASE_ACTIVE);
}

/* No PROXY header in time: a load balancer sends it at once, so this is no client of ours. */
static void phase_proxy_header_timeout(struct session *s)
{
    stat_inc(&s->w->stats.login_failures);
    session_close(s, "no PROXY protocol header in time");
}

static void phase_login_timeout(struct session *s)
{
    stat_inc(&s->w->stats.login_failures);
    if (s->websocket && s->client.stream.ws == NULL) {
        session_close(s, "wss TLS handshake not done within websocket_handshake_timeout");
        return;
    }
    session_fail(s, "57014", "canceling authentication due to timeout", NULL, NULL);
}

static void phase_server_timeout(struct session *s)
{
    phase_server_failed(s, "timeout", HOST_SLOW);
}

/* A server that has not answered yet counts as unreachable; after its answer the login is late. */
static void phase_server_login_timeout(struct session *s)
{
    if (s->server_conn != NULL && !s->server_conn->answered)
        phase_server_timeout(s);
    else
        phase_login_timeout(s);
}

static void phase_closing_timeout(struct session *s)
{
    session_close(s, "client did not read the final error");
}

/* One row per phase; a session moves down it, to ACTIVE or ADMIN, and may close from anywhere. */
static const struct phase_row phase_rows[PHASE_COUNT] = {
    [PHASE_PROXY_HEADER] = {.name = "proxy header",
                            .enter = client_proxy_enter,
                            .on_timeout = phase_proxy_header_timeout,
                            .done = phase_to_startup,
                            .list = PHASE_LIST_LOGIN,
                            .login = true},
    /* websocket_port: the HTTP request, /healthz, the upgrade; then the startup packet. */
    [PHASE_WEBSOCKET] = {.name = "websocket",
                         .enter = ws_ingress_enter,
                         .on_timeout = ws_ingress_timeout,
                         .done = phase_to_startup,
                         .list = PHASE_LIST_LOGIN,
                         .login = true},
    /* The TLS handshake comes back here for the startup packet proper. */
    [PHASE_STARTUP] = {.name = "startup",
                       .enter = client_startup_enter,
                       .on_timeout = phase_login_timeout,
                       .done = phase_after_startup,
                       .list = PHASE_LIST_LOGIN,
                       .login = true},
    [PHASE_CLIENT_TLS] = {.name = "client tls",
                          .enter = client_tls_enter,
                          .on_timeout = phase_login_timeout,
                          .done = phase_after_client_tls,
                          .list = PHASE_LIST_LOGIN,
                          .login = true},
    [PHASE_CLIENT_AUTH] = {.name = "client auth",
                           .enter = client_auth_enter,
                           .on_timeout = phase_login_timeout,
                           .done = phase_after_client_auth,
                           .list = PHASE_LIST_LOGIN,
                           .login = true},
    /* A server that does not answer in time counts as unreachable. */
    [PHASE_CONNECT] = {.name = "connect",
                       .enter = server_connect_enter,
                       .on_timeout = phase_server_timeout,
                       .done = phase_to_server_login,
                       .list = PHASE_LIST_LOGIN,
                       .login = true},
    /* The dial's stages after the connect: the dial goes on, nothing new starts. */
    [PHASE_SERVER_SSL] = {.name = "server ssl",
                          .on_timeout = phase_server_timeout,
                          .done = phase_to_server_login,
                          .list = PHASE_LIST_LOGIN,
                          .login = true},
    [PHASE_SERVER_TLS] = {.name = "server tls",
                          .on_timeout = phase_server_timeout,
                          .done = phase_to_server_login,
                          .list = PHASE_LIST_LOGIN,
                          .login = true},
    /* Left for CONNECT when a connection frees up (pool_wake), or failed at query_wait_timeout. */
    [PHASE_WAIT_SERVER] = {.name = "wait server",
                           .enter = pool_wait_enter,
                           .on_timeout = pool_wait_timeout,
                           .done = phase_to_connect,
                           .list = PHASE_LIST_WAITING,
                           .login = true},
    [PHASE_SERVER_LOGIN] = {.name = "server login",
                            .enter = server_login_enter,
                            .on_timeout = phase_server_login_timeout,
                            .done = phase_to_active,
                            .list = PHASE_LIST_LOGIN,
                            .login = true},
    /* No timer: the login's is stopped. */
    [PHASE_ACTIVE] = {.name = "active", .enter = relay_start, .list = PHASE_LIST_ACTIVE},
    /* No timer either; the console's state outlives the phase if the session fails (CLOSING). */
    [PHASE_ADMIN] = {.name = "admin",
                     .enter = console_enter,
                     .end = console_end,
                     .list = PHASE_LIST_ADMIN},
    /* Entered from any phase, on the list of the one it ends. */
    [PHASE_CLOSING] = {.name = "closing",
                       .on_timeout = phase_closing_timeout,
                       .list = PHASE_LIST_KEEP},
};

const char *phase_name(enum session_phase phase)
{
    return phase < PHASE_COUNT ? phase_rows[phase].name : "?";
}

bool phase_in_login(enum session_phase phase)
{
    return phase < PHASE_COUNT && phase_rows[phase].login;
}

static struct list *phase_list(struct worker *w, enum phase_list list)
{
    switch (list) {
    case PHASE_LIST_LOGIN:
        return &w->login_sessions;
    case PHASE_LIST_WAITING:
        return &w->waiting_sessions;
    case PHASE_LIST_ACTIVE:
        return &w->active_sessions;
    case PHASE_LIST_ADMIN:
        return &w->admin_sessions;
    default:
        return NULL;
    }
}

static void phase_start(struct session *s, enum session_phase next)
{
    const struct phase_row *row = &phase_rows[next];
    struct list *to = phase_list(s->w, row->list);
    s->phase = next;
    if (to != NULL && to != s->list)
        session_move(s, to);
    if (row->enter != NULL)
        row->enter(s);
}

/* websocket_port: wss's TLS first, or the HTTP request; the whole upgrade within its timeout. */
static enum session_phase phase_first_websocket(struct session *s)
{
    session_set_timer(s, s->cfg->websocket_handshake_timeout_ms);
    if (!s->cfg->websocket_tls)
        return PHASE_WEBSOCKET;
    if (s->cfg->client_tls_ctx == NULL ||
        (s->client.stream.ssl = tls_new_client_ssl(s->cfg->client_tls_ctx, s->client.stream.fd)) ==
            NULL)
        return PHASE_COUNT;
    return PHASE_CLIENT_TLS;
}

void phase_begin(struct session *s)
{
    bool proxy_header = s->cfg->proxy_protocol != PROXY_PROTOCOL_OFF && !s->unix_socket;
    enum session_phase first = proxy_header ? PHASE_PROXY_HEADER : PHASE_STARTUP;
    if (s->websocket && (first = phase_first_websocket(s)) == PHASE_COUNT) {
        session_close(s, "could not create the TLS session of wss");
        return;
    }
    log_debug(s->id, "phase %s", phase_name(first));
    phase_start(s, first);
}

void phase_enter(struct session *s, enum session_phase next)
{
    if (s->phase != next)
        log_debug(s->id, "phase %s -> %s", phase_name(s->phase), phase_name(next));
    phase_start(s, next);
}

void phase_done(struct session *s)
{
    const struct phase_row *row = &phase_rows[s->phase];
    if (row->done == NULL) {
        log_error(s->id, "phase %s has no next phase", row->name);
        session_close(s, "internal error: no next phase");
        return;
    }
    row->done(s);
}

void phase_timeout(struct session *s)
{
    const struct phase_row *row = &phase_rows[s->phase];
    if (row->on_timeout == NULL) {
        log_warn(s->id, "session timer expired in phase %s, which sets none", row->name);
        return;
    }
    row->on_timeout(s);
}

void phase_server_failed(struct session *s, const char *why, enum server_verdict v)
{
    bool sent_to_client = s->server_conn->sent_to_client;
    if (s->login->resumed && !sent_to_client) {
        server_connect_kept_failed(s, why);
        return;
    }
    server_connect_failed(s, why, v);
    if (sent_to_client) {
        session_fail(s, "08006", "lost the server connection during login", why, NULL);
        return;
    }
    snprintf(s->login->server_failure, sizeof(s->login->server_failure), "%s", why);
    phase_enter(s, PHASE_CONNECT);
}

void phase_end(struct session *s)
{
    /* A session closes in CLOSING as often as in the phase whose state it holds: every end runs. */
    for (size_t i = 0; i < PHASE_COUNT; i++)
        if (phase_rows[i].end != NULL)
            phase_rows[i].end(s);
}
