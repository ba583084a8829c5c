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

/* A message's type, and its length word, which counts itself. */
static void store_header(uint8_t *h, char type, size_t body_len)
{
    h[0] = (uint8_t)type;
    pkt_store_be32(h + 1, (uint32_t)(body_len + 4));
}

int pkt_add_header(struct evbuffer *out, char type, size_t body_len)
{
    uint8_t h[PKT_HEADER_LEN];
    store_header(h, type, body_len);
    return evbuffer_add(out, h, sizeof(h)) == 0 ? 0 : -1;
}

int pkt_add_msg(struct evbuffer *out, char type, const void *body, size_t body_len)
{
    if (pkt_add_header(out, type, body_len) != 0)
        return -1;
    return body_len == 0 || evbuffer_add(out, body, body_len) == 0 ? 0 : -1;
}

int pkt_add_target(struct evbuffer *out, char type, char kind, const char *name, size_t name_len)
{
    uint8_t h[PKT_HEADER_LEN + 1];
    store_header(h, type, 1 + name_len + 1);
    h[PKT_HEADER_LEN] = (uint8_t)kind;
    if (evbuffer_add(out, h, sizeof(h)) != 0 || evbuffer_add(out, name, name_len) != 0)
        return -1;
    return evbuffer_add(out, "", 1) == 0 ? 0 : -1;
}

int pkt_add_query(struct evbuffer *out, const char *sql)
{
    return pkt_add_msg(out, 'Q', sql, strlen(sql) + 1);
}
