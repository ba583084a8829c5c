/*
 * scram_server.c — the server side of SCRAM-SHA-256 (scram.h): pgnear
 * verifying a client against the verifier of its user.  It reads the
 * client-first-message (mechanism, gs2 header and channel binding, nonce),
 * answers with the salt and iteration count, checks the client's proof in
 * the client-final-message, and keeps the ClientKey the proof reveals, with
 * which scram_client.c later logs in to the servers.  A password given in
 * clear is checked against the same verifier.
 */
#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "protocol/scram.h"
#include "protocol/scram_int.h"

/* Whether s is the text lit, all of it. */
static bool slice_eq(struct slice s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.data, lit, s.len) == 0;
}

/* The exchange fails for good; detail says why, for the log. Returns rc. */
static int server_fail(struct scram_server *s, int rc, const char *detail)
{
    return scram_record_failure(&s->state, s->errdetail, rc, detail);
}

int scram_server_init(struct scram_server *s, const struct scram_verifier *v,
                      const uint8_t *cb_data, size_t cb_len)
{
    if (s == NULL)
        return SCRAM_EINTERNAL;
    memset(s, 0, sizeof(*s));
    if (!scram_verifier_valid(v))
        return server_fail(s, SCRAM_EFORMAT, "The SCRAM verifier is invalid.");
    if (!scram_cb_args_valid(cb_data, cb_len))
        return server_fail(s, SCRAM_EINTERNAL, "The channel binding data is invalid.");
    s->verifier = *v;
    if (cb_len > 0)
        memcpy(s->cb_data, cb_data, cb_len);
    s->cb_len = cb_len;
    s->state = SCRAM_STATE_INIT;
    return SCRAM_OK;
}

/* Decides whether the chosen mechanism requires channel binding. */
static int server_check_mech(struct scram_server *s, const char *mech, bool *plus)
{
    if (strcmp(mech, SCRAM_MECH) == 0) {
        *plus = false;
        return SCRAM_OK;
    }
    if (strcmp(mech, SCRAM_MECH_PLUS) != 0)
        return server_fail(s, SCRAM_EPROTO,
                           "The client selected an invalid SASL "
                           "authentication mechanism.");
    if (s->cb_len == 0)
        return server_fail(s, SCRAM_ECBIND,
                           "The client selected SCRAM-SHA-256-PLUS, but "
                           "channel binding is not available on this "
                           "connection.");
    *plus = true;
    return SCRAM_OK;
}

/* The gs2 cbind-flag, checked against the mechanism and what we offered. */
static int server_read_cbind_flag(struct scram_server *s, struct cursor *c, bool plus)
{
    struct slice name;

    switch (scram_cur_peek(c)) {
    case 'n':
    case 'y':
        if (plus)
            return server_fail(s, SCRAM_ECBIND,
                               "The client selected SCRAM-SHA-256-PLUS, but the "
                               "SCRAM message does not include channel binding "
                               "data.");
        if (scram_cur_peek(c) == 'y' && s->cb_len > 0)
            return server_fail(s, SCRAM_ECBIND,
                               "The client supports SCRAM channel binding but "
                               "thinks the server does not. However, this "
                               "server does support channel binding.");
        c->pos++;
        return SCRAM_OK;
    case 'p':
        if (!plus)
            return server_fail(s, SCRAM_EPROTO,
                               "The client selected SCRAM-SHA-256 without "
                               "channel binding, but the SCRAM message "
                               "includes channel binding data.");
        if (!scram_cur_attr(c, 'p', &name) || !slice_eq(name, SCRAM_CB_TYPE))
            return server_fail(s, SCRAM_ECBIND, "Unsupported SCRAM channel-binding type.");
        s->cb_used = 1;
        return SCRAM_OK;
    default:
        return server_fail(s, SCRAM_EPROTO,
                           "Unexpected channel-binding flag in "
                           "client-first-message.");
    }
}

/* gs2-header: cbind-flag "," [authzid] ","; we refuse authzid. */
static int server_read_gs2(struct scram_server *s, struct cursor *c, bool plus)
{
    int rc = server_read_cbind_flag(s, c, plus);

    if (rc != SCRAM_OK)
        return rc;
    if (!scram_cur_accept(c, ','))
        return server_fail(s, SCRAM_EPROTO, "Comma expected after the channel-binding flag.");
    if (scram_cur_peek(c) == 'a')
        return server_fail(s, SCRAM_EPROTO,
                           "The client uses an authorization identity, but "
                           "it is not supported.");
    if (!scram_cur_accept(c, ',') || c->pos >= sizeof(s->gs2_header))
        return server_fail(s, SCRAM_EPROTO, "Malformed GS2 header in client-first-message.");
    memcpy(s->gs2_header, c->p, c->pos);
    s->gs2_len = c->pos;
    return SCRAM_OK;
}

