/*
 * fuzz_relay.c
 *    libFuzzer target for the relay itself: protocol/stream.c,
 *    proxy/session/session.c and proxy/session/relay.c, driven through a real session
 *    between two peers over socketpairs (tests/unit/relay_harness.c).
 *    The input decides both message streams, plain or TLS on each side,
 *    socket buffer sizes, how the peers chop their reads and writes, a
 *    free exchange or a conversation in turns, bytes already read when the
 *    relay starts, and when each peer hangs up.  What arrives must be
 *    exactly a prefix of what was sent (the whole of it unless someone
 *    closed), the client's perhaps followed by one ErrorResponse of
 *    pgnear's own where a message starts; the session must end and be
 *    freed, and nothing may stall, leak or touch memory it should not.
 *
 *    Input: 8 bytes of settings, then 2 bytes per message:
 *      [0] bit 0 client TLS, bit 1 server TLS, bit 2 TLS 1.2, bit 3 in
 *          turns, bits 4-5 pgnear's SO_SNDBUF, bits 6-7 the peers'
 *      [1] [2] when the client, the server closes: 0 never; bit 7 set:
 *          once it sent its whole stream and received (bits 0-6)/127 of
 *          the other's; else once it sent (bits 0-6)/127 of its own
 *      [3] bits 0-2, 3-5: bytes already read from the client, the server
 *          (x 1499); bit 6, 7: the client, the server writes in pieces of
 *          64 KB and more
 *      [4..7] seed of the peers' read and write sizes; bit 7 of [7] also
 *          sends pgnear's plain sides through the worker's io_uring
 *      message: [a] bit 7 from the server, bit 6 ends a turn, bits 0-5 the
 *          type (63: a length word below 4, from the size byte);
 *          [b] the body size, 0 .. about 770 KB
 *    Each direction stops at 1 MiB or 2000 messages.  With no close
 *    planned and no bad length, every byte must arrive both ways.
 *    FUZZ_RELAY_VERBOSE=1 in the environment prints what each run saw.
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/base/log.h"
#include "tests/unit/relay_harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_BYTES (1u << 20)
#define FUZZ_MAX_MSGS  2000
#define FUZZ_SETTINGS  8

static struct tls_kit kit;
static struct relay_rig rig;

/* Frontend types, and backend types without 'E': an ErrorResponse is how pgnear's own reports are
 * told. */
static const char client_types[] = "QPBEDSHCFdcfXp";
static const char server_types[] = "ZDTC123NAGHWdcnstKRSVvI";

static void fail(const char *why)
{
    fprintf(stderr, "fuzz_relay: %s\n", why);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[256];
    signal(SIGPIPE, SIG_IGN); /* as pgnear's main does */
    log_set_level(LOG_FATAL);
    if (tls_kit_init(&kit, err, sizeof(err)) != 0)
        fail(err);
    if (rig_init(&rig) != 0)
        fail("could not make the worker");
    return 0;
}

/* From a few bytes to about 770 KB, small sizes most finely. */
static uint32_t body_size(uint8_t b)
{
    if (b < 160)
        return b;
    if (b < 224)
        return 160 + (uint32_t)(b - 160) * (uint32_t)(b - 160) * 40;
    return (uint32_t)(b - 223) * 24000;
}

/* Returns whether the message has a bad length word. */
static bool add_message(struct msg_script *sc, bool server, uint8_t a, uint8_t b)
{
    const char *types = server ? server_types : client_types;
    uint8_t sel = a & 63;
    uint8_t type = (uint8_t)types[sel % (strlen(types))];
    int rc = sel == 63 ? script_add_bad(sc, type, b & 3) : script_add(sc, type, body_size(b));
    if (rc == 0 && (a & 64))
        rc = script_end_turn(sc);
    if (rc != 0)
        fail("out of memory");
    return sel == 63;
}

/* Returns whether a message has a bad length word (pgnear ends the session there). */
static bool build_streams(struct msg_script sc[2], const uint8_t *p, size_t n)
{
    bool bad = false;
    for (size_t i = 0; i + 1 < n; i += 2) {
        bool server = p[i] & 128;
        struct msg_script *s = &sc[server ? PEER_SERVER : PEER_CLIENT];
        if (s->bytes < FUZZ_MAX_BYTES && s->count < FUZZ_MAX_MSGS)
            bad |= add_message(s, server, p[i], p[i + 1]);
    }
    return bad;
}

