/*
 * snapshot.c — gathering what the workers hold (snapshot.h).
 */
#include "proxy/admin/snapshot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/gate.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/move.h"
#include "proxy/session/near.h"
#include "proxy/session/session.h"
#include "proxy/session/txn_settings.h"
#include "routing/claimants.h"
#include "routing/health.h"
#include "routing/need.h"
#include "routing/region.h"
#include "routing/registry.h"
#include "routing/route.h"
#include "routing/rtt.h"

/* Copies src (may be NULL) into dst, cut to fit. */
static void copy_name(char *dst, size_t cap, const char *src)
{
    size_t n = src != NULL ? strnlen(src, cap - 1) : 0;
    memcpy(dst, src != NULL ? src : "", n);
    dst[n] = '\0';
}

/* SHOW CLIENTS' word for a state; "?" for a value out of range rather than a crash. */
const char *client_row_state_name(enum client_row_state state)
{
    static const char *const names[] = {
        [CLIENT_ROW_LOGIN] = "login",   [CLIENT_ROW_WAITING] = "waiting",
        [CLIENT_ROW_ACTIVE] = "active", [CLIENT_ROW_IDLE] = "idle",
        [CLIENT_ROW_HELD] = "held",     [CLIENT_ROW_CLOSING] = "closing",
    };
    _Static_assert(sizeof(names) / sizeof(names[0]) == CLIENT_ROW_STATES,
                   "a name for every client state");
    return (unsigned)state < CLIENT_ROW_STATES ? names[state] : "?";
}

/* SHOW SERVERS' word for a state; "?" for a value out of range. */
const char *server_row_state_name(enum server_row_state state)
{
    static const char *const names[] = {
        [SERVER_ROW_NEW] = "new",   [SERVER_ROW_ACTIVE] = "active", [SERVER_ROW_TESTED] = "tested",
        [SERVER_ROW_USED] = "used", [SERVER_ROW_IDLE] = "idle",
    };
    _Static_assert(sizeof(names) / sizeof(names[0]) == SERVER_ROW_STATES,
                   "a name for every server state");
    return (unsigned)state < SERVER_ROW_STATES ? names[state] : "?";
}

/*
 * A session's state for SHOW CLIENTS, from its phase; an active one is idle
 * only at a safe point.
 */
static enum client_row_state client_state(const struct session *s)
{
    if (s->phase == PHASE_CLOSING)
        return CLIENT_ROW_CLOSING;
    if (s->phase == PHASE_WAIT_SERVER || txn_next_queued(s))
        return CLIENT_ROW_WAITING;
    if (s->phase != PHASE_ACTIVE)
        return CLIENT_ROW_LOGIN;
    if (s->hold.held)
        return CLIENT_ROW_HELD;
    return session_at_safe_point(s) ? CLIENT_ROW_IDLE : CLIENT_ROW_ACTIVE;
}

/* Where a nearest session's transactions ran (near_show: none where it is not followed). */
static void client_row_fill_near(struct client_row *row, const struct session *s)
{
    struct near_show n;
    near_show(s, &n);
    row->forwarded = n.forwarded;
    row->owns_parked = n.owns_parked;
    if (n.reads_at != NULL)
        copy_name(row->reads_at, sizeof(row->reads_at), n.reads_at);
    if (n.writes_at != NULL)
        copy_name(row->writes_at, sizeof(row->writes_at), n.writes_at);
}

