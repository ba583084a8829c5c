/*
 * test_scram.c
 *    Unit tests for SCRAM, protocol/scram.h (cmocka, TAP output).
 *
 * Reference values are computed here directly with OpenSSL, independently
 * of protocol/scram_*.c, and checked against RFC 7677's example and a
 * verifier that PostgreSQL 15 produced.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "protocol/scram.h"

/*
 * From a throwaway PostgreSQL 15 cluster:
 *   SET password_encryption = 'scram-sha-256';
 *   CREATE ROLE x LOGIN PASSWORD 'secret';
 *   SELECT rolpassword FROM pg_authid WHERE rolname = 'x';
 */
#define PG_PASSWORD "secret"
#define PG_VERIFIER                                                                                \
    "SCRAM-SHA-256$4096:3b+hcekYKABZgFCCvwZP1A==$"                                                 \
    "VQRPauWE5L89eLzZXkKq/qPoTHJDihIEitcCcpOFjM0=:"                                                \
    "vlEi9f26iXMSg53XkxpPEnxxcmlbwMPHi2R9M2C/hjc="

/* RFC 7677 section 3. */
#define RFC_PASSWORD          "pencil"
#define RFC_SALT_B64          "W22ZaJ0SNY7soEsUEjb6gQ=="
#define RFC_CLIENT_FIRST_BARE "n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_FIRST                                                                           \
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"                                        \
    "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_FINAL_NO_PROOF "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_PROOF          "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_SIG     "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

#define TEST_PASSWORD   "correct horse"
#define TEST_ITERATIONS 4096
#define CLIENT_NONCE    "fyko+d2lbbFgONRv9qkxdawL"
#define MSG_CAP         1024
#define NONCE_CAP       128

static const uint8_t test_salt[16] = {0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
                                      0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};

/* ---------------------------------------------------------------------
 * Independent reference computations
 * ------------------------------------------------------------------- */

static void ref_hmac(const uint8_t key[SCRAM_KEY_LEN], const char *data, uint8_t out[SCRAM_KEY_LEN])
{
    size_t n = 0;

    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, SCRAM_KEY_LEN,
                              (const unsigned char *)data, strlen(data), out, SCRAM_KEY_LEN, &n));
    assert_int_equal(n, SCRAM_KEY_LEN);
}

static void ref_sha256(const uint8_t *data, size_t len, uint8_t out[SCRAM_KEY_LEN])
{
    unsigned int n = 0;

    assert_int_equal(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL), 1);
    assert_int_equal(n, SCRAM_KEY_LEN);
}

/* ClientKey = HMAC(PBKDF2(password), "Client Key"). */
static void ref_client_key(const char *password, const uint8_t *salt, size_t salt_len,
                           int iterations, uint8_t out[SCRAM_KEY_LEN])
{
    uint8_t salted[SCRAM_KEY_LEN];

    assert_int_equal(PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len,
                                       iterations, EVP_sha256(), SCRAM_KEY_LEN, salted),
                     1);
    ref_hmac(salted, "Client Key", out);
}

static void ref_b64(const uint8_t *in, size_t len, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static size_t ref_unb64(const char *in, uint8_t *out)
{
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)strlen(in));
    size_t len = strlen(in);

    assert_true(n >= 0);
    if (len >= 1 && in[len - 1] == '=')
        n--;
    if (len >= 2 && in[len - 2] == '=')
        n--;
    return (size_t)n;
}

/*
 * Builds a client-final-message the way a client would:
 * without_proof ",p=" base64(ClientKey XOR HMAC(StoredKey, AuthMessage)).
 */
static void craft_final(const uint8_t client_key[SCRAM_KEY_LEN], const char *first_bare,
                        const char *server_first, const char *without_proof, char *out)
{
    char auth[3 * MSG_CAP];
    uint8_t stored[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN], proof[SCRAM_KEY_LEN];
    char proof_b64[64];

    snprintf(auth, sizeof(auth), "%s,%s,%s", first_bare, server_first, without_proof);
    ref_sha256(client_key, SCRAM_KEY_LEN, stored);
    ref_hmac(stored, auth, sig);
    for (int i = 0; i < SCRAM_KEY_LEN; i++)
        proof[i] = client_key[i] ^ sig[i];
    ref_b64(proof, SCRAM_KEY_LEN, proof_b64);
    snprintf(out, MSG_CAP, "%s,p=%s", without_proof, proof_b64);
}

/* The combined nonce in a server-first-message ("r=...,s=..."). */
static void nonce_of(const char *server_first, char *out)
{
    const char *end = strstr(server_first, ",s=");

    assert_non_null(end);
    assert_memory_equal(server_first, "r=", 2);
    assert_true(end - server_first - 2 < NONCE_CAP);
    memcpy(out, server_first + 2, (size_t)(end - server_first - 2));
    out[end - server_first - 2] = '\0';
}

/* Expands "{n}", "{s}" and "{i}" in a test template (no printf formats). */
static void fill(const char *tmpl, const char *n, const char *s, const char *i, char *out,
                 size_t cap)
{
    size_t len = 0;

    for (const char *p = tmpl; *p != '\0'; p++) {
        const char *sub = NULL;

        if (p[0] == '{' && p[1] != '\0' && p[2] == '}')
            sub = (p[1] == 'n') ? n : (p[1] == 's') ? s : (p[1] == 'i') ? i : NULL;
        if (sub != NULL) {
            assert_true(len + strlen(sub) < cap);
            memcpy(out + len, sub, strlen(sub));
            len += strlen(sub);
            p += 2;
        } else {
            assert_true(len + 1 < cap);
            out[len++] = *p;
        }
    }
    out[len] = '\0';
}

/* ---------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------- */

struct keys {
    struct scram_verifier v;
    uint8_t client_key[SCRAM_KEY_LEN];
};

static void make_keys(const char *password, struct keys *k)
{
    assert_int_equal(
        scram_make_verifier(password, test_salt, sizeof(test_salt), TEST_ITERATIONS, &k->v),
        SCRAM_OK);
    ref_client_key(password, test_salt, sizeof(test_salt), TEST_ITERATIONS, k->client_key);
}

static int send_first(struct scram_server *s, const char *mech, const char *msg, char *out)
{
    size_t outlen = 0;
    int rc = scram_server_handle_first(s, mech, (const uint8_t *)msg, strlen(msg), out, MSG_CAP,
                                       &outlen);

    if (rc == SCRAM_OK)
        assert_int_equal(outlen, strlen(out));
    return rc;
}

static int send_final(struct scram_server *s, const char *msg, char *out)
{
    size_t outlen = 0;

    return scram_server_handle_final(s, (const uint8_t *)msg, strlen(msg), out, MSG_CAP, &outlen);
}

/*
 * A server that has answered "n,,n=,r=" CLIENT_NONCE; fills in its
 * server-first-message and the combined nonce.
 */
static void server_after_first(struct scram_server *s, const struct keys *k, char *server_first,
                               char *nonce)
{
    assert_int_equal(scram_server_init(s, &k->v, NULL, 0), SCRAM_OK);
    assert_int_equal(send_first(s, SCRAM_MECH, "n,,n=,r=" CLIENT_NONCE, server_first), SCRAM_OK);
    nonce_of(server_first, nonce);
}

/* Result of the step where a scram_client <-> scram_server run stopped. */
struct run {
    int server_first;
    int server_final;
    int client_final;
    uint8_t recovered[SCRAM_KEY_LEN];
    int channel_bound;
};

