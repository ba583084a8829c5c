/*
 * json.c — a strict JSON reader (RFC 8259) into a flat array of nodes.
 *
 * A recursive descent over the text, bounded by max_depth (so the C stack
 * is too).  The node array is allocated once, before parsing: every node
 * but the first has its own first byte and a separator or closing bracket
 * of its container that no other node counts, so a text of len bytes
 * holds at most (len + 1) / 2 nodes.
 */
#include "protocol/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/hex.h"
#include "protocol/utf8.h"

struct parser {
    const uint8_t *s;
    size_t len;
    size_t pos;
    struct json_node *nodes;
    uint32_t count;
    uint32_t cap;
    unsigned depth;
    unsigned max_depth;
    size_t err_pos;
};

static int parse_value(struct parser *p);

/* Notes where the text went wrong and returns code, so a parser writes return fail(...). */
static int fail(struct parser *p, int code, size_t pos)
{
    p->err_pos = pos;
    return code;
}

/* JSON's four whitespace bytes (RFC 8259: not \f or \v, unlike C's isspace). */
static bool is_ws(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Moves past whitespace. */
static void skip_ws(struct parser *p)
{
    while (p->pos < p->len && is_ws(p->s[p->pos]))
        p->pos++;
}

/* An ASCII digit, whatever the locale. */
static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* A new node of type at byte start; its index in *idx. */
static int add_node(struct parser *p, uint8_t type, size_t start, uint32_t *idx)
{
    struct json_node *n;

    if (p->count >= p->cap)
        return fail(p, JSON_EVALUES, start);
    *idx = p->count++;
    n = &p->nodes[*idx];
    n->start = (uint32_t)start;
    n->len = 0;
    n->next = JSON_NONE;
    n->count = 0;
    n->type = type;
    return JSON_OK;
}

/* Four hexadecimal digits at byte at, into *v. */
static int scan_hex4(struct parser *p, size_t at, uint32_t *v)
{
    *v = 0;
    for (size_t k = 0; k < 4; k++) {
        int d;
        if (at + k >= p->len)
            return fail(p, JSON_EEND, p->len);
        d = hex_digit_value(p->s[at + k]);
        if (d < 0)
            return fail(p, JSON_EESCAPE, at + k);
        *v = *v << 4 | (uint32_t)d;
    }
    return JSON_OK;
}

/* A \u escape at *i (its backslash), with the low half of a pair if it is a high surrogate. */
static int scan_unicode(struct parser *p, size_t *i)
{
    size_t at = *i;
    uint32_t cp, lo;
    int rc = scan_hex4(p, at + 2, &cp);

    if (rc != JSON_OK)
        return rc;
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return fail(p, JSON_ESURROGATE, at);
    if (cp < 0xD800 || cp > 0xDBFF) {
        *i = at + 6;
        return JSON_OK;
    }
    for (size_t k = 0; k < 2; k++) {
        if (at + 6 + k >= p->len)
            return fail(p, JSON_EEND, p->len);
        if (p->s[at + 6 + k] != "\\u"[k])
            return fail(p, JSON_ESURROGATE, at);
    }
    rc = scan_hex4(p, at + 8, &lo);
    if (rc != JSON_OK)
        return rc;
    if (lo < 0xDC00 || lo > 0xDFFF)
        return fail(p, JSON_ESURROGATE, at);
    *i = at + 12;
    return JSON_OK;
}

/* An escape at *i (its backslash); *i moves past it. */
static int scan_escape(struct parser *p, size_t *i)
{
    uint8_t c;

    if (*i + 1 >= p->len)
        return fail(p, JSON_EEND, p->len);
    c = p->s[*i + 1];
    if (c == 'u')
        return scan_unicode(p, i);
    if (strchr("\"\\/bfnrt", c) == NULL || c == '\0')
        return fail(p, JSON_EESCAPE, *i);
    *i += 2;
    return JSON_OK;
}

/*
 * A string at p->pos (its opening quote), checked (escapes, control bytes,
 * UTF-8) but not decoded: count 1 marks one with an escape, which
 * json_string_eq and json_string_copy decode as they read.
 */
static int parse_string(struct parser *p)
{
    uint32_t idx;
    size_t i = p->pos + 1;
    bool escaped = false;
    int rc = add_node(p, JSON_STRING, i, &idx);

    while (rc == JSON_OK) {
        uint8_t c;
        size_t k;

        if (i >= p->len)
            return fail(p, JSON_EEND, p->len);
        c = p->s[i];
        if (c == '"')
            break;
        if (c == '\\') {
            escaped = true;
            rc = scan_escape(p, &i);
            continue;
        }
        if (c < 0x20)
            return fail(p, JSON_ECONTROL, i);
        k = utf8_seq_len(p->s + i, p->len - i);
        if (k == 0)
            return fail(p, JSON_EUTF8, i);
        i += k;
    }
    if (rc != JSON_OK)
        return rc;
    p->nodes[idx].len = (uint32_t)(i - p->nodes[idx].start);
    p->nodes[idx].count = escaped ? 1 : 0;
    p->pos = i + 1;
    return JSON_OK;
}

/* One or more digits at *i; *i moves past them. */
static int scan_digits(struct parser *p, size_t *i)
{
    if (*i >= p->len)
        return fail(p, JSON_EEND, p->len);
    if (!is_digit(p->s[*i]))
        return fail(p, JSON_ENUMBER, *i);
    while (*i < p->len && is_digit(p->s[*i]))
        (*i)++;
    return JSON_OK;
}

/* -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)? */
static int parse_number(struct parser *p)
{
    uint32_t idx;
    size_t i = p->pos;
    int rc = add_node(p, JSON_NUMBER, i, &idx);

    if (rc == JSON_OK && p->s[i] == '-')
        i++;
    if (rc == JSON_OK && i < p->len && p->s[i] == '0') {
        i++;
        if (i < p->len && is_digit(p->s[i]))
            return fail(p, JSON_ENUMBER, i); /* a leading zero */
    } else if (rc == JSON_OK) {
        rc = scan_digits(p, &i);
    }
    if (rc == JSON_OK && i < p->len && p->s[i] == '.') {
        i++;
        rc = scan_digits(p, &i);
    }
    if (rc == JSON_OK && i < p->len && (p->s[i] == 'e' || p->s[i] == 'E')) {
        i++;
        if (i < p->len && (p->s[i] == '+' || p->s[i] == '-'))
            i++;
        rc = scan_digits(p, &i);
    }
    if (rc != JSON_OK)
        return rc;
    p->nodes[idx].len = (uint32_t)(i - p->pos);
    p->pos = i;
    return JSON_OK;
}

/* true, false or null at p->pos, spelled exactly. */
static int parse_literal(struct parser *p, const char *word, uint8_t type)
{
    size_t n = strlen(word);
    uint32_t idx;

    for (size_t k = 0; k < n; k++) {
        if (p->pos + k >= p->len)
            return fail(p, JSON_EEND, p->len);
        if (p->s[p->pos + k] != (uint8_t)word[k])
            return fail(p, JSON_ESYNTAX, p->pos + k);
    }
    if (add_node(p, type, p->pos, &idx) != JSON_OK)
        return JSON_EVALUES;
    p->nodes[idx].len = (uint32_t)n;
    p->pos += n;
    return JSON_OK;
}

/* After an element or member: ',' (true in *more) or the closing bracket. */
static int after_item(struct parser *p, uint8_t close, bool *more)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, JSON_EEND, p->len);
    if (p->s[p->pos] == ',') {
        p->pos++;
        *more = true;
        return JSON_OK;
    }
    if (p->s[p->pos] != close)
        return fail(p, JSON_ESYNTAX, p->pos);
    *more = false;
    return JSON_OK;
}

