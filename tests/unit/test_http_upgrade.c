/*
 * test_http_upgrade.c
 *    Unit tests for protocol/http_upgrade.c (cmocka, TAP output): real
 *    browser and Neon serverless driver requests, each error the parser
 *    reports, every split point of a request, the limits at and one past
 *    their bound, header lookup, the accept key and the answers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/http_upgrade.h"

#define CRLF "\r\n"

static const char browser_req[] =
    "GET /v2?address=ep-cool-name.eu-central-1.aws.neon.tech:5432 HTTP/1.1" CRLF
    "Host: proxy.example.com" CRLF "Connection: Upgrade" CRLF "Pragma: no-cache" CRLF
    "Cache-Control: no-cache" CRLF
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36" CRLF "Upgrade: websocket" CRLF
    "Origin: https://app.example.com" CRLF "Sec-WebSocket-Version: 13" CRLF
    "Accept-Encoding: gzip, deflate, br" CRLF "Accept-Language: en-US,en;q=0.9" CRLF
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" CRLF
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits" CRLF
    "cf-ipcity: Frankfurt am Main" CRLF CRLF;

/* What the Neon serverless driver's ws package sends (Node.js). */
static const char neon_req[] =
    "GET /v2?address=db.example.com:5432 HTTP/1.1" CRLF "Sec-WebSocket-Version: 13" CRLF
    "Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==" CRLF "Connection: Upgrade" CRLF
    "Upgrade: websocket" CRLF "Sec-WebSocket-Extensions: permessage-deflate; "
    "client_max_window_bits" CRLF "Host: proxy.example.com" CRLF CRLF;

static struct http_request req; /* large: not on the stack */
static struct http_request req2;

static enum http_result parse_lim(const char *s, const struct http_limits *lim)
{
    return http_upgrade_parse((const uint8_t *)s, strlen(s), lim, &req);
}

static enum http_result parse(const char *s)
{
    struct http_limits lim;

    http_limits_default(&lim);
    return parse_lim(s, &lim);
}

/* A valid upgrade with one line (CRLF included) inserted after the Host line. */
static enum http_result parse_with(const char *line)
{
    char buf[2048];

    snprintf(buf, sizeof(buf),
             "GET / HTTP/1.1" CRLF "Host: h" CRLF "%s"
             "Upgrade: websocket" CRLF "Connection: Upgrade" CRLF
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" CRLF
             "Sec-WebSocket-Version: 13" CRLF CRLF,
             line);
    return parse(buf);
}

static void test_browser_request(void **state)
{
    (void)state;
    assert_int_equal(parse(browser_req), HTTP_OK);
    assert_int_equal(req.head_len, strlen(browser_req));
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.path, "/v2");
    assert_string_equal(req.query, "address=ep-cool-name.eu-central-1.aws.neon.tech:5432");
    assert_string_equal(req.host, "proxy.example.com");
    assert_string_equal(req.origin, "https://app.example.com");
    assert_string_equal(req.ws_key, "dGhlIHNhbXBsZSBub25jZQ==");
    assert_string_equal(req.ws_version, "13");
    assert_null(req.ws_protocol);
    assert_true(req.upgrade_websocket);
    assert_true(req.connection_upgrade);
    assert_int_equal(req.n_headers, 13);
    assert_string_equal(http_request_header(&req, "cf-ipcity"), "Frankfurt am Main");
    assert_int_equal(http_upgrade_check(&req), HTTP_WS_OK);
}

static void test_neon_request(void **state)
{
    char buf[512];

    (void)state;
    assert_int_equal(parse(neon_req), HTTP_OK);
    assert_int_equal(req.head_len, strlen(neon_req));
    assert_string_equal(req.path, "/v2");
    assert_string_equal(req.query, "address=db.example.com:5432");
    assert_string_equal(req.host, "proxy.example.com");
    assert_null(req.origin);
    assert_int_equal(http_upgrade_check(&req), HTTP_WS_OK);
    /* bytes after the head (a first WebSocket frame) are not looked at */
    snprintf(buf, sizeof(buf), "%s\x82\x85garbage\n", neon_req);
    assert_int_equal(parse(buf), HTTP_OK);
    assert_int_equal(req.head_len, strlen(neon_req));
}

