/*
 * test_uring.c
 *    Unit tests for proxy/runtime/uring.c (cmocka, TAP output): a worker's
 *    io_uring sends over socketpairs, at once and when the socket is full,
 *    a turn's only send made with sendmsg (or left to the ring when the
 *    socket is full), and a send whose owner leaves before the kernel is
 *    done with it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/runtime/uring.h"

struct fixture {
    struct event_base *base;
    struct uring *u;
    int sv[2]; /* sv[0]: the sending side, sv[1]: the test reads there */
};

/* What a send's owner saw, as endpoint.c keeps it: each completion, and the bytes sent in all. */
struct owner {
    int completions;
    int last_res;
    size_t sent;
    bool resend; /* start the rest again after a short send, as endpoint_sent does */
};

static void on_done(struct uring_send *op, int res)
{
    struct owner *o = op->owner;
    o->completions++;
    o->last_res = res;
    if (res <= 0)
        return;
    o->sent += (size_t)res;
    evbuffer_drain(op->buf, (size_t)res);
    if (o->resend && evbuffer_get_length(op->buf) > 0)
        assert_int_equal(uring_send_start(op), 0);
}

/* The owner's queue, handed over at the end of the turn (a later send). */
static struct evbuffer *owner_queue;

static bool on_fill(struct uring_send *op)
{
    evbuffer_add_buffer(op->buf, owner_queue);
    return evbuffer_get_length(op->buf) > 0;
}

static int setup(void **state)
{
    static struct fixture f;
    f.base = event_base_new();
    assert_non_null(f.base);
    char err[160];
    f.u = uring_new(f.base, err, sizeof(err));
    if (f.u == NULL)
        fail_msg("no io_uring: %s", err);
    assert_int_equal(uring_begin(f.u), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, f.sv), 0);
    owner_queue = evbuffer_new();
    assert_non_null(owner_queue);
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    uring_free(f->u);
    evbuffer_free(owner_queue);
    if (f->sv[0] >= 0)
        close(f->sv[0]);
    close(f->sv[1]);
    event_base_free(f->base);
    return 0;
}