/* Opens a container at p->pos: the node, the depth, and whether it is empty. */
static int open_container(struct parser *p, uint8_t type, uint8_t close, uint32_t *idx, bool *empty)
{
    int rc;

    if (p->depth >= p->max_depth)
        return fail(p, JSON_EDEPTH, p->pos);
    rc = add_node(p, type, p->pos, idx);
    if (rc != JSON_OK)
        return rc;
    p->depth++;
    p->pos++;
    skip_ws(p);
    *empty = p->pos < p->len && p->s[p->pos] == close;
    return JSON_OK;
}

/* Ends the container idx at its closing bracket (p->pos): its length and one level less deep. */
static void close_container(struct parser *p, uint32_t idx)
{
    p->pos++;
    p->nodes[idx].len = (uint32_t)(p->pos - p->nodes[idx].start);
    p->depth--;
}

/* An array at p->pos, its elements chained by next. */
static int parse_array(struct parser *p)
{
    uint32_t idx, prev = JSON_NONE;
    bool empty, more = true;
    int rc = open_container(p, JSON_ARRAY, ']', &idx, &empty);

    if (rc != JSON_OK)
        return rc;
    while (!empty && more) {
        uint32_t child = p->count;

        rc = parse_value(p);
        if (rc != JSON_OK)
            return rc;
        if (prev != JSON_NONE)
            p->nodes[prev].next = child;
        prev = child;
        p->nodes[idx].count++;
        rc = after_item(p, ']', &more);
        if (rc != JSON_OK)
            return rc;
    }
    close_container(p, idx);
    return JSON_OK;
}