/* Runs the whole exchange between the two halves of the module. */
static struct run run_exchange(const struct scram_verifier *server_v, const uint8_t *server_cb,
                               size_t server_cb_len, const struct keys *client,
                               const uint8_t *client_cb, size_t client_cb_len)
{
    struct scram_server s;
    struct scram_client c;
    char m1[MSG_CAP], m2[MSG_CAP], m3[MSG_CAP], m4[MSG_CAP];
    size_t l1, l2, l3, l4;
    struct run r = {-100, -100, -100, {0}, -1};

    assert_int_equal(scram_server_init(&s, server_v, server_cb, server_cb_len), SCRAM_OK);
    assert_int_equal(
        scram_client_init(&c, client->client_key, &client->v, client_cb, client_cb_len), SCRAM_OK);
    assert_int_equal(scram_client_first(&c, m1, sizeof(m1), &l1), SCRAM_OK);
    r.server_first = scram_server_handle_first(&s, scram_client_mechanism(&c), (uint8_t *)m1, l1,
                                               m2, sizeof(m2), &l2);
    if (r.server_first != SCRAM_OK)
        return r;
    assert_int_equal(scram_client_handle_first(&c, (uint8_t *)m2, l2, m3, sizeof(m3), &l3),
                     SCRAM_OK);
    r.server_final = scram_server_handle_final(&s, (uint8_t *)m3, l3, m4, sizeof(m4), &l4);
    if (r.server_final != SCRAM_OK) {
        assert_null(scram_server_client_key(&s));
        assert_true(strlen(scram_server_errdetail(&s)) > 0);
        return r;
    }
    memcpy(r.recovered, scram_server_client_key(&s), SCRAM_KEY_LEN);
    r.channel_bound = scram_server_channel_bound(&s);
    r.client_final = scram_client_handle_final(&c, (uint8_t *)m4, l4);
    scram_server_cleanup(&s);
    scram_client_cleanup(&c);
    return r;
}

/* ---------------------------------------------------------------------
 * Verifiers
 * ------------------------------------------------------------------- */

static void test_verifier_postgres_round_trip(void **state)
{
    struct scram_verifier v;
    char text[SCRAM_VERIFIER_TEXT_MAX];

    (void)state;
    assert_int_equal(scram_parse_verifier(PG_VERIFIER, strlen(PG_VERIFIER), &v), SCRAM_OK);
    assert_int_equal(v.iterations, 4096);
    assert_int_equal(v.salt_len, 16);
    assert_int_equal(scram_format_verifier(&v, text, sizeof(text)), SCRAM_OK);
    assert_string_equal(text, PG_VERIFIER);
}

/* scram_make_verifier() must reproduce PostgreSQL's keys exactly. */
static void test_verifier_matches_postgres(void **state)
{
    struct scram_verifier pg, mine;
    char text[SCRAM_VERIFIER_TEXT_MAX];

    (void)state;
    assert_int_equal(scram_parse_verifier(PG_VERIFIER, strlen(PG_VERIFIER), &pg), SCRAM_OK);
    assert_int_equal(scram_make_verifier(PG_PASSWORD, pg.salt, pg.salt_len, pg.iterations, &mine),
                     SCRAM_OK);
    assert_memory_equal(mine.stored_key, pg.stored_key, SCRAM_KEY_LEN);
    assert_memory_equal(mine.server_key, pg.server_key, SCRAM_KEY_LEN);
    assert_int_equal(scram_format_verifier(&mine, text, sizeof(text)), SCRAM_OK);
    assert_string_equal(text, PG_VERIFIER);
}

/* The verifier keys must fit RFC 7677's example exchange. */
static void test_verifier_rfc7677_vector(void **state)
{
    struct scram_verifier v;
    uint8_t salt[32], proof[SCRAM_KEY_LEN], sig[SCRAM_KEY_LEN];
    uint8_t key[SCRAM_KEY_LEN], hash[SCRAM_KEY_LEN];
    char sig_b64[64];
    const char *auth = RFC_CLIENT_FIRST_BARE "," RFC_SERVER_FIRST "," RFC_FINAL_NO_PROOF;
    size_t salt_len = ref_unb64(RFC_SALT_B64, salt);

    (void)state;
    assert_int_equal(salt_len, 16);
    assert_int_equal(scram_make_verifier(RFC_PASSWORD, salt, salt_len, 4096, &v), SCRAM_OK);
    ref_hmac(v.server_key, auth, sig);
    ref_b64(sig, SCRAM_KEY_LEN, sig_b64);
    assert_string_equal(sig_b64, RFC_SERVER_SIG);

    assert_int_equal(ref_unb64(RFC_PROOF, proof), SCRAM_KEY_LEN);
    ref_hmac(v.stored_key, auth, sig);
    for (int i = 0; i < SCRAM_KEY_LEN; i++)
        key[i] = proof[i] ^ sig[i];
    ref_sha256(key, SCRAM_KEY_LEN, hash);
    assert_memory_equal(hash, v.stored_key, SCRAM_KEY_LEN);
}

static void test_verifier_length_bounded(void **state)
{
    struct scram_verifier v;
    char buf[sizeof(PG_VERIFIER) + 8];

    (void)state;
    /* not NUL-terminated: only len bytes may be read */
    memset(buf, 'x', sizeof(buf));
    memcpy(buf, PG_VERIFIER, strlen(PG_VERIFIER));
    assert_int_equal(scram_parse_verifier(buf, strlen(PG_VERIFIER), &v), SCRAM_OK);
    /* one byte short of the last key */
    assert_int_equal(scram_parse_verifier(buf, strlen(PG_VERIFIER) - 1, &v), SCRAM_EFORMAT);
    /* an embedded NUL counted by len */
    assert_int_equal(scram_parse_verifier(PG_VERIFIER "\0", strlen(PG_VERIFIER) + 1, &v),
                     SCRAM_EFORMAT);
    assert_int_equal(scram_parse_verifier(NULL, 0, &v), SCRAM_EFORMAT);
}

