/*
 * pause.c — PAUSE, RESUME and DRAIN: asking sessions on every worker to
 * stop, or to end, at their next safe point (session_at_safe_point).
 *
 * PAUSE marks the regions paused (new sessions there are held as they
 * start), asks every worker to hold the sessions in scope, then asks again
 * every PAUSE_POLL_MS how many are not held yet, and answers once none is
 * left.  If pause_timeout passes first, or a RESUME comes, it undoes the
 * pause and says which clients kept it from closing.  No loop waits: the
 * asking is worker_call_all and a timer on the admin session's worker.
 */
#include "proxy/admin/pause.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "proxy/admin/console.h"
#include "proxy/config.h"
#include "proxy/daemon.h"
#include "proxy/log.h"
#include "proxy/relay.h"
#include "proxy/server_conn.h"
#include "proxy/session.h"
#include "proxy/worker.h"
#include "proxy/worker_call.h"
#include "routing/region.h"
#include "routing/registry.h"

#define PAUSE_POLL_MS   20
#define PAUSE_NAME_LATE 8 /* clients named in the error when PAUSE gives up */

/* The sessions a command is about: one region's, or every one. */
struct pause_scope {
    bool all;
    char region[64];
};

/* A client that was not held yet. */
struct late_client {
    uint64_t id;
    char addr[64];
    bool in_transaction;
};

struct worker_late {
    uint64_t count;
    struct late_client named[PAUSE_NAME_LATE];
};

struct pause_request {
    struct console_wait *wait;
    struct worker *home; /* the admin session's worker: the timer and the answers are here */
    struct config *cfg;  /* its regions, as the command began (a reference held) */
    struct pause_scope scope;
    int64_t deadline_ms;
    int timeout_ms;
    struct event *timer;
    struct worker_late *late; /* one per worker */
};

static bool in_scope(const struct pause_scope *scope, const struct session *s)
{
    return s->region != NULL && (scope->all || strcasecmp(s->region->name, scope->region) == 0);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- on each worker ---- */

/* Marks each session in scope; those at a safe point act at once, the others when they get there.
 */
static void mark_sessions(struct worker *w, const struct pause_scope *scope, uint8_t action)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->active_sessions)
    {
        struct session *s = list_entry(pos, struct session, node);
        if (!in_scope(scope, s) || s->on_safe == SAFE_CLOSE)
            continue;
        s->on_safe = action;
        relay_act_at_safe_point(s);
    }
}

static int hold_on_worker(struct worker *w, void *arg)
{
    struct pause_request *req = arg;
    mark_sessions(w, &req->scope, SAFE_HOLD);
    return 0;
}

static int drain_on_worker(struct worker *w, void *arg)
{
    mark_sessions(w, arg, SAFE_CLOSE);
    return 0;
}

static int release_on_worker(struct worker *w, void *arg)
{
    const struct pause_scope *scope = arg;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->active_sessions)
    {
        struct session *s = list_entry(pos, struct session, node);
        if (in_scope(scope, s) && s->on_safe == SAFE_HOLD)
            relay_release(s);
    }
    return 0;
}

static int count_late_on_worker(struct worker *w, void *arg)
{
    struct pause_request *req = arg;
    struct worker_late *late = &req->late[w->index];
    memset(late, 0, sizeof(*late));
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->active_sessions)
    {
        struct session *s = list_entry(pos, struct session, node);
        /* Not asked to hold (a RESUME let it go, or DRAIN closes it): not late. */
        if (!in_scope(&req->scope, s) || s->held || s->on_safe != SAFE_HOLD)
            continue;
        if (late->count < PAUSE_NAME_LATE) {
            struct late_client *c = &late->named[late->count];
            c->id = s->id;
            snprintf(c->addr, sizeof(c->addr), "%s", s->peer);
            c->in_transaction = server_conn_in_transaction(s->server_conn);
        }
        late->count++;
    }
    return 0;
}

/* ---- on the admin session's worker ---- */

/* Sets the paused flag of every region in scope (of the configuration in use). */
static void set_paused(const struct region_set *regions, const struct pause_scope *scope,
                       bool paused)
{
    for (size_t i = 0; i < regions->count; i++)
        if (scope->all || strcasecmp(regions->items[i].name, scope->region) == 0)
            registry_set_paused(regions->items[i].runtime, paused);
}