/* A member's key and ':' (the value follows). */
static int parse_key(struct parser *p)
{
    int rc;

    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, JSON_EEND, p->len);
    if (p->s[p->pos] != '"')
        return fail(p, JSON_ESYNTAX, p->pos);
    rc = parse_string(p);
    if (rc != JSON_OK)
        return rc;
    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, JSON_EEND, p->len);
    if (p->s[p->pos] != ':')
        return fail(p, JSON_ESYNTAX, p->pos);
    p->pos++;
    return JSON_OK;
}

/* An object at p->pos: each member a key node followed by its value, the keys chained by next. */
static int parse_object(struct parser *p)
{
    uint32_t idx, prev = JSON_NONE;
    bool empty, more = true;
    int rc = open_container(p, JSON_OBJECT, '}', &idx, &empty);

    if (rc != JSON_OK)
        return rc;
    while (!empty && more) {
        uint32_t key = p->count;

        rc = parse_key(p);
        if (rc == JSON_OK)
            rc = parse_value(p);
        if (rc != JSON_OK)
            return rc;
        if (prev != JSON_NONE)
            p->nodes[prev].next = key;
        prev = key;
        p->nodes[idx].count++;
        rc = after_item(p, '}', &more);
        if (rc != JSON_OK)
            return rc;
    }
    close_container(p, idx);
    return JSON_OK;
}

/* Any value at p->pos, after whitespace; the containers recurse, at most max_depth deep. */
static int parse_value(struct parser *p)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, JSON_EEND, p->len);
    switch (p->s[p->pos]) {
    case '{':
        return parse_object(p);
    case '[':
        return parse_array(p);
    case '"':
        return parse_string(p);
    case 't':
        return parse_literal(p, "true", JSON_TRUE);
    case 'f':
        return parse_literal(p, "false", JSON_FALSE);
    case 'n':
        return parse_literal(p, "null", JSON_NULL);
    default:
        if (p->s[p->pos] == '-' || is_digit(p->s[p->pos]))
            return parse_number(p);
        return fail(p, JSON_ESYNTAX, p->pos);
    }
}

/* *err, when the caller asked for one. */
static void set_error(struct json_error *err, int code, size_t pos)
{
    if (err != NULL) {
        err->code = code;
        err->pos = pos;
    }
}

int json_parse(const char *text, size_t len, const struct json_limits *limits, struct json_doc *doc,
               struct json_error *err)
{
    struct parser p = {.s = (const uint8_t *)text, .len = len};
    uint32_t max_values = limits && limits->max_values ? limits->max_values : JSON_VALUES_DEFAULT;
    int rc;

    memset(doc, 0, sizeof(*doc));
    set_error(err, JSON_OK, 0);
    if (len >= UINT32_MAX) {
        set_error(err, JSON_ETOOBIG, 0);
        return JSON_ETOOBIG;
    }
    p.max_depth = limits && limits->max_depth ? limits->max_depth : JSON_DEPTH_DEFAULT;
    if (p.max_depth > JSON_DEPTH_MAX)
        p.max_depth = JSON_DEPTH_MAX;
    p.cap = (uint32_t)(len / 2 + 1);
    if (p.cap > max_values)
        p.cap = max_values;
    p.nodes = calloc(p.cap, sizeof(*p.nodes));
    if (p.nodes == NULL) {
        set_error(err, JSON_ENOMEM, 0);
        return JSON_ENOMEM;
    }
    rc = parse_value(&p);
    if (rc == JSON_OK) {
        skip_ws(&p);
        if (p.pos != len)
            rc = fail(&p, JSON_ETRAILING, p.pos);
    }
    if (rc != JSON_OK) {
        free(p.nodes);
        set_error(err, rc, p.err_pos);
        return rc;
    }
    doc->text = text;
    doc->len = len;
    doc->nodes = p.nodes;
    doc->count = p.count;
    return JSON_OK;
}

