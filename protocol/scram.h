/*
 * scram.h
 *    SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it.
 *
 * Three pieces:
 *   - verifiers: PostgreSQL's stored secret format
 *       SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>
 *   - server side: pgnear authenticates a client against a verifier and
 *     recovers the client's ClientKey from its proof;
 *   - client side: pgnear logs into the real server with that ClientKey
 *     (never with a password).
 *
 * All exchange state lives inline in the structs below (no heap); the
 * fields are private to the scram_*.c parts (scram_int.h lists them).
 * Every message parser takes a buffer and a length; input need not be
 * NUL-terminated.  Output messages are always NUL-terminated, so "cap"
 * must leave room for the terminator; *outlen excludes it.
 */
#ifndef PGNEAR_PROTOCOL_SCRAM_H
#define PGNEAR_PROTOCOL_SCRAM_H

#include <stddef.h>
#include <stdint.h>

/* Same typedef as <openssl/types.h>; C11 allows the repetition. */
typedef struct x509_st X509;

#define SCRAM_KEY_LEN      32
#define SCRAM_MAX_SALT_LEN 64

/* Mechanism names as sent in AuthenticationSASL / SASLInitialResponse. */
#define SCRAM_MECH      "SCRAM-SHA-256"
#define SCRAM_MECH_PLUS "SCRAM-SHA-256-PLUS"

/* Largest tls-server-end-point hash we accept (SHA-512). */
#define SCRAM_MAX_CB_LEN 64
/* Random bytes in each nonce we generate, and their base64 length. */
#define SCRAM_NONCE_RAW_LEN 18
#define SCRAM_NONCE_B64_LEN 24
/* Longest client-first-message-bare we keep; longer ones are EPROTO. */
#define SCRAM_MAX_CLIENT_FIRST_LEN 512
/* "r=" nonce ",s=" salt ",i=" iterations, with our own nonce appended. */
#define SCRAM_MAX_SERVER_FIRST_LEN                                                                 \
    (SCRAM_MAX_CLIENT_FIRST_LEN + SCRAM_NONCE_B64_LEN + ((SCRAM_MAX_SALT_LEN + 2) / 3) * 4 + 32)
#define SCRAM_GS2_HEADER_MAX 32
#define SCRAM_ERRDETAIL_LEN  256
/* Buffer size that always fits scram_format_verifier()'s output. */
#define SCRAM_VERIFIER_TEXT_MAX 256

enum scram_result {
    SCRAM_OK = 0,
    SCRAM_EPROTO = -1,    /* malformed message: SQLSTATE 08P01 */
    SCRAM_EAUTH = -2,     /* wrong proof / signature: 28P01 */
    SCRAM_ECBIND = -3,    /* channel binding mismatch or downgrade: 28000 */
    SCRAM_EFORMAT = -4,   /* malformed verifier or bad argument value */
    SCRAM_ENOSPACE = -5,  /* output buffer too small */
    SCRAM_EINTERNAL = -6, /* OpenSSL failure or call out of order */
};

/*
 * Where an exchange is; private to the scram_*.c parts.  Zero means "not
 * initialised" so that a memset or a cleaned-up struct refuses to run an
 * exchange.
 */
enum scram_state {
    SCRAM_STATE_NONE = 0,
    SCRAM_STATE_INIT,   /* initialised, nothing exchanged yet */
    SCRAM_STATE_FIRST,  /* first messages exchanged */
    SCRAM_STATE_FINAL,  /* client only: client-final-message sent */
    SCRAM_STATE_DONE,   /* authenticated */
    SCRAM_STATE_FAILED, /* a call failed; see errdetail */
};

struct scram_verifier {
    int iterations;
    uint8_t salt[SCRAM_MAX_SALT_LEN];
    size_t salt_len;
    uint8_t stored_key[SCRAM_KEY_LEN];
    uint8_t server_key[SCRAM_KEY_LEN];
};

/* Parse PostgreSQL's stored form; SCRAM_OK or SCRAM_EFORMAT. */
int scram_parse_verifier(const char *text, size_t len, struct scram_verifier *out);

/*
 * Derive a verifier from a password (for tests and tools).  Only ASCII
 * passwords are accepted (SCRAM_EFORMAT otherwise): SASLprep leaves them
 * unchanged, so the result matches what PostgreSQL stores.
 */
int scram_make_verifier(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                        struct scram_verifier *out);

/*
 * The same from one PBKDF2 run, with the ClientKey that a client logging
 * in with the password proves it holds (scram_client_init's client_key):
 * a client that logs in many times with one password derives it once.
 */
int scram_derive_keys(const char *password, const uint8_t *salt, size_t salt_len, int iterations,
                      uint8_t client_key[SCRAM_KEY_LEN], struct scram_verifier *out);

/* Back to the text form; SCRAM_ENOSPACE if cap is too small. */
int scram_format_verifier(const struct scram_verifier *v, char *out, size_t cap);

/* ---- server side: a client authenticates to pgnear ---- */

