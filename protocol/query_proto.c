/*
 * query_proto.c — parsers of the frontend query messages, their errors,
 * and builders of the backend replies (values are in query_values.c).
 *
 * Every parser reads with a struct pktreader, so no field is trusted: a
 * count or a length only ever makes the reader ask for bytes, and the
 * reader refuses what the body does not have.  Checks run in the order
 * PostgreSQL's own reads would meet the fault.
 */
#include "protocol/query_proto.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "protocol/pg_error.h"

/* ---- errors ---- */

/*
 * Records the error's code and arguments (when err is given) and returns code,
 * so a parser can return it at once.
 */
static int qp_fail(struct qp_error *err, int code, int arg1, int arg2, const char *what)
{
    if (err != NULL) {
        err->code = code;
        err->arg1 = arg1;
        err->arg2 = arg2;
        err->what = what;
    }
    return code;
}

const char *qp_strerror(int code)
{
    switch (code) {
    case QP_OK:
        return "no error";
    case QP_ETRUNCATED:
        return "insufficient data left in message";
    case QP_ETRAILING:
        return "invalid message format";
    case QP_ESTRING:
        return "invalid string in message";
    case QP_ECOUNT:
        return "negative count in message";
    case QP_EVALUELEN:
        return "invalid parameter length in bind message";
    case QP_EFORMATCODE:
        return "unsupported format code";
    case QP_EFORMATCOUNT:
        return "bind message parameter formats do not match its parameters";
    case QP_ERESULTFORMATS:
        return "bind message result formats do not match the columns";
    case QP_ESUBTYPE:
        return "invalid message subtype";
    case QP_ENAMETOOLONG:
        return "statement or portal name too long";
    case QP_ETYPE:
        return "invalid frontend message type";
    }
    return "unknown query message error";
}

/* The errmsg, and the errdetail ("" for none), of err. */
static void qp_error_texts(const struct qp_error *err, char *msg, char *detail, size_t cap)
{
    const char *what = err->what != NULL ? err->what : "?";
    detail[0] = '\0';
    switch (err->code) {
    case QP_ECOUNT:
        snprintf(msg, cap, "invalid message format");
        snprintf(detail, cap, "The message has a negative count (%d).", err->arg1);
        break;
    case QP_EVALUELEN:
        /* PostgreSQL's words when a length below -1 asks for bytes. */
        snprintf(msg, cap, "insufficient data left in message");
        snprintf(detail, cap, "Bind parameter %d has length %d.", err->arg2, err->arg1);
        break;
    case QP_EFORMATCODE:
        snprintf(msg, cap, "unsupported format code: %d", err->arg1);
        break;
    case QP_EFORMATCOUNT:
        snprintf(msg, cap, "bind message has %d parameter formats but %d parameters", err->arg1,
                 err->arg2);
        break;
    case QP_ERESULTFORMATS:
        snprintf(msg, cap, "bind message has %d result formats but query has %d columns", err->arg1,
                 err->arg2);
        break;
    case QP_ESUBTYPE:
        snprintf(msg, cap, "invalid %s message subtype %d", what, err->arg1);
        break;
    case QP_ENAMETOOLONG:
        snprintf(msg, cap, "%s name is too long", what);
        snprintf(detail, cap, "The name is %d bytes long; the limit is %d bytes.", err->arg1,
                 QP_NAME_MAX);
        break;
    case QP_ETYPE:
        snprintf(msg, cap, "invalid frontend message type %d", err->arg1);
        break;
    default:
        snprintf(msg, cap, "%s", qp_strerror(err->code));
        break;
    }
}

void qp_error_pg(const struct qp_error *err, struct pg_error *out)
{
    char message[QP_ERRTEXT_MAX], detail[QP_ERRTEXT_MAX];
    const char *sqlstate = "08P01"; /* protocol_violation */
    qp_error_texts(err, message, detail, sizeof(message));
    if (err->code == QP_EFORMATCODE)
        sqlstate = "22023"; /* invalid_parameter_value */
    else if (err->code == QP_ENAMETOOLONG)
        sqlstate = "42622"; /* name_too_long */
    pg_error_set(out, sqlstate, "%s", message);
    if (detail[0] != '\0')
        pg_error_detail(out, "%s", detail);
}