void json_free(struct json_doc *doc)
{
    free(doc->nodes);
    memset(doc, 0, sizeof(*doc));
}

const char *json_strerror(int code)
{
    switch (code) {
    case JSON_OK:
        return "no error";
    case JSON_ENOMEM:
        return "out of memory";
    case JSON_ETOOBIG:
        return "text too long";
    case JSON_EEND:
        return "unexpected end of text";
    case JSON_ESYNTAX:
        return "unexpected character";
    case JSON_ETRAILING:
        return "unexpected text after the value";
    case JSON_EDEPTH:
        return "nested too deep";
    case JSON_EVALUES:
        return "too many values";
    case JSON_ENUMBER:
        return "malformed number";
    case JSON_ECONTROL:
        return "control character in a string";
    case JSON_EESCAPE:
        return "invalid escape in a string";
    case JSON_ESURROGATE:
        return "unpaired surrogate in a string";
    case JSON_EUTF8:
        return "invalid UTF-8 in a string";
    case JSON_ETYPE:
        return "value of another type";
    case JSON_ERANGE:
        return "number out of range";
    case JSON_ETRUNC:
        return "string too long";
    case JSON_ENUL:
        return "string with a NUL character";
    default:
        return "unknown error";
    }
}

/* ---- reading a parsed document ---- */

/*
 * The node at index node, NULL past the end or on an empty document: every
 * reader checks through it.
 */
static const struct json_node *node_at(const struct json_doc *doc, uint32_t node)
{
    if (doc->nodes == NULL || node >= doc->count)
        return NULL;
    return &doc->nodes[node];
}

int json_type_of(const struct json_doc *doc, uint32_t node)
{
    const struct json_node *n = node_at(doc, node);

    return n ? n->type : -1;
}

uint32_t json_first(const struct json_doc *doc, uint32_t node)
{
    const struct json_node *n = node_at(doc, node);

    if (n == NULL || (n->type != JSON_ARRAY && n->type != JSON_OBJECT) || n->count == 0)
        return JSON_NONE;
    return node + 1;
}

/* The next element or key after node, as the parse chained them. */
uint32_t json_next(const struct json_doc *doc, uint32_t node)
{
    const struct json_node *n = node_at(doc, node);

    return n ? n->next : JSON_NONE;
}

/* A key's value: the node right after it (parse_object puts it there). */
uint32_t json_value_of(const struct json_doc *doc, uint32_t key)
{
    const struct json_node *n = node_at(doc, key);

    if (n == NULL || n->type != JSON_STRING || key + 1 >= doc->count)
        return JSON_NONE;
    return key + 1;
}

uint32_t json_count(const struct json_doc *doc, uint32_t node)
{
    const struct json_node *n = node_at(doc, node);

    if (n == NULL || (n->type != JSON_ARRAY && n->type != JSON_OBJECT))
        return 0;
    return n->count;
}

/* The four hexadecimal digits at s, which json_parse has checked. */
static uint32_t hex4(const uint8_t *s)
{
    uint32_t v = 0;

    for (int k = 0; k < 4; k++)
        v = v << 4 | (uint32_t)hex_digit_value(s[k]);
    return v;
}

/*
 * The decoded bytes of a checked string's next character or escape at *i
 * (below end), into out; *i moves past it.  Raw bytes come one at a time.
 */
static size_t decode_next(const uint8_t *s, size_t *i, uint8_t out[4])
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    uint32_t cp;

    if (s[*i] != '\\') {
        out[0] = s[(*i)++];
        return 1;
    }
    if (s[*i + 1] != 'u') {
        out[0] = (uint8_t)to[strchr(from, s[*i + 1]) - from];
        *i += 2;
        return 1;
    }
    cp = hex4(s + *i + 2);
    *i += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(s + *i + 2) - 0xDC00);
        *i += 6;
    }
    return utf8_put(cp, out);
}

