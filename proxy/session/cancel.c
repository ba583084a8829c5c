/*
 * cancel.c — a session's cancel key, registered (cancel_keys.c) and
 * retargeted, and CancelRequest forwarding.
 */
#include "proxy/session/cancel.h"

#include <errno.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "protocol/cancel_key.h"
#include "protocol/clock.h"
#include "protocol/pkt.h"
#include "protocol/proxy_proto.h"
#include "protocol/startup.h"
#include "protocol/stream.h"
#include "protocol/tls.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel_send.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/region.h"

#define CANCEL_FORWARD_MS 5000
#define CANCEL_LOG_BURST  20 /* lines a second about cancel requests that cancel nothing */

/* A CancelRequest of that process ID and key: its length in out, or 0 for a key too long. */
#define CANCEL_PACKET_MAX (12 + CANCEL_KEY_MAX_LEN)
static size_t cancel_packet(uint8_t *out, uint32_t pid, const uint8_t *key, size_t key_len)
{
    struct pktbuf pb;
    pkt_init(&pb, out, CANCEL_PACKET_MAX);
    pkt_begin(&pb, 0);
    pkt_put_u32(&pb, PROTO_CODE_CANCEL);
    pkt_put_u32(&pb, pid);
    pkt_put_bytes(&pb, key, key_len);
    pkt_end(&pb);
    return pkt_ok(&pb) ? pb.len : 0;
}

/* A request for a session of another worker (or this one), run on that worker's loop. */
struct cancel_order {
    uint64_t session_id;   /* the session to cancel */
    uint64_t requester_id; /* the connection that sent the request: closed once it is handled */
    int requester_worker;
};

/*
 * Registers a fresh client key for s, standing for sc (NULL: the console,
 * whose process ID is console_pid).  The caller unregistered the old key
 * before changing what it stood for.
 */
static int cancel_register_entry(struct session *s, const struct server_conn *sc, bool console,
                                 uint32_t pid)
{
    struct cancel_entry *e = &s->cancel;
    e->server = sc;
    e->console = console;
    e->client_id = s->id;
    uint8_t len = s->client_minor >= 2 ? CANCEL_KEY_V32_LEN : CANCEL_KEY_V30_LEN;
    if (e->client_key_len != len) { /* (the first key: the union's side is chosen) */
        cancel_entry_free(e);
        e->client_key_len = len;
    }
    return cancel_keys_add(s->w->shared, s->w->cfg, e, pid);
}

int cancel_register(struct session *s, uint32_t server_pid, const uint8_t *server_key,
                    size_t server_key_len)
{
    struct server_conn *sc = s->server_conn;
    /* Another worker may be reading the old key: it goes before the new one is written. */
    cancel_keys_remove(s->w->shared, &s->cancel);
    sc->pid = server_pid;
    memcpy(sc->key, server_key, server_key_len);
    sc->key_len = (uint16_t)server_key_len;
    /*
     * A login of pgnear's own (a fetcher, a mover, min_pool_size's) has no
     * client to give a key to: the connection's key is kept on sc for the
     * session it goes to, whose own key stands for it (cancel_retarget).
     * No key is drawn then (a DRBG call per pooled transaction).
     */
    if (s->login != NULL && session_login_internal(s->login))
        return 0;
    return cancel_register_entry(s, sc, false, sc->pid);
}

int cancel_register_detached(struct session *s, uint32_t pid)
{
    cancel_keys_remove(s->w->shared, &s->cancel);
    return cancel_register_entry(s, NULL, false, pid);
}

int cancel_register_console(struct session *s)
{
    cancel_keys_remove(s->w->shared, &s->cancel);
    /* Any number will do (the key is what proves the caller); a positive one, as a pid is. */
    return cancel_register_entry(s, NULL, true, (uint32_t)(s->id % 0x3ffffffe) + 1);
}

void cancel_retarget(struct session *s, const struct server_conn *sc)
{
    if (s->cancel.registered)
        s->cancel.server = sc; /* read on s's own worker only (cancel_order_run) */
}

static void cancel_id_told(struct worker *from, const struct worker_reply *r)
{
    (void)from;
    free(r->arg);
}