static void test_no_query(void **state)
{
    (void)state;
    assert_int_equal(parse("GET /healthz HTTP/1.1" CRLF "Host: x" CRLF CRLF), HTTP_OK);
    assert_string_equal(req.path, "/healthz");
    assert_null(req.query);
    assert_int_equal(http_upgrade_check(&req), HTTP_WS_NO_UPGRADE);
    assert_int_equal(parse("GET /a? HTTP/1.1" CRLF CRLF), HTTP_OK);
    assert_string_equal(req.path, "/a");
    assert_string_equal(req.query, "");
    assert_int_equal(http_upgrade_check(&req), HTTP_WS_NO_HOST);
}

static void test_malformed_request_line(void **state)
{
    static const char *const bad[] = {
        CRLF CRLF, /* empty request line */
        "GET" CRLF CRLF,
        "GET /" CRLF CRLF,
        "GET  / HTTP/1.1" CRLF CRLF,
        "GET / HTTP/1.1 " CRLF CRLF,
        "GET /  HTTP/1.1" CRLF CRLF,
        " GET / HTTP/1.1" CRLF CRLF,
        "GET x HTTP/1.1" CRLF CRLF,
        "GET http://h/ HTTP/1.1" CRLF CRLF,
        "GET /a#frag HTTP/1.1" CRLF CRLF,
        "GET /a\x01 HTTP/1.1" CRLF CRLF,
        "GET /\x80 HTTP/1.1" CRLF CRLF,
        "G(T / HTTP/1.1" CRLF CRLF,
        "GET / HTTP/1.10" CRLF CRLF,
        "GET / http/1.1" CRLF CRLF,
        "GET / HTTP/11" CRLF CRLF,
        "GET / HTTP/1.x" CRLF CRLF,
        "GET\t/ HTTP/1.1" CRLF CRLF,
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i]) != HTTP_BAD_REQUEST)
            fail_msg("accepted request %zu: %s", i, bad[i]);
    }
}

static void test_method_and_version(void **state)
{
    (void)state;
    assert_int_equal(parse("POST / HTTP/1.1" CRLF CRLF), HTTP_NOT_GET);
    assert_int_equal(parse("get / HTTP/1.1" CRLF CRLF), HTTP_NOT_GET);
    assert_int_equal(parse("HEAD / HTTP/1.1" CRLF CRLF), HTTP_NOT_GET);
    assert_int_equal(parse("GET / HTTP/1.0" CRLF CRLF), HTTP_VERSION);
    assert_int_equal(parse("GET / HTTP/2.0" CRLF CRLF), HTTP_VERSION);
    assert_int_equal(parse("GET / HTTP/0.9" CRLF CRLF), HTTP_VERSION);
    /* the version is judged before the method */
    assert_int_equal(parse("POST / HTTP/1.0" CRLF CRLF), HTTP_VERSION);
    /* decided as soon as the request line is whole */
    assert_int_equal(parse("POST / HTTP/1.1" CRLF "Host"), HTTP_NOT_GET);
    assert_int_equal(http_result_status(HTTP_NOT_GET), 405);
    assert_int_equal(http_result_status(HTTP_VERSION), 505);
    assert_int_equal(http_result_status(HTTP_TOO_LARGE), 431);
    assert_int_equal(http_result_status(HTTP_BAD_REQUEST), 400);
}