struct scram_server {
    enum scram_state state;
    struct scram_verifier verifier;
    uint8_t cb_data[SCRAM_MAX_CB_LEN];
    size_t cb_len; /* 0: we did not offer SCRAM-SHA-256-PLUS */
    char gs2_header[SCRAM_GS2_HEADER_MAX];
    size_t gs2_len;
    int cb_used; /* client sent "p=tls-server-end-point" */
    char client_first_bare[SCRAM_MAX_CLIENT_FIRST_LEN];
    size_t client_first_bare_len;
    char server_first[SCRAM_MAX_SERVER_FIRST_LEN];
    size_t server_first_len;
    size_t nonce_len; /* combined nonce starts at server_first + 2 */
    uint8_t client_key[SCRAM_KEY_LEN];
    char errdetail[SCRAM_ERRDETAIL_LEN];
};

/*
 * cb_data: the tls-server-end-point hash of pgnear's own certificate when
 * the client connection is TLS (and PLUS was offered), else NULL/0.
 * The verifier and cb_data are copied.
 */
int scram_server_init(struct scram_server *s, const struct scram_verifier *v,
                      const uint8_t *cb_data, size_t cb_len);

/*
 * mech: mechanism chosen in SASLInitialResponse; msg: client-first-message.
 * Writes server-first-message into out.
 */
int scram_server_handle_first(struct scram_server *s, const char *mech, const uint8_t *msg,
                              size_t len, char *out, size_t cap, size_t *outlen);

/*
 * msg: client-final-message.  Checks channel binding and proof; on success
 * writes server-final-message ("v=...") into out and keeps the ClientKey.
 */
int scram_server_handle_final(struct scram_server *s, const uint8_t *msg, size_t len, char *out,
                              size_t cap, size_t *outlen);

/*
 * A password given in clear (AuthenticationCleartextPassword) instead of
 * the exchange, checked against the verifier scram_server_init was given:
 * on success the ClientKey is kept as handle_final would.  SCRAM_EAUTH
 * when it does not match.  Costs the verifier's iteration count of HMACs.
 */
int scram_server_check_password(struct scram_server *s, const char *password);

/* The recovered ClientKey; NULL unless handle_final or check_password succeeded. */
const uint8_t *scram_server_client_key(const struct scram_server *s);

/* 1 if the client authenticated with channel binding (PLUS), else 0. */
int scram_server_channel_bound(const struct scram_server *s);

/* Why the last call failed ("" if it did not), for errdetail in logs. */
const char *scram_server_errdetail(const struct scram_server *s);

/* Wipe keys and messages; the struct must be re-initialised before reuse. */
void scram_server_cleanup(struct scram_server *s);

/* ---- client side: pgnear authenticates to the real server ---- */

struct scram_client {
    enum scram_state state;
    struct scram_verifier verifier;
    uint8_t client_key[SCRAM_KEY_LEN];
    uint8_t cb_data[SCRAM_MAX_CB_LEN];
    size_t cb_len; /* 0: "n,," and SCRAM-SHA-256 */
    char nonce[SCRAM_NONCE_B64_LEN + 1];
    uint8_t server_signature[SCRAM_KEY_LEN]; /* expected "v=" */
    char errdetail[SCRAM_ERRDETAIL_LEN];
};

/*
 * client_key: from scram_server_client_key().  v: the verifier pgnear
 * checked the client against; the server must announce the same salt and
 * iteration count.  cb_data: tls-server-end-point hash of the server's
 * certificate when the server connection is TLS and the server offered
 * SCRAM-SHA-256-PLUS, else NULL/0.  SCRAM_EFORMAT if client_key does not
 * belong to v.
 */
int scram_client_init(struct scram_client *c, const uint8_t client_key[SCRAM_KEY_LEN],
                      const struct scram_verifier *v, const uint8_t *cb_data, size_t cb_len);

/* SCRAM_MECH_PLUS when cb_data was given, else SCRAM_MECH. */
const char *scram_client_mechanism(const struct scram_client *c);

/* client-first-message: gs2 header + "n=,r=<nonce>". */
int scram_client_first(struct scram_client *c, char *out, size_t cap, size_t *outlen);

/*
 * Checks the server-first-message (nonce prefix, salt, iterations) and
 * writes client-final-message into out.
 */
int scram_client_handle_first(struct scram_client *c, const uint8_t *server_first, size_t len,
                              char *out, size_t cap, size_t *outlen);

/*
 * The salt and iteration count a server-first-message announces, read
 * without an exchange: a client that holds only a password learns from
 * them what to derive (scram_derive_keys).  SCRAM_EPROTO when malformed.
 */
int scram_client_read_secret(const uint8_t *server_first, size_t len,
                             uint8_t salt[SCRAM_MAX_SALT_LEN], size_t *salt_len, int *iterations);

/* Verifies the server signature; "e=" gives SCRAM_EAUTH. */
int scram_client_handle_final(struct scram_client *c, const uint8_t *server_final, size_t len);

const char *scram_client_errdetail(const struct scram_client *c);

/* Wipe keys; the struct must be re-initialised before reuse. */
void scram_client_cleanup(struct scram_client *c);

/* ---- channel binding ---- */

/*
 * RFC 5929 tls-server-end-point: hash of the DER certificate with the
 * certificate's signature hash (MD5 and SHA-1 upgraded to SHA-256).
 * SCRAM_EFORMAT if the signature algorithm has no usable hash (Ed25519).
 */
int scram_tls_server_end_point(X509 *cert, uint8_t *out, size_t cap, size_t *outlen);

#endif /* PGNEAR_PROTOCOL_SCRAM_H */
