/*
 * prep_desc.c — a Describe 'S' answer's parameter and column types, hashed
 * (prep_desc.h).
 */
#include "protocol/prep_desc.h"

#include <string.h>

#include "protocol/fnv.h"
#include "protocol/pkt.h"

/* RowDescription's columns: name, type OID and modifier each; UINT64_MAX: malformed. */
static uint64_t fold_columns(uint64_t h, const uint8_t *body, size_t len)
{
    struct pktreader r;
    pkt_reader_init(&r, body, len);
    uint16_t n = pkt_get_u16(&r);
    h = fnv1a(h, &n, sizeof(n));
    for (uint16_t i = 0; i < n && !r.failed; i++) {
        const char *name = pkt_get_cstr(&r);
        pkt_get_bytes(&r, 4 + 2); /* the table's OID and the column's number */
        uint32_t type = pkt_get_u32(&r);
        pkt_get_bytes(&r, 2); /* the type's length: the type's own */
        uint32_t typmod = pkt_get_u32(&r);
        pkt_get_bytes(&r, 2); /* the format: always 0 in a statement's description */
        if (r.failed)
            break;
        h = fnv1a(h, name, strlen(name) + 1);
        h = fnv1a(h, &type, sizeof(type));
        h = fnv1a(h, &typmod, sizeof(typmod));
    }
    return r.failed || pkt_remaining(&r) != 0 ? UINT64_MAX : h;
}

uint64_t prep_desc_hash(uint64_t h, uint8_t type, const uint8_t *body, size_t len)
{
    h = fnv1a(h, &type, 1);
    if (type == 'T') {
        uint64_t cols = fold_columns(h, body, len);
        if (cols != UINT64_MAX)
            return cols;
    }
    return fnv1a(h, body, len);
}
