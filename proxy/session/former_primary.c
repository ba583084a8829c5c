/*
 * former_primary.c — sessions on a host fenced as a former primary
 * (former_primary.h): moved at once between transactions, ended inside
 * one.
 */
#include "proxy/session/former_primary.h"

#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "protocol/pg_error.h"
#include "proxy/base/log.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/endpoint.h"
#include "proxy/session/gate.h"
#include "proxy/session/move.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/claimants.h"
#include "routing/region.h"

/* Ends s with 57P01, saying which host and why; what it had open there ends without a commit. */
static void former_primary_end(struct session *s, const struct region_host *h, const char *what)
{
    char fence[320];
    claimants_describe(h->runtime, fence, sizeof(fence));
    slog_warn(s, "ended: %s on host %s:%d of region %s, a %s", what, h->name, h->port,
              h->region->name, fence);
    struct pg_error err;
    pg_error_set(&err, "57P01",
                 "terminating connection because its server is no longer the primary");
    pg_error_detail(&err, "Host %s:%d of region %s is a %s; %s.", h->name, h->port, h->region->name,
                    fence, what);
    pg_error_hint(&err, "Connect again to be routed to the primary.");
    session_fail(s, &err);
}

/*
 * The session whose move from a fenced host ended: read again where it
 * moved, or where the host serves again meanwhile; ended where it could
 * not leave.
 */
static bool former_primary_after_move(struct session *s, void *arg)
{
    bool moved = *(const bool *)arg;
    if (s->closed || !s->leaving_fenced)
        return false;
    s->leaving_fenced = false;
    struct server_conn *sc = s->server_conn;
    if (!moved && sc != NULL && host_is_fenced(sc->host))
        former_primary_end(s, sc->host, "it could not be moved to the primary");
    else if (!s->hold.held)
        endpoint_resume_read(&s->client);
    return false;
}

/* A move's end, on its session's worker's next turn (never inside move_end). */
struct former_primary_late {
    struct worker *w;
    uint64_t client_id;
    bool moved;
};

/*
 * The move's end on the worker's next turn: the session, if still there,
 * read again or ended (former_primary_after_move).
 */
static void former_primary_late_cb(evutil_socket_t fd, short what, void *arg)
{
    struct former_primary_late *late = arg;
    (void)fd;
    (void)what;
    struct gate_scope scope = {.all = true, .one_client = true, .client_id = late->client_id};
    gate_each(late->w, &scope, former_primary_after_move, &late->moved);
    free(late);
}

/*
 * A move that former_primary_move started has ended: its end is handled on
 * the next turn, out of move_end's stack; out of memory the session stays
 * unread until it ends.
 */
static void former_primary_moved(const struct move_result *r, void *arg)
{
    struct worker *w = arg;
    struct former_primary_late *late = malloc(sizeof(*late));
    struct timeval now = {0, 0};
    if (late != NULL) {
        *late = (struct former_primary_late){w, r->client_id, r->moved};
        if (event_base_once(w->base, -1, EV_TIMEOUT, former_primary_late_cb, late, &now) == 0)
            return;
        free(late);
    }
    log_error(r->client_id, "out of memory: a session that left a fenced host is not read again "
                            "until it ends");
}

/*
 * s, on a fenced host between transactions, leaves it: held at its next
 * safe point (its client unread until then, so that nothing more reaches
 * the host) and moved by its route.  False: not read now.
 */
static bool former_primary_move(struct session *s)
{
    if (s->leaving_fenced || s->rare->move == NULL) {
        if (!s->leaving_fenced) {
            slog_info(s, "moving: its host %s:%d of region %s is fenced as a former primary",
                      s->server_conn->host->name, s->server_conn->host->port, s->region->name);
            s->leaving_fenced = true;
            struct move_target t = {.hold_first = true, .wait_for_role = true};
            move_session(s, &t, former_primary_moved, s->w);
        }
        if (!s->closed && !s->hold.held)
            endpoint_pause_read(&s->client);
        return false;
    }
    /* An admin's move, which lets the client be read until it holds: it holds at once if it can. */
    if (session_at_safe_point(s))
        gate_hold_session(s, HOLD_MOVE);
    return !s->closed && !s->hold.held;
}

bool former_primary_check(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    if (sc == NULL || !host_is_fenced(sc->host) || s->hold.on_safe == SAFE_CLOSE || s->closed)
        return true;
    if (s->hold.held)
        return false;
    if (!s->leaving_fenced && (sc->tx.status != 'I' || (sc->tx.flags & TX_UNSURE))) {
        former_primary_end(s, sc->host, "its transaction there was ended before it could commit");
        return false;
    }
    /*
     * Transaction pooling and nearest: the connection goes back as the
     * transaction ends (closed: its host is not up), and the next one takes
     * none there; only a session pinned to it cannot wait for that.
     */
    if (s->txn != NULL) {
        if (s->pinned == NULL)
            return true;
        char what[300];
        snprintf(what, sizeof(what), "it keeps its server connection (%s)", s->pinned);
        former_primary_end(s, sc->host, what);
        return false;
    }
    const char *refusal = s->rare->move == NULL ? move_refusal(s) : NULL;
    if (refusal != NULL) {
        char what[300];
        snprintf(what, sizeof(what), "it cannot be moved: %s", refusal);
        former_primary_end(s, sc->host, what);
        return false;
    }
    return former_primary_move(s);
}

/* former_primary_sweep's step: an active session whose server is now fenced is checked. */
static bool former_primary_one(struct session *s, void *arg)
{
    (void)arg;
    if (s->phase == PHASE_ACTIVE && s->server_conn != NULL && host_is_fenced(s->server_conn->host))
        former_primary_check(s);
    return true;
}

void former_primary_sweep(struct worker *w)
{
    struct gate_scope scope = {.all = true};
    gate_each(w, &scope, former_primary_one, NULL);
}
