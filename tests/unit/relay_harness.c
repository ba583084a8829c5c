/*
 * relay_harness.c
 *    Message streams, peers, TLS kit, the minimal worker and the run loop
 *    that test_relay and fuzz_relay drive pgnear's relay with (see
 *    relay_harness.h).
 */
#include "tests/unit/relay_harness.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "protocol/stream.h"
#include "protocol/tls.h"
#include "proxy/base/config.h"
#include "proxy/base/list.h"
#include "proxy/login/flow.h"
#include "proxy/runtime/uring.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "routing/registry.h"

/* ---- message streams ---- */

static int script_push(struct msg_script *sc, struct msg m)
{
    if (sc->count == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 64;
        struct msg *grown = realloc(sc->msgs, cap * sizeof(*grown));
        if (grown == NULL)
            return -1;
        sc->msgs = grown;
        sc->cap = cap;
    }
    sc->msgs[sc->count++] = m;
    sc->bytes += 5 + (uint64_t)m.body_len;
    return 0;
}

int script_add(struct msg_script *sc, uint8_t type, uint32_t body_len)
{
    return script_push(sc, (struct msg){.type = type, .body_len = body_len});
}

int script_add_bad(struct msg_script *sc, uint8_t type, uint8_t length_word)
{
    return script_push(sc, (struct msg){.type = type, .bad = (uint8_t)(1 + (length_word & 3))});
}

int script_end_turn(struct msg_script *sc)
{
    if (sc->nturns == sc->turns_cap) {
        size_t cap = sc->turns_cap ? sc->turns_cap * 2 : 16;
        uint64_t *t = realloc(sc->turns, cap * sizeof(*t));
        if (t == NULL)
            return -1;
        sc->turns = t;
        sc->turns_cap = cap;
    }
    sc->turns[sc->nturns++] = sc->bytes;
    return 0;
}

void script_free(struct msg_script *sc)
{
    free(sc->msgs);
    free(sc->turns);
    memset(sc, 0, sizeof(*sc));
}

void cursor_init(struct msg_cursor *c, const struct msg_script *sc, uint64_t salt)
{
    memset(c, 0, sizeof(*c));
    c->sc = sc;
    c->salt = salt * 0xD1B54A32D192ED03ull;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

static uint8_t header_byte(const struct msg *m, uint64_t at)
{
    if (at == 0)
        return m->type;
    uint32_t word = m->bad ? m->bad - 1u : m->body_len + 4u;
    return (uint8_t)(word >> (8 * (4 - at)));
}

/* Bytes [at, at + k) of message m (at >= 5: its body), the first at stream offset c->offset. */
static void body_bytes(const struct msg_cursor *c, const struct msg *m, uint64_t at, uint8_t *p,
                       size_t k)
{
    uint64_t off = c->offset;
    for (size_t i = 0; i < k; i++, at++, off++) {
        uint64_t h = mix64(off ^ c->salt);
        p[i] = (m->type == 'Z' && at == 5) ? (uint8_t) "ITE"[h % 3] : (uint8_t)(h >> 24);
    }
}

size_t cursor_fill_msg(struct msg_cursor *c, uint8_t *p, size_t n)
{
    if (c->index >= c->sc->count)
        return 0;
    const struct msg *m = &c->sc->msgs[c->index];
    uint64_t whole = 5 + (uint64_t)m->body_len;
    size_t k = whole - c->pos < n ? (size_t)(whole - c->pos) : n;
    size_t h = 0;
    for (; h < k && c->pos + h < 5; h++)
        p[h] = header_byte(m, c->pos + h);
    c->offset += h;
    body_bytes(c, m, c->pos + h, p + h, k - h);
    c->offset += k - h;
    c->pos += k;
    if (c->pos == whole) {
        c->index++;
        c->pos = 0;
    }
    return k;
}

size_t cursor_fill(struct msg_cursor *c, uint8_t *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        size_t k = cursor_fill_msg(c, p + done, n - done);
        if (k == 0)
            break;
        done += k;
    }
    return done;
}

/* ---- chopping ---- */

uint64_t harness_rand(uint64_t *state)
{
    *state += 0x9E3779B97F4A7C15ull;
    return mix64(*state);
}

size_t chop_next(struct chop *c)
{
    uint64_t r = harness_rand(&c->rng);
    if ((r & 0xff) < c->nap_per_256)
        return CHOP_NAP;
    uint64_t v = r >> 11;
    size_t max = c->max ? c->max : PEER_CHOP_MAX;
    size_t size;
    switch ((r >> 8) & 7) {
    case 0:
    case 1:
        size = 1 + v % 16; /* a few bytes: headers cut anywhere */
        break;
    case 2:
    case 3:
    case 4:
        size = 1 + v % 1500;
        break;
    case 5:
    case 6:
        size = 1 + v % 17000; /* around one TLS record */
        break;
    default:
        size = 1 + v % max;
        break;
    }
    if (size < c->min)
        size = c->min;
    return size < max ? size : max;
}

/* ---- TLS ---- */

static void tls_err(char *err, size_t errcap, const char *what)
{
    char buf[200];
    ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
    snprintf(err, errcap, "%s: %s", what, buf);
    ERR_clear_error();
}

