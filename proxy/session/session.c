/*
 * session.c — a session's life: accepted, counted, its timer, its last
 * words (session_fail, session_send_last), closed and freed.
 */
#include "proxy/session/session.h"
#include "proxy/session/ws_keepalive.h"
#include "proxy/session/timeouts_state.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/crypto.h>

#include "protocol/http_upgrade.h"
#include "protocol/pkt.h"
#include "proxy/base/auth_lookup.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/close_queue.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel_keys.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session_identity.h"
#include "proxy/session/session_secret.h"
#include "routing/region.h"
#include "routing/route.h"

static void session_free(struct session *s);

/*
 * Whether the session waits for its client and nothing else, as a crowd
 * of idle clients under transaction pooling does: between transactions,
 * no server connection, nothing queued, held, moved or listened for on
 * its behalf.  Its client's side then gives its buffers back
 * (endpoint_park) until the client's next bytes, or a last word, wake it.
 * Nearest's sessions and the console's keep theirs.
 */
static bool session_quiet(const struct session *s)
{
    return s->busy == 0 && !s->closed && s->phase == PHASE_ACTIVE && txn_next_detached_idle(s) &&
           s->login == NULL && s->rare->console == NULL && s->near == NULL &&
           s->rare->move == NULL && !s->move_answer_owed && !s->hold.held &&
           s->client.on_read != NULL &&
           !s->client.read_paused; /* paused too while the notification hub answers its LISTEN */
}

void session_callback_done(struct session *s)
{
    if (--s->busy > 0)
        return;
    if (s->closed)
        session_free(s);
    else if (s->servers_gone != NULL)
        server_conn_reap(s);
    else
        session_rest(s);
}

void session_rest(struct session *s)
{
    session_rare_settle(&s->rare, false);
    if (session_quiet(s) && endpoint_park(&s->client) && s->txn->rest != NULL)
        s->txn->rest(s);
}

/* The ring sent all the client was owed (the transaction's answer, as a rule). */
static void session_endpoint_drained(struct endpoint *ep)
{
    if (ep->session != NULL && ep->client)
        session_rest(ep->session);
}

/*
 * The client hung up while its reads were paused: back-pressure from the
 * server, a PAUSE or pause step holding it, a console command it waits on,
 * or the delivery of the cancel request it sent (which goes on).  A
 * nearest session takes it as its end of stream, once they resume.
 */
static void session_hangup(struct session *s, struct endpoint *ep)
{
    if (!ep->client)
        return;
    if (s->txn != NULL && s->txn->client_ended != NULL && s->txn->client_ended(s, true))
        return;
    if (s->login != NULL && s->login->startup.kind == STARTUP_CANCEL_REQUEST)
        session_close(s, "cancel request handled; the client left before it was delivered");
    else
        session_close(s, "client closed the connection while pgnear was not reading from it");
}

void session_endpoint_event(struct endpoint *ep, short what)
{
    struct session *s = ep->session;
    /*
     * A server connection set aside unread (a nearest session's parked
     * one, a sync's spare) has no session: a kick left from before it was
     * set aside is dropped; whoever takes it again sets its reader, which
     * hands it what waits in its input.
     */
    if (s == NULL)
        return;
    s->busy++;
    if (what & EV_CLOSED)
        session_hangup(s, ep);
    else
        endpoint_dispatch(s, ep, what, &s->closed);
    /* Where it is now, for its timeouts: nothing while they are all off. */
    if (__builtin_expect(s->timeouts != NULL, 0) && s->timeouts->on && !s->closed &&
        s->phase == PHASE_ACTIVE)
        s->w->shared->flow->relay_event(s);
    session_callback_done(s);
}

/*
 * A socket of the session failed: a client's failure ends the session; a
 * server's that came reading (gone) ends it with what the client is owed
 * (session_server_gone), one that came writing closes it.
 */
static void session_endpoint_failed(struct session *s, struct endpoint *ep, const char *why,
                                    bool gone)
{
    if (!ep->client && gone)
        session_server_gone(s, why);
    else if (ep->client && gone && ep->eof && s->txn != NULL && s->txn->client_ended != NULL &&
             s->txn->client_ended(s, false))
        return; /* what the client sent before it left still runs */
    else
        session_close(s, why);
}

uint64_t session_endpoint_log_id(const struct endpoint *ep)
{
    return ep->session->id;
}

