/*
 * fuzz_prepared.c
 *    libFuzzer target for protocol/prepared.h, the prepared-statement
 *    rewriter of transaction pooling: two clients and two server
 *    connections on one registry.  The input is a sequence of records:
 *
 *      op      low two bits: 0, 3 a client's message, 1 a server's,
 *              2 a control (bit 2..3: a client leaves and comes back,
 *              the server ends its batch, the server is reset)
 *      who     bit 0: the client, bit 1: the server
 *      type    an index into the client's or the server's message types
 *      len     two bytes, then that many bytes of body (cut at the end)
 *
 *    A server whose messages pgnear cannot follow any more is closed and
 *    opened again, as the proxy would.  Besides not crashing: what is sent
 *    to a server is always whole messages of types a client may send; when
 *    all is freed the registry holds no statement (no reference leaked).
 *    The input runs twice, in two worlds alike: one gives every client
 *    message to prep_client_message, the other first offers it to
 *    prep_client_take_whole and, when taken, appends it as it came (as
 *    transaction pooling moves a run of them); both must send the servers
 *    and the clients the same bytes, step by step.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/pkt.h"
#include "protocol/prepared.h"
#include "protocol/tx_track.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static const char client_types[] = "PBDCESQFHdcfX";
static const char server_types[] = "123tTnCDIsZEGWHdcNSAV";

/* What went to a server: whole messages of types a client sends. */
static void check_sent(struct evbuffer *out)
{
    size_t len = evbuffer_get_length(out);
    const uint8_t *p = evbuffer_pullup(out, -1);
    size_t off = 0;
    while (off < len) {
        check(len - off >= 5);
        check(memchr("PBDCESQFHdcf", p[off], 12) != NULL);
        uint32_t mlen = pkt_be32(p + off + 1);
        check(mlen >= 4 && mlen - 4 <= len - off - 5);
        off += 1 + mlen;
    }
    evbuffer_drain(out, len);
}

struct fuzz_world {
    struct prep_registry *reg;
    struct prep_client *c[2];
    struct prep_server *s[2];
    struct tx_track tx[2]; /* each server's, told as txn_prep.c tells it */
    struct evbuffer *to_server, *to_client;
    bool take; /* prep_client_take_whole first */
};

static void control(struct fuzz_world *w, uint8_t op, int ci, int si)
{
    switch ((op >> 2) & 3) {
    case 0:
        prep_client_free(w->c[ci]);
        w->c[ci] = prep_client_new(w->reg, (uint64_t)(op >> 4));
        break;
    case 1:
        (void)prep_server_finish_batch(w->s[si], w->to_server);
        break;
    case 2:
        prep_server_forget_all(w->s[si]);
        break;
    default: {
        struct prep_stats st;
        prep_server_stats(w->s[si], &st);
        check(st.statements <= 1u << 20);
        (void)prep_server_idle(w->s[si]);
        break;
    }
    }
}

/* Server connection si closed and made again, its tracker as a fresh login leaves it. */
static void server_again(struct fuzz_world *w, int si, uint8_t op)
{
    prep_server_free(w->s[si]);
    tx_track_init(&w->tx[si], 'I');
    w->s[si] = prep_server_new(w->reg, 1 + (op >> 5), &w->tx[si]);
}

/* A client's message appended as it came: what a caller of prep_client_take_whole moves on. */
static int add_as_it_came(struct evbuffer *out, uint8_t type, const uint8_t *body, size_t n)
{
    uint8_t head[5] = {type};
    pkt_store_be32(head + 1, (uint32_t)n + 4);
    return evbuffer_add(out, head, sizeof(head)) == 0 && (n == 0 || evbuffer_add(out, body, n) == 0)
               ? PREP_OK
               : PREP_OOM;
}

