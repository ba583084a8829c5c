/*
 * pkt_add.c — a whole v3 message appended to an evbuffer (pkt_add.h).
 *
 * Apart from pkt.c so that the pktbuf's users (and their fuzz targets)
 * need no libevent.
 */
#include "protocol/pkt_add.h"

#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"

int pkt_add_header(struct evbuffer *out, char type, size_t body_len)
{
    uint8_t h[PKT_HEADER_LEN];
    h[0] = (uint8_t)type;
    pkt_store_be32(h + 1, (uint32_t)(body_len + 4));
    return evbuffer_add(out, h, sizeof(h)) == 0 ? 0 : -1;
}

int pkt_add_msg(struct evbuffer *out, char type, const void *body, size_t body_len)
{
    if (pkt_add_header(out, type, body_len) != 0)
        return -1;
    return evbuffer_add(out, body, body_len) == 0 ? 0 : -1;
}

int pkt_add_query(struct evbuffer *out, const char *sql)
{
    return pkt_add_msg(out, 'Q', sql, strlen(sql) + 1);
}