/* ---- reading fields ---- */

/* A big-endian int16 at p, unchecked: the caller has read the bytes already. */
static uint16_t qp_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/*
 * A NUL-terminated string, its length without the NUL; QP_ESTRING when no NUL
 * ends it within the body.
 */
static int qp_read_string(struct pktreader *r, const char **s, size_t *len, struct qp_error *err)
{
    if (pkt_remaining(r) == 0) /* and a NULL body of length 0 is never searched */
        return qp_fail(err, QP_ESTRING, 0, 0, NULL);
    size_t start = r->pos;
    *s = pkt_get_cstr(r);
    if (r->failed)
        return qp_fail(err, QP_ESTRING, 0, 0, NULL);
    *len = r->pos - start - 1;
    return QP_OK;
}

/* A statement or portal name; what names it in the error. */
static int qp_read_name(struct pktreader *r, const char **name, const char *what,
                        struct qp_error *err)
{
    size_t len;
    int rc = qp_read_string(r, name, &len, err);
    if (rc == QP_OK && len > QP_NAME_MAX)
        return qp_fail(err, QP_ENAMETOOLONG, (int)(len > INT_MAX ? INT_MAX : len), 0, what);
    return rc;
}

/* An int16 count, which must not be negative. */
static int qp_read_count(struct pktreader *r, int *count, struct qp_error *err)
{
    if (pkt_remaining(r) < 2)
        return qp_fail(err, QP_ETRUNCATED, 0, 0, NULL);
    int16_t n = (int16_t)pkt_get_u16(r);
    if (n < 0)
        return qp_fail(err, QP_ECOUNT, n, 0, NULL);
    *count = n;
    return QP_OK;
}

/* n items of size bytes each, in place (not copied); QP_ETRUNCATED when the body is shorter. */
static int qp_read_array(struct pktreader *r, size_t n, size_t size, const uint8_t **at,
                         struct qp_error *err)
{
    *at = pkt_get_bytes(r, n * size);
    return *at != NULL ? QP_OK : qp_fail(err, QP_ETRUNCATED, 0, 0, NULL);
}

/* A count and that many int16 format codes, each 0 or 1. */
static int qp_read_formats(struct pktreader *r, int *n, const uint8_t **codes, struct qp_error *err)
{
    int rc = qp_read_count(r, n, err);
    if (rc == QP_OK)
        rc = qp_read_array(r, (size_t)*n, 2, codes, err);
    for (int i = 0; rc == QP_OK && i < *n; i++) {
        int16_t code = (int16_t)qp_be16(*codes + 2 * i);
        if (code != QP_FORMAT_TEXT && code != QP_FORMAT_BINARY)
            rc = qp_fail(err, QP_EFORMATCODE, code, 0, NULL);
    }
    return rc;
}

/*
 * A message must end where its fields do: bytes left over are QP_ETRAILING, as
 * PostgreSQL refuses them.
 */
static int qp_read_end(const struct pktreader *r, struct qp_error *err)
{
    return pkt_remaining(r) == 0 ? QP_OK : qp_fail(err, QP_ETRAILING, 0, 0, NULL);
}

/* ---- frontend messages ---- */

int qp_parse_query(const uint8_t *body, size_t len, struct qp_query *out, struct qp_error *err)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    int rc = qp_read_string(&r, &out->text, &out->text_len, err);
    return rc != QP_OK ? rc : qp_read_end(&r, err);
}

