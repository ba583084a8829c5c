/*
 * server_login.c — the login on an open server connection
 * (SERVER_LOGIN): the StartupMessage, the server's authentication
 * requests, its ParameterStatus and BackendKeyData, up to ReadyForQuery.
 *
 * Authentication, auth = passthrough: the exchange is the client's;
 * pgnear relays it but removes SCRAM-SHA-256-PLUS from the server's offer
 * (its channel binding would name pgnear's certificate, not the server's)
 * and explains the one case that cannot work instead of letting the
 * server report a bare failure; so too for the logins that auth_hba_file's
 * cert and trust lines let through (hba_auth.h).  auth = scram: pgnear
 * answers itself with the ClientKey the client's proof revealed.
 */
#include "proxy/login/server_login.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <openssl/ssl.h>

#include "protocol/clock.h"
#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/scram.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/login/hint_notice.h"
#include "proxy/login/login_throttle.h"
#include "proxy/login/session_route.h"
#include "proxy/pool/pool_warm.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/server_params.h"
#include "proxy/session/session.h"
#include "routing/health.h"
#include "routing/need.h"
#include "routing/region.h"

/* Login messages are small; anything this large is a broken server. */
#define LOGIN_MAX_MESSAGE (1024 * 1024)

/*
 * The server authenticates the client and pgnear relays the exchange:
 * auth = passthrough, and the logins that an auth_hba_file line (cert,
 * trust) or auth = cert let through without pgnear's SCRAM.
 */
static bool server_auth_relayed(const struct session *s)
{
    return s->cfg->auth == AUTH_PASSTHROUGH || s->login->relay_auth;
}

/* Moves the whole login message at the front of the server's input to the client. */
static int server_forward(struct session *s, uint32_t body_len)
{
    struct server_conn *sc = s->server_conn;
    sc->sent_to_client = true;
    return evbuffer_remove_buffer(sc->ep.in, s->client.out, body_len + PKT_HEADER_LEN) < 0 ? -1 : 1;
}

#define SASL_MAX 4096

static bool mech_list_has(const uint8_t *p, uint32_t len, const char *name)
{
    struct pktreader r;
    pkt_reader_init(&r, p, len);
    for (;;) {
        const char *m = pkt_get_cstr(&r);
        if (r.failed || m[0] == '\0')
            return false;
        if (strcmp(m, name) == 0)
            return true;
    }
}

/* Passthrough: forward AuthenticationSASL without the -PLUS mechanisms. */
static int relay_sasl_offer(struct session *s, const uint8_t *mechs, uint32_t len)
{
    uint8_t buf[1024];
    struct pktbuf pb;
    struct pktreader r;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_reader_init(&r, mechs, len);
    pkt_begin(&pb, 'R');
    pkt_put_u32(&pb, AUTH_SASL);
    for (;;) {
        const char *m = pkt_get_cstr(&r);
        if (r.failed || m[0] == '\0')
            break;
        size_t n = strlen(m);
        if (n > 5 && strcmp(m + n - 5, "-PLUS") == 0) {
            s->login->server_offered_plus = true;
            continue;
        }
        pkt_put_cstr(&pb, m);
    }
    pkt_put_u8(&pb, 0);
    pkt_end(&pb);
    if (r.failed || !pkt_ok(&pb)) {
        session_fail_msg(s, "08P01", "server sent an invalid AuthenticationSASL message");
        return -1;
    }
    evbuffer_add(s->client.out, buf, pb.len);
    s->server_conn->sent_to_client = true;
    return 0;
}

static void server_auth_client_on_read(struct session *s);

/*
 * The server's first authentication message lets a password the client
 * sent ahead of it go on, now that its kind can be judged (SCRAM cannot
 * take one); one the server did not need (trust) is dropped.
 */