const struct endpoint_owner session_endpoint_owner = {
    .event = session_endpoint_event,
    .failed = session_endpoint_failed,
    .log_id = session_endpoint_log_id,
    .drained = session_endpoint_drained,
};

void session_tune_tcp(const struct config *cfg, int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (!cfg->tcp_keepalive)
        return;
    int idle = cfg->tcp_keepidle_ms / 1000, intvl = cfg->tcp_keepintvl_ms / 1000;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cfg->tcp_keepcnt, sizeof(cfg->tcp_keepcnt));
}

void session_set_addr(struct session *s, const struct sockaddr *sa, size_t len)
{
    memset(&s->addr, 0, sizeof(s->addr));
    if (sa->sa_family == AF_INET && len >= sizeof(s->addr.in))
        s->addr.in = *(const struct sockaddr_in *)sa;
    else if (sa->sa_family == AF_INET6 && len >= sizeof(s->addr.in6))
        s->addr.in6 = *(const struct sockaddr_in6 *)sa;
    else
        s->addr.sa.sa_family = sa->sa_family == AF_INET || sa->sa_family == AF_INET6
                                   ? AF_UNSPEC /* cut short: no address */
                                   : sa->sa_family;
}

void session_label_peer(struct session *s, const char *fmt, ...)
{
    va_list ap;
    char *label;
    va_start(ap, fmt);
    int n = vasprintf(&label, fmt, ap);
    va_end(ap);
    struct session_rare *r = n >= 0 ? session_rare_own(&s->rare) : NULL;
    if (r == NULL) {
        if (n >= 0)
            free(label);
        return;
    }
    free(r->peer_label);
    r->peer_label = label;
}

static void session_close_when_flushed(struct session *s);

static void session_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    phase_timeout(arg);
}

struct event *session_timer(struct session *s)
{
    if (s->timer == NULL)
        s->timer = evtimer_new(s->w->base, session_timer_cb, s);
    return s->timer;
}

bool session_set_timer(struct session *s, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (ms <= 0) {
        if (s->timer != NULL)
            event_del(s->timer);
        return true;
    }
    struct event *timer = session_timer(s);
    return timer != NULL && event_add(timer, &tv) == 0;
}

struct session *session_new(struct worker *w, int fd)
{
    struct session *s = slab_alloc(&w->sessions, sizeof(*s));
    if (s == NULL) {
        __atomic_sub_fetch(&w->shared->clients, 1, __ATOMIC_RELAXED);
        return NULL;
    }
    s->w = w;
    s->rare = &session_rare_none;
    /* Unique across workers: the worker's own count, interleaved (shared_client_worker). */
    s->id = ++w->next_client_id * (uint64_t)w->shared->nworkers + (uint64_t)w->index -
            (uint64_t)w->shared->nworkers + 1;
    s->connected_at = (uint32_t)time(NULL);
    s->cfg = config_ref(w->cfg);
    s->list = &w->login_sessions;
    list_append(s->list, &s->node);
    s->timer = evtimer_new(w->base, session_timer_cb, s);
    s->login = slab_alloc(&w->logins, sizeof(*s->login));
    if (s->login != NULL)
        s->login->accepted_us = monotonic_us();
    if (s->timer == NULL || s->login == NULL ||
        endpoint_init(&s->client, w, &session_endpoint_owner, s, true, fd) != 0) {
        /* The caller closes it (it owns fd until then); session_close frees what is here. */
        slab_free(&w->logins, s->login);
        s->login = NULL;
    }
    return s;
}