/* Parse ('P'): name, query, parameter types; the strings and the types point into body. */
int qp_parse_parse(const uint8_t *body, size_t len, struct qp_parse *out, struct qp_error *err)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    int rc = qp_read_name(&r, &out->name, "prepared statement", err);
    if (rc == QP_OK)
        rc = qp_read_string(&r, &out->query, &out->query_len, err);
    if (rc == QP_OK)
        rc = qp_read_count(&r, &out->nparam_types, err);
    if (rc == QP_OK)
        rc = qp_read_array(&r, (size_t)out->nparam_types, 4, &out->param_types, err);
    return rc != QP_OK ? rc : qp_read_end(&r, err);
}

/* nparams × (int32 length, bytes): -1 is NULL, below that is an error. */
static int qp_read_param_values(struct pktreader *r, struct qp_bind *out, struct qp_error *err)
{
    size_t start = r->pos;
    out->params = r->p + r->pos;
    for (int i = 0; i < out->nparams; i++) {
        if (pkt_remaining(r) < 4)
            return qp_fail(err, QP_ETRUNCATED, 0, 0, NULL);
        int32_t plen = (int32_t)pkt_get_u32(r);
        if (plen == -1)
            continue;
        if (plen < -1)
            return qp_fail(err, QP_EVALUELEN, plen, i + 1, NULL);
        if (pkt_get_bytes(r, (size_t)plen) == NULL)
            return qp_fail(err, QP_ETRUNCATED, 0, 0, NULL);
    }
    out->params_len = r->pos - start;
    return QP_OK;
}

/*
 * Bind ('B'): the format counts checked against the parameters as PostgreSQL
 * checks them; values point into body.
 */
int qp_parse_bind(const uint8_t *body, size_t len, struct qp_bind *out, struct qp_error *err)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    int rc = qp_read_name(&r, &out->portal, "portal", err);
    if (rc == QP_OK)
        rc = qp_read_name(&r, &out->statement, "prepared statement", err);
    if (rc == QP_OK)
        rc = qp_read_formats(&r, &out->nparam_formats, &out->param_formats, err);
    if (rc == QP_OK)
        rc = qp_read_count(&r, &out->nparams, err);
    if (rc == QP_OK && out->nparam_formats > 1 && out->nparam_formats != out->nparams)
        rc = qp_fail(err, QP_EFORMATCOUNT, out->nparam_formats, out->nparams, NULL);
    if (rc == QP_OK)
        rc = qp_read_param_values(&r, out, err);
    if (rc == QP_OK)
        rc = qp_read_formats(&r, &out->nresult_formats, &out->result_formats, err);
    return rc != QP_OK ? rc : qp_read_end(&r, err);
}

/* Describe and Close: kind byte and name; what is "DESCRIBE" or "CLOSE". */
static int qp_parse_target(const uint8_t *body, size_t len, struct qp_target *out, const char *what,
                           struct qp_error *err)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    if (pkt_remaining(&r) < 1)
        return qp_fail(err, QP_ETRUNCATED, 0, 0, NULL);
    out->kind = (char)pkt_get_u8(&r);
    size_t name_len;
    int rc = qp_read_string(&r, &out->name, &name_len, err);
    if (rc == QP_OK)
        rc = qp_read_end(&r, err);
    if (rc != QP_OK)
        return rc;
    if (out->kind != 'S' && out->kind != 'P')
        return qp_fail(err, QP_ESUBTYPE, (uint8_t)out->kind, 0, what);
    if (name_len > QP_NAME_MAX)
        return qp_fail(err, QP_ENAMETOOLONG, (int)(name_len > INT_MAX ? INT_MAX : name_len), 0,
                       out->kind == 'S' ? "prepared statement" : "portal");
    return QP_OK;
}

/* Describe ('D'): a statement or a portal. */
int qp_parse_describe(const uint8_t *body, size_t len, struct qp_target *out, struct qp_error *err)
{
    return qp_parse_target(body, len, out, "DESCRIBE", err);
}

/* Close ('C'): a statement or a portal. */
int qp_parse_close(const uint8_t *body, size_t len, struct qp_target *out, struct qp_error *err)
{
    return qp_parse_target(body, len, out, "CLOSE", err);
}

