/*
 * linger.c — client sockets closed after a FIN and a drain (see the header).
 */
#include "proxy/runtime/linger.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "protocol/clock.h"

struct linger_sock {
    struct list_node node;
    struct linger_set *set;
    struct event *ev;
    int fd;
    size_t drained;      /* bytes of input read and dropped */
    int64_t deadline_ms; /* monotonic_ms past which it closes whatever comes */
};

/* No socket lingering yet; base runs their events. */
void linger_init(struct linger_set *l, struct event_base *base)
{
    l->base = base;
    list_init(&l->socks);
}

/* Closes a lingering socket and forgets it. */
static void linger_end(struct linger_sock *k)
{
    list_remove(&k->set->socks, &k->node);
    event_free(k->ev);
    close(k->fd); /* its input drained: a FIN, not a reset */
    free(k);
}

/* Reads and drops what came; true when the client is done (its FIN, an error, too much). */
static bool linger_drain(struct linger_sock *k)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(k->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            k->drained += (size_t)n;
            if (k->drained >= LINGER_DRAIN_MAX)
                return true;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK);
    }
}

/* The event waits for input up to what is left of the deadline. */
static int linger_arm(struct linger_sock *k)
{
    int64_t left = k->deadline_ms - monotonic_ms();
    if (left <= 0)
        return -1;
    struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    return event_add(k->ev, &tv);
}

/* Input or the deadline: the socket closes once the client is done or time is up, else waits on. */
static void linger_cb(evutil_socket_t fd, short what, void *arg)
{
    struct linger_sock *k = arg;
    (void)fd;
    if ((what & EV_TIMEOUT) || linger_drain(k) || linger_arm(k) != 0)
        linger_end(k);
}

void linger_close(struct linger_set *l, int fd)
{
    if (fd < 0)
        return;
    struct linger_sock *k =
        l->base != NULL && l->socks.count < LINGER_MAX ? calloc(1, sizeof(*k)) : NULL;
    if (k != NULL)
        k->ev = event_new(l->base, fd, EV_READ, linger_cb, k);
    /* A peer already gone (ENOTCONN) or input already ended: nothing to wait for. */
    if (k == NULL || k->ev == NULL || shutdown(fd, SHUT_WR) != 0) {
        if (k != NULL && k->ev != NULL)
            event_free(k->ev);
        free(k);
        close(fd);
        return;
    }
    k->set = l;
    k->fd = fd;
    k->deadline_ms = monotonic_ms() + LINGER_MS;
    list_append(&l->socks, &k->node);
    if (linger_drain(k) || linger_arm(k) != 0)
        linger_end(k);
}

size_t linger_count(const struct linger_set *l)
{
    return l->socks.count;
}

void linger_free(struct linger_set *l)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &l->socks) linger_end(list_entry(pos, struct linger_sock, node));
}