/* Copies what SHOW CLIENTS shows of s into row, on s's worker: the row outlives the session. */
static void client_row_fill(struct client_row *row, const struct session *s)
{
    row->id = s->id;
    row->worker = s->w->index;
    copy_name(row->addr, sizeof(row->addr), session_peer(s).text);
    copy_name(row->user, sizeof(row->user), s->user);
    copy_name(row->database, sizeof(row->database), s->database);
    row->pool_mode = s->cfg != NULL && s->user != NULL && s->database != NULL
                         ? config_session_pool_mode(s->cfg, s->user, s->database)
                         : POOL_NONE;
    copy_name(row->application_name, sizeof(row->application_name), s->application_name);
    row->state = client_state(s);
    const struct wait_turn *turn = session_turn(s);
    row->wait_since_us = turn != NULL && turn->queued ? turn->since_us : 0;
    row->in_transaction = s->phase == PHASE_ACTIVE && server_conn_in_transaction(s->server_conn);
    row->tls = s->client_tls || s->websocket_tls;
    row->need = need_name(s->need.role);
    if (s->fence != NULL && s->fence->lsn != 0)
        lsn_format(s->fence->tli, s->fence->lsn, row->fence, sizeof(row->fence));
    if (s->need.min_lsn != 0)
        lsn_format(s->need.min_tli, s->need.min_lsn, row->min_lsn, sizeof(row->min_lsn));
    row->transport = s->websocket ? "websocket" : s->unix_socket ? "unix" : "tcp";
    row->moves = s->moves;
    const char *refusal = move_refusal(s);
    row->movable = refusal == NULL ? "yes" : refusal;
    row->pinned = s->txn != NULL && s->pinned != NULL ? s->pinned : "";
    row->settings = txn_settings_on(s) ? (int64_t)txn_settings_count(s) : -1;
    client_row_fill_near(row, s);
    const bool placed = s->phase == PHASE_ACTIVE;
    copy_name(row->region, sizeof(row->region), s->region != NULL ? s->region->name : NULL);
    if (placed && s->server_conn != NULL) {
        const struct region_host *h = s->server_conn->host;
        snprintf(row->server, sizeof(row->server), "%.*s:%d", SNAPSHOT_NAME_MAX - 1, h->name,
                 h->port);
    }
    row->source = placed ? route_source_name((enum locality_source)s->origin.source) : "";
    copy_name(row->place, sizeof(row->place),
              placed ? session_origin_text(&s->origin, ORIGIN_PLACE) : NULL);
    copy_name(row->via, sizeof(row->via),
              placed ? session_origin_text(&s->origin, ORIGIN_VIA) : NULL);
    row->has_coords = placed && s->origin.has_coords;
    row->lat = s->origin.lat;
    row->lon = s->origin.lon;
    row->km = placed ? s->origin.km : -1.0;
    row->connected_at = s->connected_at;
    row->bytes_in = s->client.bytes_in;
    row->bytes_out = s->client.bytes_out;
}

/* Counts one relaying session in its region's entry (few regions: a linear search). */
static bool part_count_region(struct snapshot_part *p, const struct region *r, size_t *cap)
{
    for (size_t i = 0; i < p->nregions; i++)
        if (strcmp(p->regions[i].name, r->name) == 0) {
            p->regions[i].sessions++;
            return true;
        }
    if (p->nregions == *cap) {
        size_t grown_cap = *cap ? *cap * 2 : 8;
        struct region_sessions *grown = realloc(p->regions, grown_cap * sizeof(*grown));
        if (grown == NULL)
            return false;
        p->regions = grown;
        *cap = grown_cap;
    }
    struct region_sessions *e = &p->regions[p->nregions++];
    copy_name(e->name, sizeof(e->name), r->name);
    e->sessions = 1;
    return true;
}

/* The state a connection's list stands for. */
static enum server_row_state server_state(const struct server_conn *sc)
{
    const struct worker *w = sc->w;
    if (sc->list == &w->active_servers)
        return sc->client != NULL && sc->client->login != NULL &&
                       sc->client->login->handover.checking
                   ? SERVER_ROW_TESTED
                   : SERVER_ROW_ACTIVE;
    if (sc->list == &w->used_servers)
        return SERVER_ROW_USED;
    if (sc->list == &w->idle_servers)
        return SERVER_ROW_IDLE;
    return SERVER_ROW_NEW;
}

/*
 * Copies what SHOW SERVERS shows of sc into row, on its worker; idle_since only
 * while on the idle list.
 */
static void server_row_fill(struct server_row *row, const struct server_conn *sc)
{
    const struct worker *w = sc->w;
    row->id = sc->id;
    row->worker = w->index;
    row->client = sc->client != NULL ? sc->client->id : 0;
    row->state = server_state(sc);
    copy_name(row->database, sizeof(row->database), sc->database);
    copy_name(row->user, sizeof(row->user), sc->user);
    row->pool_mode = config_session_pool_mode(sc->cfg, sc->user, sc->database);
    row->idle_since_us = sc->list == &w->idle_servers ? sc->idle_since : 0;
    copy_name(row->region, sizeof(row->region), sc->region->name);
    snprintf(row->server, sizeof(row->server), "%.*s:%d", SNAPSHOT_NAME_MAX - 1, sc->host->name,
             sc->host->port);
    row->tls = sc->tls;
    row->pid = sc->pid;
    row->tx_status = sc->tx.status;
    row->outstanding = sc->tx.outstanding;
    row->safe_point = server_conn_at_safe_point(sc);
    copy_name(row->server_version, sizeof(row->server_version), sc->params.server_version);
    row->connected_at_us = sc->connect_time;
    row->bytes_in = sc->ep.bytes_in;
    row->bytes_out = sc->ep.bytes_out;
    row->uses = sc->use_count;
}

