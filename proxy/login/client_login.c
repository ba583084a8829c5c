/*
 * client_login.c — the client side of a new connection (PROXY_HEADER,
 * STARTUP, CLIENT_TLS): the PROXY header, SSLRequest and TLS (or TLS
 * at once: PostgreSQL 17's direct TLS),
 * GSSENCRequest, CancelRequest, the StartupMessage, protocol version
 * negotiation and the route.  Authentication follows (flow.c decides
 * which): pgnear's own (client_auth.c) or the server's, relayed
 * (server_login.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "protocol/lsn.h"
#include "protocol/pkt.h"
#include "protocol/tls.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/login/client_login.h"
#include "proxy/login/hint_notice.h"
#include "proxy/login/session_route.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel.h"
#include "proxy/session/fence.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_params.h"
#include "proxy/session/session.h"
#include "proxy/session/session_need.h"
#include "routing/region.h"
#include "routing/route.h"

static void client_fail_protocol(struct session *s, const char *msg)
{
    session_fail_msg(s, "08P01", "%s", msg);
}

/* The first label of the TLS server name, as a possible region hint. */
static void client_take_sni(struct session *s)
{
    const char *name = SSL_get_servername(s->client.stream.ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return;
    size_t n = strcspn(name, ".");
    if (n >= sizeof(s->login->sni))
        return;
    memcpy(s->login->sni, name, n);
    s->login->sni[n] = '\0';
}

/*
 * A direct TLS handshake must have chosen ALPN "postgresql", as PostgreSQL
 * 17 requires (a guard against another protocol's client, sent here by
 * someone in between, being taken for a PostgreSQL one); closed without an
 * answer otherwise, as PostgreSQL does.  client_tls_direct_without_alpn
 * lets such clients in (asyncpg's direct_tls sends no ALPN).
 */
static bool client_direct_alpn_ok(struct session *s)
{
    if (tls_alpn_is_postgresql(s->client.stream.ssl))
        return true;
    if (s->cfg->client_tls_direct_without_alpn) {
        slog_info(s, "direct TLS handshake without ALPN let in "
                     "(client_tls_direct_without_alpn = on)");
        return true;
    }
    session_login_closed(s, "received direct SSL connection request without ALPN protocol "
                            "negotiation extension");
    return false;
}

static void client_tls_step(struct session *s)
{
    int rc = endpoint_handshake(&s->client, stream_tls_accept);
    if (rc == STREAM_AGAIN)
        return;
    if (rc != 0) {
        char why[256], line[400];
        stream_tls_error(why, sizeof(why));
        long verify =
            s->client.stream.ssl != NULL ? SSL_get_verify_result(s->client.stream.ssl) : X509_V_OK;
        /* As PostgreSQL logs it: why the client's certificate failed ("certificate revoked"). */
        if (verify != X509_V_OK)
            snprintf(line, sizeof(line), "%s: client certificate verification failed: %s", why,
                     X509_verify_cert_error_string(verify));
        else
            snprintf(line, sizeof(line), "%s", why);
        session_login_closed(s, line);
        return;
    }
    if (s->login->direct_tls && !client_direct_alpn_ok(s))
        return;
    if (s->websocket && s->client.stream.ws == NULL)
        s->websocket_tls = true; /* wss: the PostgreSQL stream itself is not TLS (yet) */
    else
        s->client_tls = true;
    client_take_sni(s);
    slog_debug(s, "TLS established (%s%s)", SSL_get_version(s->client.stream.ssl),
               s->login->direct_tls ? ", direct" : "");
    /* The handshake may have left decrypted bytes inside OpenSSL: the next reader gets them. */
    phase_done(s);
}

void client_tls_enter(struct session *s)
{
    s->client.on_read = client_tls_step; /* the handshake step arms what it waits for */
    client_tls_step(s);
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
    if (cfg->client_tls == CLIENT_TLS_DISABLE || cfg->client_tls_ctx == NULL || s->unix_socket) {
        endpoint_send(s, &s->client, "N", 1);
        return;
    }
    if (stream_write_raw(&s->client.stream, "S", 1) != 1) {
        session_close(s, "could not answer SSL request");
        return;
    }
    if (stream_tls_server(&s->client.stream, cfg->client_tls_ctx) != 0) {
        session_close(s, "could not create TLS session");
        return;
    }
    phase_enter(s, PHASE_CLIENT_TLS);
}

/*
 * PostgreSQL 17's direct TLS (sslnegotiation=direct): a TLS handshake
 * record as the connection's first bytes (after a PROXY header), where the
 * first packet's length belongs.  Its bytes read so far go to OpenSSL
 * first.  Without client TLS it is closed without an answer, as
 * PostgreSQL without ssl = on closes it.
 */
static bool client_direct_tls(struct session *s)
{
    struct config *cfg = s->cfg;
    uint8_t first;
    if (s->client_tls || s->startup_raw != NULL || evbuffer_copyout(s->client.in, &first, 1) != 1 ||
        !startup_is_tls_handshake(&first, 1))
        return false;
    if (cfg->client_tls == CLIENT_TLS_DISABLE || cfg->client_tls_ctx == NULL || s->unix_socket) {
        session_login_closed(s, s->unix_socket ? "direct TLS handshake on the Unix socket refused"
                                               : "direct TLS handshake refused: client_tls = "
                                                 "disable (or no certificate)");
        return true;
    }
    size_t n = evbuffer_get_length(s->client.in);
    const uint8_t *hello = evbuffer_pullup(s->client.in, -1);
    if (hello == NULL ||
        stream_tls_server_direct(&s->client.stream, cfg->client_tls_ctx, hello, n) != 0) {
        session_close(s, "could not create TLS session");
        return true;
    }
    evbuffer_drain(s->client.in, n);
    s->login->direct_tls = true;
    phase_enter(s, PHASE_CLIENT_TLS);
    return true;
}

/* Tells a client asking for more than pgnear speaks what it gets instead. */
static int client_negotiate_version(struct session *s)
{
    const struct startup_packet *sp = &s->login->startup;
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

/* A hint error is the client's mistake: answer like PostgreSQL does for a bad GUC. */
static void client_fail_hint(struct session *s, int rc, const char *name)
{
    char msg[256];
    if (rc == HINTS_EUNKNOWN) {
        char known[200], hint[240];
        snprintf(msg, sizeof(msg), "unrecognized configuration parameter \"%s\"", name);
        snprintf(hint, sizeof(hint), "pgnear knows %s.", startup_hints_known(known, sizeof(known)));
        struct pg_error err;
        pg_error_set(&err, "42704", "%s", msg);
        pg_error_hint(&err, "%s", hint);
        session_fail(s, &err);
        return;
    }
    if (rc == HINTS_ESTRAY) {
        hint_fail_stray(s, name);
        return;
    }
    struct pg_error err;
    pg_error_set(&err, "22023", "invalid pgnear hint in the startup packet");
    pg_error_detail(&err, "%s",
                    rc == HINTS_ETOOLONG ? "A hint value is too long."
                                         : "The options are malformed.");
    session_fail(s, &err);
}

/* Takes pgnear.* out of options and out of the parameters, keeping the rest for the server. */
static int client_take_hints(struct session *s)
{
    struct startup_packet *sp = &s->login->startup;
    char errname[128] = "";
    for (size_t i = 0; i < sp->nparams; i++) {
        int rc =
            startup_hints_from_param(sp->params[i].name, sp->params[i].value, &s->login->hints);
        if (rc < 0) {
            client_fail_hint(s, rc, sp->params[i].name);
            return -1;
        }
    }
    const char *options = startup_param(sp, "options");
    if (options == NULL)
        return 0;
    size_t cap = strlen(options) + 1;
    s->login->server_options = malloc(cap);
    if (s->login->server_options == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    int rc = startup_hints_extract(options, strlen(options), &s->login->hints,
                                   s->login->server_options, cap, errname, sizeof(errname));
    if (rc != HINTS_OK) {
        client_fail_hint(s, rc, errname);
        return -1;
    }
    return 0;
}

/*
 * Coordinates or a city from a trusted load balancer's headers
 * (ws_ingress.c kept them), below the startup hints: coordinates before
 * a city, as the headers that carry them are the more precise.
 */
static void client_header_locality(struct session *s, struct locality_input *in)
{
    const struct session_login *l = s->login;
    const struct geo_headers *g = l->geo;
    if (g == NULL)
        return;
    if (in->location == NULL && g->has_coords)
        in->location = l->geo_location, in->location_via = l->geo_via[1];
    if (in->city == NULL && in->location == NULL && g->has_city)
        in->city = l->geo_city, in->city_via = l->geo_via[2];
}

/* Whether a header decided (the via texts of headers are the login's own). */
static bool client_header_decided(const struct session *s, const char *via)
{
    const struct session_login *l = s->login;
    return l->geo != NULL && via != NULL &&
           (via == l->geo_via[0] || via == l->geo_via[1] || via == l->geo_via[2]);
}

/* The evidence, in DESIGN.md's order of trust within each kind. */
static void client_locality_input(struct session *s, struct locality_input *in)
{
    const struct startup_hints *h = &s->login->hints;
    bool hints = s->cfg->client_hints;
    const struct pp_header *pp = s->login->pp;
    memset(in, 0, sizeof(*in));
    if (hints && h->has_region)
        in->region = h->region, in->region_via = "startup hint";
    else if (pp && pp->has_region)
        in->region = pp->region, in->region_via = "PROXY TLV";
    else if (s->login->geo && s->login->geo->has_region)
        in->region = s->login->geo->region, in->region_via = s->login->geo_via[0];
    else if (s->login->sni[0] && region_set_find(&s->cfg->regions, s->login->sni) != NULL)
        in->region = s->login->sni, in->region_via = "TLS SNI";
    if (hints && h->has_city)
        in->city = h->city, in->city_via = "startup hint";
    else if (pp && pp->has_city)
        in->city = pp->city, in->city_via = "PROXY TLV";
    if (hints && h->has_location)
        in->location = h->location, in->location_via = "startup hint";
    else if (pp && pp->has_location)
        in->location = pp->location, in->location_via = "PROXY TLV";
    client_header_locality(s, in);
    /* A forwarded address places the caller even where it decides no access (ws_ingress.c). */
    if (s->login->geo != NULL && s->login->geo->has_addr)
        in->addr = (const struct sockaddr *)&s->login->geo->addr;
    else if (!s->unix_socket)
        in->addr = (const struct sockaddr *)&s->addr;
}

/* A hint's value that is none the setting takes: 22023, as the server answers a bad GUC. */
static bool client_fail_hint_value(struct session *s, const char *name, const char *value,
                                   const char *hint)
{
    char msg[300];
    snprintf(msg, sizeof(msg), "invalid value for parameter \"%s\": \"%s\"", name, value);
    struct pg_error err;
    pg_error_set(&err, "22023", "%s", msg);
    pg_error_hint(&err, "%s", hint);
    session_fail(s, &err);
    return false;
}

/*
 * The hints that say what the session needs: pgnear.target_session_attrs,
 * pgnear.report_fence and pgnear.min_lsn (read-your-writes, fence.h).
 * False (the session failed, 22023) for a value that is none of those the
 * settings take, or 53200 when out of memory.
 */
static bool client_check_need_hints(struct session *s)
{
    const struct startup_hints *h = &s->login->hints;
    enum session_need role;
    uint32_t tli;
    uint64_t lsn;
    if (h->has_need && !need_parse(h->need, &role)) {
        char hint[200];
        snprintf(hint, sizeof(hint), "Available values: %s.", need_choices());
        return client_fail_hint_value(s, "pgnear.target_session_attrs", h->need, hint);
    }
    s->report_fence = s->cfg->report_fence;
    if (h->has_report_fence && !config_parse_bool(h->report_fence, &s->report_fence))
        return client_fail_hint_value(s, "pgnear.report_fence", h->report_fence,
                                      "Write on or off.");
    if (s->report_fence && fence_begin(s) != 0) {
        session_fail_msg(s, "53200", "out of memory");
        return false;
    }
    if (h->has_min_lsn && lsn_parse(h->min_lsn, strlen(h->min_lsn), &tli, &lsn) != LSN_OK)
        return client_fail_hint_value(
            s, "pgnear.min_lsn", h->min_lsn,
            "Pass the value of pgnear.fence as it was reported (00000001/0/3000148), or a "
            "position as pg_current_wal_lsn() shows it (0/3000148).");
    return true;
}

/* What the session needs of its server (session_need.h); false: a hint's value failed it. */
static bool client_session_need(struct session *s)
{
    if (!client_check_need_hints(s))
        return false;
    s->need = session_need_for(s, NEED_AT_LOGIN, 0);
    return true;
}

/* The route's log line: where, how far, on what evidence, and for which need. */
static void client_log_route(struct session *s)
{
    char reason[512], need[200] = "";
    locality_reason(&s->login->loc, reason, sizeof(reason));
    if (s->need.role != NEED_ANY)
        snprintf(need, sizeof(need), "; needing %s", need_name(s->need.role));
    if (s->login->nearer_waiting) {
        slog_info(s,
                  "route: region %s has replayed pgnear.min_lsn, a nearer standby not yet (%s: "
                  "%s); waiting up to %d ms for the nearer",
                  s->login->plan[0]->name, route_source_name(s->login->loc.source), reason,
                  NEARER_REPLAY_GRACE_MS);
        return;
    }
    if (s->login->plan_len == 0 && s->login->replay_waiting) {
        slog_info(s,
                  "route: no standby has replayed pgnear.min_lsn yet (%s: %s); waiting up to "
                  "min_lsn_wait for one",
                  route_source_name(s->login->loc.source), reason);
        return;
    }
    if (s->login->plan_len == 0) {
        slog_info(s, "route: no region has a host that is %s now (%s: %s); waiting for one",
                  need_name(s->need.role), route_source_name(s->login->loc.source), reason);
        return;
    }
    double km = locality_caller_placed(&s->login->loc) ? route_km(s->login->plan_cos[0]) : -1;
    if (km >= 0)
        slog_info(s, "route: region %s, %.0f km away (%s: %s%s)", s->region->name, km,
                  route_source_name(s->login->loc.source), reason, need);
    else
        slog_info(s, "route: region %s (%s: %s%s)", s->region->name,
                  route_source_name(s->login->loc.source), reason, need);
}

/*
 * Whether a region that s's database lives in takes sessions; if none
 * does, s fails saying so.
 */
static bool client_any_region_open(struct session *s)
{
    struct region_subset where;
    const struct region_subset *placed = session_placed(s, s->cfg, &s->login->loc, &where);
    if (route_any_enabled(&s->cfg->routing, placed))
        return true;
    if (placed == NULL) {
        struct pg_error err;
        pg_error_set(&err, "08001", "no region takes sessions now");
        pg_error_detail(&err, "Every configured region is disabled or draining.");
        session_fail(s, &err);
        return false;
    }
    char detail[300], names[200];
    snprintf(detail, sizeof(detail),
             "Database \"%s\" lives in %s, and each of them is disabled or draining.", s->database,
             region_subset_format(placed, names, sizeof(names)));
    struct pg_error err;
    pg_error_set(&err, "08001", "no region that holds the database takes sessions now");
    pg_error_detail(&err, "%s", detail);
    session_fail(s, &err);
    return false;
}

/*
 * Picks the regions to try; false (the session failed) when the admin
 * disabled every one its database lives in.  A session that needs a role no host has now goes
 * on with none: it waits for one as it connects (failover_wait).
 */
static bool client_route(struct session *s)
{
    struct locality_input in;
    if (!client_session_need(s))
        return false;
    client_locality_input(s, &in);
    locality_resolve(&s->cfg->routing, &in, &s->login->loc);
    hint_log_tlv(s, &in);
    session_route_plan(s);
    if (s->login->plan_len == 0 && !client_any_region_open(s))
        return false;
    stat_inc(&s->w->stats.routed_by_source[s->login->loc.source]);
    if (client_header_decided(s, s->login->loc.via))
        stat_inc(&s->w->stats.routed_by_header);
    client_log_route(s);
    free(s->login->pp);
    s->login->pp = NULL;
    return true;
}

static void client_handle_startup(struct session *s)
{
    struct config *cfg = s->cfg;
    const struct startup_packet *sp = &s->login->startup;
    /* wss is encrypted as well: the client's TLS is the WebSocket's. */
    if (cfg->client_tls == CLIENT_TLS_REQUIRE && !s->client_tls && !s->websocket_tls &&
        !s->unix_socket) {
        struct pg_error err;
        pg_error_set(&err, "28000", "pgnear requires TLS connections");
        pg_error_detail(&err, "client_tls = require, and this connection is not encrypted.");
        pg_error_hint(&err, "Connect with sslmode=require or stronger.");
        session_fail(s, &err);
        return;
    }
    if (client_negotiate_version(s) < 0 || client_take_hints(s) < 0)
        return;
    if (server_params_build(s) != 0) {
        session_fail_msg(s, "53200", "out of memory");
        return;
    }
    const char *app = startup_param(sp, "application_name");
    slog_info(s, "login from %s: user=%s database=%s%s%s%s", session_peer(s).text, sp->user,
              sp->database, app ? " application_name=" : "", app ? app : "",
              s->client_tls ? " tls" : "");
    /* Whatever the client sent behind the startup packet waits for the next phase's reader. */
    endpoint_set_reader(&s->client, NULL);
    /* The admin database never reaches a server: it is not routed. */
    s->login->for_console = strcmp(sp->database, cfg->admin_db) == 0;
    if (!s->login->for_console && !client_route(s))
        return;
    phase_done(s);
}

/*
 * A PROXY header where a startup packet belongs: with proxy_protocol =
 * off, or a second header after the one already taken.  Says which.
 */
static bool client_misplaced_proxy_header(struct session *s)
{
    struct pp_header pp;
    uint8_t *peek = evbuffer_pullup(s->client.in, -1);
    if (s->phase != PHASE_STARTUP || s->client_tls || peek == NULL ||
        pp_parse(peek, evbuffer_get_length(s->client.in), &s->cfg->tlv_types, &pp) == PP_NOT_PROXY)
        return false;
    if (s->cfg->proxy_protocol == PROXY_PROTOCOL_OFF) {
        struct pg_error err;
        pg_error_set(&err, "08P01", "received a PROXY protocol header, but proxy_protocol = off");
        pg_error_hint(&err, "Set proxy_protocol = optional or required in pgnear.");
        session_fail(s, &err);
    } else if (s->login->pp != NULL) {
        struct pg_error err;
        pg_error_set(&err, "08P01", "received a second PROXY protocol header");
        pg_error_detail(
            &err, "A connection carries one PROXY header, at its very start; the load balancer "
                  "in front of pgnear may be adding its own header to one it passes on.");
        session_fail(s, &err);
    } else {
        struct pg_error err;
        pg_error_set(&err, "08P01",
                     "received a PROXY protocol header after the connection's first bytes");
        pg_error_detail(&err,
                        "A PROXY header is only accepted as the very first bytes of a connection.");
        session_fail(s, &err);
    }
    return true;
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
        if (client_misplaced_proxy_header(s))
            return -1;
        /*
         * As PostgreSQL does: no answer to bytes that do not even start a
         * startup packet (a client that sends Terminate before logging in,
         * a port scanner); the log says why.
         */
        session_login_closed(s, "invalid length of startup packet");
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
    rc = startup_parse(s->startup_raw, len, &s->login->startup);
    if (rc != STARTUP_OK) {
        client_fail_protocol(s, startup_strerror(rc));
        return -1;
    }
    startup_cut_names(s->startup_raw, len, &s->login->startup);
    s->user = s->login->startup.user;
    s->database = s->login->startup.database;
    s->application_name = startup_param(&s->login->startup, "application_name");
    return 1;
}

static void client_startup_process(struct session *s)
{
    if (client_direct_tls(s))
        return;
    for (;;) {
        int rc = client_take_packet(s);
        if (rc <= 0)
            return;
        if (s->login->pp_from_peer && s->login->startup.kind != STARTUP_CANCEL_REQUEST) {
            slog_warn(s, "PROXY header from a peer's address ahead of something else than a "
                         "cancel request");
            struct pg_error err;
            pg_error_set(&err, "28000", "PROXY protocol header from an untrusted address");
            pg_error_detail(&err,
                            "A peer's address may send a PROXY header ahead of a forwarded cancel "
                            "request only; load balancers' addresses go in trusted_proxies.");
            session_fail(s, &err);
            return;
        }
        if (s->cancel_only && s->login->startup.kind != STARTUP_CANCEL_REQUEST) {
            struct pg_error err;
            pg_error_set(&err, "57P03", "this socket takes cancel requests only");
            pg_error_detail(&err, "It is a draining pgnear's, for the process that replaced it.");
            session_fail(s, &err);
            return;
        }
        switch (s->login->startup.kind) {
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
        case STARTUP_CANCEL_REQUEST: {
            struct session_login *l = s->login;
            struct peer_text peer = session_peer(s);
            struct cancel_origin o = {s->id, (const struct sockaddr *)&s->addr, peer.text, l->pp,
                                      l->pp_from_peer ? (const struct sockaddr *)&l->conn_addr
                                                      : (const struct sockaddr *)&s->addr};
            /* Closed once delivered, as PostgreSQL closes it once the backend is signalled. */
            if (cancel_handle_request(s->w, &s->login->startup, &o))
                endpoint_pause_read(&s->client);
            else
                session_close(s, "cancel request handled");
            return;
        }
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
    if (evbuffer_get_length(s->client.in) > 0)
        client_startup_process(s);
}

/*
 * Trusted senders only: trusted_proxies, and the peers' addresses ahead of
 * a forwarded cancel request (checked once the packet after it is read).
 * The header names the real caller and may carry TLVs.
 */
static void client_take_proxy_header(struct session *s, const struct pp_header *pp)
{
    const struct sockaddr *sa = (const struct sockaddr *)&s->addr;
    bool trusted = cidr_list_contains(&s->cfg->trusted, sa);
    if (!trusted && config_is_peer_addr(s->cfg, sa)) {
        s->login->pp_from_peer = true;
        memcpy(&s->login->conn_addr, &s->addr, sizeof(s->addr));
    } else if (!trusted) {
        slog_warn(s, "PROXY header from %s, which is not in trusted_proxies", session_peer(s).text);
        struct pg_error err;
        pg_error_set(&err, "28000", "PROXY protocol header from an untrusted address");
        pg_error_detail(&err, "Only addresses in trusted_proxies may send PROXY headers.");
        session_fail(s, &err);
        return;
    }
    evbuffer_drain(s->client.in, pp->length);
    if (!pp->local) {
        struct peer_text via = session_peer(s);
        session_set_addr(s, (const struct sockaddr *)&pp->src, sizeof(pp->src));
        s->from_proxy = true;
        slog_info(s, "PROXY v%d header from %s: caller %s%s%s", pp->version, via.text,
                  session_peer(s).text, pp->has_city ? " city=" : "", pp->has_city ? pp->city : "");
    }
    s->login->pp = malloc(sizeof(*pp));
    if (s->login->pp == NULL) {
        session_close(s, "out of memory");
        return;
    }
    memcpy(s->login->pp, pp, sizeof(*pp));
    phase_done(s);
}

static void client_proxy_on_read(struct session *s)
{
    int more;
    if (endpoint_fill(s, &s->client, PP_V2_HDR_LEN + PP_V2_MAX_PAYLOAD, &more) < 0)
        return;
    size_t avail = evbuffer_get_length(s->client.in);
    const uint8_t *p = evbuffer_pullup(s->client.in, -1);
    struct pp_header pp;
    int rc = p ? pp_parse(p, avail, &s->cfg->tlv_types, &pp) : PP_INCOMPLETE;
    if (rc == PP_INCOMPLETE)
        return;
    if (rc == PP_OK) {
        client_take_proxy_header(s, &pp);
        return;
    }
    /* From a peer under proxy_protocol = off: a client there, not a forwarded cancel request. */
    if (rc == PP_NOT_PROXY && s->cfg->proxy_protocol != PROXY_PROTOCOL_REQUIRED) {
        phase_done(s); /* no header: what came is the startup packet's */
        return;
    }
    struct pg_error err;
    pg_error_set(&err, "08P01", "%s",
                 rc == PP_NOT_PROXY ? "expected a PROXY protocol header (proxy_protocol = required)"
                                    : "invalid PROXY protocol header");
    if (rc != PP_NOT_PROXY)
        pg_error_detail(&err, "%s", pp_strerror(rc));
    session_fail(s, &err);
}

/* The PROXY header must come first and fast: load balancers send it at once. */
#define PROXY_HEADER_TIMEOUT_MS 5000

void client_proxy_enter(struct session *s)
{
    int ms = s->cfg->client_login_timeout_ms;
    session_set_timer(s, ms < PROXY_HEADER_TIMEOUT_MS ? ms : PROXY_HEADER_TIMEOUT_MS);
    endpoint_set_reader(&s->client, client_proxy_on_read);
}

void client_startup_enter(struct session *s)
{
    if (!s->client_tls)
        session_set_timer(s, s->cfg->client_login_timeout_ms);
    endpoint_set_reader(&s->client, client_startup_on_read);
}