static int sndbuf_size(unsigned sel)
{
    static const int sizes[4] = {0, 4608, 16384, 65536};
    return sizes[sel & 3];
}

/*
 * 0: never.  Else once a share of its own stream is out, or once all of
 * it is out and a share of the other's is in; never a share of both,
 * which could wait for bytes the other holds back for its own close.
 */
static void close_plan(struct peer_plan *pp, uint8_t b, uint64_t mine, uint64_t theirs)
{
    if (b == 0)
        return;
    if (b & 128) {
        pp->close_sent = PEER_ALL;
        pp->close_got = theirs * (b & 127) / 127;
    } else {
        pp->close_sent = mine * (b & 127) / 127;
        pp->close_got = 0;
    }
}

static void peer_settings(struct peer_plan *pp, const struct msg_script *sends, uint64_t seed,
                          bool big_writes)
{
    pp->sends = sends;
    pp->reads = (struct chop){.rng = seed, .max = 70000, .nap_per_256 = 8};
    pp->writes = (struct chop){
        .rng = seed * 3 + 1, .min = big_writes ? 65536 : 1, .max = PEER_CHOP_MAX, .nap_per_256 = 4};
    pp->close_sent = PEER_NEVER_CLOSES;
}

static void build_case(struct relay_case *c, const struct msg_script sc[2], const uint8_t *s,
                       bool bad)
{
    uint64_t seed =
        (uint64_t)s[4] | (uint64_t)s[5] << 8 | (uint64_t)s[6] << 16 | (uint64_t)s[7] << 24;
    memset(c, 0, sizeof(*c));
    c->tls[PEER_CLIENT] = s[0] & 1;
    c->tls[PEER_SERVER] = s[0] & 2;
    c->tls12 = s[0] & 4;
    c->lockstep = s[0] & 8;
    c->ring = s[7] & 0x80;
    c->pgnear_sndbuf = sndbuf_size(s[0] >> 4);
    for (int who = 0; who < 2; who++) {
        struct peer_plan *pp = &c->peer[who];
        peer_settings(pp, &sc[who], seed * 2 + (uint64_t)who, s[3] & (64 << who));
        pp->sndbuf = sndbuf_size(s[0] >> 6);
        pp->early = (size_t)((s[3] >> (3 * who)) & 7) * 1499;
        close_plan(pp, s[1 + who], sc[who].bytes, sc[1 - who].bytes);
    }
    /*
     * Someone must end it: with no plan, the client leaves once everything
     * arrived; and then everything must arrive, unless pgnear refused a
     * bad length.
     */
    if (c->peer[PEER_CLIENT].close_sent == PEER_NEVER_CLOSES &&
        c->peer[PEER_SERVER].close_sent == PEER_NEVER_CLOSES) {
        c->peer[PEER_CLIENT].close_sent = c->peer[PEER_CLIENT].close_got = PEER_ALL;
        c->peer[PEER_CLIENT].close_waits_other = true;
        c->exact = !bad;
    }
    c->nap_us = 0; /* a nap skips a loop turn */
    c->stall_ms = 2000;
    c->deadline_ms = 30000;
    c->max_loops = 2000000;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_SETTINGS)
        return 0;
    struct msg_script sc[2];
    memset(sc, 0, sizeof(sc));
    bool bad = build_streams(sc, data + FUZZ_SETTINGS, size - FUZZ_SETTINGS);
    struct relay_case c;
    build_case(&c, sc, data, bad);
    struct relay_stats st;
    char err[1024];
    /* A run ends only once both peers are done and the session was freed. */
    if (relay_run(&rig, &kit, &c, &st, err, sizeof(err)) != 0)
        fail(err);
    if (getenv("FUZZ_RELAY_VERBOSE") != NULL)
        fprintf(stderr,
                "fuzz_relay: client got %llu of %llu bytes%s, server %llu of %llu; %.3f s, %llu "
                "loop turns, most queued %zu / %zu\n",
                (unsigned long long)st.got[PEER_CLIENT], (unsigned long long)sc[PEER_SERVER].bytes,
                st.trailer_seen ? " and a report" : "", (unsigned long long)st.got[PEER_SERVER],
                (unsigned long long)sc[PEER_CLIENT].bytes, st.seconds, (unsigned long long)st.loops,
                st.max_out[PEER_CLIENT], st.max_out[PEER_SERVER]);
    script_free(&sc[PEER_CLIENT]);
    script_free(&sc[PEER_SERVER]);
    return 0;
}
