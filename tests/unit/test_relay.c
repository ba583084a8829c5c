/*
 * test_relay.c
 *    Unit tests of the stream and relay layers (protocol/stream.c,
 *    proxy/session/session.c, proxy/session/relay.c) over socketpairs, for every
 *    combination of client plain/TLS and server plain/TLS (cmocka, TAP).
 *
 *    A real session relays between two of the test's peers that read
 *    slowly and in odd sizes, so that pgnear's sockets fill and its writes
 *    (TLS ones included) stop short; both directions carry streams at
 *    once: multi-megabyte messages, thousands of small pipelined ones,
 *    and everything between.  Every byte is checked where it arrives, each
 *    run ends with a close from one side that must reach the other side
 *    after the whole stream, and a stall fails with who waits for what.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "proxy/base/log.h"
#include "tests/unit/relay_harness.h"

static struct tls_kit kit;
static struct relay_rig rig;

/* ---- the streams ---- */

struct stream_spec {
    const char *types;  /* message types, picked in turn at random */
    uint64_t bytes;     /* stop once the stream is this long */
    uint32_t small_max; /* most bodies: 0 .. small_max bytes */
    uint32_t big_max;   /* big_per_256 of them: small_max .. big_max bytes */
    unsigned big_per_256;
    uint8_t last; /* a last message of this type, or 0 */
};

static void build_stream(struct msg_script *sc, const struct stream_spec *sp, uint64_t seed)
{
    size_t ntypes = strlen(sp->types);
    memset(sc, 0, sizeof(*sc));
    while (sc->bytes < sp->bytes) {
        uint64_t r = harness_rand(&seed);
        uint8_t type = (uint8_t)sp->types[r % ntypes];
        uint32_t body;
        if ((r >> 16) % 256 < sp->big_per_256)
            body = sp->small_max + (uint32_t)((r >> 24) % (sp->big_max - sp->small_max + 1));
        else
            body = (uint32_t)((r >> 24) % (sp->small_max + 1));
        /* A ReadyForQuery has its one status byte: the relay waits for it. */
        assert_int_equal(script_add(sc, type, type == 'Z' ? 1 : body), 0);
    }
    if (sp->last)
        assert_int_equal(script_add(sc, sp->last, sp->last == 'X' ? 0 : 60), 0);
}

/* ---- the cases ---- */

/* Slow, odd-sized reads: pgnear's output backs up; writes from a few bytes to 256 KB. */
static struct peer_plan slow_peer(const struct msg_script *sends, uint64_t seed)
{
    struct peer_plan p = {
        .sends = sends,
        .reads = {.rng = seed, .max = 70000, .nap_per_256 = 3},
        .writes = {.rng = seed ^ 0x5555, .max = PEER_CHOP_MAX, .nap_per_256 = 2},
        .close_sent = PEER_NEVER_CLOSES,
    };
    return p;
}

static void closes_after_all(struct peer_plan *p, bool waits_other)
{
    p->close_sent = PEER_ALL;
    p->close_got = PEER_ALL;
    p->close_waits_other = waits_other;
}

static struct relay_case base_case(const bool *sides, const struct msg_script *from_client,
                                   const struct msg_script *from_server, uint64_t seed)
{
    struct relay_case c = {
        .tls = {sides[0], sides[1]},
        .ring = sides[2],
        .ring_switch = sides[3],
        .peer = {slow_peer(from_client, seed), slow_peer(from_server, seed * 31 + 7)},
        .exact = true,
        .nap_us = 300,
        .stall_ms = 3000,
        .deadline_ms = 20000,
        .max_loops = 5000000,
    };
    return c;
}

static const char *sides_name(const struct relay_case *c)
{
    static const char *names[8] = {"plain/plain",     "TLS/plain",         "plain/TLS",
                                   "TLS/TLS",         "plain/plain, ring", "TLS/plain, ring",
                                   "plain/TLS, ring", "TLS/TLS, ring"};
    if (c->ring_switch)
        return "plain/plain, ring, receives switched";
    return names[(c->tls[0] ? 1 : 0) + (c->tls[1] ? 2 : 0) + (c->ring ? 4 : 0)];
}

static void run_case(const char *what, const struct relay_case *c, struct relay_stats *st)
{
    char err[1024];
    int rc = relay_run(&rig, &kit, c, st, err, sizeof(err));
    printf("# %s, client/server %s: %llu + %llu bytes in %.2f s, %llu loop turns; most queued "
           "for the client %zu, for the server %zu;%s%s%s\n",
           what, sides_name(c), (unsigned long long)st->got[0], (unsigned long long)st->got[1],
           st->seconds, (unsigned long long)st->loops, st->max_out[0], st->max_out[1],
           st->paused[0] ? " client paused" : "", st->paused[1] ? " server paused" : "",
           st->trailer_seen ? " report seen" : "");
    if (rc != 0)
        fail_msg("%s, client/server %s: %s", what, sides_name(c), err);
    assert_false(rig_session_alive(&rig));
}