static void one(struct fuzz_world *w, uint8_t op, uint8_t who, uint8_t t, const uint8_t *body,
                size_t n)
{
    int ci = who & 1, si = (who >> 1) & 1, rc;
    if ((op & 3) == 2) {
        control(w, op, ci, si);
    } else if ((op & 3) == 1) {
        uint8_t type = (uint8_t)server_types[t % 21];
        if (type == 'S' || type == 'N' || type == 'A' || !prep_server_answers_own(w->s[si]))
            tx_track_server(&w->tx[si], type, pkt_ready_status((char)type, body, n));
        rc = prep_server_message(w->s[si], type, body, n, w->to_client);
        check(rc == PREP_OK || rc == PREP_DESYNC || rc == PREP_OOM);
        if (rc != PREP_OK) /* the proxy closes it */
            server_again(w, si, op);
    } else if (w->c[ci] != NULL && w->s[si] != NULL) {
        uint8_t type = (uint8_t)client_types[t % 13];
        if (w->take && prep_client_take_whole(w->c[ci], w->s[si], type, body, n, w->to_client))
            rc = add_as_it_came(w->to_server, type, body, n);
        else
            rc = prep_client_message(w->c[ci], w->s[si], type, body, n, w->to_server, w->to_client);
        check(rc >= PREP_BUSY && rc <= PREP_WAIT);
        if (rc == PREP_OK)
            tx_track_client(&w->tx[si], type);
        if (rc == PREP_DESYNC || rc == PREP_OOM)
            server_again(w, si, op);
    }
}

/* The same bytes in a and b. */
static void check_same(struct evbuffer *a, struct evbuffer *b)
{
    size_t n = evbuffer_get_length(a);
    check(n == evbuffer_get_length(b));
    check(n == 0 || memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), n) == 0);
}

static void world_open(struct fuzz_world *w, size_t seed, bool take)
{
    *w = (struct fuzz_world){.reg = prep_registry_new(seed), .take = take};
    w->to_server = evbuffer_new();
    w->to_client = evbuffer_new();
    for (int i = 0; i < 2 && w->reg != NULL; i++) {
        w->c[i] = prep_client_new(w->reg, (uint64_t)i & 1);
        tx_track_init(&w->tx[i], 'I');
        w->s[i] = prep_server_new(w->reg, 1 + (unsigned)i, &w->tx[i]);
    }
}

static bool world_usable(const struct fuzz_world *w)
{
    return w->reg != NULL && w->to_server && w->to_client && w->s[0] && w->s[1];
}

static void world_close(struct fuzz_world *w)
{
    for (int i = 0; i < 2; i++) {
        prep_client_free(w->c[i]);
        prep_server_free(w->s[i]);
    }
    if (w->reg != NULL) {
        struct prep_stats st;
        prep_registry_stats(w->reg, &st);
        check(st.statements == 0);
    }
    prep_registry_free(w->reg);
    if (w->to_server)
        evbuffer_free(w->to_server);
    if (w->to_client)
        evbuffer_free(w->to_client);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_world w[2];
    world_open(&w[0], size, false);
    world_open(&w[1], size, true);
    size_t off = 0;
    while (size - off >= 5 && world_usable(&w[0]) && world_usable(&w[1])) {
        uint8_t op = data[off], who = data[off + 1], t = data[off + 2];
        size_t n = (size_t)data[off + 3] << 8 | data[off + 4];
        off += 5;
        if (n > size - off)
            n = size - off;
        uint8_t *body = malloc(n ? n : 1); /* exactly n bytes, so that a read past is seen */
        if (body == NULL)
            break;
        memcpy(body, data + off, n);
        off += n;
        for (int k = 0; k < 2; k++)
            one(&w[k], op, who, t, body, n);
        free(body);
        if (!world_usable(&w[0]) || !world_usable(&w[1])) /* out of memory making one again */
            break;
        check_same(w[0].to_server, w[1].to_server);
        check_same(w[0].to_client, w[1].to_client);
        for (int k = 0; k < 2; k++) {
            check_sent(w[k].to_server);
            evbuffer_drain(w[k].to_client, evbuffer_get_length(w[k].to_client));
        }
    }
    world_close(&w[0]);
    world_close(&w[1]);
    return 0;
}