/* A self-signed certificate for key, good for a day. */
static X509 *tls_self_signed(EVP_PKEY *key)
{
    X509 *x = X509_new();
    if (x == NULL)
        return NULL;
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_set_version(x, 2) != 1 || ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), 86400) == NULL || X509_set_pubkey(x, key) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   (const unsigned char *)"pgnear-relay-test", -1, -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_sign(x, key, EVP_sha256()) <= 0) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes the PEM of cert (key NULL) or key into a fresh temporary file named in path. */
static int tls_write_pem(char *path, size_t cap, X509 *cert, EVP_PKEY *key)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, cap, "%s/pgnear-relay-XXXXXX", dir && dir[0] ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        unlink(path);
        return -1;
    }
    int ok =
        key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) : PEM_write_X509(f, cert);
    if (fclose(f) != 0 || ok != 1) {
        unlink(path);
        return -1;
    }
    return 0;
}

/*
 * pgnear's contexts are made by its own code from files, as in
 * production (TLS 1.2 minimum, partial writes, moving write buffers).
 */
static int tls_kit_pgnear(struct tls_kit *k, X509 *cert, EVP_PKEY *key, char *err, size_t errcap)
{
    char cpath[256], kpath[256];
    if (tls_write_pem(cpath, sizeof(cpath), cert, NULL) != 0) {
        snprintf(err, errcap, "could not write a certificate file: %s", strerror(errno));
        return -1;
    }
    if (tls_write_pem(kpath, sizeof(kpath), NULL, key) != 0) {
        snprintf(err, errcap, "could not write a key file: %s", strerror(errno));
        unlink(cpath);
        return -1;
    }
    k->pgnear_client_side = tls_make_client_side_ctx(cpath, kpath, err, errcap);
    unlink(cpath);
    unlink(kpath);
    if (k->pgnear_client_side == NULL)
        return -1;
    k->pgnear_server_side =
        tls_make_server_side_ctx(TLS_SERVER_REQUIRE, NULL, NULL, NULL, err, errcap);
    return k->pgnear_server_side ? 0 : -1;
}

/*
 * The peers write with partial writes like pgnear, and take an EOF
 * without close_notify as an EOF: pgnear's close_notify is one try on a
 * socket that may be full.
 */
static SSL_CTX *tls_peer_ctx(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}

static int tls_kit_peers(struct tls_kit *k, X509 *cert, EVP_PKEY *key, char *err, size_t errcap)
{
    k->peer_client = tls_peer_ctx(TLS_client_method());
    k->peer_server = tls_peer_ctx(TLS_server_method());
    if (k->peer_client == NULL || k->peer_server == NULL ||
        SSL_CTX_use_certificate(k->peer_server, cert) != 1 ||
        SSL_CTX_use_PrivateKey(k->peer_server, key) != 1) {
        tls_err(err, errcap, "could not make the peers' TLS contexts");
        return -1;
    }
    return 0;
}

int tls_kit_init(struct tls_kit *k, char *err, size_t errcap)
{
    memset(k, 0, sizeof(*k));
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *cert = key ? tls_self_signed(key) : NULL;
    int rc = -1;
    if (cert == NULL)
        tls_err(err, errcap, "could not make a throwaway certificate");
    else if (tls_kit_pgnear(k, cert, key, err, errcap) == 0)
        rc = tls_kit_peers(k, cert, key, err, errcap);
    X509_free(cert);
    EVP_PKEY_free(key);
    if (rc != 0)
        tls_kit_free(k);
    return rc;
}

void tls_kit_free(struct tls_kit *k)
{
    SSL_CTX_free(k->pgnear_client_side);
    SSL_CTX_free(k->pgnear_server_side);
    SSL_CTX_free(k->peer_client);
    SSL_CTX_free(k->peer_server);
    memset(k, 0, sizeof(*k));
}

/* ---- pgnear's side ---- */

static char rig_region_name[] = "relay-test";
static char rig_host_name[] = "relay-test-server";
/* What the daemon's registry holds for the region and its host: enabled, not paused, not held, up.
 */
static struct registry_region rig_region_state = {.name = rig_region_name,
                                                  .admin_state = REGION_ENABLED};
static struct registry_host rig_host_state = {
    .name = rig_host_name, .port = 5432, .health = {.up = true}};

int rig_init(struct relay_rig *r)
{
    memset(r, 0, sizeof(*r));
    r->shared.nworkers = 1;
    r->w.shared = &r->shared;
    r->cfg = calloc(1, sizeof(*r->cfg));
    if (r->cfg == NULL)
        return -1;
    r->w.cfg = r->cfg;
    r->shared.flow = &login_flow;
    slab_init(&r->w.sessions);
    slab_init(&r->w.logins);
    list_init(&r->w.login_sessions);
    list_init(&r->w.waiting_sessions);
    list_init(&r->w.server_waiters);
    list_init(&r->w.active_sessions);
    list_init(&r->w.admin_sessions);
    list_init(&r->w.login_servers);
    list_init(&r->w.active_servers);
    list_init(&r->w.used_servers);
    list_init(&r->w.idle_servers);
    list_init(&r->w.cancel_conns);
    /* session_server_gone names the region and host in its report. */
    r->region.name = rig_region_name;
    r->region.runtime = &rig_region_state;
    r->region.hosts[0].runtime = &rig_host_state;
    r->region.nhosts = 1;
    r->region.hosts[0].name = rig_host_name;
    r->region.hosts[0].port = 5432;
    r->region.hosts[0].region = &r->region;
    r->w.base = event_base_new();
    r->w.relay_block = malloc(RELAY_BLOCK_SIZE);
    linger_init(&r->w.lingering, r->w.base); /* a client's socket after a FATAL, as in production */
    /* Server sockets of ended sessions close at the worker's pace, as in production. */
    if (r->w.base == NULL || r->w.relay_block == NULL ||
        close_queue_init(&r->w.closing, r->w.base, CLOSE_QUEUE_CAP) != 0) {
        rig_free(r);
        return -1;
    }
    /* A kernel without io_uring fails the rig: the ring's cases must not pass unrun. */
    char err[160];
    r->ring = uring_new(r->w.base, err, sizeof(err));
    if (r->ring == NULL || uring_begin(r->ring) != 0) {
        fprintf(stderr, "rig: no io_uring: %s\n", r->ring == NULL ? err : "not enabled");
        rig_free(r);
        return -1;
    }
    return 0;
}

