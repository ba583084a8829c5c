/*
 * server_login.c — connecting to a server of the chosen region: TCP,
 * SSLRequest and TLS per server_tls, the StartupMessage, authentication
 * (relayed, or done by pgnear with the client's ClientKey), and the
 * server's ParameterStatus and BackendKeyData up to ReadyForQuery.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/pkt.h"
#include "protocol/tls.h"
#include "proxy/cancel.h"
#include "proxy/config.h"
#include "proxy/hint_notice.h"
#include "proxy/log.h"
#include "proxy/login_throttle.h"
#include "proxy/msg_loop.h"
#include "proxy/phase.h"
#include "proxy/server_auth.h"
#include "proxy/server_conn.h"
#include "proxy/server_dial.h"
#include "proxy/server_login.h"
#include "proxy/session.h"
#include "proxy/worker.h"
#include "routing/health.h"
#include "routing/region.h"

/* Login messages are small; anything this large is a broken server. */
#define LOGIN_MAX_MESSAGE (1024 * 1024)

static void server_connect_host(struct session *s, struct region_host *h);

/* The region of the plan being tried. */
static struct region *server_region(const struct session *s)
{
    return s->login->plan[s->login->plan_index];
}

/*
 * The order to try the region's hosts in: up primaries, then up standbys
 * (by their last health check; a region of standbys still serves
 * read-only work), each group in configured order; all hosts in
 * configured order when none is up.
 */
static void server_order_hosts(struct session *s)
{
    const struct region *r = server_region(s);
    s->login->host_count = s->login->host_pos = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < r->nhosts; i++) {
            const struct region_host *h = &r->hosts[i];
            bool take = s->login->region_any_host
                            ? pass == 0
                            : host_is_up(h) && host_is_standby(h) == (pass == 1);
            if (take)
                s->login->host_order[s->login->host_count++] = (uint8_t)i;
        }
    }
}

/* The next host worth trying (still up, unless none was); NULL when none is left. */
static struct region_host *server_pick_host(struct session *s)
{
    struct region *r = server_region(s);
    while (s->login->host_pos < s->login->host_count) {
        struct region_host *h = &r->hosts[s->login->host_order[s->login->host_pos++]];
        if (s->login->region_any_host || host_is_up(h))
            return h;
    }
    return NULL;
}

/* Enters plan[index]: its up hosts, or all of them when none is up. */
static struct region_host *server_enter_region(struct session *s, size_t index)
{
    s->login->plan_index = index;
    s->region = server_region(s);
    s->login->region_any_host = !region_is_up(server_region(s));
    server_order_hosts(s);
    return server_pick_host(s);
}

/* What a failed attempt says about its host. */
enum server_verdict {
    HOST_BUSY,        /* it answered, but takes no sessions now: not marked */
    HOST_UNREACHABLE, /* refused, reset, closed, failed TLS: down at once */
    HOST_SLOW,        /* did not answer in time: down at health_check_fall in a row */
};

/* Marks the host as the verdict says, for every session, without waiting for its health check. */
static void server_mark_host(struct session *s, const struct server_conn *sc, enum server_verdict v,
                             const char *why)
{
    struct region_host *h = sc->host;
    bool down = false;
    if (v == HOST_UNREACHABLE)
        down = health_mark_down(h);
    if (v == HOST_SLOW) {
        int n = health_count_timeout(h, s->cfg->health_check_fall, &down);
        if (!down && n < s->cfg->health_check_fall)
            log_info(s->id, "host %s:%d of region %s timed out (%d of %d); it stays up for now",
                     h->name, h->port, sc->region->name, n, s->cfg->health_check_fall);
    }
    if (down)
        log_warn(s->id, "host %s:%d of region %s is down: %s", h->name, h->port, sc->region->name,
                 why);
}

/*
 * Gives up on this host.  Before anything from it reached the client the
 * next host is tried, then the next region of the plan; after that the
 * client gets the error.
 */
