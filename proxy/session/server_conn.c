/*
 * server_conn.c — server connections: made, moved between the worker's
 * lists, closed.
 */
#include "proxy/session/server_conn.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "protocol/clock.h"
#include "protocol/prepared.h"
#include "protocol/pkt.h"
#include "protocol/stream.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/close_queue.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel_keys.h"
#include "proxy/session/cancel_send.h"
#include "proxy/session/phase.h"
#include "proxy/session/session_types.h"
#include "routing/health.h"
#include "routing/region.h"

struct server_conn *server_conn_new(struct session *s, struct region *region,
                                    struct region_host *host)
{
    struct server_conn *sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return NULL;
    /* Its events and failures go to its session, as its client side's do. */
    if (endpoint_init(&sc->ep, s->w, s->client.owner, s, false, -1) != 0) {
        endpoint_free(&sc->ep);
        free(sc);
        return NULL;
    }
    struct worker *w = s->w;
    sc->w = w;
    sc->id = ++w->next_server_id;
    sc->client = s;
    sc->cfg = s->cfg != NULL ? config_ref(s->cfg) : NULL; /* NULL in the relay tests */
    sc->region = region;
    sc->host = host;
    sc->connect_time = wall_clock_us();
    sc->use_count = 1;
    snprintf(sc->database, sizeof(sc->database), "%s", s->database);
    snprintf(sc->user, sizeof(sc->user), "%s", s->user);
    sc->list = &w->login_servers;
    list_append(sc->list, &sc->node);
    s->server_conn = sc;
    return sc;
}

void server_conn_move(struct server_conn *sc, struct list *to)
{
    bool logged_in = sc->list == &sc->w->login_servers && to != sc->list;
    list_remove(sc->list, &sc->node);
    sc->list = to;
    list_append(to, &sc->node);
    if (logged_in && sc->w->shared->flow->server_logged_in != NULL)
        sc->w->shared->flow->server_logged_in(sc);
}

void server_conn_free(struct server_conn *sc)
{
    endpoint_free(&sc->ep);
    param_set_free(&sc->startup);
    param_set_free(&sc->reported);
    config_unref(sc->cfg);
    free(sc);
}

/* What the client's session counts of its server: bytes, and the requests answered. */
static void server_conn_account(struct server_conn *sc, struct session *s)
{
    s->server_bytes += sc->ep.bytes_in - sc->bytes_in_at_attach;
    stat_add(&sc->w->stats.queries, sc->tx.answered);
    stat_add(&sc->w->stats.transactions, sc->tx.answered_idle);
}

/*
 * A connection made under an older configuration takes its session's
 * (newer) one, its region and host pointed at their entries there: the old
 * configuration, which they pointed into, may be freed as its last
 * reference goes.  One whose host the new configuration no longer names (a
 * member Patroni dropped, or the old address of a name DNS moved) keeps
 * its own.
 */
static void server_conn_follow_config(struct server_conn *sc, struct config *cfg)
{
    if (cfg == NULL) { /* the relay tests */
        config_unref(sc->cfg);
        sc->cfg = NULL;
        return;
    }
    struct region *r = sc->region != NULL ? region_set_find(&cfg->regions, sc->region->name) : NULL;
    for (size_t i = 0; r != NULL && i < r->nhosts; i++) {
        struct region_host *h = &r->hosts[i];
        if (h->runtime != sc->host->runtime || h->port != sc->host->port ||
            strcmp(h->name, sc->host->name) != 0)
            continue; /* (the same registry entry: a name DNS moved is another host) */
        config_unref(sc->cfg);
        sc->cfg = config_ref(cfg);
        sc->region = r;
        sc->host = h;
        return;
    }
}

void server_conn_attach(struct server_conn *sc, struct session *s)
{
    sc->client = s;
    sc->ep.session = s;
    sc->ep.owner = s->client.owner;
    s->server_conn = sc;
    if (sc->cfg != s->cfg)
        server_conn_follow_config(sc, s->cfg);
    sc->bytes_in_at_attach = sc->ep.bytes_in;
    sc->ep.last_type = 0;
    sc->use_count++;
    sc->sent_to_client = false;
    server_conn_move(sc, &sc->w->active_servers);
}

void server_conn_hand_over(struct server_conn *sc, struct session *from, struct session *to)
{
    from->server_conn = NULL;
    sc->client = to;
    sc->ep.session = to;
    sc->ep.owner = to->client.owner;
    sc->bytes_in_at_attach = sc->ep.bytes_in;
    to->server_conn = sc;
    to->region = sc->region;
    if (to->cfg != sc->cfg) {
        config_unref(to->cfg);
        to->cfg = config_ref(sc->cfg);
    }
    server_conn_move(sc, &to->w->active_servers);
}

