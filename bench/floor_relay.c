/*
 * floor_relay.c
 *    The least a TCP proxy in front of PostgreSQL can cost: one thread,
 *    epoll, and for each readable socket one recv into a static buffer and
 *    one send of what came to its peer.  It parses nothing, pools nothing
 *    and logs nothing; the client logs in to the server through it.  It is
 *    the floor beside which bench/txn_pool.pl --floor sets pgnear and
 *    PgBouncer: the kernel's work to move the same bytes between the same
 *    sockets, which every proxy pays, and almost nothing else.
 *
 *    floor_relay LISTEN_PORT SERVER_PORT   (both on 127.0.0.1)
 *
 *    Sends are blocking (a short request-response load never fills a
 *    socket; a large result would wait for its reader, as a floor may), the
 *    sockets have TCP_NODELAY as both proxies set it, and a connection
 *    whose server cannot be reached is closed at once.  Not a proxy to run:
 *    a benchmark's yardstick.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* One connection's socket; a pair's two are allocated and freed together. */
struct side {
    int fd;
    struct side *peer;
    struct pair *pair;
};

struct pair {
    struct side client;
    struct side server;
    struct pair *next_closed;
};

static int connect_server(const struct sockaddr_in *server)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (const struct sockaddr *)server, sizeof(*server)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int watch(int epfd, struct side *side)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = side};
    int one = 1;
    setsockopt(side->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return epoll_ctl(epfd, EPOLL_CTL_ADD, side->fd, &ev);
}

static void accept_one(int epfd, int listen_fd, const struct sockaddr_in *server)
{
    int client = accept4(listen_fd, NULL, NULL, 0);
    if (client < 0)
        return;
    struct pair *p = calloc(1, sizeof(*p));
    int srv = p ? connect_server(server) : -1;
    if (srv < 0) {
        fprintf(stderr, "floor_relay: no server connection: %s\n", strerror(errno));
        close(client);
        free(p);
        return;
    }
    p->client = (struct side){.fd = client, .peer = &p->server, .pair = p};
    p->server = (struct side){.fd = srv, .peer = &p->client, .pair = p};
    if (watch(epfd, &p->client) != 0 || watch(epfd, &p->server) != 0) {
        close(client);
        close(srv);
        free(p);
    }
}

/* One readable socket: its bytes to the peer. Returns -1 when the pair ends. */
static int relay_once(struct side *side)
{
    static char buf[65536];
    ssize_t got = recv(side->fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (got < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (got <= 0)
        return -1;
    for (ssize_t off = 0; off < got;) {
        ssize_t put = send(side->peer->fd, buf + off, (size_t)(got - off), MSG_NOSIGNAL);
        if (put < 0 && errno != EINTR)
            return -1;
        if (put > 0)
            off += put;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: floor_relay LISTEN_PORT SERVER_PORT\n");
        return 2;
    }
    struct sockaddr_in listen_at = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)atoi(argv[1])),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in server = listen_at;
    server.sin_port = htons((uint16_t)atoi(argv[2]));
    int one = 1, listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    int epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (listen_fd < 0 || epfd < 0 ||
        setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(listen_fd, (struct sockaddr *)&listen_at, sizeof(listen_at)) != 0 ||
        listen(listen_fd, 512) != 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
        fprintf(stderr, "floor_relay: cannot listen on port %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    for (;;) {
        struct epoll_event events[256];
        struct pair *closed = NULL;
        int n = epoll_wait(epfd, events, 256, -1);
        for (int i = 0; i < n; i++) {
            struct side *side = events[i].data.ptr;
            if (side == NULL) {
                accept_one(epfd, listen_fd, &server);
            } else if (side->fd >= 0 && relay_once(side) != 0) {
                /* both sockets close now; the pair is freed after the batch,
                 * which may still name its other side */
                struct pair *p = side->pair;
                close(p->client.fd);
                close(p->server.fd);
                p->client.fd = p->server.fd = -1;
                p->next_closed = closed;
                closed = p;
            }
        }
        while (closed) {
            struct pair *next = closed->next_closed;
            free(closed);
            closed = next;
        }
    }
}