/* Optional extensions at the end of a message: ("," attr "=" value)*. */
static bool skip_extensions(struct cursor *c)
{
    char attr;
    struct slice val;

    while (!scram_cur_end(c)) {
        if (!scram_cur_accept(c, ',') || !scram_cur_any_attr(c, &attr, &val))
            return false;
    }
    return true;
}

/* client-first-message-bare; the username is required but ignored. */
static int server_read_first_bare(struct scram_server *s, struct cursor *c, struct slice *nonce)
{
    size_t start = c->pos;
    struct slice user;

    if (scram_cur_peek(c) == 'm')
        return server_fail(s, SCRAM_EPROTO,
                           "The client requires an unsupported SCRAM "
                           "extension.");
    if (!scram_cur_attr(c, 'n', &user) || !scram_cur_accept(c, ','))
        return server_fail(s, SCRAM_EPROTO,
                           "The client-first-message has no username "
                           "attribute.");
    if (!scram_cur_attr(c, 'r', nonce) || !scram_nonce_printable(*nonce))
        return server_fail(s, SCRAM_EPROTO,
                           "The client nonce is missing, empty or contains "
                           "non-printable characters.");
    if (!skip_extensions(c))
        return server_fail(s, SCRAM_EPROTO, "Malformed attribute in client-first-message.");
    if (c->len - start > sizeof(s->client_first_bare))
        return server_fail(s, SCRAM_EPROTO, "The client-first-message is too long.");
    memcpy(s->client_first_bare, c->p + start, c->len - start);
    s->client_first_bare_len = c->len - start;
    return SCRAM_OK;
}

/* server-first-message: our nonce appended to the client's. */
static int server_build_first(struct scram_server *s, struct slice client_nonce)
{
    char nonce[SCRAM_NONCE_B64_LEN + 1];
    struct sbuf b;

    if (!scram_make_nonce(nonce))
        return server_fail(s, SCRAM_EINTERNAL, "Could not generate a random nonce.");
    scram_buf_init(&b, s->server_first, sizeof(s->server_first));
    scram_buf_puts(&b, "r=");
    scram_buf_put(&b, client_nonce.data, client_nonce.len);
    scram_buf_puts(&b, nonce);
    scram_buf_puts(&b, ",s=");
    scram_buf_put_b64(&b, s->verifier.salt, s->verifier.salt_len);
    scram_buf_puts(&b, ",i=");
    scram_buf_put_int(&b, s->verifier.iterations);
    if (!scram_buf_finish(&b, &s->server_first_len))
        return server_fail(s, SCRAM_EINTERNAL, "The server-first-message does not fit.");
    s->nonce_len = client_nonce.len + SCRAM_NONCE_B64_LEN;
    return SCRAM_OK;
}

/* Copies a finished message to the caller, NUL-terminated. */
static int server_emit(struct scram_server *s, const char *msg, size_t len, char *out, size_t cap,
                       size_t *outlen)
{
    if (len >= cap)
        return server_fail(s, SCRAM_ENOSPACE,
                           "The output buffer is too small for the SCRAM "
                           "message.");
    memcpy(out, msg, len);
    out[len] = '\0';
    *outlen = len;
    return SCRAM_OK;
}

/* Argument and state checks shared by both server steps. */
static int server_check_call(struct scram_server *s, enum scram_state want, const uint8_t *msg,
                             size_t len, const char *out, const size_t *outlen)
{
    if (s->state != want)
        return server_fail(s, SCRAM_EINTERNAL, "SCRAM server called out of order.");
    if ((msg == NULL && len > 0) || out == NULL || outlen == NULL)
        return server_fail(s, SCRAM_EINTERNAL, "SCRAM server called with invalid arguments.");
    if (scram_has_nul(msg, len))
        return server_fail(s, SCRAM_EPROTO, "The SCRAM message contains a NUL byte.");
    return SCRAM_OK;
}

int scram_server_handle_first(struct scram_server *s, const char *mech, const uint8_t *msg,
                              size_t len, char *out, size_t cap, size_t *outlen)
{
    struct cursor c;
    struct slice nonce;
    bool plus = false;
    int rc;

    if (s == NULL)
        return SCRAM_EINTERNAL;
    rc = server_check_call(s, SCRAM_STATE_INIT, msg, len, out, outlen);
    if (rc == SCRAM_OK && mech == NULL)
        rc = server_fail(s, SCRAM_EINTERNAL, "No SASL mechanism given.");
    if (rc == SCRAM_OK)
        rc = server_check_mech(s, mech, &plus);
    scram_cur_init(&c, msg, len);
    if (rc == SCRAM_OK)
        rc = server_read_gs2(s, &c, plus);
    if (rc == SCRAM_OK)
        rc = server_read_first_bare(s, &c, &nonce);
    if (rc == SCRAM_OK)
        rc = server_build_first(s, nonce);
    if (rc == SCRAM_OK)
        rc = server_emit(s, s->server_first, s->server_first_len, out, cap, outlen);
    if (rc == SCRAM_OK)
        s->state = SCRAM_STATE_FIRST;
    return rc;
}