void rig_free(struct relay_rig *r)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &r->w.login_sessions)
        session_close(list_entry(pos, struct session, node), "test over");
    list_for_each_safe(pos, tmp, &r->w.active_sessions)
        session_close(list_entry(pos, struct session, node), "test over");
    close_queue_free(&r->w.closing);
    linger_free(&r->w.lingering);
    slab_destroy(&r->w.sessions);
    slab_destroy(&r->w.logins);
    uring_free(r->ring);
    r->ring = NULL;
    r->w.uring = NULL;
    if (r->w.base)
        event_base_free(r->w.base);
    free(r->cfg);
    r->cfg = NULL;
    free(r->w.relay_block);
    r->w.base = NULL;
    r->w.relay_block = NULL;
}

bool rig_session_alive(const struct relay_rig *r)
{
    return __atomic_load_n(&r->shared.clients, __ATOMIC_RELAXED) > 0;
}

/*
 * The session timer means what phase.c's table says, as session.c's own
 * callback does: relaying arms none, and CLOSING (5 s for the client to
 * take its last bytes) closes the session.
 */
static void rig_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    phase_timeout(arg);
}

/* Events around a stream that takes over fd and ssl (endpoint_attach starts it afresh). */
static int rig_attach(struct endpoint *ep, int fd, SSL *ssl)
{
    int rc = endpoint_attach(ep, fd);
    ep->stream.ssl = ssl;
    return rc;
}

struct session *rig_session(struct relay_rig *r, int cfd, SSL *cssl, int sfd, SSL *sssl)
{
    struct session *s = slab_alloc(&r->w.sessions, sizeof(*s)); /* session_free gives it back */
    if (s == NULL) {
        SSL_free(cssl);
        SSL_free(sssl);
        close(cfd);
        close(sfd);
        return NULL;
    }
    s->w = &r->w;
    s->rare = &session_rare_none; /* as session_new sets it */
    s->id = ++r->w.next_client_id;
    s->list = &r->w.login_sessions;
    list_append(s->list, &s->node);
    __atomic_add_fetch(&r->shared.clients, 1, __ATOMIC_RELAXED);
    session_label_peer(s, "relay test client");
    s->client_tls = cssl != NULL;
    s->user = "relay-test";
    s->database = "relay-test";
    s->region = &r->region;
    s->phase = PHASE_SERVER_LOGIN;
    /* From here on session_close releases the fds and SSLs, whatever fails. */
    int crc = endpoint_init(&s->client, s->w, &session_endpoint_owner, s, true, -1);
    stream_init(&s->client.stream, cfd);
    s->client.stream.ssl = cssl;
    struct server_conn *sc = server_conn_new(s, &r->region, &r->region.hosts[0]);
    if (sc == NULL) {
        SSL_free(sssl);
        close(sfd);
    } else {
        stream_init(&sc->ep.stream, sfd);
        sc->ep.stream.ssl = sssl;
        sc->tls = sssl != NULL;
        tx_track_init(&sc->tx, 'I');
    }
    s->timer = evtimer_new(r->w.base, rig_timer_cb, s);
    if (s->timer == NULL || crc != 0 || sc == NULL || rig_attach(&s->client, cfd, cssl) != 0 ||
        rig_attach(&sc->ep, sfd, sssl) != 0) {
        session_close(s, "out of memory");
        return NULL;
    }
    return s;
}

/* ---- one run ---- */

enum { PEER_AGAIN = -1, PEER_EOF = -2, PEER_ERROR = -3 };

struct relay_run;

/* One end of a conversation with pgnear, on the far end of a socketpair. */
struct rig_peer {
    const char *name;
    struct relay_run *run;
    int fd;
    SSL *ssl;
    struct event *rev, *wev, *nap;
    bool rev_armed, wev_armed, napping;
    uint8_t read_want, write_want; /* STREAM_WANT_*: what a stopped read / write waits for */
    struct msg_cursor out;         /* what this peer sends */
    struct msg_cursor expect;      /* what it must receive, byte for byte */
    struct chop reads, writes;
    uint64_t out_total, send_limit, expect_total;
    uint64_t sent, got;
    size_t turns_got;            /* lockstep: turns of the other's stream received whole */
    uint8_t *wbuf, *rbuf, *ebuf; /* PEER_CHOP_MAX bytes each */
    size_t wlen, woff;           /* wbuf[woff, wlen): made, not written yet */
    bool closed, eof, write_failed;
    bool trailer_allowed, in_trailer; /* an ErrorResponse of pgnear's own after the stream */
    uint8_t trailer[2048];
    size_t trailer_len;
};