static void test_verifier_rejects_malformed(void **state)
{
#define SALT "3b+hcekYKABZgFCCvwZP1A=="
#define SKEY "VQRPauWE5L89eLzZXkKq/qPoTHJDihIEitcCcpOFjM0="
#define VKEY "vlEi9f26iXMSg53XkxpPEnxxcmlbwMPHi2R9M2C/hjc="
    static const char *const bad[] = {
        "",
        "SCRAM-SHA-256",
        "SCRAM-SHA-256$",
        "scram-sha-256$4096:" SALT "$" SKEY ":" VKEY,
        "SCRAM-SHA-1$4096:" SALT "$" SKEY ":" VKEY,
        "md5"
        "0123456789abcdef0123456789abcdef",
        /* missing parts */
        "SCRAM-SHA-256$4096:" SALT "$" SKEY,
        "SCRAM-SHA-256$4096:" SALT "$" SKEY ":",
        "SCRAM-SHA-256$4096:" SALT "$:" VKEY,
        "SCRAM-SHA-256$4096:$" SKEY ":" VKEY,
        "SCRAM-SHA-256$4096$" SKEY ":" VKEY,
        "SCRAM-SHA-256$" SALT "$" SKEY ":" VKEY,
        /* iterations */
        "SCRAM-SHA-256$0:" SALT "$" SKEY ":" VKEY,
        "SCRAM-SHA-256$-4096:" SALT "$" SKEY ":" VKEY,
        "SCRAM-SHA-256$+4096:" SALT "$" SKEY ":" VKEY,
        "SCRAM-SHA-256$ 4096:" SALT "$" SKEY ":" VKEY,
        "SCRAM-SHA-256$4096x:" SALT "$" SKEY ":" VKEY,
        "SCRAM-SHA-256$abc:" SALT "$" SKEY ":" VKEY,
        "SCRAM-SHA-256$:" SALT "$" SKEY ":" VKEY,
        "SCRAM-SHA-256$2147483648:" SALT "$" SKEY ":" VKEY,
        "SCRAM-SHA-256$99999999999:" SALT "$" SKEY ":" VKEY,
        /* bad base64 */
        "SCRAM-SHA-256$4096:3b+hcekYKABZgFCCvwZP1A=$" SKEY ":" VKEY,
        "SCRAM-SHA-256$4096:3b+hcekYKABZgFCCvwZP1A$" SKEY ":" VKEY,
        "SCRAM-SHA-256$4096:3b+hcekYKABZgFCCvwZP1!==$" SKEY ":" VKEY,
        "SCRAM-SHA-256$4096:3b+hcekYKABZ FCCvwZP1A==$" SKEY ":" VKEY,
        "SCRAM-SHA-256$4096:3b+hcekYKABZgFCCvwZP1B==$" SKEY ":" VKEY,
        "SCRAM-SHA-256$4096:" SALT "$"
        "VQRPauWE5L89eLzZXkKq/qPoTHJDihIEitcCcpOFjM1=:" VKEY,
        "SCRAM-SHA-256$4096:3b+hcekYKABZgFCC=wZP1A==$" SKEY ":" VKEY,
        "SCRAM-SHA-256$4096:====$" SKEY ":" VKEY,
        "SCRAM-SHA-256$4096:" SALT "$" SKEY ":vlEi9f26iXMSg53XkxpP-nxx"
        "cmlbwMPHi2R9M2C/hjc=",
        /* salt longer than SCRAM_MAX_SALT_LEN (66 bytes) */
        "SCRAM-SHA-256$4096:"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "$" SKEY ":" VKEY,
        /* wrong key lengths: 31 and 33 bytes */
        "SCRAM-SHA-256$4096:" SALT "$" SKEY ":"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        "SCRAM-SHA-256$4096:" SALT "$"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        ":" VKEY,
        /* trailing garbage */
        "SCRAM-SHA-256$4096:" SALT "$" SKEY ":" VKEY "x",
        "SCRAM-SHA-256$4096:" SALT "$" SKEY ":" VKEY "$",
        "SCRAM-SHA-256$4096:" SALT "$" SKEY ":" VKEY ":" VKEY,
        "SCRAM-SHA-256$4096:" SALT "$" SKEY ":" VKEY " ",
        "SCRAM-SHA-256$4096:" SALT "$" SKEY ":" VKEY "\n",
        " SCRAM-SHA-256$4096:" SALT "$" SKEY ":" VKEY,
    };
    struct scram_verifier v;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = scram_parse_verifier(bad[i], strlen(bad[i]), &v);

        if (rc != SCRAM_EFORMAT)
            fail_msg("accepted malformed verifier #%zu: %s", i, bad[i]);
    }
#undef SALT
#undef SKEY
#undef VKEY
}

static void test_make_verifier_rejects_bad_input(void **state)
{
    struct scram_verifier v;
    uint8_t big[SCRAM_MAX_SALT_LEN + 1] = {0};

    (void)state;
    assert_int_equal(scram_make_verifier("pw", test_salt, 16, 0, &v), SCRAM_EFORMAT);
    assert_int_equal(scram_make_verifier("pw", test_salt, 16, -1, &v), SCRAM_EFORMAT);
    assert_int_equal(scram_make_verifier("pw", test_salt, 0, 4096, &v), SCRAM_EFORMAT);
    assert_int_equal(scram_make_verifier("pw", big, sizeof(big), 4096, &v), SCRAM_EFORMAT);
    assert_int_equal(scram_make_verifier("p\xc3\xa4ss", test_salt, 16, 4096, &v), SCRAM_EFORMAT);
    assert_int_equal(scram_make_verifier(NULL, test_salt, 16, 4096, &v), SCRAM_EFORMAT);
    assert_int_equal(scram_make_verifier("pw", big, SCRAM_MAX_SALT_LEN, 1, &v), SCRAM_OK);
}

static void test_format_verifier_space(void **state)
{
    struct scram_verifier v;
    char text[SCRAM_VERIFIER_TEXT_MAX];
    size_t need = strlen(PG_VERIFIER) + 1;

    (void)state;
    assert_int_equal(scram_parse_verifier(PG_VERIFIER, strlen(PG_VERIFIER), &v), SCRAM_OK);
    assert_int_equal(scram_format_verifier(&v, text, need), SCRAM_OK);
    assert_string_equal(text, PG_VERIFIER);
    assert_int_equal(scram_format_verifier(&v, text, need - 1), SCRAM_ENOSPACE);
    assert_int_equal(scram_format_verifier(&v, text, 0), SCRAM_ENOSPACE);
    v.iterations = 0;
    assert_int_equal(scram_format_verifier(&v, text, sizeof(text)), SCRAM_EFORMAT);
    /* the worst case fits SCRAM_VERIFIER_TEXT_MAX */
    v.iterations = 2147483647;
    v.salt_len = SCRAM_MAX_SALT_LEN;
    assert_int_equal(scram_format_verifier(&v, text, sizeof(text)), SCRAM_OK);
}

/*
 * scram_derive_keys() gives scram_make_verifier()'s verifier and the
 * ClientKey a password proves, which scram_client_init() accepts for it.
 */
static void test_derive_keys(void **state)
{
    struct scram_verifier made, derived, pg;
    struct scram_client c;
    uint8_t key[SCRAM_KEY_LEN], ref[SCRAM_KEY_LEN];

    (void)state;
    assert_int_equal(
        scram_make_verifier(TEST_PASSWORD, test_salt, sizeof(test_salt), TEST_ITERATIONS, &made),
        SCRAM_OK);
    assert_int_equal(scram_derive_keys(TEST_PASSWORD, test_salt, sizeof(test_salt), TEST_ITERATIONS,
                                       key, &derived),
                     SCRAM_OK);
    assert_memory_equal(&made, &derived, sizeof(made));
    ref_client_key(TEST_PASSWORD, test_salt, sizeof(test_salt), TEST_ITERATIONS, ref);
    assert_memory_equal(key, ref, SCRAM_KEY_LEN);
    assert_int_equal(scram_client_init(&c, key, &derived, NULL, 0), SCRAM_OK);
    scram_client_cleanup(&c);
    /* PostgreSQL's own verifier of PG_PASSWORD */
    assert_int_equal(scram_parse_verifier(PG_VERIFIER, strlen(PG_VERIFIER), &pg), SCRAM_OK);
    assert_int_equal(
        scram_derive_keys(PG_PASSWORD, pg.salt, pg.salt_len, pg.iterations, key, &derived),
        SCRAM_OK);
    assert_memory_equal(derived.stored_key, pg.stored_key, SCRAM_KEY_LEN);
    assert_memory_equal(derived.server_key, pg.server_key, SCRAM_KEY_LEN);
    assert_int_equal(scram_derive_keys("pw", test_salt, 16, 0, key, &derived), SCRAM_EFORMAT);
    assert_int_equal(scram_derive_keys("pw", test_salt, 16, 1, NULL, &derived), SCRAM_EFORMAT);
    assert_int_equal(scram_derive_keys("p\xc3\xa4ss", test_salt, 16, 1, key, &derived),
                     SCRAM_EFORMAT);
}

