/*
 * gate.c — holding the sessions of a scope at their next safe point, and
 * letting them go (gate.h).
 */
#include "proxy/session/gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/region.h"
#include "routing/registry.h"

bool session_at_safe_point(const struct session *s)
{
    if (s->phase != PHASE_ACTIVE)
        return false;
    if (s->txn != NULL && s->txn->owes_request(s, false))
        return false;
    /* Between transactions, under transaction pooling: no server, none being fetched. */
    if (s->server_conn == NULL)
        return txn_next_detached_idle(s) && s->client.fwd_remaining == 0;
    return server_conn_at_safe_point(s->server_conn) && s->client.fwd_remaining == 0;
}

bool gate_act_at_safe_point(struct session *s)
{
    if (!session_at_safe_point(s))
        return true;
    if (s->hold.on_safe == SAFE_CLOSE) {
        char detail[256], to[PLACEMENT_NAME_MAX + 1] = "another region";
        /* A write a standby refused runs on a primary first: the client gets its answer. */
        if (s->txn != NULL && s->txn->owes_request(s, true))
            return true;
        if (s->hold.close_why == CLOSE_DATABASE_MOVED) {
            placement_region(&s->w->shared->placement, s->database, to, sizeof(to));
            snprintf(detail, sizeof(detail),
                     "Database \"%s\" moved to region %s and this session could not move with "
                     "it; connect again to be routed there.",
                     s->database, to);
        } else {
            snprintf(detail, sizeof(detail),
                     "The pgnear admin console is draining region %s; connect again to be routed "
                     "to another region.",
                     s->region->name);
        }
        struct pg_error err;
        pg_error_set(&err, "57P01", "terminating connection due to administrator command");
        pg_error_detail(&err, "%s", detail);
        session_fail(s, &err);
        return false;
    }
    if (s->hold.on_safe == SAFE_HOLD && !s->hold.held) {
        s->hold.held = true;
        s->hold.held_at_us = monotonic_us();
        endpoint_pause_read(&s->client);
        if ((s->hold.hold_reasons & HOLD_MOVE) && s->rare->moving != NULL)
            s->rare->moving->holding(s);
    }
    return true;
}

bool gate_hold_session(struct session *s, uint8_t reason)
{
    if (s->hold.on_safe == SAFE_CLOSE)
        return true;
    s->hold.hold_reasons |= reason;
    s->hold.on_safe = SAFE_HOLD;
    return gate_act_at_safe_point(s);
}

void gate_release_session(struct session *s, uint8_t reason)
{
    s->hold.hold_reasons &= (uint8_t)~reason;
    if (s->hold.hold_reasons != 0 || s->hold.on_safe != SAFE_HOLD)
        return;
    s->hold.on_safe = SAFE_NOTHING;
    if (!s->hold.held)
        return;
    s->hold.held = false;
    if (s->server_conn == NULL && s->txn != NULL) {
        s->txn->life.resume(s);
        return;
    }
    /*
     * Held at the ReadyForQuery that ended its transaction, before transaction
     * pooling could let its connection go: it may now (else the connection
     * would stay with it until its client next sent something).
     */
    if (s->txn != NULL && !s->txn->server_idle(s))
        return;
    if (s->server_conn != NULL && endpoint_queued(&s->server_conn->ep) <= RELAY_LOW_WATER)
        endpoint_resume_read(&s->client);
}

void gate_drain_session(struct session *s, uint8_t why)
{
    if (s->hold.on_safe == SAFE_CLOSE)
        return;
    s->hold.on_safe = SAFE_CLOSE;
    s->hold.close_why = why;
    gate_act_at_safe_point(s);
}

/* A session that was not held yet. */
struct late_session {
    uint64_t id;
    char addr[64];
    bool in_transaction;
};

struct worker_late {
    uint64_t count;
    struct late_session named[GATE_NAME_LATE];
};

