/*
 * cancel.c — cancel key registry and CancelRequest forwarding.
 */
#include "proxy/session/cancel.h"

#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "protocol/pkt.h"
#include "protocol/startup.h"
#include "protocol/stream.h"
#include "protocol/tls.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/server_dial.h"
#include "proxy/session/session.h"
#include "routing/region.h"

#define CANCEL_HOST_MAX     256
#define CANCEL_FORWARD_MS   5000
#define CANCEL_KEY_ATTEMPTS 16

/*
 * One in-flight forwarded cancel.  When the session's own server
 * connection used TLS, so does the cancel (SSLRequest, handshake, then the
 * request), so that the server's secret key never crosses the network in
 * the clear; otherwise it is sent in plain TCP like libpq does.
 */
enum cancel_conn_state {
    CC_DIALING,    /* connect, and SSLRequest and TLS handshake when TLS is used */
    CC_SENDING,    /* the CancelRequest */
    CC_WAIT_CLOSE, /* sent: wait for the server to hang up */
};

struct cancel_conn {
    struct list_node node;
    struct worker *w;
    struct stream st;
    struct server_dial dial;
    struct event *ev;    /* re-made for each wait: the wanted readiness changes */
    struct event *timer; /* the whole exchange's deadline */
    enum cancel_conn_state state;
    char host[CANCEL_HOST_MAX];
    struct evbuffer *out;
    uint64_t client_id;
};

static uint32_t key_tag(const uint8_t *key)
{
    return pkt_be32(key);
}

/* What forwarding a cancel needs, copied from the registry under its lock. */
struct cancel_target {
    uint64_t client_id;
    uint32_t server_pid;
    uint8_t server_key[CANCEL_KEY_MAX_LEN];
    uint16_t server_key_len;
    struct sockaddr_storage server_addr;
    socklen_t server_addrlen;
    bool server_tls;                   /* the session's server connection is TLS */
    char server_host[CANCEL_HOST_MAX]; /* as configured, for verify-full */
    bool local; /* a session pgnear answers itself (the admin console): nothing to forward */
    int worker; /* ... canceled on its own worker */
};

/* Picks a fresh client key for e and registers it; under cancel_lock.  0, or -1. */
static int cancel_pick_key(struct shared *sh, struct cancel_entry *e)
{
    for (int i = 0; i < CANCEL_KEY_ATTEMPTS; i++) {
        bool oom;
        if (RAND_bytes(e->client_key, e->client_key_len) != 1)
            return -1;
        if (cancel_map_insert(&sh->cancel_keys, key_tag(e->client_key), e, &oom)) {
            e->registered = true;
            return 0;
        }
        if (oom)
            return -1;
    }
    return -1;
}

/*
 * Registers a fresh client key for s, standing for sc (NULL: the console,
 * whose process ID is console_pid).  The caller unregistered the old key
 * before changing what it stood for.
 */
static int cancel_register_entry(struct session *s, const struct server_conn *sc,
                                 uint32_t console_pid)
{
    struct shared *sh = s->w->shared;
    struct cancel_entry *e = &s->cancel;
    e->server = sc;
    e->console_pid = console_pid;
    e->client_id = s->id;
    e->worker = s->w->index;
    e->client_key_len = s->client_minor >= 2 ? CANCEL_KEY_V32_LEN : CANCEL_KEY_V30_LEN;
    pthread_mutex_lock(&sh->cancel_lock);
    int rc = cancel_pick_key(sh, e);
    pthread_mutex_unlock(&sh->cancel_lock);
    return rc;
}

int cancel_register(struct session *s, uint32_t server_pid, const uint8_t *server_key,
                    size_t server_key_len)
{
    struct server_conn *sc = s->server_conn;
    /* Another worker may be reading the old key: it goes before the new one is written. */
    cancel_unregister(s);
    sc->pid = server_pid;
    memcpy(sc->key, server_key, server_key_len);
    sc->key_len = (uint16_t)server_key_len;
    return cancel_register_entry(s, sc, 0);
}