/* The salt and iterations of a server-first-message, read without an exchange. */
static void test_client_read_secret(void **state)
{
    static const char *bad[] = {
        "",
        "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==",
        "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0",
        "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1",
        "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=1",
        "r=abc,s=not base64,i=4096",
        "r=abc,s=,i=4096",
        "s=W22ZaJ0SNY7soEsUEjb6gQ==,r=abc,i=4096",
        "m=ext,r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    };
    uint8_t salt[SCRAM_MAX_SALT_LEN], want[32];
    size_t salt_len = 0;
    int iterations = 0;
    char nul[] = "r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

    (void)state;
    assert_int_equal(scram_client_read_secret((const uint8_t *)RFC_SERVER_FIRST,
                                              strlen(RFC_SERVER_FIRST), salt, &salt_len,
                                              &iterations),
                     SCRAM_OK);
    assert_int_equal(ref_unb64(RFC_SALT_B64, want), 16);
    assert_int_equal(salt_len, 16);
    assert_memory_equal(salt, want, 16);
    assert_int_equal(iterations, 4096);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(scram_client_read_secret((const uint8_t *)bad[i], strlen(bad[i]), salt,
                                                  &salt_len, &iterations),
                         SCRAM_EPROTO);
    /* the length is the message's, not a NUL: one byte short cuts the count, a NUL is refused */
    assert_int_equal(scram_client_read_secret((const uint8_t *)nul, strlen(nul) - 1, salt,
                                              &salt_len, &iterations),
                     SCRAM_OK);
    assert_int_equal(iterations, 409);
    nul[3] = '\0';
    assert_int_equal(scram_client_read_secret((const uint8_t *)nul, sizeof(nul) - 1, salt,
                                              &salt_len, &iterations),
                     SCRAM_EPROTO);
}

/* ---------------------------------------------------------------------
 * Full exchanges
 * ------------------------------------------------------------------- */

static void test_exchange_recovers_client_key(void **state)
{
    struct keys k;
    struct run r;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    r = run_exchange(&k.v, NULL, 0, &k, NULL, 0);
    assert_int_equal(r.server_first, SCRAM_OK);
    assert_int_equal(r.server_final, SCRAM_OK);
    assert_false(r.channel_bound);
    assert_int_equal(r.client_final, SCRAM_OK);
    assert_memory_equal(r.recovered, k.client_key, SCRAM_KEY_LEN);
}

/* Server checks a client against PostgreSQL's own verifier. */
static void test_exchange_postgres_verifier(void **state)
{
    struct keys k;
    struct run r;

    (void)state;
    assert_int_equal(scram_parse_verifier(PG_VERIFIER, strlen(PG_VERIFIER), &k.v), SCRAM_OK);
    ref_client_key(PG_PASSWORD, k.v.salt, k.v.salt_len, k.v.iterations, k.client_key);
    r = run_exchange(&k.v, NULL, 0, &k, NULL, 0);
    assert_int_equal(r.server_final, SCRAM_OK);
    assert_int_equal(r.client_final, SCRAM_OK);
    assert_memory_equal(r.recovered, k.client_key, SCRAM_KEY_LEN);
}

static void test_exchange_messages_look_right(void **state)
{
    struct keys k;
    struct scram_client c;
    char m1[MSG_CAP];
    size_t l1;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    assert_int_equal(scram_client_init(&c, k.client_key, &k.v, NULL, 0), SCRAM_OK);
    assert_string_equal(scram_client_mechanism(&c), "SCRAM-SHA-256");
    assert_int_equal(scram_client_first(&c, m1, sizeof(m1), &l1), SCRAM_OK);
    assert_int_equal(l1, strlen("n,,n=,r=") + SCRAM_NONCE_B64_LEN);
    assert_memory_equal(m1, "n,,n=,r=", 8);
    assert_int_equal(scram_client_init(&c, k.client_key, &k.v, (const uint8_t *)"x", 1), SCRAM_OK);
    assert_string_equal(scram_client_mechanism(&c), "SCRAM-SHA-256-PLUS");
    assert_int_equal(scram_client_first(&c, m1, sizeof(m1), &l1), SCRAM_OK);
    assert_memory_equal(m1, "p=tls-server-end-point,,n=,r=", 29);
}

static void test_exchange_channel_binding(void **state)
{
    struct keys k;
    uint8_t cb[32];
    struct run r;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    for (size_t i = 0; i < sizeof(cb); i++)
        cb[i] = (uint8_t)(0xa0 + i);
    r = run_exchange(&k.v, cb, sizeof(cb), &k, cb, sizeof(cb));
    assert_int_equal(r.server_final, SCRAM_OK);
    assert_true(r.channel_bound);
    assert_int_equal(r.client_final, SCRAM_OK);
    assert_memory_equal(r.recovered, k.client_key, SCRAM_KEY_LEN);
}

static void test_channel_binding_mismatch(void **state)
{
    struct keys k;
    uint8_t cb_server[32], cb_client[32];
    struct run r;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    memset(cb_server, 0x11, sizeof(cb_server));
    memcpy(cb_client, cb_server, sizeof(cb_client));
    cb_client[31] ^= 1;
    r = run_exchange(&k.v, cb_server, sizeof(cb_server), &k, cb_client, sizeof(cb_client));
    assert_int_equal(r.server_final, SCRAM_ECBIND);
    /* a shorter hash (say SHA-256 vs SHA-384) is a mismatch too */
    r = run_exchange(&k.v, cb_server, sizeof(cb_server), &k, cb_server, 31);
    assert_int_equal(r.server_final, SCRAM_ECBIND);
}

static void test_wrong_password(void **state)
{
    struct keys right, wrong;
    struct run r;

    (void)state;
    make_keys(TEST_PASSWORD, &right);
    make_keys("incorrect horse", &wrong);
    r = run_exchange(&right.v, NULL, 0, &wrong, NULL, 0);
    assert_int_equal(r.server_first, SCRAM_OK);
    assert_int_equal(r.server_final, SCRAM_EAUTH);
}

/* ---------------------------------------------------------------------
 * Server: gs2 header and mechanism
 * ------------------------------------------------------------------- */

static void test_gs2_y_against_cb_server(void **state)
{
    struct keys k;
    struct scram_server s;
    uint8_t cb[32] = {1};
    char out[MSG_CAP];

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    assert_int_equal(scram_server_init(&s, &k.v, cb, sizeof(cb)), SCRAM_OK);
    assert_int_equal(send_first(&s, SCRAM_MECH, "y,,n=,r=" CLIENT_NONCE, out), SCRAM_ECBIND);
    assert_non_null(strstr(scram_server_errdetail(&s), "channel binding"));
}

static void test_gs2_y_against_plain_server(void **state)
{
    struct keys k;
    struct scram_server s;
    char server_first[MSG_CAP], nonce[NONCE_CAP], wo[MSG_CAP], final[MSG_CAP];
    char out[MSG_CAP];

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(send_first(&s, SCRAM_MECH, "y,,n=,r=" CLIENT_NONCE, server_first), SCRAM_OK);
    nonce_of(server_first, nonce);
    /* c= is base64("y,,") */
    snprintf(wo, sizeof(wo), "c=eSws,r=%s", nonce);
    craft_final(k.client_key, "n=,r=" CLIENT_NONCE, server_first, wo, final);
    assert_int_equal(send_final(&s, final, out), SCRAM_OK);
    assert_memory_equal(scram_server_client_key(&s), k.client_key, SCRAM_KEY_LEN);
    assert_string_equal(scram_server_errdetail(&s), "");
}

static void test_gs2_and_mechanism_rules(void **state)
{
    static const struct {
        const char *mech;
        const char *msg;
        int cb; /* server offered PLUS */
        int rc;
    } cases[] = {
        {SCRAM_MECH_PLUS, "n,,n=,r=abc", 1, SCRAM_ECBIND},
        {SCRAM_MECH_PLUS, "y,,n=,r=abc", 1, SCRAM_ECBIND},
        {SCRAM_MECH, "p=tls-server-end-point,,n=,r=abc", 1, SCRAM_EPROTO},
        {SCRAM_MECH, "p=tls-server-end-point,,n=,r=abc", 0, SCRAM_EPROTO},
        {SCRAM_MECH_PLUS, "p=tls-unique,,n=,r=abc", 1, SCRAM_ECBIND},
        {SCRAM_MECH_PLUS, "p=,,n=,r=abc", 1, SCRAM_ECBIND},
        {SCRAM_MECH_PLUS, "p=tls-server-end-point,,n=,r=abc", 0, SCRAM_ECBIND},
        {SCRAM_MECH_PLUS, "p=tls-server-end-point,,n=,r=abc", 1, SCRAM_OK},
        {"SCRAM-SHA-1", "n,,n=,r=abc", 0, SCRAM_EPROTO},
        {"", "n,,n=,r=abc", 0, SCRAM_EPROTO},
        {SCRAM_MECH, "n,,n=,r=abc", 1, SCRAM_OK},
        {SCRAM_MECH, "n,,n=,r=abc", 0, SCRAM_OK},
    };
    struct keys k;
    uint8_t cb[32] = {7};
    char out[MSG_CAP];

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct scram_server s;
        int rc;

        assert_int_equal(scram_server_init(&s, &k.v, cb, cases[i].cb ? sizeof(cb) : 0), SCRAM_OK);
        rc = send_first(&s, cases[i].mech, cases[i].msg, out);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s / %s): got %d, want %d", i, cases[i].mech, cases[i].msg, rc,
                     cases[i].rc);
    }
}

