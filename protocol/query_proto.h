/*
 * query_proto.h — the query-phase messages of the v3 protocol, for a
 * session that answers clients the way a PostgreSQL server does (pgnear's
 * console), over the simple and the extended query protocol.
 *
 * Frontend messages (Query, Parse, Bind, Describe, Execute, Close, Sync,
 * Flush, Terminate) are parsed from the body of one message: what follows
 * the type byte and the length word, which the caller has already framed.
 * A parser checks the whole body before it succeeds — every count, length,
 * string, format code and name, and that nothing is left over — and fills
 * a struct of pointers into that body; nothing is allocated or copied, so
 * the body must outlive what was parsed from it.  On failure a parser
 * returns a negative QP_E* code and, when given one, fills a struct
 * qp_error from which qp_error_pg() makes PostgreSQL's error (pg_error.h).
 *
 * Backend messages are appended to a struct pktbuf (protocol/pkt.h), with
 * its sticky error.  The values that go into RowDescription and DataRow
 * (type OIDs, text and binary formats) are in protocol/query_values.h.
 */
#ifndef PGNEAR_PROTOCOL_QUERY_PROTO_H
#define PGNEAR_PROTOCOL_QUERY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/pkt.h"

struct pg_error;

/* Longest statement or portal name: NAMEDATALEN - 1. */
#define QP_NAME_MAX 63

#define QP_FORMAT_TEXT   0
#define QP_FORMAT_BINARY 1

/* ---- errors ---- */

enum qp_error_code {
    QP_OK = 0,
    QP_ETRUNCATED = -1,     /* a field runs past the end of the message */
    QP_ETRAILING = -2,      /* bytes after the last field */
    QP_ESTRING = -3,        /* a string without its NUL */
    QP_ECOUNT = -4,         /* a negative count */
    QP_EVALUELEN = -5,      /* a Bind parameter length below -1 */
    QP_EFORMATCODE = -6,    /* a format code other than 0 and 1 */
    QP_EFORMATCOUNT = -7,   /* Bind: parameter formats neither 0, 1 nor one each */
    QP_ERESULTFORMATS = -8, /* Bind: result formats neither 0, 1 nor one per column */
    QP_ESUBTYPE = -9,       /* Describe or Close of neither 'S' nor 'P' */
    QP_ENAMETOOLONG = -10,  /* a statement or portal name over QP_NAME_MAX bytes */
    QP_ETYPE = -11,         /* a message type qp_parse_message does not know */
};

struct qp_error {
    int code;         /* enum qp_error_code */
    int arg1, arg2;   /* the numbers its message shows */
    const char *what; /* "DESCRIBE" or "CLOSE"; "prepared statement" or "portal" */
};

/* Room for any message or detail qp_error_pg writes. */
#define QP_ERRTEXT_MAX 128

/*
 * Sets *out (pg_error.h) to the SQLSTATE, message and detail for err,
 * ready for pg_error_put(pb, 'E', "ERROR", out).  Where PostgreSQL refuses the same message, these
 * are its words and SQLSTATE: mostly 08P01 protocol_violation, 22023 invalid_parameter_value for a
 * format code.  A name over QP_NAME_MAX bytes is refused with 42622 name_too_long; PostgreSQL
 * instead keys its statements and portals by their first 63 bytes, so that longer names that share
 * those bytes silently collide.
 */
void qp_error_pg(const struct qp_error *err, struct pg_error *out);
/* A fixed description of code, for logs. */
const char *qp_strerror(int code);

/* ---- frontend messages ---- */

/* Query 'Q'. */
struct qp_query {
    const char *text; /* NUL-terminated at the message's last byte */
    size_t text_len;
};

/* Parse 'P'. */
struct qp_parse {
    const char *name; /* "" is the unnamed statement */
    const char *query;
    size_t query_len;
    int nparam_types;
    const uint8_t *param_types; /* nparam_types big-endian OIDs (0: unspecified) */
};

/* Bind 'B'.  The arrays are the message's own big-endian fields, all checked. */
struct qp_bind {
    const char *portal;
    const char *statement;
    int nparam_formats; /* 0, 1 or nparams */
    const uint8_t *param_formats;
    int nparams;
    const uint8_t *params; /* nparams × (int32 length, -1 for NULL; bytes) */
    size_t params_len;
    int nresult_formats; /* 0, 1 or (checked later) one per column */
    const uint8_t *result_formats;
};

