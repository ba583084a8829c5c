/*
 * client_auth.c — SCRAM-SHA-256(-PLUS) between the client and pgnear.
 *
 * The verifier comes from auth_file (auth_query lookups are not wired in
 * yet).  A user without a verifier gets a made-up one, so that a wrong
 * user name and a wrong password fail the same way, after the proof.
 */
#include "proxy/client_auth.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "protocol/framing.h"
#include "protocol/pkt.h"
#include "protocol/scram.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/session.h"
#include "proxy/worker.h"

#define AUTH_CODE_OK            0
#define AUTH_CODE_SASL          10
#define AUTH_CODE_SASL_CONTINUE 11
#define AUTH_CODE_SASL_FINAL    12
#define SASL_MAX_MESSAGE        4096

static void client_auth_fail(struct session *s, int rc)
{
    char msg[256];
    const char *detail = scram_server_errdetail(&s->scram_srv);
    s->w->stats.login_failures++;
    switch (rc) {
    case SCRAM_EAUTH:
        snprintf(msg, sizeof(msg), "password authentication failed for user \"%s\"",
                 s->startup.user);
        log_info(s->id, "%s: %s", msg, detail);
        session_fail(s, "28P01", msg, NULL, NULL);
        return;
    case SCRAM_ECBIND:
        session_fail(s, "28000", "SCRAM channel binding check failed", detail, NULL);
        return;
    default:
        session_fail(s, "08P01", "malformed SCRAM message", detail, NULL);
        return;
    }
}

static int client_auth_send(struct session *s, uint32_t code, const void *data, size_t len)
{
    uint8_t buf[SASL_MAX_MESSAGE + 64];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    pkt_begin(&pb, 'R');
    pkt_put_u32(&pb, code);
    pkt_put_bytes(&pb, data, len);
    pkt_end(&pb);
    if (!pkt_ok(&pb)) {
        session_close(s, "SASL message too long");
        return -1;
    }
    return endpoint_send(s, &s->client, buf, pb.len);
}

int client_auth_send_ok(struct session *s)
{
    return client_auth_send(s, AUTH_CODE_OK, NULL, 0);
}

/* A verifier no password matches, for users pgnear does not know. */
static void client_auth_mock_verifier(struct scram_verifier *v)
{
    memset(v, 0, sizeof(*v));
    v->iterations = 4096;
    v->salt_len = 16;
    RAND_bytes(v->salt, (int)v->salt_len);
    RAND_bytes(v->stored_key, SCRAM_KEY_LEN);
    RAND_bytes(v->server_key, SCRAM_KEY_LEN);
}

static bool client_auth_lookup(struct session *s)
{
    const char *secret = userlist_find(&s->cfg->users, s->startup.user);
    if (secret == NULL) {
        log_info(s->id, "user \"%s\" is not in auth_file", s->startup.user);
        client_auth_mock_verifier(&s->verifier);
        return true;
    }
    if (scram_parse_verifier(secret, strlen(secret), &s->verifier) != SCRAM_OK) {
        log_error(s->id, "auth_file entry for user \"%s\" is not a SCRAM-SHA-256 secret",
                  s->startup.user);
        return false;
    }
    return true;
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
        session_fail(s, "08P01", "malformed SASLInitialResponse message", NULL, NULL);
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
    int rc = scram_server_init(&s->scram_srv, &s->verifier, cblen ? cb : NULL, cblen);
    if (rc == SCRAM_OK)
        rc = scram_server_handle_first(&s->scram_srv, mech, data, n == 0xffffffffu ? 0 : n, out,
                                       sizeof(out), &outlen);
    if (rc != SCRAM_OK) {
        client_auth_fail(s, rc);
        return -1;
    }
    return client_auth_send(s, AUTH_CODE_SASL_CONTINUE, out, outlen);
}

static int client_auth_final(struct session *s, const uint8_t *body, uint32_t len)
{
    char out[SASL_MAX_MESSAGE];
    size_t outlen;
    int rc = scram_server_handle_final(&s->scram_srv, body, len, out, sizeof(out), &outlen);
    if (rc != SCRAM_OK) {
        client_auth_fail(s, rc);
        return -1;
    }
    if (client_auth_send(s, AUTH_CODE_SASL_FINAL, out, outlen) < 0)
        return -1;
    s->scram_done = true;
    frame_consume(s->client.in, len);
    log_debug(s->id, "client authenticated by pgnear (SCRAM%s)",
              s->scram_srv.cb_used ? " with channel binding" : "");
    s->client.on_read = NULL;
    server_login_start(s);
    return -1; /* the session moved on; stop reading here */
}

static void client_auth_on_read(struct session *s)
{
    int more;
    if (endpoint_fill(s, &s->client, SASL_MAX_MESSAGE, &more) < 0)
        return;
    for (;;) {
        char type;
        uint32_t len;
        int st = frame_peek_whole(s->client.in, SASL_MAX_MESSAGE, &type, &len);
        if (st == FRAME_INCOMPLETE)
            break;
        if (st == FRAME_BAD_LENGTH || type != 'p') {
            session_fail(s, "08P01", "expected SASL response", NULL, NULL);
            return;
        }
        const uint8_t *body = frame_body(s->client.in, len);
        int rc = s->scram_srv.state == SCRAM_STATE_NONE ? client_auth_initial(s, body, len)
                                                        : client_auth_final(s, body, len);
        if (rc < 0)
            return;
        frame_consume(s->client.in, len);
    }
    if (more)
        event_active(s->client.rev, EV_READ, 0);
}

void client_auth_start(struct session *s)
{
    if (!client_auth_lookup(s)) {
        s->w->stats.login_failures++;
        session_fail(s, "28000", "authentication failed: pgnear has no usable secret for this user",
                     NULL, NULL);
        return;
    }
    uint8_t mechs[64];
    size_t n = 0;
    if (s->client_tls) {
        memcpy(mechs, SCRAM_MECH_PLUS, sizeof(SCRAM_MECH_PLUS));
        n += sizeof(SCRAM_MECH_PLUS);
    }
    memcpy(mechs + n, SCRAM_MECH, sizeof(SCRAM_MECH));
    n += sizeof(SCRAM_MECH);
    mechs[n++] = 0;
    memset(&s->scram_srv, 0, sizeof(s->scram_srv));
    s->phase = PHASE_CLIENT_AUTH;
    s->client.on_read = client_auth_on_read;
    client_auth_send(s, AUTH_CODE_SASL, mechs, n);
}