/*
 * Multi-megabyte rows one way and COPY data the other, on small socket
 * buffers: every big message leaves pgnear with bytes it could not write
 * yet, TLS records included.  The server ends with an ErrorResponse and
 * closes at once, with bytes still queued for the client: they must all
 * reach it before its EOF.
 */
static void test_bulk(void **state)
{
    const bool *sides = *state;
    struct stream_spec to_server = {"dddddddddcfS", 3u << 20, 300, 1500000, 80, 'c'};
    struct stream_spec to_client = {"DDDDDDDDDDTCZ", 4u << 20, 400, 2500000, 60, 'E'};
    struct msg_script cs, ss;
    build_stream(&cs, &to_server, 11);
    build_stream(&ss, &to_client, 12);
    struct relay_case c = base_case(sides, &cs, &ss, 101);
    c.pgnear_sndbuf = 4096;
    closes_after_all(&c.peer[PEER_SERVER], false);
    struct relay_stats st;
    run_case("bulk", &c, &st);
    /* Not vacuous: pgnear's writes to both sides stopped short and reading paused. */
    assert_true(st.max_out[PEER_CLIENT] > 0 && st.max_out[PEER_SERVER] > 0);
    assert_true(st.paused[PEER_CLIENT] || st.paused[PEER_SERVER]);
    script_free(&cs);
    script_free(&ss);
}

/*
 * Thousands of small messages pipelined both ways (Parse/Bind/Execute/
 * Sync against ParseComplete/BindComplete/DataRow/CommandComplete/
 * ReadyForQuery): headers cut anywhere by odd reads.  The client closes
 * once everything arrived; the server must see EOF.
 */
static void test_pipelined(void **state)
{
    const bool *sides = *state;
    struct stream_spec to_server = {"PBDES", 700000, 90, 90, 0, 0};
    struct stream_spec to_client = {"12DDCZ", 900000, 120, 120, 0, 0};
    struct msg_script cs, ss;
    build_stream(&cs, &to_server, 21);
    build_stream(&ss, &to_client, 22);
    struct relay_case c = base_case(sides, &cs, &ss, 202);
    c.peer[PEER_CLIENT].sndbuf = c.peer[PEER_SERVER].sndbuf = 4096;
    c.pgnear_sndbuf = 8192;
    closes_after_all(&c.peer[PEER_CLIENT], true);
    struct relay_stats st;
    run_case("pipelined", &c, &st);
    assert_true(st.max_out[PEER_CLIENT] > 0 || st.max_out[PEER_SERVER] > 0);
    script_free(&cs);
    script_free(&ss);
}

/*
 * Sizes from nothing to 300 KB, bytes of both streams already read by
 * pgnear when the relay starts (pipelined behind the login), default
 * socket buffers.  The server closes after a message that explains
 * nothing: the client gets the whole stream, then pgnear's 08006 report.
 */
static void test_mixed(void **state)
{
    const bool *sides = *state;
    struct stream_spec to_server = {"QdPBESHCFdd", 2500000, 3000, 300000, 30, 0};
    struct stream_spec to_client = {"DDTCZNAdGH", 3000000, 5000, 300000, 30, 'Z'};
    struct msg_script cs, ss;
    build_stream(&cs, &to_server, 31);
    build_stream(&ss, &to_client, 32);
    struct relay_case c = base_case(sides, &cs, &ss, 303);
    c.peer[PEER_CLIENT].early = 3001;
    c.peer[PEER_SERVER].early = 777;
    c.client_trailer = true;
    closes_after_all(&c.peer[PEER_SERVER], false);
    struct relay_stats st;
    run_case("mixed", &c, &st);
    assert_true(st.trailer_seen);
    script_free(&cs);
    script_free(&ss);
}

/*
 * TLS 1.2 where TLS is used; the client's stream ends with Terminate and
 * the server hangs up after it, which pgnear takes as the normal end.
 */
static void test_terminate(void **state)
{
    const bool *sides = *state;
    struct stream_spec to_server = {"QQdPBES", 1200000, 2000, 200000, 20, 'X'};
    struct stream_spec to_client = {"TDDDDCZ", 1500000, 2000, 200000, 20, 'Z'};
    struct msg_script cs, ss;
    build_stream(&cs, &to_server, 41);
    build_stream(&ss, &to_client, 42);
    struct relay_case c = base_case(sides, &cs, &ss, 404);
    c.tls12 = true;
    c.pgnear_sndbuf = 16384;
    closes_after_all(&c.peer[PEER_SERVER], true);
    struct relay_stats st;
    run_case("terminate", &c, &st);
    script_free(&cs);
    script_free(&ss);
}