/* Runs fn on the worker of index worker_index with a session id; nothing when out of memory. */
static void cancel_call_with_id(struct worker *from, int worker_index, worker_fn fn, uint64_t id)
{
    uint64_t *arg = malloc(sizeof(*arg));
    if (arg == NULL || worker_index < 0 || worker_index >= from->shared->nworkers) {
        free(arg);
        return;
    }
    *arg = id;
    if (worker_call(from, from->shared->workers[worker_index], fn, arg, cancel_id_told, NULL) != 0)
        free(arg);
}

static int cancel_requester_close(struct worker *w, void *arg)
{
    struct session *s = session_find(w, *(const uint64_t *)arg);
    if (s != NULL && !s->closed)
        session_close(s, "cancel request handled");
    return 0;
}

/*
 * Closes the session that sent a cancel request (id, on worker index
 * worker) on its own loop, a later turn even on w: it may be inside its
 * own callback.  Out of memory, its login timeout closes it.
 */
static void cancel_requester_done(struct worker *w, int worker, uint64_t id)
{
    cancel_call_with_id(w, worker, cancel_requester_close, id);
}

/*
 * A delivery ended: its requester is closed, and the server connection it
 * was for let go — once no other is under way, a connection the pool held
 * back for it goes on.  A request that may still arrive (sent, not seen
 * acted on) keeps that connection from every other client: it is closed
 * when given back.
 */
static void cancel_delivery_ended(struct worker *w, const struct cancel_outcome *o)
{
    struct server_conn *sc = o->server;
    if (o->stopping)
        return;
    if (o->requester_id != 0) /* 0: pgnear's own (cancel_session_request) */
        cancel_requester_done(w, o->requester_worker, o->requester_id);
    if (sc == NULL)
        return;
    if (o->maybe_sent)
        sc->cancel_unsure = true;
    if (--sc->cancels_in_flight > 0)
        return;
    struct session *s = sc->client;
    if (s == NULL) { /* the pool's, held for it: its reset or rollback is written next */
        endpoint_release_writes(NULL, &sc->ep);
        w->shared->flow->server_cancel_done(sc);
        return;
    }
    w->shared->flow->server_cancel_done(sc);
    endpoint_release_writes(s, &sc->ep); /* what its session sent meanwhile; may close it */
}

/*
 * Sends the CancelRequest with the server's own process ID and key to
 * sc's server, on sc's worker: sc is held until it is delivered.
 */
static int cancel_to_server(struct worker *w, struct server_conn *sc, const struct cancel_order *o)
{
    uint8_t packet[CANCEL_PACKET_MAX];
    size_t len = cancel_packet(packet, sc->pid, sc->key, sc->key_len);
    if (len == 0 || sc->cancels_in_flight == UINT16_MAX)
        return -1;
    /* TLS when the session's server connection has it and server_tls still allows it. */
    bool use_tls = sc->tls && w->cfg->server_tls_ctx != NULL;
    struct cancel_delivery d = {.client_id = o->session_id,
                                .addr = (const struct sockaddr *)&sc->host->addr,
                                .addrlen = sc->host->addrlen,
                                .tls_ctx = use_tls ? w->cfg->server_tls_ctx : NULL,
                                .tls = (enum tls_server_mode)w->cfg->server_tls,
                                .host = sc->host->name,
                                .bytes = packet,
                                .len = len,
                                .timeout_ms = CANCEL_FORWARD_MS,
                                .tune = session_tune_tcp,
                                .ended = cancel_delivery_ended,
                                .server = sc,
                                .requester_id = o->requester_id,
                                .requester_worker = o->requester_worker};
    if (cancel_send(w, &d) != 0)
        return -1;
    sc->cancels_in_flight++;
    endpoint_hold_writes(&sc->ep);
    return 0;
}

/*
 * On the session's own worker, where its server connection cannot change
 * meanwhile: the connection its key names now, if it has one — between
 * transactions (transaction pooling) it has none, and the query the
 * request was for has ended, unless it waits for a connection: then it is
 * canceled here (txn_cancel.h).  0: a delivery started, which closes the
 * requester when it ends; 1: nothing was started.
 */
