/*
 * fetch.c — a server connection fetched for a session by an internal
 * session of pgnear's own (fetch.h): made to log in as the session would,
 * planned, started, and its end told to its owner.
 */
#include "proxy/session/fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/gate.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/session_identity.h"
#include "proxy/session/session_need.h"
#include "proxy/session/session_secret.h"
#include "routing/need.h"
#include "routing/region.h"
#include "routing/route.h"

/*
 * A session with no client that logs in as s would: s's user, database,
 * startup parameters and SCRAM keys (s->secret), on s's worker, named
 * "<what> of client <s's id>" in the log.  NULL with *why when it could
 * not be made.
 */
static struct session *fetch_new_session(struct session *s, const char *what, const char **why)
{
    struct worker *w = s->w;
    __atomic_add_fetch(&w->shared->clients, 1, __ATOMIC_RELAXED); /* session_free counts it out */
    struct session *m = session_new(w, -1);
    *why = "out of memory";
    if (m == NULL)
        return NULL;
    session_label_peer(m, "%s of client %llu", what, (unsigned long long)s->id);
    m->server_startup.limit = s->server_startup.limit;
    if (m->login == NULL || s->secret == NULL ||
        session_keep_names(m, s->user, s->database, NULL, 0) == NULL ||
        param_set_copy(&m->server_startup, &s->server_startup) != PARAM_SET_OK) {
        session_close(m, *why);
        return NULL;
    }
    m->application_name = param_set_get(&m->server_startup, "application_name");
    m->login->verifier = s->secret->verifier;
    memcpy(m->login->warm_client_key, s->secret->client_key, SCRAM_KEY_LEN);
    *why = NULL;
    return m;
}

bool fetch_wants(const struct fetch_want *want, const struct locality *loc, const struct region *r)
{
    if (want->only)
        return r == loc->region;
    return want->avoid == NULL || strcmp(r->name, want->avoid) != 0;
}

size_t fetch_plan(const struct session *s, const struct fetch_want *want, struct locality *loc,
                  struct region **plan, double *cosines)
{
    session_locality(s, want->region, loc);
    size_t n = session_replan(s, s->w->cfg, loc, &want->need, plan, cosines, ROUTE_MAX_REGIONS);
    if (!want->only && (want->avoid == NULL || want->avoid[0] == '\0'))
        return n; /* every region of the route is wanted (each transaction's fetcher) */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (fetch_wants(want, loc, plan[i])) {
            plan[kept] = plan[i];
            cosines[kept++] = cosines[i];
        }
    }
    return kept;
}

const char *fetch_start(struct session *s, const struct fetch_want *want,
                        const struct fetch_ops *ops, void *arg, struct session **fetcher)
{
    const char *why = NULL;
    struct session *m = fetch_new_session(s, ops->what, &why);
    if (m == NULL)
        return why;
    struct session_login *l = m->login;
    l->fetch = ops;
    l->fetch_arg = arg;
    l->wait_began_us = want->waited_since_us;
    m->need = want->need;
    l->plan_len = fetch_plan(s, want, &l->loc, l->plan, l->plan_cos);
    m->region = l->plan_len > 0 ? l->plan[0] : NULL;
    *fetcher = m;
    phase_begin_at(m, PHASE_CONNECT);
    return NULL;
}

struct region_host *fetch_first_host(struct region *r, const struct need_spec *need)
{
    uint8_t order[REGION_MAX_HOSTS];
    if (need_host_order(r, need, order) == 0)
        return NULL;
    struct region_host *h = &r->hosts[order[0]];
    return need_host_fit(h, need) == NEED_FIT_GOOD && host_is_up(h) ? h : NULL;
}

/* sc, taken for s at spot, attached: as a handover starts it, counted as reused. */
static void fetch_took(struct session *s, const struct fetch_spot *spot, struct server_conn *sc)
{
    s->region = spot->region;
    tx_track_init(&sc->tx, 'I'); /* as a handover starts it */
    sc->sent_to_client = true;
    stat_inc(&s->w->stats.server_reuses);
    slog_debug(s, "took idle server connection %llu to %s:%d (use %u)", (unsigned long long)sc->id,
               spot->host->name, spot->host->port, sc->use_count);
}

/* Where want's first region and its first host are, held by no gate: false when not so. */
static bool fetch_spot_find(struct session *s, const struct fetch_want *want,
                            struct fetch_spot *spot)
{
    struct locality loc;
    struct region *plan[ROUTE_MAX_REGIONS];
    double cosines[ROUTE_MAX_REGIONS];
    if (fetch_plan(s, want, &loc, plan, cosines) == 0 || gate_reasons_for(s, plan[0]) != 0)
        return false;
    struct region_host *h = fetch_first_host(plan[0], &want->need);
    if (h == NULL)
        return false;
    *spot = (struct fetch_spot){plan[0], h};
    return true;
}

/* Whether the spot a transaction waited at still serves it: no gate, the host up and fitting. */
static bool fetch_spot_serves(struct session *s, const struct fetch_spot *spot,
                              const struct need_spec *need)
{
    return gate_reasons_for(s, spot->region) == 0 &&
           need_host_fit(spot->host, need) == NEED_FIT_GOOD && host_is_up(spot->host);
}

struct server_conn *fetch_take(struct session *s, const struct fetch_want *want,
                               struct fetch_spot *spot)
{
    struct worker *w = s->w;
    bool waited = spot->host != NULL;
    /* A fetcher logs in under the worker's config: one reloaded meanwhile comes with it. */
    if (s->cfg != w->cfg || !config_pooling(s->cfg) ||
        !(waited ? fetch_spot_serves(s, spot, &want->need) : fetch_spot_find(s, want, spot))) {
        *spot = (struct fetch_spot){NULL, NULL};
        return NULL;
    }
    /* Clients queued for the pool first: a newcomer waits behind them (pool_queued). */
    if (!waited && w->shared->flow->server_queued(s, spot->region))
        return NULL;
    struct server_conn *sc = w->shared->flow->server_take(s, spot->region, spot->host, true);
    if (sc == NULL)
        return NULL;
    fetch_took(s, spot, sc);
    stat_inc(waited ? &w->stats.txn_waited_takes : &w->stats.txn_direct_takes);
    return sc;
}

void fetch_close(struct session *m, const char *why)
{
    m->login->fetch = NULL;
    session_close(m, why);
}

bool fetch_ready(struct session *m)
{
    const struct fetch_ops *ops = m->login != NULL ? m->login->fetch : NULL;
    if (ops == NULL)
        return false;
    ops->ready(m, m->login->fetch_arg);
    return true;
}

void fetch_lost(struct session *m)
{
    const struct fetch_ops *ops = m->login->fetch;
    if (ops == NULL)
        return;
    m->login->fetch = NULL;
    if (ops->lost != NULL)
        ops->lost(m, m->login->fetch_arg, m->closing_why);
}
