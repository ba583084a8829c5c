/*
 * fuzz_param_set.c
 *    libFuzzer target for protocol/param_set.c: the input is cut into
 *    ParameterStatus bodies (a length byte, then that many bytes), each
 *    noted in one set.  Besides not crashing: a body taken must read back
 *    as its value; the set stays within its bounds; the messages written
 *    parse back into the same set.  Each body is also read as an
 *    ErrorResponse (pkt_report_field, as a kept connection's reset and a
 *    handover read the server's errors): a field found lies within it; its
 *    severity (pkt_report_fatal, as the readers of transaction pooling
 *    read each of the server's errors) is read within it too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/param_set.h"
#include "protocol/pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

/* Reads back every message of buf into a second set and compares. */
static void check_round_trip(const struct param_set *ps, const uint8_t *buf, size_t len)
{
    struct param_set again = {0};
    size_t off = 0;
    while (off < len) {
        check(len - off >= 5 && buf[off] == 'S');
        uint32_t mlen = pkt_be32(buf + off + 1);
        check(mlen >= 4 && mlen - 4 <= len - off - 5);
        check(param_set_note(&again, buf + off + 5, mlen - 4) == PARAM_SET_OK);
        off += 1 + mlen;
    }
    check(again.count == ps->count && again.used == ps->used);
    check(ps->used == 0 || memcmp(again.data, ps->data, ps->used) == 0);
    param_set_free(&again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct param_set ps = {0};
    size_t off = 0;
    while (off < size) {
        size_t n = data[off++];
        if (n > size - off)
            n = size - off;
        const uint8_t *body = data + off;
        int rc = param_set_note(&ps, body, n);
        if (rc == PARAM_SET_OK)
            check(strcmp(param_set_get(&ps, (const char *)body),
                         (const char *)body + strlen((const char *)body) + 1) == 0);
        check(ps.used <= PARAM_SET_MAX_BYTES && ps.count <= PARAM_SET_MAX);
        (void)pkt_report_fatal(body, n);
        for (const char *codes = "CMDH"; *codes != '\0'; codes++) {
            const char *v = pkt_report_field(body, n, *codes);
            check(v == NULL ||
                  ((const uint8_t *)v > body && (const uint8_t *)v + strlen(v) < body + n));
        }
        off += n;
    }
    static uint8_t buf[2 * PARAM_SET_MAX_BYTES + 5 * PARAM_SET_MAX];
    struct pktbuf pb;
    pkt_init(&pb, buf, sizeof(buf));
    param_set_write(&ps, &pb);
    check(pkt_ok(&pb));
    check_round_trip(&ps, buf, pb.len);
    param_set_free(&ps);
    return 0;
}