static int cancel_order_run(struct worker *w, void *arg)
{
    const struct cancel_order *o = arg;
    struct session *s = session_find(w, o->session_id);
    if (s != NULL && !s->closed && s->cancel.registered && s->txn != NULL && s->txn->on_cancel(s)) {
        log_info(o->requester_id,
                 "cancel request for c%llu: its request waited for a server connection; "
                 "answered 57014 without running it",
                 (unsigned long long)o->session_id);
        return 1;
    }
    struct server_conn *sc = s != NULL && !s->closed ? s->server_conn : NULL;
    if (sc == NULL || !s->cancel.registered || s->cancel.server != sc) {
        log_info(o->requester_id, "cancel request for c%llu: %s; nothing to cancel",
                 (unsigned long long)o->session_id,
                 s == NULL || s->closed ? "the session has ended"
                                        : "it is between transactions, without a server");
        return 1;
    }
    log_info(o->requester_id, "cancel request for c%llu (server process %u)",
             (unsigned long long)o->session_id, sc->pid);
    if (cancel_to_server(w, sc, o) != 0) {
        log_warn(o->requester_id, "could not forward cancel request: out of resources");
        return 1;
    }
    return 0;
}

bool cancel_session_request(struct session *s)
{
    if (s->closed || !s->cancel.registered)
        return false;
    if (s->txn != NULL && s->txn->on_cancel(s))
        return true;
    struct server_conn *sc = s->server_conn;
    if (sc == NULL || s->cancel.server != sc)
        return false;
    const struct cancel_order o = {.session_id = s->id, .requester_worker = s->w->index};
    if (cancel_to_server(s->w, sc, &o) != 0) {
        slog_warn(s, "could not send a cancel request: out of resources");
        return false;
    }
    return true;
}

bool cancel_server_conn(struct worker *w, struct server_conn *sc, uint64_t session_id)
{
    const struct cancel_order o = {.session_id = session_id, .requester_worker = w->index};
    if (cancel_to_server(w, sc, &o) != 0) {
        log_warn(session_id, "could not send a cancel request: out of resources");
        return false;
    }
    return true;
}

/* Back on the requester's worker: closed now unless a delivery will close it. */
static void cancel_order_told(struct worker *from, const struct worker_reply *r)
{
    const struct cancel_order *o = r->arg;
    if (r->ran == 0 || r->result != 0)
        cancel_requester_done(from, o->requester_worker, o->requester_id);
    free(r->arg);
}

/* The session's worker is asked to cancel its query; true when the requester is closed later. */
static bool cancel_on_owner(struct worker *w, const struct cancel_target *t,
                            const struct cancel_origin *origin)
{
    struct cancel_order *o = malloc(sizeof(*o));
    if (o == NULL || t->worker < 0 || t->worker >= w->shared->nworkers) {
        free(o);
        log_warn(origin->id, "could not forward cancel request: out of resources");
        return false;
    }
    *o = (struct cancel_order){
        .session_id = t->client_id, .requester_id = origin->id, .requester_worker = w->index};
    if (worker_call(w, w->shared->workers[t->worker], cancel_order_run, o, cancel_order_told,
                    NULL) != 0) {
        free(o);
        log_warn(origin->id, "could not forward cancel request: out of resources");
        return false;
    }
    return true;
}

/* On the session's own worker: its phase's cancel (arg: the session's id). */
static int cancel_local_on_worker(struct worker *w, void *arg)
{
    struct session *s = session_find(w, *(const uint64_t *)arg);
    if (s != NULL)
        phase_cancel(s);
    return 0;
}

/* A key of a session pgnear answers itself: nothing to forward, its worker cancels it. */
static void cancel_local(struct worker *from, int worker_index, uint64_t session_id)
{
    cancel_call_with_id(from, worker_index, cancel_local_on_worker, session_id);
}

/*
 * Looks the key up (as this instance made it: the forwarded flag cleared
 * where its format has one) and copies what forwarding needs while the
 * owner cannot unregister it.
 */
static bool cancel_lookup(struct shared *sh, const struct startup_packet *sp, bool peer_format,
                          struct cancel_target *target)
{
    uint8_t key[CANCEL_KEY_MAX_LEN];
    size_t len = sp->cancel_key_len;
    if (len != CANCEL_KEY_V30_LEN && len != CANCEL_KEY_V32_LEN)
        return false;
    memcpy(key, sp->cancel_key, len);
    if (peer_format)
        cancel_key_set_forwarded(key, len, false);
    return cancel_keys_find(sh, key, len, sp->cancel_pid, target);
}