struct gate_close {
    struct worker *home; /* the timer and the answers are here */
    struct config *cfg;  /* its regions, as the closing began (a reference held) */
    struct gate_scope scope;
    int64_t started_ms, deadline_ms;
    bool force;
    char force_detail[512];
    bool forced_once;
    bool canceled;
    struct event *timer;
    struct worker_late *late; /* one per worker */
    uint64_t forced;
    gate_done_fn done;
    void *arg;
};

bool gate_in_scope(const struct gate_scope *scope, const struct session *s)
{
    if (s->region == NULL || (!scope->all && strcasecmp(s->region->name, scope->region) != 0))
        return false;
    if (scope->not_region[0] != '\0' && strcasecmp(s->region->name, scope->not_region) == 0)
        return false;
    if (scope->one_client && s->id != scope->client_id)
        return false;
    if (scope->city_key[0] != '\0' &&
        !placement_is_city(scope->city_key, session_origin_text(&s->origin, ORIGIN_CITY),
                           session_origin_text(&s->origin, ORIGIN_PLACE)))
        return false;
    return scope->database[0] == '\0' || strcmp(s->database, scope->database) == 0;
}

bool gate_each(struct worker *w, const struct gate_scope *scope, gate_each_fn fn, void *arg)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->active_sessions)
    {
        struct session *s = list_entry(pos, struct session, node);
        if (gate_in_scope(scope, s) && !fn(s, arg))
            return false;
    }
    return true;
}

/*
 * The scope's flag: a database's (a cutover), else in each of its regions;
 * new sessions are held as they start.
 */
static void set_flag(struct worker *home, const struct region_set *regions,
                     const struct gate_scope *scope, bool on)
{
    if (scope->reason == HOLD_DBMOVE && scope->city_key[0] != '\0') {
        placement_set_city_held(&home->shared->placement, scope->database, scope->city_key, on);
        return;
    }
    if (scope->reason == HOLD_DBMOVE) {
        placement_set_held(&home->shared->placement, scope->database, on);
        return;
    }
    for (size_t i = 0; i < regions->count; i++) {
        struct registry_region *rr = regions->items[i].runtime;
        if (!scope->all && strcasecmp(regions->items[i].name, scope->region) != 0)
            continue;
        if (scope->reason == HOLD_PAUSE)
            registry_set_paused(rr, on);
        else
            registry_set_migration_hold(rr, on);
    }
}

/* Whether someone took the flag down meanwhile in some region of the scope (RESUME). */
static bool opened_meanwhile(const struct gate_close *g)
{
    if (g->scope.reason == HOLD_DBMOVE && g->scope.city_key[0] != '\0')
        return !placement_city_held_key(&g->home->shared->placement, g->scope.database,
                                        g->scope.city_key);
    if (g->scope.reason == HOLD_DBMOVE)
        return !placement_held(&g->home->shared->placement, g->scope.database);
    const struct region_set *regions = &g->cfg->regions;
    for (size_t i = 0; i < regions->count; i++) {
        const struct region *r = &regions->items[i];
        if (!g->scope.all && strcasecmp(r->name, g->scope.region) != 0)
            continue;
        if (!(g->scope.reason == HOLD_PAUSE ? registry_paused(r->runtime)
                                            : registry_migration_hold(r->runtime)))
            return true;
    }
    return false;
}

/* ---- on each worker ---- */

uint8_t gate_reasons_for(const struct session *s, const struct region *r)
{
    struct placement_table *placement = &s->w->shared->placement;
    uint8_t reasons = 0;
    if (registry_paused(r->runtime))
        reasons |= HOLD_PAUSE;
    if (registry_migration_hold(r->runtime) && strcmp(s->database, s->w->cfg->migrations_db) == 0)
        reasons |= HOLD_MIGRATION;
    if (placement_held(placement, s->database) ||
        placement_city_held(placement, s->database, session_origin_text(&s->origin, ORIGIN_CITY),
                            session_origin_text(&s->origin, ORIGIN_PLACE)))
        reasons |= HOLD_DBMOVE;
    return reasons;
}