static void release_held_password(struct session *s, uint32_t code)
{
    struct session_login *l = s->login;
    l->server_asked = true;
    if (!l->password_held)
        return;
    l->password_held = false;
    if (code == 0) {
        uint8_t hdr[PKT_HEADER_LEN];
        if (evbuffer_copyout(s->client.in, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr))
            frame_consume(s->client.in, pkt_be32(hdr + 1) - 4);
        slog_debug(s, "dropped the password the client sent before the server asked for none");
    }
    endpoint_set_reader(&s->client, server_auth_client_on_read);
}

static int relay_auth(struct session *s, uint32_t code, const uint8_t *body, uint32_t len)
{
    s->login->last_auth_code = code;
    release_held_password(s, code);
    if (code == AUTH_SASL)
        return relay_sasl_offer(s, body + 4, len - 4);
    return server_forward(s, len);
}

static int send_sasl_response(struct session *s, const char *mech, const char *data, size_t n)
{
    uint8_t buf[SASL_MAX + 128];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_begin(&pb, 'p');
    if (mech != NULL) {
        pkt_put_cstr(&pb, mech);
        pkt_put_u32(&pb, (uint32_t)n);
    }
    pkt_put_bytes(&pb, data, n);
    pkt_end(&pb);
    if (!pkt_ok(&pb)) {
        session_fail_msg(s, "08P01", "SASL message too long");
        return -1;
    }
    return evbuffer_add(s->server_conn->ep.out, buf, pb.len) == 0 ? 0 : -1;
}

/*
 * What a SCRAM login told of pgnear's key for the user in this region
 * (SHOW USERS); the first time it does not fit there, a warning: the
 * user's sessions cannot log in or be moved there.
 */
static void scram_note_fit(struct session *s, bool fits, const char *why)
{
    struct server_conn *sc = s->server_conn;
    if (sc == NULL)
        return;
    bool news = scram_fits_note(&s->w->shared->scram_fits, s->user, sc->region->name, fits, why,
                                (int64_t)time(NULL));
    if (fits || !news)
        return;
    slog_warn(s,
              "pgnear's SCRAM key for user \"%s\" does not fit the server of region %s (%s): its "
              "sessions can neither log in nor be moved there until the role has pgnear's secret "
              "there",
              s->user, sc->region->name, why != NULL ? why : "no reason given");
}

static int scram_fail(struct session *s, const char *msg)
{
    if (s->login->warming)
        pool_warm_forget(s); /* its key is of no use any more */
    struct pg_error err;
    pg_error_set(&err, "28000", "%s", msg);
    pg_error_detail(&err, "%s", scram_client_errdetail(&s->login->scram_cli));
    session_fail(s, &err);
    return -1;
}

/* pgnear logs in with the ClientKey; over TLS with the server's channel binding. */
static int scram_start(struct session *s, const uint8_t *mechs, uint32_t len)
{
    SSL *ssl = s->server_conn->ep.stream.ssl;
    bool plus = ssl != NULL && mech_list_has(mechs, len, SCRAM_MECH_PLUS);
    if (!plus && !mech_list_has(mechs, len, SCRAM_MECH))
        return scram_fail(s, "server offered no SCRAM-SHA-256 mechanism");
    uint8_t cb[SCRAM_MAX_CB_LEN];
    size_t cblen = 0;
    if (plus) {
        X509 *cert = SSL_get0_peer_certificate(ssl);
        if (cert == NULL || scram_tls_server_end_point(cert, cb, sizeof(cb), &cblen) != SCRAM_OK)
            plus = false, cblen = 0;
    }
    char out[SASL_MAX];
    size_t n;
    const uint8_t *client_key = pool_warm_client_key(s);
    if (client_key == NULL)
        client_key = scram_server_client_key(&s->login->scram_srv);
    if (scram_client_init(&s->login->scram_cli, client_key, &s->login->verifier, plus ? cb : NULL,
                          cblen) != SCRAM_OK ||
        scram_client_first(&s->login->scram_cli, out, sizeof(out), &n) != SCRAM_OK)
        return scram_fail(s, "could not start SCRAM authentication with the server");
    return send_sasl_response(s, scram_client_mechanism(&s->login->scram_cli), out, n);
}