static void server_give_up(struct session *s, const char *why, enum server_verdict v)
{
    struct server_conn *sc = s->server_conn;
    struct region_host *h;
    stat_inc(&s->w->stats.server_connect_failures);
    log_warn(s->id, "server %s:%d of region %s failed: %s", sc->host->name, sc->host->port,
             sc->region->name, why);
    server_mark_host(s, sc, v, why);
    bool sent_to_client = sc->sent_to_client;
    server_conn_close(sc, false);
    if (sent_to_client) {
        session_fail(s, "08006", "lost the server connection during login", why, NULL);
        return;
    }
    if ((h = server_pick_host(s)) != NULL) {
        server_connect_host(s, h);
        return;
    }
    for (size_t next = s->login->plan_index + 1; next < s->login->plan_len; next++) {
        if ((h = server_enter_region(s, next)) != NULL) {
            stat_inc(&s->w->stats.failovers);
            log_info(s->id, "failing over to region %s", server_region(s)->name);
            server_connect_host(s, h);
            return;
        }
    }
    char msg[256];
    snprintf(msg, sizeof(msg), "could not connect to any server of region \"%s\"%s",
             s->login->plan[0]->name, s->login->plan_len > 1 ? " or of the regions after it" : "");
    stat_inc(&s->w->stats.login_failures);
    session_fail(s, "08001", msg, why, NULL);
}

void server_try_next(struct session *s, const char *why)
{
    server_give_up(s, why, HOST_UNREACHABLE);
}

void server_login_timeout(struct session *s)
{
    server_give_up(s, "timeout", HOST_SLOW);
}

/* The StartupMessage as the client sent it, minus what is pgnear's own. */
static int server_send_startup(struct session *s)
{
    const struct startup_packet *sp = &s->login->startup;
    uint8_t buf[STARTUP_MAX_LEN];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_begin(&pb, 0);
    pkt_put_u32(&pb, PROTO_VERSION(3, PROTO_LATEST_MINOR));
    for (size_t i = 0; i < sp->nparams; i++) {
        const char *name = sp->params[i].name, *value = sp->params[i].value;
        if (strncasecmp(name, "pgnear.", 7) == 0)
            continue;
        if (strcmp(name, "options") == 0) {
            if (s->login->server_options == NULL || s->login->server_options[0] == '\0')
                continue;
            value = s->login->server_options;
        }
        pkt_put_cstr(&pb, name);
        pkt_put_cstr(&pb, value);
    }
    pkt_put_u8(&pb, 0);
    pkt_end(&pb);
    if (!pkt_ok(&pb)) {
        session_fail(s, "08P01", "startup packet too long", NULL, NULL);
        return -1;
    }
    phase_enter(s, PHASE_SERVER_LOGIN);
    /* Under auth = scram, nothing is read from the client until ReadyForQuery. */
    if (s->cfg->auth == AUTH_PASSTHROUGH)
        endpoint_set_reader(&s->client, server_auth_client_on_read);
    /* Until the server says something, it may still be a host that never answers. */
    session_set_timer(s, s->cfg->server_connect_timeout_ms);
    endpoint_set_reader(&s->server_conn->ep, server_login_on_read);
    return endpoint_send(s, &s->server_conn->ep, buf, pb.len);
}

/* Where the dial is, for the session timer: each stage gives up on the host when it expires. */
static enum session_phase server_dial_phase(enum server_dial_stage stage)
{
    switch (stage) {
    case DIAL_SSL_ANSWER:
        return PHASE_SERVER_SSL;
    case DIAL_HANDSHAKE:
        return PHASE_SERVER_TLS;
    default:
        return PHASE_CONNECT;
    }
}

