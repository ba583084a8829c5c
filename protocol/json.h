/*
 * json.h — a small strict JSON reader (RFC 8259) over a buffer and a
 * length, for what pgnear reads from HTTP APIs (Patroni's GET /cluster).
 *
 * json_parse checks the whole text and records its values in a flat array
 * of nodes, allocated once and bounded by the input's length, in document
 * order: a container is followed by its elements (an object by each
 * member's key, then its value), each element's subtree before the next
 * element.  Nothing is decoded while parsing: a node keeps the offset and
 * length of its text in the caller's buffer, which must outlive the
 * document.  The helpers decode on demand: strings into a caller's buffer
 * with a cap, numbers as int64 or double with range checks.
 *
 * Strict means: one value with optional whitespace (space, tab, LF, CR)
 * around it, nothing after it; no byte order mark, comments, trailing
 * commas, single quotes, NaN or Infinity, leading zeros or "+" in numbers;
 * strings with no raw control character, well-formed UTF-8 and escapes
 * (\uXXXX surrogates only in pairs).  Nesting is at most max_depth arrays
 * and objects deep, and the document at most max_values values (keys
 * included).  Duplicate keys are not refused: json_get finds the first.
 */
#ifndef PGNEAR_PROTOCOL_JSON_H
#define PGNEAR_PROTOCOL_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Defaults of struct json_limits (0 there means these). */
#define JSON_DEPTH_DEFAULT  32
#define JSON_VALUES_DEFAULT 65536
/* The most a caller may ask for. */
#define JSON_DEPTH_MAX 256

/* "No node": the end of an iteration, a key that is absent. */
#define JSON_NONE UINT32_MAX

enum json_result {
    JSON_OK = 0,
    JSON_ENOMEM = -1,      /* the node array could not be allocated */
    JSON_ETOOBIG = -2,     /* the input is over 4 GB */
    JSON_EEND = -3,        /* the text ends inside a value, or has none */
    JSON_ESYNTAX = -4,     /* a byte that cannot come there */
    JSON_ETRAILING = -5,   /* something after the value */
    JSON_EDEPTH = -6,      /* nested deeper than max_depth */
    JSON_EVALUES = -7,     /* more than max_values values */
    JSON_ENUMBER = -8,     /* a malformed number */
    JSON_ECONTROL = -9,    /* a raw control character in a string */
    JSON_EESCAPE = -10,    /* an unknown escape, or \u without four hex digits */
    JSON_ESURROGATE = -11, /* a \u surrogate that is not half of a pair */
    JSON_EUTF8 = -12,      /* a string that is not well-formed UTF-8 */
    /* from the helpers */
    JSON_ETYPE = -13,  /* the node is not of the type asked for */
    JSON_ERANGE = -14, /* a number outside the range asked for, or not an integer */
    JSON_ETRUNC = -15, /* a string longer than the caller's buffer */
    JSON_ENUL = -16,   /* a string with U+0000 in it, asked for as a C string */
};

enum json_type {
    JSON_NULL,
    JSON_FALSE,
    JSON_TRUE,
    JSON_NUMBER,
    JSON_STRING,
    JSON_ARRAY,
    JSON_OBJECT,
};

struct json_limits {
    unsigned max_depth;  /* 0: JSON_DEPTH_DEFAULT; at most JSON_DEPTH_MAX */
    uint32_t max_values; /* 0: JSON_VALUES_DEFAULT */
};

struct json_node {
    uint32_t start; /* offset of its first byte (a string's: just after the quote) */
    uint32_t len;   /* its length (a string's: between the quotes, escapes as written) */
    uint32_t next;  /* the next element, or next member's key, of its container; JSON_NONE */
    uint32_t count; /* array: elements; object: members; string: 1 when it has escapes */
    uint8_t type;   /* enum json_type */
};

struct json_doc {
    const char *text; /* the caller's buffer */
    size_t len;
    struct json_node *nodes; /* nodes[0] is the value; NULL until parsed */
    uint32_t count;
};

/* Where parsing failed: the code and the offset of the byte at fault. */
struct json_error {
    int code;
    size_t pos;
};

/*
 * Parses len bytes at text into doc (limits may be NULL: the defaults).
 * Returns JSON_OK, or an enum json_result with *err (may be NULL) saying
 * where; then doc holds nothing to free.  On JSON_OK, json_free(doc).
 */
int json_parse(const char *text, size_t len, const struct json_limits *limits, struct json_doc *doc,
               struct json_error *err);
/* Frees what json_parse read; doc is empty after. */
void json_free(struct json_doc *doc);

/* "unexpected character" and the like, for any enum json_result. */
const char *json_strerror(int code);

/* The type of a node, or -1 for JSON_NONE and indexes past the end. */
int json_type_of(const struct json_doc *doc, uint32_t node);

/*
 * Iteration: the first element of an array, or the key of an object's
 * first member; json_next the next one (from a key, the next key); both
 * JSON_NONE at the end, and for a node that is not a container.  A key's
 * value is json_value_of(key), the node after it.
 */
uint32_t json_first(const struct json_doc *doc, uint32_t node);
uint32_t json_next(const struct json_doc *doc, uint32_t node);
uint32_t json_value_of(const struct json_doc *doc, uint32_t key);
/* The number of elements or members of a container; 0 for anything else. */
uint32_t json_count(const struct json_doc *doc, uint32_t node);

/* The value of object's first member named key (NUL-terminated); JSON_NONE if none. */
uint32_t json_get(const struct json_doc *doc, uint32_t object, const char *key);

/* Whether a string node, decoded, is the n bytes at s. */
bool json_string_eq(const struct json_doc *doc, uint32_t node, const char *s, size_t n);

/*
 * Decodes a string node into dst as a C string of at most cap - 1 bytes.
 * Returns JSON_OK, JSON_ETYPE, JSON_ENUL (U+0000 in it) or JSON_ETRUNC;
 * on an error dst is "" (when cap > 0).  *len (may be NULL) is the
 * decoded length, also on JSON_ETRUNC.
 */
int json_string_copy(const struct json_doc *doc, uint32_t node, char *dst, size_t cap, size_t *len);

/* A number's text as written (JSON_ETYPE for anything else). */
int json_number_text(const struct json_doc *doc, uint32_t node, const char **text, size_t *len);

/*
 * A number as an int64: JSON_ERANGE unless written as an integer (no
 * fraction, no exponent) from INT64_MIN to INT64_MAX.
 */
int json_int64(const struct json_doc *doc, uint32_t node, int64_t *out);

/* A number as a double: JSON_ERANGE when its magnitude is too large for one. */
int json_double(const struct json_doc *doc, uint32_t node, double *out);

/* true or false (JSON_ETYPE for anything else). */
int json_bool(const struct json_doc *doc, uint32_t node, bool *out);

#endif /* PGNEAR_PROTOCOL_JSON_H */
