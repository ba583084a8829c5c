/*
 * scram.c
 *    SCRAM-SHA-256 verifiers, server and client exchanges, and the
 *    tls-server-end-point channel binding hash.  See scram.h.
 *
 * Message syntax (RFC 5802 section 7), as far as PostgreSQL uses it:
 *
 *   client-first  = gs2-header client-first-bare
 *   gs2-header    = ("n" / "y" / "p=" cb-name) "," [authzid] ","
 *   client-first-bare = [m-ext ","] "n=" user ",r=" c-nonce ["," ext]*
 *   server-first  = [m-ext ","] "r=" c-nonce s-nonce ",s=" salt ",i=" iter
 *   client-final  = "c=" b64(gs2-header [cb-data]) ",r=" nonce
 *                   ["," ext]* ",p=" proof
 *   server-final  = "v=" signature / "e=" error
 *
 *   AuthMessage = client-first-bare "," server-first ","
 *                 client-final-without-proof
 */
#include "scram.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#define SCRAM_VERIFIER_PREFIX "SCRAM-SHA-256$"
#define SCRAM_CB_TYPE         "tls-server-end-point"
#define SCRAM_GS2_CB          "p=" SCRAM_CB_TYPE ",,"
#define SCRAM_GS2_NO_CB       "n,,"

/* Largest base64 value we ever decode: gs2 header plus cb data. */
#define B64_DECODE_MAX (SCRAM_GS2_HEADER_MAX + SCRAM_MAX_CB_LEN)

/* A read-only run of bytes, e.g. an attribute value inside a message. */
struct slice {
    const void *data;
    size_t len;
};

