/*
 * fuzz_http_upgrade.c
 *    libFuzzer target for protocol/http_upgrade.c.  The first three bytes
 *    pick the limits (line, header count, head), the rest is the request.
 *    Besides not crashing: an OK parse's head ends in CRLFCRLF within the
 *    input; every shorter prefix is INCOMPLETE and the head alone parses
 *    the same; every string handed out lies in the request's store, the
 *    header values are trimmed and the names are found again by lookup.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/http_upgrade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Large: kept off the stack. */
static struct http_request req, again;

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

/* s is NULL or a NUL-terminated string wholly inside r's used store. */
static void check_in_store(const struct http_request *r, const char *s)
{
    if (s == NULL)
        return;
    check(s >= r->store && s < r->store + r->store_used);
    check(memchr(s, '\0', (size_t)(r->store + r->store_used - s)) != NULL);
}

static void check_strings(const struct http_request *r, const struct http_limits *lim)
{
    check(r->store_used <= sizeof(r->store));
    check(r->n_headers <= lim->max_headers && r->n_headers <= HTTP_MAX_HEADERS);
    check(r->method != NULL && r->path != NULL && r->path[0] == '/');
    check_in_store(r, r->method);
    check_in_store(r, r->path);
    check_in_store(r, r->query);
    check_in_store(r, r->host);
    check_in_store(r, r->ws_key);
    check_in_store(r, r->ws_version);
    check_in_store(r, r->ws_protocol);
    check_in_store(r, r->origin);
    for (size_t i = 0; i < r->n_headers; i++) {
        const char *name = r->headers[i].name, *value = r->headers[i].value;
        size_t vlen;

        check_in_store(r, name);
        check_in_store(r, value);
        check(name[0] != '\0' && strlen(name) <= lim->max_line);
        vlen = strlen(value);
        check(vlen <= lim->max_line);
        check(vlen == 0 || (value[0] != ' ' && value[0] != '\t' && value[vlen - 1] != ' ' &&
                            value[vlen - 1] != '\t'));
        check(http_request_header(r, name) != NULL);
    }
}

/* Prefixes shorter than the head are INCOMPLETE; the head alone is the same OK. */
static void check_prefixes(const uint8_t *buf, const struct http_limits *lim)
{
    size_t head = req.head_len, step = head <= 256 ? 1 : head / 64;

    for (size_t i = 0; i < head; i += step)
        check(http_upgrade_parse(buf, i, lim, &again) == HTTP_INCOMPLETE);
    check(http_upgrade_parse(buf, head - 1, lim, &again) == HTTP_INCOMPLETE);
    check(http_upgrade_parse(buf, head, lim, &again) == HTTP_OK);
    check(again.head_len == head && again.n_headers == req.n_headers);
    check(again.store_used == req.store_used);
    check(memcmp(again.store, req.store, req.store_used) == 0);
}

static void exercise_answers(const struct http_request *r)
{
    char accept[HTTP_WS_ACCEPT_LEN], out[512];
    enum http_ws_check c = http_upgrade_check(r);

    if (c == HTTP_WS_OK) {
        http_ws_accept(r->ws_key, accept);
        check(strlen(accept) == 28);
        check(http_switching_protocols(out, sizeof(out), accept, r->ws_protocol) > 0);
    } else {
        check(http_response(out, sizeof(out), http_ws_check_status(c), NULL) > 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_limits lim;
    enum http_result rc;

    if (size < 3)
        return 0;
    lim.max_line = 8 + (size_t)data[0] * 16;
    lim.max_headers = data[1] % (HTTP_MAX_HEADERS + 10);
    lim.max_head = 16 + (size_t)data[2] * 64;
    data += 3;
    size -= 3;
    rc = http_upgrade_parse(data, size, &lim, &req);
    check(rc >= HTTP_VERSION && rc <= HTTP_OK);
    if (rc != HTTP_OK) {
        check(http_result_status(rc) >= 400 || rc == HTTP_INCOMPLETE);
        return 0;
    }
    check(req.head_len >= 4 && req.head_len <= size && req.head_len <= lim.max_head);
    check(memcmp(data + req.head_len - 4, "\r\n\r\n", 4) == 0);
    if (lim.max_headers > HTTP_MAX_HEADERS)
        lim.max_headers = HTTP_MAX_HEADERS;
    check_strings(&req, &lim);
    check_prefixes(data, &lim);
    exercise_answers(&req);
    return 0;
}