static void test_malformed_headers(void **state)
{
    static const char *const bad[] = {
        "Host2 : x" CRLF,                                   /* space before the colon */
        "Host2\t: x" CRLF,                                  /* tab before the colon */
        " folded" CRLF,                                     /* obs-fold */
        "X-A: a" CRLF "\tfolded" CRLF,                      /* obs-fold */
        "NoColon" CRLF,                                     /* no colon */
        ": novalue" CRLF,                                   /* empty name */
        "X(A): b" CRLF,                                     /* not a token */
        "X\x80: b" CRLF,                                    /* not a token */
        "X-A: a\x01 b" CRLF,                                /* control character */
        "X-A: a\x7f" CRLF,                                  /* DEL */
        "X-A: a\rb" CRLF,                                   /* bare CR */
        "X-A: a\nX-B: b" CRLF,                              /* bare LF */
        "Host: h2" CRLF,                                    /* duplicate Host */
        "HOST: h" CRLF,                                     /* duplicate Host, other case */
        "Upgrade: websocket" CRLF,                          /* duplicate Upgrade */
        "Connection: keep-alive" CRLF,                      /* duplicate Connection */
        "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==" CRLF, /* duplicate key */
        "Sec-WebSocket-Version: 13" CRLF,                   /* duplicate version */
        "Content-Length: 5" CRLF,                           /* a body */
        "Content-Length: -0" CRLF,                          /* not a length */
        "Content-Length: " CRLF,                            /* not a length */
        "Content-Length: 0" CRLF "Content-Length: 0" CRLF,
        "Transfer-Encoding: chunked" CRLF,  /* a body */
        "Transfer-Encoding: identity" CRLF, /* any transfer coding */
        "Origin: a" CRLF "Origin: b" CRLF,
        "Sec-WebSocket-Protocol: a" CRLF "Sec-WebSocket-Protocol: b" CRLF,
    };

    (void)state;
    assert_int_equal(parse_with(""), HTTP_OK); /* the base request is fine */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse_with(bad[i]) != HTTP_BAD_REQUEST)
            fail_msg("accepted header %zu: %s", i, bad[i]);
    }
    /* a bare LF ending the request line, and one ending the head */
    assert_int_equal(parse("GET / HTTP/1.1\nHost: h" CRLF CRLF), HTTP_BAD_REQUEST);
    assert_int_equal(parse("GET / HTTP/1.1" CRLF "Host: h" CRLF "\n"), HTTP_BAD_REQUEST);
    assert_int_equal(parse("GET / HTTP/1.1" CRLF "Host: h\n\n"), HTTP_BAD_REQUEST);
    /* a zero Content-Length, empty values and obs-text are allowed */
    assert_int_equal(parse_with("Content-Length: 00" CRLF "X-Empty:" CRLF "X-Sp:   " CRLF
                                "X-Utf8: M\xc3\xbcnchen" CRLF),
                     HTTP_OK);
    assert_string_equal(http_request_header(&req, "x-empty"), "");
    assert_string_equal(http_request_header(&req, "x-sp"), "");
    assert_string_equal(http_request_header(&req, "x-utf8"), "M\xc3\xbcnchen");
    /* a control character in the value of an unknown header, tab allowed */
    assert_int_equal(parse_with("X-Tab: a\tb" CRLF), HTTP_OK);
    assert_string_equal(http_request_header(&req, "X-Tab"), "a\tb");
    assert_int_equal(http_upgrade_parse((const uint8_t *)"GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26,
                                        &(struct http_limits){4096, 64, 8192}, &req),
                     HTTP_BAD_REQUEST);
}

static void test_trimming_and_lookup(void **state)
{
    (void)state;
    assert_int_equal(parse_with("X-Forwarded-For: \t 203.0.113.7, 10.0.0.1 \t" CRLF
                                "CF-IPCity:Berlin" CRLF "X-Multi: one" CRLF "x-multi: two" CRLF),
                     HTTP_OK);
    assert_string_equal(http_request_header(&req, "x-forwarded-for"), "203.0.113.7, 10.0.0.1");
    assert_string_equal(http_request_header(&req, "X-FORWARDED-FOR"), "203.0.113.7, 10.0.0.1");
    assert_string_equal(http_request_header(&req, "cf-ipcity"), "Berlin");
    assert_string_equal(http_request_header(&req, "X-MULTI"), "one"); /* the first */
    assert_string_equal(http_request_header(&req, "upgrade"), "websocket");
    assert_string_equal(http_request_header(&req, "HOST"), "h");
    assert_null(http_request_header(&req, "cf-ipcountry"));
    assert_null(http_request_header(&req, "X-Forwarded"));
    assert_null(http_request_header(&req, "X-Forwarded-For-"));
}