/* A message of each type in turn, bodies from 0 to max (a ReadyForQuery: its status). */
static void add_messages(struct msg_script *sc, const char *types, uint32_t max, uint64_t *rng)
{
    for (const char *t = types; *t; t++) {
        uint32_t body = *t == 'Z' ? 1 : (uint32_t)(harness_rand(rng) % (max + 1u));
        assert_int_equal(script_add(sc, (uint8_t)*t, body), 0);
    }
}

/* A result set of about bytes: many small rows and now and then a big one. */
static void add_rows(struct msg_script *sc, uint64_t bytes, uint64_t *rng)
{
    uint64_t end = sc->bytes + bytes;
    add_messages(sc, "T", 200, rng);
    while (sc->bytes < end) {
        uint64_t r = harness_rand(rng);
        uint32_t body =
            r % 8 == 0 ? 16000 + (uint32_t)((r >> 8) % 700000) : (uint32_t)((r >> 8) % 300);
        assert_int_equal(script_add(sc, 'D', body), 0);
    }
    add_messages(sc, "CZ", 20, rng);
}

/*
 * A conversation: the client's turns are queries (with copy_in, COPY
 * data of up to a megabyte), the server's turns their answers (result
 * sets of up to a megabyte, or a short reply to COPY); the client ends
 * with Terminate.
 */
static void build_conversation(struct msg_script *cs, struct msg_script *ss, int nturns,
                               bool copy_in, uint64_t seed)
{
    memset(cs, 0, sizeof(*cs));
    memset(ss, 0, sizeof(*ss));
    for (int t = 0; t < nturns; t++) {
        if (copy_in) {
            add_messages(cs, "Q", 80, &seed);
            /* Some turns end within a TLS record or two, others far beyond. */
            uint64_t r = harness_rand(&seed);
            uint64_t end = cs->bytes + (r % 3 == 0 ? (r >> 8) % 40000 : (r >> 8) % 1200000);
            while (cs->bytes < end)
                add_messages(cs, "d", 1 + (uint32_t)(harness_rand(&seed) % 300000), &seed);
            add_messages(cs, "c", 0, &seed);
            add_messages(ss, "GCZ", 20, &seed);
        } else {
            add_messages(cs, t % 2 ? "Q" : "PBDES", 400, &seed);
            /* Some answers end within a few TLS records, others far beyond. */
            uint64_t r = harness_rand(&seed);
            add_rows(ss, r % 3 == 0 ? (r >> 8) % 60000 : (r >> 8) % 1000000, &seed);
        }
        assert_int_equal(script_end_turn(cs), 0);
        assert_int_equal(script_end_turn(ss), 0);
    }
    add_messages(cs, "X", 0, &seed);
}

/*
 * Queries and their answers in turns, as real clients talk: each answer
 * starts on an idle connection and ends with nothing more coming until
 * the client has all of it.  A relay that leaves the tail of an answer
 * queued with no event armed to write it stalls here (pgnear did, with
 * TLS on one side only, before the stream layer kept separate waits for
 * reads and writes).  The client closes once it has everything.
 */
static void test_conversation(void **state)
{
    const bool *sides = *state;
    struct msg_script cs, ss;
    build_conversation(&cs, &ss, 12, false, 51);
    struct relay_case c = base_case(sides, &cs, &ss, 505);
    c.lockstep = true;
    /* Whole turns in few writes: pgnear reads far more than one TLS record at once. */
    c.peer[PEER_SERVER].writes.min = 65536;
    closes_after_all(&c.peer[PEER_CLIENT], true);
    struct relay_stats st;
    run_case("conversation", &c, &st);
    script_free(&cs);
    script_free(&ss);
}

/* The same the other way: COPY data from the client, from nothing to a megabyte a turn. */
static void test_copy_in(void **state)
{
    const bool *sides = *state;
    struct msg_script cs, ss;
    build_conversation(&cs, &ss, 10, true, 61);
    struct relay_case c = base_case(sides, &cs, &ss, 606);
    c.lockstep = true;
    c.peer[PEER_CLIENT].writes.min = 65536;
    closes_after_all(&c.peer[PEER_CLIENT], true);
    struct relay_stats st;
    run_case("copy in", &c, &st);
    script_free(&cs);
    script_free(&ss);
}

/*
 * A broken server's ReadyForQuery without its status byte (length 4) at
 * the end of each answer: nothing follows it until the client asks
 * again, so a relay that held it back waiting for the status would stall.
 */