static void test_client_first_malformed(void **state)
{
    static const char *const bad[] = {
        "",
        "n",
        "n,",
        "n,,",
        "x,,n=,r=abc",
        "n,n=,r=abc",
        "n,a=bob,n=,r=abc",
        "n,a=,n=,r=abc",
        "y,a=bob,n=,r=abc",
        "n,,m=ext,n=,r=abc",
        "n,,r=abc",
        "n,,n=",
        "n,,n=,",
        "n,,n=,r=",
        "n,,n=,r=ab c",
        "n,,n=,r=ab\x01"
        "c",
        "n,,n=,r=ab\x7f"
        "c",
        "n,,n=,r=ab\xc3\xa4",
        "n,,n=,r=abc,",
        "n,,n=,r=abc,x",
        "n,,n=,r=abc,1=2",
        "n,,n=,x=abc",
        "n,,n=user",
        "N,,n=,r=abc",
    };
    struct keys k;
    char out[MSG_CAP];

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct scram_server s;
        int rc;

        assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
        rc = send_first(&s, SCRAM_MECH, bad[i], out);
        if (rc != SCRAM_EPROTO)
            fail_msg("client-first #%zu \"%s\": got %d", i, bad[i], rc);
        assert_true(strlen(scram_server_errdetail(&s)) > 0);
    }
}

/* Rejections PostgreSQL names specifically get their own errdetail. */
static void test_client_first_errdetail(void **state)
{
    static const struct {
        const char *msg;
        size_t nul; /* 1: the terminating NUL is part of the message */
        const char *detail;
    } cases[] = {
        {"n,a=bob,n=,r=abc", 0, "authorization identity"},
        {"n,,m=ext,n=,r=abc", 0, "extension"},
        {"n,,r=abc", 0, "username"},
        {"n,,n=,r=ab\x01"
         "c",
         0, "nonce"},
        {"n,,n=,r=abc", 1, "NUL"},
    };
    struct keys k;
    char out[MSG_CAP];
    size_t outlen;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct scram_server s;
        size_t len = strlen(cases[i].msg) + cases[i].nul;

        assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
        assert_int_equal(scram_server_handle_first(&s, SCRAM_MECH, (const uint8_t *)cases[i].msg,
                                                   len, out, sizeof(out), &outlen),
                         SCRAM_EPROTO);
        if (strstr(scram_server_errdetail(&s), cases[i].detail) == NULL)
            fail_msg("#%zu: errdetail \"%s\" lacks \"%s\"", i, scram_server_errdetail(&s),
                     cases[i].detail);
    }
}

static void test_client_first_nul_and_length(void **state)
{
    static const char msg[] = "n,,n=,r=abc\0def";
    struct keys k;
    struct scram_server s;
    char big[SCRAM_MAX_CLIENT_FIRST_LEN + 64];
    char out[MSG_CAP];
    size_t outlen;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(scram_server_handle_first(&s, SCRAM_MECH, (const uint8_t *)msg,
                                               sizeof(msg) - 1, out, sizeof(out), &outlen),
                     SCRAM_EPROTO);

    /* only len bytes count: the tail after it is never read */
    assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(scram_server_handle_first(&s, SCRAM_MECH, (const uint8_t *)msg, 11, out,
                                               sizeof(out), &outlen),
                     SCRAM_OK);
    assert_memory_equal(out, "r=abc", 5);

    /* client-first-message-bare longer than we keep */
    memset(big, 'u', sizeof(big));
    memcpy(big, "n,,n=", 5);
    memcpy(big + sizeof(big) - 7, ",r=abc", 7);
    assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(send_first(&s, SCRAM_MECH, big, out), SCRAM_EPROTO);
}

/* Unknown extensions after the nonce are ignored, like PostgreSQL does. */
static void test_client_first_extensions_ignored(void **state)
{
    struct keys k;
    struct scram_server s;
    char server_first[MSG_CAP], nonce[NONCE_CAP], wo[MSG_CAP], final[MSG_CAP];
    char out[MSG_CAP];

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(
        send_first(&s, SCRAM_MECH, "n,,n=someone=2Celse,r=" CLIENT_NONCE ",x=1,Y=", server_first),
        SCRAM_OK);
    nonce_of(server_first, nonce);
    assert_int_equal(strlen(nonce), strlen(CLIENT_NONCE) + SCRAM_NONCE_B64_LEN);
    assert_memory_equal(nonce, CLIENT_NONCE, strlen(CLIENT_NONCE));
    /* an extension in client-final too: covered by the proof */
    snprintf(wo, sizeof(wo), "c=biws,r=%s,x=2", nonce);
    craft_final(k.client_key, "n=someone=2Celse,r=" CLIENT_NONCE ",x=1,Y=", server_first, wo,
                final);
    assert_int_equal(send_final(&s, final, out), SCRAM_OK);
    assert_memory_equal(out, "v=", 2);
}

/* ---------------------------------------------------------------------
 * Server: client-final-message
 * ------------------------------------------------------------------- */

/* Sends a client-final-message built from a template and the nonce. */
static int final_case(const struct keys *k, const char *tmpl, int sign, char *detail)
{
    struct scram_server s;
    char server_first[MSG_CAP], nonce[NONCE_CAP], msg[MSG_CAP], out[MSG_CAP];
    char wo[MSG_CAP];
    int rc;

    server_after_first(&s, k, server_first, nonce);
    fill(tmpl, nonce, "", "", wo, sizeof(wo));
    if (sign)
        craft_final(k->client_key, "n=,r=" CLIENT_NONCE, server_first, wo, msg);
    else
        snprintf(msg, sizeof(msg), "%s", wo);
    rc = send_final(&s, msg, out);
    snprintf(detail, SCRAM_ERRDETAIL_LEN, "%s", scram_server_errdetail(&s));
    if (rc != SCRAM_OK)
        assert_null(scram_server_client_key(&s));
    return rc;
}

