/*
 * http_upgrade.c — strict HTTP/1.1 request head parser for the WebSocket
 * upgrade, and pgnear's few HTTP answers.
 *
 * Written here rather than taken from evhttp: evhttp owns its connection,
 * and after the upgrade the socket goes back to pgnear's own stream layer.
 * Only complete lines are interpreted; the line, header count and head
 * limits are checked on every byte seen, so a client that never sends a
 * CRLF is refused as soon as it passes a limit.  Nothing is allocated: the
 * strings are copied into the request's fixed store, which is at least as
 * large as the longest head accepted.
 */
#include "protocol/http_upgrade.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define WS_GUID    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_KEY_LEN 24

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* The limits pgnear reads an upgrade request's head with: a line, the headers, the whole head. */
void http_limits_default(struct http_limits *lim)
{
    lim->max_line = 4096;
    lim->max_headers = 64;
    lim->max_head = 8192;
}

/* The configured limits, held within what the parser's fixed arrays allow. */
static struct http_limits clamp_limits(const struct http_limits *lim)
{
    struct http_limits l = *lim;

    if (l.max_headers > HTTP_MAX_HEADERS)
        l.max_headers = HTTP_MAX_HEADERS;
    if (l.max_head > HTTP_MAX_HEAD_CAP)
        l.max_head = HTTP_MAX_HEAD_CAP;
    return l;
}

/* tchar of RFC 9110 section 5.6.2. */
static bool is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-vchar, SP or HTAB (obs-text allowed, every other control refused). */
static bool is_field_char(uint8_t c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

/* HTTP's optional white space: space and tab. */
static bool is_ows(uint8_t c)
{
    return c == ' ' || c == '\t';
}

/*
 * Finds the CRLF ending the line that starts at pos.  HTTP_OK with *eol at
 * its CR; HTTP_INCOMPLETE when the data ends first.  Limits are checked on
 * every byte, so an unterminated line fails as soon as it is too long.
 */
static enum http_result find_line(const uint8_t *buf, size_t len, size_t pos,
                                  const struct http_limits *l, size_t *eol)
{
    for (size_t i = pos; i < len; i++) {
        if (buf[i] == '\n')
            return HTTP_BAD_REQUEST; /* bare LF */
        if (buf[i] == '\r') {
            if (i + 2 > l->max_head)
                return HTTP_TOO_LARGE;
            if (i + 1 == len)
                return HTTP_INCOMPLETE;
            if (buf[i + 1] != '\n')
                return HTTP_BAD_REQUEST; /* bare CR */
            *eol = i;
            return HTTP_OK;
        }
        if (i - pos + 1 > l->max_line || i + 1 > l->max_head)
            return HTTP_TOO_LARGE;
    }
    return HTTP_INCOMPLETE;
}

/* Copies len bytes and a NUL into the store; NULL if it is full. */
static const char *store_copy(struct http_request *r, const uint8_t *s, size_t len)
{
    char *dst;

    if (len + 1 > sizeof(r->store) - r->store_used)
        return NULL;
    dst = r->store + r->store_used;
    memcpy(dst, s, len);
    dst[len] = '\0';
    r->store_used += len + 1;
    return dst;
}

/* origin-form only: '/', then visible ASCII; no fragment. */
static bool valid_target(const uint8_t *s, size_t len)
{
    if (len == 0 || s[0] != '/')
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x21 || s[i] > 0x7E || s[i] == '#')
            return false;
    return true;
}

/*
 * The request target split at '?' into path and query, both copied into the
 * request's store; HTTP_TOO_LARGE when it is full.
 */
static enum http_result store_target(struct http_request *r, const uint8_t *s, size_t len)
{
    const uint8_t *q = memchr(s, '?', len);
    size_t path_len = q ? (size_t)(q - s) : len;

    r->path = store_copy(r, s, path_len);
    if (r->path == NULL)
        return HTTP_TOO_LARGE;
    if (q) {
        r->query = store_copy(r, q + 1, len - path_len - 1);
        if (r->query == NULL)
            return HTTP_TOO_LARGE;
    }
    return HTTP_OK;
}

/*
 * "METHOD SP target SP HTTP/x.y", single spaces.  A malformed line is 400;
 * then the version (505 unless 1.1), then the method (405 unless GET).
 */
static enum http_result parse_request_line(const uint8_t *s, size_t len, struct http_request *r)
{
    const uint8_t *sp1 = memchr(s, ' ', len), *sp2, *ver;
    size_t mlen, tlen, vlen;

