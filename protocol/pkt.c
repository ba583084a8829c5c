/*
 * pkt.c — message builder and reader with sticky error flags (pkt.h).
 */
#include "protocol/pkt.h"

#include <string.h>

/* A builder over the caller's storage (cap bytes); nothing is allocated, so nothing is freed. */
void pkt_init(struct pktbuf *pb, uint8_t *storage, size_t cap)
{
    pb->data = storage;
    pb->cap = cap;
    pb->len = 0;
    pb->msg_start = 0;
    pb->failed = false;
}

/*
 * Room for n more bytes, or the builder fails for good: one pkt_ok check after
 * building is enough.
 */
static bool pkt_reserve(struct pktbuf *pb, size_t n)
{
    if (pb->failed || n > pb->cap - pb->len) {
        pb->failed = true;
        return false;
    }
    return true;
}

/* Appends n bytes; a put that does not fit fails the builder and adds nothing. */
void pkt_put_bytes(struct pktbuf *pb, const void *p, size_t n)
{
    if (!pkt_reserve(pb, n))
        return;
    if (n > 0)
        memcpy(pb->data + pb->len, p, n);
    pb->len += n;
}

/* One byte. */
void pkt_put_u8(struct pktbuf *pb, uint8_t v)
{
    pkt_put_bytes(pb, &v, 1);
}

/* A big-endian int16, as the protocol's integers are. */
void pkt_put_u16(struct pktbuf *pb, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    pkt_put_bytes(pb, b, 2);
}

/* A big-endian int32. */
void pkt_put_u32(struct pktbuf *pb, uint32_t v)
{
    uint8_t b[4];
    pkt_store_be32(b, v);
    pkt_put_bytes(pb, b, 4);
}

/* A string and its NUL, as the protocol's strings are. */
void pkt_put_cstr(struct pktbuf *pb, const char *s)
{
    pkt_put_bytes(pb, s, strlen(s) + 1);
}

void pkt_begin(struct pktbuf *pb, char type)
{
    if (type != 0)
        pkt_put_u8(pb, (uint8_t)type);
    pb->msg_start = pb->len;
    pkt_put_u32(pb, 0); /* patched by pkt_end */
}

/* Fills in the length of the message pkt_begin started, now that its end is known. */
void pkt_end(struct pktbuf *pb)
{
    if (pb->failed)
        return;
    pkt_store_be32(pb->data + pb->msg_start, (uint32_t)(pb->len - pb->msg_start));
}

void pkt_put_field(struct pktbuf *pb, char code, const char *value)
{
    if (value == NULL)
        return;
    pkt_put_u8(pb, (uint8_t)code);
    pkt_put_cstr(pb, value);
}

void pkt_put_report(struct pktbuf *pb, char type, const struct pkt_report *r)
{
    pkt_begin(pb, type);
    pkt_put_field(pb, 'S', r->severity);
    pkt_put_field(pb, 'V', r->severity);
    pkt_put_field(pb, 'C', r->sqlstate);
    pkt_put_field(pb, 'M', r->message);
    pkt_put_field(pb, 'D', r->detail);
    pkt_put_field(pb, 'H', r->hint);
    pkt_put_u8(pb, 0);
    pkt_end(pb);
}

void pkt_put_authentication(struct pktbuf *pb, uint32_t code, const void *data, size_t len)
{
    pkt_begin(pb, 'R');
    pkt_put_u32(pb, code);
    pkt_put_bytes(pb, data, len);
    pkt_end(pb);
}

const uint8_t pkt_terminate[PKT_HEADER_LEN] = {'X', 0, 0, 0, 4};
const uint8_t pkt_sync[PKT_HEADER_LEN] = {'S', 0, 0, 0, 4};
const uint8_t pkt_parse_complete[PKT_HEADER_LEN] = {'1', 0, 0, 0, 4};

void pkt_put_ready_for_query(struct pktbuf *pb, char status)
{
    pkt_begin(pb, 'Z');
    pkt_put_u8(pb, (uint8_t)status);
    pkt_end(pb);
}

void pkt_put_parameter_status(struct pktbuf *pb, const char *name, const char *value)
{
    pkt_begin(pb, 'S');
    pkt_put_cstr(pb, name);
    pkt_put_cstr(pb, value);
    pkt_end(pb);
}

void pkt_put_backend_key_data(struct pktbuf *pb, uint32_t pid, const uint8_t *key, size_t key_len)
{
    pkt_begin(pb, 'K');
    pkt_put_u32(pb, pid);
    pkt_put_bytes(pb, key, key_len);
    pkt_end(pb);
}

/* A reader over len bytes at p, which it does not copy. */
void pkt_reader_init(struct pktreader *r, const uint8_t *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
    r->failed = false;
}

const uint8_t *pkt_get_bytes(struct pktreader *r, size_t n)
{
    if (r->failed || n > r->len - r->pos) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *at = r->p + r->pos;
    r->pos += n;
    return at;
}

/* One byte, or 0 with the reader failed when none is left. */
uint8_t pkt_get_u8(struct pktreader *r)
{
    const uint8_t *b = pkt_get_bytes(r, 1);
    return b ? b[0] : 0;
}

/* A big-endian int16, or 0 with the reader failed. */
uint16_t pkt_get_u16(struct pktreader *r)
{
    const uint8_t *b = pkt_get_bytes(r, 2);
    return b ? (uint16_t)((b[0] << 8) | b[1]) : 0;
}

/* A big-endian int32, or 0 with the reader failed. */
uint32_t pkt_get_u32(struct pktreader *r)
{
    const uint8_t *b = pkt_get_bytes(r, 4);
    return b ? pkt_be32(b) : 0;
}

const char *pkt_get_cstr(struct pktreader *r)
{
    if (r->failed)
        return "";
    const uint8_t *start = r->p + r->pos;
    const uint8_t *nul = memchr(start, 0, r->len - r->pos);
    if (nul == NULL) {
        r->failed = true;
        return "";
    }
    r->pos += (size_t)(nul - start) + 1;
    return (const char *)start;
}

const char *pkt_report_field(const uint8_t *body, size_t len, char code)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    while (pkt_remaining(&r) > 0) {
        uint8_t c = pkt_get_u8(&r);
        if (c == 0)
            return NULL;
        const char *v = pkt_get_cstr(&r);
        if (r.failed)
            return NULL;
        if (c == (uint8_t)code)
            return v;
    }
    return NULL;
}

bool pkt_report_fatal(const uint8_t *body, size_t len)
{
    const char *severity = pkt_report_field(body, len, 'V');
    if (severity == NULL)
        severity = pkt_report_field(body, len, 'S');
    return severity != NULL && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0);
}