static void test_client_final_rules(void **state)
{
    static const struct {
        const char *tmpl; /* {n} is replaced by the combined nonce */
        int sign;         /* append a correct proof */
        int rc;
    } cases[] = {
        {"c=biws,r={n}", 1, SCRAM_OK},
        /* tampered nonce */
        {"c=biws,r={n}x", 1, SCRAM_EPROTO},
        {"c=biws,r=x{n}", 1, SCRAM_EPROTO},
        {"c=biws,r=" CLIENT_NONCE, 1, SCRAM_EPROTO},
        {"c=biws,r=", 1, SCRAM_EPROTO},
        {"c=biws,{n}", 1, SCRAM_EPROTO},
        /* missing proof, proof not last, bad proof */
        {"c=biws,r={n}", 0, SCRAM_EPROTO},
        {"c=biws,r={n},x=1", 0, SCRAM_EPROTO},
        {"c=biws,r={n},p=", 0, SCRAM_EPROTO},
        {"c=biws,r={n},p=AAAA", 0, SCRAM_EPROTO},
        {"c=biws,r={n},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", 0, SCRAM_EPROTO},
        {"c=biws,r={n},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,x=1", 0, SCRAM_EPROTO},
        {"c=biws,r={n},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,", 0, SCRAM_EPROTO},
        {"c=biws,r={n},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!=", 0, SCRAM_EPROTO},
        {"c=biws,r={n},1=x,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0, SCRAM_EPROTO},
        /* a well-formed but wrong proof */
        {"c=biws,r={n},p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", 0, SCRAM_EAUTH},
        /* channel-binding attribute */
        {"r={n}", 1, SCRAM_EPROTO},
        {"c=,r={n}", 1, SCRAM_EPROTO},
        {"c=biw,r={n}", 1, SCRAM_EPROTO},
        {"c=biws=,r={n}", 1, SCRAM_EPROTO},
        {"c=eSws,r={n}", 1, SCRAM_EPROTO}, /* "y,," after "n,," */
        {"c=cD10bHMtc2VydmVyLWVuZC1wb2ludCws,r={n}", 1, SCRAM_EPROTO},
        {"x=biws,r={n}", 1, SCRAM_EPROTO},
    };
    struct keys k;
    char detail[SCRAM_ERRDETAIL_LEN];

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = final_case(&k, cases[i].tmpl, cases[i].sign, detail);

        if (rc != cases[i].rc)
            fail_msg("client-final #%zu \"%s\": got %d (%s), want %d", i, cases[i].tmpl, rc, detail,
                     cases[i].rc);
        if (rc != SCRAM_OK)
            assert_true(strlen(detail) > 0);
    }
}

static void test_client_final_nul(void **state)
{
    struct keys k;
    struct scram_server s;
    char server_first[MSG_CAP], nonce[NONCE_CAP], msg[MSG_CAP], out[MSG_CAP];
    char wo[MSG_CAP];
    size_t outlen, len;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    server_after_first(&s, &k, server_first, nonce);
    snprintf(wo, sizeof(wo), "c=biws,r=%s", nonce);
    craft_final(k.client_key, "n=,r=" CLIENT_NONCE, server_first, wo, msg);
    len = strlen(msg);
    msg[len] = '\0';
    assert_int_equal(
        scram_server_handle_final(&s, (uint8_t *)msg, len + 1, out, sizeof(out), &outlen),
        SCRAM_EPROTO);
}

/* ---------------------------------------------------------------------
 * Client side
 * ------------------------------------------------------------------- */

/* A client that has produced its client-first; returns its nonce. */
static void client_after_first(struct scram_client *c, const struct keys *k, char *nonce)
{
    char m1[MSG_CAP];
    size_t l1;

    assert_int_equal(scram_client_init(c, k->client_key, &k->v, NULL, 0), SCRAM_OK);
    assert_int_equal(scram_client_first(c, m1, sizeof(m1), &l1), SCRAM_OK);
    assert_int_equal(l1, 8 + SCRAM_NONCE_B64_LEN);
    memcpy(nonce, m1 + 8, SCRAM_NONCE_B64_LEN + 1);
}

static int client_sees(const struct keys *k, const char *tmpl, const char *salt_b64, int iterations,
                       char *detail)
{
    struct scram_client c;
    char nonce[NONCE_CAP], msg[MSG_CAP], out[MSG_CAP], iter[16];
    size_t outlen;
    int rc;

    client_after_first(&c, k, nonce);
    snprintf(iter, sizeof(iter), "%d", iterations);
    fill(tmpl, nonce, salt_b64, iter, msg, sizeof(msg));
    rc = scram_client_handle_first(&c, (uint8_t *)msg, strlen(msg), out, sizeof(out), &outlen);
    snprintf(detail, SCRAM_ERRDETAIL_LEN, "%s", scram_client_errdetail(&c));
    return rc;
}

static void test_client_server_first_rules(void **state)
{
    static const struct {
        const char *tmpl; /* {n} nonce, {s} salt, {i} iterations */
        int salt_ok;      /* use the right salt */
        int iter;         /* 0: the right iteration count */
        int rc;
    } cases[] = {
        {"r={n}SERVER,s={s},i={i}", 1, 0, SCRAM_OK},
        /* the secret differs */
        {"r={n}SERVER,s={s},i={i}", 0, 0, SCRAM_EAUTH},
        {"r={n}SERVER,s={s},i={i}", 1, 4095, SCRAM_EAUTH},
        {"r={n}SERVER,s={s},i={i}", 1, 100000, SCRAM_EAUTH},
        /* malformed */
        {"r={n},s={s},i={i}", 1, 0, SCRAM_EPROTO},
        {"r=X{n},s={s},i={i}", 1, 0, SCRAM_EPROTO},
        {"r={n}SER VER,s={s},i={i}", 1, 0, SCRAM_EPROTO},
        {"r={n}SERVER,s={s},i={i},x=1", 1, 0, SCRAM_EPROTO},
        {"r={n}SERVER,s={s},i=-{i}", 1, 0, SCRAM_EPROTO},
        {"r={n}SERVER,s={s},i={i}x", 1, 0, SCRAM_EPROTO},
        {"r={n}SERVER,s={s}!,i={i}", 1, 0, SCRAM_EPROTO},
        {"r={n}SERVER,i={s},s={i}", 1, 0, SCRAM_EPROTO},
        {"m=x,r={n}SERVER,s={s},i={i}", 1, 0, SCRAM_EPROTO},
        {"e={n}{s}{i}", 1, 0, SCRAM_EPROTO},
    };
    struct keys k;
    char right[64], wrong[64], detail[SCRAM_ERRDETAIL_LEN];
    uint8_t other_salt[sizeof(test_salt)];

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    ref_b64(test_salt, sizeof(test_salt), right);
    memcpy(other_salt, test_salt, sizeof(other_salt));
    other_salt[0] ^= 0xff;
    ref_b64(other_salt, sizeof(other_salt), wrong);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = client_sees(&k, cases[i].tmpl, cases[i].salt_ok ? right : wrong,
                             cases[i].iter ? cases[i].iter : TEST_ITERATIONS, detail);

        if (rc != cases[i].rc)
            fail_msg("server-first #%zu \"%s\": got %d (%s), want %d", i, cases[i].tmpl, rc, detail,
                     cases[i].rc);
        if (rc == SCRAM_EAUTH)
            assert_non_null(strstr(detail, "secret differs"));
    }
    /* a shorter salt is also a different secret */
    assert_int_equal(client_sees(&k, "r={n}SERVER,s={s},i={i}", "AAAA", TEST_ITERATIONS, detail),
                     SCRAM_EAUTH);
}

/* Drives a client up to the point where it waits for server-final. */
static void client_before_final(struct scram_client *c, const struct keys *k, char *server_first,
                                char *client_final)
{
    char nonce[NONCE_CAP], salt[64];
    size_t outlen;

    client_after_first(c, k, nonce);
    ref_b64(test_salt, sizeof(test_salt), salt);
    snprintf(server_first, MSG_CAP, "r=%sSERVER,s=%s,i=%d", nonce, salt, TEST_ITERATIONS);
    assert_int_equal(scram_client_handle_first(c, (uint8_t *)server_first, strlen(server_first),
                                               client_final, MSG_CAP, &outlen),
                     SCRAM_OK);
}

