/*
 * pool_warm.c — min_pool_size: the pairs kept warm, and the internal
 * sessions that open their connections.
 */
#include "proxy/pool/pool_warm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "protocol/clock.h"
#include "protocol/scram.h"
#include "protocol/startup.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/pool/pool_idle.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/fetch.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "proxy/session/session_identity.h"
#include "routing/region.h"

/* A (region, database, user) seen since start, and what logging in for it again takes. */
struct pool_warm_pair {
    char region[SERVER_POOL_NAME_MAX];
    char database[SERVER_POOL_NAME_MAX];
    char user[SERVER_POOL_NAME_MAX];
    struct param_set params; /* the startup parameters as the server got them (server_startup) */
    uint8_t client_key[SCRAM_KEY_LEN];
    struct scram_verifier verifier;
    int64_t last_seen_us; /* a client of the pair logged in */
    int64_t last_try_us;  /* a warming session started */
    int64_t last_ok_us;   /* a warming session's connection went idle */
};

struct pool_warm {
    struct pool_warm_pair pairs[POOL_WARM_MAX];
    int n;
};

static void warm_pair_wipe(struct pool_warm_pair *p)
{
    param_set_free(&p->params);
    OPENSSL_cleanse(p, sizeof(*p));
}

static struct pool_warm_pair *warm_find(struct pool_warm *pw, const char *region,
                                        const char *database, const char *user)
{
    for (int i = 0; pw != NULL && i < pw->n; i++) {
        struct pool_warm_pair *p = &pw->pairs[i];
        if (strcmp(p->region, region) == 0 && strcmp(p->database, database) == 0 &&
            strcmp(p->user, user) == 0)
            return p;
    }
    return NULL;
}

/* A free slot: an empty one, else the pair seen longest ago. */
static struct pool_warm_pair *warm_slot(struct pool_warm *pw)
{
    if (pw->n < POOL_WARM_MAX)
        return &pw->pairs[pw->n++];
    struct pool_warm_pair *oldest = &pw->pairs[0];
    for (int i = 1; i < pw->n; i++)
        if (pw->pairs[i].last_seen_us < oldest->last_seen_us)
            oldest = &pw->pairs[i];
    warm_pair_wipe(oldest);
    return oldest;
}

void pool_warm_note(struct session *s)
{
    struct worker *w = s->w;
    struct session_login *l = s->login;
    const uint8_t *key = scram_server_client_key(&l->scram_srv);
    if (s->cfg->min_pool_size == 0 || l->warming || key == NULL || !l->pool_share)
        return;
    if (w->warm == NULL && (w->warm = calloc(1, sizeof(*w->warm))) == NULL)
        return;
    struct pool_warm_pair *p = warm_find(w->warm, s->region->name, s->database, s->user);
    if (p == NULL) {
        struct param_set params = {.limit = STARTUP_MAX_LEN};
        if (param_set_copy(&params, &s->server_startup) != PARAM_SET_OK) {
            param_set_free(&params);
            return;
        }
        p = warm_slot(w->warm);
        p->params = params;
        snprintf(p->region, sizeof(p->region), "%s", s->region->name);
        snprintf(p->database, sizeof(p->database), "%s", s->database);
        snprintf(p->user, sizeof(p->user), "%s", s->user);
        slog_info(s, "min_pool_size: keeping region %s, database %s, user %s warm", p->region,
                  p->database, p->user);
    }
    /* The latest key and verifier: a password changed since is followed. */
    memcpy(p->client_key, key, SCRAM_KEY_LEN);
    p->verifier = l->verifier;
    p->last_seen_us = wall_clock_us();
    pool_arm_sweep(w);
}

bool pool_warm_active(const struct worker *w)
{
    return w->warm != NULL && w->warm->n > 0;
}

/* Server connections of the pair on this worker, whatever their state. */
static int warm_count(const struct worker *w, const struct pool_warm_pair *p)
{
    const struct list *lists[] = {&w->login_servers, &w->active_servers, &w->used_servers,
                                  &w->idle_servers};
    int n = 0;
    for (size_t i = 0; i < 4; i++) {
        struct list_node *pos, *tmp;
        list_for_each_safe(pos, tmp, lists[i])
        {
            const struct server_conn *sc = list_entry(pos, struct server_conn, node);
            n += strcmp(sc->region->name, p->region) == 0 &&
                 strcmp(sc->database, p->database) == 0 && strcmp(sc->user, p->user) == 0;
        }
    }
    return n;
}

/* A warming session's server login ended: its connection goes idle into the pool, and it ends. */
static void warm_ready(struct session *s, void *arg)
{
    (void)arg;
    struct pool_warm_pair *p = warm_find(s->w->warm, s->region->name, s->database, s->user);
    if (pool_keep_fresh(s->server_conn) && p != NULL)
        p->last_ok_us = wall_clock_us();
    fetch_close(s, "min_pool_size: connection opened and kept");
}