/*
 * Every server connection of w, from its four lists; the part is marked failed
 * when out of memory.
 */
static void part_add_servers(struct snapshot_part *p, const struct worker *w)
{
    size_t n = worker_server_count(w);
    p->servers = n > 0 ? calloc(n, sizeof(*p->servers)) : NULL;
    if (n > 0 && p->servers == NULL) {
        p->failed = true;
        return;
    }
    const struct list *lists[] = {&w->active_servers, &w->login_servers, &w->used_servers,
                                  &w->idle_servers};
    for (size_t i = 0; i < 4; i++) {
        struct list_node *pos, *tmp;
        list_for_each_safe(pos, tmp, lists[i])
            server_row_fill(&p->servers[p->nservers++], list_entry(pos, struct server_conn, node));
    }
}

/* Appends a list's sessions; the caller sized p->clients for all of them. */
static void part_add_clients(struct snapshot_part *p, struct list *sessions)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, sessions)
        client_row_fill(&p->clients[p->nclients++], list_entry(pos, struct session, node));
}

const char *snapshot_admin_state_name(int state)
{
    static const char *const names[] = {"enabled", "disabled", "draining"};
    return state >= 0 && state < 3 ? names[state] : "?";
}

/* One host's row, on worker 0: the health fields shared with other workers are read atomically. */
static void host_row_fill(struct host_row *row, const struct region *r, const struct region_host *h)
{
    const struct host_health *hh = &h->runtime->health;
    copy_name(row->region, sizeof(row->region), r->name);
    row->admin_state = snapshot_admin_state_name((int)registry_admin_state(r->runtime));
    row->paused = registry_paused(r->runtime);
    row->has_location = r->has_location;
    row->lat = r->lat;
    row->lon = r->lon;
    copy_name(row->host, sizeof(row->host), h->name);
    row->port = h->port;
    row->up = host_is_reachable(h);
    row->standby = host_is_standby(h);
    row->fenced = host_is_fenced(h);
    row->fenced_why[0] = '\0';
    if (row->fenced)
        claimants_describe(h->runtime, row->fenced_why, sizeof(row->fenced_why));
    row->read_only = __atomic_load_n(&hh->read_only, __ATOMIC_RELAXED);
    row->lagging = __atomic_load_n(&hh->lagging, __ATOMIC_RELAXED);
    row->lag_ms = __atomic_load_n(&hh->lag_ms, __ATOMIC_RELAXED);
    row->lag_bytes = __atomic_load_n(&hh->lag_bytes, __ATOMIC_RELAXED);
    row->lsn = __atomic_load_n(&hh->lsn, __ATOMIC_RELAXED);
    row->timeline = __atomic_load_n(&hh->timeline, __ATOMIC_RELAXED);
    /* Worker 0's health checks write the rest: this runs on worker 0. */
    row->checked = hh->checked;
    row->role_known = hh->role_known;
    row->login_failing = hh->login_failing;
    row->rtt_ms = hh->rtt_ms;
    row->last_check = hh->last_check;
    row->downs = health_downs(h);
    copy_name(row->last_error, sizeof(row->last_error), hh->last_error);
    row->rtt_last_ms = rtt_last_ms(&hh->rtt);
    row->rtt_avg_ms = rtt_estimate_ms(&hh->rtt);
    row->rtt_samples = rtt_samples(&hh->rtt);
    row->rtt_slow = rtt_is_slow(&hh->rtt, monotonic_ms());
    row->rtt_wire_ms = rtt_floor_ms(&hh->rtt);
    row->logins_at_once = health_logins_at_once(h);
}

