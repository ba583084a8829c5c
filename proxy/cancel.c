/*
 * cancel.c — cancel key registry and CancelRequest forwarding.
 */
#include "proxy/cancel.h"

#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "protocol/pkt.h"
#include "protocol/startup.h"
#include "proxy/daemon.h"
#include "proxy/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"
#include "routing/region.h"

#define CANCEL_KEY_V32_LEN  32
#define CANCEL_FORWARD_MS   5000
#define CANCEL_KEY_ATTEMPTS 16

/* One in-flight forwarded cancel: connect, send 16+ bytes, wait for close. */
struct cancel_conn {
    struct list_node node;
    struct worker *w;
    int fd;
    struct event *ev;
    uint8_t packet[12 + CANCEL_KEY_MAX_LEN];
    size_t len, sent;
    uint64_t client_id;
};

static uint32_t key_tag(const uint8_t *key)
{
    return pkt_be32(key);
}

int cancel_register(struct session *s, uint32_t server_pid, const uint8_t *server_key,
                    size_t server_key_len)
{
    struct daemon *d = s->w->d;
    struct cancel_entry *e = &s->cancel;
    const struct region_host *h = &s->region->hosts[s->host_index];
    cancel_unregister(s);
    e->server_pid = server_pid;
    memcpy(e->server_key, server_key, server_key_len);
    e->server_key_len = (uint16_t)server_key_len;
    memcpy(&e->server_addr, &h->addr, h->addrlen);
    e->server_addrlen = h->addrlen;
    e->client_id = s->id;
    e->client_key_len = s->client_minor >= 2 ? CANCEL_KEY_V32_LEN : CANCEL_KEY_V30_LEN;
    int rc = -1;
    pthread_mutex_lock(&d->cancel_lock);
    for (int i = 0; i < CANCEL_KEY_ATTEMPTS; i++) {
        bool oom;
        if (RAND_bytes(e->client_key, e->client_key_len) != 1)
            break;
        if (cancel_map_insert(&d->cancel_keys, key_tag(e->client_key), e, &oom)) {
            e->registered = true;
            rc = 0;
            break;
        }
        if (oom)
            break;
    }
    pthread_mutex_unlock(&d->cancel_lock);
    return rc;
}

void cancel_unregister(struct session *s)
{
    struct daemon *d = s->w->d;
    if (!s->cancel.registered)
        return;
    pthread_mutex_lock(&d->cancel_lock);
    cancel_map_remove(&d->cancel_keys, key_tag(s->cancel.client_key), &s->cancel);
    pthread_mutex_unlock(&d->cancel_lock);
    s->cancel.registered = false;
}

static void cancel_conn_free(struct cancel_conn *cc)
{
    list_remove(&cc->w->cancel_conns, &cc->node);
    if (cc->ev)
        event_free(cc->ev);
    if (cc->fd >= 0)
        close(cc->fd);
    free(cc);
}

/* Sends the request once connected, then waits for the server to hang up. */
static void cancel_conn_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cancel_conn *cc = arg;
    if (what & EV_TIMEOUT) {
        log_warn(cc->client_id, "cancel request to server timed out");
        cancel_conn_free(cc);
        return;
    }
    if (cc->sent < cc->len) {
        ssize_t n = send(fd, cc->packet + cc->sent, cc->len - cc->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            log_warn(cc->client_id, "could not forward cancel request: %s", strerror(errno));
            cancel_conn_free(cc);
            return;
        }
        if (n > 0)
            cc->sent += (size_t)n;
        if (cc->sent == cc->len) {
            cc->w->stats.cancels_forwarded++;
            log_info(cc->client_id, "cancel request forwarded to server");
            shutdown(fd, SHUT_WR);
            event_free(cc->ev);
            cc->ev = event_new(cc->w->base, fd, EV_READ | EV_PERSIST, cancel_conn_cb, cc);
            struct timeval tv = {CANCEL_FORWARD_MS / 1000, 0};
            if (cc->ev == NULL || event_add(cc->ev, &tv) != 0)
                cancel_conn_free(cc);
        }
        return;
    }
    char buf[64];
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
        cancel_conn_free(cc);
}

static int cancel_start_forward(struct worker *w, const struct cancel_entry *target)
{
    struct cancel_conn *cc = calloc(1, sizeof(*cc));
    if (cc == NULL)
        return -1;
    cc->w = w;
    cc->client_id = target->client_id;
    struct pktbuf pb;
    pkt_init(&pb, cc->packet, sizeof(cc->packet));
    pkt_begin(&pb, 0);
    pkt_put_u32(&pb, PROTO_CODE_CANCEL);
    pkt_put_u32(&pb, target->server_pid);
    pkt_put_bytes(&pb, target->server_key, target->server_key_len);
    pkt_end(&pb);
    cc->len = pb.len;
    list_append(&w->cancel_conns, &cc->node);
    cc->fd = socket(target->server_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (cc->fd < 0 || !pkt_ok(&pb) ||
        (connect(cc->fd, (const struct sockaddr *)&target->server_addr, target->server_addrlen) !=
             0 &&
         errno != EINPROGRESS)) {
        log_warn(target->client_id, "could not connect to forward cancel request: %s",
                 strerror(errno));
        cancel_conn_free(cc);
        return -1;
    }
    cc->ev = event_new(w->base, cc->fd, EV_WRITE | EV_PERSIST, cancel_conn_cb, cc);
    struct timeval tv = {CANCEL_FORWARD_MS / 1000, 0};
    if (cc->ev == NULL || event_add(cc->ev, &tv) != 0) {
        cancel_conn_free(cc);
        return -1;
    }
    return 0;
}

/* Looks the key up and copies the entry while the owner cannot remove it. */
static bool cancel_lookup(struct daemon *d, const struct startup_packet *sp,
                          struct cancel_entry *copy)
{
    bool found = false;
    if (sp->cancel_key_len < 4)
        return false;
    pthread_mutex_lock(&d->cancel_lock);
    const struct cancel_entry *e = cancel_map_find(&d->cancel_keys, key_tag(sp->cancel_key));
    /* Both the whole key and the process ID must match, compared in constant time. */
    if (e != NULL && e->client_key_len == sp->cancel_key_len &&
        CRYPTO_memcmp(e->client_key, sp->cancel_key, sp->cancel_key_len) == 0 &&
        e->server_pid == sp->cancel_pid) {
        memcpy(copy, e, sizeof(*copy));
        found = true;
    }
    pthread_mutex_unlock(&d->cancel_lock);
    return found;
}

void cancel_handle_request(struct worker *w, const struct startup_packet *sp, uint64_t from_id)
{
    struct cancel_entry target;
    if (!cancel_lookup(w->d, sp, &target)) {
        w->stats.cancels_ignored++;
        log_info(from_id, "cancel request for process %u matches no session; ignored",
                 sp->cancel_pid);
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