/* A warming session fetches a connection for the pool: it has no one to tell of a failure. */
static const struct fetch_ops warm_fetch_ops = {.what = "min_pool_size", .ready = warm_ready};

/* The internal session's login state, as a client's would be after pgnear verified it. */
static int warm_login_init(struct session *s, const struct pool_warm_pair *p, struct region *r)
{
    struct session_login *l = s->login;
    /* user and database as a client's point into its startup packet: here into a copy of them */
    if (session_keep_names(s, p->user, p->database, NULL, 0) == NULL)
        return -1;
    s->server_startup.limit = STARTUP_MAX_LEN;
    if (param_set_copy(&s->server_startup, &p->params) != PARAM_SET_OK)
        return -1;
    s->application_name = param_set_get(&s->server_startup, "application_name");
    l->warming = true;
    l->fetch = &warm_fetch_ops;
    memcpy(l->warm_client_key, p->client_key, SCRAM_KEY_LEN);
    l->verifier = p->verifier;
    l->plan[0] = r;
    l->plan_cos[0] = 1.0;
    l->plan_len = 1;
    s->region = r;
    return 0;
}

/* Starts an internal session that opens one connection for the pair. */
static void warm_start(struct worker *w, struct pool_warm_pair *p, struct region *r)
{
    __atomic_add_fetch(&w->shared->clients, 1, __ATOMIC_RELAXED); /* session_free counts it out */
    struct session *s = session_new(w, -1);
    if (s == NULL)
        return;
    session_label_peer(s, "min_pool_size");
    if (s->login == NULL || warm_login_init(s, p, r) != 0) {
        session_close(s, "out of memory");
        return;
    }
    p->last_try_us = wall_clock_us();
    slog_debug(s, "min_pool_size: opening a connection to region %s for database %s, user %s",
               p->region, p->database, p->user);
    phase_begin_at(s, PHASE_CONNECT);
}

/* The pair's share of min_pool_size on one worker (at least one). */
static int warm_share(const struct worker *w)
{
    int n = w->shared->nworkers;
    int share = (w->cfg->min_pool_size + n - 1) / n;
    return share > 0 ? share : 1;
}

void pool_warm_tick(struct worker *w)
{
    struct pool_warm *pw = w->warm;
    if (pw == NULL || w->draining)
        return;
    int64_t now = wall_clock_us();
    const struct config *cfg = w->cfg;
    for (int i = 0; i < pw->n; i++) {
        struct pool_warm_pair *p = &pw->pairs[i];
        struct region *r = region_set_find(&cfg->regions, p->region);
        bool stale = now - p->last_seen_us > (int64_t)cfg->server_lifetime_ms * 1000;
        if (stale || r == NULL || cfg->min_pool_size == 0 || !config_pooling(cfg)) {
            warm_pair_wipe(p);
            pw->pairs[i--] = pw->pairs[--pw->n];
            continue;
        }
        bool failed_lately = p->last_try_us > p->last_ok_us &&
                             now - p->last_try_us < (int64_t)POOL_WARM_RETRY_MS * 1000;
        if (failed_lately)
            continue;
        for (int missing = warm_share(w) - warm_count(w, p); missing > 0; missing--)
            warm_start(w, p, r);
    }
}

bool pool_warm_keeps(const struct worker *w, const struct server_conn *sc)
{
    const struct pool_warm_pair *p = warm_find(w->warm, sc->region->name, sc->database, sc->user);
    return p != NULL && w->cfg->min_pool_size > 0 && warm_count(w, p) <= warm_share(w);
}

const uint8_t *pool_warm_client_key(const struct session *s)
{
    const struct session_login *l = s->login;
    return l != NULL && session_login_internal(l) ? l->warm_client_key : NULL;
}

void pool_warm_forget(struct session *s)
{
    struct pool_warm *pw = s->w->warm;
    struct pool_warm_pair *p = warm_find(pw, s->region->name, s->database, s->user);
    if (p == NULL)
        return;
    slog_warn(s,
              "min_pool_size: region %s, database %s, user %s no longer kept warm: its "
              "login failed",
              p->region, p->database, p->user);
    warm_pair_wipe(p);
    *p = pw->pairs[--pw->n];
}

void pool_warm_free(struct worker *w)
{
    if (w->warm == NULL)
        return;
    for (int i = 0; i < w->warm->n; i++)
        warm_pair_wipe(&w->warm->pairs[i]);
    free(w->warm);
    w->warm = NULL;
}

const struct worker_part pool_warm_part = {.name = "warm pool", .free = pool_warm_free};
