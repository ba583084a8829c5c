/*
 * client_auth.c — SCRAM-SHA-256(-PLUS) between the client and pgnear.
 *
 * The verifier comes from auth_file, else from auth_query run on the
 * nearest region that takes sessions (session_route_lookup_plan).  A user without a verifier gets a
 * made-up one, so that a wrong user name and a wrong password fail the same way, after the proof.
 */
#include "proxy/login/client_auth.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/scram.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/login/login_throttle.h"
#include "proxy/login/session_route.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/phase.h"
#include "proxy/session/session.h"
#include "routing/region.h"
#include "routing/route.h"

#define SASL_MAX_MESSAGE 4096

/*
 * Ends a failed exchange: a wrong proof is 28P01 in PostgreSQL's words and
 * counts against the login throttle; a channel-binding mismatch 28000;
 * anything malformed 08P01.
 */
static void client_auth_fail(struct session *s, int rc)
{
    char msg[256];
    const char *detail = scram_server_errdetail(&s->login->scram_srv);
    struct pg_error err;
    switch (rc) {
    case SCRAM_EAUTH:
        snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"",
                 s->login->startup.user);
        slog_info(s, "%s: %s", msg, detail);
        login_throttle_failed(s);
        session_fail_msg(s, "28P01", "%s", msg);
        return;
    case SCRAM_ECBIND:
        pg_error_set(&err, "28000", "SCRAM channel binding check failed");
        break;
    default:
        pg_error_set(&err, "08P01", "malformed SCRAM message");
        break;
    }
    pg_error_detail(&err, "%s", detail);
    session_fail(s, &err);
}

/*
 * Sends an Authentication message of code with its data; a message too
 * long for the buffer closes the session. -1 when it could not be sent.
 */