int cancel_register_console(struct session *s, uint32_t *pid)
{
    cancel_unregister(s);
    /* Any number will do (the key is what proves the caller); a positive one, as a pid is. */
    *pid = (uint32_t)(s->id % 0x7ffffffe) + 1;
    return cancel_register_entry(s, NULL, *pid);
}

void cancel_unregister(struct session *s)
{
    struct shared *sh = s->w->shared;
    if (!s->cancel.registered)
        return;
    pthread_mutex_lock(&sh->cancel_lock);
    cancel_map_remove(&sh->cancel_keys, key_tag(s->cancel.client_key), &s->cancel);
    pthread_mutex_unlock(&sh->cancel_lock);
    s->cancel.registered = false;
    s->cancel.server = NULL;
}

static void cancel_conn_free(struct cancel_conn *cc)
{
    list_remove(&cc->w->cancel_conns, &cc->node);
    if (cc->ev)
        event_free(cc->ev);
    if (cc->timer)
        event_free(cc->timer);
    if (cc->out)
        evbuffer_free(cc->out);
    stream_close(&cc->st);
    free(cc);
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

static void cancel_conn_fail(struct cancel_conn *cc, const char *what, const char *why)
{
    log_warn(cc->client_id, "could not forward cancel request: %s%s%s", what, why ? ": " : "",
             why ? why : "");
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
    stat_inc(&cc->w->stats.cancels_forwarded);
    log_info(cc->client_id, "cancel request forwarded to server%s", cc->st.ssl ? " over TLS" : "");
    if (cc->st.ssl == NULL)
        shutdown(cc->st.fd, SHUT_WR);
    cc->state = CC_WAIT_CLOSE;
    cancel_conn_wait(cc, EV_READ);
}

/* The server reads the request, acts, and closes; we only wait for that. */
static void cancel_conn_wait_close(struct cancel_conn *cc)
{
    int more = 0;
    ssize_t n = stream_read(&cc->st, cc->out, 4096, &more);
    evbuffer_drain(cc->out, evbuffer_get_length(cc->out));
    if (n == STREAM_AGAIN || n > 0)
        cancel_conn_wait_stream(cc, cc->st.read_want);
    else
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
        cancel_conn_free(cc); /* sent; the server is just slow to hang up */
    else
        cancel_conn_fail(cc, "timed out", NULL);
}

static int cancel_start_forward(struct worker *w, const struct cancel_target *target)
{
    struct cancel_conn *cc = calloc(1, sizeof(*cc));
    if (cc == NULL)
        return -1;
    cc->w = w;
    cc->client_id = target->client_id;
    stream_init(&cc->st, -1);
    list_append(&w->cancel_conns, &cc->node);
    memcpy(cc->host, target->server_host, sizeof(cc->host));
    /* TLS when the session's server connection had it and server_tls still allows it. */
    bool use_tls = target->server_tls && w->cfg->server_tls_ctx != NULL;
    server_dial_init(&cc->dial, &cc->st, use_tls ? w->cfg->server_tls_ctx : NULL,
                     use_tls ? (enum tls_server_mode)w->cfg->server_tls : TLS_SERVER_DISABLE,
                     cc->host);
    uint8_t packet[12 + CANCEL_KEY_MAX_LEN];
    struct pktbuf pb;
    pkt_init(&pb, packet, sizeof(packet));
    pkt_begin(&pb, 0);
    pkt_put_u32(&pb, PROTO_CODE_CANCEL);
    pkt_put_u32(&pb, target->server_pid);
    pkt_put_bytes(&pb, target->server_key, target->server_key_len);
    pkt_end(&pb);
    cc->out = evbuffer_new();
    if (cc->out == NULL || !pkt_ok(&pb) || evbuffer_add(cc->out, packet, pb.len) != 0) {
        cancel_conn_free(cc);
        return -1;
    }
    if (server_dial_start(&cc->dial, (const struct sockaddr *)&target->server_addr,
                          target->server_addrlen) == DIAL_FAILED) {
        cancel_conn_fail(cc, "connect", cc->dial.why);
        return -1;
    }
    struct timeval tv = {CANCEL_FORWARD_MS / 1000, 0};
    cc->timer = evtimer_new(w->base, cancel_conn_timeout, cc);
    if (cc->timer == NULL || evtimer_add(cc->timer, &tv) != 0) {
        cancel_conn_free(cc);
        return -1;
    }
    cc->state = CC_DIALING;
    cancel_conn_wait_stream(cc, cc->st.read_want);
    return 0;
}

/* The registered connection's process ID, key and host, copied while its owner cannot change them.
 */
static void cancel_copy_target(const struct cancel_entry *e, struct cancel_target *t)
{
    const struct server_conn *sc = e->server;
    t->client_id = e->client_id;
    t->worker = e->worker;
    t->local = sc == NULL;
    if (t->local)
        return;
    t->server_pid = sc->pid;
    memcpy(t->server_key, sc->key, sc->key_len);
    t->server_key_len = sc->key_len;
    memcpy(&t->server_addr, &sc->host->addr, sc->host->addrlen);
    t->server_addrlen = sc->host->addrlen;
    t->server_tls = sc->tls;
    snprintf(t->server_host, sizeof(t->server_host), "%s", sc->host->name);
}

/* On the session's own worker: its phase's cancel (arg: the session's id). */
static int cancel_local_on_worker(struct worker *w, void *arg)
{
    struct session *s = session_find(w, *(const uint64_t *)arg);
    if (s != NULL)
        phase_cancel(s);
    return 0;
}

static void cancel_local_told(struct worker *from, const struct worker_reply *r)
{
    free(r->arg);
}

/* A key of a session pgnear answers itself: nothing to forward, its worker cancels it. */
static void cancel_local(struct worker *from, int worker_index, uint64_t session_id)
{
    uint64_t *id = malloc(sizeof(*id));
    if (id == NULL || worker_index < 0 || worker_index >= from->shared->nworkers) {
        free(id);
        return;
    }
    *id = session_id;
    if (worker_call(from, from->shared->workers[worker_index], cancel_local_on_worker, id,
                    cancel_local_told, NULL) != 0)
        free(id);
}

/* Looks the key up and copies what forwarding needs while the owner cannot unregister it. */
static bool cancel_lookup(struct shared *sh, const struct startup_packet *sp,
                          struct cancel_target *target)
{
    bool found = false;
    if (sp->cancel_key_len < 4)
        return false;
    pthread_mutex_lock(&sh->cancel_lock);
    const struct cancel_entry *e = cancel_map_find(&sh->cancel_keys, key_tag(sp->cancel_key));
    /* Both the whole key and the process ID must match, compared in constant time. */
    if (e != NULL && e->client_key_len == sp->cancel_key_len &&
        CRYPTO_memcmp(e->client_key, sp->cancel_key, sp->cancel_key_len) == 0 &&
        (e->server != NULL ? e->server->pid : e->console_pid) == sp->cancel_pid) {
        cancel_copy_target(e, target);
        found = true;
    }
    pthread_mutex_unlock(&sh->cancel_lock);
    return found;
}

void cancel_handle_request(struct worker *w, const struct startup_packet *sp, uint64_t from_id)
{
    struct cancel_target target;
    if (!cancel_lookup(w->shared, sp, &target)) {
        stat_inc(&w->stats.cancels_ignored);
        log_info(from_id, "cancel request for process %u matches no session; ignored",
                 sp->cancel_pid);
        return;
    }
    if (target.local) {
        log_info(from_id, "cancel request for admin console session c%llu",
                 (unsigned long long)target.client_id);
        cancel_local(w, target.worker, target.client_id);
        return;
    }
    log_info(from_id, "cancel request for c%llu (server process %u)",
             (unsigned long long)target.client_id, target.server_pid);
    cancel_start_forward(w, &target);
}

void cancel_close_all(struct worker *w)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->cancel_conns)
        cancel_conn_free(list_entry(pos, struct cancel_conn, node));
}

const struct worker_part cancel_part = {.name = "cancel forwarding", .free = cancel_close_all};
