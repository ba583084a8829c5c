/*
 * test_relay_tx.c
 *    The transaction status and the count of requests outstanding that
 *    the relay keeps per server connection (protocol/tx_track.h), seen
 *    through a real session on the relay harness (cmocka, TAP).
 *
 *    The test plays both peers itself over socketpairs: it writes a
 *    client's or a server's messages, runs pgnear's event loop until
 *    they went through (checking every byte on the far side), and looks
 *    at the server connection's count, status and safe point in between.
 *    Messages arrive in one read, cut at every offset across two reads,
 *    or partly already read before the relay starts, which takes them
 *    through the relay's evbuffer scan instead of its flat one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "proxy/base/log.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "tests/unit/relay_harness.h"

static struct relay_rig rig;

/* ---- messages ---- */

struct bytes {
    uint8_t b[4096];
    size_t n;
};

/* A message with a body of len bytes; a ReadyForQuery's body is its status. */
static void put(struct bytes *w, char type, uint32_t len, char status)
{
    assert_true(w->n + 5 + len <= sizeof(w->b));
    uint32_t word = len + 4;
    w->b[w->n++] = (uint8_t)type;
    for (int i = 3; i >= 0; i--)
        w->b[w->n++] = (uint8_t)(word >> (8 * i));
    for (uint32_t i = 0; i < len; i++, w->n++)
        w->b[w->n] = type == 'Z' ? (uint8_t)status : (uint8_t)('a' + w->n % 26);
}

/*
 * Messages from a compact script: each character a message type with a
 * small body, "Z" followed by its status ("ZT").  Bodies differ by
 * position, so a byte out of place shows.
 */
static void put_script(struct bytes *w, const char *script)
{
    for (const char *p = script; *p; p++) {
        if (*p == 'Z')
            put(w, 'Z', 1, *++p);
        else
            put(w, *p, (uint32_t)(3 + (p - script) % 7), 0);
    }
}

static struct bytes script(const char *s)
{
    struct bytes w = {.n = 0};
    put_script(&w, s);
    return w;
}

/* ---- one session, both peers played here ---- */

struct tx_run {
    struct session *s;   /* NULL: no run open */
    int fd[2];           /* the test's ends: [PEER_CLIENT], [PEER_SERVER] */
    int pgnear_fd[2];    /* pgnear's ends, to see that it read everything */
    struct bytes got[2]; /* what each of the test's ends received since the last check */
};

/* One run at a time, outside any test's stack: the teardown closes it when a test failed. */
static struct tx_run the_run;

static struct tx_run *run_open(const struct bytes *early_client)
{
    struct tx_run *r = &the_run;
    int c[2], s[2];
    memset(r, 0, sizeof(*r));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, c), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s), 0);
    r->s = rig_session(&rig, c[0], NULL, s[0], NULL);
    assert_non_null(r->s);
    r->fd[PEER_CLIENT] = c[1];
    r->fd[PEER_SERVER] = s[1];
    r->pgnear_fd[PEER_CLIENT] = c[0];
    r->pgnear_fd[PEER_SERVER] = s[0];
    /* Bytes read during the login, behind its last message: the relay's evbuffer scan. */
    if (early_client != NULL)
        assert_int_equal(evbuffer_add(r->s->client.in, early_client->b, early_client->n), 0);
    phase_enter(r->s, PHASE_ACTIVE);
    return r;
}

static void run_close(struct tx_run *r)
{
    struct session *s = r->s;
    r->s = NULL;
    session_close(s, "test over");
    close(r->fd[PEER_CLIENT]);
    close(r->fd[PEER_SERVER]);
    assert_false(rig_session_alive(&rig));
}

static int close_failed_run(void **state)
{
    if (the_run.s != NULL)
        run_close(&the_run);
    return 0;
}