/* Whether a RESUME took some region of the scope out of the pause. */
static bool resumed_meanwhile(const struct pause_request *req)
{
    const struct region_set *regions = &req->cfg->regions;
    for (size_t i = 0; i < regions->count; i++) {
        const struct region *r = &regions->items[i];
        if ((req->scope.all || strcasecmp(r->name, req->scope.region) == 0) &&
            !registry_paused(r->runtime))
            return true;
    }
    return false;
}

static void pause_request_free(struct pause_request *req)
{
    if (req->timer != NULL)
        event_free(req->timer);
    config_unref(req->cfg);
    free(req->late);
    free(req);
}

static void scope_freed(struct worker *from, const struct worker_reply *r)
{
    free(r->arg);
}

/* Lets the sessions in scope go, on every worker; the scope is copied for the calls. */
static int release_scope(struct worker *from, const struct pause_scope *scope)
{
    struct pause_scope *copy = malloc(sizeof(*copy));
    if (copy == NULL)
        return -1;
    *copy = *scope;
    if (worker_call_all(from, release_on_worker, copy, scope_freed, NULL) != 0) {
        free(copy);
        return -1;
    }
    return 0;
}

/* How a PAUSE ended. */
enum pause_end {
    PAUSE_WAITING,  /* not yet: poll again */
    PAUSE_HELD,     /* every session in scope is held */
    PAUSE_LATE,     /* pause_timeout passed first: undone */
    PAUSE_RESUMED,  /* a RESUME came first: nothing to undo */
    PAUSE_CANCELED, /* the admin's cancel request (Ctrl-C): undone */
};

/* The error of a PAUSE that gave up: how many clients, and the first ones by id. */
static void pause_late_error(struct pause_request *req, uint64_t late, enum pause_end end)
{
    char detail[512] = "";
    size_t used = 0;
    int nworkers = req->home->d->nworkers;
    for (int i = 0; i < nworkers; i++)
        for (uint64_t j = 0; j < req->late[i].count && j < PAUSE_NAME_LATE; j++) {
            const struct late_client *c = &req->late[i].named[j];
            if (used < sizeof(detail))
                used +=
                    (size_t)snprintf(detail + used, sizeof(detail) - used, "%sclient %llu (%s)%s",
                                     used ? ", " : "Still busy: ", (unsigned long long)c->id,
                                     c->addr, c->in_transaction ? " in a transaction" : "");
        }
    if (used > 0 && used < sizeof(detail) - 1)
        snprintf(detail + used, sizeof(detail) - used, ".");
    if (end == PAUSE_RESUMED)
        admin_error_set(&req->wait->err, "57014", NULL, NULL,
                        "PAUSE was canceled by RESUME before every session was held");
    else if (end == PAUSE_CANCELED)
        admin_error_set(&req->wait->err, "57014", detail[0] ? detail : NULL,
                        "The pause is undone; every session goes on.",
                        "canceling statement due to user request");
    else
        admin_error_set(&req->wait->err, "57014", detail,
                        "Those clients must end their transactions; then PAUSE again, or raise "
                        "pause_timeout.",
                        "could not pause: %llu client%s still busy after pause_timeout (%d ms); "
                        "the pause is undone",
                        (unsigned long long)late, late == 1 ? " was" : "s were", req->timeout_ms);
}

static void pause_finish(struct pause_request *req, uint64_t late, enum pause_end end)
{
    struct console_wait *wait = req->wait;
    int rc = CMD_DONE;
    if (end == PAUSE_HELD) {
        result_init(&wait->res, NULL, 0);
        result_set_tag(&wait->res, "PAUSE");
    } else {
        pause_late_error(req, late, end);
        if (end != PAUSE_RESUMED) {
            set_paused(&req->cfg->regions, &req->scope, false);
            if (release_scope(req->home, &req->scope) != 0)
                log_error(0, "PAUSE: could not release the held sessions: out of memory");
        }
        rc = CMD_ERROR;
    }
    pause_request_free(req);
    console_command_done(wait, rc);
}

static void pause_poll(struct pause_request *req);

static void pause_counted(struct worker *from, const struct worker_reply *r)
{
    struct pause_request *req = r->arg;
    uint64_t late = 0;
    for (int i = 0; i < from->d->nworkers; i++)
        late += req->late[i].count;
    enum pause_end end = resumed_meanwhile(req)         ? PAUSE_RESUMED
                         : req->wait->canceled          ? PAUSE_CANCELED
                         : late == 0                    ? PAUSE_HELD
                         : now_ms() >= req->deadline_ms ? PAUSE_LATE
                                                        : PAUSE_WAITING;
    if (end != PAUSE_WAITING) {
        pause_finish(req, late, end);
        return;
    }
    struct timeval tv = {0, PAUSE_POLL_MS * 1000};
    evtimer_add(req->timer, &tv);
}