/* Reads what the test's side has, up to cap; the count. */
static size_t drain_peer(int fd, uint8_t *p, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        ssize_t n = read(fd, p + got, cap - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static void fill_pattern(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 7 + i / 251);
}

/* A socket with room: the send completes inside the turn's submission, before any wait. */
static void test_send_at_once(void **state)
{
    struct fixture *f = *state;
    struct owner o = {0};
    struct uring_send *op = uring_send_get(f->u, f->sv[0], on_done, on_fill, &o);
    assert_non_null(op);
    uint8_t msg[100];
    fill_pattern(msg, sizeof(msg));
    assert_int_equal(evbuffer_add(op->buf, msg, sizeof(msg)), 0);
    assert_int_equal(uring_send_start(op), 0);
    assert_true(uring_has_queued(f->u));
    assert_int_equal(o.completions, 0); /* nothing goes before the turn ends */
    uring_turn(f->u);
    assert_int_equal(o.completions, 1);
    assert_int_equal(o.last_res, 100);
    assert_false(op->busy);
    assert_false(uring_has_queued(f->u));
    uint8_t got[200];
    assert_int_equal(drain_peer(f->sv[1], got, sizeof(got)), 100);
    assert_memory_equal(got, msg, sizeof(msg));
    /* Idle, it goes back to the cache: the next socket's send is the same memory, empty. */
    uring_send_release(op);
    struct uring_send *again = uring_send_get(f->u, f->sv[0], on_done, on_fill, &o);
    assert_ptr_equal(again, op);
    assert_int_equal(evbuffer_get_length(again->buf), 0);
    assert_null(again->block);
    uring_send_release(again);
}

/*
 * Four megabytes on a full socket: the sends wait for room in the kernel
 * and complete through the ring's event while the test reads; every byte
 * arrives, in order.
 */
static void test_send_waits_for_room(void **state)
{
    struct fixture *f = *state;
    enum { TOTAL = 4 << 20 };
    uint8_t *data = malloc(TOTAL), *got = malloc(TOTAL);
    assert_non_null(data);
    assert_non_null(got);
    fill_pattern(data, TOTAL);
    struct owner o = {.resend = true};
    struct uring_send *op = uring_send_get(f->u, f->sv[0], on_done, on_fill, &o);
    assert_non_null(op);
    /* In many pieces, as queued replies are: a send takes at most URING_SEND_IOV of them. */
    for (size_t off = 0; off < TOTAL; off += 64 * 1024)
        assert_int_equal(evbuffer_add(op->buf, data + off, 64 * 1024), 0);
    assert_int_equal(uring_send_start(op), 0);
    size_t have = 0;
    for (int turn = 0; turn < 100000 && have < TOTAL; turn++) {
        uring_turn(f->u);
        have += drain_peer(f->sv[1], got + have, TOTAL - have);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
    assert_int_equal(have, TOTAL);
    assert_memory_equal(got, data, TOTAL);
    assert_int_equal(o.sent, TOTAL);
    assert_true(o.completions > 1); /* it did wait: a single send could not take it all */
    uring_send_release(op);
    free(data);
    free(got);
}

/*
 * The owner leaves while its send waits for room: the send is cancelled
 * (the socket is closing), its memory kept until the kernel is done,
 * then freed; the owner is never told.
 */
static void test_release_in_flight(void **state)
{
    struct fixture *f = *state;
    struct owner o = {0};
    struct uring_send *op = uring_send_get(f->u, f->sv[0], on_done, on_fill, &o);
    assert_non_null(op);
    /* The socket full first: the send finds no room and waits in the kernel. */
    static uint8_t filler[64 * 1024];
    while (write(f->sv[0], filler, sizeof(filler)) > 0)
        ;
    assert_int_equal(errno, EAGAIN);
    assert_int_equal(evbuffer_add(op->buf, filler, 1000), 0);
    assert_int_equal(uring_send_start(op), 0);
    uring_turn(f->u);
    assert_true(op->busy);
    assert_int_equal(o.completions, 0);
    uring_send_release(op);
    assert_int_equal(uring_orphans(f->u), 1);
    close(f->sv[0]);
    f->sv[0] = -1;
    for (int turn = 0; turn < 1000 && uring_orphans(f->u) > 0; turn++) {
        uring_turn(f->u);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
    assert_int_equal(uring_orphans(f->u), 0);
    assert_int_equal(o.completions, 0);
}

/*
 * The owner leaves right after queuing, and closes its socket before the
 * turn ends: the send was submitted at the release, while the descriptor
 * still named the socket, and its bytes arrive before the end of stream.
 */
static void test_release_before_submit(void **state)
{
    struct fixture *f = *state;
    struct owner o = {0};
    struct uring_send *op = uring_send_get(f->u, f->sv[0], on_done, on_fill, &o);
    assert_non_null(op);
    assert_int_equal(evbuffer_add(op->buf, "last words", 10), 0);
    assert_int_equal(uring_send_start(op), 0);
    uring_send_release(op);
    close(f->sv[0]);
    f->sv[0] = -1;
    /* A new socket may take the number at once: nothing may go to it. */
    int again[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, again), 0);
    for (int turn = 0; turn < 1000 && uring_orphans(f->u) > 0; turn++) {
        uring_turn(f->u);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
    assert_int_equal(uring_orphans(f->u), 0);
    char got[32];
    assert_int_equal(drain_peer(f->sv[1], (uint8_t *)got, sizeof(got)), 10);
    assert_memory_equal(got, "last words", 10);
    assert_int_equal(read(f->sv[1], got, sizeof(got)), 0); /* then the end of stream */
    assert_int_equal(drain_peer(again[1], (uint8_t *)got, sizeof(got)), 0);
    close(again[0]);
    close(again[1]);
    assert_int_equal(o.completions, 0);
}

/*
 * Three flushes in one turn: the send is filled at the turn's end, once,
 * with all three, and completes inside the submission.
 */
static void test_later_batches_a_turn(void **state)
{
    struct fixture *f = *state;
    struct owner o = {0};
    struct uring_send *op = uring_send_get(f->u, f->sv[0], on_done, on_fill, &o);
    assert_non_null(op);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(evbuffer_add(owner_queue, "abc", 3), 0);
        uring_send_later(op);
    }
    assert_true(uring_has_queued(f->u));
    assert_int_equal(evbuffer_get_length(op->buf), 0); /* nothing taken before the turn ends */
    uring_turn(f->u);
    assert_int_equal(o.completions, 1);
    assert_int_equal(o.last_res, 9);
    char got[16];
    assert_int_equal(drain_peer(f->sv[1], (uint8_t *)got, sizeof(got)), 9);
    assert_memory_equal(got, "abcabcabc", 9);
    /* A later send released before the turn ends still goes: the owner's last words. */
    assert_int_equal(evbuffer_add(owner_queue, "bye", 3), 0);
    uring_send_later(op);
    uring_send_release(op);
    for (int turn = 0; turn < 1000 && uring_orphans(f->u) > 0; turn++)
        uring_turn(f->u);
    assert_int_equal(drain_peer(f->sv[1], (uint8_t *)got, sizeof(got)), 3);
    assert_memory_equal(got, "bye", 3);
}

/* The peer is gone: the failure reaches the owner as -errno, and a release after it frees at once.
 */
static void test_send_fails(void **state)
{
    struct fixture *f = *state;
    struct owner o = {0};
    struct uring_send *op = uring_send_get(f->u, f->sv[0], on_done, on_fill, &o);
    assert_non_null(op);
    close(f->sv[1]);
    f->sv[1] = open("/dev/null", O_RDONLY); /* teardown closes something */
    assert_int_equal(evbuffer_add(op->buf, "x", 1), 0);
    assert_int_equal(uring_send_start(op), 0);
    uring_turn(f->u);
    assert_int_equal(o.completions, 1);
    assert_int_equal(o.last_res, -EPIPE);
    uring_send_release(op);
    assert_int_equal(uring_orphans(f->u), 0);
}

/*
 * A turn's only send goes with one sendmsg: at once where the socket has
 * room; where it has none, to the ring, which waits for room (the socket
 * filled first); failing, its -errno told as the ring's would be.  Every
 * byte arrives, in order, the first piece of a short send included.
 */
static void test_alone_sends_at_once_or_waits(void **state)
{
    struct fixture *f = *state;
    struct owner o = {.resend = true};
    struct uring_send *op = uring_send_get(f->u, f->sv[0], on_done, on_fill, &o);
    assert_non_null(op);
    assert_int_equal(evbuffer_add(owner_queue, "one", 3), 0);
    uring_send_later(op);
    uring_turn(f->u);
    assert_int_equal(o.completions, 1);
    assert_int_equal(o.last_res, 3);
    assert_false(uring_has_queued(f->u));
    char got[8];
    assert_int_equal(drain_peer(f->sv[1], (uint8_t *)got, sizeof(got)), 3);
    assert_memory_equal(got, "one", 3);
    /* The socket full: nothing goes now, the ring waits for room. */
    enum { CHUNK = 4096, TOTAL = 256 * 1024 };
    uint8_t fill[CHUNK], *data = malloc(TOTAL);
    assert_non_null(data);
    memset(fill, 'f', sizeof(fill));
    size_t filled = 0;
    for (int i = 0; i < 100000; i++) {
        ssize_t n = write(f->sv[0], fill, sizeof(fill));
        if (n <= 0)
            break;
        filled += (size_t)n;
    }
    uint8_t *back = malloc(filled + TOTAL);
    assert_non_null(back);
    fill_pattern(data, TOTAL);
    assert_int_equal(evbuffer_add(owner_queue, data, TOTAL), 0);
    o.completions = 0;
    o.sent = 0;
    uring_send_later(op);
    uring_turn(f->u);
    assert_int_equal(o.completions, 0);
    size_t have = 0;
    for (int turn = 0; turn < 100000 && have < filled + TOTAL; turn++) {
        have += drain_peer(f->sv[1], back + have, filled + TOTAL - have);
        uring_turn(f->u);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
    assert_int_equal(have, filled + TOTAL);
    assert_memory_equal(back + filled, data, TOTAL);
    assert_int_equal(o.sent, TOTAL);
    /* The peer gone: the failure is the owner's, as -errno. */
    close(f->sv[1]);
    f->sv[1] = open("/dev/null", O_RDONLY); /* teardown closes something */
    assert_int_equal(evbuffer_add(owner_queue, "x", 1), 0);
    o.completions = 0;
    uring_send_later(op);
    uring_turn(f->u);
    assert_int_equal(o.completions, 1);
    assert_int_equal(o.last_res, -EPIPE);
    uring_send_release(op);
    assert_int_equal(uring_orphans(f->u), 0);
    free(data);
    free(back);
}

/* What a receive's owner was told. */
struct listener {
    uint8_t got[256 * 1024];
    size_t have;
    int ends, failures, stops, calls;
    bool stop_after_first; /* stops its receive at the first bytes (a paused reader) */
    bool keep;             /* keeps every buffer (kept[]) until the test gives them back */
    unsigned kept[1024];
    size_t nkept;
};

static bool on_received(struct uring_recv *op, const uint8_t *p, int res, unsigned bid)
{
    (void)bid;
    struct listener *l = op->owner;
    l->calls++;
    if (res > 0) {
        assert_true(l->have + (size_t)res <= sizeof(l->got));
        memcpy(l->got + l->have, p, (size_t)res);
        l->have += (size_t)res;
        if (l->stop_after_first)
            uring_recv_stop(op);
    } else if (res == 0) {
        l->ends++;
    } else if (res == -ECANCELED) {
        l->stops++;
        assert_false(op->armed); /* told last: nothing more comes */
    } else {
        l->failures++;
    }
    if (res > 0 && l->keep) {
        l->kept[l->nkept++] = bid;
        return true;
    }
    return false;
}

/*
 * Deferred task work came with Linux 6.1: from there on the ring must
 * receive.  Before, it must say it cannot (reads stay with epoll there,
 * and the suite runs them so): false, after checking that.
 */
static bool ring_must_receive(struct fixture *f)
{
    struct utsname un;
    int major = 0, minor = 0;
    assert_int_equal(uname(&un), 0);
    assert_int_equal(sscanf(un.release, "%d.%d", &major, &minor), 2);
    if (major > 6 || (major == 6 && minor >= 1)) {
        assert_true(uring_can_recv(f->u));
        return true;
    }
    assert_false(uring_can_recv(f->u));
    assert_null(uring_recv_new(f->u, f->sv[0], on_received, NULL));
    return false;
}

/* Turns the loop until cond holds, at most a bounded number of turns. */
#define TURN_UNTIL(f, cond)                                                                        \
    for (int turn_ = 0; turn_ < 20000 && !(cond); turn_++) {                                       \
        uring_turn((f)->u);                                                                        \
        event_base_loop((f)->base, EVLOOP_NONBLOCK);                                               \
    }

/* A receive of the test's socket, told to l, armed. */
static struct uring_recv *recv_armed(struct fixture *f, struct listener *l)
{
    struct uring_recv *op = uring_recv_new(f->u, f->sv[0], on_received, l);
    assert_non_null(op);
    assert_int_equal(uring_recv_arm(op), 0);
    return op;
}

/* n turns of the loop, whatever comes. */
static void run_turns(struct fixture *f, int n)
{
    for (int turn = 0; turn < n; turn++) {
        uring_turn(f->u);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
}

/* Bytes in order across many buffers, then the peer's end: told once, the receive no longer armed.
 */
static void test_recv_bytes_then_end(void **state)
{
    struct fixture *f = *state;
    if (!ring_must_receive(f))
        return;
    static struct listener l;
    memset(&l, 0, sizeof(l));
    struct uring_recv *op = recv_armed(f, &l);
    uring_turn(f->u);
    static uint8_t data[200 * 1024];
    fill_pattern(data, sizeof(data));
    size_t put = 0;
    for (int turn = 0; turn < 20000 && l.have < sizeof(data); turn++) {
        if (put < sizeof(data)) {
            ssize_t n = write(f->sv[1], data + put, sizeof(data) - put);
            if (n > 0)
                put += (size_t)n;
        }
        uring_turn(f->u);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
    assert_int_equal(l.have, sizeof(data));
    assert_memory_equal(l.got, data, sizeof(data));
    assert_true(l.calls > 1); /* more than one buffer's worth */
    assert_int_equal(l.ends, 0);
    shutdown(f->sv[1], SHUT_WR);
    TURN_UNTIL(f, l.ends > 0);
    assert_int_equal(l.ends, 1);
    assert_false(op->armed);
    assert_int_equal(l.failures, 0);
    uring_recv_release(op);
}

/* A stopped receive tells nothing more until armed again, then what came meanwhile. */
static void test_recv_stop_and_arm_again(void **state)
{
    struct fixture *f = *state;
    if (!ring_must_receive(f))
        return;
    static struct listener l;
    memset(&l, 0, sizeof(l));
    l.stop_after_first = true;
    struct uring_recv *op = recv_armed(f, &l);
    assert_int_equal(write(f->sv[1], "first", 5), 5);
    TURN_UNTIL(f, l.have == 5 && !op->armed);
    assert_int_equal(l.have, 5);
    assert_false(op->armed);
    assert_int_equal(l.stops, 1); /* its end told, so that its owner may read the socket */
    assert_int_equal(write(f->sv[1], "second", 6), 6);
    run_turns(f, 50);
    assert_int_equal(l.have, 5); /* stopped: the bytes wait in the socket */
    l.stop_after_first = false;
    assert_int_equal(uring_recv_arm(op), 0);
    TURN_UNTIL(f, l.have == 11);
    assert_int_equal(l.have, 11);
    assert_memory_equal(l.got, "firstsecond", 11);
    assert_int_equal(l.failures, 0);
    assert_int_equal(l.stops, 1);
    uring_recv_release(op);
}

/*
 * A quiet ring stops its armed receives a batch at a time, the oldest
 * first, each owner told its stop once; a receive stopped already, or
 * released, is not on its list; one armed again is.
 */
static void test_recv_quiet_in_batches(void **state)
{
    struct fixture *f = *state;
    if (!ring_must_receive(f))
        return;
    enum { N = 5 };
    static struct listener l[N];
    memset(l, 0, sizeof(l));
    int sv[N][2];
    struct uring_recv *op[N];
    for (int i = 0; i < N; i++) {
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv[i]), 0);
        op[i] = uring_recv_new(f->u, sv[i][0], on_received, &l[i]);
        assert_non_null(op[i]);
        assert_int_equal(uring_recv_arm(op[i]), 0);
    }
    uring_turn(f->u);
    uring_recv_release(op[4]); /* released: off the list */
    assert_true(uring_recv_quiet(f->u, 2));
    assert_true(op[0]->stopping && op[1]->stopping && !op[2]->stopping);
    assert_false(uring_recv_quiet(f->u, 2));
    assert_true(op[2]->stopping && op[3]->stopping);
    assert_false(uring_recv_quiet(f->u, 2)); /* none left */
    TURN_UNTIL(f,
               l[0].stops + l[1].stops + l[2].stops + l[3].stops == 4 && uring_orphans(f->u) == 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(l[i].stops, 1);
        assert_false(op[i]->armed);
    }
    /* Armed again: quieted again. */
    assert_int_equal(uring_recv_arm(op[0]), 0);
    assert_false(uring_recv_quiet(f->u, 2));
    assert_true(op[0]->stopping);
    TURN_UNTIL(f, l[0].stops == 2);
    assert_int_equal(l[0].stops, 2);
    for (int i = 0; i < N; i++) {
        if (i < 4)
            uring_recv_release(op[i]);
        close(sv[i][0]);
        close(sv[i][1]);
    }
}

/*
 * An owner that keeps every buffer starves the receive: it waits, armed,
 * telling nothing, until a buffer comes back; then every byte arrives, in
 * order.
 */
static void test_recv_starved_waits_for_buffers(void **state)
{
    struct fixture *f = *state;
    if (!ring_must_receive(f))
        return;
    static struct listener l;
    memset(&l, 0, sizeof(l));
    l.keep = true;
    struct uring_recv *op = recv_armed(f, &l);
    static uint8_t data[64 * 1024];
    fill_pattern(data, sizeof(data));
    size_t put = 0;
    /* A small write a turn: a buffer each, until the ring has none left. */
    for (int turn = 0; turn < 20000 && !op->starved && put + 100 <= sizeof(data); turn++) {
        if (write(f->sv[1], data + put, 100) == 100)
            put += 100;
        uring_turn(f->u);
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    }
    assert_true(op->starved);
    assert_true(op->armed);
    int calls = l.calls;
    assert_int_equal(write(f->sv[1], data + put, 100), 100);
    put += 100;
    run_turns(f, 50);
    assert_int_equal(l.calls, calls); /* waiting: nothing told until a buffer comes back */
    for (size_t i = 0; i < l.nkept; i++)
        uring_buf_give(f->u, l.kept[i]);
    l.nkept = 0;
    l.keep = false;
    TURN_UNTIL(f, l.have == put);
    assert_int_equal(l.have, put);
    assert_memory_equal(l.got, data, put);
    assert_false(op->starved);
    assert_int_equal(l.failures, 0);
    uring_recv_release(op);
}

/* Released while armed: an orphan until the kernel ends it, its owner told nothing. */
static void test_recv_release_armed(void **state)
{
    struct fixture *f = *state;
    if (!ring_must_receive(f))
        return;
    static struct listener l;
    memset(&l, 0, sizeof(l));
    struct uring_recv *op = recv_armed(f, &l);
    uring_turn(f->u);
    uring_recv_release(op);
    assert_int_equal(uring_orphans(f->u), 1);
    assert_int_equal(write(f->sv[1], "late", 4), 4);
    TURN_UNTIL(f, uring_orphans(f->u) == 0);
    assert_int_equal(uring_orphans(f->u), 0);
    assert_int_equal(l.calls, 0);
}

/*
 * Wake-ups of the loop with these reads each, in turn, at most n: the
 * index of the one that moved the sockets (they stop there), else -1.
 */
static int wake_ups(struct uring *u, const unsigned *reads, int nreads, int n)
{
    for (int i = 0; i < n; i++) {
        for (unsigned r = 0; r < reads[i % nreads]; r++)
            uring_count_read(u);
        double avg = -1.0;
        if (uring_weigh_wakeup(u, &avg)) {
            assert_true(avg >= 0.0 && avg <= 2.0);
            return i;
        }
    }
    return -1;
}

/*
 * Whether sockets receive through the ring follows the reads a wake-up,
 * a window of 1,024 wake-ups at a time: one client's load (1.0 on
 * readiness) stays on readiness, two clients' (2.0) move to the ring at
 * the end of their first whole window, not before, and move back below
 * 1.6 (one client through the ring, 1.3); a load that counts between the
 * two sides' thresholds on both moves once a window at most; io_backend =
 * io_uring receives through the ring whatever comes; a window of a
 * quiet worker ends after a second.  Before Linux 6.1 nothing moves: the
 * ring cannot receive.
 */
static void test_recv_follows_the_load(void **state)
{
    struct fixture *f = *state;
    bool can = ring_must_receive(f);
    static const unsigned one[] = {1}, two[] = {2}, one_ring[] = {1, 1, 2}, edge[] = {1, 2};
    assert_false(uring_recv_wanted(f->u)); /* a worker starts on readiness */
    assert_int_equal(wake_ups(f->u, one, 1, 3000), -1);
    assert_false(uring_recv_wanted(f->u));
    if (!can) {
        assert_int_equal(wake_ups(f->u, two, 1, 3000), -1);
        assert_false(uring_recv_wanted(f->u));
        return;
    }
    assert_in_range(wake_ups(f->u, two, 1, 3000), 1023, 2047);
    assert_true(uring_recv_wanted(f->u));
    assert_int_equal(wake_ups(f->u, two, 1, 3000), -1);
    assert_in_range(wake_ups(f->u, one_ring, 3, 3000), 1023, 2047);
    assert_false(uring_recv_wanted(f->u));

    /* 1.5 a wake-up: above readiness's threshold and below the ring's. */
    int moves = 0;
    for (int left = 10240; left > 0; moves++) {
        int at = wake_ups(f->u, edge, 2, left);
        if (at < 0)
            break;
        assert_true(moves == 0 || at == 1023);
        left -= at + 1;
    }
    assert_in_range(moves, 9, 10);

    /*
     * A worker gone quiet: a window ends after a second, however few its
     * wake-ups, and the sockets move back to readiness.
     */
    static const unsigned none[] = {0};
    assert_in_range(wake_ups(f->u, two, 1, 3000), 1023, 2047);
    assert_true(uring_recv_wanted(f->u));
    assert_int_equal(wake_ups(f->u, none, 1, 10), -1);
    assert_true(uring_recv_wanted(f->u));
    usleep(1050 * 1000);
    assert_int_equal(wake_ups(f->u, none, 1, 1), 0);
    assert_false(uring_recv_wanted(f->u));

    uring_receive_always(f->u, true);
    assert_true(uring_recv_wanted(f->u));
    assert_int_equal(wake_ups(f->u, one, 1, 3000), -1);
    assert_true(uring_recv_wanted(f->u));
    uring_receive_always(f->u, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_waits_for_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_release_before_submit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_send_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_later_batches_a_turn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alone_sends_at_once_or_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recv_bytes_then_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recv_stop_and_arm_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recv_starved_waits_for_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recv_release_armed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recv_follows_the_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recv_quiet_in_batches, setup, teardown),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("uring", tests, NULL, NULL);
}
