/*
 * scram_int.h — what the parts of SCRAM (scram.h) share and the rest of
 * pgnear does not see: the reading and writing of messages, the keys, and
 * the checks both sides of an exchange make.
 *
 * The parts, each of which uses only the ones before it:
 *   scram_wire.c    output buffers, base64, the attribute reader, and the
 *                   exchange's shared checks;
 *   scram_keys.c    hashes, nonces, PostgreSQL's stored verifiers and the
 *                   tls-server-end-point hash;
 *   scram_server.c  pgnear verifying a client (the server side);
 *   scram_client.c  pgnear logging in to a server with the ClientKey a
 *                   client's proof gave (the client side).
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
#ifndef PGNEAR_PROTOCOL_SCRAM_INT_H
#define PGNEAR_PROTOCOL_SCRAM_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/scram.h"

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

/* scram_wire.c: bounded output; overflow is sticky, checked once by scram_buf_finish(). */
void scram_buf_init(struct sbuf *b, char *data, size_t cap);
void scram_buf_put(struct sbuf *b, const void *p, size_t n);
void scram_buf_puts(struct sbuf *b, const char *s);
void scram_buf_put_int(struct sbuf *b, int v);
void scram_buf_put_b64(struct sbuf *b, const uint8_t *p, size_t n);
bool scram_buf_finish(struct sbuf *b, size_t *outlen);

/* Strict, padded, canonical base64: whether in is so, and its decoded length. */
bool scram_b64_check(const uint8_t *in, size_t n, size_t *declen);
/* Decodes into out[cap]; false if malformed or longer than cap. */
bool scram_b64_decode(struct slice in, uint8_t *out, size_t cap, size_t *outlen);
/* Decodes a base64 field that must be exactly SCRAM_KEY_LEN bytes. */
bool scram_decode_key(struct slice in, uint8_t out[SCRAM_KEY_LEN]);

/* The attribute reader: a cursor over a message that is not NUL-terminated. */
void scram_cur_init(struct cursor *c, const void *p, size_t len);
bool scram_cur_end(const struct cursor *c);
int scram_cur_peek(const struct cursor *c);
bool scram_cur_accept(struct cursor *c, char ch);
bool scram_cur_literal(struct cursor *c, const char *lit);
struct slice scram_cur_until(struct cursor *c, char stop);
bool scram_cur_attr(struct cursor *c, char attr, struct slice *val);
bool scram_cur_any_attr(struct cursor *c, char *attr, struct slice *val);
/* RFC 5802 "printable": 0x21..0x7E except ','. */
bool scram_nonce_printable(struct slice s);
/* Strict decimal 1..INT_MAX: no sign, no spaces, no trailing bytes. */
bool scram_parse_positive_int(struct slice s, int *out);

/* Records why an exchange failed; it cannot continue afterwards. */
int scram_record_failure(enum scram_state *state, char *errdetail, int rc, const char *detail);
/* cb_len 0 means "no channel binding" whatever cb_data points to. */
bool scram_cb_args_valid(const uint8_t *cb_data, size_t cb_len);
/* The c= payload: gs2 header, followed by cb data when binding is used. */
size_t scram_cbind_input(uint8_t *out, const char *gs2, size_t gs2_len, const uint8_t *cb_data,
                         size_t cb_len);
bool scram_has_nul(const uint8_t *msg, size_t len);

/* scram_keys.c: the hashes and the nonce. */
bool scram_sha256(const void *data, size_t len, uint8_t out[SCRAM_KEY_LEN]);
bool scram_hmac_sha256_str(const uint8_t *key, size_t keylen, const char *text,
                           uint8_t out[SCRAM_KEY_LEN]);
/* HMAC(key, AuthMessage) with AuthMessage assembled from its three parts. */
bool scram_hmac_auth_message(const uint8_t key[SCRAM_KEY_LEN], struct slice first_bare,
                             struct slice server_first, struct slice final_no_proof,
                             uint8_t out[SCRAM_KEY_LEN]);
void scram_xor_keys(uint8_t out[SCRAM_KEY_LEN], const uint8_t a[SCRAM_KEY_LEN],
                    const uint8_t b[SCRAM_KEY_LEN]);
/* A fresh nonce: base64 of SCRAM_NONCE_RAW_LEN random bytes, NUL-terminated. */
bool scram_make_nonce(char out[SCRAM_NONCE_B64_LEN + 1]);
bool scram_verifier_valid(const struct scram_verifier *v);
/* ASCII is exactly what SASLprep (and PostgreSQL) pass through unchanged. */
bool scram_password_usable(const char *password, size_t *len);

#endif