/* A request that cancels nothing: counted, charged to its client network, said (limited). */
static void cancel_miss(struct worker *w, const struct cancel_origin *o, enum cancel_result r,
                        const char *why)
{
    struct shared *sh = w->shared;
    uint64_t left_out;
    stat_inc(&w->stats.cancel_results[r]);
    /* Too busy to forward, or a peer that fails, is no guess at a key: not charged. */
    if (r != CANCEL_BUSY && r != CANCEL_PEER_FAILED) {
        stat_inc(&w->stats.cancels_ignored); /* matched no session here */
        cancel_limit_miss(&w->cancel_limit, o->addr, w->cfg->cancel_rate_limit, monotonic_ms());
    }
    if (log_limit_allow(&sh->cancel_log, CANCEL_LOG_BURST, 1000, &left_out))
        log_info(o->id, "cancel request %s; ignored%s", why,
                 left_out > 0 ? " (more lines like this were left out)" : "");
}

/*
 * The peer an unknown key names, when the key may go there: NULL (the
 * miss said) for a peer that peers does not list, a key forwarded once
 * already, or one the fleet's secret did not sign (when authenticated).
 */
static const struct peer *cancel_peer_of(struct worker *w, const struct startup_packet *sp,
                                         const struct cancel_key_info *info,
                                         const struct cancel_origin *o, bool authenticated)
{
    const struct config *cfg = w->cfg;
    const struct peer *p = config_peer(cfg, info->peer_id);
    if (p == NULL || cfg->peer_id == 0) {
        char why[96];
        snprintf(why, sizeof(why), "names peer %d, which peers does not list", info->peer_id);
        cancel_miss(w, o, CANCEL_BAD_KEY, why);
        return NULL;
    }
    if (info->forwarded) {
        cancel_miss(w, o, CANCEL_MISROUTED, "was forwarded once already and is not ours");
        return NULL;
    }
    if (authenticated && !cancel_key_mac_ok(sp->cancel_key, sp->cancel_key_len, cfg->peer_secret,
                                            cfg->peer_secret_len)) {
        cancel_miss(w, o, CANCEL_BAD_KEY, "carries a key the fleet's secret did not sign");
        return NULL;
    }
    return p;
}

/*
 * A forward's slot for peer p, taken; false (the miss said) when this
 * worker has cancel_max_inflight under way, or p failed less than
 * PEER_RETRY_MS ago or holds its share.  One peer may take half the
 * slots: a silent one does not stop forwards to the others.
 */
static bool cancel_peer_slot(struct worker *w, const struct peer *p, const struct cancel_origin *o)
{
    const struct config *cfg = w->cfg;
    bool failing = false;
    int per_peer = cfg->cancel_max_inflight * w->shared->nworkers / 2;
    if (w->peer_forwards < cfg->cancel_max_inflight &&
        peer_stats_begin_out(&w->shared->peers, p->id, per_peer > 0 ? per_peer : 1, monotonic_ms(),
                             &failing))
        return true;
    if (failing) {
        char why[96];
        snprintf(why, sizeof(why), "is for peer %d, which failed less than %d ms ago", p->id,
                 PEER_RETRY_MS);
        cancel_miss(w, o, CANCEL_PEER_FAILED, why);
    } else {
        cancel_miss(w, o, CANCEL_BUSY, "came while cancel_max_inflight forwards were under way");
    }
    return false;
}

/*
 * The forward to p into packet (cap bytes, room for a PROXY v2 header and
 * a request): the header naming the original client, with this instance
 * in a TLV signed when the fleet has a secret, then the request with its
 * key marked forwarded.  Its length, or 0 when it could not be built.
 */