struct relay_run {
    struct relay_rig *rig;
    const struct relay_case *c;
    struct relay_stats *st;
    struct rig_peer peer[2];
    struct session *s;
    struct event *watchdog;
    uint64_t progress, progress_seen; /* bytes moved and ends seen by the peers */
    double started, last_progress;
    bool failed;
    char *err;
    size_t errcap;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The first failure is the one reported; the loop stops at once. */
static void run_fail(struct relay_run *run, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void run_fail(struct relay_run *run, const char *fmt, ...)
{
    if (run->failed)
        return;
    run->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(run->err, run->errcap, fmt, ap);
    va_end(ap);
    event_base_loopbreak(run->rig->w.base);
}

static bool peer_reading(const struct rig_peer *p)
{
    return !p->closed && !p->eof;
}

/*
 * How far the peer may send now.  In a conversation the client's turn i
 * goes out once it has the server's turns before it, the server's turn i
 * once it has the client's turn i; once the other's whole stream is in,
 * there is nothing left to wait for (the two may have unequal turns).
 */
static uint64_t peer_limit(const struct rig_peer *p)
{
    if (!p->run->c->lockstep || p->got == p->expect_total)
        return p->send_limit;
    bool client = p == &p->run->peer[PEER_CLIENT];
    const struct msg_script *mine = p->out.sc;
    if (!client && p->turns_got == 0)
        return 0;
    size_t turn = client ? p->turns_got : p->turns_got - 1;
    uint64_t end = turn < mine->nturns ? mine->turns[turn] : mine->bytes;
    return end < p->send_limit ? end : p->send_limit;
}

static bool peer_writing(const struct rig_peer *p)
{
    return !p->closed && !p->write_failed && (p->woff < p->wlen || p->out.offset < peer_limit(p));
}

static bool peer_complete(const struct rig_peer *p)
{
    return p->sent == p->out_total && p->got == p->expect_total;
}

static void peer_set(struct rig_peer *p, struct event *ev, bool *armed, bool want)
{
    if (want == *armed)
        return;
    if ((want ? event_add(ev, NULL) : event_del(ev)) != 0)
        run_fail(p->run, "%s: could not change its events", p->name);
    *armed = want;
}

/* The same rule as pgnear's endpoint_arm: each event for what a stopped operation waits for. */
static void peer_arm(struct rig_peer *p)
{
    bool r = peer_reading(p) && !p->napping, w = peer_writing(p) && !p->napping;
    peer_set(p, p->rev, &p->rev_armed,
             (r && p->read_want == STREAM_WANT_READ) || (w && p->write_want == STREAM_WANT_READ));
    peer_set(p, p->wev, &p->wev_armed,
             (r && p->read_want == STREAM_WANT_WRITE) || (w && p->write_want == STREAM_WANT_WRITE));
}

/* Decrypted bytes left inside OpenSSL: no socket event will announce them. */
static void peer_kick(struct rig_peer *p)
{
    if (p->ssl != NULL && peer_reading(p) && !p->napping && SSL_has_pending(p->ssl))
        event_active(p->rev, EV_READ, 0);
}

static void peer_close(struct rig_peer *p)
{
    if (p->closed)
        return;
    p->closed = true;
    p->napping = false;
    peer_set(p, p->rev, &p->rev_armed, false);
    peer_set(p, p->wev, &p->wev_armed, false);
    event_del(p->nap);
    if (p->ssl != NULL && !p->eof && SSL_is_init_finished(p->ssl)) {
        /* One try at close_notify, as pgnear does. */
        ERR_clear_error();
        SSL_shutdown(p->ssl);
        ERR_clear_error();
    }
    close(p->fd);
    p->fd = -1;
    p->run->progress++;
}

static ssize_t peer_tls_status(struct rig_peer *p, int ret, uint8_t *want)
{
    switch (SSL_get_error(p->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        *want = STREAM_WANT_READ;
        return PEER_AGAIN;
    case SSL_ERROR_WANT_WRITE:
        *want = STREAM_WANT_WRITE;
        return PEER_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return PEER_EOF;
    case SSL_ERROR_SYSCALL:
        return errno == 0 || errno == ECONNRESET || errno == EPIPE ? PEER_EOF : PEER_ERROR;
    default:
        return PEER_ERROR;
    }
}

static bool errno_again(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

/* >0 bytes, or PEER_AGAIN (read_want says for what), PEER_EOF, PEER_ERROR. */
static ssize_t peer_recv(struct rig_peer *p, uint8_t *buf, size_t n)
{
    if (p->ssl != NULL) {
        size_t got = 0;
        ERR_clear_error();
        errno = 0;
        int ret = SSL_read_ex(p->ssl, buf, n, &got);
        if (ret > 0) {
            p->read_want = STREAM_WANT_READ;
            return (ssize_t)got;
        }
        return peer_tls_status(p, ret, &p->read_want);
    }
    ssize_t got = recv(p->fd, buf, n, 0);
    if (got > 0)
        return got;
    /* A reset: pgnear closed with bytes of ours unread, which only ends the stream. */
    if (got == 0 || errno == ECONNRESET)
        return PEER_EOF;
    p->read_want = STREAM_WANT_READ;
    return errno_again() ? PEER_AGAIN : PEER_ERROR;
}

/* >0 bytes, or PEER_AGAIN (write_want says for what), PEER_EOF (pgnear has gone), PEER_ERROR. */
static ssize_t peer_send(struct rig_peer *p, const uint8_t *buf, size_t n)
{
    if (p->ssl != NULL) {
        size_t done = 0;
        ERR_clear_error();
        errno = 0;
        int ret = SSL_write_ex(p->ssl, buf, n, &done);
        if (ret > 0) {
            p->write_want = STREAM_WANT_WRITE;
            return (ssize_t)done;
        }
        return peer_tls_status(p, ret, &p->write_want);
    }
    ssize_t w = send(p->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0)
        return w;
    if (errno == EPIPE || errno == ECONNRESET)
        return PEER_EOF;
    p->write_want = STREAM_WANT_WRITE;
    return errno_again() ? PEER_AGAIN : PEER_ERROR;
}

static size_t same_prefix(const uint8_t *a, const uint8_t *b, size_t n)
{
    if (memcmp(a, b, n) == 0)
        return n;
    size_t i = 0;
    while (a[i] == b[i])
        i++;
    return i;
}

/* Says where the stream went wrong: the byte, its message, what came instead. */
static void peer_mismatch(struct rig_peer *p, const struct msg_cursor *at, size_t k, size_t same,
                          const uint8_t *buf, size_t n)
{
    const char *other = p == &p->run->peer[PEER_CLIENT] ? "server" : "client";
    if (k == 0) {
        run_fail(p->run,
                 "%s: %zu bytes more than the %s's whole stream of %llu bytes (0x%02x first)",
                 p->name, n, other, (unsigned long long)p->expect_total, buf[0]);
        return;
    }
    const struct msg *m = &at->sc->msgs[at->index];
    run_fail(p->run,
             "%s: byte %llu of the %s's stream is 0x%02x, not 0x%02x (message %zu, '%c' with a "
             "%u-byte body, byte %llu of it)",
             p->name, (unsigned long long)(at->offset + same), other, buf[same], p->ebuf[same],
             at->index, m->type, m->body_len, (unsigned long long)(at->pos + same));
}

static void peer_trailer_add(struct rig_peer *p, const uint8_t *buf, size_t n)
{
    if (n > sizeof(p->trailer) - p->trailer_len) {
        run_fail(p->run, "%s: more than %zu bytes after the stream: not one report", p->name,
                 sizeof(p->trailer));
        return;
    }
    memcpy(p->trailer + p->trailer_len, buf, n);
    p->trailer_len += n;
}

/*
 * Checks every received byte against the other peer's stream, message by
 * message, so that a report of pgnear's own after a close (it can only
 * start where a message starts) is told from a wrong byte.
 */
static void peer_check(struct rig_peer *p, const uint8_t *buf, size_t n)
{
    while (n > 0 && !p->run->failed) {
        if (p->in_trailer) {
            peer_trailer_add(p, buf, n);
            return;
        }
        struct msg_cursor at = p->expect;
        size_t k = cursor_fill_msg(&p->expect, p->ebuf, n);
        size_t same = k > 0 ? same_prefix(buf, p->ebuf, k) : 0;
        if (k > 0 && same == k) {
            p->got += k;
            const struct msg_script *theirs = p->expect.sc;
            while (p->turns_got < theirs->nturns && p->got >= theirs->turns[p->turns_got])
                p->turns_got++;
            buf += k;
            n -= k;
            continue;
        }
        if (p->trailer_allowed && at.pos == 0 && same == 0 && buf[0] == 'E') {
            p->in_trailer = true;
            continue;
        }
        peer_mismatch(p, &at, k, same, buf, n);
    }
}

/* pgnear's report after the stream: one whole ErrorResponse, with the SQLSTATE asked for. */
static void peer_check_trailer(struct rig_peer *p, const char *sqlstate)
{
    const uint8_t *t = p->trailer;
    uint32_t len = p->trailer_len >= 5
                       ? (uint32_t)t[1] << 24 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 8 | t[4]
                       : 0;
    if (p->trailer_len < 5 || t[0] != 'E' || len != p->trailer_len - 1) {
        run_fail(p->run, "%s: the %zu bytes after the stream are not one whole ErrorResponse",
                 p->name, p->trailer_len);
        return;
    }
    if (sqlstate != NULL && memmem(t, p->trailer_len, sqlstate, strlen(sqlstate)) == NULL)
        run_fail(p->run, "%s: pgnear's report after the stream is not SQLSTATE %s", p->name,
                 sqlstate);
}

/* pgnear closed this peer's connection. */
static void peer_eof(struct rig_peer *p)
{
    const struct relay_case *c = p->run->c;
    bool client = p == &p->run->peer[PEER_CLIENT];
    p->eof = true;
    if (p->in_trailer)
        peer_check_trailer(p, c->exact ? "08006" : NULL);
    if (c->exact && p->got != p->expect_total)
        run_fail(p->run, "%s: EOF after %llu of the %llu bytes sent to it", p->name,
                 (unsigned long long)p->got, (unsigned long long)p->expect_total);
    if (c->exact && client && c->client_trailer && !p->in_trailer)
        run_fail(p->run, "%s: EOF without pgnear's report that the server closed", p->name);
    peer_close(p);
}

static void peer_nap(struct rig_peer *p)
{
    struct timeval tv = {0, p->run->c->nap_us};
    p->napping = true;
    if (evtimer_add(p->nap, &tv) != 0)
        run_fail(p->run, "%s: could not start its nap", p->name);
}

static void peer_nap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rig_peer *p = arg;
    p->napping = false;
    peer_arm(p);
    peer_kick(p);
}

static void peer_read_step(struct rig_peer *p)
{
    size_t n = chop_next(&p->reads);
    if (n == CHOP_NAP) {
        peer_nap(p);
        return;
    }
    ssize_t got = peer_recv(p, p->rbuf, n);
    if (got > 0) {
        p->run->progress += (uint64_t)got;
        peer_check(p, p->rbuf, (size_t)got);
        peer_kick(p);
        return;
    }
    if (got == PEER_AGAIN)
        return;
    /* After a failed write of its own a TLS peer may only get errors: pgnear has gone. */
    if (got == PEER_ERROR && !(p->ssl != NULL && p->write_failed)) {
        char why[200];
        ERR_error_string_n(ERR_peek_error(), why, sizeof(why));
        run_fail(p->run, "%s: could not read: %s", p->name, p->ssl ? why : strerror(errno));
        return;
    }
    peer_eof(p);
}

static void peer_write_step(struct rig_peer *p)
{
    if (p->woff == p->wlen) {
        size_t n = chop_next(&p->writes);
        if (n == CHOP_NAP) {
            peer_nap(p);
            return;
        }
        uint64_t left = peer_limit(p) - p->out.offset;
        p->wlen = cursor_fill(&p->out, p->wbuf, n < left ? n : (size_t)left);
        p->woff = 0;
    }
    /* A TLS write that stopped short is retried with the same bytes, as OpenSSL requires. */
    ssize_t w = peer_send(p, p->wbuf + p->woff, p->wlen - p->woff);
    if (w > 0) {
        p->woff += (size_t)w;
        p->sent += (uint64_t)w;
        p->run->progress += (uint64_t)w;
        return;
    }
    if (w == PEER_AGAIN)
        return;
    p->write_failed = true;
    if (p->run->c->exact)
        run_fail(p->run, "%s: could not send after %llu of %llu bytes: %s", p->name,
                 (unsigned long long)p->sent, (unsigned long long)p->out_total,
                 w == PEER_EOF ? "pgnear closed" : strerror(errno));
}

static void peer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct rig_peer *p = arg;
    uint8_t ready = (what & EV_READ) ? STREAM_WANT_READ : STREAM_WANT_WRITE;
    if (!p->napping && peer_writing(p) && p->write_want == ready)
        peer_write_step(p);
    if (!p->napping && peer_reading(p) && p->read_want == ready)
        peer_read_step(p);
    if (!p->closed)
        peer_arm(p);
}

/* ---- setting a run up ---- */

static void peer_free(struct rig_peer *p)
{
    if (p->run == NULL)
        return;
    if (!p->closed && p->fd >= 0) {
        p->eof = true; /* no close_notify: the run is over */
        peer_close(p);
    }
    if (p->rev)
        event_free(p->rev);
    if (p->wev)
        event_free(p->wev);
    if (p->nap)
        event_free(p->nap);
    SSL_free(p->ssl);
    free(p->wbuf);
    free(p->rbuf);
    free(p->ebuf);
    memset(p, 0, sizeof(*p));
}

/* Takes over fd and ssl (NULL: plain), also on failure. */
static int peer_init(struct relay_run *run, int who, int fd, SSL *ssl)
{
    struct rig_peer *p = &run->peer[who];
    const struct peer_plan *mine = &run->c->peer[who], *theirs = &run->c->peer[1 - who];
    struct event_base *base = run->rig->w.base;
    p->name = who == PEER_CLIENT ? "client" : "server";
    p->run = run;
    p->fd = fd;
    p->ssl = ssl;
    p->read_want = STREAM_WANT_READ;
    p->write_want = STREAM_WANT_WRITE;
    /* Each direction has its own salt: bytes that cross over never match. */
    cursor_init(&p->out, mine->sends, (uint64_t)who + 1);
    cursor_init(&p->expect, theirs->sends, (uint64_t)(1 - who) + 1);
    p->reads = mine->reads;
    p->writes = mine->writes;
    p->out_total = mine->sends->bytes;
    p->send_limit = mine->close_sent < p->out_total ? mine->close_sent : p->out_total;
    p->expect_total = theirs->sends->bytes;
    p->trailer_allowed = who == PEER_CLIENT && (!run->c->exact || run->c->client_trailer);
    p->rev = event_new(base, fd, EV_READ | EV_PERSIST, peer_cb, p);
    p->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, peer_cb, p);
    p->nap = evtimer_new(base, peer_nap_cb, p);
    p->wbuf = malloc(PEER_CHOP_MAX);
    p->rbuf = malloc(PEER_CHOP_MAX);
    p->ebuf = malloc(PEER_CHOP_MAX);
    if (!p->rev || !p->wev || !p->nap || !p->wbuf || !p->rbuf || !p->ebuf)
        return -1;
    peer_arm(p);
    return 0;
}

static void set_sndbuf(int fd, int size)
{
    if (size > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

/* sv[0]: pgnear's end, sv[1]: the peer's; non-blocking, as pgnear's sockets are. */
static int run_socketpair(int sv[2], int pgnear_sndbuf, int peer_sndbuf)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return -1;
    set_sndbuf(sv[0], pgnear_sndbuf);
    set_sndbuf(sv[1], peer_sndbuf);
    return 0;
}

/*
 * Both ends of a TLS handshake, in turns on the one thread: pgnear's end
 * through its own stream_tls_accept / stream_tls_connect.
 */
static int run_handshake(SSL *mine, bool accepts, int fd, SSL *peer)
{
    struct stream st;
    stream_init(&st, fd);
    st.ssl = mine;
    bool done_mine = false, done_peer = false;
    for (int turn = 0; turn < 1000 && !(done_mine && done_peer); turn++) {
        if (!done_mine) {
            int rc = accepts ? stream_tls_accept(&st) : stream_tls_connect(&st);
            if (rc == STREAM_ERROR)
                return -1;
            done_mine = rc == 0;
        }
        if (!done_peer) {
            ERR_clear_error();
            int rc = SSL_do_handshake(peer);
            int e = rc == 1 ? SSL_ERROR_NONE : SSL_get_error(peer, rc);
            if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return -1;
            done_peer = rc == 1;
        }
    }
    return done_mine && done_peer ? 0 : -1;
}

/* The SSLs of one side, pgnear's made by its own tls.c; both NULL when the side is plain. */
static int run_side_tls(struct relay_run *run, const struct tls_kit *k, int who, int sv[2],
                        SSL **mine, SSL **peer)
{
    *mine = *peer = NULL;
    if (!run->c->tls[who])
        return 0;
    bool client = who == PEER_CLIENT;
    *mine = client ? tls_new_client_ssl(k->pgnear_client_side, sv[0])
                   : tls_new_server_ssl(k->pgnear_server_side, sv[0], TLS_SERVER_REQUIRE,
                                        rig_host_name);
    *peer = SSL_new(client ? k->peer_client : k->peer_server);
    if (*mine == NULL || *peer == NULL || SSL_set_fd(*peer, sv[1]) != 1)
        return -1;
    if (client)
        SSL_set_connect_state(*peer);
    else
        SSL_set_accept_state(*peer);
    if (run->c->tls12 && SSL_set_max_proto_version(*peer, TLS1_2_VERSION) != 1)
        return -1;
    return run_handshake(*mine, client, sv[0], *peer);
}

/* Bytes of a peer's stream that pgnear had read before the relay began (pipelined behind login). */
static int run_early(struct relay_run *run, int who, struct endpoint *ep)
{
    struct rig_peer *p = &run->peer[who];
    uint64_t limit = peer_limit(p);
    uint64_t n = run->c->peer[who].early < limit ? run->c->peer[who].early : limit;
    while (n > 0) {
        size_t k = cursor_fill(&p->out, p->wbuf, n < PEER_CHOP_MAX ? (size_t)n : PEER_CHOP_MAX);
        if (evbuffer_add(ep->in, p->wbuf, k) != 0)
            return -1;
        p->sent += k;
        n -= k;
    }
    return 0;
}

static void run_watchdog_cb(evutil_socket_t fd, short what, void *arg);

/* Both socketpairs, TLS where asked; on failure everything made so far is released. */
static int run_sides(struct relay_run *run, const struct tls_kit *k, int fds[2][2], SSL *ssl[2][2])
{
    for (int who = 0; who < 2; who++) {
        int sv[2];
        if (run_socketpair(sv, run->c->pgnear_sndbuf, run->c->peer[who].sndbuf) != 0) {
            run_fail(run, "socketpair: %s", strerror(errno));
            return -1;
        }
        fds[who][0] = sv[0];
        fds[who][1] = sv[1];
        if (run_side_tls(run, k, who, sv, &ssl[who][0], &ssl[who][1]) != 0) {
            char why[200];
            ERR_error_string_n(ERR_get_error(), why, sizeof(why));
            run_fail(run, "TLS handshake on the %s side failed: %s",
                     who == PEER_CLIENT ? "client" : "server", why);
            return -1;
        }
    }
    return 0;
}

static int run_setup(struct relay_run *run, const struct tls_kit *k)
{
    int fds[2][2] = {{-1, -1}, {-1, -1}};
    SSL *ssl[2][2] = {{NULL, NULL}, {NULL, NULL}}; /* [side][0]: pgnear's, [side][1]: the peer's */
    if (run_sides(run, k, fds, ssl) != 0) {
        for (int i = 0; i < 4; i++) {
            SSL_free(ssl[i / 2][i % 2]);
            if (fds[i / 2][i % 2] >= 0)
                close(fds[i / 2][i % 2]);
        }
        return -1;
    }
    int pc = peer_init(run, PEER_CLIENT, fds[PEER_CLIENT][1], ssl[PEER_CLIENT][1]);
    int ps = peer_init(run, PEER_SERVER, fds[PEER_SERVER][1], ssl[PEER_SERVER][1]);
    run->s = rig_session(run->rig, fds[PEER_CLIENT][0], ssl[PEER_CLIENT][0], fds[PEER_SERVER][0],
                         ssl[PEER_SERVER][0]);
    struct timeval tick = {0, 50000};
    run->watchdog = event_new(run->rig->w.base, -1, EV_PERSIST, run_watchdog_cb, run);
    if (pc != 0 || ps != 0 || run->s == NULL || run->watchdog == NULL ||
        event_add(run->watchdog, &tick) != 0 || run_early(run, PEER_CLIENT, &run->s->client) != 0 ||
        run_early(run, PEER_SERVER, &run->s->server_conn->ep) != 0) {
        run_fail(run, "out of memory setting up the run");
        return -1;
    }
    phase_enter(run->s, PHASE_ACTIVE);
    return 0;
}

/* ---- running ---- */

static void peer_describe(const struct rig_peer *p, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s sent %llu of %llu and got %llu of %llu%s%s%s%s", p->name,
             (unsigned long long)p->sent, (unsigned long long)p->out_total,
             (unsigned long long)p->got, (unsigned long long)p->expect_total,
             p->closed ? (p->eof ? ", saw EOF" : ", closed") : "",
             p->in_trailer ? ", got a report" : "", p->write_failed ? ", write failed" : "",
             p->napping ? ", napping" : "");
}

static void endpoint_describe(const struct endpoint *ep, const char *name, char *buf, size_t cap)
{
    snprintf(buf, cap, "%zu bytes queued for the %s%s", ep->out ? evbuffer_get_length(ep->out) : 0,
             name, ep->read_paused ? " (its reads paused)" : "");
}

/* Who waits for what, when nothing has moved for too long. */
static void run_fail_stalled(struct relay_run *run, double idle)
{
    char c[200], s[200], pc[120] = "", ps[120] = "";
    peer_describe(&run->peer[PEER_CLIENT], c, sizeof(c));
    peer_describe(&run->peer[PEER_SERVER], s, sizeof(s));
    if (rig_session_alive(run->rig)) {
        endpoint_describe(&run->s->client, "client", pc, sizeof(pc));
        if (run->s->server_conn != NULL)
            endpoint_describe(&run->s->server_conn->ep, "server", ps, sizeof(ps));
    }
    run_fail(run, "stalled: nothing moved for %.1f s; %s; %s; pgnear's session %s%s%s%s", idle, c,
             s, rig_session_alive(run->rig) ? "still open, " : "closed", pc,
             rig_session_alive(run->rig) ? ", " : "", ps);
}

static void run_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
    struct relay_run *run = arg;
    double now = now_s();
    if (run->progress != run->progress_seen) {
        run->progress_seen = run->progress;
        run->last_progress = now;
    } else if (now - run->last_progress > run->c->stall_ms / 1000.0) {
        run_fail_stalled(run, now - run->last_progress);
    }
    if (now - run->started > run->c->deadline_ms / 1000.0)
        run_fail(run, "not over after %.1f s", now - run->started);
}

