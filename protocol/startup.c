/*
 * startup.c — strict parser for the first packet of a connection.
 *
 * The packet's own length word is checked against the bytes we were
 * given and against PostgreSQL's limits before anything else is read.
 */
#include "protocol/startup.h"

#include "protocol/pkt.h"

#include <string.h>

int startup_packet_length(const uint8_t *buf, size_t avail, uint32_t *len)
{
    if (avail < 4)
        return STARTUP_INCOMPLETE;
    uint32_t n = pkt_be32(buf);
    if (n < STARTUP_MIN_LEN || n > STARTUP_MAX_LEN)
        return STARTUP_EBADLEN;
    *len = n;
    return STARTUP_OK;
}

/* Protocol 3.0 keys are exactly four bytes; 3.2 keys are 4 to 256 bytes. */
static int startup_parse_cancel(struct pktreader *r, struct startup_packet *out)
{
    size_t keylen = pkt_remaining(r) - 4;
    if (pkt_remaining(r) < 4 + CANCEL_KEY_V30_LEN || keylen > CANCEL_KEY_MAX_LEN)
        return STARTUP_EBADCANCEL;
    out->kind = STARTUP_CANCEL_REQUEST;
    out->cancel_pid = pkt_get_u32(r);
    out->cancel_key_len = keylen;
    out->cancel_key = pkt_get_bytes(r, keylen);
    return out->cancel_key ? STARTUP_OK : STARTUP_EBADCANCEL;
}

/*
 * One name/value pair, pointing into the packet; _pq_. options go apart (the
 * server's NegotiateProtocolVersion names them); STARTUP_ETOOMANY past the
 * bounds.
 */
static int startup_add_param(struct startup_packet *out, const char *name, const char *value)
{
    if (strncmp(name, "_pq_.", 5) == 0) {
        if (out->n_unknown_pq >= STARTUP_MAX_UNKNOWN_PQ)
            return STARTUP_ETOOMANY;
        out->unknown_pq[out->n_unknown_pq++] = name;
        return STARTUP_OK;
    }
    if (out->nparams >= STARTUP_MAX_PARAMS)
        return STARTUP_ETOOMANY;
    out->params[out->nparams].name = name;
    out->params[out->nparams].value = value;
    out->nparams++;
    if (strcmp(name, "user") == 0)
        out->user = value;
    else if (strcmp(name, "database") == 0)
        out->database = value;
    return STARTUP_OK;
}

/* name\0value\0 ... \0 — the final terminator is required, nothing may follow it. */
static int startup_parse_params(struct pktreader *r, struct startup_packet *out)
{
    for (;;) {
        const char *name = pkt_get_cstr(r);
        if (r->failed)
            return STARTUP_EBADPARAMS;
        if (name[0] == '\0')
            break;
        const char *value = pkt_get_cstr(r);
        if (r->failed)
            return STARTUP_EBADPARAMS;
        int rc = startup_add_param(out, name, value);
        if (rc != STARTUP_OK)
            return rc;
    }
    if (pkt_remaining(r) != 0)
        return STARTUP_EBADPARAMS;
    if (out->user == NULL || out->user[0] == '\0')
        return STARTUP_ENOUSER;
    if (out->database == NULL || out->database[0] == '\0')
        out->database = out->user;
    return STARTUP_OK;
}

int startup_parse(const uint8_t *buf, size_t len, struct startup_packet *out)
{
    uint32_t declared;
    int rc = startup_packet_length(buf, len, &declared);
    if (rc != STARTUP_OK)
        return rc == STARTUP_INCOMPLETE ? STARTUP_EBADLEN : rc;
    if (declared != len)
        return STARTUP_EBADLEN;

    memset(out, 0, sizeof(*out));
    struct pktreader r;
    pkt_reader_init(&r, buf + 4, len - 4);
    out->version = pkt_get_u32(&r);

    switch (out->version) {
    case PROTO_CODE_SSL:
        out->kind = STARTUP_SSL_REQUEST;
        return len == 8 ? STARTUP_OK : STARTUP_EBADLEN;
    case PROTO_CODE_GSSENC:
        out->kind = STARTUP_GSSENC_REQUEST;
        return len == 8 ? STARTUP_OK : STARTUP_EBADLEN;
    case PROTO_CODE_CANCEL:
        return startup_parse_cancel(&r, out);
    default:
        break;
    }
    if (PROTO_MAJOR(out->version) != 3)
        return STARTUP_EBADPROTO;
    out->kind = STARTUP_MESSAGE;
    return startup_parse_params(&r, out);
}

/* The name at p (inside buf[len], NUL-terminated there by the parser) cut in place. */
static void startup_cut_name(uint8_t *buf, size_t len, const char *p)
{
    const uint8_t *at = (const uint8_t *)p;
    if (p == NULL || at < buf || at >= buf + len)
        return;
    size_t off = (size_t)(at - buf);
    if (strnlen(p, len - off) > STARTUP_NAME_MAX)
        buf[off + STARTUP_NAME_MAX] = '\0';
}

void startup_cut_names(uint8_t *buf, size_t len, struct startup_packet *sp)
{
    if (sp->kind != STARTUP_MESSAGE)
        return;
    startup_cut_name(buf, len, sp->user);
    startup_cut_name(buf, len, sp->database); /* the same bytes where it defaulted to user */
}

bool startup_is_tls_handshake(const uint8_t *buf, size_t avail)
{
    return avail >= 1 && buf[0] == TLS_RECORD_HANDSHAKE;
}

const char *startup_param(const struct startup_packet *sp, const char *name)
{
    for (size_t i = sp->nparams; i-- > 0;)
        if (strcmp(sp->params[i].name, name) == 0)
            return sp->params[i].value;
    return NULL;
}

/* PostgreSQL's wording for each STARTUP_* error, for the client's FATAL. */
const char *startup_strerror(int err)
{
    switch (err) {
    case STARTUP_OK:
        return "no error";
    case STARTUP_INCOMPLETE:
        return "incomplete startup packet";
    case STARTUP_EBADLEN:
        return "invalid length of startup packet";
    case STARTUP_EBADPROTO:
        return "unsupported frontend protocol";
    case STARTUP_EBADPARAMS:
        return "invalid startup packet layout: expected terminator as last byte";
    case STARTUP_ENOUSER:
        return "no PostgreSQL user name specified in startup packet";
    case STARTUP_ETOOMANY:
        return "too many parameters in startup packet";
    case STARTUP_EBADCANCEL:
        return "invalid length of cancel request packet";
    }
    return "unknown startup packet error";
}