/* Refuses a connection beyond max_client_conn without reading from it. */
static void session_refuse(struct worker *w, int fd, enum session_transport transport)
{
    uint8_t buf[256];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    struct pkt_report r = {
        .severity = "FATAL", .sqlstate = "53300", .message = "sorry, too many clients already"};
    pkt_put_report(&pb, 'E', &r);
    /* Before the upgrade a WebSocket client speaks HTTP (and wss TLS: it only sees the close). */
    if (transport == TRANSPORT_WEBSOCKET)
        pb.len = w->cfg->websocket_tls ? 0 : http_response((char *)buf, sizeof(buf), 503, NULL);
    if (pkt_ok(&pb) && pb.len > 0 && send(fd, buf, pb.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug(0, "could not send refusal: %s", strerror(errno));
    close(fd);
    stat_inc(&w->stats.sessions_refused);
    log_warn(0, "refused connection: %s",
             w->draining ? "shutting down" : "max_client_conn reached");
}

/* A connection accepted: a session, or refused (over max_client_conn; draining, unless late). */
static void session_accept_as(struct worker *w, int fd, const struct sockaddr *addr, int addrlen,
                              enum session_transport transport, bool late)
{
    bool unix_socket = transport == TRANSPORT_UNIX || transport == TRANSPORT_CANCEL;
    /* A draining pgnear's cancel socket exists for its drain: served then. */
    bool refuse = w->draining && !late && transport != TRANSPORT_CANCEL;
    if (refuse ||
        __atomic_add_fetch(&w->shared->clients, 1, __ATOMIC_RELAXED) > w->cfg->max_client_conn) {
        if (!refuse)
            __atomic_sub_fetch(&w->shared->clients, 1, __ATOMIC_RELAXED);
        session_refuse(w, fd, transport);
        return;
    }
    crowd_memory_fd(&w->crowd, fd);
    struct session *s = session_new(w, fd);
    if (s == NULL) {
        close(fd);
        log_error(0, "out of memory accepting a connection");
        return;
    }
    crowd_memory_clients(&w->crowd, worker_client_count(w));
    s->unix_socket = unix_socket;
    s->cancel_only = transport == TRANSPORT_CANCEL;
    s->websocket = transport == TRANSPORT_WEBSOCKET;
    session_set_addr(s, addr, (size_t)addrlen); /* its TCP options are its listener's */
    if (s->login == NULL) {
        session_close(s, "out of memory");
        return;
    }
    stat_inc(&w->stats.sessions_total);
    slog_debug(s, "connection from %s", session_peer(s).text);
    phase_begin(s);
}

void session_accept(struct worker *w, int fd, const struct sockaddr *addr, int addrlen,
                    enum session_transport transport)
{
    session_accept_as(w, fd, addr, addrlen, transport, false);
}

void session_accept_backlog(struct worker *w, int fd, const struct sockaddr *addr, int addrlen,
                            enum session_transport transport)
{
    session_accept_as(w, fd, addr, addrlen, transport, true);
}

/*
 * What SHOW CLIENTS and the session's routes take of the caller's place
 * once the login's state is gone: the coordinates, and the texts whose
 * lengths it returns in len (their sum).
 */
static size_t session_keep_origin(struct session *s, const struct session_login *l,
                                  const char *text[ORIGIN_TEXTS], size_t len[ORIGIN_TEXTS])
{
    struct session_origin *o = &s->origin;
    const char *place = l->loc.matched != NULL ? l->loc.matched : l->loc.city;
    o->source = (uint8_t)l->loc.source;
    o->has_coords = l->loc.has_coords;
    o->lat = (float)l->loc.lat;
    o->lon = (float)l->loc.lon;
    o->km = -1.0f;
    if (l->plan_index < l->plan_len && locality_caller_placed(&l->loc))
        o->km = (float)route_km(l->plan_cos[l->plan_index]);
    text[ORIGIN_VIA] = l->loc.via != NULL ? l->loc.via : "";
    text[ORIGIN_PLACE] = place;
    text[ORIGIN_REGION] = l->loc.region != NULL ? l->loc.region->name : "";
    text[ORIGIN_CITY] = l->loc.city;
    static const size_t max[ORIGIN_TEXTS] = {ORIGIN_VIA_MAX, ORIGIN_PLACE_MAX, ORIGIN_REGION_MAX,
                                             ORIGIN_CITY_MAX};
    size_t total = 0;
    for (int i = 0; i < ORIGIN_TEXTS; i++)
        total += (len[i] = strnlen(text[i], max[i]));
    return total;
}

/*
 * What the session keeps of its login as it ends (session_identity.h):
 * its names, the origin's texts, server_startup.
 */
static void session_keep_what_login_gave(struct session *s, const struct session_login *l)
{
    const char *text[ORIGIN_TEXTS];
    size_t len[ORIGIN_TEXTS];
    session_keep_origin(s, l, text, len);
    session_keep_identity(s, text, len);
}

/*
 * Whether the session may be moved to another server later (move.h), and
 * under auth = scram the keys to log in for it there.
 */
/* Why pgnear may not log in for the client elsewhere (static text); NULL: it may. */
static const char *session_unmovable_why(const struct session *s, const struct session_login *l)
{
    bool movable = true;
    if (s->cfg->auth != AUTH_SCRAM || scram_server_client_key(&l->scram_srv) == NULL)
        return s->cfg->auth == AUTH_PASSTHROUGH
                   ? "auth = passthrough: pgnear cannot log in for the client"
                   : "auth is not scram: pgnear cannot log in for the client elsewhere";
    if (l->hints.has_movable && config_parse_bool(l->hints.movable, &movable) && !movable)
        return "the client connected with pgnear.movable=off";
    if (!config_session_movable(s->cfg, s->user, s->database))
        return "movable = off for its user or database";
    return NULL;
}

bool session_may_log_in_elsewhere(const struct session *s)
{
    return s->login != NULL && !session_login_internal(s->login) && !s->login->for_console &&
           session_unmovable_why(s, s->login) == NULL;
}

static void session_keep_secret(struct session *s, const struct session_login *l)
{
    if (s->phase != PHASE_ACTIVE || session_login_internal(l) || l->for_console)
        return;
    s->unmovable = session_unmovable_why(s, l);
    if (s->unmovable == NULL &&
        (s->secret = session_secret_take(s->w, scram_server_client_key(&l->scram_srv),
                                         &l->verifier)) == NULL)
        s->unmovable = "out of memory";
}

void session_login_end(struct session *s)
{
    struct session_login *l = s->login;
    if (l == NULL)
        return;
    session_keep_secret(s, l); /* (reads the hints, in the startup packet) */
    /*
     * Before what the origin's texts point into goes (the PROXY header's
     * TLVs, the headers, the configuration the login began under); with it
     * the startup packet, which nothing below reads.
     */
    if (s->client.stream.fd >= 0 && !s->closed && s->user != NULL) /* a fetcher has no origin */
        session_keep_what_login_gave(s, l);
    /*
     * The login's timeouts end with it, and an idle session needs no timer
     * of its own: one is made again when a timeout is armed (timeouts.c).
     */
    if (s->timer != NULL) {
        event_free(s->timer);
        s->timer = NULL;
    }
    auth_lookup_cancel(l->auth_lookup);
    s->w->shared->flow->login_end(s);
    free(l->server_options);
    config_unref(l->cfg_began);
    free(l->pp);
    free(l->geo);
    param_set_free(&l->handover.params);
    /*
     * SCRAM keys and the verifier are secrets: nothing of them stays in
     * freed memory.  They are wiped where they are, not the whole 10 kB
     * of the login (a fetcher's is made and freed at every pooled
     * transaction): a field that holds a secret is listed here.
     */
    scram_server_cleanup(&l->scram_srv);
    scram_client_cleanup(&l->scram_cli);
    OPENSSL_cleanse(&l->verifier, sizeof(l->verifier));
    OPENSSL_cleanse(l->warm_client_key, sizeof(l->warm_client_key));
    slab_free(&s->w->logins, l);
    s->login = NULL;
    if (s->w->logins.lent == 0) /* no login in flight: the pages kept for more go */
        slab_trim(&s->w->logins);
}

static struct session *session_find_on(struct list *l, uint64_t id)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, l)
    {
        struct session *s = list_entry(pos, struct session, node);
        if (s->id == id)
            return s;
    }
    return NULL;
}