/* Execute ('E'): the portal and max_rows (0: all rows). */
int qp_parse_execute(const uint8_t *body, size_t len, struct qp_execute *out, struct qp_error *err)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    int rc = qp_read_name(&r, &out->portal, "portal", err);
    if (rc != QP_OK)
        return rc;
    if (pkt_remaining(&r) < 4)
        return qp_fail(err, QP_ETRUNCATED, 0, 0, NULL);
    out->max_rows = (int32_t)pkt_get_u32(&r);
    return qp_read_end(&r, err);
}

int qp_parse_empty(const uint8_t *body, size_t len, struct qp_error *err)
{
    (void)body;
    return len == 0 ? QP_OK : qp_fail(err, QP_ETRAILING, 0, 0, NULL);
}

/* Any query-phase message by its type; QP_ETYPE for a type the protocol does not send here. */
int qp_parse_message(char type, const uint8_t *body, size_t len, struct qp_message *out,
                     struct qp_error *err)
{
    out->type = type;
    switch (type) {
    case 'Q':
        return qp_parse_query(body, len, &out->u.query, err);
    case 'P':
        return qp_parse_parse(body, len, &out->u.parse, err);
    case 'B':
        return qp_parse_bind(body, len, &out->u.bind, err);
    case 'D':
        return qp_parse_describe(body, len, &out->u.target, err);
    case 'C':
        return qp_parse_close(body, len, &out->u.target, err);
    case 'E':
        return qp_parse_execute(body, len, &out->u.execute, err);
    case 'S':
    case 'H':
    case 'X':
        return qp_parse_empty(body, len, err);
    }
    return qp_fail(err, QP_ETYPE, (uint8_t)type, 0, NULL);
}

/* ---- parsed messages ---- */

uint32_t qp_parse_param_type(const struct qp_parse *m, int i)
{
    if (i < 0 || i >= m->nparam_types)
        return 0;
    return pkt_be32(m->param_types + 4 * (size_t)i);
}

/* No codes: all text; one: for all; else one each (i past them: text). */
static int16_t qp_format_of(int n, const uint8_t *codes, int i)
{
    if (n == 0 || i < 0)
        return QP_FORMAT_TEXT;
    if (n == 1)
        return (int16_t)qp_be16(codes);
    return i < n ? (int16_t)qp_be16(codes + 2 * (size_t)i) : QP_FORMAT_TEXT;
}

int16_t qp_bind_param_format(const struct qp_bind *b, int i)
{
    return qp_format_of(b->nparam_formats, b->param_formats, i);
}

/* The format the client asked for column col: none (text), one for all, or one each. */
int16_t qp_bind_result_format(const struct qp_bind *b, int col)
{
    return qp_format_of(b->nresult_formats, b->result_formats, col);
}

int qp_bind_check_result_formats(const struct qp_bind *b, int ncols, struct qp_error *err)
{
    if (b->nresult_formats > 1 && b->nresult_formats != ncols)
        return qp_fail(err, QP_ERESULTFORMATS, b->nresult_formats, ncols, NULL);
    return QP_OK;
}

void qp_param_iter_init(struct qp_param_iter *it, const struct qp_bind *b)
{
    it->bind = b;
    it->pos = b->params;
    it->left = b->params_len;
    it->next = 0;
}

/* The parse checked every length; the walk checks again, so it never leaves params. */
bool qp_param_iter_next(struct qp_param_iter *it, struct qp_param *out)
{
    if (it->next >= it->bind->nparams || it->left < 4)
        return false;
    int32_t plen = (int32_t)pkt_be32(it->pos);
    if (plen < -1 || (plen > 0 && (size_t)plen > it->left - 4))
        return false;
    out->index = it->next;
    out->format = qp_bind_param_format(it->bind, it->next);
    out->is_null = plen == -1;
    out->data = out->is_null ? NULL : it->pos + 4;
    out->len = out->is_null ? 0 : (size_t)plen;
    it->pos += 4 + out->len;
    it->left -= 4 + out->len;
    it->next++;
    return true;
}

