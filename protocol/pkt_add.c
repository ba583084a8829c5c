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

/* Messages up to this long are put together on the stack and added at once (pkt_add_pieces). */
#define PKT_ADD_BLOCK 512

int pkt_add_pieces(struct evbuffer *out, char type, const struct pkt_piece *pieces, size_t n)
{
    size_t body_len = 0;
    for (size_t i = 0; i < n; i++)
        body_len += pieces[i].len;
    if (PKT_HEADER_LEN + body_len > PKT_ADD_BLOCK) {
        if (pkt_add_header(out, type, body_len) != 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (pieces[i].len > 0 && evbuffer_add(out, pieces[i].p, pieces[i].len) != 0)
                return -1;
        return 0;
    }
    uint8_t block[PKT_ADD_BLOCK];
    store_header(block, type, body_len);
    size_t at = PKT_HEADER_LEN;
    for (size_t i = 0; i < n; i++) {
        if (pieces[i].len > 0)
            memcpy(block + at, pieces[i].p, pieces[i].len);
        at += pieces[i].len;
    }
    return evbuffer_add(out, block, at) == 0 ? 0 : -1;
}

int pkt_add_msg(struct evbuffer *out, char type, const void *body, size_t body_len)
{
    struct pkt_piece whole = {body, body_len};
    return pkt_add_pieces(out, type, &whole, 1);
}

int pkt_add_target(struct evbuffer *out, char type, char kind, const char *name, size_t name_len)
{
    const struct pkt_piece target[] = {{&kind, 1}, {name, name_len}, {"", 1}};
    return pkt_add_pieces(out, type, target, sizeof(target) / sizeof(target[0]));
}

int pkt_add_query(struct evbuffer *out, const char *sql)
{
    return pkt_add_msg(out, 'Q', sql, strlen(sql) + 1);
}

int pkt_add_terminate(struct evbuffer *out)
{
    return evbuffer_add(out, pkt_terminate, sizeof(pkt_terminate)) == 0 ? 0 : -1;
}

int pkt_add_sync(struct evbuffer *out)
{
    return evbuffer_add(out, pkt_sync, sizeof(pkt_sync)) == 0 ? 0 : -1;
}

int pkt_add_parse_complete(struct evbuffer *out)
{
    return evbuffer_add(out, pkt_parse_complete, sizeof(pkt_parse_complete)) == 0 ? 0 : -1;
}

int pkt_add_ready(struct evbuffer *out, char status)
{
    return pkt_add_msg(out, 'Z', &status, 1);
}

int pkt_add_parse(struct evbuffer *out, const char *name, size_t name_len, const void *sql,
                  size_t sql_len, const void *types, uint16_t ntypes)
{
    uint8_t n[2] = {(uint8_t)(ntypes >> 8), (uint8_t)ntypes};
    const struct pkt_piece parse[] = {
        {name, name_len}, {"", 1}, {sql, sql_len}, {"", 1}, {n, 2}, {types, (size_t)ntypes * 4},
    };
    return pkt_add_pieces(out, 'P', parse, sizeof(parse) / sizeof(parse[0]));
}

int pkt_add_bind_text(struct evbuffer *out, const struct pkt_piece *params, uint16_t n)
{
    uint8_t lens[PKT_BIND_TEXT_MAX][4], count[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    struct pkt_piece bind[2 * PKT_BIND_TEXT_MAX + 3];
    size_t k = 0;
    if (n > PKT_BIND_TEXT_MAX)
        return -1;
    bind[k++] = (struct pkt_piece){"\0\0\0\0", 4}; /* portal "", statement "", no format codes */
    bind[k++] = (struct pkt_piece){count, 2};
    for (uint16_t i = 0; i < n; i++) {
        pkt_store_be32(lens[i], (uint32_t)params[i].len);
        bind[k++] = (struct pkt_piece){lens[i], 4};
        bind[k++] = params[i];
    }
    bind[k++] = (struct pkt_piece){"\0\0", 2}; /* results in text */
    return pkt_add_pieces(out, 'B', bind, k);
}

int pkt_add_execute_all(struct evbuffer *out)
{
    return pkt_add_msg(out, 'E', "\0\0\0\0\0", 5); /* portal "", all rows */
}

/* The length of answer's messages before the first result, error or ReadyForQuery. */
static size_t canceled_prefix(struct evbuffer *answer)
{
    struct evbuffer_ptr p;
    uint8_t h[PKT_HEADER_LEN];
    size_t kept = 0;
    evbuffer_ptr_set(answer, &p, 0, EVBUFFER_PTR_SET);
    while (evbuffer_copyout_from(answer, &p, h, sizeof(h)) == (ssize_t)sizeof(h)) {
        size_t n = 1 + (size_t)pkt_be32(h + 1);
        if (strchr("DCEIsGHWdZ", h[0]) != NULL || kept + n > evbuffer_get_length(answer) ||
            evbuffer_ptr_set(answer, &p, n, EVBUFFER_PTR_ADD) != 0)
            break;
        kept += n;
    }
    return kept;
}

int pkt_add_canceled(struct evbuffer *answer)
{
    static const struct pkt_report canceled = {.severity = "ERROR",
                                               .sqlstate = "57014",
                                               .message =
                                                   "canceling statement due to user request"};
    return pkt_add_canceled_as(answer, &canceled);
}

int pkt_add_canceled_as(struct evbuffer *answer, const struct pkt_report *why)
{
    uint8_t buf[512];
    struct pktbuf pb;
    size_t kept = canceled_prefix(answer);
    struct evbuffer *rest = evbuffer_new();
    /* The prefix steps aside while the rest is dropped. */
    if (rest == NULL)
        return -1;
    int moved = evbuffer_remove_buffer(answer, rest, kept);
    evbuffer_drain(answer, evbuffer_get_length(answer));
    int rc = moved == (int)kept ? evbuffer_add_buffer(answer, rest) : -1;
    evbuffer_free(rest);
    pkt_init(&pb, buf, sizeof(buf));
    pkt_put_report(&pb, 'E', why);
    if (rc != 0 || !pkt_ok(&pb) || evbuffer_add(answer, buf, pb.len) != 0)
        return -1;
    return pkt_add_ready(answer, 'I');
}