/* The client's proof, checked independently; then a correct "v=". */
static void test_client_proof_and_signature(void **state)
{
    struct keys k;
    struct scram_client c;
    char server_first[MSG_CAP], client_final[MSG_CAP], expect[MSG_CAP];
    char wo[MSG_CAP], auth[3 * MSG_CAP], v[128], nonce[NONCE_CAP];
    uint8_t sig[SCRAM_KEY_LEN];
    char *p;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    client_before_final(&c, &k, server_first, client_final);
    nonce_of(server_first, nonce);
    snprintf(wo, sizeof(wo), "c=biws,r=%s", nonce);
    p = strstr(client_final, ",p=");
    assert_non_null(p);
    assert_int_equal((size_t)(p - client_final), strlen(wo));
    assert_memory_equal(client_final, wo, strlen(wo));
    snprintf(auth, sizeof(auth), "n=,r=%.*s", SCRAM_NONCE_B64_LEN, nonce);
    craft_final(k.client_key, auth, server_first, wo, expect);
    assert_string_equal(client_final, expect);

    snprintf(auth, sizeof(auth), "n=,r=%.*s,%s,%s", SCRAM_NONCE_B64_LEN, nonce, server_first, wo);
    ref_hmac(k.v.server_key, auth, sig);
    memcpy(v, "v=", 2);
    ref_b64(sig, SCRAM_KEY_LEN, v + 2);
    assert_int_equal(scram_client_handle_final(&c, (uint8_t *)v, strlen(v)), SCRAM_OK);
    assert_string_equal(scram_client_errdetail(&c), "");
}

static void test_client_final_checks(void **state)
{
    static const struct {
        const char *msg;
        int rc;
    } cases[] = {
        {"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", SCRAM_EAUTH},
        {"e=invalid-proof", SCRAM_EAUTH},
        {"v=AAAA", SCRAM_EPROTO},
        {"v=", SCRAM_EPROTO},
        {"", SCRAM_EPROTO},
        {"x=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", SCRAM_EPROTO},
        {"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,x=1", SCRAM_EPROTO},
    };
    struct keys k;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct scram_client c;
        char server_first[MSG_CAP], client_final[MSG_CAP];
        int rc;

        client_before_final(&c, &k, server_first, client_final);
        rc = scram_client_handle_final(&c, (const uint8_t *)cases[i].msg, strlen(cases[i].msg));
        if (rc != cases[i].rc)
            fail_msg("server-final #%zu \"%s\": got %d, want %d", i, cases[i].msg, rc, cases[i].rc);
        if (i == 1)
            assert_non_null(strstr(scram_client_errdetail(&c), "invalid-proof"));
    }
}

/* The server's error text goes to logs: no control characters. */
static void test_client_server_error_sanitised(void **state)
{
    static const char msg[] = "e=bad\nline\x1b[31m";
    struct keys k;
    struct scram_client c;
    char server_first[MSG_CAP], client_final[MSG_CAP];
    const char *detail;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    client_before_final(&c, &k, server_first, client_final);
    assert_int_equal(scram_client_handle_final(&c, (const uint8_t *)msg, sizeof(msg) - 1),
                     SCRAM_EAUTH);
    detail = scram_client_errdetail(&c);
    assert_non_null(strstr(detail, "bad?line?[31m"));
    for (const char *p = detail; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f);
}

static void test_client_init_checks(void **state)
{
    struct keys k, other;
    struct scram_client c;
    struct scram_verifier bad;
    uint8_t cb[SCRAM_MAX_CB_LEN + 1] = {0};

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    make_keys("something else", &other);
    /* a ClientKey that does not belong to the verifier is useless */
    assert_int_equal(scram_client_init(&c, other.client_key, &k.v, NULL, 0), SCRAM_EFORMAT);
    assert_true(strlen(scram_client_errdetail(&c)) > 0);
    bad = k.v;
    bad.iterations = 0;
    assert_int_equal(scram_client_init(&c, k.client_key, &bad, NULL, 0), SCRAM_EFORMAT);
    assert_int_equal(scram_client_init(&c, k.client_key, &k.v, NULL, 32), SCRAM_EINTERNAL);
    assert_int_equal(scram_client_init(&c, k.client_key, &k.v, cb, sizeof(cb)), SCRAM_EINTERNAL);
    assert_int_equal(scram_client_init(&c, k.client_key, &k.v, cb, SCRAM_MAX_CB_LEN), SCRAM_OK);
    /* cb_len 0 means no binding whatever the pointer is */
    assert_int_equal(scram_client_init(&c, k.client_key, &k.v, cb, 0), SCRAM_OK);
    assert_string_equal(scram_client_mechanism(&c), SCRAM_MECH);
}

/* ---------------------------------------------------------------------
 * Call order, buffers, cleanup
 * ------------------------------------------------------------------- */