/* Closes the peers whose plan says it is time. */
static void run_closes(struct relay_run *run)
{
    for (int who = 0; who < 2; who++) {
        struct rig_peer *p = &run->peer[who];
        const struct peer_plan *plan = &run->c->peer[who];
        uint64_t got = plan->close_got < p->expect_total ? plan->close_got : p->expect_total;
        if (p->closed || plan->close_sent == PEER_NEVER_CLOSES || p->sent < p->send_limit ||
            p->got < got || (plan->close_waits_other && !peer_complete(&run->peer[1 - who])))
            continue;
        peer_close(p);
    }
}

static bool run_over(const struct relay_run *run)
{
    return run->peer[PEER_CLIENT].closed && run->peer[PEER_SERVER].closed &&
           !rig_session_alive(run->rig);
}

/* What pgnear's session looks like between loop turns (never inside its callbacks). */
static void run_sample(struct relay_run *run)
{
    if (!rig_session_alive(run->rig))
        return;
    const struct server_conn *sc = run->s->server_conn;
    const struct endpoint *ep[2] = {&run->s->client, sc != NULL ? &sc->ep : NULL};
    for (int i = 0; i < 2 && ep[i] != NULL; i++) {
        size_t queued = ep[i]->out ? endpoint_queued(ep[i]) : 0;
        if (queued > run->st->max_out[i])
            run->st->max_out[i] = queued;
        run->st->paused[i] |= ep[i]->read_paused;
    }
}