/* One Bind parameter value, pointing into the message. */
struct qp_param {
    int index; /* from 0 */
    bool is_null;
    const uint8_t *data; /* NULL when is_null */
    size_t len;
    int16_t format; /* QP_FORMAT_TEXT or QP_FORMAT_BINARY */
};

struct qp_param_iter {
    const struct qp_bind *bind;
    const uint8_t *pos;
    size_t left;
    int next;
};

/* Describe 'D' and Close 'C'. */
struct qp_target {
    char kind; /* 'S' statement or 'P' portal */
    const char *name;
};

/* Execute 'E'. */
struct qp_execute {
    const char *portal;
    int32_t max_rows; /* 0 or less: all rows */
};

/*
 * Each parser takes one message body; err may be NULL.  Returns QP_OK or
 * a QP_E* code; *out is only meaningful after QP_OK.
 */
int qp_parse_query(const uint8_t *body, size_t len, struct qp_query *out, struct qp_error *err);
int qp_parse_parse(const uint8_t *body, size_t len, struct qp_parse *out, struct qp_error *err);
int qp_parse_bind(const uint8_t *body, size_t len, struct qp_bind *out, struct qp_error *err);
int qp_parse_describe(const uint8_t *body, size_t len, struct qp_target *out, struct qp_error *err);
int qp_parse_close(const uint8_t *body, size_t len, struct qp_target *out, struct qp_error *err);
int qp_parse_execute(const uint8_t *body, size_t len, struct qp_execute *out, struct qp_error *err);
/* Sync 'S', Flush 'H' and Terminate 'X' have no body. */
int qp_parse_empty(const uint8_t *body, size_t len, struct qp_error *err);

/* Any of the above by its type byte; QP_ETYPE for another type. */
struct qp_message {
    char type;
    union {
        struct qp_query query;
        struct qp_parse parse;
        struct qp_bind bind;
        struct qp_target target; /* Describe, Close */
        struct qp_execute execute;
    } u;
};
int qp_parse_message(char type, const uint8_t *body, size_t len, struct qp_message *out,
                     struct qp_error *err);

/* The i-th parameter type OID of a parsed Parse, 0 <= i < nparam_types. */
uint32_t qp_parse_param_type(const struct qp_parse *m, int i);

/* The format of parameter i / result column col, by the 0, 1 or one-each rule. */
int16_t qp_bind_param_format(const struct qp_bind *b, int i);
int16_t qp_bind_result_format(const struct qp_bind *b, int col);
/* Once the portal's column count is known: QP_OK or QP_ERESULTFORMATS. */
int qp_bind_check_result_formats(const struct qp_bind *b, int ncols, struct qp_error *err);

/* Walks the parameter values of a parsed Bind in order. */
void qp_param_iter_init(struct qp_param_iter *it, const struct qp_bind *b);
/* Fills *out with the next value; false after the last one. */
bool qp_param_iter_next(struct qp_param_iter *it, struct qp_param *out);
/* Parameter i (walking from the first); false when there is none. */
bool qp_bind_param(const struct qp_bind *b, int i, struct qp_param *out);

/* ---- backend messages ---- */

struct qp_column {
    const char *name;
    uint32_t type_oid;
    int16_t typlen;
    int32_t typmod; /* QP_TYPMOD_NONE unless the type has a modifier */
    int16_t format; /* QP_FORMAT_TEXT or QP_FORMAT_BINARY */
};

/* A DataRow value; data may be NULL when len is 0 or is_null. */
struct qp_datum {
    const void *data;
    size_t len;
    bool is_null;
};

/* Counts above 32767 (int16) or values over 2 GiB fail the builder. */
void qp_put_row_description(struct pktbuf *pb, const struct qp_column *cols, int ncols);
void qp_put_data_row(struct pktbuf *pb, const struct qp_datum *vals, int nvals);
void qp_put_command_complete(struct pktbuf *pb, const char *tag);
void qp_put_parameter_description(struct pktbuf *pb, const uint32_t *oids, int noids);
void qp_put_empty_query_response(struct pktbuf *pb);
void qp_put_parse_complete(struct pktbuf *pb);
void qp_put_bind_complete(struct pktbuf *pb);
void qp_put_close_complete(struct pktbuf *pb);
void qp_put_no_data(struct pktbuf *pb);
void qp_put_portal_suspended(struct pktbuf *pb);
/* ReadyForQuery, ParameterStatus and BackendKeyData are in pkt.h. */

#endif