/*
 * The region r's callers prefer (the checker's thread writes it): named
 * through the configuration's regions, by pointer only, since an entry
 * the configuration dropped is not to be read.
 */
static void host_row_preferred(struct host_row *row, const struct region_set *set,
                               const struct region *r)
{
    const struct registry_region *rr = r->runtime;
    const struct registry_region *pref = __atomic_load_n(&rr->preferred, __ATOMIC_ACQUIRE);
    row->preference_changes = __atomic_load_n(&rr->preference_changes, __ATOMIC_RELAXED);
    for (size_t i = 0; pref != NULL && i < set->count; i++)
        if (set->items[i].runtime == pref) {
            copy_name(row->preferred, sizeof(row->preferred), set->items[i].name);
            int64_t since = __atomic_load_n(&rr->preferred_since_ms, __ATOMIC_RELAXED);
            row->preferred_since_us = wall_clock_us() - (monotonic_ms() - since) * 1000;
        }
}

/* Worker 0: every host of its configuration (the current one), with health. */
static void part_add_hosts(struct snapshot_part *p, const struct config *cfg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->regions.count; i++)
        n += cfg->regions.items[i].nhosts;
    p->hosts = n > 0 ? calloc(n, sizeof(*p->hosts)) : NULL;
    if (n > 0 && p->hosts == NULL) {
        p->failed = true;
        return;
    }
    for (size_t i = 0; i < cfg->regions.count; i++) {
        const struct region *r = &cfg->regions.items[i];
        for (size_t j = 0; j < r->nhosts; j++) {
            host_row_preferred(&p->hosts[p->nhosts], &cfg->regions, r);
            host_row_fill(&p->hosts[p->nhosts++], r, &r->hosts[j]);
        }
    }
}

/* What the relay counts in the open server connections (closed ones are in w->stats). */
static void part_add_open_counts(struct snapshot_part *p, const struct worker *w)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->active_servers)
    {
        const struct server_conn *sc = list_entry(pos, struct server_conn, node);
        p->stats.queries += sc->tx.answered;
        p->stats.transactions += sc->tx.answered_idle;
    }
}

/* A copy of the worker's latency histograms, named by region (the part is failed without memory).
 */
static void part_add_latency(struct snapshot_part *p, const struct latency_book *b)
{
    p->latency = b->nsets > 0 ? calloc(b->nsets, sizeof(*p->latency)) : NULL;
    if (b->nsets > 0 && p->latency == NULL) {
        p->failed = true;
        return;
    }
    for (size_t i = 0; i < b->nsets; i++) {
        struct latency_row *row = &p->latency[p->nlatency++];
        copy_name(row->region, sizeof(row->region), b->sets[i]->region->name);
        memcpy(row->hist, b->sets[i]->hist, sizeof(row->hist));
    }
}

/* The sizes of w's session and server lists, for SHOW LISTS and the metrics. */
static void part_count_lists(struct snapshot_part *p, const struct worker *w)
{
    p->lists = (struct snapshot_lists){
        .login_sessions = w->login_sessions.count,
        /* Logins and transactions waiting alike (a transaction as its fetcher would). */
        .waiting_sessions = w->server_waiters.count,
        .active_sessions = w->active_sessions.count,
        .admin_sessions = w->admin_sessions.count,
        .login_servers = w->login_servers.count,
        .active_servers = w->active_servers.count,
        .used_servers = w->used_servers.count,
        .idle_servers = w->idle_servers.count,
        .quiet_clients = w->buffers.quiet_users,
        .spare_buffers = w->buffers.nspare,
    };
}

/* The sessions by region of one worker's part. */
struct region_walk {
    struct snapshot_part *p;
    size_t cap;
};

/* gate_each's callback: counts s into its region; false (out of memory) stops the walk. */
static bool count_region_one(struct session *s, void *arg)
{
    struct region_walk *walk = arg;
    return part_count_region(walk->p, s->region, &walk->cap);
}

