/*
 * session_part.c — the sessions' life on a worker (struct worker_part):
 * its listeners open at start and close at a drain or stop, and its
 * session lists are told why at a stop, closed when it is freed.
 */
#include "proxy/session/session.h"

#include "proxy/runtime/shared.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/former_primary.h"
#include "proxy/session/listener.h"
#include "proxy/session/timeouts.h"
#include "proxy/session/ws_keepalive.h"

static void session_fail_all(struct list *l, const char *msg)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, l)
    {
        struct session *s = list_entry(pos, struct session, node);
        session_fail_msg(s, "57P01", "%s", msg);
    }
}

static void session_close_all(struct list *l)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, l)
        session_close(list_entry(pos, struct session, node), "shutdown");
}

/* Every worker listens on the TCP addresses (SO_REUSEPORT); the Unix socket is worker 0's. */
static int session_part_start(struct worker *w, char *err, size_t errcap)
{
    w->listeners = listener_open(w, w->cfg, w->index == 0, err, errcap);
    return w->listeners != NULL ? 0 : -1;
}

static void session_part_drain(struct worker *w)
{
    /* Closed, not paused: a paused socket would leave new clients queued and unanswered. */
    listener_take_backlog(w->listeners);
    listener_close(w->listeners);
    w->listeners = NULL;
    /* A pgnear started on the same port gets the cancel requests of our sessions: it passes them
     * here. */
    char err[256];
    if (w->index == 0 && w->cfg->unix_socket_dir[0] != '\0' &&
        (w->cancel_listener = listener_open_cancel(w, w->cfg, err, sizeof(err))) == NULL)
        log_warn(0,
                 "cancel requests for this process's sessions cannot reach it once it has "
                 "been replaced: %s",
                 err);
    /* Admin sessions do not hold a shutdown up. */
    session_fail_all(&w->admin_sessions, "terminating connection because pgnear is shutting down");
}

/* Tells every client why (SIGINT, the drain timeout). */
static void session_part_stop(struct worker *w)
{
    listener_close(w->listeners);
    w->listeners = NULL;
    listener_close(w->cancel_listener);
    w->cancel_listener = NULL;
    const char *msg = "terminating connection due to administrator command";
    session_fail_all(&w->login_sessions, msg);
    session_fail_all(&w->waiting_sessions, msg);
    session_fail_all(&w->active_sessions, msg);
    session_fail_all(&w->admin_sessions, msg);
}

static void session_part_free(struct worker *w)
{
    session_close_all(&w->login_sessions);
    session_close_all(&w->waiting_sessions);
    session_close_all(&w->active_sessions);
    session_close_all(&w->admin_sessions);
    listener_close(w->listeners);
    w->listeners = NULL;
    listener_close(w->cancel_listener);
    w->cancel_listener = NULL;
    ws_keepalive_free(w);
}

const struct worker_part session_part = {
    .name = "sessions",
    .start = session_part_start,
    .drain = session_part_drain,
    .stop = session_part_stop,
    .free = session_part_free,
    .host_fenced = former_primary_sweep,
    .reconfigured = timeouts_reconfigured,
};
