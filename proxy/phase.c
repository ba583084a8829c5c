/*
 * phase.c — the table of a session's phases, and the transitions between
 * them.
 */
#include "proxy/phase.h"

#include "proxy/log.h"
#include "proxy/server_conn.h"
#include "proxy/session.h"
#include "proxy/worker.h"

struct phase_row {
    const char *name;
    endpoint_handler enter;      /* starts the phase (readers, timers); NULL: nothing to start */
    endpoint_handler on_timeout; /* the session timer expired; NULL: the phase arms none */
    bool login;                  /* part of the login: its failures are failed logins */
};

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
    [PHASE_PROXY_HEADER] = {"proxy header", NULL, phase_proxy_header_timeout, true},
    [PHASE_STARTUP] = {"startup", NULL, phase_login_timeout, true},
    [PHASE_CLIENT_TLS] = {"client tls", NULL, phase_login_timeout, true},
    [PHASE_CLIENT_AUTH] = {"client auth", NULL, phase_login_timeout, true},
    /* A server that does not answer in time counts as unreachable. */
    [PHASE_CONNECT] = {"connect", NULL, server_login_timeout, true},
    [PHASE_SERVER_SSL] = {"server ssl", NULL, server_login_timeout, true},
    [PHASE_SERVER_TLS] = {"server tls", NULL, server_login_timeout, true},
    [PHASE_SERVER_LOGIN] = {"server login", NULL, phase_server_login_timeout, true},
    [PHASE_ACTIVE] = {"active", NULL, NULL, false},
    [PHASE_ADMIN] = {"admin", NULL, NULL, false},
    [PHASE_CLOSING] = {"closing", NULL, phase_closing_timeout, false},
};

const char *phase_name(enum session_phase phase)
{
    return phase < PHASE_COUNT ? phase_rows[phase].name : "?";
}

bool phase_in_login(enum session_phase phase)
{
    return phase < PHASE_COUNT && phase_rows[phase].login;
}

void phase_enter(struct session *s, enum session_phase next)
{
    if (s->phase != next)
        log_debug(s->id, "phase %s -> %s", phase_name(s->phase), phase_name(next));
    s->phase = next;
    if (phase_rows[next].enter != NULL)
        phase_rows[next].enter(s);
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
