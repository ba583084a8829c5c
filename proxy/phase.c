/*
 * phase.c — the table of a session's phases, and the transitions between
 * them.
 */
#include "proxy/phase.h"

#include "proxy/client_login.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/server_conn.h"
#include "proxy/session.h"
#include "proxy/worker.h"

struct phase_row {
    const char *name;
    endpoint_handler enter;      /* starts the phase (readers, timers); NULL: nothing to start */
    endpoint_handler on_timeout; /* the session timer expired; NULL: the phase arms none */
    endpoint_handler done;       /* the phase ended as it should: enters the next; NULL: none */
    bool login;                  /* part of the login: its failures are failed logins */
};

static void phase_to_startup(struct session *s)
{
    phase_enter(s, PHASE_STARTUP);
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
    session_fail(s, "57014", "canceling authentication due to timeout", NULL, NULL);
}

/* A server that has not answered yet counts as unreachable; after its answer the login is late. */
static void phase_server_login_timeout(struct session *s)
{
    if (s->server_conn != NULL && !s->server_conn->answered)
        server_login_timeout(s);
    else
        phase_login_timeout(s);
}

static void phase_closing_timeout(struct session *s)
{
    session_close(s, "client did not read the final error");
}

static const struct phase_row phase_rows[PHASE_COUNT] = {
    [PHASE_PROXY_HEADER] = {"proxy header", client_proxy_enter, phase_proxy_header_timeout,
                            phase_to_startup, true},
    /* The TLS handshake comes back to STARTUP for the startup packet proper. */
    [PHASE_STARTUP] = {"startup", client_startup_enter, phase_login_timeout, NULL, true},
    [PHASE_CLIENT_TLS] = {"client tls", client_tls_enter, phase_login_timeout, phase_to_startup,
                          true},
    [PHASE_CLIENT_AUTH] = {"client auth", NULL, phase_login_timeout, NULL, true},
    /* A server that does not answer in time counts as unreachable. */
    [PHASE_CONNECT] = {"connect", NULL, server_login_timeout, NULL, true},
    [PHASE_SERVER_SSL] = {"server ssl", NULL, server_login_timeout, NULL, true},
    [PHASE_SERVER_TLS] = {"server tls", NULL, server_login_timeout, NULL, true},
    [PHASE_SERVER_LOGIN] = {"server login", NULL, phase_server_login_timeout, NULL, true},
    [PHASE_ACTIVE] = {"active", NULL, NULL, NULL, false},
    [PHASE_ADMIN] = {"admin", NULL, NULL, NULL, false},
    [PHASE_CLOSING] = {"closing", NULL, phase_closing_timeout, NULL, false},
};

const char *phase_name(enum session_phase phase)
{
    return phase < PHASE_COUNT ? phase_rows[phase].name : "?";
}

bool phase_in_login(enum session_phase phase)
{
    return phase < PHASE_COUNT && phase_rows[phase].login;
}

static void phase_start(struct session *s, enum session_phase next)
{
    s->phase = next;
    if (phase_rows[next].enter != NULL)
        phase_rows[next].enter(s);
}

void phase_begin(struct session *s)
{
    bool proxy_header = s->cfg->proxy_protocol != PROXY_PROTOCOL_OFF && !s->unix_socket;
    enum session_phase first = proxy_header ? PHASE_PROXY_HEADER : PHASE_STARTUP;
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
