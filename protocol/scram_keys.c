/*
 * scram_keys.c — SCRAM-SHA-256's keys (scram.h): the hashes and nonces
 * both sides of an exchange use, PostgreSQL's stored verifier
 * (SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>) read, derived from a
 * password and written back, and the RFC 5929 tls-server-end-point hash of
 * a certificate that channel binding compares.
 */
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "protocol/scram.h"
#include "protocol/scram_int.h"

/* ---------------------------------------------------------------------
 * Crypto primitives
 * ------------------------------------------------------------------- */

bool scram_sha256(const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
    unsigned int n = 0;

    return EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == SCRAM_KEY_LEN;
}

/* HMAC-SHA-256 over the concatenation of parts, without copying them. */
static bool hmac_sha256(const uint8_t *key, size_t keylen, const struct slice *parts, size_t nparts,
                        uint8_t out[SCRAM_KEY_LEN])
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = (mac != NULL) ? EVP_MAC_CTX_new(mac) : NULL;
    size_t outlen = 0;
    bool ok = (ctx != NULL && EVP_MAC_init(ctx, key, keylen, params) == 1);

    for (size_t i = 0; ok && i < nparts; i++)
        ok = (EVP_MAC_update(ctx, parts[i].data, parts[i].len) == 1);
    if (ok)
        ok = (EVP_MAC_final(ctx, out, &outlen, SCRAM_KEY_LEN) == 1 && outlen == SCRAM_KEY_LEN);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return ok;
}

/*
 * HMAC-SHA-256 of a string (without its NUL), as SCRAM's "Client Key" and
 * "Server Key" are made; false on an OpenSSL failure.
 */
bool scram_hmac_sha256_str(const uint8_t *key, size_t keylen, const char *text,
                           uint8_t out[SCRAM_KEY_LEN])
{
    struct slice part = {text, strlen(text)};

    return hmac_sha256(key, keylen, &part, 1, out);
}

/* HMAC(key, AuthMessage) with AuthMessage assembled from its three parts. */
bool scram_hmac_auth_message(const uint8_t key[SCRAM_KEY_LEN], struct slice first_bare,
                             struct slice server_first, struct slice final_no_proof,
                             uint8_t out[SCRAM_KEY_LEN])
{
    struct slice parts[5] = {
        first_bare, {",", 1}, server_first, {",", 1}, final_no_proof,
    };

    return hmac_sha256(key, SCRAM_KEY_LEN, parts, 5, out);
}

/* out = a XOR b, as ClientProof and the ClientKey recovered from it are made. */
void scram_xor_keys(uint8_t out[SCRAM_KEY_LEN], const uint8_t a[SCRAM_KEY_LEN],
                    const uint8_t b[SCRAM_KEY_LEN])
{
    for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
        out[i] = a[i] ^ b[i];
}

/* A fresh nonce: base64 of SCRAM_NONCE_RAW_LEN random bytes, NUL-terminated. */
bool scram_make_nonce(char out[SCRAM_NONCE_B64_LEN + 1])
{
    uint8_t raw[SCRAM_NONCE_RAW_LEN];

    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return false;
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof(raw));
    return true;
}

/* ---------------------------------------------------------------------
 * Verifiers
 * ------------------------------------------------------------------- */

/* A verifier that can be used: some salt (within bounds) and iterations; NULL is not one. */
bool scram_verifier_valid(const struct scram_verifier *v)
{
    return v != NULL && v->iterations > 0 && v->salt_len > 0 && v->salt_len <= SCRAM_MAX_SALT_LEN;
}

int scram_parse_verifier(const char *text, size_t len, struct scram_verifier *out)
{
    struct scram_verifier v;
    struct cursor c;
    struct slice iter, salt, stored, server;

    if (text == NULL || out == NULL)
        return SCRAM_EFORMAT;
    memset(&v, 0, sizeof(v));
    scram_cur_init(&c, text, len);
    if (!scram_cur_literal(&c, SCRAM_VERIFIER_PREFIX))
        return SCRAM_EFORMAT;
    iter = scram_cur_until(&c, ':');
    if (!scram_cur_accept(&c, ':'))
        return SCRAM_EFORMAT;
    salt = scram_cur_until(&c, '$');
    if (!scram_cur_accept(&c, '$'))
        return SCRAM_EFORMAT;
    stored = scram_cur_until(&c, ':');
    if (!scram_cur_accept(&c, ':'))
        return SCRAM_EFORMAT;
    server = (struct slice){c.p + c.pos, c.len - c.pos};

    if (!scram_parse_positive_int(iter, &v.iterations) ||
        !scram_b64_decode(salt, v.salt, sizeof(v.salt), &v.salt_len) ||
        !scram_decode_key(stored, v.stored_key) || !scram_decode_key(server, v.server_key))
        return SCRAM_EFORMAT;
    *out = v;
    OPENSSL_cleanse(&v, sizeof(v));
    return SCRAM_OK;
}