static int unread(int fd)
{
    int n = 0;
    assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

/* What reached the test's ends so far. */
static void run_collect(struct tx_run *r)
{
    for (int who = 0; who < 2; who++) {
        struct bytes *g = &r->got[who];
        ssize_t n;
        while ((n = read(r->fd[who], g->b + g->n, sizeof(g->b) - g->n)) > 0)
            g->n += (size_t)n;
        assert_true(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
    }
}

/* Runs pgnear's loop until it read what was written and wrote what it could forward. */
static void run_settle(struct tx_run *r)
{
    for (int turn = 0; turn < 10000; turn++) {
        event_base_loop(rig.w.base, EVLOOP_NONBLOCK);
        run_collect(r);
        if (unread(r->pgnear_fd[PEER_CLIENT]) == 0 && unread(r->pgnear_fd[PEER_SERVER]) == 0 &&
            evbuffer_get_length(r->s->client.out) == 0 &&
            evbuffer_get_length(r->s->server_conn->ep.out) == 0 &&
            event_base_get_num_events(rig.w.base, EVENT_BASE_COUNT_ACTIVE) == 0)
            return;
    }
    fail_msg("pgnear did not settle");
}

/* The other end got exactly w's bytes [from, to) since the last check. */
static void run_forwarded(struct tx_run *r, int who, const struct bytes *w, size_t from, size_t to)
{
    struct bytes *g = &r->got[1 - who];
    assert_int_equal(g->n, to - from);
    assert_memory_equal(g->b, w->b + from, to - from);
    g->n = 0;
}

/* who writes w's bytes [from, from + n); the other end must get [fwd_from, fwd_to). */
static void run_send(struct tx_run *r, int who, const struct bytes *w, size_t from, size_t n,
                     size_t fwd_from, size_t fwd_to)
{
    assert_int_equal(write(r->fd[who], w->b + from, n), (ssize_t)n);
    run_settle(r);
    run_forwarded(r, who, w, fwd_from, fwd_to);
}

/* The whole of a script from who, forwarded whole. */
static void run_all(struct tx_run *r, int who, const char *s)
{
    struct bytes w = script(s);
    run_send(r, who, &w, 0, w.n, 0, w.n);
}

static void expect(const struct tx_run *r, uint32_t outstanding, char status, bool safe)
{
    const struct server_conn *sc = r->s->server_conn;
    assert_int_equal(sc->tx.outstanding, outstanding);
    assert_int_equal(sc->tx.status, status);
    assert_int_equal(server_conn_at_safe_point(sc), safe);
}

/* ---- the cases ---- */

static void test_simple_query(void **state)
{
    struct tx_run *r = run_open(NULL);
    expect(r, 0, 'I', true);
    run_all(r, PEER_CLIENT, "Q");
    expect(r, 1, 'I', false);
    run_all(r, PEER_SERVER, "TDDC");
    expect(r, 1, 'I', false);
    run_all(r, PEER_SERVER, "ZI");
    expect(r, 0, 'I', true);
    run_close(r);
}

static void test_pipelined_queries(void **state)
{
    struct tx_run *r = run_open(NULL);
    run_all(r, PEER_CLIENT, "QQQQ");
    expect(r, 4, 'I', false);
    run_all(r, PEER_SERVER, "CZT");
    expect(r, 3, 'T', false);
    run_all(r, PEER_SERVER, "TDCZTCZT");
    expect(r, 1, 'T', false);
    run_all(r, PEER_SERVER, "CZI");
    expect(r, 0, 'I', true);
    run_close(r);
}

static void test_extended_pipelined(void **state)
{
    struct tx_run *r = run_open(NULL);
    run_all(r, PEER_CLIENT, "PBDE");
    expect(r, 0, 'I', false); /* no Sync yet: the batch is open */
    run_all(r, PEER_CLIENT, "SPBESBES");
    expect(r, 3, 'I', false);
    run_all(r, PEER_SERVER, "12TDCZI12DCZI");
    expect(r, 1, 'I', false);
    run_all(r, PEER_SERVER, "2EZI"); /* the last batch fails: one ReadyForQuery all the same */
    expect(r, 0, 'I', true);
    run_close(r);
}

static void test_copy_in_copydone(void **state)
{
    struct tx_run *r = run_open(NULL);
    run_all(r, PEER_CLIENT, "Q");
    run_all(r, PEER_SERVER, "G");
    expect(r, 1, 'I', false);
    run_all(r, PEER_CLIENT, "dddd");
    run_all(r, PEER_CLIENT, "dc");
    expect(r, 1, 'I', false); /* CopyDone gets no answer of its own */
    run_all(r, PEER_SERVER, "CZI");
    expect(r, 0, 'I', true);

    /* libpq's extended protocol: the Sync behind the Execute goes to the COPY. */
    run_all(r, PEER_CLIENT, "PBDES");
    expect(r, 1, 'I', false);
    run_all(r, PEER_SERVER, "12nG");
    expect(r, 0, 'I', false);
    run_all(r, PEER_CLIENT, "ddc");
    run_all(r, PEER_CLIENT, "S");
    expect(r, 1, 'I', false);
    run_all(r, PEER_SERVER, "CZI");
    expect(r, 0, 'I', true);
    run_close(r);
}

static void test_copy_in_copyfail(void **state)
{
    struct tx_run *r = run_open(NULL);
    run_all(r, PEER_CLIENT, "Q");
    run_all(r, PEER_SERVER, "G");
    run_all(r, PEER_CLIENT, "ddf");
    expect(r, 1, 'I', false);
    run_all(r, PEER_SERVER, "EZI");
    expect(r, 0, 'I', true);

    run_all(r, PEER_CLIENT, "PBES");
    run_all(r, PEER_SERVER, "12G");
    run_all(r, PEER_CLIENT, "dfS");
    expect(r, 1, 'I', false);
    run_all(r, PEER_SERVER, "EZI");
    expect(r, 0, 'I', true);
    run_close(r);
}

/* A client's 'Z' is no ReadyForQuery: it neither answers anything nor makes the server idle. */
static void test_client_fake_ready(void **state)
{
    struct tx_run *r = run_open(NULL);
    run_all(r, PEER_CLIENT, "Q");
    run_all(r, PEER_SERVER, "CZT"); /* BEGIN */
    expect(r, 0, 'T', false);
    run_all(r, PEER_CLIENT, "ZI");
    expect(r, 0, 'T', false);
    run_all(r, PEER_CLIENT, "QZIZI");
    expect(r, 1, 'T', false);
    run_all(r, PEER_SERVER, "CZI"); /* COMMIT */
    expect(r, 0, 'I', true);
    run_close(r);
}

/* An error inside a transaction leaves it aborted ('E'): no safe point until it ends. */
static void test_error_in_transaction(void **state)
{
    struct tx_run *r = run_open(NULL);
    run_all(r, PEER_CLIENT, "Q");
    run_all(r, PEER_SERVER, "CZT");
    run_all(r, PEER_CLIENT, "Q");
    run_all(r, PEER_SERVER, "EZE");
    expect(r, 0, 'E', false);
    run_all(r, PEER_CLIENT, "PBES");
    run_all(r, PEER_SERVER, "EZE"); /* still aborted */
    expect(r, 0, 'E', false);
    run_all(r, PEER_CLIENT, "Q");
    run_all(r, PEER_SERVER, "CZI"); /* ROLLBACK */
    expect(r, 0, 'I', true);
    run_close(r);
}

/* ---- cut at every offset ---- */

/* Client messages whose header is whole within the first k bytes, and the bytes up to them. */
static uint32_t client_requests_within(const struct bytes *w, size_t k, size_t *forward)
{
    uint32_t n = 0;
    *forward = 0;
    for (size_t at = 0; at + 5 <= k;) {
        uint32_t len = (uint32_t)w->b[at + 1] << 24 | (uint32_t)w->b[at + 2] << 16 |
                       (uint32_t)w->b[at + 3] << 8 | w->b[at + 4];
        n += w->b[at] == 'Q' || w->b[at] == 'S';
        at += 1 + len;
        *forward = at < k ? at : k;
    }
    return n;
}

/* ReadyForQuery messages whose status byte is within the first k bytes: count and last status. */
static uint32_t server_answers_within(const struct bytes *w, size_t k, size_t *forward,
                                      char *status)
{
    uint32_t n = 0;
    *forward = 0;
    for (size_t at = 0; at + 5 <= k;) {
        uint32_t len = (uint32_t)w->b[at + 1] << 24 | (uint32_t)w->b[at + 2] << 16 |
                       (uint32_t)w->b[at + 3] << 8 | w->b[at + 4];
        if (w->b[at] == 'Z') {
            if (at + 6 > k)
                break; /* held back until its status byte comes */
            n++;
            *status = (char)w->b[at + 5];
        }
        at += 1 + len;
        *forward = at < k ? at : k;
    }
    return n;
}

static void cut_client_at(const struct bytes *w, size_t k, bool early)
{
    size_t forward;
    uint32_t want = client_requests_within(w, k, &forward);
    struct bytes head = {.n = k};
    memcpy(head.b, w->b, k);
    struct tx_run *r = run_open(early ? &head : NULL);
    if (early) {
        run_settle(r);
        run_forwarded(r, PEER_CLIENT, w, 0, forward);
    } else {
        run_send(r, PEER_CLIENT, w, 0, k, 0, forward);
    }
    expect(r, want, 'I', want == 0);
    run_send(r, PEER_CLIENT, w, k, w->n - k, forward, w->n);
    expect(r, 3, 'I', false);
    run_close(r);
}

static void test_client_cut_everywhere(void **state)
{
    struct bytes w = script("QSQ");
    for (size_t k = 0; k <= w.n; k++) {
        cut_client_at(&w, k, false);
        cut_client_at(&w, k, true);
    }
}

static void test_server_cut_everywhere(void **state)
{
    struct bytes w = script("CZTTDCZEZI");
    for (size_t k = 0; k <= w.n; k++) {
        struct tx_run *r = run_open(NULL);
        run_all(r, PEER_CLIENT, "QQQ");
        size_t forward;
        char status = 'I';
        uint32_t answered = server_answers_within(&w, k, &forward, &status);
        run_send(r, PEER_SERVER, &w, 0, k, 0, forward);
        expect(r, 3 - answered, status, answered == 3 && status == 'I');
        run_send(r, PEER_SERVER, &w, k, w.n - k, forward, w.n);
        expect(r, 0, 'I', true);
        run_close(r);
    }
}

/* Both sides at once, many messages per read, headers cut by odd write sizes. */
static void test_many_small_writes(void **state)
{
    struct bytes c = script("PBESPBESQPBDES"), s = script("12CZI12CZICZT12TDCZT");
    struct tx_run *r = run_open(NULL);
    for (size_t at = 0; at < c.n; at += 3) {
        size_t n = c.n - at < 3 ? c.n - at : 3;
        assert_int_equal(write(r->fd[PEER_CLIENT], c.b + at, n), (ssize_t)n);
        run_settle(r);
    }
    expect(r, 4, 'I', false);
    for (size_t at = 0; at < s.n; at += 2) {
        size_t n = s.n - at < 2 ? s.n - at : 2;
        assert_int_equal(write(r->fd[PEER_SERVER], s.b + at, n), (ssize_t)n);
        run_settle(r);
    }
    expect(r, 0, 'T', false);
    assert_int_equal(r->got[PEER_SERVER].n, c.n);
    assert_memory_equal(r->got[PEER_SERVER].b, c.b, c.n);
    assert_int_equal(r->got[PEER_CLIENT].n, s.n);
    assert_memory_equal(r->got[PEER_CLIENT].b, s.b, s.n);
    run_close(r);
}

static int group_setup(void **state)
{
    signal(SIGPIPE, SIG_IGN);
    log_set_level(LOG_WARNING);
    return rig_init(&rig);
}

static int group_teardown(void **state)
{
    rig_free(&rig);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_simple_query, close_failed_run),
        cmocka_unit_test_teardown(test_pipelined_queries, close_failed_run),
        cmocka_unit_test_teardown(test_extended_pipelined, close_failed_run),
        cmocka_unit_test_teardown(test_copy_in_copydone, close_failed_run),
        cmocka_unit_test_teardown(test_copy_in_copyfail, close_failed_run),
        cmocka_unit_test_teardown(test_client_fake_ready, close_failed_run),
        cmocka_unit_test_teardown(test_error_in_transaction, close_failed_run),
        cmocka_unit_test_teardown(test_client_cut_everywhere, close_failed_run),
        cmocka_unit_test_teardown(test_server_cut_everywhere, close_failed_run),
        cmocka_unit_test_teardown(test_many_small_writes, close_failed_run),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("relay_tx", tests, group_setup, group_teardown);
}
