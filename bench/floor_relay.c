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
 *    floor_relay [--io_uring | --io_uring-epoll] LISTEN_PORT SERVER_PORT   (both on 127.0.0.1)
 *
 *    --io_uring: the least an io_uring proxy can cost instead.  The thread
 *    waits in io_uring_enter alone; each socket has one multishot receive
 *    into buffers the ring provides, and each buffer received is sent on
 *    from where it lies (a socket's sends one at a time, in order), so a
 *    turn of the loop is one system call whatever it carries.
 *
 *    --io_uring-epoll: the same ring, its work deferred to the thread
 *    (IORING_SETUP_DEFER_TASKRUN), but the thread waits in epoll_wait on
 *    an eventfd the kernel signals, as an event loop that watches other
 *    descriptors beside the ring must (pgnear's workers): each wait then
 *    costs an epoll_wait and an io_uring_enter.
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
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <liburing.h>

enum {
    SEND_QUEUE = 64, /* buffers a socket may have waiting to go out (io_uring) */
    BUFS = 1024,     /* the ring's provided buffers, of BUF_SIZE bytes */
    BUF_SIZE = 16384,
};

/* One connection's socket; a pair's two are allocated and freed together. */
struct side {
    int fd;
    struct side *peer;
    struct pair *pair;
    /* --io_uring: the buffers received from the peer, waiting to go out here */
    uint16_t queue[SEND_QUEUE];
    uint32_t queue_len[SEND_QUEUE];
    unsigned head, count, sent; /* sent: bytes of the head buffer gone */
    bool receiving, sending, eof;
};

struct pair {
    struct side client;
    struct side server;
    struct pair *next_closed;
};

/* A new pair: the client's socket and a connection to the server; NULL when none. */
static struct pair *pair_new(int client, const struct sockaddr_in *server);

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
    return epoll_ctl(epfd, EPOLL_CTL_ADD, side->fd, &ev);
}

static struct pair *pair_new(int client, const struct sockaddr_in *server)
{
    int one = 1;
    struct pair *p = calloc(1, sizeof(*p));
    int srv = p ? connect_server(server) : -1;
    if (srv < 0) {
        fprintf(stderr, "floor_relay: no server connection: %s\n", strerror(errno));
        close(client);
        free(p);
        return NULL;
    }
    p->client.fd = client;
    p->client.peer = &p->server;
    p->server.fd = srv;
    p->server.peer = &p->client;
    p->client.pair = p->server.pair = p;
    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(srv, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return p;
}

static void accept_one(int epfd, int listen_fd, const struct sockaddr_in *server)
{
    int client = accept4(listen_fd, NULL, NULL, 0);
    struct pair *p = client >= 0 ? pair_new(client, server) : NULL;
    if (p == NULL)
        return;
    if (watch(epfd, &p->client) != 0 || watch(epfd, &p->server) != 0) {
        close(p->client.fd);
        close(p->server.fd);
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

static int run_epoll(int listen_fd, const struct sockaddr_in *server)
{
    int epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, listen_fd, &ev) != 0) {
        fprintf(stderr, "floor_relay: epoll: %s\n", strerror(errno));
        return 1;
    }
    for (;;) {
        struct epoll_event events[256];
        struct pair *closed = NULL;
        int n = epoll_wait(epfd, events, 256, -1);
        for (int i = 0; i < n; i++) {
            struct side *side = events[i].data.ptr;
            if (side == NULL) {
                accept_one(epfd, listen_fd, server);
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

/* ---- --io_uring ---- */

/* What a completion is for: the low bits of its user_data, beside a side's address. */
enum { OP_ACCEPT = 0, OP_RECV = 1, OP_SEND = 2, OP_MASK = 3 };

struct uring_floor {
    struct io_uring ring;
    struct io_uring_buf_ring *bufs;
    uint8_t *mem;
    int listen_fd;
    const struct sockaddr_in *server;
};

static struct io_uring_sqe *floor_sqe(struct uring_floor *f)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
    if (sqe == NULL) { /* full: what is queued goes now */
        io_uring_submit(&f->ring);
        sqe = io_uring_get_sqe(&f->ring);
    }
    return sqe;
}

static void floor_give_buffer(struct uring_floor *f, uint16_t bid)
{
    io_uring_buf_ring_add(f->bufs, f->mem + (size_t)bid * BUF_SIZE, BUF_SIZE, bid,
                          io_uring_buf_ring_mask(BUFS), 0);
    io_uring_buf_ring_advance(f->bufs, 1);
}

static void floor_recv(struct uring_floor *f, struct side *side)
{
    struct io_uring_sqe *sqe = floor_sqe(f);
    io_uring_prep_recv_multishot(sqe, side->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)side | OP_RECV);
    side->receiving = true;
}

/* The head of side's queue out, from where the ring received it. */
static void floor_send_head(struct uring_floor *f, struct side *side)
{
    uint16_t bid = side->queue[side->head];
    struct io_uring_sqe *sqe = floor_sqe(f);
    io_uring_prep_send(sqe, side->fd, f->mem + (size_t)bid * BUF_SIZE + side->sent,
                       side->queue_len[side->head] - side->sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)side | OP_SEND);
    side->sending = true;
}

/* Both sockets shut; the pair goes once neither has a request in the ring. */
static void floor_end(struct uring_floor *f, struct side *side)
{
    struct pair *p = side->pair;
    if (!p->client.eof) {
        p->client.eof = p->server.eof = true;
        shutdown(p->client.fd, SHUT_RDWR);
        shutdown(p->server.fd, SHUT_RDWR);
    }
    if (p->client.receiving || p->client.sending || p->server.receiving || p->server.sending)
        return;
    for (struct side *s = &p->client; s != NULL; s = s == &p->client ? &p->server : NULL)
        for (; s->count > 0; s->count--, s->head = (s->head + 1) % SEND_QUEUE)
            floor_give_buffer(f, s->queue[s->head]);
    close(p->client.fd);
    close(p->server.fd);
    free(p);
}

static void floor_received(struct uring_floor *f, struct side *side, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        side->receiving = false;
    if (cqe->res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
        uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        struct side *to = side->peer;
        if (to->eof || to->count == SEND_QUEUE) {
            floor_give_buffer(f, bid); /* a floor does not wait for a slow reader */
        } else {
            unsigned at = (to->head + to->count++) % SEND_QUEUE;
            to->queue[at] = bid;
            to->queue_len[at] = (uint32_t)cqe->res;
            if (!to->sending)
                floor_send_head(f, to);
        }
    }
    if (cqe->res == -ENOBUFS && !side->receiving && !side->eof)
        floor_recv(f, side); /* out of buffers a moment: asked again */
    else if (cqe->res <= 0 || side->eof)
        floor_end(f, side);
    else if (!side->receiving)
        floor_recv(f, side);
}

static void floor_sent(struct uring_floor *f, struct side *side, int res)
{
    side->sending = false;
    if (res <= 0 || side->eof) {
        floor_end(f, side);
        return;
    }
    side->sent += (unsigned)res;
    if (side->sent == side->queue_len[side->head]) {
        floor_give_buffer(f, side->queue[side->head]);
        side->head = (side->head + 1) % SEND_QUEUE;
        side->count--;
        side->sent = 0;
    }
    if (side->count > 0)
        floor_send_head(f, side);
}

static void floor_accepted(struct uring_floor *f, struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        struct io_uring_sqe *sqe = floor_sqe(f);
        io_uring_prep_multishot_accept(sqe, f->listen_fd, NULL, NULL, 0);
        io_uring_sqe_set_data64(sqe, OP_ACCEPT);
    }
    struct pair *p = cqe->res >= 0 ? pair_new(cqe->res, f->server) : NULL;
    if (p != NULL) {
        floor_recv(f, &p->client);
        floor_recv(f, &p->server);
    }
}

static int run_uring(int listen_fd, const struct sockaddr_in *server, bool under_epoll)
{
    static struct uring_floor f;
    struct io_uring_params params = {.flags = IORING_SETUP_SINGLE_ISSUER |
                                              IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE,
                                     .cq_entries = 8192};
    int rc = io_uring_queue_init_params(1024, &f.ring, &params);
    f.mem = rc == 0 ? malloc((size_t)BUFS * BUF_SIZE) : NULL;
    if (f.mem == NULL || posix_memalign((void **)&f.bufs, 4096, BUFS * sizeof(struct io_uring_buf)))
        rc = rc < 0 ? rc : -ENOMEM;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)f.bufs, .ring_entries = BUFS, .bgid = 0};
    if (rc == 0)
        rc = io_uring_register_buf_ring(&f.ring, &reg, 0);
    if (rc != 0) {
        fprintf(stderr, "floor_relay: io_uring: %s\n", strerror(-rc));
        return 1;
    }
    f.listen_fd = listen_fd;
    f.server = server;
    io_uring_buf_ring_init(f.bufs);
    for (uint16_t bid = 0; bid < BUFS; bid++)
        floor_give_buffer(&f, bid);
    struct io_uring_sqe *sqe = floor_sqe(&f);
    io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, OP_ACCEPT);
    int epfd = -1;
    if (under_epoll) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLET};
        int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        epfd = epoll_create1(0);
        if (efd < 0 || io_uring_register_eventfd(&f.ring, efd) != 0 || epfd < 0 ||
            epoll_ctl(epfd, EPOLL_CTL_ADD, efd, &ev) != 0)
            return 1;
    }
    bool waited = false;
    for (;;) {
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        if (under_epoll && waited) {
            /* Edge-triggered, the counter never read: each signal wakes one wait. */
            struct epoll_event ev;
            epoll_wait(epfd, &ev, 1, -1);
        }
        /* one system call a turn: its sends and receives in, completions waited for */
        rc = under_epoll ? io_uring_submit_and_get_events(&f.ring)
                         : io_uring_submit_and_wait(&f.ring, 1);
        if (rc < 0 && rc != -EINTR) {
            fprintf(stderr, "floor_relay: io_uring_enter: %s\n", strerror(-rc));
            return 1;
        }
        io_uring_for_each_cqe(&f.ring, head, cqe)
        {
            uint64_t data = io_uring_cqe_get_data64(cqe);
            struct side *side = (struct side *)(uintptr_t)(data & ~(uint64_t)OP_MASK);
            if ((data & OP_MASK) == OP_ACCEPT)
                floor_accepted(&f, cqe);
            else if ((data & OP_MASK) == OP_RECV)
                floor_received(&f, side, cqe);
            else
                floor_sent(&f, side, cqe->res);
            seen++;
        }
        io_uring_cq_advance(&f.ring, seen);
        waited = seen == 0;
    }
}

int main(int argc, char **argv)
{
    bool under_epoll = argc == 4 && strcmp(argv[1], "--io_uring-epoll") == 0;
    bool uring = under_epoll || (argc == 4 && strcmp(argv[1], "--io_uring") == 0);
    if (argc != 3 && !uring) {
        fprintf(stderr,
                "usage: floor_relay [--io_uring | --io_uring-epoll] LISTEN_PORT SERVER_PORT\n");
        return 2;
    }
    argv += uring;
    struct sockaddr_in listen_at = {.sin_family = AF_INET,
                                    .sin_port = htons((uint16_t)atoi(argv[1])),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct sockaddr_in server = listen_at;
    server.sin_port = htons((uint16_t)atoi(argv[2]));
    int one = 1, listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd < 0 || setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(listen_fd, (struct sockaddr *)&listen_at, sizeof(listen_at)) != 0 ||
        listen(listen_fd, 512) != 0) {
        fprintf(stderr, "floor_relay: cannot listen on port %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    return uring ? run_uring(listen_fd, &server, under_epoll) : run_epoll(listen_fd, &server);
}