/* c=: must repeat the gs2 header, plus our cb data when binding is used. */
static int server_check_cbind(struct scram_server *s, struct cursor *c)
{
    uint8_t want[B64_DECODE_MAX];
    uint8_t got[B64_DECODE_MAX];
    size_t want_len, got_len;
    struct slice val;

    if (!scram_cur_attr(c, 'c', &val))
        return server_fail(s, SCRAM_EPROTO,
                           "The client-final-message does not start with "
                           "the channel-binding attribute.");
    if (!scram_b64_check(val.data, val.len, &got_len))
        return server_fail(s, SCRAM_EPROTO,
                           "The channel-binding attribute is not valid "
                           "base64.");
    want_len =
        scram_cbind_input(want, s->gs2_header, s->gs2_len, s->cb_data, s->cb_used ? s->cb_len : 0);
    if (got_len == want_len && scram_b64_decode(val, got, sizeof(got), &got_len) &&
        memcmp(got, want, want_len) == 0)
        return SCRAM_OK;
    if (s->cb_used)
        return server_fail(s, SCRAM_ECBIND,
                           "SCRAM channel binding check failed: the client's "
                           "channel binding data does not match this "
                           "connection.");
    return server_fail(s, SCRAM_EPROTO,
                       "The channel-binding attribute does not match the "
                       "client-first-message.");
}

/*
 * The client-final-message must carry the whole nonce of this exchange, or it
 * is a replay or another exchange's.
 */
static int server_check_nonce(struct scram_server *s, struct cursor *c)
{
    struct slice val;

    if (!scram_cur_accept(c, ',') || !scram_cur_attr(c, 'r', &val))
        return server_fail(s, SCRAM_EPROTO, "The client-final-message has no nonce attribute.");
    if (val.len != s->nonce_len || memcmp(val.data, s->server_first + 2, s->nonce_len) != 0)
        return server_fail(s, SCRAM_EPROTO,
                           "The nonce in the client-final-message does not "
                           "match the exchange.");
    return SCRAM_OK;
}

/*
 * Skips extensions up to "p=", which must be the last attribute.
 * *no_proof_len is the length of client-final-message-without-proof.
 */
static int server_read_proof(struct scram_server *s, struct cursor *c, uint8_t proof[SCRAM_KEY_LEN],
                             size_t *no_proof_len)
{
    struct slice val;
    char attr = 0;

    while (attr != 'p') {
        *no_proof_len = c->pos;
        if (!scram_cur_accept(c, ','))
            return server_fail(s, SCRAM_EPROTO, "The client-final-message has no proof.");
        if (!scram_cur_any_attr(c, &attr, &val))
            return server_fail(s, SCRAM_EPROTO, "Malformed attribute in client-final-message.");
    }
    if (!scram_cur_end(c))
        return server_fail(s, SCRAM_EPROTO,
                           "The proof is not the last attribute of the "
                           "client-final-message.");
    if (!scram_decode_key(val, proof))
        return server_fail(s, SCRAM_EPROTO,
                           "The client proof is not 32 bytes of valid "
                           "base64.");
    return SCRAM_OK;
}

/* Recovers ClientKey from the proof and checks it hashes to StoredKey. */
static int server_verify_proof(struct scram_server *s, const uint8_t proof[SCRAM_KEY_LEN],
                               struct slice final_no_proof, uint8_t server_sig[SCRAM_KEY_LEN])
{
    struct slice bare = {s->client_first_bare, s->client_first_bare_len};
    struct slice first = {s->server_first, s->server_first_len};
    uint8_t sig[SCRAM_KEY_LEN], key[SCRAM_KEY_LEN], hash[SCRAM_KEY_LEN];
    int rc = SCRAM_OK;

    if (!scram_hmac_auth_message(s->verifier.stored_key, bare, first, final_no_proof, sig) ||
        !scram_hmac_auth_message(s->verifier.server_key, bare, first, final_no_proof, server_sig))
        return server_fail(s, SCRAM_EINTERNAL, "HMAC computation failed.");
    scram_xor_keys(key, proof, sig);
    if (!scram_sha256(key, SCRAM_KEY_LEN, hash))
        rc = server_fail(s, SCRAM_EINTERNAL, "SHA-256 computation failed.");
    else if (CRYPTO_memcmp(hash, s->verifier.stored_key, SCRAM_KEY_LEN) != 0)
        rc = server_fail(s, SCRAM_EAUTH,
                         "The client's SCRAM proof does not match the "
                         "stored verifier (wrong password).");
    else
        memcpy(s->client_key, key, SCRAM_KEY_LEN);
    OPENSSL_cleanse(key, sizeof(key));
    OPENSSL_cleanse(sig, sizeof(sig));
    return rc;
}

