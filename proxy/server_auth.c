/*
 * server_auth.c — answering the server's authentication requests.
 *
 * auth = passthrough: the exchange is the client's; pgnear relays it but
 * removes SCRAM-SHA-256-PLUS from the server's offer (its channel binding
 * would name pgnear's certificate, not the server's) and explains the one
 * case that cannot work instead of letting the server report a bare
 * failure.  auth = scram: pgnear answers itself with the ClientKey the
 * client's proof revealed.
 */
#include "proxy/server_auth.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "protocol/pkt.h"
#include "protocol/scram.h"
#include "proxy/client_auth.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/msg_loop.h"
#include "proxy/server_conn.h"
#include "proxy/server_login.h"
#include "proxy/session.h"
#include "proxy/worker.h"

#define AUTH_OK            0
#define AUTH_CLEARTEXT     3
#define AUTH_MD5           5
#define AUTH_SASL          10
#define AUTH_SASL_CONTINUE 11
#define AUTH_SASL_FINAL    12
#define SASL_MAX           4096

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
        session_fail(s, "08P01", "server sent an invalid AuthenticationSASL message", NULL, NULL);
        return -1;
    }
    evbuffer_add(s->client.out, buf, pb.len);
    s->server_conn->sent_to_client = true;
    return 0;
}

static int relay_auth(struct session *s, uint32_t code, const uint8_t *body, uint32_t len)
{
    s->login->last_auth_code = code;
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
        session_fail(s, "08P01", "SASL message too long", NULL, NULL);
        return -1;
    }
    return evbuffer_add(s->server_conn->ep.out, buf, pb.len) == 0 ? 0 : -1;
}

static int scram_fail(struct session *s, const char *msg)
{
    stat_inc(&s->w->stats.login_failures);
    session_fail(s, "28000", msg, scram_client_errdetail(&s->login->scram_cli), NULL);
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
    if (scram_client_init(&s->login->scram_cli, scram_server_client_key(&s->login->scram_srv),
                          &s->login->verifier, plus ? cb : NULL, cblen) != SCRAM_OK ||
        scram_client_first(&s->login->scram_cli, out, sizeof(out), &n) != SCRAM_OK)
        return scram_fail(s, "could not start SCRAM authentication with the server");
    return send_sasl_response(s, scram_client_mechanism(&s->login->scram_cli), out, n);
}

static int scram_auth(struct session *s, uint32_t code, const uint8_t *data, uint32_t len)
{
    char out[SASL_MAX];
    size_t n;
    switch (code) {
    case AUTH_OK:
        s->server_conn->sent_to_client = true;
        return client_auth_send_ok(s) < 0 ? -1 : 0;
    case AUTH_SASL:
        return scram_start(s, data, len);
    case AUTH_SASL_CONTINUE:
        if (scram_client_handle_first(&s->login->scram_cli, data, len, out, sizeof(out), &n) !=
            SCRAM_OK)
            return scram_fail(s, "the server's SCRAM secret for this user differs from pgnear's");
        return send_sasl_response(s, NULL, out, n);
    case AUTH_SASL_FINAL:
        if (scram_client_handle_final(&s->login->scram_cli, data, len) != SCRAM_OK)
            return scram_fail(s, "server could not prove it knows the user's SCRAM secret");
        return 0;
    case AUTH_CLEARTEXT:
    case AUTH_MD5:
        stat_inc(&s->w->stats.login_failures);
        session_fail(s, "28000", "server requested password authentication",
                     "Under auth = scram pgnear verifies clients itself and has no password to "
                     "give the server.",
                     "Use scram-sha-256 in the server's pg_hba.conf with the same SCRAM secret as "
                     "pgnear's auth_file, or use auth = passthrough.");
        return -1;
    default: {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "server requested an authentication method pgnear does not "
                 "support (code %u)",
                 code);
        stat_inc(&s->w->stats.login_failures);
        session_fail(s, "28000", msg, NULL, NULL);
        return -1;
    }
    }
}

int server_auth_message(struct session *s, const uint8_t *body, uint32_t len)
{
    if (len < 4) {
        session_fail(s, "08P01", "server sent an invalid authentication request", NULL, NULL);
        return -1;
    }
    uint32_t code = pkt_be32(body);
    int rc = s->cfg->auth == AUTH_PASSTHROUGH ? relay_auth(s, code, body, len)
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

static void client_bad_length(struct session *s)
{
    session_fail(s, "08P01", "invalid message length during authentication", NULL, NULL);
}

/* The client's password or SASL message goes to the server as it is. */
static int client_auth_relay(struct session *s, char type, const uint8_t *body, uint32_t len)
{
    if (type == 'p' && client_would_downgrade(s, body, len)) {
        stat_inc(&s->w->stats.login_failures);
        session_fail(s, "28000", "SCRAM channel binding cannot pass through pgnear",
                     "With auth = passthrough and TLS on both sides of pgnear, the server "
                     "sees pgnear's certificate; a client that supports channel binding "
                     "would be rejected as a downgrade.",
                     "Set auth = scram in pgnear, or connect with channel_binding=disable.");
        return MSG_STOP;
    }
    s->login->last_auth_code = 0;
    evbuffer_remove_buffer(s->client.in, s->server_conn->ep.out, len + PKT_HEADER_LEN);
    return MSG_FORWARDED;
}

void server_auth_client_on_read(struct session *s)
{
    static const struct msg_reader reader = {
        .fill_max = SASL_MAX,
        .max_body = SASL_MAX,
        .on_message = client_auth_relay,
        .on_bad_length = client_bad_length,
    };
    endpoint_read_messages(s, &s->client, &reader);
}
