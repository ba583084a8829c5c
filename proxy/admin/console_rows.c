/*
 * console_rows.c — encoding a result's rows (console_rows.h).
 */
#include "proxy/admin/console_rows.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "protocol/query_proto.h"
#include "protocol/query_values.h"
#include "proxy/session/session.h"

#define MAX_COLUMNS 64
/* Room for one encoded non-text value: numeric text at scale <= 6 needs < 320 bytes. */
#define VALUE_ROOM 384

struct type_info {
    uint32_t oid;
    int16_t typlen;
};

/* The PostgreSQL type (OID, length) a column of type t is sent as; anything else goes as text. */
static struct type_info type_info(enum admin_type t)
{
    switch (t) {
    case ADMIN_INT8:
        return (struct type_info){QP_OID_INT8, QP_TYPLEN_INT8};
    case ADMIN_NUMERIC:
        return (struct type_info){QP_OID_NUMERIC, QP_TYPLEN_NUMERIC};
    case ADMIN_TIMESTAMPTZ:
        return (struct type_info){QP_OID_TIMESTAMPTZ, QP_TYPLEN_TIMESTAMPTZ};
    case ADMIN_BOOL:
        return (struct type_info){QP_OID_BOOL, QP_TYPLEN_BOOL};
    default:
        return (struct type_info){QP_OID_TEXT, QP_TYPLEN_TEXT};
    }
}

/* Builds into a buffer of cap bytes, then queues it; <0: session closed. */
static int queue_built(struct session *s, struct pktbuf *pb)
{
    if (!pkt_ok(pb) || evbuffer_add(s->client.out, pb->data, pb->len) != 0) {
        session_close(s, "out of memory building an admin console answer");
        return -1;
    }
    return 0;
}

int console_rows_describe(struct session *s, const struct admin_column *cols, int ncols,
                          const int16_t *formats)
{
    struct qp_column qc[MAX_COLUMNS];
    uint8_t buf[4096];
    struct pktbuf pb;
    if (ncols > MAX_COLUMNS) {
        session_close(s, "admin result with too many columns");
        return -1;
    }
    for (int i = 0; i < ncols; i++) {
        struct type_info ti = type_info(cols[i].type);
        qc[i] = (struct qp_column){cols[i].name, ti.oid, ti.typlen, QP_TYPMOD_NONE,
                                   formats != NULL ? formats[i] : QP_FORMAT_TEXT};
    }
    pkt_init(&pb, buf, sizeof(buf));
    qp_put_row_description(&pb, qc, ncols);
    return queue_built(s, &pb);
}

/* Encodes one non-text value into room; its length, or -1. */
static int encode_value(const struct admin_column *col, const struct admin_value *v, int16_t format,
                        uint8_t *room)
{
    bool binary = format == QP_FORMAT_BINARY;
    struct timeval tv;
    switch (col->type) {
    case ADMIN_INT8:
        return binary ? qp_binary_int8(room, v->u.i)
                      : qp_text_int8((char *)room, VALUE_ROOM, v->u.i);
    case ADMIN_BOOL:
        return binary ? qp_binary_bool(room, v->u.b)
                      : qp_text_bool((char *)room, VALUE_ROOM, v->u.b);
    case ADMIN_TIMESTAMPTZ:
        tv.tv_sec = (time_t)(v->u.i / 1000000);
        tv.tv_usec = (suseconds_t)(v->u.i % 1000000);
        return binary ? qp_binary_timestamptz(room, &tv)
                      : qp_text_timestamptz((char *)room, VALUE_ROOM, &tv);
    case ADMIN_NUMERIC: {
        char text[VALUE_ROOM];
        int n = qp_text_numeric(text, sizeof(text), v->u.d, col->scale);
        if (n < 0 || !binary) {
            if (n >= 0)
                memcpy(room, text, (size_t)n);
            return n;
        }
        return qp_binary_numeric(room, VALUE_ROOM, text, (size_t)n);
    }
    default:
        return -1;
    }
}

int console_rows_send_row(struct session *s, const struct admin_result *r, size_t row,
                          const int16_t *formats)
{
    struct qp_datum vals[MAX_COLUMNS];
    uint8_t room[MAX_COLUMNS][VALUE_ROOM];
    size_t total = 8;
    for (int c = 0; c < r->ncols && c < MAX_COLUMNS; c++) {
        const struct admin_value *v = result_value(r, row, c);
        vals[c] = (struct qp_datum){NULL, 0, v->is_null};
        total += 4; /* the length word, -1 for NULL */
        if (v->is_null)
            continue;
        if (r->cols[c].type == ADMIN_TEXT) {
            vals[c].data = result_text_of(r, v);
            vals[c].len = v->len;
        } else {
            int n = encode_value(&r->cols[c], v, formats[c], room[c]);
            vals[c].is_null = n < 0; /* a time out of range shows as NULL */
            vals[c].data = room[c];
            vals[c].len = n < 0 ? 0 : (size_t)n;
        }
        total += vals[c].len;
    }
    uint8_t *buf = malloc(total);
    if (buf == NULL) {
        session_close(s, "out of memory building an admin console answer");
        return -1;
    }
    struct pktbuf pb;
    pkt_init(&pb, buf, total);
    qp_put_data_row(&pb, vals, r->ncols < MAX_COLUMNS ? r->ncols : MAX_COLUMNS);
    int rc = queue_built(s, &pb);
    free(buf);
    return rc;
}