/* gate_each's step of a close: s is to be held at its next safe point for the scope's reason. */
static bool hold_one(struct session *s, void *arg)
{
    const struct gate_scope *scope = arg;
    gate_hold_session(s, scope->reason);
    return true;
}

/* On each worker (worker_call_all): marks the worker's sessions in scope to be held. */
static int hold_on_worker(struct worker *w, void *arg)
{
    struct gate_close *g = arg;
    gate_each(w, &g->scope, hold_one, &g->scope);
    return 0;
}

/*
 * gate_each's step of an open: s no longer held for the scope's reason
 * (another reason may still hold it).
 */
static bool release_one(struct session *s, void *arg)
{
    const struct gate_scope *scope = arg;
    gate_release_session(s, scope->reason);
    return true;
}

/* On each worker: lets the worker's sessions in scope go for the scope's reason. */
static int release_on_worker(struct worker *w, void *arg)
{
    gate_each(w, arg, release_one, arg);
    return 0;
}

/* A session of the gate's scope it waits for: wanted held for this reason, not held yet. */
static bool is_late(const struct gate_close *g, const struct session *s)
{
    return (s->hold.hold_reasons & g->scope.reason) != 0 && !s->hold.held &&
           s->hold.on_safe == SAFE_HOLD;
}

/* The gate's late sessions on one worker: counted in its slot, the first ones named. */
struct late_walk {
    const struct gate_close *g;
    struct worker_late *late;
};

/*
 * gate_each's step of a poll: counts s in its worker's slot when it is
 * late (is_late), naming the first GATE_NAME_LATE.
 */
static bool count_late_one(struct session *s, void *arg)
{
    struct late_walk *walk = arg;
    struct worker_late *late = walk->late;
    if (!is_late(walk->g, s))
        return true;
    if (late->count < GATE_NAME_LATE) {
        struct late_session *c = &late->named[late->count];
        c->id = s->id;
        snprintf(c->addr, sizeof(c->addr), "%s", session_peer(s).text);
        c->in_transaction = server_conn_in_transaction(s->server_conn);
    }
    late->count++;
    return true;
}

/*
 * On each worker: counts its late sessions afresh in its own slot of
 * g->late, which no other worker writes.
 */
static int count_late_on_worker(struct worker *w, void *arg)
{
    struct gate_close *g = arg;
    struct late_walk walk = {.g = g, .late = &g->late[w->index]};
    memset(walk.late, 0, sizeof(*walk.late));
    gate_each(w, &g->scope, count_late_one, &walk);
    return 0;
}

/*
 * gate_each's step of a forced close: a late session is ended with 57P01,
 * as an administrator's termination, saying which step it kept waiting.
 */
static bool force_one(struct session *s, void *arg)
{
    struct late_walk *walk = arg;
    if (!is_late(walk->g, s))
        return true;
    slog_info(s, "ended: it kept a migration's pause step from starting");
    struct pg_error err;
    pg_error_set(&err, "57P01", "terminating connection due to administrator command");
    pg_error_detail(&err, "%s", walk->g->force_detail);
    pg_error_hint(&err, "Connect again: the next session waits for the step.");
    session_fail(s, &err);
    walk->late->count++;
    return true;
}

/* force: the sessions still not held are ended; each counted in its worker's slot. */
static int force_on_worker(struct worker *w, void *arg)
{
    struct gate_close *g = arg;
    struct late_walk walk = {.g = g, .late = &g->late[w->index]};
    walk.late->count = 0;
    gate_each(w, &g->scope, force_one, &walk);
    return 0;
}

/* ---- the held sessions' server processes ---- */

void gate_pids_init(struct gate_pids *p, const struct gate_scope *scope)
{
    memset(p, 0, sizeof(*p));
    p->scope = *scope;
    pthread_mutex_init(&p->lock, NULL);
}