/* server-final-message: "v=" base64(ServerSignature). */
static int server_write_final(struct scram_server *s, const uint8_t sig[SCRAM_KEY_LEN], char *out,
                              size_t cap, size_t *outlen)
{
    struct sbuf b;

    scram_buf_init(&b, out, cap);
    scram_buf_puts(&b, "v=");
    scram_buf_put_b64(&b, sig, SCRAM_KEY_LEN);
    if (!scram_buf_finish(&b, outlen))
        return server_fail(s, SCRAM_ENOSPACE,
                           "The output buffer is too small for the SCRAM "
                           "message.");
    return SCRAM_OK;
}

int scram_server_handle_final(struct scram_server *s, const uint8_t *msg, size_t len, char *out,
                              size_t cap, size_t *outlen)
{
    uint8_t proof[SCRAM_KEY_LEN], server_sig[SCRAM_KEY_LEN];
    size_t no_proof_len = 0;
    struct cursor c;
    int rc;

    if (s == NULL)
        return SCRAM_EINTERNAL;
    rc = server_check_call(s, SCRAM_STATE_FIRST, msg, len, out, outlen);
    scram_cur_init(&c, msg, len);
    if (rc == SCRAM_OK)
        rc = server_check_cbind(s, &c);
    if (rc == SCRAM_OK)
        rc = server_check_nonce(s, &c);
    if (rc == SCRAM_OK)
        rc = server_read_proof(s, &c, proof, &no_proof_len);
    if (rc == SCRAM_OK)
        rc = server_verify_proof(s, proof, (struct slice){msg, no_proof_len}, server_sig);
    if (rc == SCRAM_OK)
        rc = server_write_final(s, server_sig, out, cap, outlen);
    if (rc == SCRAM_OK)
        s->state = SCRAM_STATE_DONE;
    else
        OPENSSL_cleanse(s->client_key, sizeof(s->client_key));
    return rc;
}

int scram_server_check_password(struct scram_server *s, const char *password)
{
    uint8_t salted[SCRAM_KEY_LEN], client_key[SCRAM_KEY_LEN], stored[SCRAM_KEY_LEN];
    size_t pwlen;
    if (s == NULL || s->state != SCRAM_STATE_INIT || password == NULL)
        return server_fail(s, SCRAM_EINTERNAL, "The SCRAM exchange is not at its start.");
    if (!scram_password_usable(password, &pwlen))
        return server_fail(s, SCRAM_EAUTH,
                           "The password has characters outside ASCII, which pgnear does not "
                           "normalize (SASLprep).");
    const struct scram_verifier *v = &s->verifier;
    bool ok = PKCS5_PBKDF2_HMAC(password, (int)pwlen, v->salt, (int)v->salt_len, v->iterations,
                                EVP_sha256(), SCRAM_KEY_LEN, salted) == 1 &&
              scram_hmac_sha256_str(salted, SCRAM_KEY_LEN, "Client Key", client_key) &&
              scram_sha256(client_key, SCRAM_KEY_LEN, stored);
    OPENSSL_cleanse(salted, sizeof(salted));
    if (ok && CRYPTO_memcmp(stored, v->stored_key, SCRAM_KEY_LEN) == 0) {
        memcpy(s->client_key, client_key, SCRAM_KEY_LEN);
        s->state = SCRAM_STATE_DONE;
    }
    OPENSSL_cleanse(client_key, sizeof(client_key));
    if (!ok)
        return server_fail(s, SCRAM_EINTERNAL, "Could not derive the keys of the password.");
    if (s->state != SCRAM_STATE_DONE)
        return server_fail(s, SCRAM_EAUTH, "The password does not match the SCRAM secret.");
    return SCRAM_OK;
}

const uint8_t *scram_server_client_key(const struct scram_server *s)
{
    if (s == NULL || s->state != SCRAM_STATE_DONE)
        return NULL;
    return s->client_key;
}

int scram_server_channel_bound(const struct scram_server *s)
{
    return s != NULL && s->state == SCRAM_STATE_DONE && s->cb_used;
}

const char *scram_server_errdetail(const struct scram_server *s)
{
    return (s != NULL) ? s->errdetail : "";
}

void scram_server_cleanup(struct scram_server *s)
{
    if (s != NULL)
        OPENSSL_cleanse(s, sizeof(*s));
}