    if (sp1 == NULL)
        return HTTP_BAD_REQUEST;
    mlen = (size_t)(sp1 - s);
    sp2 = memchr(sp1 + 1, ' ', len - mlen - 1);
    if (sp2 == NULL || mlen == 0)
        return HTTP_BAD_REQUEST;
    for (size_t i = 0; i < mlen; i++)
        if (!is_tchar(s[i]))
            return HTTP_BAD_REQUEST;
    tlen = (size_t)(sp2 - sp1 - 1);
    ver = sp2 + 1;
    vlen = len - (size_t)(ver - s);
    if (!valid_target(sp1 + 1, tlen))
        return HTTP_BAD_REQUEST;
    if (vlen != 8 || memcmp(ver, "HTTP/", 5) != 0 || ver[5] < '0' || ver[5] > '9' ||
        ver[6] != '.' || ver[7] < '0' || ver[7] > '9')
        return HTTP_BAD_REQUEST;
    if (memcmp(ver + 5, "1.1", 3) != 0)
        return HTTP_VERSION;
    if (mlen != 3 || memcmp(s, "GET", 3) != 0)
        return HTTP_NOT_GET;
    r->method = store_copy(r, s, mlen);
    if (r->method == NULL)
        return HTTP_TOO_LARGE;
    return store_target(r, sp1 + 1, tlen);
}

/* Whether the comma list has the element token (case-insensitive). */
static bool list_has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = list;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t n;

        if (end == NULL)
            end = p + strlen(p);
        while (p < end && is_ows((uint8_t)*p))
            p++;
        n = (size_t)(end - p);
        while (n > 0 && is_ows((uint8_t)p[n - 1]))
            n--;
        if (n == tlen && strncasecmp(p, token, n) == 0)
            return true;
        p = *end ? end + 1 : end;
    }
    return false;
}

/* Content-Length is accepted only as zero: an upgrade request has no body. */
static bool zero_length(const char *v)
{
    if (*v == '\0')
        return false;
    for (; *v; v++)
        if (*v != '0')
            return false;
    return true;
}

/* Sets a single-valued field; false when it was already set. */
static bool set_once(const char **field, const char *value)
{
    if (*field)
        return false;
    *field = value;
    return true;
}

/* The headers pgnear interprets; duplicates of them are refused. */
static enum http_result note_known(struct http_request *r, const char *name, const char *value)
{
    bool ok = true;

    if (strcasecmp(name, "Host") == 0)
        ok = set_once(&r->host, value);
    else if (strcasecmp(name, "Sec-WebSocket-Key") == 0)
        ok = set_once(&r->ws_key, value);
    else if (strcasecmp(name, "Sec-WebSocket-Version") == 0)
        ok = set_once(&r->ws_version, value);
    else if (strcasecmp(name, "Origin") == 0)
        ok = set_once(&r->origin, value);
    else if (strcasecmp(name, "Sec-WebSocket-Protocol") == 0) {
        if (strlen(value) > HTTP_WS_PROTOCOL_MAX)
            return HTTP_TOO_LARGE;
        ok = set_once(&r->ws_protocol, value);
    } else if (strcasecmp(name, "Upgrade") == 0) {
        ok = http_request_header(r, name) == value;
        r->upgrade_websocket = list_has_token(value, "websocket");
    } else if (strcasecmp(name, "Connection") == 0) {
        ok = http_request_header(r, name) == value;
        r->connection_upgrade = list_has_token(value, "upgrade");
    } else if (strcasecmp(name, "Content-Length") == 0)
        ok = http_request_header(r, name) == value && zero_length(value);
    else if (strcasecmp(name, "Transfer-Encoding") == 0)
        ok = false; /* any transfer coding means a body */
    return ok ? HTTP_OK : HTTP_BAD_REQUEST;
}

/* "name: value" with no whitespace before the colon and no folding. */
static enum http_result parse_header_line(const uint8_t *s, size_t len, const struct http_limits *l,
                                          struct http_request *r)
{
    const uint8_t *colon = memchr(s, ':', len);
    size_t nlen, vstart, vend;
    struct http_header *h;

    if (colon == NULL || colon == s)
        return HTTP_BAD_REQUEST; /* a line starting with SP/HT (obs-fold) ends here too */
    nlen = (size_t)(colon - s);
    for (size_t i = 0; i < nlen; i++)
        if (!is_tchar(s[i]))
            return HTTP_BAD_REQUEST;
    for (size_t i = nlen + 1; i < len; i++)
        if (!is_field_char(s[i]))
            return HTTP_BAD_REQUEST;
    vstart = nlen + 1;
    vend = len;
    while (vstart < vend && is_ows(s[vstart]))
        vstart++;
    while (vend > vstart && is_ows(s[vend - 1]))
        vend--;
    if (r->n_headers >= l->max_headers)
        return HTTP_TOO_LARGE;
    h = &r->headers[r->n_headers];
    h->name = store_copy(r, s, nlen);
    h->value = store_copy(r, s + vstart, vend - vstart);
    if (h->name == NULL || h->value == NULL)
        return HTTP_TOO_LARGE;
    r->n_headers++;
    return note_known(r, h->name, h->value);
}

enum http_result http_upgrade_parse(const uint8_t *buf, size_t len, const struct http_limits *lim,
                                    struct http_request *out)
{
    struct http_limits l = clamp_limits(lim);
    size_t pos = 0;