static int client_auth_send(struct session *s, uint32_t code, const void *data, size_t len)
{
    uint8_t buf[SASL_MAX_MESSAGE + 64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_authentication(&pb, code, data, len);
    if (!pkt_ok(&pb)) {
        session_close(s, "SASL message too long");
        return -1;
    }
    return endpoint_send(s, &s->client, buf, pb.len);
}

/*
 * A verifier no password matches, for users pgnear does not know.  Its
 * salt is derived from the user name and a per-process secret, so that
 * repeated attempts see the same salt, as they would for a real user.
 */
static void client_auth_mock_verifier(struct session *s, struct scram_verifier *v)
{
    uint8_t digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    memset(v, 0, sizeof(*v));
    v->iterations = 4096;
    v->salt_len = 16;
    HMAC(EVP_sha256(), s->w->shared->mock_secret, sizeof(s->w->shared->mock_secret),
         (const unsigned char *)s->login->startup.user, strlen(s->login->startup.user), digest,
         &dlen);
    memcpy(v->salt, digest, v->salt_len);
    RAND_bytes(v->stored_key, SCRAM_KEY_LEN);
    RAND_bytes(v->server_key, SCRAM_KEY_LEN);
}

static void client_auth_offer(struct session *s);

/*
 * The verifier from secret (auth_file's or auth_query's, named by source
 * for the log): none gives a made-up one, so that an unknown user fails at
 * the proof; a secret that is not SCRAM ends the session (false).
 */
static bool client_auth_use_secret(struct session *s, const char *secret, const char *source)
{
    if (secret == NULL) {
        slog_info(s, "user \"%s\" not found by %s", s->login->startup.user, source);
        client_auth_mock_verifier(s, &s->login->verifier);
        return true;
    }
    if (scram_parse_verifier(secret, strlen(secret), &s->login->verifier) != SCRAM_OK) {
        slog_error(s, "%s gave user \"%s\" a secret that is not SCRAM-SHA-256", source,
                   s->login->startup.user);
        struct pg_error err;
        pg_error_set(&err, "28000",
                     "authentication failed: pgnear has no usable secret for this user");
        pg_error_detail(&err, "pgnear verifies clients with SCRAM-SHA-256 secrets only.");
        session_fail(s, &err);
        return false;
    }
    return true;
}

/*
 * auth_query's answer: its error ends the session with 08001 and the
 * reason logged; a secret, or none, goes on to the offer.
 */
static void client_auth_lookup_done(void *arg, const char *secret, const char *error)
{
    struct session *s = arg;
    s->login->auth_lookup = NULL;
    if (error != NULL) {
        slog_error(s, "auth_query failed: %s", error);
        struct pg_error err;
        pg_error_set(&err, "08001", "could not look up the user's secret");
        pg_error_hint(&err, "The reason is in pgnear's log.");
        session_fail(s, &err);
        return;
    }
    if (client_auth_use_secret(s, secret, "auth_query"))
        client_auth_offer(s);
}

/*
 * auth_query runs on the nearest region that takes sessions, whether or
 * not the session's route has settled (session_route_lookup_plan), on a
 * kept connection when the worker has one.
 */
static void client_auth_start_query(struct session *s)
{
    char why[512];
    struct region *regions[ROUTE_MAX_REGIONS];
    size_t n = session_route_lookup_plan(s, regions, ROUTE_MAX_REGIONS);
    s->login->auth_lookup = auth_lookup_start(&s->w->auth_lookups, s->cfg, regions, n,
                                              s->login->startup.database, s->login->startup.user,
                                              s->id, client_auth_lookup_done, s, why, sizeof(why));
    if (s->login->auth_lookup == NULL) {
        slog_error(s, "could not start auth_query: %s", why);
        struct pg_error err;
        pg_error_set(&err, "08001", "could not look up the user's secret");
        pg_error_hint(&err, "The reason is in pgnear's log.");
        session_fail(s, &err);
        return;
    }
    endpoint_pause_read(&s->client);
}

/* SASLInitialResponse: mechanism, int32 length (-1: none), client-first-message. */
static int client_auth_initial(struct session *s, const uint8_t *body, uint32_t len)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    const char *mech = pkt_get_cstr(&r);
    uint32_t n = pkt_get_u32(&r);
    const uint8_t *data = pkt_get_bytes(&r, n == 0xffffffffu ? 0 : n);
    if (r.failed || pkt_remaining(&r) != 0) {
        /* Most likely a password the client sent before it was asked for anything. */
        struct pg_error err;
        pg_error_set(&err, "08P01", "malformed SASLInitialResponse message");
        if (s->websocket) {
            pg_error_detail(&err, "pgnear asked for SCRAM-SHA-256 (websocket_auth = scram), but "
                                  "the client sent a message that is not a SASL response, as a "
                                  "client that pipelines its password does.");
            pg_error_hint(&err, "With the Neon serverless driver, set "
                                "neonConfig.pipelineConnect = false, or set websocket_auth = "
                                "cleartext in pgnear.");
        }
        session_fail(s, &err);
        return -1;
    }
    uint8_t cb[SCRAM_MAX_CB_LEN];
    size_t cblen = 0;
    if (s->client_tls) {
        X509 *cert = SSL_get_certificate(s->client.stream.ssl);
        if (cert == NULL || scram_tls_server_end_point(cert, cb, sizeof(cb), &cblen) != SCRAM_OK)
            cblen = 0;
    }
    char out[SASL_MAX_MESSAGE];
    size_t outlen;
    s->login->scram_started = true;
    int rc = scram_server_init(&s->login->scram_srv, &s->login->verifier, cblen ? cb : NULL, cblen);
    if (rc == SCRAM_OK)
        rc = scram_server_handle_first(&s->login->scram_srv, mech, data, n == 0xffffffffu ? 0 : n,
                                       out, sizeof(out), &outlen);
    if (rc != SCRAM_OK) {
        client_auth_fail(s, rc);
        return -1;
    }
    return client_auth_send(s, AUTH_SASL_CONTINUE, out, outlen);
}

/* The client proved who it is (len: its last message, consumed here); the login goes on. */
static int client_auth_done(struct session *s, uint32_t len, const char *how)
{
    s->login->scram_done = true;
    login_throttle_succeeded(s);
    frame_consume(s->client.in, len);
    slog_debug(s, "client authenticated by pgnear (%s)", how);
    endpoint_set_reader(&s->client, NULL);
    phase_done(s);
    return -1; /* the session moved on; stop reading here */
}

/*
 * The client's SASLResponse: its proof checked, the server's signature
 * sent, and the session on to its next phase.
 */
static int client_auth_final(struct session *s, const uint8_t *body, uint32_t len)
{
    char out[SASL_MAX_MESSAGE];
    size_t outlen;
    int rc = scram_server_handle_final(&s->login->scram_srv, body, len, out, sizeof(out), &outlen);
    if (rc != SCRAM_OK) {
        client_auth_fail(s, rc);
        return -1;
    }
    if (client_auth_send(s, AUTH_SASL_FINAL, out, outlen) < 0)
        return -1;
    return client_auth_done(
        s, len,
        scram_server_channel_bound(&s->login->scram_srv) ? "SCRAM with channel binding" : "SCRAM");
}

