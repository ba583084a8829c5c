/*
 * scram_wire.c — what both sides of a SCRAM exchange (scram.h) need to
 * read and write its messages: bounded output buffers, strict base64, a
 * reader of "attr=value" fields over a message that is not NUL-terminated,
 * and the checks both sides make of their arguments and of channel binding.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "protocol/scram.h"
#include "protocol/scram_int.h"

/* ---------------------------------------------------------------------
 * Output buffer
 * ------------------------------------------------------------------- */

void scram_buf_init(struct sbuf *b, char *data, size_t cap)
{
    b->data = data;
    b->cap = cap;
    b->len = 0;
    b->overflow = (cap == 0);
    if (cap > 0)
        data[0] = '\0';
}

/* Appends n bytes, always keeping room for the final NUL. */
void scram_buf_put(struct sbuf *b, const void *p, size_t n)
{
    if (b->overflow || b->cap - b->len <= n) {
        b->overflow = true;
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* Appends a string; overflowing marks the buffer, checked once by scram_buf_finish. */
void scram_buf_puts(struct sbuf *b, const char *s)
{
    scram_buf_put(b, s, strlen(s));
}

/* Appends an int in decimal (the iteration count). */
void scram_buf_put_int(struct sbuf *b, int v)
{
    char tmp[16];
    int n = snprintf(tmp, sizeof(tmp), "%d", v);

    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        b->overflow = true;
        return;
    }
    scram_buf_put(b, tmp, (size_t)n);
}

/* Appends padded base64; EVP_EncodeBlock also writes a NUL we have room for. */
void scram_buf_put_b64(struct sbuf *b, const uint8_t *p, size_t n)
{
    size_t enc = (n + 2) / 3 * 4;

    if (b->overflow || n > INT_MAX / 2 || b->cap - b->len <= enc) {
        b->overflow = true;
        return;
    }
    EVP_EncodeBlock((unsigned char *)b->data + b->len, p, (int)n);
    b->len += enc;
}

/* The message's length; false when anything overflowed while it was built. */
bool scram_buf_finish(struct sbuf *b, size_t *outlen)
{
    if (b->overflow)
        return false;
    *outlen = b->len;
    return true;
}

/* ---------------------------------------------------------------------
 * Base64
 * ------------------------------------------------------------------- */

/* A base64 character's value, or -1 (padding '=' included: the caller handles it). */
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
bool scram_b64_check(const uint8_t *in, size_t n, size_t *declen)
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
bool scram_b64_decode(struct slice in, uint8_t *out, size_t cap, size_t *outlen)
{
    uint8_t tmp[B64_DECODE_MAX + 3];
    size_t declen;
    int got;

    if (!scram_b64_check(in.data, in.len, &declen) || declen > cap || in.len / 4 * 3 > sizeof(tmp))
        return false;
    got = EVP_DecodeBlock(tmp, in.data, (int)in.len);
    if (got < 0 || (size_t)got != in.len / 4 * 3)
        return false;
    memcpy(out, tmp, declen);
    OPENSSL_cleanse(tmp, sizeof(tmp));
    *outlen = declen;
    return true;
}

/* Decodes a base64 field that must be exactly SCRAM_KEY_LEN bytes. */
bool scram_decode_key(struct slice in, uint8_t out[SCRAM_KEY_LEN])
{
    size_t n;

    return scram_b64_decode(in, out, SCRAM_KEY_LEN, &n) && n == SCRAM_KEY_LEN;
}

/* ---------------------------------------------------------------------
 * Message cursor
 * ------------------------------------------------------------------- */

void scram_cur_init(struct cursor *c, const void *p, size_t len)
{
    c->p = p;
    c->len = len;
    c->pos = 0;
}

/* Has the cursor read all of the message? */
bool scram_cur_end(const struct cursor *c)
{
    return c->pos >= c->len;
}

/* The next byte without taking it, or -1 at the end. */
int scram_cur_peek(const struct cursor *c)
{
    return scram_cur_end(c) ? -1 : c->p[c->pos];
}

/* Consumes ch if it is next. */
bool scram_cur_accept(struct cursor *c, char ch)
{
    if (scram_cur_peek(c) != (uint8_t)ch)
        return false;
    c->pos++;
    return true;
}

/* Consumes a literal prefix if it is next. */
bool scram_cur_literal(struct cursor *c, const char *lit)
{
    size_t n = strlen(lit);

    if (c->len - c->pos < n || memcmp(c->p + c->pos, lit, n) != 0)
        return false;
    c->pos += n;
    return true;
}

/* Everything up to (not including) the next stop byte or the end. */
struct slice scram_cur_until(struct cursor *c, char stop)
{
    size_t start = c->pos;

    while (c->pos < c->len && c->p[c->pos] != (uint8_t)stop)
        c->pos++;
    return (struct slice){c->p + start, c->pos - start};
}

/* Reads "<attr>=<value>", leaving the cursor on the ',' that follows. */
bool scram_cur_attr(struct cursor *c, char attr, struct slice *val)
{
    if (c->len - c->pos < 2 || c->p[c->pos] != (uint8_t)attr || c->p[c->pos + 1] != '=')
        return false;
    c->pos += 2;
    *val = scram_cur_until(c, ',');
    return true;
}

/* Like scram_cur_attr, for any attribute letter (extensions). */
bool scram_cur_any_attr(struct cursor *c, char *attr, struct slice *val)
{
    int ch = scram_cur_peek(c);

    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')))
        return false;
    *attr = (char)ch;
    return scram_cur_attr(c, (char)ch, val);
}
/* RFC 5802 "printable": 0x21..0x7E except ','. */
bool scram_nonce_printable(struct slice s)
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
bool scram_parse_positive_int(struct slice s, int *out)
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

/* ---------------------------------------------------------------------
 * Shared exchange helpers
 * ------------------------------------------------------------------- */

/* Records why an exchange failed; it cannot continue afterwards. */
int scram_record_failure(enum scram_state *state, char *errdetail, int rc, const char *detail)
{
    *state = SCRAM_STATE_FAILED;
    snprintf(errdetail, SCRAM_ERRDETAIL_LEN, "%s", detail);
    return rc;
}

/* cb_len 0 means "no channel binding" whatever cb_data points to. */
bool scram_cb_args_valid(const uint8_t *cb_data, size_t cb_len)
{
    return cb_len == 0 || (cb_data != NULL && cb_len <= SCRAM_MAX_CB_LEN);
}

/* The c= payload: gs2 header, followed by cb data when binding is used. */
size_t scram_cbind_input(uint8_t *out, const char *gs2, size_t gs2_len, const uint8_t *cb_data,
                         size_t cb_len)
{
    memcpy(out, gs2, gs2_len);
    if (cb_len > 0)
        memcpy(out + gs2_len, cb_data, cb_len);
    return gs2_len + cb_len;
}

/* SCRAM messages are text: a NUL in one makes it malformed. */
bool scram_has_nul(const uint8_t *msg, size_t len)
{
    return len > 0 && memchr(msg, '\0', len) != NULL;
}
