/*
 * client_login.c — the client side of a new connection: SSLRequest and
 * TLS, GSSENCRequest, CancelRequest, the StartupMessage and protocol
 * version negotiation.  Authentication follows in client_auth.c (auth =
 * scram) or is relayed by server_login.c (auth = passthrough).
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/pkt.h"
#include "protocol/tls.h"
#include "proxy/cancel.h"
#include "proxy/client_auth.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"
#include "routing/route.h"

static void client_startup_on_read(struct session *s);

static void client_fail_protocol(struct session *s, const char *msg)
{
    s->w->stats.login_failures++;
    session_fail(s, "08P01", msg, NULL, NULL);
}

static void client_tls_step(struct session *s)
{
    int rc = stream_tls_accept(&s->client.stream);
    if (rc == STREAM_AGAIN) {
        endpoint_watch(&s->client, s->client.stream.want);
        if (s->client.stream.want == STREAM_WANT_READ && s->client.write_armed) {
            event_del(s->client.wev);
            s->client.write_armed = false;
        }
        return;
    }
    if (rc != 0) {
        char why[256];
        stream_tls_error(why, sizeof(why));
        s->w->stats.login_failures++;
        session_close(s, why);
        return;
    }
    if (s->client.write_armed) {
        event_del(s->client.wev);
        s->client.write_armed = false;
    }
    s->client_tls = true;
    s->phase = PHASE_STARTUP;
    s->client.on_read = client_startup_on_read;
    s->client.on_write = NULL;
    log_debug(s->id, "TLS established (%s)", SSL_get_version(s->client.stream.ssl));
    /* The handshake may have left decrypted bytes inside OpenSSL. */
    if (SSL_pending(s->client.stream.ssl) > 0)
        event_active(s->client.rev, EV_READ, 0);
}

/* CVE-2021-23214: bytes after SSLRequest would be read as if encrypted. */
static void client_handle_ssl_request(struct session *s)
{
    struct config *cfg = s->cfg;
    if (evbuffer_get_length(s->client.in) > 0) {
        client_fail_protocol(s, "received unencrypted data after SSL request");
        return;
    }
    if (s->client_tls) {
        client_fail_protocol(s, "SSL request received on an encrypted connection");
        return;
    }
    if (cfg->client_tls_ctx == NULL || s->unix_socket) {
        endpoint_send(s, &s->client, "N", 1);
        return;
    }
    if (stream_write_raw(&s->client.stream, "S", 1) != 1) {
        session_close(s, "could not answer SSL request");
        return;
    }
    s->client.stream.ssl = tls_new_client_ssl(cfg->client_tls_ctx, s->client.stream.fd);
    if (s->client.stream.ssl == NULL) {
        session_close(s, "could not create TLS session");
        return;
    }
    s->phase = PHASE_CLIENT_TLS;
    s->client.on_read = client_tls_step;
    s->client.on_write = client_tls_step;
    client_tls_step(s);
}

/* Tells a client asking for more than pgnear speaks what it gets instead. */
static int client_negotiate_version(struct session *s)
{
    const struct startup_packet *sp = &s->startup;
    uint16_t asked = (uint16_t)PROTO_MINOR(sp->version);
    s->client_minor = asked > PROTO_LATEST_MINOR ? PROTO_LATEST_MINOR : asked;
    if (asked <= PROTO_LATEST_MINOR && sp->n_unknown_pq == 0)
        return 0;
    uint8_t buf[2048];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_begin(&pb, 'v');
    pkt_put_u32(&pb, PROTO_VERSION(3, s->client_minor));
    pkt_put_u32(&pb, (uint32_t)sp->n_unknown_pq);
    for (size_t i = 0; i < sp->n_unknown_pq; i++)
        pkt_put_cstr(&pb, sp->unknown_pq[i]);
    pkt_end(&pb);
    if (!pkt_ok(&pb)) {
        client_fail_protocol(s, "too many protocol options in startup packet");
        return -1;
    }
    return endpoint_send(s, &s->client, buf, pb.len);
}

static void client_handle_startup(struct session *s)
{
    struct config *cfg = s->cfg;
    const struct startup_packet *sp = &s->startup;
    if (cfg->client_tls == CLIENT_TLS_REQUIRE && !s->client_tls && !s->unix_socket) {
        s->w->stats.login_failures++;
        session_fail(s, "28000", "pgnear requires TLS connections",
                     "client_tls = require, and this connection is not encrypted.",
                     "Connect with sslmode=require or stronger.");
        return;
    }
    if (client_negotiate_version(s) < 0)
        return;
    const char *app = startup_param(sp, "application_name");
    log_info(s->id, "login from %s: user=%s database=%s%s%s%s", s->peer, sp->user, sp->database,
             app ? " application_name=" : "", app ? app : "", s->client_tls ? " tls" : "");
    struct route_decision rd;
    route_pick_region(&cfg->regions, cfg->default_region_ptr, &rd);
    s->region = rd.region;
    s->locality_source = rd.source;
    if (cfg->auth == AUTH_SCRAM)
        client_auth_start(s);
    else
        server_login_start(s);
}

/* Takes the whole first packet off the buffer once it has arrived. */
static int client_take_packet(struct session *s)
{
    uint8_t hdr[4];
    uint32_t len;
    if (evbuffer_copyout(s->client.in, hdr, 4) < 4)
        return 0;
    int rc = startup_packet_length(hdr, 4, &len);
    if (rc != STARTUP_OK) {
        client_fail_protocol(s, startup_strerror(rc));
        return -1;
    }
    if (evbuffer_get_length(s->client.in) < len)
        return 0;
    free(s->startup_raw);
    s->startup_raw = malloc(len);
    if (s->startup_raw == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    evbuffer_remove(s->client.in, s->startup_raw, len);
    rc = startup_parse(s->startup_raw, len, &s->startup);
    if (rc != STARTUP_OK) {
        client_fail_protocol(s, startup_strerror(rc));
        return -1;
    }
    return 1;
}

static void client_startup_process(struct session *s)
{
    for (;;) {
        int rc = client_take_packet(s);
        if (rc <= 0)
            return;
        switch (s->startup.kind) {
        case STARTUP_SSL_REQUEST:
            client_handle_ssl_request(s);
            return;
        case STARTUP_GSSENC_REQUEST:
            if (evbuffer_get_length(s->client.in) > 0) {
                client_fail_protocol(s,
                                     "received unencrypted data after GSSAPI encryption request");
                return;
            }
            if (endpoint_send(s, &s->client, "N", 1) < 0)
                return;
            continue;
        case STARTUP_CANCEL_REQUEST:
            cancel_handle_request(s->w, &s->startup, s->id);
            session_close(s, "cancel request handled");
            return;
        case STARTUP_MESSAGE:
            client_handle_startup(s);
            return;
        }
    }
}

static void client_startup_on_read(struct session *s)
{
    int more;
    ssize_t n = endpoint_fill(s, &s->client, STARTUP_MAX_LEN, &more);
    if (n < 0)
        return;
    if (more)
        event_active(s->client.rev, EV_READ, 0);
    if (n > 0)
        client_startup_process(s);
}

void client_login_start(struct session *s)
{
    s->phase = PHASE_STARTUP;
    s->client.on_read = client_startup_on_read;
    session_set_timer(s, s->cfg->client_login_timeout_ms);
    event_add(s->client.rev, NULL);
}