/* Runs on each worker's thread: fills that worker's part and nothing else. */
static int snapshot_fill(struct worker *w, void *arg)
{
    struct snapshot *snap = arg;
    struct snapshot_part *p = &snap->parts[w->index];
    p->ran = true;
    stats_accumulate(&p->stats, &w->stats);
    part_add_open_counts(p, w);
    part_count_lists(p, w);
    part_add_latency(p, &w->latency);
    p->pool_mode = config_pooling(w->cfg) ? w->cfg->pool_mode : POOL_NONE;
    struct region_walk walk = {.p = p};
    static const struct gate_scope every = {.all = true};
    if (!gate_each(w, &every, count_region_one, &walk))
        p->failed = true;
    if ((snap->what & SNAPSHOT_HOSTS) && w->index == 0)
        part_add_hosts(p, w->cfg);
    if (snap->what & SNAPSHOT_SERVERS)
        part_add_servers(p, w);
    if (!(snap->what & SNAPSHOT_CLIENTS))
        return 0;
    size_t n = w->login_sessions.count + w->waiting_sessions.count + w->active_sessions.count;
    p->clients = n > 0 ? calloc(n, sizeof(*p->clients)) : NULL;
    if (n > 0 && p->clients == NULL) {
        p->failed = true;
        return 0;
    }
    part_add_clients(p, &w->active_sessions);
    part_add_clients(p, &w->waiting_sessions);
    part_add_clients(p, &w->login_sessions);
    return 0;
}

/*
 * Every worker has filled its part (worker_call_all's reply): the caller's done
 * takes the snapshot.
 */
static void snapshot_gathered(struct worker *from, const struct worker_reply *r)
{
    struct snapshot *snap = r->arg;
    snap->done(snap, snap->arg);
}

int snapshot_take(struct worker *from, unsigned what, snapshot_done_fn done, void *arg)
{
    struct snapshot *snap = calloc(1, sizeof(*snap));
    if (snap == NULL)
        return -1;
    snap->what = what;
    snap->nparts = from->shared->nworkers;
    snap->done = done;
    snap->arg = arg;
    snap->parts = calloc((size_t)snap->nparts, sizeof(*snap->parts));
    if (snap->parts == NULL ||
        worker_call_all(from, snapshot_fill, snap, snapshot_gathered, NULL) != 0) {
        snapshot_free(snap);
        return -1;
    }
    return 0;
}

/* Frees every part and the snapshot; NULL is fine. */
void snapshot_free(struct snapshot *snap)
{
    if (snap == NULL)
        return;
    for (int i = 0; snap->parts != NULL && i < snap->nparts; i++) {
        free(snap->parts[i].regions);
        free(snap->parts[i].clients);
        free(snap->parts[i].servers);
        free(snap->parts[i].hosts);
        free(snap->parts[i].latency);
    }
    free(snap->parts);
    free(snap);
}

void snapshot_sum_stats(const struct snapshot *snap, struct worker_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < snap->nparts; i++)
        stats_accumulate(out, &snap->parts[i].stats);
}

void snapshot_sum_lists(const struct snapshot *snap, struct snapshot_lists *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < snap->nparts; i++) {
        const struct snapshot_lists *l = &snap->parts[i].lists;
        out->login_sessions += l->login_sessions;
        out->waiting_sessions += l->waiting_sessions;
        out->active_sessions += l->active_sessions;
        out->admin_sessions += l->admin_sessions;
        out->login_servers += l->login_servers;
        out->active_servers += l->active_servers;
        out->used_servers += l->used_servers;
        out->idle_servers += l->idle_servers;
        out->quiet_clients += l->quiet_clients;
        out->spare_buffers += l->spare_buffers;
    }
}

uint64_t snapshot_region_sessions(const struct snapshot *snap, const char *region)
{
    uint64_t n = 0;
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nregions; j++)
            if (strcmp(snap->parts[i].regions[j].name, region) == 0)
                n += snap->parts[i].regions[j].sessions;
    return n;
}

uint64_t snapshot_server_sessions(const struct snapshot *snap, const char *region,
                                  const char *server)
{
    uint64_t n = 0;
    for (int i = 0; i < snap->nparts; i++)
        for (size_t j = 0; j < snap->parts[i].nclients; j++) {
            const struct client_row *c = &snap->parts[i].clients[j];
            if (strcmp(c->region, region) == 0 && strcmp(c->server, server) == 0 &&
                c->server[0] != '\0')
                n++;
        }
    return n;
}

bool snapshot_partial(const struct snapshot *snap)
{
    for (int i = 0; i < snap->nparts; i++)
        if (snap->parts[i].failed || !snap->parts[i].ran)
            return true;
    return false;
}