/* Parser position in a message that is not NUL-terminated. */
struct cursor {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

/* Bounded output; overflow is sticky so callers check once at the end. */
struct sbuf {
    char *data;
    size_t cap;
    size_t len;
    bool overflow;
};

/* ---------------------------------------------------------------------
 * Output buffer
 * ------------------------------------------------------------------- */

static void sbuf_init(struct sbuf *b, char *data, size_t cap)
{
    b->data = data;
    b->cap = cap;
    b->len = 0;
    b->overflow = (cap == 0);
    if (cap > 0)
        data[0] = '\0';
}

/* Appends n bytes, always keeping room for the final NUL. */
static void sbuf_put(struct sbuf *b, const void *p, size_t n)
{
    if (b->overflow || b->cap - b->len <= n) {
        b->overflow = true;
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void sbuf_puts(struct sbuf *b, const char *s)
{
    sbuf_put(b, s, strlen(s));
}

static void sbuf_put_int(struct sbuf *b, int v)
{
    char tmp[16];
    int n = snprintf(tmp, sizeof(tmp), "%d", v);

    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        b->overflow = true;
        return;
    }
    sbuf_put(b, tmp, (size_t)n);
}

/* Appends padded base64; EVP_EncodeBlock also writes a NUL we have room for. */
static void sbuf_put_b64(struct sbuf *b, const uint8_t *p, size_t n)
{
    size_t enc = (n + 2) / 3 * 4;

    if (b->overflow || n > INT_MAX / 2 || b->cap - b->len <= enc) {
        b->overflow = true;
        return;
    }
    EVP_EncodeBlock((unsigned char *)b->data + b->len, p, (int)n);
    b->len += enc;
}

static bool sbuf_finish(struct sbuf *b, size_t *outlen)
{
    if (b->overflow)
        return false;
    *outlen = b->len;
    return true;
}

/* ---------------------------------------------------------------------
 * Base64
 * ------------------------------------------------------------------- */

static int b64_value(uint8_t ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/*
 * Validates strict, padded, canonical base64 and computes its exact
 * decoded length.  EVP_DecodeBlock cannot be trusted for either: it skips
 * surrounding whitespace and counts padding as zero bytes of output.
 */
static bool b64_check(const uint8_t *in, size_t n, size_t *declen)
{
    size_t pad = 0;

    if (n == 0 || n % 4 != 0)
        return false;
    if (in[n - 1] == '=')
        pad = (in[n - 2] == '=') ? 2 : 1;
    for (size_t i = 0; i < n - pad; i++) {
        if (b64_value(in[i]) < 0)
            return false;
    }
    /* the bits padding leaves unused must be zero */
    if (pad == 1 && (b64_value(in[n - 2]) & 0x03) != 0)
        return false;
    if (pad == 2 && (b64_value(in[n - 3]) & 0x0f) != 0)
        return false;
    *declen = n / 4 * 3 - pad;
    return true;
}

/* Decodes into out[cap]; false if malformed or longer than cap. */
static bool b64_decode(struct slice in, uint8_t *out, size_t cap, size_t *outlen)
{
    uint8_t tmp[B64_DECODE_MAX + 3];
    size_t declen;
    int got;

    if (!b64_check(in.data, in.len, &declen) || declen > cap || in.len / 4 * 3 > sizeof(tmp))
        return false;
    got = EVP_DecodeBlock(tmp, in.data, (int)in.len);
    if (got < 0 || (size_t)got != in.len / 4 * 3)
        return false;
    memcpy(out, tmp, declen);
    OPENSSL_cleanse(tmp, sizeof(tmp));
    *outlen = declen;
    return true;
}

/* ---------------------------------------------------------------------
 * Message cursor
 * ------------------------------------------------------------------- */

static void cur_init(struct cursor *c, const void *p, size_t len)
{
    c->p = p;
    c->len = len;
    c->pos = 0;
}

static bool cur_end(const struct cursor *c)
{
    return c->pos >= c->len;
}

static int cur_peek(const struct cursor *c)
{
    return cur_end(c) ? -1 : c->p[c->pos];
}

/* Consumes ch if it is next. */
static bool cur_accept(struct cursor *c, char ch)
{
    if (cur_peek(c) != (uint8_t)ch)
        return false;
    c->pos++;
    return true;
}

/* Consumes a literal prefix if it is next. */
static bool cur_literal(struct cursor *c, const char *lit)
{
    size_t n = strlen(lit);

    if (c->len - c->pos < n || memcmp(c->p + c->pos, lit, n) != 0)
        return false;
    c->pos += n;
    return true;
}

/* Everything up to (not including) the next stop byte or the end. */
static struct slice cur_until(struct cursor *c, char stop)
{
    size_t start = c->pos;

    while (c->pos < c->len && c->p[c->pos] != (uint8_t)stop)
        c->pos++;
    return (struct slice){c->p + start, c->pos - start};
}

/* Reads "<attr>=<value>", leaving the cursor on the ',' that follows. */
static bool cur_attr(struct cursor *c, char attr, struct slice *val)
{
    if (c->len - c->pos < 2 || c->p[c->pos] != (uint8_t)attr || c->p[c->pos + 1] != '=')
        return false;
    c->pos += 2;
    *val = cur_until(c, ',');
    return true;
}

/* Like cur_attr for any attribute letter (extensions). */
static bool cur_any_attr(struct cursor *c, char *attr, struct slice *val)
{
    int ch = cur_peek(c);

    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
        return false;
    *attr = (char)ch;
    return cur_attr(c, (char)ch, val);
}

static bool slice_eq(struct slice s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.data, lit, s.len) == 0;
}

/* RFC 5802 "printable": 0x21..0x7E except ','. */
static bool nonce_printable(struct slice s)
{
    const uint8_t *p = s.data;

    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (p[i] < 0x21 || p[i] > 0x7e || p[i] == ',')
            return false;
    }
    return true;
}

/* Strict decimal 1..INT_MAX: no sign, no spaces, no trailing bytes. */
static bool parse_positive_int(struct slice s, int *out)
{
    const uint8_t *p = s.data;
    long long v = 0;

    if (s.len == 0 || s.len > 10)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (p[i] - '0');
    }
    if (v <= 0 || v > INT_MAX)
        return false;
    *out = (int)v;
    return true;
}