/* The server endpoint's reader until the connection is up (TLS included). */
static void server_dialing(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    int rc = server_dial_step(&s->login->dial);
    phase_enter(s, server_dial_phase(s->login->dial.stage));
    if (rc == DIAL_AGAIN) {
        endpoint_arm(&sc->ep); /* for what the dial now waits for */
        return;
    }
    if (rc == DIAL_FAILED) {
        server_try_next(s, s->login->dial.why);
        return;
    }
    sc->tls = sc->ep.stream.ssl != NULL;
    if (sc->tls)
        log_debug(s->id, "server TLS established (%s)", SSL_get_version(sc->ep.stream.ssl));
    server_send_startup(s);
}

/* Errors of this machine, not of the host: out of descriptors, memory or local ports. */
static bool server_error_is_local(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM ||
           err == EADDRNOTAVAIL;
}

/*
 * pgnear itself ran out of something: this login fails, and nobody else
 * pays — the host is not marked down (it was never asked) and no other
 * host or region is tried, since they would fail the same way.
 */
static void server_fail_local(struct session *s, const char *call, int err)
{
    char detail[160];
    snprintf(detail, sizeof(detail), "%s failed: %s.", call, strerror(err));
    stat_inc(&s->w->stats.login_failures);
    log_warn(s->id, "no server connection for this login: %s failed: %s", call, strerror(err));
    session_fail(s, "53300", "pgnear could not open a connection to the server", detail,
                 "pgnear is out of file descriptors, memory or local ports; raise its "
                 "open-files limit (ulimit -n) or lower max_client_conn.");
}

static void server_connect_host(struct session *s, struct region_host *h)
{
    struct server_conn *sc = server_conn_new(s, server_region(s), h);
    if (sc == NULL) {
        session_fail(s, "53200", "out of memory", NULL, NULL);
        return;
    }
    struct server_dial *d = &s->login->dial;
    server_dial_init(d, &sc->ep.stream, s->cfg->server_tls_ctx,
                     (enum tls_server_mode)s->cfg->server_tls, h->name);
    phase_enter(s, PHASE_CONNECT);
    if (server_dial_start(d, (const struct sockaddr *)&h->addr, h->addrlen) == DIAL_FAILED) {
        if (server_error_is_local(d->failed_errno))
            server_fail_local(s, d->failed_call, d->failed_errno);
        else
            server_try_next(s, d->why);
        return;
    }
    session_tune_tcp(s->cfg, sc->ep.stream.fd);
    /* On failure the socket stays in the stream, and closing the connection closes it. */
    if (endpoint_attach(s, &sc->ep, sc->ep.stream.fd) != 0) {
        session_close(s, "out of memory");
        return;
    }
    s->login->host_downs_seen = health_downs(h);
    log_debug(s->id, "connecting to %s:%d in region %s", h->name, h->port, sc->region->name);
    session_set_timer(s, s->cfg->server_connect_timeout_ms);
    endpoint_wait_writable(&sc->ep, server_dialing);
}

void server_login_start(struct session *s)
{
    for (size_t i = 0; i < s->login->plan_len; i++) {
        struct region_host *h = server_enter_region(s, i);
        if (h != NULL) {
            server_connect_host(s, h);
            return;
        }
    }
    session_fail(s, "08001", "no region has a host to connect to", NULL, NULL);
}

/* The SQLSTATE of an ErrorResponse; "" when it has none. */
static const char *server_error_sqlstate(const uint8_t *body, uint32_t len)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    while (pkt_remaining(&r) > 0) {
        uint8_t code = pkt_get_u8(&r);
        if (code == 0)
            break;
        const char *v = pkt_get_cstr(&r);
        if (code == 'C')
            return v != NULL ? v : "";
    }
    return "";
}

/* Errors that mean "this node cannot take you now": worth the next host. */
static bool server_error_is_retryable(const char *sqlstate)
{
    return strcmp(sqlstate, "57P03") == 0 || strcmp(sqlstate, "53300") == 0 ||
           strcmp(sqlstate, "57P01") == 0 || strcmp(sqlstate, "53000") == 0;
}

