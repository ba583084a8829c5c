/*
 * http_upgrade.h — a strict HTTP/1.1 request head parser for the WebSocket
 * upgrade (RFC 9112, RFC 6455 section 4.2.1), and the few answers pgnear
 * gives before the socket turns into a WebSocket stream.
 *
 * Storage: every string the parser hands out (method, path, query, header
 * names and values) is a NUL-terminated COPY in the request's own fixed
 * store, never a pointer into the caller's buffer, so the caller may drop
 * or reuse its buffer after an OK parse.  The pointers point into
 * r->store: a struct http_request must not be copied by value.
 */
#ifndef PGNEAR_PROTOCOL_HTTP_UPGRADE_H
#define PGNEAR_PROTOCOL_HTTP_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Hard caps: the limits a caller gives are clamped to these. */
#define HTTP_MAX_HEADERS  100
#define HTTP_MAX_HEAD_CAP 16384
/* Longest Sec-WebSocket-Protocol value kept (a comma list of subprotocols). */
#define HTTP_WS_PROTOCOL_MAX 256
/* Sec-WebSocket-Accept: base64 of a SHA-1, 28 characters and a NUL. */
#define HTTP_WS_ACCEPT_LEN 29

enum http_result {
    HTTP_INCOMPLETE = 0, /* need more bytes; nothing over a limit yet */
    HTTP_OK = 1,
    HTTP_BAD_REQUEST = -1, /* 400 */
    HTTP_TOO_LARGE = -2,   /* 431 */
    HTTP_NOT_GET = -3,     /* 405 */
    HTTP_VERSION = -4,     /* 505 */
};

struct http_limits {
    size_t max_line;    /* bytes of one line, its CRLF not counted */
    size_t max_headers; /* header fields */
    size_t max_head;    /* the whole head, the final CRLFCRLF included */
};

struct http_header {
    const char *name, *value; /* value trimmed of spaces and tabs */
};

struct http_request {
    const char *method;
    const char *path;  /* the request target up to '?' */
    const char *query; /* after '?', NULL when there is none */
    /* The fields below are NULL when the header is absent. */
    const char *host;
    const char *ws_key;
    const char *ws_version;
    const char *ws_protocol; /* raw comma list */
    const char *origin;
    bool upgrade_websocket;  /* Upgrade lists the token "websocket" */
    bool connection_upgrade; /* Connection lists the token "upgrade" */
    size_t n_headers;        /* every header, the ones above included */
    struct http_header headers[HTTP_MAX_HEADERS];
    size_t head_len; /* bytes the head occupies, CRLFCRLF included */
    size_t store_used;
    char store[HTTP_MAX_HEAD_CAP];
};

/* What http_upgrade_check finds wrong first, in this order. */
enum http_ws_check {
    HTTP_WS_OK = 0,
    HTTP_WS_NOT_GET,       /* 405 */
    HTTP_WS_NOT_HTTP11,    /* 505 */
    HTTP_WS_NO_HOST,       /* 400 */
    HTTP_WS_NO_UPGRADE,    /* 400: Upgrade does not list websocket */
    HTTP_WS_NO_CONNECTION, /* 400: Connection does not list upgrade */
    HTTP_WS_BAD_KEY,       /* 400: missing, or not base64 of 16 bytes */
    HTTP_WS_NO_VERSION,    /* 400 */
    HTTP_WS_BAD_VERSION,   /* 426 with Sec-WebSocket-Version: 13 */
};

void http_limits_default(struct http_limits *lim);

/*
 * Parses the request head at the start of buf.  HTTP_INCOMPLETE until the
 * CRLFCRLF that ends it has arrived (call again with more bytes); *out is
 * complete only on HTTP_OK, and bytes after out->head_len are not looked
 * at.  Strict: bare LF, obs-fold, whitespace before a colon, control
 * characters, duplicate Host/Upgrade/Connection/Sec-WebSocket-* /Origin
 * headers, any Transfer-Encoding and a non-zero Content-Length are 400.
 */
enum http_result http_upgrade_parse(const uint8_t *buf, size_t len, const struct http_limits *lim,
                                    struct http_request *out);

/* The value of the first header called name (case-insensitive), or NULL. */
const char *http_request_header(const struct http_request *r, const char *name);

/* Whether an OK-parsed request is a WebSocket upgrade pgnear accepts. */
enum http_ws_check http_upgrade_check(const struct http_request *r);

/* The HTTP status to answer an error result or a failed check with. */
int http_result_status(enum http_result rc);
int http_ws_check_status(enum http_ws_check c);

/* Sec-WebSocket-Accept for key; out is "" when key is absurdly long. */
void http_ws_accept(const char *key, char out[HTTP_WS_ACCEPT_LEN]);

/*
 * A whole HTTP/1.1 response with Connection: close, a short text body and
 * extra_headers (NULL, or lines each ending in CRLF) for 200, 400, 403,
 * 404, 405, 408, 426, 431, 503 and 505.  Returns its length, or 0 when the status is
 * not one of those or cap is too small.
 */
size_t http_response(char *out, size_t cap, int status, const char *extra_headers);

/* The 101 answer; protocol_or_null is the one subprotocol chosen. */
size_t http_switching_protocols(char *out, size_t cap, const char *accept,
                                const char *protocol_or_null);

#endif /* PGNEAR_PROTOCOL_HTTP_UPGRADE_H */