/*
 * WebSocket clients under websocket_auth = cleartext give their password
 * (the Neon driver sends it before it is asked): checked against the
 * SCRAM verifier, it yields the ClientKey a SCRAM exchange would have.
 */
static bool client_auth_cleartext(const struct session *s)
{
    return s->websocket && s->cfg->websocket_auth == WS_AUTH_CLEARTEXT;
}

/*
 * A cleartext password (PasswordMessage, one NUL-terminated string):
 * checked against the verifier as a SCRAM proof would be.
 */
static int client_auth_password(struct session *s, const uint8_t *body, uint32_t len)
{
    if (len == 0 || body[len - 1] != '\0' || memchr(body, '\0', len - 1) != NULL) {
        session_fail_msg(s, "08P01", "malformed password message");
        return -1;
    }
    int rc = scram_server_init(&s->login->scram_srv, &s->login->verifier, NULL, 0);
    if (rc == SCRAM_OK)
        rc = scram_server_check_password(&s->login->scram_srv, (const char *)body);
    if (rc != SCRAM_OK) {
        client_auth_fail(s, rc);
        return -1;
    }
    return client_auth_done(s, len, "password over WebSocket");
}

/*
 * Anything but a SASL message, or one of a bad length, while pgnear
 * authenticates: 08P01, as PostgreSQL says it.
 */
static void client_auth_expected_sasl(struct session *s)
{
    session_fail_msg(s, "08P01", "expected SASL response");
}

/*
 * One client message during authentication: only 'p' (a SASL message, or a
 * password under websocket_auth = cleartext).
 */
static int client_auth_message(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    if (type != 'p') {
        client_auth_expected_sasl(s);
        return MSG_STOP;
    }
    if (client_auth_cleartext(s))
        return client_auth_password(s, body, len) < 0 ? MSG_STOP : MSG_CONSUMED;
    int rc = !s->login->scram_started ? client_auth_initial(s, body, len)
                                      : client_auth_final(s, body, len);
    return rc < 0 ? MSG_STOP : MSG_CONSUMED;
}

/* The client's reader while it authenticates: messages of at most SASL_MAX_MESSAGE bytes. */
static void client_auth_on_read(struct session *s)
{
    static const struct msg_reader reader = {
        .fill_max = SASL_MAX_MESSAGE,
        .max_body = SASL_MAX_MESSAGE,
        .on_message = client_auth_message,
        .on_bad_length = client_auth_expected_sasl,
    };
    endpoint_read_messages(s, &s->client, &reader);
}

/* AuthenticationSASL: -PLUS first when the client is on TLS. */
static void client_auth_offer(struct session *s)
{
    uint8_t mechs[64];
    size_t n = 0;
    if (client_auth_cleartext(s)) {
        endpoint_resume_read(&s->client);
        endpoint_set_reader(&s->client, client_auth_on_read); /* a pipelined password too */
        client_auth_send(s, AUTH_CLEARTEXT, NULL, 0);
        return;
    }
    if (s->client_tls) {
        memcpy(mechs, SCRAM_MECH_PLUS, sizeof(SCRAM_MECH_PLUS));
        n += sizeof(SCRAM_MECH_PLUS);
    }
    memcpy(mechs + n, SCRAM_MECH, sizeof(SCRAM_MECH));
    n += sizeof(SCRAM_MECH);
    mechs[n++] = 0;
    s->login->scram_started = false;
    endpoint_resume_read(&s->client);
    /* A client that pipelined its SASLInitialResponse has it answered now. */
    endpoint_set_reader(&s->client, client_auth_on_read);
    client_auth_send(s, AUTH_SASL, mechs, n);
}

void client_auth_enter(struct session *s)
{
    endpoint_set_reader(&s->client, NULL);
    const char *user = s->login->startup.user;
    const char *secret = userlist_find(&s->cfg->users, user);
    if (s->login->for_console) {
        /* Only admin_users, only from auth_file: anyone else fails at the proof, like a bad
         * password. */
        if (!config_is_admin_user(s->cfg, user))
            secret = NULL;
        if (client_auth_use_secret(s, secret, "auth_file (admin_users)"))
            client_auth_offer(s);
        return;
    }
    if (secret == NULL && s->cfg->auth_query[0] != '\0') {
        client_auth_start_query(s);
        return;
    }
    if (client_auth_use_secret(s, secret, "auth_file"))
        client_auth_offer(s);
}