static size_t cancel_peer_packet(const struct config *cfg, const struct startup_packet *sp,
                                 const struct cancel_origin *o, const struct peer *p,
                                 uint8_t *packet, size_t cap)
{
    uint8_t key[CANCEL_KEY_MAX_LEN], mac[PP_PEER_MAC_LEN];
    const struct sockaddr *dst = (const struct sockaddr *)&p->where.addr;
    memcpy(key, sp->cancel_key, sp->cancel_key_len);
    cancel_key_set_forwarded(key, sp->cancel_key_len, true);
    bool signed_fwd =
        cfg->peer_secret_len > 0 &&
        cancel_forward_mac(cfg->peer_secret, cfg->peer_secret_len, cfg->peer_id, o->addr, dst,
                           sp->cancel_pid, key, sp->cancel_key_len, mac);
    size_t n = pp_build_v2(packet, cap, o->addr, dst, cfg->peer_id, signed_fwd ? mac : NULL);
    size_t len = n == 0 ? 0 : cancel_packet(packet + n, sp->cancel_pid, key, sp->cancel_key_len);
    return len == 0 ? 0 : n + len;
}

/*
 * The key names another instance of the fleet: forwarded there once, with
 * a PROXY v2 header naming the original client (and this instance, in a
 * TLV), and the key marked forwarded.  A key that cannot be authenticated
 * here (3.0, or 3.2 without peer_secret_file) costs its network a token, as
 * a miss does: forwarding unauthenticated guesses is what the limit bounds.
 */
static bool cancel_to_peer(struct worker *w, const struct startup_packet *sp,
                           const struct cancel_key_info *info, const struct cancel_origin *o)
{
    const struct config *cfg = w->cfg;
    bool authenticated = sp->cancel_key_len == CANCEL_KEY_V32_LEN && cfg->peer_secret_len > 0;
    const struct peer *p = cancel_peer_of(w, sp, info, o, authenticated);
    if (p == NULL || !cancel_peer_slot(w, p, o))
        return false;
    if (!authenticated)
        cancel_limit_miss(&w->cancel_limit, o->addr, cfg->cancel_rate_limit, monotonic_ms());
    uint8_t packet[PP_V2_BUILD_MAX + CANCEL_PACKET_MAX];
    size_t len = cancel_peer_packet(cfg, sp, o, p, packet, sizeof(packet));
    struct cancel_delivery d = {.client_id = o->id,
                                .peer_id = info->peer_id,
                                .addr = (const struct sockaddr *)&p->where.addr,
                                .addrlen = p->where.addrlen,
                                .tls = TLS_SERVER_DISABLE,
                                .host = p->where.host,
                                .bytes = packet,
                                .len = len,
                                .timeout_ms = cfg->cancel_forward_timeout_ms,
                                .tune = session_tune_tcp,
                                .ended = cancel_delivery_ended,
                                .requester_id = o->id,
                                .requester_worker = w->index};
    if (len == 0)
        peer_stats_note_out(&w->shared->peers, p->id, false, "could not build the request",
                            monotonic_ms());
    if (len > 0 && cancel_send(w, &d) == 0)
        return true;
    log_warn(o->id, "could not forward cancel request to peer %d: out of resources", info->peer_id);
    return false;
}

/*
 * A key this process does not know may be one of the pgnear it replaced
 * on the same port (same peer_id), which serves its last sessions while it
 * drains: passed, unchanged, to that process's cancel socket when there is
 * one (listener.h).  A draining process passes nothing on: no loops.  True
 * when passed (the requester is closed when that process hangs up).
 */
static bool cancel_to_predecessor(struct worker *w, const struct startup_packet *sp,
                                  const struct cancel_origin *o)
{
    struct sockaddr_un sun;
    struct stat st;
    if (w->draining || !config_cancel_socket_path(w->cfg, &sun) || stat(sun.sun_path, &st) != 0 ||
        !S_ISSOCK(st.st_mode))
        return false;
    uint8_t packet[CANCEL_PACKET_MAX];
    size_t len = cancel_packet(packet, sp->cancel_pid, sp->cancel_key, sp->cancel_key_len);
    struct cancel_delivery d = {.client_id = o->id,
                                .predecessor = true,
                                .addr = (const struct sockaddr *)&sun,
                                .addrlen = sizeof(sun),
                                .tls = TLS_SERVER_DISABLE,
                                .host = "",
                                .bytes = packet,
                                .len = len,
                                .timeout_ms = CANCEL_FORWARD_MS,
                                .ended = cancel_delivery_ended,
                                .requester_id = o->id,
                                .requester_worker = w->index};
    return len > 0 && cancel_send(w, &d) == 0;
}