void gate_pids_destroy(struct gate_pids *p)
{
    pthread_mutex_destroy(&p->lock);
}

bool gate_pids_add(struct gate_pids *p, long pid)
{
    pthread_mutex_lock(&p->lock);
    size_t len = strlen(p->list);
    int n = snprintf(p->list + len, sizeof(p->list) - len, "%s%ld", len > 0 ? "," : "", pid);
    bool fits = n > 0 && (size_t)n < sizeof(p->list) - len;
    if (!fits) {
        p->list[len] = '\0';
        p->overflow = true;
    }
    pthread_mutex_unlock(&p->lock);
    return fits;
}

/* gate_each's step of gate_collect_pids: the server process of s, when it has a connection. */
static bool pid_one(struct session *s, void *arg)
{
    if (s->server_conn != NULL)
        gate_pids_add(arg, (long)s->server_conn->pid);
    return true;
}

/* On each worker: adds its sessions' server processes to the shared list (under its lock). */
static int pids_on_worker(struct worker *w, void *arg)
{
    struct gate_pids *p = arg;
    gate_each(w, &p->scope, pid_one, p);
    return 0;
}

/* On the home worker once every worker has added its pids: the caller is told. */
static void pids_collected(struct worker *from, const struct worker_reply *r)
{
    struct gate_pids *p = r->arg;
    (void)from;
    p->done(p->arg);
}

int gate_collect_pids(struct worker *home, struct gate_pids *p, void (*done)(void *arg), void *arg)
{
    p->done = done;
    p->arg = arg;
    return worker_call_all(home, pids_on_worker, p, pids_collected, NULL);
}

/* ---- on the home worker ---- */

struct open_call {
    struct gate_scope scope;
    void (*done)(void *arg);
    void *arg;
};

/* On the home worker once every worker let its sessions go: the caller is told, the call freed. */
static void opened(struct worker *from, const struct worker_reply *r)
{
    struct open_call *call = r->arg;
    (void)from;
    if (call->done != NULL)
        call->done(call->arg);
    free(call);
}

int gate_open(struct worker *home, const struct gate_scope *scope, void (*done)(void *arg),
              void *arg)
{
    set_flag(home, &home->cfg->regions, scope, false);
    struct open_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return -1;
    call->scope = *scope;
    call->done = done;
    call->arg = arg;
    if (worker_call_all(home, release_on_worker, &call->scope, opened, NULL) != 0) {
        free(call);
        return -1;
    }
    return 0;
}

/* Frees a close and what it holds (timer, configuration reference, late slots); told no one. */
static void gate_free(struct gate_close *g)
{
    if (g->timer != NULL)
        event_free(g->timer);
    config_unref(g->cfg);
    free(g->late);
    free(g);
}

/* "Still busy: client 12 (addr) in a transaction, ...": the first late sessions by worker. */
static void name_busy(const struct gate_close *g, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < g->home->shared->nworkers; i++)
        for (uint64_t j = 0; j < g->late[i].count && j < GATE_NAME_LATE; j++) {
            const struct late_session *c = &g->late[i].named[j];
            if (used < cap)
                used += (size_t)snprintf(buf + used, cap - used, "%sclient %llu (%s)%s",
                                         used ? ", " : "Still busy: ", (unsigned long long)c->id,
                                         c->addr, c->in_transaction ? " in a transaction" : "");
        }
    if (used > 0 && used < cap - 1)
        snprintf(buf + used, cap - used, ".");
}

/* The end: open again unless held or opened by someone else, done told, freed. */
static void gate_finish(struct gate_close *g, uint64_t late, enum gate_end end)
{
    struct gate_outcome o = {.end = end, .late = late, .forced = g->forced};
    o.waited_ms = monotonic_ms() - g->started_ms;
    if (end != GATE_HELD)
        name_busy(g, o.busy, sizeof(o.busy));
    if ((end == GATE_LATE || end == GATE_CANCELED || end == GATE_FAILED) &&
        gate_open(g->home, &g->scope, NULL, NULL) != 0)
        log_error(0, "could not let the held sessions go: out of memory");
    gate_done_fn done = g->done;
    void *arg = g->arg;
    gate_free(g);
    done(&o, arg);
}

