/*
 * pool_take.c — finding an idle server connection that can serve a
 * client, and taking it.
 */
#include "proxy/pool/pool_take.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/clock.h"
#include "protocol/utf8.h"
#include "proxy/base/config.h"
#include "proxy/pool/pool_idle.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/server_params.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/region.h"

/* How well a kept connection's login parameters suit a client. */
enum pool_fit {
    FIT_NONE,  /* it cannot serve the client */
    FIT_SET,   /* it can, with the client's differing parameters set */
    FIT_EXACT, /* it logged in with exactly the client's parameters: nothing to set */
};

/*
 * Every startup parameter sc logged in with must be one s gives too (s's
 * value is then set), and options the same: a RESET returns a parameter to
 * its login value, and the server's default for one given at login cannot
 * be learnt afterwards.
 */
static enum pool_fit pool_params_fit(const struct server_conn *sc, const struct session *s)
{
    const char *name, *value;
    bool same = true;
    for (size_t off = 0; param_set_next(&sc->startup, &off, &name, &value);) {
        const char *mine = param_set_get(&s->server_startup, name);
        if (mine == NULL)
            return FIT_NONE;
        /* options cannot be SET: it must be the same. */
        if (strcmp(name, "options") == 0 && strcmp(mine, value) != 0)
            return FIT_NONE;
        same = same && strcmp(mine, value) == 0;
    }
    same = same && s->server_startup.count == sc->startup.count;
    /*
     * Nor a value that is not UTF-8: set_config's parameter would be
     * refused (22021) where a login takes it (PostgreSQL cleans an
     * application_name of what is not ASCII), so such a client logs in.
     */
    for (size_t off = 0; !same && param_set_next(&s->server_startup, &off, &name, &value);) {
        const char *its = param_set_get(&sc->startup, name);
        if ((its == NULL || strcmp(its, value) != 0) &&
            utf8_invalid_at((const uint8_t *)value, strlen(value)) != strlen(value))
            return FIT_NONE;
    }
    /* Options sc did not log in with cannot be added either. */
    if (param_set_get(&s->server_startup, "options") != NULL &&
        param_set_get(&sc->startup, "options") == NULL)
        return FIT_NONE;
    return same ? FIT_EXACT : FIT_SET;
}

/* How s's pool is pooled ([database]/[user] pool_mode, else pool_mode). */
int pool_mode_of(const struct session *s)
{
    return config_session_pool_mode(s->cfg, s->user, s->database);
}

static bool pool_same_place(const struct server_conn *sc, const struct region *r,
                            const struct region_host *h)
{
    if (sc->host == h && sc->region == r) /* the same configuration's: no names to compare */
        return true;
    /* The same registry entry too: a name that DNS moved is another host at its new address. */
    return sc->host->runtime == h->runtime && sc->host->port == h->port &&
           strcmp(sc->host->name, h->name) == 0 && strcmp(sc->region->name, r->name) == 0;
}

/*
 * A connection idle this long is looked at before it is taken: its server
 * may have spoken meanwhile (a FATAL as it shuts down, then its end) while
 * the loop, on a loaded machine, has not yet read it.  One that was just
 * given back is taken as it is: the look is a system call.
 */
#define POOL_LOOK_AFTER_US 1000

/* How sc's login fits s's: database, user, then the startup parameters. */
static enum pool_fit pool_fit_of(struct server_conn *sc, const struct session *s)
{
    if (sc->fits_session == s->id)
        return FIT_EXACT;
    if (strcmp(sc->database, s->database) != 0 || strcmp(sc->user, s->user) != 0)
        return FIT_NONE;
    enum pool_fit how = pool_params_fit(sc, s);
    if (how == FIT_EXACT)
        sc->fits_session = s->id;
    return how;
}

/*
 * An idle connection to h of r that can serve s (too old ones are closed
 * on the way), one that logged in with exactly s's parameters first: the
 * client's RESET then means what it would directly.  NULL when none.
 * The one idle for the shortest time first (the idle list is in the order
 * they became idle): a few connections stay busy and warm (their caches,
 * and under transaction pooling the statements prepared on them), and the
 * rest go at server_idle_timeout when the load falls, as with PgBouncer's
 * default (server_round_robin = 0).
 */