/* auth = scram: the server accepted pgnear's login, and the client learns it was let in. */
static int client_send_auth_ok(struct session *s)
{
    uint8_t buf[16];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_authentication(&pb, AUTH_OK, NULL, 0);
    return endpoint_send(s, &s->client, buf, pb.len) < 0 ? -1 : 0;
}

static int scram_auth(struct session *s, uint32_t code, const uint8_t *data, uint32_t len)
{
    char out[SASL_MAX];
    size_t n;
    switch (code) {
    case AUTH_OK:
        s->server_conn->sent_to_client = true;
        return client_send_auth_ok(s);
    case AUTH_SASL:
        return scram_start(s, data, len);
    case AUTH_SASL_CONTINUE:
        if (scram_client_handle_first(&s->login->scram_cli, data, len, out, sizeof(out), &n) !=
            SCRAM_OK) {
            const char *why = "the server's SCRAM secret for this user differs from pgnear's";
            scram_note_fit(s, false, why);
            return scram_fail(s, why);
        }
        return send_sasl_response(s, NULL, out, n);
    case AUTH_SASL_FINAL:
        if (scram_client_handle_final(&s->login->scram_cli, data, len) != SCRAM_OK) {
            const char *why = "server could not prove it knows the user's SCRAM secret";
            scram_note_fit(s, false, why);
            return scram_fail(s, why);
        }
        scram_note_fit(s, true, NULL);
        return 0;
    case AUTH_CLEARTEXT:
    case AUTH_MD5: {
        struct pg_error err;
        pg_error_set(&err, "28000", "server requested password authentication");
        pg_error_detail(&err,
                        "Under auth = scram pgnear verifies clients itself and has no password to "
                        "give the server.");
        pg_error_hint(&err,
                      "Use scram-sha-256 in the server's pg_hba.conf with the same SCRAM secret as "
                      "pgnear's auth_file, or use auth = passthrough.");
        session_fail(s, &err);
        return -1;
    }
    default: {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "server requested an authentication method pgnear does not "
                 "support (code %u)",
                 code);
        session_fail_msg(s, "28000", "%s", msg);
        return -1;
    }
    }
}

/*
 * One AuthenticationXXX message.  Returns 0 when consumed, 1 when
 * forwarded to the client as it is, -1 when the session failed.
 */
static int server_auth_message(struct session *s, const uint8_t *body, uint32_t len)
{
    if (len < 4) {
        session_fail_msg(s, "08P01", "server sent an invalid authentication request");
        return -1;
    }
    uint32_t code = pkt_be32(body);
    int rc = server_auth_relayed(s) ? relay_auth(s, code, body, len)
                                    : scram_auth(s, code, body + 4, len - 4);
    if (rc >= 0 && endpoint_flush(s, &s->server_conn->ep) < 0)
        return -1;
    return rc;
}

/*
 * A client on TLS that supports channel binding, told by the stripped offer
 * that the server does not, answers "y": the server, which did offer PLUS,
 * must treat that as a downgrade attack.  Say so instead.
 */
static bool client_would_downgrade(struct session *s, const uint8_t *body, uint32_t len)
{
    if (s->login->last_auth_code != AUTH_SASL || !s->login->server_offered_plus)
        return false;
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    const char *mech = pkt_get_cstr(&r);
    pkt_get_u32(&r);
    const uint8_t *gs2 = pkt_get_bytes(&r, 1);
    return !r.failed && strcmp(mech, SCRAM_MECH) == 0 && gs2[0] == 'y';
}

/*
 * A WebSocket client that pipelined a password in clear (the Neon driver's
 * default) while the server asks for SCRAM: its message is no SASL
 * response, and the server's own error would not say why.
 */
static bool client_pipelined_password(struct session *s, const uint8_t *body, uint32_t len)
{
    if (!s->websocket || s->login->last_auth_code != AUTH_SASL)
        return false;
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    pkt_get_cstr(&r);
    uint32_t n = pkt_get_u32(&r);
    pkt_get_bytes(&r, n == 0xffffffffu ? 0 : n);
    return r.failed || pkt_remaining(&r) != 0;
}

