/*
 * cancel_send.c — one CancelRequest delivered on a connection of its own
 * (cancel_send.h).
 */
#include "proxy/session/cancel_send.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/clock.h"
#include "protocol/stream.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/server_dial.h"
#include "routing/health.h"

#define CANCEL_HOST_MAX 256

enum cancel_conn_state {
    CC_DIALING,    /* connect, and SSLRequest and TLS handshake when TLS is used */
    CC_SENDING,    /* the request */
    CC_WAIT_CLOSE, /* sent: wait for the other side to hang up */
};

struct cancel_conn {
    struct list_node node; /* on w->cancel_conns */
    struct worker *w;
    struct stream st;
    struct server_dial dial;
    struct event *ev;    /* re-made for each wait: the wanted readiness changes */
    struct event *timer; /* the whole exchange's deadline */
    enum cancel_conn_state state;
    char host[CANCEL_HOST_MAX];
    struct evbuffer *out;
    uint64_t client_id;
    int peer_id;               /* 0: a server, or the predecessor */
    bool predecessor;          /* the draining pgnear this one replaced */
    bool noted;                /* a peer's: its figures have this delivery's outcome */
    struct cancel_outcome end; /* told to ended, when there is one */
    cancel_ended_fn ended;
};

/* A delivery to a peer ended: its figures told (once), the failure's time kept for retries. */
static void cancel_conn_note(struct cancel_conn *cc, bool ok, const char *why)
{
    if (cc->peer_id == 0 || cc->noted)
        return;
    cc->noted = true;
    peer_stats_note_out(&cc->w->shared->peers, cc->peer_id, ok, why, monotonic_ms());
}

/* Ends the delivery, however it ended (stopping: pgnear is), and tells its ended callback. */
static void cancel_conn_end(struct cancel_conn *cc, bool stopping)
{
    cancel_conn_note(cc, false, "not delivered: pgnear is stopping, or out of memory");
    list_remove(&cc->w->cancel_conns, &cc->node);
    if (cc->ended != NULL) {
        cc->end.maybe_sent = !cc->end.delivered && cc->state != CC_DIALING;
        cc->end.stopping = stopping;
        cc->ended(cc->w, &cc->end);
    }
    if (cc->peer_id != 0)
        cc->w->peer_forwards--;
    if (cc->ev)
        event_free(cc->ev);
    if (cc->timer)
        event_free(cc->timer);
    if (cc->out)
        evbuffer_free(cc->out);
    stream_close(&cc->st);
    free(cc);
}

static void cancel_conn_free(struct cancel_conn *cc)
{
    cancel_conn_end(cc, false);
}

static void cancel_conn_cb(evutil_socket_t fd, short what, void *arg);

static void cancel_conn_wait(struct cancel_conn *cc, short what)
{
    if (cc->ev)
        event_free(cc->ev);
    cc->ev = event_new(cc->w->base, cc->st.fd, what, cancel_conn_cb, cc);
    if (cc->ev == NULL || event_add(cc->ev, NULL) != 0)
        cancel_conn_free(cc);
}

/* Waits for what the stream's unfinished read (or handshake) or write waits for. */
static void cancel_conn_wait_stream(struct cancel_conn *cc, uint8_t want)
{
    cancel_conn_wait(cc, want == STREAM_WANT_WRITE ? EV_WRITE : EV_READ);
}

/* A delivery that did not happen: said (a peer's: counted, the log limited), and freed. */
static void cancel_conn_fail(struct cancel_conn *cc, const char *what, const char *why)
{
    char text[400];
    snprintf(text, sizeof(text), "%s%s%s", what, why ? ": " : "", why ? why : "");
    struct shared *sh = cc->w->shared;
    uint64_t left_out;
    if (cc->predecessor) {
        /* A stale socket file, a process gone: as many times as keys miss, so limited. */
        if (log_limit_allow(&sh->cancel_log, 5, 1000, &left_out))
            log_info(cc->client_id,
                     "could not pass cancel request to the pgnear this one replaced: %s", text);
    } else if (cc->peer_id == 0) {
        log_warn(cc->client_id, "could not forward cancel request: %s", text);
    } else {
        stat_inc(&cc->w->stats.cancel_results[CANCEL_PEER_FAILED]);
        cancel_conn_note(cc, false, text);
        if (log_limit_allow(&sh->cancel_log, 5, 1000, &left_out))
            log_warn(cc->client_id, "could not forward cancel request to peer %d (%s): %s",
                     cc->peer_id, cc->host, text);
    }
    cancel_conn_free(cc);
}

static void cancel_conn_dial(struct cancel_conn *cc)
{
    int rc = server_dial_step(&cc->dial);
    if (rc == DIAL_AGAIN) {
        cancel_conn_wait_stream(cc, cc->st.read_want);
        return;
    }
    if (rc == DIAL_FAILED) {
        cancel_conn_fail(cc, cc->dial.why, NULL);
        return;
    }
    cc->state = CC_SENDING;
    cancel_conn_wait(cc, EV_WRITE);
}