static void test_token_lists(void **state)
{
    char buf[512];
    static const struct {
        const char *upgrade, *connection;
        bool up, conn;
    } cases[] = {
        {"websocket", "Upgrade", true, true},
        {"WebSocket", "upgrade", true, true},
        {"h2c, websocket", "keep-alive, Upgrade", true, true},
        {" , websocket ,", "Upgrade ,", true, true},
        {"websocket/13", "upgrades", false, false},
        {"web socket", "keep-alive", false, false},
        {"websockets", "Upgrade-Insecure", false, false},
        {"", "", false, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf),
                 "GET / HTTP/1.1" CRLF "Host: h" CRLF "Upgrade: %s" CRLF "Connection: %s" CRLF CRLF,
                 cases[i].upgrade, cases[i].connection);
        assert_int_equal(parse(buf), HTTP_OK);
        assert_int_equal(req.upgrade_websocket, cases[i].up);
        assert_int_equal(req.connection_upgrade, cases[i].conn);
    }
}

static enum http_ws_check check_of(const char *head)
{
    if (parse(head) != HTTP_OK)
        fail_msg("did not parse: %s", head);
    return http_upgrade_check(&req);
}

#define REQ_LINE "GET /v2 HTTP/1.1" CRLF
#define HOST     "Host: h" CRLF
#define UPG      "Upgrade: websocket" CRLF
#define CONN     "Connection: Upgrade" CRLF
#define KEY      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" CRLF
#define VER      "Sec-WebSocket-Version: 13" CRLF

static void test_upgrade_check(void **state)
{
    (void)state;
    assert_int_equal(check_of(REQ_LINE HOST UPG CONN KEY VER CRLF), HTTP_WS_OK);
    assert_int_equal(check_of(REQ_LINE UPG CONN KEY VER CRLF), HTTP_WS_NO_HOST);
    assert_int_equal(check_of(REQ_LINE "Host:" CRLF UPG CONN KEY VER CRLF), HTTP_WS_NO_HOST);
    assert_int_equal(check_of(REQ_LINE HOST CONN KEY VER CRLF), HTTP_WS_NO_UPGRADE);
    assert_int_equal(check_of(REQ_LINE HOST "Upgrade: h2c" CRLF CONN KEY VER CRLF),
                     HTTP_WS_NO_UPGRADE);
    assert_int_equal(check_of(REQ_LINE HOST UPG KEY VER CRLF), HTTP_WS_NO_CONNECTION);
    assert_int_equal(check_of(REQ_LINE HOST UPG "Connection: close" CRLF KEY VER CRLF),
                     HTTP_WS_NO_CONNECTION);
    assert_int_equal(check_of(REQ_LINE HOST UPG CONN VER CRLF), HTTP_WS_BAD_KEY);
    assert_int_equal(check_of(REQ_LINE HOST UPG CONN KEY CRLF), HTTP_WS_NO_VERSION);
    assert_int_equal(check_of(REQ_LINE HOST UPG CONN KEY "Sec-WebSocket-Version: 8" CRLF CRLF),
                     HTTP_WS_BAD_VERSION);
    assert_int_equal(check_of(REQ_LINE HOST UPG CONN KEY "Sec-WebSocket-Version: 013" CRLF CRLF),
                     HTTP_WS_BAD_VERSION);
    assert_int_equal(check_of(REQ_LINE HOST UPG CONN KEY "Sec-WebSocket-Version: 13, 8" CRLF CRLF),
                     HTTP_WS_BAD_VERSION);
    assert_int_equal(http_ws_check_status(HTTP_WS_OK), 101);
    assert_int_equal(http_ws_check_status(HTTP_WS_BAD_VERSION), 426);
    assert_int_equal(http_ws_check_status(HTTP_WS_BAD_KEY), 400);
    assert_int_equal(http_ws_check_status(HTTP_WS_NO_HOST), 400);
    assert_int_equal(http_ws_check_status(HTTP_WS_NOT_GET), 405);
    assert_int_equal(http_ws_check_status(HTTP_WS_NOT_HTTP11), 505);
    /* a request that never parsed OK is not an upgrade */
    assert_int_equal(parse("POST / HTTP/1.1" CRLF CRLF), HTTP_NOT_GET);
    assert_int_equal(http_upgrade_check(&req), HTTP_WS_NOT_GET);
}