/* Copies untrusted text for a log line, replacing unprintable bytes. */
static void copy_printable(char *dst, size_t cap, struct slice s)
{
    const uint8_t *p = s.data;
    size_t n = (s.len < cap - 1) ? s.len : cap - 1;

    for (size_t i = 0; i < n; i++)
        dst[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
    dst[n] = '\0';
}

/* ---------------------------------------------------------------------
 * Crypto primitives
 * ------------------------------------------------------------------- */

static bool sha256(const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
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

static bool hmac_sha256_str(const uint8_t *key, size_t keylen, const char *text,
                            uint8_t out[SCRAM_KEY_LEN])
{
    struct slice part = {text, strlen(text)};

    return hmac_sha256(key, keylen, &part, 1, out);
}

/* HMAC(key, AuthMessage) with AuthMessage assembled from its three parts. */
static bool hmac_auth_message(const uint8_t key[SCRAM_KEY_LEN], struct slice first_bare,
                              struct slice server_first, struct slice final_no_proof,
                              uint8_t out[SCRAM_KEY_LEN])
{
    struct slice parts[5] = {
        first_bare, {",", 1}, server_first, {",", 1}, final_no_proof,
    };

    return hmac_sha256(key, SCRAM_KEY_LEN, parts, 5, out);
}

static void xor_keys(uint8_t out[SCRAM_KEY_LEN], const uint8_t a[SCRAM_KEY_LEN],
                     const uint8_t b[SCRAM_KEY_LEN])
{
    for (size_t i = 0; i < SCRAM_KEY_LEN; i++)
        out[i] = a[i] ^ b[i];
}

/* A fresh nonce: base64 of SCRAM_NONCE_RAW_LEN random bytes, NUL-terminated. */
static bool make_nonce(char out[SCRAM_NONCE_B64_LEN + 1])
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

static bool verifier_valid(const struct scram_verifier *v)
{
    return v != NULL && v->iterations > 0 && v->salt_len > 0 && v->salt_len <= SCRAM_MAX_SALT_LEN;
}

/* Decodes a base64 field that must be exactly SCRAM_KEY_LEN bytes. */
static bool decode_key(struct slice in, uint8_t out[SCRAM_KEY_LEN])
{
    size_t n;

    return b64_decode(in, out, SCRAM_KEY_LEN, &n) && n == SCRAM_KEY_LEN;
}

int scram_parse_verifier(const char *text, size_t len, struct scram_verifier *out)
{
    struct scram_verifier v;
    struct cursor c;
    struct slice iter, salt, stored, server;

    if (text == NULL || out == NULL)
        return SCRAM_EFORMAT;
    memset(&v, 0, sizeof(v));
    cur_init(&c, text, len);
    if (!cur_literal(&c, SCRAM_VERIFIER_PREFIX))
        return SCRAM_EFORMAT;
    iter = cur_until(&c, ':');
    if (!cur_accept(&c, ':'))
        return SCRAM_EFORMAT;
    salt = cur_until(&c, '$');
    if (!cur_accept(&c, '$'))
        return SCRAM_EFORMAT;
    stored = cur_until(&c, ':');
    if (!cur_accept(&c, ':'))
        return SCRAM_EFORMAT;
    server = (struct slice){c.p + c.pos, c.len - c.pos};

    if (!parse_positive_int(iter, &v.iterations) ||
        !b64_decode(salt, v.salt, sizeof(v.salt), &v.salt_len) ||
        !decode_key(stored, v.stored_key) || !decode_key(server, v.server_key))
        return SCRAM_EFORMAT;
    *out = v;
    OPENSSL_cleanse(&v, sizeof(v));
    return SCRAM_OK;
}

/* ASCII is exactly what SASLprep (and PostgreSQL) pass through unchanged. */
static bool password_usable(const char *password, size_t *len)
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

int scram_make_verifier(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        struct scram_verifier *out)
{
    uint8_t salted[SCRAM_KEY_LEN];
    uint8_t client_key[SCRAM_KEY_LEN];
    size_t pwlen;
    bool ok;

    if (password == NULL || salt == NULL || out == NULL || salt_len == 0 ||
        salt_len > SCRAM_MAX_SALT_LEN || iterations <= 0 || !password_usable(password, &pwlen))
        return SCRAM_EFORMAT;
    memset(out, 0, sizeof(*out));
    ok = PKCS5_PBKDF2_HMAC(password, (int)pwlen, salt, (int)salt_len, iterations, EVP_sha256(),
                           SCRAM_KEY_LEN, salted) == 1 &&
         hmac_sha256_str(salted, SCRAM_KEY_LEN, "Client Key", client_key) &&
         sha256(client_key, SCRAM_KEY_LEN, out->stored_key) &&
         hmac_sha256_str(salted, SCRAM_KEY_LEN, "Server Key", out->server_key);
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(client_key, sizeof(client_key));
    if (!ok) {
        OPENSSL_cleanse(out, sizeof(*out));
        return SCRAM_EINTERNAL;
    }
    out->iterations = iterations;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    return SCRAM_OK;
}

int scram_format_verifier(const struct scram_verifier *v, char *out, size_t cap)
{
    struct sbuf b;
    size_t len;

    if (!verifier_valid(v) || out == NULL)
        return SCRAM_EFORMAT;
    sbuf_init(&b, out, cap);
    sbuf_puts(&b, SCRAM_VERIFIER_PREFIX);
    sbuf_put_int(&b, v->iterations);
    sbuf_puts(&b, ":");
    sbuf_put_b64(&b, v->salt, v->salt_len);
    sbuf_puts(&b, "$");
    sbuf_put_b64(&b, v->stored_key, SCRAM_KEY_LEN);
    sbuf_puts(&b, ":");
    sbuf_put_b64(&b, v->server_key, SCRAM_KEY_LEN);
    return sbuf_finish(&b, &len) ? SCRAM_OK : SCRAM_ENOSPACE;
}

/* ---------------------------------------------------------------------
 * Shared exchange helpers
 * ------------------------------------------------------------------- */

/* Records why an exchange failed; it cannot continue afterwards. */
static int record_failure(enum scram_state *state, char *errdetail, int rc, const char *detail)
{
    *state = SCRAM_STATE_FAILED;
    snprintf(errdetail, SCRAM_ERRDETAIL_LEN, "%s", detail);
    return rc;
}

/* cb_len 0 means "no channel binding" whatever cb_data points to. */
static bool cb_args_valid(const uint8_t *cb_data, size_t cb_len)
{
    return cb_len == 0 || (cb_data != NULL && cb_len <= SCRAM_MAX_CB_LEN);
}

/* The c= payload: gs2 header, followed by cb data when binding is used. */
static size_t cbind_input(uint8_t *out, const char *gs2, size_t gs2_len, const uint8_t *cb_data,
                          size_t cb_len)
{
    memcpy(out, gs2, gs2_len);
    if (cb_len > 0)
        memcpy(out + gs2_len, cb_data, cb_len);
    return gs2_len + cb_len;
}

static bool has_nul(const uint8_t *msg, size_t len)
{
    return len > 0 && memchr(msg, '\0', len) != NULL;
}

/* ---------------------------------------------------------------------
 * Server side
 * ------------------------------------------------------------------- */

static int server_fail(struct scram_server *s, int rc, const char *detail)
{
    return record_failure(&s->state, s->errdetail, rc, detail);
}

int scram_server_init(struct scram_server *s, const struct scram_verifier *v,
                      const uint8_t *cb_data, size_t cb_len)
{
    if (s == NULL)
        return SCRAM_EINTERNAL;
    memset(s, 0, sizeof(*s));
    if (!verifier_valid(v))
        return server_fail(s, SCRAM_EFORMAT, "The SCRAM verifier is invalid.");
    if (!cb_args_valid(cb_data, cb_len))
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

    switch (cur_peek(c)) {
    case 'n':
    case 'y':
        if (plus)
            return server_fail(s, SCRAM_ECBIND,
                               "The client selected SCRAM-SHA-256-PLUS, but the "
                               "SCRAM message does not include channel binding "
                               "data.");
        if (cur_peek(c) == 'y' && s->cb_len > 0)
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
        if (!cur_attr(c, 'p', &name) || !slice_eq(name, SCRAM_CB_TYPE))
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
    if (!cur_accept(c, ','))
        return server_fail(s, SCRAM_EPROTO, "Comma expected after the channel-binding flag.");
    if (cur_peek(c) == 'a')
        return server_fail(s, SCRAM_EPROTO,
                           "The client uses an authorization identity, but "
                           "it is not supported.");
    if (!cur_accept(c, ',') || c->pos >= sizeof(s->gs2_header))
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

    while (!cur_end(c)) {
        if (!cur_accept(c, ',') || !cur_any_attr(c, &attr, &val))
            return false;
    }
    return true;
}

/* client-first-message-bare; the username is required but ignored. */
static int server_read_first_bare(struct scram_server *s, struct cursor *c, struct slice *nonce)
{
    size_t start = c->pos;
    struct slice user;

    if (cur_peek(c) == 'm')
        return server_fail(s, SCRAM_EPROTO,
                           "The client requires an unsupported SCRAM "
                           "extension.");
    if (!cur_attr(c, 'n', &user) || !cur_accept(c, ','))
        return server_fail(s, SCRAM_EPROTO,
                           "The client-first-message has no username "
                           "attribute.");
    if (!cur_attr(c, 'r', nonce) || !nonce_printable(*nonce))
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

    if (!make_nonce(nonce))
        return server_fail(s, SCRAM_EINTERNAL, "Could not generate a random nonce.");
    sbuf_init(&b, s->server_first, sizeof(s->server_first));
    sbuf_puts(&b, "r=");
    sbuf_put(&b, client_nonce.data, client_nonce.len);
    sbuf_puts(&b, nonce);
    sbuf_puts(&b, ",s=");
    sbuf_put_b64(&b, s->verifier.salt, s->verifier.salt_len);
    sbuf_puts(&b, ",i=");
    sbuf_put_int(&b, s->verifier.iterations);
    if (!sbuf_finish(&b, &s->server_first_len))
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
    if (has_nul(msg, len))
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
    cur_init(&c, msg, len);
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

    if (!cur_attr(c, 'c', &val))
        return server_fail(s, SCRAM_EPROTO,
                           "The client-final-message does not start with "
                           "the channel-binding attribute.");
    if (!b64_check(val.data, val.len, &got_len))
        return server_fail(s, SCRAM_EPROTO,
                           "The channel-binding attribute is not valid "
                           "base64.");
    want_len = cbind_input(want, s->gs2_header, s->gs2_len, s->cb_data, s->cb_used ? s->cb_len : 0);
    if (got_len == want_len && b64_decode(val, got, sizeof(got), &got_len) &&
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

static int server_check_nonce(struct scram_server *s, struct cursor *c)
{
    struct slice val;

    if (!cur_accept(c, ',') || !cur_attr(c, 'r', &val))
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
        if (!cur_accept(c, ','))
            return server_fail(s, SCRAM_EPROTO, "The client-final-message has no proof.");
        if (!cur_any_attr(c, &attr, &val))
            return server_fail(s, SCRAM_EPROTO, "Malformed attribute in client-final-message.");
    }
    if (!cur_end(c))
        return server_fail(s, SCRAM_EPROTO,
                           "The proof is not the last attribute of the "
                           "client-final-message.");
    if (!decode_key(val, proof))
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

    if (!hmac_auth_message(s->verifier.stored_key, bare, first, final_no_proof, sig) ||
        !hmac_auth_message(s->verifier.server_key, bare, first, final_no_proof, server_sig))
        return server_fail(s, SCRAM_EINTERNAL, "HMAC computation failed.");
    xor_keys(key, proof, sig);
    if (!sha256(key, SCRAM_KEY_LEN, hash))
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

    sbuf_init(&b, out, cap);
    sbuf_puts(&b, "v=");
    sbuf_put_b64(&b, sig, SCRAM_KEY_LEN);
    if (!sbuf_finish(&b, outlen))
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
    cur_init(&c, msg, len);
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
    if (!password_usable(password, &pwlen))
        return server_fail(s, SCRAM_EAUTH,
                           "The password has characters outside ASCII, which pgnear does not "
                           "normalize (SASLprep).");
    const struct scram_verifier *v = &s->verifier;
    bool ok = PKCS5_PBKDF2_HMAC(password, (int)pwlen, v->salt, (int)v->salt_len, v->iterations,
                                EVP_sha256(), SCRAM_KEY_LEN, salted) == 1 &&
              hmac_sha256_str(salted, SCRAM_KEY_LEN, "Client Key", client_key) &&
              sha256(client_key, SCRAM_KEY_LEN, stored);
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

/* ---------------------------------------------------------------------
 * Client side
 * ------------------------------------------------------------------- */

static int client_fail(struct scram_client *c, int rc, const char *detail)
{
    return record_failure(&c->state, c->errdetail, rc, detail);
}

int scram_client_init(struct scram_client *c, const uint8_t client_key[SCRAM_KEY_LEN],
                      const struct scram_verifier *v, const uint8_t *cb_data, size_t cb_len)
{
    uint8_t hash[SCRAM_KEY_LEN];

    if (c == NULL)
        return SCRAM_EINTERNAL;
    memset(c, 0, sizeof(*c));
    if (!verifier_valid(v) || client_key == NULL)
        return client_fail(c, SCRAM_EFORMAT, "The SCRAM verifier is invalid.");
    if (!cb_args_valid(cb_data, cb_len))
        return client_fail(c, SCRAM_EINTERNAL, "The channel binding data is invalid.");
    if (!sha256(client_key, SCRAM_KEY_LEN, hash))
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
    if (has_nul(msg, len))
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
    if (!make_nonce(c->nonce))
        return client_fail(c, SCRAM_EINTERNAL, "Could not generate a random nonce.");
    sbuf_init(&b, out, cap);
    sbuf_puts(&b, client_gs2_header(c));
    sbuf_puts(&b, "n=,r=");
    sbuf_puts(&b, c->nonce);
    if (!sbuf_finish(&b, outlen))
        return client_fail(c, SCRAM_ENOSPACE,
                           "The output buffer is too small for the SCRAM "
                           "message.");
    c->state = SCRAM_STATE_FIRST;
    return SCRAM_OK;
}

/* Splits server-first-message into nonce, salt and iteration fields. */
static int client_parse_server_first(struct scram_client *c, const uint8_t *msg, size_t len,
                                     struct slice *nonce, struct slice *salt, struct slice *iter)
{
    struct cursor cur;

    cur_init(&cur, msg, len);
    if (cur_peek(&cur) == 'm')
        return client_fail(c, SCRAM_EPROTO,
                           "The server requires an unsupported SCRAM "
                           "extension.");
    if (!cur_attr(&cur, 'r', nonce) || !cur_accept(&cur, ',') || !cur_attr(&cur, 's', salt) ||
        !cur_accept(&cur, ',') || !cur_attr(&cur, 'i', iter) || !cur_end(&cur))
        return client_fail(c, SCRAM_EPROTO, "Malformed SCRAM server-first-message.");
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

    if (nonce.len <= SCRAM_NONCE_B64_LEN || !nonce_printable(nonce) ||
        memcmp(nonce.data, c->nonce, SCRAM_NONCE_B64_LEN) != 0)
        return client_fail(c, SCRAM_EPROTO,
                           "The server's nonce does not extend the client "
                           "nonce.");
    if (!b64_check(salt.data, salt.len, &salt_len) || !parse_positive_int(iter, &iterations))
        return client_fail(c, SCRAM_EPROTO,
                           "Malformed salt or iteration count in SCRAM "
                           "server-first-message.");
    if (salt_len != c->verifier.salt_len ||
        !b64_decode(salt, got_salt, sizeof(got_salt), &salt_len) ||
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
    size_t n = cbind_input(cbind, gs2, strlen(gs2), c->cb_data, c->cb_len);

    sbuf_puts(b, "c=");
    sbuf_put_b64(b, cbind, n);
    sbuf_puts(b, ",r=");
    sbuf_put(b, nonce.data, nonce.len);
}

/* Appends ",p=" proof and remembers the server signature to expect. */
static int client_put_proof(struct scram_client *c, struct sbuf *b, struct slice server_first)
{
    char bare[SCRAM_NONCE_B64_LEN + 8];
    struct slice first_bare, final_no_proof = {b->data, b->len};
    uint8_t sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
    int n = snprintf(bare, sizeof(bare), "n=,r=%s", c->nonce);

    first_bare = (struct slice){bare, (size_t)n};
    if (!hmac_auth_message(c->verifier.stored_key, first_bare, server_first, final_no_proof, sig) ||
        !hmac_auth_message(c->verifier.server_key, first_bare, server_first, final_no_proof,
                           c->server_signature))
        return client_fail(c, SCRAM_EINTERNAL, "HMAC computation failed.");
    xor_keys(proof, c->client_key, sig);
    sbuf_puts(b, ",p=");
    sbuf_put_b64(b, proof, SCRAM_KEY_LEN);
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
    sbuf_init(&b, out, cap);
    client_put_final_no_proof(c, &b, nonce);
    if (b.overflow)
        return client_fail(c, SCRAM_ENOSPACE,
                           "The output buffer is too small for the SCRAM "
                           "message.");
    rc = client_put_proof(c, &b, (struct slice){server_first, len});
    if (rc == SCRAM_OK && !sbuf_finish(&b, outlen))
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
    cur_init(&cur, server_final, len);
    if (cur_attr(&cur, 'e', &val))
        return client_server_error(c, val);
    if (!cur_attr(&cur, 'v', &val) || !cur_end(&cur) || !decode_key(val, sig))
        return client_fail(c, SCRAM_EPROTO, "Malformed SCRAM server-final-message.");
    if (CRYPTO_memcmp(sig, c->server_signature, SCRAM_KEY_LEN) != 0)
        return client_fail(c, SCRAM_EAUTH,
                           "The server's SCRAM signature is wrong: it does "
                           "not hold the expected secret.");
    c->state = SCRAM_STATE_DONE;
    return SCRAM_OK;
}

const char *scram_client_errdetail(const struct scram_client *c)
{
    return (c != NULL) ? c->errdetail : "";
}

void scram_client_cleanup(struct scram_client *c)
{
    if (c != NULL)
        OPENSSL_cleanse(c, sizeof(*c));
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