struct session *session_find(struct worker *w, uint64_t id)
{
    struct list *lists[] = {&w->active_sessions, &w->login_sessions, &w->waiting_sessions,
                            &w->admin_sessions};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        struct session *s = session_find_on(lists[i], id);
        if (s != NULL)
            return s;
    }
    return NULL;
}

static void session_free(struct session *s)
{
    struct worker *w = s->w;
    session_login_end(s);
    phase_end(s);
    server_conn_reap(s);
    free(s->fence);
    free(s->timeouts);
    session_rare_settle(&s->rare, true);
    slab_free(&w->sessions, s);
    __atomic_sub_fetch(&w->shared->clients, 1, __ATOMIC_RELAXED);
    crowd_memory_clients(&w->crowd, worker_client_count(w));
    worker_check_drained(w);
}

void session_close(struct session *s, const char *why)
{
    struct worker *w = s->w;
    if (s->closed)
        return;
    uint64_t server_bytes =
        s->server_bytes +
        (s->server_conn ? s->server_conn->ep.bytes_in - s->server_conn->bytes_in_at_attach : 0);
    struct peer_text peer = session_peer(s);
    if (s->list == &w->active_sessions)
        slog_info(s, "closing session of %s: %s (%llu bytes from client, %llu from server)",
                  peer.text, why, (unsigned long long)s->client.bytes_in,
                  (unsigned long long)server_bytes);
    else if (s->list == &w->admin_sessions)
        slog_info(s, "closing admin console session of %s: %s", peer.text, why);
    else if (s->client.stream.fd < 0) /* internal (a mover, a fetcher): each says what failed */
        slog_debug(s, "closing %s: %s", peer.text, why);
    else
        slog_info(s, "closing connection from %s during login: %s", peer.text, why);
    cancel_keys_remove(w->shared, &s->cancel);
    cancel_entry_free(&s->cancel);
    s->closing_why = why;
    if (s->rare->moving != NULL)
        s->rare->moving->closing(s);
    if (s->txn != NULL)
        s->txn->life.closing(s);
    if (s->login != NULL) {
        auth_lookup_cancel(s->login->auth_lookup);
        s->login->auth_lookup = NULL;
        w->shared->flow->login_abort(s);
    }
    session_secret_drop(s->w, s->secret);
    s->secret = NULL;
    list_remove(s->list, &s->node);
    endpoint_free(&s->client);
    if (s->server_conn != NULL)
        w->shared->flow->server_release(s->server_conn);
    if (s->timer)
        event_free(s->timer);
    s->timer = NULL;
    ws_keepalive_stop(w, s->ws_keepalive);
    s->ws_keepalive = NULL;
    if (s->client_counted) /* before user and database, which point into what it kept, go */
        client_limits_leave(&w->shared->client_limits, s->user, s->database);
    s->client_counted = false;
    session_drop_identity(s);
    config_unref(s->cfg);
    s->cfg = NULL;
    s->closed = true;
    /* Inside one of its own event callbacks the memory stays until the callback returns. */
    if (s->busy == 0)
        session_free(s);
}