/*
 * The key is this instance's: its session's server, or its console, is
 * told.  True when the requester is closed later.
 */
static bool cancel_here(struct worker *w, const struct startup_packet *sp, bool peer_format,
                        const struct cancel_origin *o)
{
    struct cancel_target target;
    if (!cancel_lookup(w->shared, sp, peer_format, &target)) {
        if (cancel_to_predecessor(w, sp, o))
            return true;
        char why[64];
        snprintf(why, sizeof(why), "for process %u matches no session", sp->cancel_pid);
        cancel_miss(w, o, CANCEL_NO_SESSION, why);
        return false;
    }
    stat_inc(&w->stats.cancel_results[CANCEL_LOCAL]);
    if (target.console) {
        log_info(o->id, "cancel request for admin console session c%llu",
                 (unsigned long long)target.client_id);
        cancel_local(w, target.worker, target.client_id);
        return false;
    }
    return cancel_on_owner(w, &target, o);
}

/*
 * A request that says it was forwarded by a peer (PP2_TYPE_PGNEAR_PEER),
 * or whose PROXY header was believed only for coming from a peer's
 * address: with a fleet's secret, its header and key must carry the MAC
 * that secret makes (else anyone who can connect from a peer's address
 * could name any caller and any peer).  Without one, the address is all
 * there is to go by.  True when it is to be believed; else it has been
 * dropped, charged to the connection's own address.
 */
static bool cancel_from_peer_ok(struct worker *w, const struct startup_packet *sp,
                                const struct cancel_origin *o)
{
    const struct config *cfg = w->cfg;
    const struct pp_header *pp = o->pp;
    bool claims = pp != NULL && pp->peer_id != 0;
    if (!claims && o->conn_addr == o->addr)
        return true; /* not a peer's header */
    uint8_t mac[PP_PEER_MAC_LEN];
    if (cfg->peer_secret_len > 0 &&
        !(claims && pp->has_peer_mac &&
          cancel_forward_mac(cfg->peer_secret, cfg->peer_secret_len, pp->peer_id,
                             (const struct sockaddr *)&pp->src, (const struct sockaddr *)&pp->dst,
                             sp->cancel_pid, sp->cancel_key, sp->cancel_key_len, mac) &&
          CRYPTO_memcmp(mac, pp->peer_mac, sizeof(mac)) == 0)) {
        struct cancel_origin self = *o;
        self.addr = o->conn_addr;
        cancel_miss(w, &self, CANCEL_BAD_KEY,
                    "came with a peer's PROXY header the fleet's secret did not sign");
        return false;
    }
    if (claims) {
        peer_stats_note_in(&w->shared->peers, pp->peer_id);
        log_info(o->id, "cancel request from peer %d, for %s", pp->peer_id, o->peer_text);
    }
    return true;
}

bool cancel_handle_request(struct worker *w, const struct startup_packet *sp,
                           const struct cancel_origin *o)
{
    const struct config *cfg = w->cfg;
    struct cancel_key_info info;
    if (!cancel_from_peer_ok(w, sp, o))
        return false;
    if (cancel_limit_blocked(&w->cancel_limit, o->addr, cfg->cancel_rate_limit, monotonic_ms())) {
        char why[160];
        snprintf(why, sizeof(why), "from %s, a network over cancel_rate_limit", o->peer_text);
        cancel_miss(w, o, CANCEL_RATE_LIMITED, why);
        return false;
    }
    if (cancel_key_read(sp->cancel_pid, sp->cancel_key, sp->cancel_key_len, cfg->peer_id != 0,
                        &info) != 0) {
        char why[64]; /* a key of a format pgnear does not make */
        snprintf(why, sizeof(why), "for process %u matches no session", sp->cancel_pid);
        cancel_miss(w, o, CANCEL_BAD_KEY, why);
        return false;
    }
    if (info.peer_id != 0 && info.peer_id != cfg->peer_id)
        return cancel_to_peer(w, sp, &info, o);
    return cancel_here(w, sp, sp->cancel_key_len == CANCEL_KEY_V32_LEN || info.peer_id != 0, o);
}

void cancel_close_all(struct worker *w)
{
    cancel_send_close_all(w);
}

const struct worker_part cancel_part = {.name = "cancel forwarding", .free = cancel_close_all};