/* pool_find, with the worker's clock read (now_us). */
static struct server_conn *pool_find_at(struct session *s, const struct region *r,
                                        const struct region_host *h, bool exact, int64_t now_us)
{
    int64_t oldest = now_us - (int64_t)s->cfg->server_lifetime_ms * 1000;
    struct server_conn *fit = NULL;
    struct list_node *pos, *tmp;
    list_for_each_reverse_safe(pos, tmp, &s->w->idle_servers)
    {
        struct server_conn *sc = list_entry(pos, struct server_conn, node);
        if (!pool_same_place(sc, r, h) || evbuffer_get_length(sc->ep.in) > 0)
            continue; /* (part of a message from the server is still coming: not now) */
        if (now_us - sc->idle_since >= POOL_LOOK_AFTER_US && endpoint_peer_spoke(&sc->ep))
            continue; /* its reader reads it first (a shutdown's FATAL: it is closed) */
        enum pool_fit how = pool_fit_of(sc, s);
        if (how == FIT_NONE)
            continue;
        if (sc->connect_time < oldest) {
            pool_close(sc, "older than server_lifetime");
            continue;
        }
        if (how == FIT_EXACT)
            return sc;
        /* Under transaction pooling nothing resets it between clients: exact fits only. */
        if (how == FIT_SET && fit == NULL && !exact && pool_mode_of(s) != POOL_TRANSACTION)
            fit = sc;
    }
    return fit;
}

struct server_conn *pool_find(struct session *s, const struct region *r,
                              const struct region_host *h, bool exact)
{
    return pool_find_at(s, r, h, exact, worker_clock_us(s->w));
}

struct server_conn *pool_take(struct session *s, struct region *r, struct region_host *h,
                              bool ready)
{
    int64_t now_us = worker_clock_us(s->w); /* once: the connection's age and its idle time */
    struct server_conn *sc = pool_find_at(s, r, h, ready, now_us);
    if (sc == NULL)
        return NULL;
    /*
     * The most recently idle fit first: when it is due for server_check_query,
     * all are.  The loop's clock may read the same as at its give-back (its
     * ticks are coarse, milliseconds): a delay of 0 is always due.
     */
    int64_t delay_us = (int64_t)s->cfg->server_check_delay_ms * 1000;
    if (ready && (delay_us == 0 || now_us - sc->idle_since > delay_us))
        return NULL;
    server_conn_attach(sc, s);
    sc->region = r;
    sc->host = h;
    return sc;
}

/*
 * Whether sc's login told what a login of s's would be told now: a live
 * pooled connection to the same place, logged in with exactly s's startup
 * parameters, its report whole and its key known, within
 * server_lifetime, and of the role its host has now (in_hot_standby, which
 * a promotion changes for every connection of the server).
 */
static bool pool_greets(struct server_conn *sc, const struct session *s, const struct region *r,
                        const struct region_host *h, int64_t oldest_us)
{
    if (sc->closed || !sc->poolable || sc->reconnect || sc->fatal_sent || sc->fatal_read ||
        sc->key_len == 0 || sc->reported.count == 0 || sc->reported.overflowed ||
        sc->connect_time < oldest_us || !pool_same_place(sc, r, h) ||
        pool_fit_of(sc, s) != FIT_EXACT)
        return false;
    const char *standby = param_set_get(&sc->reported, "in_hot_standby");
    return standby == NULL || (strcmp(standby, "on") == 0) == host_is_standby(h);
}

static struct server_conn *pool_greeter_on(struct list *servers, const struct session *s,
                                           const struct region *r, const struct region_host *h,
                                           int64_t oldest_us)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, servers)
    {
        struct server_conn *sc = list_entry(pos, struct server_conn, node);
        if (pool_greets(sc, s, r, h, oldest_us))
            return sc;
    }
    return NULL;
}

struct server_conn *pool_find_greeter(struct session *s, const struct region *r,
                                      const struct region_host *h)
{
    int64_t oldest = worker_clock_us(s->w) - (int64_t)s->cfg->server_lifetime_ms * 1000;
    struct server_conn *sc = pool_greeter_on(&s->w->idle_servers, s, r, h, oldest);
    return sc != NULL ? sc : pool_greeter_on(&s->w->active_servers, s, r, h, oldest);
}