bool json_string_eq(const struct json_doc *doc, uint32_t node, const char *s, size_t n)
{
    const struct json_node *nd = node_at(doc, node);
    const uint8_t *t;
    size_t i, end, got = 0;

    if (nd == NULL || nd->type != JSON_STRING)
        return false;
    t = (const uint8_t *)doc->text;
    i = nd->start;
    end = (size_t)nd->start + nd->len;
    if (nd->count == 0)
        return nd->len == n && memcmp(t + i, s, n) == 0;
    while (i < end) {
        uint8_t out[4];
        size_t k = decode_next(t, &i, out);

        if (got + k > n || memcmp(out, s + got, k) != 0)
            return false;
        got += k;
    }
    return got == n;
}

int json_string_copy(const struct json_doc *doc, uint32_t node, char *dst, size_t cap, size_t *len)
{
    const struct json_node *nd = node_at(doc, node);
    size_t i, end, got = 0;
    int rc = JSON_OK;

    if (cap > 0)
        dst[0] = '\0';
    if (nd == NULL || nd->type != JSON_STRING)
        return JSON_ETYPE;
    i = nd->start;
    end = (size_t)nd->start + nd->len;
    while (i < end) {
        uint8_t out[4];
        size_t k = decode_next((const uint8_t *)doc->text, &i, out);

        if (memchr(out, 0, k) != NULL)
            rc = JSON_ENUL;
        else if (rc == JSON_OK && (cap == 0 || got + k > cap - 1))
            rc = JSON_ETRUNC;
        if (rc == JSON_OK)
            memcpy(dst + got, out, k);
        got += k;
    }
    if (len != NULL)
        *len = got;
    if (cap > 0)
        dst[rc == JSON_OK ? got : 0] = '\0';
    return rc;
}

int json_number_text(const struct json_doc *doc, uint32_t node, const char **text, size_t *len)
{
    const struct json_node *nd = node_at(doc, node);

    if (nd == NULL || nd->type != JSON_NUMBER)
        return JSON_ETYPE;
    *text = doc->text + nd->start;
    *len = nd->len;
    return JSON_OK;
}

int json_int64(const struct json_doc *doc, uint32_t node, int64_t *out)
{
    const char *t;
    size_t n, i = 0;
    uint64_t v = 0, limit;
    bool neg;

    if (json_number_text(doc, node, &t, &n) != JSON_OK)
        return JSON_ETYPE;
    neg = t[0] == '-';
    i = neg ? 1 : 0;
    limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < n; i++) {
        unsigned d;

        if (!is_digit((uint8_t)t[i]))
            return JSON_ERANGE; /* a fraction or an exponent */
        d = (unsigned)(t[i] - '0');
        if (v > (limit - d) / 10)
            return JSON_ERANGE;
        v = v * 10 + d;
    }
    if (neg)
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    else
        *out = (int64_t)v;
    return JSON_OK;
}

/*
 * strtod reads the checked text, NUL-terminated in a copy, in the C locale
 * (pgnear never calls setlocale).  A magnitude too small for a double
 * reads as zero or a subnormal, which is not an error.
 */
int json_double(const struct json_doc *doc, uint32_t node, double *out)
{
    char small[128], *buf = small;
    const char *t;
    size_t n;
    double v;

    if (json_number_text(doc, node, &t, &n) != JSON_OK)
        return JSON_ETYPE;
    if (n >= sizeof(small)) {
        buf = malloc(n + 1);
        if (buf == NULL)
            return JSON_ENOMEM;
    }
    memcpy(buf, t, n);
    buf[n] = '\0';
    v = strtod(buf, NULL);
    if (buf != small)
        free(buf);
    if (isinf(v) || isnan(v))
        return JSON_ERANGE;
    *out = v;
    return JSON_OK;
}

int json_bool(const struct json_doc *doc, uint32_t node, bool *out)
{
    int type = json_type_of(doc, node);

    if (type != JSON_TRUE && type != JSON_FALSE)
        return JSON_ETYPE;
    *out = type == JSON_TRUE;
    return JSON_OK;
}

uint32_t json_get(const struct json_doc *doc, uint32_t object, const char *key)
{
    size_t n = strlen(key);

    if (json_type_of(doc, object) != JSON_OBJECT)
        return JSON_NONE;
    for (uint32_t k = json_first(doc, object); k != JSON_NONE; k = json_next(doc, k))
        if (json_string_eq(doc, k, key, n))
            return k + 1;
    return JSON_NONE;
}
