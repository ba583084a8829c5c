/*
 * relay_harness.h
 *    What test_relay and fuzz_relay share to drive pgnear's relay over
 *    socketpairs: deterministic PostgreSQL v3 message streams, the test's
 *    own peers (plain or TLS, non-blocking, reading and writing in odd
 *    sizes and checking every byte they receive), a throwaway
 *    certificate, and a real session on a minimal worker whose endpoints
 *    sit on pgnear's ends of the socketpairs.
 *
 *    Everything runs on one thread and one event base: pgnear's events
 *    and the peers' events take turns in the same loop, so a run is
 *    deterministic for a given case and needs no locking (ThreadSanitizer
 *    has nothing to say about it).  A watchdog timer turns a stall into a
 *    failure that says who waits for what, instead of a hang.
 */
#ifndef PGNEAR_TESTS_RELAY_HARNESS_H
#define PGNEAR_TESTS_RELAY_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"
#include "routing/region.h"

/* ---- message streams ---- */

struct msg {
    uint8_t type;
    uint8_t bad; /* 0, or 1 + a length word below 4 that pgnear must refuse (no body) */
    uint32_t body_len;
};

/*
 * A v3 message stream as the list of its messages; the bytes are made on
 * demand.  Turns cut it for a conversation (relay_case.lockstep): the
 * client sends its turn i, the server its turn i once it has all of it,
 * the client its turn i + 1 once it has all of that.
 */
struct msg_script {
    struct msg *msgs;
    size_t count, cap;
    uint64_t bytes;  /* the whole stream, headers included */
    uint64_t *turns; /* where each turn ends (stream offsets, ascending) */
    size_t nturns, turns_cap;
};

/* 0, or -1 when out of memory. */
int script_add(struct msg_script *sc, uint8_t type, uint32_t body_len);
/* A header whose length word (0 .. 3) is invalid; 0, or -1 when out of memory. */
int script_add_bad(struct msg_script *sc, uint8_t type, uint8_t length_word);
/* Ends the current turn here; 0, or -1 when out of memory. */
int script_end_turn(struct msg_script *sc);
void script_free(struct msg_script *sc);

/*
 * A position in a script's bytes.  A body byte depends on its offset in
 * the stream and on the salt, so a lost, repeated, misplaced or
 * crossed-over piece never matches; a ReadyForQuery status is one of
 * 'I', 'T', 'E' as from a real server.
 */
struct msg_cursor {
    const struct msg_script *sc;
    uint64_t salt;
    size_t index;    /* the message the position is in */
    uint64_t pos;    /* bytes of that message before the position */
    uint64_t offset; /* bytes of the stream before the position */
};

void cursor_init(struct msg_cursor *c, const struct msg_script *sc, uint64_t salt);
/* At most n bytes from the position on, never past the end of the current message. */
size_t cursor_fill_msg(struct msg_cursor *c, uint8_t *p, size_t n);
/* At most n bytes from the position on; fewer where the stream ends. */
size_t cursor_fill(struct msg_cursor *c, uint8_t *p, size_t n);

/* ---- how peers chop their reads and writes ---- */

/* The largest single read or write a peer makes. */
#define PEER_CHOP_MAX (256 * 1024)
/* chop_next's answer for "skip this turn" (a nap of nap_us, then go on). */
#define CHOP_NAP 0

/*
 * Odd sizes from a seeded generator: mostly a few bytes to a few KB, so
 * that pgnear's sockets fill and its writes stop short, sometimes a whole
 * TLS record's worth or far more, and now and then a nap.
 */
struct chop {
    uint64_t rng;
    uint32_t min;        /* smallest size (a writer that sends in big pieces) */
    uint32_t max;        /* largest size, at most PEER_CHOP_MAX */
    uint8_t nap_per_256; /* chance of a nap, out of 256 */
};

size_t chop_next(struct chop *c);
uint64_t harness_rand(uint64_t *state);

/* ---- TLS ---- */

struct tls_kit {
    SSL_CTX *pgnear_client_side; /* pgnear accepting clients (tls_make_client_side_ctx) */
    SSL_CTX *pgnear_server_side; /* pgnear connecting to servers (tls_make_server_side_ctx) */
    SSL_CTX *peer_client;        /* the test's client */
    SSL_CTX *peer_server;        /* the test's server, with the same throwaway certificate */
};

