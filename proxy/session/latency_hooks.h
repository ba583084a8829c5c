/*
 * latency_hooks.h — where a session's latencies are timed (proxy/base/
 * latency.h), each a one-line call at its place: after the relay or a
 * reader has scanned messages either way (latency_server_seen), when a
 * session has the server connection it asked for (latency_session_attached)
 * and when its login ends (latency_session_login_end).  Counted in the
 * region of the server connection, on the worker that owns it.
 */
#ifndef PGNEAR_PROXY_SESSION_LATENCY_HOOKS_H
#define PGNEAR_PROXY_SESSION_LATENCY_HOOKS_H

#include "proxy/base/latency.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/region.h"

/* The requests and transactions of the session's connection that ended or began. */
static inline __attribute__((always_inline)) void latency_server_seen(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (sc != NULL)
        latency_follow(&sc->lat, &sc->tx, &sc->w->latency, sc->region->runtime);
}

/* The connection a transaction asked for is attached (transaction pooling): its wait ends. */
static inline void latency_session_attached(struct session *s)
{
    if (s->server_conn != NULL)
        latency_wait_end(&s->lat, &s->w->latency, s->server_conn->region->runtime);
}

/* The login is over, its server connection ready: the login's duration and wait. */
static inline void latency_session_login_end(struct session *s)
{
    /* A login answered without a server (login_greet.h) waited for none: its route's region. */
    const struct region *r = s->server_conn != NULL ? s->server_conn->region : s->region;
    if (s->server_conn == NULL)
        s->lat.wait_since_us = 0;
    if (r != NULL)
        latency_login_end(&s->lat, s->login != NULL ? s->login->accepted_us : 0, &s->w->latency,
                          r->runtime);
}

#endif