static void test_empty_ready(void **state)
{
    struct msg_script cs, ss;
    memset(&cs, 0, sizeof(cs));
    memset(&ss, 0, sizeof(ss));
    for (int t = 0; t < 3; t++) {
        assert_int_equal(script_add(&cs, 'Q', 30), 0);
        assert_int_equal(script_end_turn(&cs), 0);
        assert_int_equal(script_add(&ss, 'C', 13), 0);
        assert_int_equal(script_add(&ss, 'Z', 0), 0);
        assert_int_equal(script_end_turn(&ss), 0);
    }
    struct relay_case c = base_case(*state, &cs, &ss, 808);
    c.lockstep = true;
    closes_after_all(&c.peer[PEER_CLIENT], true);
    struct relay_stats st;
    run_case("empty ReadyForQuery", &c, &st);
    script_free(&cs);
    script_free(&ss);
}

/*
 * The client sends a length word below 4 while the server's stream is at
 * server_early bytes (read before the relay began, so the moment is
 * exact): pgnear stops with 08P01.  What came before reaches the client,
 * and the report only where a message starts: in the middle of a row the
 * client would take it for the rest of the row.
 */
static void run_bad_length(const bool *sides, size_t server_early, struct relay_stats *st)
{
    struct msg_script cs, ss;
    memset(&cs, 0, sizeof(cs));
    memset(&ss, 0, sizeof(ss));
    assert_int_equal(script_add_bad(&cs, 'Q', 2), 0);
    assert_int_equal(script_add(&ss, 'T', 30), 0);
    assert_int_equal(script_add(&ss, 'D', 768000), 0);
    assert_int_equal(script_add(&ss, 'Z', 1), 0);
    struct relay_case c = base_case(sides, &cs, &ss, 707);
    c.exact = false; /* a prefix each way, the client's perhaps with a report */
    c.peer[PEER_CLIENT].early = 5;
    c.peer[PEER_SERVER].early = server_early;
    run_case(server_early == 35 ? "bad length between messages" : "bad length mid-row", &c, st);
    assert_int_equal(st->got[PEER_CLIENT], server_early);
    assert_int_equal(st->got[PEER_SERVER], 0);
    script_free(&cs);
    script_free(&ss);
}

static void test_bad_length_between_messages(void **state)
{
    struct relay_stats st;
    run_bad_length(*state, 35, &st); /* the whole RowDescription */
    assert_true(st.trailer_seen);
}

static void test_bad_length_mid_row(void **state)
{
    struct relay_stats st;
    run_bad_length(*state, 1499, &st);
    assert_false(st.trailer_seen);
}

static int group_setup(void **state)
{
    char err[256];
    signal(SIGPIPE, SIG_IGN); /* as pgnear's main does: writev to a closed peer */
    log_set_level(LOG_WARNING);
    if (tls_kit_init(&kit, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    return rig_init(&rig);
}

static int group_teardown(void **state)
{
    rig_free(&rig);
    tls_kit_free(&kit);
    return 0;
}

/*
 * Client TLS, server TLS, and the plain sides sending and receiving
 * through the worker's io_uring; the last: receiving through it and on
 * their readiness by turns.
 */
static bool sides[8][4] = {{false, false, false, false}, {true, false, false, false},
                           {false, true, false, false},  {true, true, false, false},
                           {false, false, true, false},  {true, false, true, false},
                           {false, true, true, false},   {false, false, true, true}};

#define FOR_ALL_SIDES(name, fn)                                                                    \
    {name ", client plain, server plain", fn, NULL, NULL, sides[0]},                               \
        {name ", client TLS, server plain", fn, NULL, NULL, sides[1]},                             \
        {name ", client plain, server TLS", fn, NULL, NULL, sides[2]},                             \
        {name ", client TLS, server TLS", fn, NULL, NULL, sides[3]},                               \
        {name ", client plain, server plain, io_uring", fn, NULL, NULL, sides[4]},                 \
        {name ", client TLS, server plain, io_uring", fn, NULL, NULL, sides[5]},                   \
        {name ", client plain, server TLS, io_uring", fn, NULL, NULL, sides[6]},                   \
    {                                                                                              \
        name ", client plain, server plain, io_uring, receives switched", fn, NULL, NULL, sides[7] \
    }

int main(void)
{
    const struct CMUnitTest tests[] = {
        FOR_ALL_SIDES("bulk", test_bulk),
        FOR_ALL_SIDES("pipelined", test_pipelined),
        FOR_ALL_SIDES("mixed", test_mixed),
        FOR_ALL_SIDES("terminate", test_terminate),
        FOR_ALL_SIDES("conversation", test_conversation),
        FOR_ALL_SIDES("copy in", test_copy_in),
        FOR_ALL_SIDES("empty ReadyForQuery", test_empty_ready),
        FOR_ALL_SIDES("bad length between messages", test_bad_length_between_messages),
        FOR_ALL_SIDES("bad length mid-row", test_bad_length_mid_row),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("relay", tests, group_setup, group_teardown);
}
