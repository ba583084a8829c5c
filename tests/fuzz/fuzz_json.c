/*
 * fuzz_json.c
 *    libFuzzer target for protocol/json.c: the input is the text, parsed
 *    with the first byte (when there is one) picking small limits for
 *    some runs.  Besides not crashing: a failure names a byte within the
 *    input and leaves nothing allocated; a document has at most
 *    (len + 1) / 2 nodes, each within the text; a walk over every
 *    container finds as many children as it says, reaching every node
 *    once; each string decodes to well-formed UTF-8 that json_string_eq
 *    agrees with; numbers read without crashing; parsing again gives the
 *    same nodes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/json.h"
#include "protocol/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static void check_string(const struct json_doc *doc, uint32_t node)
{
    char buf[256];
    size_t len;
    int rc = json_string_copy(doc, node, buf, sizeof(buf), &len);

    check(rc == JSON_OK || rc == JSON_ENUL || rc == JSON_ETRUNC);
    if (rc != JSON_OK) {
        check(buf[0] == '\0');
        check(rc != JSON_ETRUNC || len >= sizeof(buf));
        return;
    }
    check(strlen(buf) == len && len < sizeof(buf));
    check(utf8_invalid_at((const uint8_t *)buf, len) == len);
    check(json_string_eq(doc, node, buf, len));
    check(len == 0 || !json_string_eq(doc, node, buf, len - 1));
}

static void check_scalar(const struct json_doc *doc, uint32_t node)
{
    int64_t n;
    double d;
    bool b;
    int type = json_type_of(doc, node);

    if (type == JSON_STRING)
        check_string(doc, node);
    if (type == JSON_NUMBER) {
        int rc = json_int64(doc, node, &n);
        check(rc == JSON_OK || rc == JSON_ERANGE);
        rc = json_double(doc, node, &d);
        check(rc == JSON_OK || rc == JSON_ERANGE);
    }
    check((json_bool(doc, node, &b) == JSON_OK) == (type == JSON_TRUE || type == JSON_FALSE));
}

/* Walks node's subtree; returns the index after it (nodes are in document order). */
static uint32_t walk(const struct json_doc *doc, uint32_t node)
{
    uint32_t seen = 0, next = node + 1;
    int type = json_type_of(doc, node);

    check(type >= JSON_NULL && type <= JSON_OBJECT);
    check((size_t)doc->nodes[node].start + doc->nodes[node].len <= doc->len);
    check_scalar(doc, node);
    for (uint32_t c = json_first(doc, node); c != JSON_NONE; c = json_next(doc, c)) {
        check(c == next);
        if (type == JSON_OBJECT) {
            check(json_type_of(doc, c) == JSON_STRING);
            check_string(doc, c);
            check(json_value_of(doc, c) == c + 1);
            next = walk(doc, c + 1);
        } else {
            next = walk(doc, c);
        }
        seen++;
    }
    check(seen == json_count(doc, node));
    return next;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_limits limits = {0, 0};
    struct json_doc doc, again;
    struct json_error err;
    int rc;

    if (size > 0 && data[0] == 'L') {
        limits.max_depth = 3;
        limits.max_values = 8;
    }
    rc = json_parse((const char *)data, size, &limits, &doc, &err);
    check(rc == err.code);
    if (rc != JSON_OK) {
        check(rc < 0 && err.pos <= size && doc.nodes == NULL);
        return 0;
    }
    check(doc.count >= 1 && doc.count <= (size + 1) / 2);
    check(walk(&doc, 0) == doc.count);
    check(json_parse((const char *)data, size, &limits, &again, &err) == JSON_OK);
    check(again.count == doc.count);
    check(memcmp(again.nodes, doc.nodes, doc.count * sizeof(*doc.nodes)) == 0);
    json_free(&again);
    json_free(&doc);
    return 0;
}