bool qp_bind_param(const struct qp_bind *b, int i, struct qp_param *out)
{
    struct qp_param_iter it;
    qp_param_iter_init(&it, b);
    while (qp_param_iter_next(&it, out))
        if (out->index == i)
            return true;
    return false;
}

/* ---- backend messages ---- */

/* An int16 count field; a count it cannot hold fails the builder. */
static bool qp_put_count(struct pktbuf *pb, int n)
{
    if (n < 0 || n > INT16_MAX) {
        pkt_fail(pb);
        return false;
    }
    pkt_put_u16(pb, (uint16_t)n);
    return true;
}

void qp_put_row_description(struct pktbuf *pb, const struct qp_column *cols, int ncols)
{
    pkt_begin(pb, 'T');
    if (qp_put_count(pb, ncols)) {
        for (int i = 0; i < ncols; i++) {
            pkt_put_cstr(pb, cols[i].name);
            pkt_put_u32(pb, 0); /* table OID: not a table's column */
            pkt_put_u16(pb, 0); /* attribute number */
            pkt_put_u32(pb, cols[i].type_oid);
            pkt_put_u16(pb, (uint16_t)cols[i].typlen);
            pkt_put_u32(pb, (uint32_t)cols[i].typmod);
            pkt_put_u16(pb, (uint16_t)cols[i].format);
        }
    }
    pkt_end(pb);
}

/* DataRow ('D'): a NULL value is length -1; a value over 2 GiB fails the builder. */
void qp_put_data_row(struct pktbuf *pb, const struct qp_datum *vals, int nvals)
{
    pkt_begin(pb, 'D');
    if (qp_put_count(pb, nvals)) {
        for (int i = 0; i < nvals; i++) {
            if (vals[i].is_null) {
                pkt_put_u32(pb, UINT32_MAX); /* -1 */
                continue;
            }
            if (vals[i].len > INT32_MAX) {
                pkt_fail(pb);
                break;
            }
            pkt_put_u32(pb, (uint32_t)vals[i].len);
            pkt_put_bytes(pb, vals[i].data, vals[i].len);
        }
    }
    pkt_end(pb);
}

/* CommandComplete ('C') with its tag ("SELECT 3", "SHOW"). */
void qp_put_command_complete(struct pktbuf *pb, const char *tag)
{
    pkt_begin(pb, 'C');
    pkt_put_cstr(pb, tag);
    pkt_end(pb);
}

/* ParameterDescription ('t'): one type OID per parameter. */
void qp_put_parameter_description(struct pktbuf *pb, const uint32_t *oids, int noids)
{
    pkt_begin(pb, 't');
    if (qp_put_count(pb, noids))
        for (int i = 0; i < noids; i++)
            pkt_put_u32(pb, oids[i]);
    pkt_end(pb);
}

/* A message with a type and no body. */
static void qp_put_bodiless(struct pktbuf *pb, char type)
{
    pkt_begin(pb, type);
    pkt_end(pb);
}

/* EmptyQueryResponse ('I'): a query of blanks and comments only. */
void qp_put_empty_query_response(struct pktbuf *pb)
{
    qp_put_bodiless(pb, 'I');
}

/* ParseComplete ('1'). */
void qp_put_parse_complete(struct pktbuf *pb)
{
    qp_put_bodiless(pb, '1');
}

/* BindComplete ('2'). */
void qp_put_bind_complete(struct pktbuf *pb)
{
    qp_put_bodiless(pb, '2');
}

/* CloseComplete ('3'). */
void qp_put_close_complete(struct pktbuf *pb)
{
    qp_put_bodiless(pb, '3');
}

/* NoData ('n'): a statement or portal without rows. */
void qp_put_no_data(struct pktbuf *pb)
{
    qp_put_bodiless(pb, 'n');
}

/* PortalSuspended ('s'): Execute stopped at max_rows; the portal goes on at the next Execute. */
void qp_put_portal_suspended(struct pktbuf *pb)
{
    qp_put_bodiless(pb, 's');
}