/* Written whole: the request is delivered. */
static void cancel_conn_sent(struct cancel_conn *cc)
{
    if (cc->predecessor) {
        stat_inc(&cc->w->stats.cancel_results[CANCEL_FORWARDED]);
        log_info(cc->client_id, "cancel request passed to the pgnear this one replaced");
    } else if (cc->peer_id == 0) {
        stat_inc(&cc->w->stats.cancels_forwarded);
        log_info(cc->client_id, "cancel request forwarded to server%s",
                 cc->st.ssl ? " over TLS" : "");
    } else {
        stat_inc(&cc->w->stats.cancel_results[CANCEL_FORWARDED]);
        cancel_conn_note(cc, true, NULL);
        log_info(cc->client_id, "cancel request forwarded to peer %d (%s)", cc->peer_id, cc->host);
    }
}

static void cancel_conn_send(struct cancel_conn *cc)
{
    ssize_t n = stream_write(&cc->st, cc->out);
    if (n == STREAM_ERROR || n == STREAM_EOF) {
        cancel_conn_fail(cc, "send", cc->st.ssl ? NULL : strerror(errno));
        return;
    }
    if (evbuffer_get_length(cc->out) > 0) {
        cancel_conn_wait_stream(cc, cc->st.write_want);
        return;
    }
    cancel_conn_sent(cc);
    if (cc->st.ssl == NULL)
        shutdown(cc->st.fd, SHUT_WR);
    cc->state = CC_WAIT_CLOSE;
    cancel_conn_wait(cc, EV_READ);
}

/* The other side reads the request, acts, and closes; we only wait for that. */
static void cancel_conn_wait_close(struct cancel_conn *cc)
{
    int more = 0;
    ssize_t n = stream_read(&cc->st, cc->out, 4096, &more);
    evbuffer_drain(cc->out, evbuffer_get_length(cc->out));
    if (n == STREAM_AGAIN || n > 0) {
        cancel_conn_wait_stream(cc, cc->st.read_want);
        return;
    }
    cc->end.delivered = true;
    cancel_conn_free(cc);
}

static void cancel_conn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cancel_conn *cc = arg;
    (void)fd;
    (void)what;
    switch (cc->state) {
    case CC_DIALING:
        cancel_conn_dial(cc);
        break;
    case CC_SENDING:
        cancel_conn_send(cc);
        break;
    case CC_WAIT_CLOSE:
        cancel_conn_wait_close(cc);
        break;
    }
}

static void cancel_conn_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct cancel_conn *cc = arg;
    (void)fd;
    (void)what;
    if (cc->state == CC_WAIT_CLOSE)
        cancel_conn_free(cc); /* sent; the other side is just slow to hang up */
    else
        cancel_conn_fail(cc, "timed out", NULL);
}

int cancel_send(struct worker *w, const struct cancel_delivery *d)
{
    struct cancel_conn *cc = calloc(1, sizeof(*cc));
    if (cc == NULL) {
        if (d->peer_id != 0)
            peer_stats_note_out(&w->shared->peers, d->peer_id, false, "out of memory",
                                monotonic_ms());
        return -1;
    }
    cc->w = w;
    cc->client_id = d->client_id;
    cc->peer_id = d->peer_id;
    cc->predecessor = d->predecessor;
    stream_init(&cc->st, -1);
    list_append(&w->cancel_conns, &cc->node);
    if (cc->peer_id != 0)
        w->peer_forwards++;
    snprintf(cc->host, sizeof(cc->host), "%s", d->host);
    server_dial_init(&cc->dial, &cc->st, d->tls_ctx,
                     d->tls_ctx != NULL ? d->tls : TLS_SERVER_DISABLE, cc->host);
    cc->out = evbuffer_new();
    if (cc->out == NULL || evbuffer_add(cc->out, d->bytes, d->len) != 0) {
        cancel_conn_free(cc);
        return -1;
    }
    if (server_dial_start(&cc->dial, d->addr, d->addrlen) == DIAL_FAILED) {
        cancel_conn_fail(cc, "connect", cc->dial.why);
        return -1;
    }
    /* A small request after the TLS handshake: Nagle would hold it for the server's delayed ACK. */
    if (d->tune != NULL && d->addr->sa_family != AF_UNIX)
        d->tune(w->cfg, cc->st.fd);
    struct timeval tv = {d->timeout_ms / 1000, (d->timeout_ms % 1000) * 1000};
    cc->timer = evtimer_new(w->base, cancel_conn_timeout, cc);
    if (cc->timer == NULL || evtimer_add(cc->timer, &tv) != 0) {
        cancel_conn_free(cc);
        return -1;
    }
    cc->state = CC_DIALING;
    cc->ev =
        event_new(w->base, cc->st.fd, cc->st.read_want == STREAM_WANT_WRITE ? EV_WRITE : EV_READ,
                  cancel_conn_cb, cc);
    if (cc->ev == NULL || event_add(cc->ev, NULL) != 0) {
        cancel_conn_free(cc);
        return -1;
    }
    /* Under way: from here on it ends on the loop, and ended hears of it. */
    cc->end = (struct cancel_outcome){.server = d->server,
                                      .requester_id = d->requester_id,
                                      .requester_worker = d->requester_worker};
    cc->ended = d->ended;
    return 0;
}

void cancel_send_close_all(struct worker *w)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->cancel_conns)
        cancel_conn_end(list_entry(pos, struct cancel_conn, node), true);
}

void cancel_send_forget(struct worker *w, const struct server_conn *sc)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->cancel_conns)
    {
        struct cancel_conn *cc = list_entry(pos, struct cancel_conn, node);
        if (cc->end.server == sc)
            cc->end.server = NULL;
    }
}