static void gate_poll(struct gate_close *g);

/*
 * On the home worker after the late sessions were ended: their number
 * added, then a poll for the sessions still to hold.
 */
static void forced(struct worker *from, const struct worker_reply *r)
{
    struct gate_close *g = r->arg;
    for (int i = 0; i < from->shared->nworkers; i++)
        g->forced += g->late[i].count;
    gate_poll(g); /* the ended sessions have left their lists */
}

/*
 * How the close ends now: opened by someone else, canceled, all held, or
 * late past the deadline; -1 while it waits on.
 */
static enum gate_end gate_verdict(struct gate_close *g, uint64_t late, int64_t now)
{
    if (opened_meanwhile(g))
        return GATE_OPENED;
    if (g->canceled)
        return GATE_CANCELED;
    if (late == 0)
        return GATE_HELD;
    return now >= g->deadline_ms ? GATE_LATE : (enum gate_end) - 1;
}

/*
 * On the home worker once every worker counted its late sessions: the
 * close ends, forces the late ones once (force), or polls again in
 * GATE_POLL_MS.
 */
static void counted(struct worker *from, const struct worker_reply *r)
{
    struct gate_close *g = r->arg;
    uint64_t late = 0;
    for (int i = 0; i < from->shared->nworkers; i++)
        late += g->late[i].count;
    enum gate_end end = gate_verdict(g, late, monotonic_ms());
    if (end == GATE_LATE && g->force && !g->forced_once) {
        g->forced_once = true;
        if (worker_call_all(g->home, force_on_worker, g, forced, NULL) == 0)
            return;
        end = GATE_FAILED;
    }
    if (end != (enum gate_end) - 1) {
        gate_finish(g, late, end);
        return;
    }
    struct timeval tv = {0, GATE_POLL_MS * 1000};
    evtimer_add(g->timer, &tv);
}

/* Asks every worker to count its late sessions; counted goes on from there. */
static void gate_poll(struct gate_close *g)
{
    if (worker_call_all(g->home, count_late_on_worker, g, counted, NULL) != 0)
        gate_finish(g, 0, GATE_FAILED);
}

/* The poll timer. */
static void gate_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    gate_poll(arg);
}

/* On the home worker once every worker marked its sessions to be held: the first poll. */
static void marked(struct worker *from, const struct worker_reply *r)
{
    (void)from;
    gate_poll(r->arg);
}

struct gate_close *gate_close(struct worker *home, const struct gate_scope *scope, int timeout_ms,
                              const char *force_detail, gate_done_fn done, void *arg)
{
    struct gate_close *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->home = home;
    g->cfg = config_ref(home->cfg);
    g->scope = *scope;
    g->started_ms = monotonic_ms();
    g->deadline_ms = g->started_ms + timeout_ms;
    g->force = force_detail != NULL;
    snprintf(g->force_detail, sizeof(g->force_detail), "%s", g->force ? force_detail : "");
    g->done = done;
    g->arg = arg;
    g->late = calloc((size_t)home->shared->nworkers, sizeof(*g->late));
    g->timer = evtimer_new(home->base, gate_timer_cb, g);
    if (g->late == NULL || g->timer == NULL) {
        gate_free(g);
        return NULL;
    }
    set_flag(g->home, &g->cfg->regions, scope, true);
    if (worker_call_all(home, hold_on_worker, g, marked, NULL) != 0) {
        set_flag(g->home, &g->cfg->regions, scope, false);
        gate_free(g);
        return NULL;
    }
    return g;
}

void gate_close_cancel(struct gate_close *g)
{
    g->canceled = true;
}