static void run_loop(struct relay_run *run)
{
    while (!run->failed) {
        run_closes(run);
        if (run_over(run))
            return;
        /* As the worker's loop: the turn's sends submitted, then a wait only when none is left. */
        struct uring *ring = run->rig->w.uring;
        /*
         * Receives through the ring, then on readiness (the rig weighs no
         * load), and back: each socket moves as it next reads, its bytes in
         * order across the move.
         */
        if (ring != NULL && run->c->ring_switch && run->st->loops % 5 == 0)
            uring_receive_always(ring, run->st->loops % 10 == 0);
        if (ring != NULL)
            uring_turn(ring);
        int flags = ring == NULL || uring_sleep(ring) ? EVLOOP_ONCE : EVLOOP_NONBLOCK;
        int rc = event_base_loop(run->rig->w.base, flags);
        if (ring != NULL)
            uring_awake(ring);
        if (rc < 0) {
            run_fail(run, "event_base_loop failed");
            return;
        }
        run_sample(run);
        if (++run->st->loops > run->c->max_loops)
            run_fail(run, "not over after %llu loop turns", (unsigned long long)run->st->loops);
    }
}

/* exact: everything arrived both ways (EOFs and the report were checked as they came). */
static void run_verify(struct relay_run *run)
{
    for (int who = 0; who < 2 && run->c->exact; who++) {
        const struct rig_peer *p = &run->peer[who];
        if (p->got != p->expect_total || p->sent != p->out_total)
            run_fail(run, "%s: sent %llu of %llu bytes and got %llu of %llu", p->name,
                     (unsigned long long)p->sent, (unsigned long long)p->out_total,
                     (unsigned long long)p->got, (unsigned long long)p->expect_total);
    }
    if (run->c->exact && run->c->client_trailer && !run->peer[PEER_CLIENT].in_trailer)
        run_fail(run, "client: no report from pgnear that the server closed");
}

int relay_run(struct relay_rig *r, const struct tls_kit *k, const struct relay_case *c,
              struct relay_stats *st, char *err, size_t errcap)
{
    struct relay_run run = {.rig = r, .c = c, .st = st, .err = err, .errcap = errcap};
    memset(st, 0, sizeof(*st));
    err[0] = '\0';
    r->w.uring = c->ring ? r->ring : NULL;
    uring_receive_always(r->ring, true);
    run.started = run.last_progress = now_s();
    if (run_setup(&run, k) == 0) {
        run_loop(&run);
        if (!run.failed)
            run_verify(&run);
    }
    st->seconds = now_s() - run.started;
    st->got[PEER_CLIENT] = run.peer[PEER_CLIENT].got;
    st->got[PEER_SERVER] = run.peer[PEER_SERVER].got;
    st->trailer_seen = run.peer[PEER_CLIENT].in_trailer;
    if (rig_session_alive(r) && run.s != NULL)
        session_close(run.s, "test over");
    peer_free(&run.peer[PEER_CLIENT]);
    peer_free(&run.peer[PEER_SERVER]);
    if (run.watchdog)
        event_free(run.watchdog);
    return run.failed ? -1 : 0;
}
