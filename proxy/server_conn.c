/*
 * server_conn.c — server connections: made, moved between the worker's
 * lists, closed.
 */
#include "proxy/server_conn.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "protocol/pkt.h"
#include "protocol/stream.h"
#include "proxy/cancel.h"
#include "proxy/close_queue.h"
#include "proxy/log.h"
#include "proxy/worker.h"
#include "routing/region.h"

static int64_t server_conn_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

struct server_conn *server_conn_new(struct session *s, struct region *region,
                                    struct region_host *host)
{
    struct server_conn *sc = calloc(1, sizeof(*sc));
    if (sc == NULL)
        return NULL;
    if (endpoint_init(s, &sc->ep, -1) != 0) {
        endpoint_free(&sc->ep);
        free(sc);
        return NULL;
    }
    struct worker *w = s->w;
    sc->w = w;
    sc->id = ++w->next_server_id;
    sc->client = s;
    sc->region = region;
    sc->host = host;
    sc->connect_time = server_conn_now_us();
    sc->use_count = 1;
    sc->list = &w->login_servers;
    list_append(sc->list, &sc->node);
    s->server_conn = sc;
    return sc;
}

void server_conn_move(struct server_conn *sc, struct list *to)
{
    list_remove(sc->list, &sc->node);
    sc->list = to;
    list_append(to, &sc->node);
}

static void server_conn_free(struct server_conn *sc)
{
    endpoint_free(&sc->ep);
    free(sc);
}

void server_conn_close(struct server_conn *sc, bool paced)
{
    struct session *s = sc->client;
    /* The key goes first: another worker may be copying it. */
    if (s->cancel.registered && s->cancel.server == sc)
        cancel_unregister(s);
    list_remove(sc->list, &sc->node);
    sc->list = NULL;
    s->server_bytes += sc->ep.bytes_in;
    stat_add(&sc->w->stats.queries, sc->tx.answered);
    stat_add(&sc->w->stats.transactions, sc->tx.answered_idle);
    s->server_conn = NULL;
    log_debug(s->id,
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