static void pause_poll(struct pause_request *req)
{
    if (worker_call_all(req->home, count_late_on_worker, req, pause_counted, NULL) != 0) {
        admin_error_set(&req->wait->err, "53200", NULL, NULL, "out of memory");
        struct console_wait *wait = req->wait;
        set_paused(&req->cfg->regions, &req->scope, false);
        release_scope(req->home, &req->scope);
        pause_request_free(req);
        console_command_done(wait, CMD_ERROR);
    }
}

static void pause_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    pause_poll(arg);
}

static void pause_marked(struct worker *from, const struct worker_reply *r)
{
    pause_poll(r->arg);
}

/* The scope of a command: its region (which must exist), or every region. */
static bool command_scope(struct session *s, const struct admin_cmd *cmd, struct pause_scope *scope,
                          struct admin_error *err)
{
    memset(scope, 0, sizeof(*scope));
    scope->all = !cmd->has_region;
    if (scope->all)
        return true;
    const struct region *r = region_set_find(&s->w->cfg->regions, cmd->region);
    if (r == NULL) {
        admin_error_set(err, "42704", NULL, "SHOW REGIONS lists them.",
                        "region \"%s\" does not exist", cmd->region);
        return false;
    }
    snprintf(scope->region, sizeof(scope->region), "%s", r->name);
    return true;
}

int pause_command(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct pause_request *req = calloc(1, sizeof(*req));
    if (req == NULL || !command_scope(s, cmd, &req->scope, &wait->err)) {
        if (req == NULL)
            admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        free(req);
        return CMD_ERROR;
    }
    req->wait = wait;
    req->home = s->w;
    req->cfg = config_ref(s->w->cfg);
    req->timeout_ms = req->cfg->pause_timeout_ms;
    req->deadline_ms = now_ms() + req->timeout_ms;
    req->late = calloc((size_t)s->w->d->nworkers, sizeof(*req->late));
    req->timer = evtimer_new(s->w->base, pause_timer_cb, req);
    set_paused(&req->cfg->regions, &req->scope, true);
    log_info(s->id, "admin %s: PAUSE %s", s->user, req->scope.all ? "(all)" : req->scope.region);
    if (req->late == NULL || req->timer == NULL ||
        worker_call_all(s->w, hold_on_worker, req, pause_marked, NULL) != 0) {
        set_paused(&req->cfg->regions, &req->scope, false);
        pause_request_free(req);
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

/* A RESUME or DRAIN on its way to every worker; the workers read scope only. */
struct scope_call {
    struct pause_scope scope;
    struct console_wait *wait;
    const char *tag;
};

static void scope_done(struct worker *from, const struct worker_reply *r)
{
    struct scope_call *call = r->arg;
    result_init(&call->wait->res, NULL, 0);
    result_set_tag(&call->wait->res, call->tag);
    console_command_done(call->wait, CMD_DONE);
    free(call);
}

/*
 * The command's scope, then before() on this worker (the region's state),
 * then fn over the scope on every worker; the answer once all have run.
 */
static int scope_command(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait,
                         const char *tag,
                         void (*before)(struct session *, const struct pause_scope *), worker_fn fn)
{
    struct scope_call *call = calloc(1, sizeof(*call));
    if (call == NULL || !command_scope(s, cmd, &call->scope, &wait->err)) {
        if (call == NULL)
            admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        free(call);
        return CMD_ERROR;
    }
    call->wait = wait;
    call->tag = tag;
    before(s, &call->scope);
    log_info(s->id, "admin %s: %s %s", s->user, tag,
             call->scope.all ? "(all regions)" : call->scope.region);
    if (worker_call_all(s->w, fn, &call->scope, scope_done, NULL) != 0) {
        free(call);
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

static void unpause_regions(struct session *s, const struct pause_scope *scope)
{
    set_paused(&s->w->cfg->regions, scope, false);
}

static void set_draining(struct session *s, const struct pause_scope *scope)
{
    struct region *r = region_set_find(&s->w->cfg->regions, scope->region);
    registry_set_admin_state(r->runtime, REGION_DRAINING);
}

int resume_command(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    return scope_command(s, cmd, wait, "RESUME", unpause_regions, release_on_worker);
}

int drain_command(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    return scope_command(s, cmd, wait, "DRAIN", set_draining, drain_on_worker);
}