/* ASCII is exactly what SASLprep (and PostgreSQL) pass through unchanged. */
bool scram_password_usable(const char *password, size_t *len)
{
    size_t n = strlen(password);

    if (n > INT_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)password[i] >= 0x80)
            return false;
    }
    *len = n;
    return true;
}

int scram_derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                      uint8_t client_key[SCRAM_KEY_LEN], struct scram_verifier *out)
{
    uint8_t salted[SCRAM_KEY_LEN];
    size_t pwlen;
    bool ok;

    if (password == NULL || salt == NULL || client_key == NULL || out == NULL || salt_len == 0 ||
        salt_len > SCRAM_MAX_SALT_LEN || iterations <= 0 ||
        !scram_password_usable(password, &pwlen))
        return SCRAM_EFORMAT;
    memset(out, 0, sizeof(*out));
    ok = PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)salt_len, iterations, EVP_sha256(),
                           SCRAM_KEY_LEN, salted) == 1 &&
         scram_hmac_sha256_str(salted, SCRAM_KEY_LEN, "Client Key", client_key) &&
         scram_sha256(client_key, SCRAM_KEY_LEN, out->stored_key) &&
         scram_hmac_sha256_str(salted, SCRAM_KEY_LEN, "Server Key", out->server_key);
    OPENSSL_cleanse(salted, sizeof(salted));
    if (!ok) {
        OPENSSL_cleanse(client_key, SCRAM_KEY_LEN);
        OPENSSL_cleanse(out, sizeof(*out));
        return SCRAM_EINTERNAL;
    }
    out->iterations = iterations;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    return SCRAM_OK;
}

int scram_make_verifier(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        struct scram_verifier *out)
{
    uint8_t client_key[SCRAM_KEY_LEN];
    int rc = scram_derive_keys(password, salt, salt_len, iterations, client_key, out);

    OPENSSL_cleanse(client_key, sizeof(client_key));
    return rc;
}

int scram_format_verifier(const struct scram_verifier *v, char *out, size_t cap)
{
    struct sbuf b;
    size_t len;

    if (!scram_verifier_valid(v) || out == NULL)
        return SCRAM_EFORMAT;
    scram_buf_init(&b, out, cap);
    scram_buf_puts(&b, SCRAM_VERIFIER_PREFIX);
    scram_buf_put_int(&b, v->iterations);
    scram_buf_puts(&b, ":");
    scram_buf_put_b64(&b, v->salt, v->salt_len);
    scram_buf_puts(&b, "$");
    scram_buf_put_b64(&b, v->stored_key, SCRAM_KEY_LEN);
    scram_buf_puts(&b, ":");
    scram_buf_put_b64(&b, v->server_key, SCRAM_KEY_LEN);
    return scram_buf_finish(&b, &len) ? SCRAM_OK : SCRAM_ENOSPACE;
}

/* ---------------------------------------------------------------------
 * Channel binding
 * ------------------------------------------------------------------- */

/* RFC 5929 section 4.1: the signature's hash, MD5/SHA-1 become SHA-256. */
static const EVP_MD *end_point_digest(X509 *cert)
{
    int mdnid = NID_undef, pknid, secbits;
    uint32_t flags;

    if (X509_get_signature_info(cert, &mdnid, &pknid, &secbits, &flags) != 1)
        return NULL;
    if (mdnid == NID_md5 || mdnid == NID_sha1)
        mdnid = NID_sha256;
    if (mdnid == NID_undef)
        return NULL;
    return EVP_get_digestbynid(mdnid);
}

int scram_tls_server_end_point(X509 *cert, uint8_t *out, size_t cap, size_t *outlen)
{
    const EVP_MD *md;
    unsigned int n = 0;
    int size;

    if (cert == NULL || out == NULL || outlen == NULL)
        return SCRAM_EINTERNAL;
    md = end_point_digest(cert);
    if (md == NULL)
        return SCRAM_EFORMAT;
    size = EVP_MD_get_size(md);
    if (size <= 0 || size > SCRAM_MAX_CB_LEN)
        return SCRAM_EFORMAT;
    if ((size_t)size > cap)
        return SCRAM_ENOSPACE;
    if (X509_digest(cert, md, out, &n) != 1 || n != (unsigned int)size)
        return SCRAM_EINTERNAL;
    *outlen = n;
    return SCRAM_OK;
}