static void test_call_order(void **state)
{
    struct keys k;
    struct scram_server s;
    struct scram_client c;
    char out[MSG_CAP], server_first[MSG_CAP], nonce[NONCE_CAP];
    size_t outlen;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    /* never initialised */
    memset(&s, 0, sizeof(s));
    assert_int_equal(send_first(&s, SCRAM_MECH, "n,,n=,r=abc", out), SCRAM_EINTERNAL);
    memset(&c, 0, sizeof(c));
    assert_int_equal(scram_client_first(&c, out, sizeof(out), &outlen), SCRAM_EINTERNAL);

    /* final before first */
    assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(send_final(&s, "c=biws,r=abc,p=AAAA", out), SCRAM_EINTERNAL);
    assert_int_equal(scram_client_init(&c, k.client_key, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(scram_client_handle_first(&c, (const uint8_t *)"r=a,s=AAAA,i=1", 14, out,
                                               sizeof(out), &outlen),
                     SCRAM_EINTERNAL);

    /* first twice */
    server_after_first(&s, &k, server_first, nonce);
    assert_int_equal(send_first(&s, SCRAM_MECH, "n,,n=,r=abc", out), SCRAM_EINTERNAL);

    /* nothing continues after a failure */
    assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(send_first(&s, SCRAM_MECH, "n,a=x,n=,r=abc", out), SCRAM_EPROTO);
    assert_int_equal(send_final(&s, "c=biws,r=abc,p=AAAA", out), SCRAM_EINTERNAL);
    assert_null(scram_server_client_key(&s));

    assert_int_equal(scram_server_handle_first(NULL, SCRAM_MECH, (const uint8_t *)"n", 1, out,
                                               sizeof(out), &outlen),
                     SCRAM_EINTERNAL);
    assert_string_equal(scram_server_errdetail(NULL), "");
    assert_null(scram_server_client_key(NULL));
}

static void test_output_space(void **state)
{
    struct keys k;
    struct scram_server s;
    struct scram_client c;
    char out[MSG_CAP];
    size_t outlen;
    const char *first = "n,,n=,r=" CLIENT_NONCE;

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    /* "r=" + 24 + 24 + ",s=" + 24 + ",i=4096" = 84 bytes, plus NUL */
    assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(scram_server_handle_first(&s, SCRAM_MECH, (const uint8_t *)first,
                                               strlen(first), out, 84, &outlen),
                     SCRAM_ENOSPACE);
    assert_int_equal(scram_server_init(&s, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(scram_server_handle_first(&s, SCRAM_MECH, (const uint8_t *)first,
                                               strlen(first), out, 85, &outlen),
                     SCRAM_OK);
    assert_int_equal(outlen, 84);

    assert_int_equal(scram_client_init(&c, k.client_key, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(scram_client_first(&c, out, 32, &outlen), SCRAM_ENOSPACE);
    assert_int_equal(scram_client_init(&c, k.client_key, &k.v, NULL, 0), SCRAM_OK);
    assert_int_equal(scram_client_first(&c, out, 33, &outlen), SCRAM_OK);
    assert_int_equal(outlen, 32);
}

static void test_cleanup_wipes_keys(void **state)
{
    struct keys k;
    struct scram_server s;
    struct scram_client c;
    char server_first[MSG_CAP], nonce[NONCE_CAP], wo[MSG_CAP], final[MSG_CAP];
    char out[MSG_CAP];
    static const uint8_t zero[sizeof(struct scram_server) + sizeof(struct scram_client)];

    (void)state;
    make_keys(TEST_PASSWORD, &k);
    server_after_first(&s, &k, server_first, nonce);
    snprintf(wo, sizeof(wo), "c=biws,r=%s", nonce);
    craft_final(k.client_key, "n=,r=" CLIENT_NONCE, server_first, wo, final);
    assert_int_equal(send_final(&s, final, out), SCRAM_OK);
    assert_non_null(scram_server_client_key(&s));
    scram_server_cleanup(&s);
    assert_null(scram_server_client_key(&s));
    assert_memory_equal(&s, zero, sizeof(s));

    assert_int_equal(scram_client_init(&c, k.client_key, &k.v, NULL, 0), SCRAM_OK);
    scram_client_cleanup(&c);
    assert_memory_equal(&c, zero, sizeof(c));
}

/* ---------------------------------------------------------------------
 * tls-server-end-point
 * ------------------------------------------------------------------- */

/* A self-signed certificate; md NULL for Ed25519, pss for RSA-PSS. */
static X509 *make_cert(EVP_PKEY *key, const EVP_MD *md, int pss)
{
    X509 *x = X509_new();
    X509_NAME *name;

    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    assert_int_equal(X509_set_pubkey(x, key), 1);
    name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)"pgnear", -1, -1, 0),
                     1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    if (pss) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;

        assert_non_null(ctx);
        assert_int_equal(EVP_DigestSignInit(ctx, &pctx, md, NULL, key), 1);
        assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
        assert_true(X509_sign_ctx(x, ctx) > 0);
        EVP_MD_CTX_free(ctx);
    } else {
        assert_true(X509_sign(x, key, md) > 0);
    }
    return x;
}

/* Hash of the DER encoding, computed without protocol/scram_keys.c. */
static size_t der_hash(X509 *x, const EVP_MD *md, uint8_t *out)
{
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    unsigned int n = 0;

    assert_true(len > 0);
    assert_int_equal(EVP_Digest(der, (size_t)len, out, &n, md, NULL), 1);
    OPENSSL_free(der);
    return n;
}

static void check_end_point(EVP_PKEY *key, const EVP_MD *sign_md, int pss, const EVP_MD *want_md)
{
    X509 *x = make_cert(key, sign_md, pss);
    uint8_t got[SCRAM_MAX_CB_LEN], want[EVP_MAX_MD_SIZE];
    size_t got_len = 0, want_len = der_hash(x, want_md, want);

    assert_int_equal(scram_tls_server_end_point(x, got, sizeof(got), &got_len), SCRAM_OK);
    assert_int_equal(got_len, want_len);
    assert_memory_equal(got, want, want_len);
    assert_int_equal(scram_tls_server_end_point(x, got, want_len - 1, &got_len), SCRAM_ENOSPACE);
    X509_free(x);
}

static void test_end_point_ecdsa(void **state)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

    (void)state;
    assert_non_null(key);
    check_end_point(key, EVP_sha256(), 0, EVP_sha256());
    check_end_point(key, EVP_sha384(), 0, EVP_sha384());
    check_end_point(key, EVP_sha512(), 0, EVP_sha512());
    /* SHA-1 is upgraded to SHA-256 */
    check_end_point(key, EVP_sha1(), 0, EVP_sha256());
    EVP_PKEY_free(key);
}

static void test_end_point_rsa(void **state)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);

    (void)state;
    assert_non_null(key);
    check_end_point(key, EVP_sha256(), 0, EVP_sha256());
    /* MD5 is upgraded to SHA-256 */
    check_end_point(key, EVP_md5(), 0, EVP_sha256());
    /* RSA-PSS carries its hash in the parameters */
    check_end_point(key, EVP_sha384(), 1, EVP_sha384());
    EVP_PKEY_free(key);
}

static void test_end_point_ed25519(void **state)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    X509 *x;
    uint8_t out[SCRAM_MAX_CB_LEN];
    size_t outlen;

    (void)state;
    assert_non_null(key);
    x = make_cert(key, NULL, 0);
    assert_int_equal(scram_tls_server_end_point(x, out, sizeof(out), &outlen), SCRAM_EFORMAT);
    assert_int_equal(scram_tls_server_end_point(NULL, out, sizeof(out), &outlen), SCRAM_EINTERNAL);
    X509_free(x);
    EVP_PKEY_free(key);
}

/* Channel binding with a real certificate hash on both sides. */
static void test_exchange_with_certificate(void **state)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    X509 *x;
    uint8_t cb[SCRAM_MAX_CB_LEN];
    size_t cb_len;
    struct keys k;
    struct run r;

    (void)state;
    assert_non_null(key);
    x = make_cert(key, EVP_sha384(), 0);
    assert_int_equal(scram_tls_server_end_point(x, cb, sizeof(cb), &cb_len), SCRAM_OK);
    assert_int_equal(cb_len, 48);
    make_keys(TEST_PASSWORD, &k);
    r = run_exchange(&k.v, cb, cb_len, &k, cb, cb_len);
    assert_int_equal(r.server_final, SCRAM_OK);
    assert_int_equal(r.client_final, SCRAM_OK);
    assert_memory_equal(r.recovered, k.client_key, SCRAM_KEY_LEN);
    X509_free(x);
    EVP_PKEY_free(key);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verifier_postgres_round_trip),
        cmocka_unit_test(test_verifier_matches_postgres),
        cmocka_unit_test(test_verifier_rfc7677_vector),
        cmocka_unit_test(test_verifier_length_bounded),
        cmocka_unit_test(test_verifier_rejects_malformed),
        cmocka_unit_test(test_make_verifier_rejects_bad_input),
        cmocka_unit_test(test_format_verifier_space),
        cmocka_unit_test(test_derive_keys),
        cmocka_unit_test(test_client_read_secret),
        cmocka_unit_test(test_exchange_recovers_client_key),
        cmocka_unit_test(test_exchange_postgres_verifier),
        cmocka_unit_test(test_exchange_messages_look_right),
        cmocka_unit_test(test_exchange_channel_binding),
        cmocka_unit_test(test_channel_binding_mismatch),
        cmocka_unit_test(test_wrong_password),
        cmocka_unit_test(test_gs2_y_against_cb_server),
        cmocka_unit_test(test_gs2_y_against_plain_server),
        cmocka_unit_test(test_gs2_and_mechanism_rules),
        cmocka_unit_test(test_client_first_malformed),
        cmocka_unit_test(test_client_first_errdetail),
        cmocka_unit_test(test_client_first_nul_and_length),
        cmocka_unit_test(test_client_first_extensions_ignored),
        cmocka_unit_test(test_client_final_rules),
        cmocka_unit_test(test_client_final_nul),
        cmocka_unit_test(test_client_server_first_rules),
        cmocka_unit_test(test_client_proof_and_signature),
        cmocka_unit_test(test_client_final_checks),
        cmocka_unit_test(test_client_server_error_sanitised),
        cmocka_unit_test(test_client_init_checks),
        cmocka_unit_test(test_call_order),
        cmocka_unit_test(test_output_space),
        cmocka_unit_test(test_cleanup_wipes_keys),
        cmocka_unit_test(test_end_point_ecdsa),
        cmocka_unit_test(test_end_point_rsa),
        cmocka_unit_test(test_end_point_ed25519),
        cmocka_unit_test(test_exchange_with_certificate),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("scram", tests, NULL, NULL);
}