static void test_keys(void **state)
{
    char buf[512];
    static const struct {
        const char *key;
        bool ok;
    } cases[] = {
        {"dGhlIHNhbXBsZSBub25jZQ==", true},
        {"AAAAAAAAAAAAAAAAAAAAAA==", true},
        {"/+/+/+/+/+/+/+/+/+/+/w==", true},
        {"dGhlIHNhbXBsZSBub25jZR==", false}, /* stray bits: not canonical */
        {"dGhlIHNhbXBsZSBub25jZQ=", false},
        {"dGhlIHNhbXBsZSBub25jZQ===", false},
        {"dGhlIHNhbXBsZSBub25jZQAA", false},
        {"dGhlIHNhbXBsZSBub25jZ===", false},
        {"dGhlIHNhbXBsZSBub25j-Q==", false}, /* base64url */
        {"dGhlIHNhbXBsZSBub25jZQ", false},
        {"", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(buf, sizeof(buf),
                 "GET / HTTP/1.1" CRLF HOST UPG CONN "Sec-WebSocket-Key: %s" CRLF VER CRLF,
                 cases[i].key);
        assert_int_equal(parse(buf), HTTP_OK);
        if ((http_upgrade_check(&req) == HTTP_WS_OK) != cases[i].ok)
            fail_msg("key %s judged wrongly", cases[i].key);
    }
}

static void test_protocol_header(void **state)
{
    char buf[1024], value[HTTP_WS_PROTOCOL_MAX + 2];

    (void)state;
    assert_int_equal(parse_with("Sec-WebSocket-Protocol:  chat, superchat " CRLF), HTTP_OK);
    assert_string_equal(req.ws_protocol, "chat, superchat");
    memset(value, 'p', sizeof(value) - 1);
    value[HTTP_WS_PROTOCOL_MAX] = '\0';
    snprintf(buf, sizeof(buf), "Sec-WebSocket-Protocol: %s" CRLF, value);
    assert_int_equal(parse_with(buf), HTTP_OK);
    assert_int_equal(strlen(req.ws_protocol), HTTP_WS_PROTOCOL_MAX);
    value[HTTP_WS_PROTOCOL_MAX] = 'p';
    value[HTTP_WS_PROTOCOL_MAX + 1] = '\0';
    snprintf(buf, sizeof(buf), "Sec-WebSocket-Protocol: %s" CRLF, value);
    assert_int_equal(parse_with(buf), HTTP_TOO_LARGE);
}

/* Every prefix is INCOMPLETE; the whole gives the same OK result. */
static void check_all_prefixes(const char *s)
{
    size_t len = strlen(s);
    struct http_limits lim;

    http_limits_default(&lim);
    assert_int_equal(http_upgrade_parse((const uint8_t *)s, len, &lim, &req2), HTTP_OK);
    for (size_t i = 0; i < len; i++) {
        if (http_upgrade_parse((const uint8_t *)s, i, &lim, &req) != HTTP_INCOMPLETE)
            fail_msg("prefix of %zu bytes not incomplete", i);
    }
    assert_int_equal(http_upgrade_parse((const uint8_t *)s, len, &lim, &req), HTTP_OK);
    assert_int_equal(req.head_len, req2.head_len);
    assert_int_equal(req.n_headers, req2.n_headers);
    assert_string_equal(req.path, req2.path);
    assert_string_equal(req.host, req2.host);
    assert_string_equal(req.ws_key, req2.ws_key);
    for (size_t i = 0; i < req.n_headers; i++) {
        assert_string_equal(req.headers[i].name, req2.headers[i].name);
        assert_string_equal(req.headers[i].value, req2.headers[i].value);
    }
    assert_int_equal(http_upgrade_check(&req), HTTP_WS_OK);
}

static void test_every_split(void **state)
{
    (void)state;
    check_all_prefixes(browser_req);
    check_all_prefixes(neon_req);
}

/* A request line of exactly n bytes (CRLF not counted), then "Host: h" and the end. */
static void long_line_request(char *buf, size_t n)
{
    size_t fixed = strlen("GET / HTTP/1.1");

    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', n - fixed);
    strcpy(buf + 5 + (n - fixed), " HTTP/1.1" CRLF "Host: h" CRLF CRLF);
}

/* A request with one header "X: " and n bytes of value. */
static void header_line_request(char *buf, size_t n)
{
    size_t off = (size_t)sprintf(buf, "GET / HTTP/1.1" CRLF "X: ");

    memset(buf + off, 'v', n);
    strcpy(buf + off + n, CRLF CRLF);
}

static void test_line_limit(void **state)
{
    char buf[300];
    struct http_limits lim = {.max_line = 100, .max_headers = 10, .max_head = 1000};

    (void)state;
    long_line_request(buf, 100);
    assert_int_equal(parse_lim(buf, &lim), HTTP_OK);
    long_line_request(buf, 101);
    assert_int_equal(parse_lim(buf, &lim), HTTP_TOO_LARGE);
    /* refused before any CRLF: 101 bytes of one line are enough */
    buf[101] = '\0';
    assert_int_equal(parse_lim(buf, &lim), HTTP_TOO_LARGE);
    buf[100] = '\0';
    assert_int_equal(parse_lim(buf, &lim), HTTP_INCOMPLETE);
    /* a header line at and past the limit */
    header_line_request(buf, 97);
    assert_int_equal(parse_lim(buf, &lim), HTTP_OK);
    assert_int_equal(strlen(http_request_header(&req, "x")), 97);
    header_line_request(buf, 98);
    assert_int_equal(parse_lim(buf, &lim), HTTP_TOO_LARGE);
}

static void test_header_count_limit(void **state)
{
    char buf[2048];
    size_t n;
    struct http_limits lim = {.max_line = 100, .max_headers = 10, .max_head = 2000};

    (void)state;
    n = (size_t)sprintf(buf, "GET / HTTP/1.1" CRLF);
    for (int i = 0; i < 10; i++)
        n += (size_t)sprintf(buf + n, "X-%d: %d" CRLF, i, i);
    strcpy(buf + n, CRLF);
    assert_int_equal(parse_lim(buf, &lim), HTTP_OK);
    assert_int_equal(req.n_headers, 10);
    assert_string_equal(http_request_header(&req, "x-9"), "9");
    n += (size_t)sprintf(buf + n, "X-10: 10" CRLF);
    strcpy(buf + n, CRLF);
    assert_int_equal(parse_lim(buf, &lim), HTTP_TOO_LARGE);
    /* refused as soon as the eleventh header line is whole */
    buf[n] = '\0';
    assert_int_equal(parse_lim(buf, &lim), HTTP_TOO_LARGE);
    /* the caller's limit is clamped to the array */
    lim.max_headers = 1000;
    lim.max_head = 100000;
    n = (size_t)sprintf(buf, "GET / HTTP/1.1" CRLF);
    for (int i = 0; i < HTTP_MAX_HEADERS + 1; i++)
        n += (size_t)sprintf(buf + n, "X%d:" CRLF, i);
    strcpy(buf + n, CRLF);
    assert_int_equal(parse_lim(buf, &lim), HTTP_TOO_LARGE);
}

static void test_head_limit(void **state)
{
    char buf[400];
    size_t base;
    struct http_limits lim = {.max_line = 200, .max_headers = 10, .max_head = 0};

    (void)state;
    /* "GET / HTTP/1.1\r\nX: vvv...\r\n\r\n": 16 + 3 + n + 4 bytes */
    base = strlen("GET / HTTP/1.1" CRLF "X: " CRLF CRLF);
    header_line_request(buf, 100);
    lim.max_head = base + 100;
    assert_int_equal(parse_lim(buf, &lim), HTTP_OK);
    assert_int_equal(req.head_len, base + 100);
    lim.max_head = base + 99;
    assert_int_equal(parse_lim(buf, &lim), HTTP_TOO_LARGE);
    /* refused before the end of the head arrives */
    buf[base + 99] = '\0';
    assert_int_equal(parse_lim(buf, &lim), HTTP_TOO_LARGE);
    buf[base + 98] = '\0';
    assert_int_equal(parse_lim(buf, &lim), HTTP_INCOMPLETE);
}

static void test_accept_key(void **state)
{
    char out[HTTP_WS_ACCEPT_LEN];
    char longkey[100];

    (void)state;
    /* RFC 6455 section 1.3's example */
    http_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    /* printf '%s' 'x3JJHMbDL1EzLkh9GBhXDw==258EAFA5-...' | openssl sha1 -binary | base64 */
    http_ws_accept("x3JJHMbDL1EzLkh9GBhXDw==", out);
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
    memset(longkey, 'k', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = '\0';
    http_ws_accept(longkey, out);
    assert_string_equal(out, "");
}

static void test_responses(void **state)
{
    char out[512], small[20];
    static const int statuses[] = {200, 400, 404, 405, 426, 431, 503, 505};
    size_t n;

    (void)state;
    n = http_response(out, sizeof(out), 426, "Sec-WebSocket-Version: 13\r\n");
    assert_int_equal(n, strlen(out));
    assert_string_equal(out, "HTTP/1.1 426 Upgrade Required\r\n"
                             "Connection: close\r\n"
                             "Content-Type: text/plain\r\n"
                             "Content-Length: 17\r\n"
                             "Sec-WebSocket-Version: 13\r\n"
                             "\r\n"
                             "Upgrade Required\n");
    n = http_response(out, sizeof(out), 200, NULL);
    assert_string_equal(out, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 3\r\n\r\nok\n");
    assert_int_equal(n, strlen(out));
    n = http_response(out, sizeof(out), 405, NULL);
    assert_non_null(strstr(out, "\r\nAllow: GET\r\n"));
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        char line[32];

        n = http_response(out, sizeof(out), statuses[i], NULL);
        assert_true(n > 0);
        snprintf(line, sizeof(line), "HTTP/1.1 %d ", statuses[i]);
        assert_memory_equal(out, line, strlen(line));
        /* the body is as long as Content-Length says */
        assert_int_equal(strlen(strstr(out, "\r\n\r\n") + 4),
                         strtoul(strstr(out, "Content-Length: ") + 16, NULL, 10));
    }
    assert_int_equal(http_response(out, sizeof(out), 302, NULL), 0);
    assert_int_equal(http_response(small, sizeof(small), 400, NULL), 0);
    n = http_switching_protocols(out, sizeof(out), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", NULL);
    assert_string_equal(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\n"
                             "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
    assert_int_equal(n, strlen(out));
    n = http_switching_protocols(out, sizeof(out), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", "chat");
    assert_non_null(strstr(out, "\r\nSec-WebSocket-Protocol: chat\r\n\r\n"));
    assert_int_equal(n, strlen(out));
    assert_int_equal(http_switching_protocols(small, sizeof(small), "x", NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_browser_request),
        cmocka_unit_test(test_neon_request),
        cmocka_unit_test(test_no_query),
        cmocka_unit_test(test_malformed_request_line),
        cmocka_unit_test(test_method_and_version),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_trimming_and_lookup),
        cmocka_unit_test(test_token_lists),
        cmocka_unit_test(test_upgrade_check),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_protocol_header),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_line_limit),
        cmocka_unit_test(test_header_count_limit),
        cmocka_unit_test(test_head_limit),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_responses),
    };

    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests_name("http_upgrade", tests, NULL, NULL);
}
