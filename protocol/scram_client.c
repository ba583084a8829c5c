/*
 * scram_client.c — the client side of SCRAM-SHA-256 (scram.h): pgnear
 * logging in to a server with the ClientKey that a client's proof gave
 * (scram_server.c), never with a password.  The server must announce the
 * salt and iteration count of the verifier pgnear holds; its signature in
 * the server-final-message proves that it holds the same secret.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "protocol/scram.h"
#include "protocol/scram_int.h"

/* Copies untrusted text for a log line, replacing unprintable bytes. */
static void copy_printable(char *dst, size_t cap, struct slice s)
{
    const uint8_t *p = s.data;
    size_t n = (s.len < cap - 1) ? s.len : cap - 1;

    for (size_t i = 0; i < n; i++)
        dst[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    dst[n] = '\0';
}

/* The exchange fails for good; detail says why, for the log. Returns rc. */
static int client_fail(struct scram_client *c, int rc, const char *detail)
{
    return scram_record_failure(&c->state, c->errdetail, rc, detail);
}

int scram_client_init(struct scram_client *c, const uint8_t client_key[SCRAM_KEY_LEN],
                      const struct scram_verifier *v, const uint8_t *cb_data, size_t cb_len)
{
    uint8_t hash[SCRAM_KEY_LEN];

    if (c == NULL)
        return SCRAM_EINTERNAL;
    memset(c, 0, sizeof(*c));
    if (!scram_verifier_valid(v) || client_key == NULL)
        return client_fail(c, SCRAM_EFORMAT, "The SCRAM verifier is invalid.");
    if (!scram_cb_args_valid(cb_data, cb_len))
        return client_fail(c, SCRAM_EINTERNAL, "The channel binding data is invalid.");
    if (!scram_sha256(client_key, SCRAM_KEY_LEN, hash))
        return client_fail(c, SCRAM_EINTERNAL, "SHA-256 computation failed.");
    if (CRYPTO_memcmp(hash, v->stored_key, SCRAM_KEY_LEN) != 0)
        return client_fail(c, SCRAM_EFORMAT, "The ClientKey does not belong to the verifier.");
    c->verifier = *v;
    memcpy(c->client_key, client_key, SCRAM_KEY_LEN);
    if (cb_len > 0)
        memcpy(c->cb_data, cb_data, cb_len);
    c->cb_len = cb_len;
    c->state = SCRAM_STATE_INIT;
    return SCRAM_OK;
}

const char *scram_client_mechanism(const struct scram_client *c)
{
    return (c != NULL && c->cb_len > 0) ? SCRAM_MECH_PLUS : SCRAM_MECH;
}

/* The GS2 header matching the channel binding in use: tls-server-end-point when there is one. */
static const char *client_gs2_header(const struct scram_client *c)
{
    return (c->cb_len > 0) ? SCRAM_GS2_CB : SCRAM_GS2_NO_CB;
}

/* Argument and state checks shared by the client steps. */
static int client_check_call(struct scram_client *c, enum scram_state want, const uint8_t *msg,
                             size_t len)
{
    if (c->state != want)
        return client_fail(c, SCRAM_EINTERNAL, "SCRAM client called out of order.");
    if (msg == NULL && len > 0)
        return client_fail(c, SCRAM_EINTERNAL, "SCRAM client called with invalid arguments.");
    if (scram_has_nul(msg, len))
        return client_fail(c, SCRAM_EPROTO, "The server's SCRAM message contains a NUL byte.");
    return SCRAM_OK;
}

int scram_client_first(struct scram_client *c, char *out, size_t cap, size_t *outlen)
{
    struct sbuf b;
    int rc;

    if (c == NULL)
        return SCRAM_EINTERNAL;
    rc = client_check_call(c, SCRAM_STATE_INIT, NULL, 0);
    if (rc != SCRAM_OK)
        return rc;
    if (out == NULL || outlen == NULL)
        return client_fail(c, SCRAM_EINTERNAL, "SCRAM client called with invalid arguments.");
    if (!scram_make_nonce(c->nonce))
        return client_fail(c, SCRAM_EINTERNAL, "Could not generate a random nonce.");
    scram_buf_init(&b, out, cap);
    scram_buf_puts(&b, client_gs2_header(c));
    scram_buf_puts(&b, "n=,r=");
    scram_buf_puts(&b, c->nonce);
    if (!scram_buf_finish(&b, outlen))
        return client_fail(c, SCRAM_ENOSPACE,
                           "The output buffer is too small for the SCRAM "
                           "message.");
    c->state = SCRAM_STATE_FIRST;
    return SCRAM_OK;
}

/* "r=" nonce ",s=" salt ",i=" iterations, and nothing after; false when not so. */
static bool split_server_first(const uint8_t *msg, size_t len, struct slice *nonce,
                               struct slice *salt, struct slice *iter)
{
    struct cursor cur;

    scram_cur_init(&cur, msg, len);
    return scram_cur_attr(&cur, 'r', nonce) && scram_cur_accept(&cur, ',') &&
           scram_cur_attr(&cur, 's', salt) && scram_cur_accept(&cur, ',') &&
           scram_cur_attr(&cur, 'i', iter) && scram_cur_end(&cur);
}

/* Splits server-first-message into nonce, salt and iteration fields. */
static int client_parse_server_first(struct scram_client *c, const uint8_t *msg, size_t len,
                                     struct slice *nonce, struct slice *salt, struct slice *iter)
{
    if (len > 0 && msg[0] == 'm')
        return client_fail(c, SCRAM_EPROTO,
                           "The server requires an unsupported SCRAM "
                           "extension.");
    if (!split_server_first(msg, len, nonce, salt, iter))
        return client_fail(c, SCRAM_EPROTO, "Malformed SCRAM server-first-message.");
    return SCRAM_OK;
}

int scram_client_read_secret(const uint8_t *server_first, size_t len,
                             uint8_t salt[SCRAM_MAX_SALT_LEN], size_t *salt_len, int *iterations)
{
    struct slice nonce, s, iter;

    if (server_first == NULL || salt == NULL || salt_len == NULL || iterations == NULL ||
        scram_has_nul(server_first, len) ||
        !split_server_first(server_first, len, &nonce, &s, &iter))
        return SCRAM_EPROTO;
    if (!scram_b64_decode(s, salt, SCRAM_MAX_SALT_LEN, salt_len) || *salt_len == 0 ||
        !scram_parse_positive_int(iter, iterations))
        return SCRAM_EPROTO;
    return SCRAM_OK;
}

/*
 * The server's nonce must extend ours, and its salt and iteration count
 * must be those of our verifier: otherwise our ClientKey cannot work.
 */
static int client_check_server_first(struct scram_client *c, struct slice nonce, struct slice salt,
                                     struct slice iter)
{
    uint8_t got_salt[SCRAM_MAX_SALT_LEN];
    size_t salt_len;
    int iterations;

    if (nonce.len <= SCRAM_NONCE_B64_LEN || !scram_nonce_printable(nonce) ||
        memcmp(nonce.data, c->nonce, SCRAM_NONCE_B64_LEN) != 0)
        return client_fail(c, SCRAM_EPROTO,
                           "The server's nonce does not extend the client "
                           "nonce.");
    if (!scram_b64_check(salt.data, salt.len, &salt_len) ||
        !scram_parse_positive_int(iter, &iterations))
        return client_fail(c, SCRAM_EPROTO,
                           "Malformed salt or iteration count in SCRAM "
                           "server-first-message.");
    if (salt_len != c->verifier.salt_len ||
        !scram_b64_decode(salt, got_salt, sizeof(got_salt), &salt_len) ||
        memcmp(got_salt, c->verifier.salt, salt_len) != 0 || iterations != c->verifier.iterations)
        return client_fail(c, SCRAM_EAUTH,
                           "The server's SCRAM secret differs from pgnear's "
                           "(salt or iteration count mismatch); the password "
                           "was probably changed on the server.");
    return SCRAM_OK;
}

/* client-final-message-without-proof: "c=" cbind-input ",r=" nonce. */
static void client_put_final_no_proof(const struct scram_client *c, struct sbuf *b,
                                      struct slice nonce)
{
    uint8_t cbind[B64_DECODE_MAX];
    const char *gs2 = client_gs2_header(c);
    size_t n = scram_cbind_input(cbind, gs2, strlen(gs2), c->cb_data, c->cb_len);

    scram_buf_puts(b, "c=");
    scram_buf_put_b64(b, cbind, n);
    scram_buf_puts(b, ",r=");
    scram_buf_put(b, nonce.data, nonce.len);
}

/* Appends ",p=" proof and remembers the server signature to expect. */
static int client_put_proof(struct scram_client *c, struct sbuf *b, struct slice server_first)
{
    char bare[SCRAM_NONCE_B64_LEN + 8];
    struct slice first_bare, final_no_proof = {b->data, b->len};
    uint8_t sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
    int n = snprintf(bare, sizeof(bare), "n=,r=%s", c->nonce);

    first_bare = (struct slice){bare, (size_t)n};
    if (!scram_hmac_auth_message(c->verifier.stored_key, first_bare, server_first, final_no_proof,
                                 sig) ||
        !scram_hmac_auth_message(c->verifier.server_key, first_bare, server_first, final_no_proof,
                                 c->server_signature))
        return client_fail(c, SCRAM_EINTERNAL, "HMAC computation failed.");
    scram_xor_keys(proof, c->client_key, sig);
    scram_buf_puts(b, ",p=");
    scram_buf_put_b64(b, proof, SCRAM_KEY_LEN);
    OPENSSL_cleanse(proof, sizeof(proof));
    OPENSSL_cleanse(sig, sizeof(sig));
    return SCRAM_OK;
}

int scram_client_handle_first(struct scram_client *c, const uint8_t *server_first, size_t len,
                              char *out, size_t cap, size_t *outlen)
{
    struct slice nonce, salt, iter;
    struct sbuf b;
    int rc;

    if (c == NULL)
        return SCRAM_EINTERNAL;
    rc = client_check_call(c, SCRAM_STATE_FIRST, server_first, len);
    if (rc == SCRAM_OK && (out == NULL || outlen == NULL))
        rc = client_fail(c, SCRAM_EINTERNAL, "SCRAM client called with invalid arguments.");
    if (rc == SCRAM_OK)
        rc = client_parse_server_first(c, server_first, len, &nonce, &salt, &iter);
    if (rc == SCRAM_OK)
        rc = client_check_server_first(c, nonce, salt, iter);
    if (rc != SCRAM_OK)
        return rc;
    scram_buf_init(&b, out, cap);
    client_put_final_no_proof(c, &b, nonce);
    if (b.overflow)
        return client_fail(c, SCRAM_ENOSPACE,
                           "The output buffer is too small for the SCRAM "
                           "message.");
    rc = client_put_proof(c, &b, (struct slice){server_first, len});
    if (rc == SCRAM_OK && !scram_buf_finish(&b, outlen))
        rc = client_fail(c, SCRAM_ENOSPACE,
                         "The output buffer is too small for the SCRAM "
                         "message.");
    if (rc == SCRAM_OK)
        c->state = SCRAM_STATE_FINAL;
    return rc;
}

/* "e=": the server refused; keep its reason, made safe for a log line. */
static int client_server_error(struct scram_client *c, struct slice reason)
{
    char text[128];
    char detail[SCRAM_ERRDETAIL_LEN];

    copy_printable(text, sizeof(text), reason);
    snprintf(detail, sizeof(detail),
             "The server rejected the SCRAM "
             "exchange: %s",
             text);
    return client_fail(c, SCRAM_EAUTH, detail);
}

int scram_client_handle_final(struct scram_client *c, const uint8_t *server_final, size_t len)
{
    uint8_t sig[SCRAM_KEY_LEN];
    struct cursor cur;
    struct slice val;
    int rc;

    if (c == NULL)
        return SCRAM_EINTERNAL;
    rc = client_check_call(c, SCRAM_STATE_FINAL, server_final, len);
    if (rc != SCRAM_OK)
        return rc;
    scram_cur_init(&cur, server_final, len);
    if (scram_cur_attr(&cur, 'e', &val))
        return client_server_error(c, val);
    if (!scram_cur_attr(&cur, 'v', &val) || !scram_cur_end(&cur) || !scram_decode_key(val, sig))
        return client_fail(c, SCRAM_EPROTO, "Malformed SCRAM server-final-message.");
    if (CRYPTO_memcmp(sig, c->server_signature, SCRAM_KEY_LEN) != 0)
        return client_fail(c, SCRAM_EAUTH,
                           "The server's SCRAM signature is wrong: it does "
                           "not hold the expected secret.");
    c->state = SCRAM_STATE_DONE;
    return SCRAM_OK;
}

/* Why the exchange failed, for the log; "" when it has not (or c is NULL). */
const char *scram_client_errdetail(const struct scram_client *c)
{
    return (c != NULL) ? c->errdetail : "";
}

void scram_client_cleanup(struct scram_client *c)
{
    if (c != NULL)
        OPENSSL_cleanse(c, sizeof(*c));
}