/*
 * After a FATAL report nothing more is read; close when the report is out,
 * the socket lingering (runtime/linger.h): what the client sent meanwhile,
 * unread, would make the close a reset that can lose the report.
 */
static void session_close_when_flushed(struct session *s)
{
    if (endpoint_flush(s, &s->client) < 0)
        return;
    if (endpoint_queued(&s->client) != 0)
        return;
    s->client.linger = true;
    session_close(s,
                  s->websocket && s->client.stream.ws == NULL ? "HTTP answer sent" : "error sent");
}

/* Reads no more; closes once what the client is owed has been written (or after 5 s). */
static void session_finish(struct session *s)
{
    phase_enter(s, PHASE_CLOSING);
    s->client.on_write = session_close_when_flushed;
    endpoint_want_drain(&s->client, true);
    endpoint_set_reader(&s->client, NULL);
    if (!session_set_timer(s, 5000)) {
        session_close(s, "out of memory");
        return;
    }
    session_close_when_flushed(s);
}

/*
 * A report of pgnear's own can only start where a server message would:
 * in the middle of one being relayed the client would take it for the
 * rest of that message (a DataRow with pgnear's bytes in it).  A closing
 * session has had its last word already, or its stream was cut short.
 */
static bool session_may_report(const struct session *s)
{
    if (s->phase == PHASE_CLOSING)
        return false;
    return s->phase != PHASE_ACTIVE || s->server_conn == NULL ||
           s->server_conn->ep.fwd_remaining == 0;
}

void session_send_last(struct session *s, const void *p, size_t n, const char *why)
{
    if (n == 0 || s->client.stream.fd < 0 || endpoint_wake(&s->client) < 0 ||
        evbuffer_add(s->client.out, p, n) != 0) {
        session_close(s, why);
        return;
    }
    slog_debug(s, "last answer: %s", why);
    session_finish(s);
}

void session_count_login_failure(struct session *s, const char *sqlstate)
{
    if (!phase_in_login(s->phase) || s->login == NULL || s->login->failure_counted)
        return;
    /* pgnear's own logins (min_pool_size, a move's mover) are nobody's failed login. */
    if (session_login_internal(s->login))
        return;
    s->login->failure_counted = true;
    stat_inc(&s->w->stats.login_failures);
    stat_inc(&s->w->stats.login_errors_by_class[stat_sqlstate_class(sqlstate ? sqlstate : "08")]);
}