void server_conn_detach(struct server_conn *sc)
{
    struct session *s = sc->client;
    if (s->cancel.registered && s->cancel.server == sc)
        cancel_keys_remove(s->w->shared, &s->cancel);
    server_conn_account(sc, s);
    tx_track_init(&sc->tx, sc->tx.status); /* counted: the next client's start at zero */
    s->server_conn = NULL;
    sc->client = NULL;
    sc->ep.session = NULL;
    sc->ep.on_read = NULL;
    sc->ep.on_write = NULL;
}

void server_conn_close(struct server_conn *sc, bool paced)
{
    struct session *s = sc->client;
    /* The key goes first: another worker may be copying it. */
    if (s != NULL && s->cancel.registered && s->cancel.server == sc)
        cancel_keys_remove(s->w->shared, &s->cancel);
    list_remove(sc->list, &sc->node);
    sc->list = NULL;
    if (sc->cancels_in_flight > 0)
        cancel_send_forget(sc->w, sc);
    prep_server_free(sc->prep); /* what it held and owed is forgotten */
    sc->prep = NULL;
    server_conn_uncount(sc);
    if (s != NULL) {
        server_conn_account(sc, s);
        s->server_conn = NULL;
    }
    log_debug(s != NULL ? s->id : 0,
              "server connection %llu to %s:%d closed (%llu bytes in, %llu out; status %c, %u "
              "requests outstanding%s%s)",
              (unsigned long long)sc->id, sc->host->name, sc->host->port,
              (unsigned long long)sc->ep.bytes_in, (unsigned long long)sc->ep.bytes_out,
              sc->tx.status ? sc->tx.status : '?', sc->tx.outstanding,
              server_conn_at_safe_point(sc) ? ", at a safe point" : "",
              (sc->tx.flags & TX_UNSURE) ? ", count not trusted" : "");
    if (paced) {
        /* Its events go first (they name the socket), then the socket, at the queue's pace. */
        int fd = stream_take_fd(&sc->ep.stream);
        endpoint_detach(&sc->ep);
        close_queue_push(&sc->w->closing, fd);
    } else {
        endpoint_detach(&sc->ep);
    }
    /* An event callback of the session may still look at the endpoint (detached, it reads nothing).
     */
    if (s == NULL) {
        if (sc->in_callback)
            sc->closed = true; /* freed as its callback returns (pool.c) */
        else
            server_conn_free(sc);
        return;
    }
    if (s->busy > 0) {
        sc->next_gone = s->servers_gone;
        s->servers_gone = sc;
        return;
    }
    server_conn_free(sc);
}

void server_conn_reap(struct session *s)
{
    while (s->servers_gone != NULL) {
        struct server_conn *sc = s->servers_gone;
        s->servers_gone = sc->next_gone;
        server_conn_free(sc);
    }
}

/* A boolean parameter as 't' or 'f' (PostgreSQL reports "on" and "off"). */
static char server_param_flag(const char *value)
{
    return strcmp(value, "on") == 0 ? 't' : 'f';
}

void server_conn_note_param(struct server_conn *sc, const uint8_t *body, uint32_t len)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    const char *name = pkt_get_cstr(&r);
    const char *value = pkt_get_cstr(&r);
    if (r.failed)
        return;
    struct server_params *p = &sc->params;
    if (strcmp(name, "server_version") == 0)
        snprintf(p->server_version, sizeof(p->server_version), "%s", value);
    else if (strcmp(name, "in_hot_standby") == 0)
        p->in_hot_standby = server_param_flag(value);
    else if (strcmp(name, "default_transaction_read_only") == 0)
        p->default_transaction_read_only = server_param_flag(value);
    else if (strcmp(name, "is_superuser") == 0)
        p->is_superuser = server_param_flag(value);
}

bool server_conn_error_waits(const struct server_conn *sc)
{
    uint8_t type;
    return server_conn_at_safe_point(sc) && evbuffer_copyout(sc->ep.in, &type, 1) == 1 &&
           type == 'E';
}

void server_conn_ended_by_server(struct server_conn *sc)
{
    if (sc->host == NULL || !health_note_conn_lost(sc->host))
        return;
    worker_wake_checks(sc->w);
}

void server_conn_uncount(struct server_conn *sc)
{
    if (!sc->counted)
        return;
    sc->counted = false;
    sc->w->shared->flow->server_closed(sc);
}