/* A fresh P-256 key and self-signed certificate, and the four contexts. */
int tls_kit_init(struct tls_kit *k, char *err, size_t errcap);
void tls_kit_free(struct tls_kit *k);

/* ---- pgnear's side ---- */

/*
 * The parts of a daemon and a worker that session and relay code touch:
 * the event base, the relay block, the close queue, the session lists
 * and the client count.  A configuration of zeros (every timeout and
 * limit off); no listeners or cancel keys: entering ACTIVE and
 * session_close never need them for a session that registered none.
 */
struct relay_rig {
    struct shared shared;
    struct config *cfg; /* zeros: every timeout and limit off */
    struct worker w;
    struct region region;
    struct uring *ring; /* the worker's io_uring in the cases that ask for it (relay_case.ring) */
};

int rig_init(struct relay_rig *r);
void rig_free(struct relay_rig *r);
/*
 * A session as the login phases leave it, its client endpoint on cfd and
 * its server endpoint on sfd (non-blocking; ssl: a finished TLS
 * connection or NULL), in SERVER_LOGIN, ready for phase_enter(s,
 * PHASE_ACTIVE), which starts the relay.  Takes over the fds and
 * SSLs, also on failure (NULL).
 */
struct session *rig_session(struct relay_rig *r, int cfd, SSL *cssl, int sfd, SSL *sssl);
/* The session has not been freed yet (session_free lowers the client count). */
bool rig_session_alive(const struct relay_rig *r);

/* ---- one run: two peers, one session ---- */

enum { PEER_CLIENT, PEER_SERVER };

/* close_sent: a peer that never closes by itself (it waits for pgnear to close). */
#define PEER_NEVER_CLOSES UINT64_MAX
/* close_sent, close_got: the whole stream. */
#define PEER_ALL (UINT64_MAX - 1)

struct peer_plan {
    const struct msg_script *sends;
    struct chop reads, writes;
    int sndbuf; /* SO_SNDBUF of the peer's socket; 0: the default */
    /*
     * The peer closes once it has sent close_sent bytes (at most its
     * stream; it sends no more) and received close_got (at most the
     * other's), and with close_waits_other once the other peer has
     * everything too.  A plan must not wait for bytes that the other
     * holds back for its own close: that is a stall.
     */
    uint64_t close_sent, close_got;
    bool close_waits_other;
    size_t early; /* bytes of its stream already in pgnear's input as it starts */
};

struct relay_case {
    bool tls[2];       /* [PEER_CLIENT]: client side, [PEER_SERVER]: server side */
    bool tls12;        /* the peers offer TLS 1.2 only */
    bool ring;         /* pgnear's plain sockets send and receive through the worker's io_uring */
    bool ring_switch;  /* ... and receive through it and on readiness by turns, every few turns */
    int pgnear_sndbuf; /* SO_SNDBUF of pgnear's sockets; 0: the default */
    struct peer_plan peer[2];
    /*
     * exact: every byte sent arrives, each peer sees EOF only after its
     * whole stream (and the client a FATAL 08006 report first when
     * client_trailer).  Otherwise each peer must receive a prefix of the
     * other's stream, the client perhaps followed by one ErrorResponse
     * from pgnear at a message boundary: what a close allows.
     */
    bool exact;
    bool client_trailer;
    bool lockstep; /* a conversation in turns (see struct msg_script), not two free streams */
    int nap_us;
    int stall_ms;    /* no byte moved for this long: a stall */
    int deadline_ms; /* the whole run */
    uint64_t max_loops;
};

/* What a run saw of pgnear's side, so that a test can say its case was not vacuous. */
struct relay_stats {
    uint64_t loops;
    double seconds;
    size_t max_out[2]; /* most bytes pgnear had queued for the client, the server */
    bool paused[2];    /* pgnear stopped reading the client, the server (back-pressure) */
    uint64_t got[2];   /* bytes each peer received and checked */
    bool trailer_seen; /* the client received an ErrorResponse from pgnear itself */
};

/*
 * Runs one session to its end: 0 when every check held, -1 with why in
 * err (a wrong byte, an early or missing EOF, a stall, the deadline).
 */
int relay_run(struct relay_rig *r, const struct tls_kit *k, const struct relay_case *c,
              struct relay_stats *st, char *err, size_t errcap);

#endif