/*
 * The host just served a login: it is evidently up, so its timeouts are
 * forgotten, and when it was down as this session started connecting,
 * it is up again now rather than after HEALTH_RISE checks.
 */
static void server_login_served(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    login_throttle_succeeded(s);
    if (health_note_login(sc->host, s->login->host_downs_seen))
        log_info(s->id, "host %s:%d of region %s is up: a session logged in through it",
                 sc->host->name, sc->host->port, sc->region->name);
}

/* BackendKeyData: the client gets the real process ID and pgnear's key. */
static int server_handle_key(struct session *s, const uint8_t *body, uint32_t len)
{
    if (len < 8 || len - 4 > CANCEL_KEY_MAX_LEN) {
        session_fail(s, "08P01", "server sent an invalid BackendKeyData message", NULL, NULL);
        return -1;
    }
    if (cancel_register(s, pkt_be32(body), body + 4, len - 4) != 0) {
        session_fail(s, "53200", "out of memory registering the cancel key", NULL, NULL);
        return -1;
    }
    uint8_t buf[64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_backend_key_data(&pb, s->server_conn->pid, s->cancel.client_key,
                             s->cancel.client_key_len);
    return evbuffer_add(s->client.out, buf, pb.len);
}

int server_forward(struct session *s, uint32_t body_len)
{
    struct server_conn *sc = s->server_conn;
    sc->sent_to_client = true;
    return evbuffer_remove_buffer(sc->ep.in, s->client.out, body_len + PKT_HEADER_LEN) < 0 ? -1 : 1;
}

/*
 * One whole login message from the server.  Returns 0 when it was
 * consumed here, 1 when it was forwarded, -1 when the session ended or
 * moved on.
 */
static int server_login_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    struct server_conn *sc = s->server_conn;
    if (!sc->answered) {
        /* It answers: what is left is the login's time, not the connect's. */
        sc->answered = true;
        session_set_timer(s, s->cfg->client_login_timeout_ms);
    }
    sc->ep.last_type = type;
    switch (type) {
    case 'R':
        return server_auth_message(s, body, len);
    case 'v': /* NegotiateProtocolVersion: for pgnear, not the client */
        log_debug(s->id, "server speaks protocol 3.%u", len >= 4 ? PROTO_MINOR(pkt_be32(body)) : 0);
        return 0;
    case 'K':
        return server_handle_key(s, body, len);
    case 'E': {
        const char *sqlstate = server_error_sqlstate(body, len);
        if (!sc->sent_to_client && server_error_is_retryable(sqlstate)) {
            /* Up, but not taking sessions now (starting, shutting down, full). */
            server_give_up(s, "server refused the connection", HOST_BUSY);
            return -1;
        }
        /* Under passthrough the server judges the password; under scram pgnear did. */
        if (s->cfg->auth == AUTH_PASSTHROUGH && strcmp(sqlstate, "28P01") == 0)
            login_throttle_failed(s);
        return server_forward(s, len);
    }
    case 'S':
        server_conn_note_param(sc, body, len);
        return server_forward(s, len);
    case 'Z':
        tx_track_init(&sc->tx, len >= 1 ? (char)body[0] : 0);
        server_login_served(s);
        hint_notice_queue(s); /* after AuthenticationOk, before the first ReadyForQuery */
        server_forward(s, len);
        phase_done(s);
        return -1;
    default:
        return server_forward(s, len);
    }
}

static void server_bad_length(struct session *s)
{
    server_try_next(s, "server sent an invalid message length");
}

void server_login_on_read(struct session *s)
{
    static const struct msg_reader reader = {
        .fill_max = 65536,
        .max_body = LOGIN_MAX_MESSAGE,
        .on_message = server_login_message,
        .on_bad_length = server_bad_length,
    };
    endpoint_read_messages(s, &s->server_conn->ep, &reader);
}