void session_login_closed(struct session *s, const char *why)
{
    session_count_login_failure(s, NULL);
    session_close(s, why);
}

void session_fail_msg(struct session *s, const char *sqlstate, const char *fmt, ...)
{
    struct pg_error e;
    va_list ap;
    va_start(ap, fmt);
    pg_error_setv(&e, sqlstate, fmt, ap);
    va_end(ap);
    session_fail(s, &e);
}

void session_fail(struct session *s, const struct pg_error *e)
{
    uint8_t buf[2048];
    struct pktbuf pb;
    const char *msg = e->message;
    pkt_init(&pb, buf, sizeof(buf));
    pg_error_put(&pb, 'E', "FATAL", e);
    session_log(LOG_INFO, s, e->sqlstate, "FATAL %s: %s%s%s", e->sqlstate, msg,
                e->detail[0] ? " — " : "", e->detail);
    session_count_login_failure(s, e->sqlstate);
    bool report = session_may_report(s); /* before the detach forgets where the relay was */
    /* Drop the server side now; the client gets the report (or what came before), then EOF. */
    if (s->server_conn != NULL)
        server_conn_close(s->server_conn, false);
    if (!pkt_ok(&pb) || s->client.stream.fd < 0 || endpoint_wake(&s->client) < 0) {
        /* An internal session keeps it for whoever it logs in for (a fetcher's session, txn.c). */
        if (pkt_ok(&pb) && s->client.out != NULL)
            evbuffer_add(s->client.out, buf, pb.len);
        session_close(s, msg);
        return;
    }
    if (report)
        evbuffer_add(s->client.out, buf, pb.len);
    session_finish(s);
}

void session_server_gone(struct session *s, const char *why)
{
    struct server_conn *sc = s->server_conn;
    if (phase_in_login(s->phase) && !sc->sent_to_client) {
        phase_server_failed(s, why, HOST_UNREACHABLE);
        return;
    }
    if (s->phase == PHASE_ACTIVE && s->client.last_type == 'X' && s->client.fwd_remaining == 0) {
        /* The client said Terminate; the server hanging up is the normal end. */
        session_close(s, "client terminated the session");
        return;
    }
    server_conn_ended_by_server(sc);
    /* What transaction pooling holds of the server's answer is the client's, a FATAL in it too. */
    if (s->txn != NULL && s->phase == PHASE_ACTIVE && !s->txn->server_gone(s))
        return;
    bool explained = sc->ep.last_type == 'E' && sc->ep.fwd_remaining == 0;
    bool cut = sc->ep.fwd_remaining != 0;
    /* Idle under session pooling, its server gone without a word (a fast shutdown): it may move. */
    const struct session_flow *flow = s->w->shared->flow;
    if (!explained && s->phase == PHASE_ACTIVE && s->txn == NULL &&
        flow->server_ended_idle != NULL && flow->server_ended_idle(s, NULL, 0, why))
        return;
    struct pg_error err; /* told before the close, which frees what it names */
    pg_error_set(&err, "08006", "server closed the connection unexpectedly");
    pg_error_detail(&err, "The server %s:%d of region %s closed the connection: %s.",
                    sc->host->name, sc->host->port, sc->region->name, why);
    pg_error_hint(&err, "The server probably terminated abnormally before or while processing the "
                        "request.");
    server_conn_close(sc, false);
    if (explained || cut || s->phase == PHASE_CLOSING) {
        /* The server said why, or the client's stream is cut mid-message anyway. */
        session_finish(s);
        return;
    }
    session_fail(s, &err);
}

bool session_may_share_server(const struct session *s)
{
    if (!config_pooling(s->cfg) || s->login == NULL)
        return false;
    if (strlen(s->user) >= SERVER_POOL_NAME_MAX || strlen(s->database) >= SERVER_POOL_NAME_MAX)
        return false;
    const struct startup_packet *sp = &s->login->startup;
    for (size_t i = 0; i < sp->nparams; i++) {
        const char *name = sp->params[i].name;
        /* A walsender, or a protocol option: a property of the connection, not a setting. */
        if (strcmp(name, "replication") == 0 || strncmp(name, "_pq_.", 5) == 0)
            return false;
    }
    return true;
}