static void client_bad_length(struct session *s)
{
    session_fail_msg(s, "08P01", "invalid message length during authentication");
}

/* The client's password or SASL message goes to the server as it is. */
static int client_auth_relay(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    if (type == 'p' && client_would_downgrade(s, body, len)) {
        struct pg_error err;
        pg_error_set(&err, "28000", "SCRAM channel binding cannot pass through pgnear");
        pg_error_detail(&err, "With auth = passthrough and TLS on both sides of pgnear, the server "
                              "sees pgnear's certificate; a client that supports channel binding "
                              "would be rejected as a downgrade.");
        pg_error_hint(&err, "Set auth = scram in pgnear, or connect with channel_binding=disable.");
        session_fail(s, &err);
        return MSG_STOP;
    }
    if (type == 'p' && !s->login->server_asked) {
        /* Sent before the server asked (a pipelining client): it waits for the request. */
        s->login->password_held = true;
        endpoint_set_reader(&s->client, NULL);
        return MSG_STOP;
    }
    if (type == 'p' && client_pipelined_password(s, body, len)) {
        struct pg_error err;
        pg_error_set(&err, "08P01",
                     "the client sent a password in clear, but the server asks for SCRAM");
        pg_error_detail(&err, "A client that pipelines its password (the Neon serverless driver's "
                              "pipelineConnect = \"password\") sends it before it is asked.");
        pg_error_hint(&err,
                      "Set neonConfig.pipelineConnect = false, or set auth = scram in pgnear, "
                      "which takes a WebSocket client's password (websocket_auth = cleartext).");
        session_fail(s, &err);
        return MSG_STOP;
    }
    s->login->last_auth_code = 0;
    evbuffer_remove_buffer(s->client.in, s->server_conn->ep.out, len + PKT_HEADER_LEN);
    return MSG_FORWARDED;
}

/* auth = passthrough: relays the client's password and SASL messages to the server. */
static void server_auth_client_on_read(struct session *s)
{
    static const struct msg_reader reader = {
        .fill_max = SASL_MAX,
        .max_body = SASL_MAX,
        .on_message = client_auth_relay,
        .on_bad_length = client_bad_length,
    };
    endpoint_read_messages(s, &s->client, &reader);
}

/* The SQLSTATE of an ErrorResponse; "" when it has none. */
static const char *server_error_sqlstate(const uint8_t *body, uint32_t len)
{
    const char *sqlstate = pkt_report_field(body, len, 'C');
    return sqlstate != NULL ? sqlstate : "";
}

/* Errors that mean "this node takes no sessions now, it is going or not up yet". */
static bool server_error_is_closing(const char *sqlstate)
{
    return strcmp(sqlstate, "57P03") == 0 || strcmp(sqlstate, "57P01") == 0;
}

/* Errors that mean "this node cannot take you now": worth the next host. */
static bool server_error_is_retryable(const char *sqlstate)
{
    return server_error_is_closing(sqlstate) || strcmp(sqlstate, "53300") == 0 ||
           strcmp(sqlstate, "53000") == 0;
}

/*
 * The host just served a login: it is evidently up, so its timeouts are
 * forgotten, and when it was down as this session started connecting,
 * it is up again now rather than after HEALTH_RISE checks.
 */
void server_login_served(struct session *s)
{
    struct server_conn *sc = s->server_conn;
    login_throttle_succeeded(s);
    pool_warm_note(s);
    if (health_note_login(sc->host, s->login->host_downs_seen))
        slog_info(s, "host %s:%d of region %s is up: a session logged in through it",
                  sc->host->name, sc->host->port, sc->region->name);
}

/* BackendKeyData: the client gets the real process ID (or a fleet's synthetic one) and pgnear's
 * key. */