    memset(out, 0, offsetof(struct http_request, store));
    for (;;) {
        size_t eol;
        enum http_result rc = find_line(buf, len, pos, &l, &eol);

        if (rc != HTTP_OK)
            return rc;
        if (eol == pos) {
            if (pos == 0)
                return HTTP_BAD_REQUEST; /* no request line */
            out->head_len = eol + 2;
            return HTTP_OK;
        }
        if (pos == 0)
            rc = parse_request_line(buf, eol, out);
        else
            rc = parse_header_line(buf + pos, eol - pos, &l, out);
        if (rc != HTTP_OK)
            return rc;
        pos = eol + 2;
    }
}

const char *http_request_header(const struct http_request *r, const char *name)
{
    for (size_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

/* base64 of exactly 16 bytes: 22 characters, the last with no stray bits, then "==". */
static bool valid_ws_key(const char *key)
{
    const char *last;

    if (key == NULL || strlen(key) != WS_KEY_LEN || strcmp(key + 22, "==") != 0)
        return false;
    for (int i = 0; i < 22; i++)
        if (key[i] == '\0' || strchr(b64_alphabet, key[i]) == NULL)
            return false;
    last = strchr(b64_alphabet, key[21]);
    return ((last - b64_alphabet) & 0x0F) == 0;
}

enum http_ws_check http_upgrade_check(const struct http_request *r)
{
    if (r->method == NULL || strcmp(r->method, "GET") != 0)
        return HTTP_WS_NOT_GET;
    if (r->path == NULL)
        return HTTP_WS_NOT_HTTP11; /* not an OK parse of an HTTP/1.1 request line */
    if (r->host == NULL || r->host[0] == '\0')
        return HTTP_WS_NO_HOST;
    if (!r->upgrade_websocket)
        return HTTP_WS_NO_UPGRADE;
    if (!r->connection_upgrade)
        return HTTP_WS_NO_CONNECTION;
    if (!valid_ws_key(r->ws_key))
        return HTTP_WS_BAD_KEY;
    if (r->ws_version == NULL)
        return HTTP_WS_NO_VERSION;
    if (strcmp(r->ws_version, "13") != 0)
        return HTTP_WS_BAD_VERSION;
    return HTTP_WS_OK;
}

int http_result_status(enum http_result rc)
{
    switch (rc) {
    case HTTP_TOO_LARGE:
        return 431;
    case HTTP_NOT_GET:
        return 405;
    case HTTP_VERSION:
        return 505;
    default:
        return 400;
    }
}

/* The HTTP status that refuses an upgrade for reason c (101 when it is accepted). */
int http_ws_check_status(enum http_ws_check c)
{
    switch (c) {
    case HTTP_WS_OK:
        return 101;
    case HTTP_WS_NOT_GET:
        return 405;
    case HTTP_WS_NOT_HTTP11:
        return 505;
    case HTTP_WS_BAD_VERSION:
        return 426;
    default:
        return 400;
    }
}

void http_ws_accept(const char *key, char out[HTTP_WS_ACCEPT_LEN])
{
    char joined[64 + sizeof(WS_GUID)];
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    size_t klen = strlen(key);

    out[0] = '\0';
    if (klen > 64)
        return;
    memcpy(joined, key, klen);
    memcpy(joined + klen, WS_GUID, sizeof(WS_GUID) - 1);
    if (!EVP_Digest(joined, klen + sizeof(WS_GUID) - 1, digest, &dlen, EVP_sha1(), NULL) ||
        dlen != 20)
        return;
    EVP_EncodeBlock((unsigned char *)out, digest, 20);
}

/* The reason phrase of the statuses pgnear sends; NULL for others. */
static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 426:
        return "Upgrade Required";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return NULL;
    }
}

/* snprintf's result as a length: 0 on error or truncation. */
static size_t fitted(int n, size_t cap)
{
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

size_t http_response(char *out, size_t cap, int status, const char *extra_headers)
{
    const char *reason = reason_phrase(status);
    const char *body = status == 200 ? "ok" : reason;

    if (reason == NULL)
        return 0;
    /* 405 must say what is allowed (RFC 9110 section 15.5.6). */
    return fitted(snprintf(out, cap,
                           "HTTP/1.1 %d %s\r\n"
                           "Connection: close\r\n"
                           "Content-Type: text/plain\r\n"
                           "Content-Length: %zu\r\n"
                           "%s%s\r\n"
                           "%s\n",
                           status, reason, strlen(body) + 1, status == 405 ? "Allow: GET\r\n" : "",
                           extra_headers ? extra_headers : "", body),
                  cap);
}

size_t http_switching_protocols(char *out, size_t cap, const char *accept,
                                const char *protocol_or_null)
{
    return fitted(snprintf(out, cap,
                           "HTTP/1.1 101 Switching Protocols\r\n"
                           "Upgrade: websocket\r\n"
                           "Connection: Upgrade\r\n"
                           "Sec-WebSocket-Accept: %s\r\n"
                           "%s%s%s"
                           "\r\n",
                           accept, protocol_or_null ? "Sec-WebSocket-Protocol: " : "",
                           protocol_or_null ? protocol_or_null : "",
                           protocol_or_null ? "\r\n" : ""),
                  cap);
}