static int server_handle_key(struct session *s, const uint8_t *body, uint32_t len)
{
    if (len < 8 || len - 4 > CANCEL_KEY_MAX_LEN) {
        session_fail_msg(s, "08P01", "server sent an invalid BackendKeyData message");
        return -1;
    }
    if (cancel_register(s, pkt_be32(body), body + 4, len - 4) != 0) {
        session_fail_msg(s, "53200", "out of memory registering the cancel key");
        return -1;
    }
    if (session_login_internal(s->login))
        return 0; /* no client: no key of pgnear's was drawn to give (cancel_register) */
    uint8_t buf[64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_backend_key_data(&pb, s->cancel.client_pid, cancel_entry_key(&s->cancel),
                             s->cancel.client_key_len);
    return evbuffer_add(s->client.out, buf, pb.len);
}

/*
 * The server said as the login ended that it is a standby (in_hot_standby)
 * or starts this session read-only (default_transaction_read_only, which
 * may be set for the user or database), where the session needs to write:
 * libpq's read-write would not take it, nor does pgnear.  A standby that
 * the checks took for a primary is a switchover they have not seen yet:
 * every worker takes it for a standby until a check says what it is.
 * Either way every host is checked at once, and the session never lands
 * there: it gets 08001.  (The client has seen the login's ParameterStatus
 * and BackendKeyData by now, under auth = scram too, so the session cannot
 * move to another server.)  True when the session was failed.
 */
static bool server_login_wrong_role(struct session *s, struct server_conn *sc)
{
    bool standby = sc->params.in_hot_standby == 't';
    bool read_only = standby || sc->params.default_transaction_read_only == 't';
    enum session_need need = s->need.role;
    if (!(need == NEED_READ_WRITE && read_only) && !(need == NEED_PRIMARY && standby))
        return false;
    const char *what = standby ? "a standby" : "read-only";
    struct region_host *h = sc->host;
    if (standby && health_note_login_standby(h))
        slog_warn(s,
                  "host %s:%d of region %s is a standby by its login, though its last health "
                  "check said it was a primary: sessions that need a primary go elsewhere until "
                  "a check says what it is",
                  h->name, h->port, h->region->name);
    session_route_check_all_soon(s, monotonic_ms() + HEALTH_LOGIN_ROLE_CHECK_MS);
    char why[160];
    snprintf(why, sizeof(why), "server is %s, and the session needs %s", what, need_name(need));
    struct pg_error err;
    pg_error_set(&err, "08001", "%s", why);
    pg_error_detail(&err, "%s",
                    standby
                        ? "A switchover: the server became a standby since pgnear last checked it."
                        : "Sessions of this user or database start read-only there.");
    if (standby)
        pg_error_hint(&err, "Connect again: pgnear now sends the session elsewhere.");
    session_fail(s, &err);
    return true;
}

/* "57P03 the database system is starting up": the server's words, for a log or a reason. */
static void server_error_words(const uint8_t *body, uint32_t len, char *buf, size_t cap)
{
    const char *msg = pkt_report_field(body, len, 'M');
    snprintf(buf, cap, "%s %s", server_error_sqlstate(body, len), msg != NULL ? msg : "");
}

/*
 * The server refused the login (an ErrorResponse, FATAL: it ends the
 * connection).  A login of pgnear's own (a mover, a fetcher, a warming
 * connection) has no client to read the report: it ends now, with the
 * server's SQLSTATE and message as its reason, the report left in its
 * output for a fetcher's session (txn_fetch_lost).
 */
static int server_login_error(struct session *s, const uint8_t *body, uint32_t len)
{
    struct server_conn *sc = s->server_conn;
    const char *sqlstate = server_error_sqlstate(body, len);
    char words[sizeof(s->login->server_failure)];
    if (!sc->sent_to_client && server_error_is_retryable(sqlstate)) {
        /*
         * Not taking sessions now: full (busy: the next login may get in),
         * or shutting down or starting (down until its checks pass: a
         * switchover's old primary is not tried again meanwhile).
         */
        char why[sizeof(words) + 40];
        server_error_words(body, len, words, sizeof(words));
        snprintf(why, sizeof(why), "server refused the connection: %s", words);
        phase_server_failed(s, why, server_error_is_closing(sqlstate) ? HOST_CLOSING : HOST_BUSY);
        return -1;
    }
    /* Under passthrough the server judges the password; under scram pgnear did. */
    if (server_auth_relayed(s) && strcmp(sqlstate, "28P01") == 0)
        login_throttle_failed(s);
    /* Under scram it is pgnear's key that the server did not take. */
    if (!server_auth_relayed(s) && strcmp(sqlstate, "28P01") == 0) {
        server_error_words(body, len, words, sizeof(words));
        scram_note_fit(s, false, words);
    }
    session_count_login_failure(s, sqlstate); /* a login error is FATAL: the server ends it */
    server_error_words(body, len, s->login->server_failure, sizeof(s->login->server_failure));
    session_log(LOG_INFO, s, sqlstate, "%s: the server refused the login: %s", session_peer(s).text,
                s->login->server_failure);
    int rc = server_forward(s, len);
    if (rc < 0 || s->client.stream.fd >= 0 || !session_login_internal(s->login))
        return rc;
    server_conn_close(sc, false);
    session_close(s, s->login->server_failure);
    return -1;
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
        health_note_answer(sc->host);
        session_set_timer(s, s->cfg->client_login_timeout_ms);
    }
    sc->ep.last_type = type;
    switch (type) {
    case 'R':
        return server_auth_message(s, body, len);
    case 'v': /* NegotiateProtocolVersion: for pgnear, not the client */
        slog_debug(s, "server speaks protocol 3.%u", len >= 4 ? PROTO_MINOR(pkt_be32(body)) : 0);
        return 0;
    case 'K':
        return server_handle_key(s, body, len);
    case 'E':
        return server_login_error(s, body, len);
    case 'S':
        server_conn_note_param(sc, body, len);
        if (sc->poolable && param_set_note(&sc->reported, body, len) != PARAM_SET_OK)
            sc->poolable = false;
        return server_forward(s, len);
    case 'Z':
        if (sc->params.in_hot_standby != 0)
            health_note_login_role(sc->host, sc->params.in_hot_standby == 't');
        if (server_login_wrong_role(s, sc))
            return -1;
        tx_track_init(&sc->tx, (char)pkt_ready_status(type, body, len));
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
    phase_server_failed(s, "server sent an invalid message length", HOST_UNREACHABLE);
}

static void server_login_on_read(struct session *s)
{
    static const struct msg_reader reader = {
        .fill_max = 65536,
        .max_body = LOGIN_MAX_MESSAGE,
        .on_message = server_login_message,
        .on_bad_length = server_bad_length,
    };
    endpoint_read_messages(s, &s->server_conn->ep, &reader);
}

/* A connection that may be kept remembers whom and what it logged in with. */
static void server_remember_startup(struct session *s, struct server_conn *sc)
{
    if (param_set_copy(&sc->startup, &s->server_startup) != PARAM_SET_OK)
        sc->poolable = false;
}

void server_login_enter(struct session *s)
{
    uint8_t buf[STARTUP_MAX_LEN];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    server_params_write_startup(&pb, PROTO_LATEST_MINOR, s->user, s->database, &s->server_startup);
    if (!pkt_ok(&pb)) {
        session_fail_msg(s, "08P01", "startup packet too long");
        return;
    }
    if (s->server_conn->poolable)
        server_remember_startup(s, s->server_conn);
    /* Under auth = scram, nothing is read from the client until ReadyForQuery. */
    if (server_auth_relayed(s))
        endpoint_set_reader(&s->client, server_auth_client_on_read);
    /* Until the server says something, it may still be a host that never answers. */
    session_set_timer(s, s->cfg->server_connect_timeout_ms);
    s->login->server_wait_mark_ms = monotonic_ms(); /* the period a timeout looks back on */
    endpoint_set_reader(&s->server_conn->ep, server_login_on_read);
    endpoint_send(s, &s->server_conn->ep, buf, pb.len);
}
