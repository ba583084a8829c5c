/*
 * fuzz_proxy_proto.c
 *    libFuzzer target for protocol/proxy_proto.c and
 *    protocol/startup_options.c, both fed the same bytes.  Besides not
 *    crashing, each result must keep its documented promises; anything
 *    else traps.
 *
 *    pp_parse: a header lies inside the input within the spec's limits,
 *    does not depend on the bytes after it, and every proper prefix of it
 *    is PP_INCOMPLETE.  startup_hints_extract: the remaining options are
 *    never longer than the input and, read again, are the same and hold
 *    no hint.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "protocol/lsn.h"
#include "protocol/proxy_proto.h"
#include "protocol/startup_options.h"
#include "routing/need.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPTIONS 12000

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static void check_value(bool has, const char *v)
{
    size_t n = strnlen(v, PP_TLV_VALUE_MAX + 1);
    check(n <= PP_TLV_VALUE_MAX);
    check(has == (n > 0));
}

static void check_header(const struct pp_header *h, const uint8_t *data, size_t size)
{
    check(h->length <= size);
    if (h->version == 1) {
        check(h->length >= 15 && h->length <= PP_V1_MAX_LEN);
        check(data[h->length - 2] == '\r' && data[h->length - 1] == '\n');
        check(!h->has_city && !h->has_region && !h->has_location && !h->crc_checked);
    } else {
        check(h->version == 2);
        check(h->length == PP_V2_HDR_LEN + (size_t)((data[14] << 8) | data[15]));
        check(h->length <= PP_V2_HDR_LEN + PP_V2_MAX_PAYLOAD);
    }
    if (h->local) {
        check(h->src.ss_family == AF_UNSPEC && h->dst.ss_family == AF_UNSPEC);
    } else {
        check(h->src.ss_family == AF_INET || h->src.ss_family == AF_INET6);
        check(h->src.ss_family == h->dst.ss_family);
    }
    check(h->peer_id >= 0 && h->peer_id <= 0xFFFF && (h->peer_id == 0 || h->version == 2));
    check(!h->has_peer_mac || h->peer_id != 0);
    check_value(h->has_city, h->city);
    check_value(h->has_region, h->region);
    check_value(h->has_location, h->location);
}

static void fuzz_proxy(const uint8_t *data, size_t size)
{
    struct pp_tlv_types types;
    struct pp_header h, again;
    int rc;

    pp_tlv_types_default(&types);
    rc = pp_parse(data, size, &types, &h);
    check(rc >= PP_EUTF8 && rc <= PP_OK);
    check(pp_strerror(rc) != NULL);
    if (rc != PP_OK)
        return;
    check_header(&h, data, size);
    /* the bytes after the header change nothing */
    check(pp_parse(data, h.length, &types, &again) == PP_OK);
    check(memcmp(&h, &again, sizeof(h)) == 0);
    /* a header cut short is only ever incomplete */
    check(pp_parse(data, h.length - 1, &types, &again) == PP_INCOMPLETE);
    check(pp_parse(data, h.length / 2, &types, &again) == PP_INCOMPLETE);
}

static void check_hints(const struct startup_hints *h)
{
    check(h->has_city == (strnlen(h->city, HINT_VALUE_MAX + 1) > 0));
    check(h->has_region == (strnlen(h->region, HINT_VALUE_MAX + 1) > 0));
    check(h->has_location == (strnlen(h->location, HINT_VALUE_MAX + 1) > 0));
    check(strnlen(h->city, HINT_VALUE_MAX + 1) <= HINT_VALUE_MAX);
    check(strnlen(h->region, HINT_VALUE_MAX + 1) <= HINT_VALUE_MAX);
    check(strnlen(h->location, HINT_VALUE_MAX + 1) <= HINT_VALUE_MAX);
    check(h->has_need == (strnlen(h->need, HINT_VALUE_MAX + 1) > 0));
    check(strnlen(h->need, HINT_VALUE_MAX + 1) <= HINT_VALUE_MAX);
    /* what routing then does with it: a value it knows, or the client's error */
    uint32_t tli, tli2;
    uint64_t lsn, lsn2;
    char text[LSN_TEXT_MAX];
    if (h->has_min_lsn && lsn_parse(h->min_lsn, strlen(h->min_lsn), &tli, &lsn) == LSN_OK) {
        lsn_format(tli, lsn, text, sizeof(text));
        check(lsn_parse(text, strlen(text), &tli2, &lsn2) == LSN_OK && tli2 == tli && lsn2 == lsn);
    }
    enum session_need need;
    if (h->has_need && need_parse(h->need, &need))
        check((unsigned)need < NEED_COUNT && strcasecmp(need_name(need), h->need) == 0);
}

/* The first two NUL-terminated pieces of the input as a startup parameter. */
static void fuzz_param(const char *in, size_t size)
{
    struct startup_hints h;
    size_t nlen = strnlen(in, size);
    int rc;

    if (nlen >= size)
        return;
    startup_hints_init(&h);
    rc = startup_hints_from_param(in, in + nlen + 1, &h);
    check(rc == 0 || rc == 1 || rc == HINTS_EUNKNOWN || rc == HINTS_ETOOLONG);
    check_hints(&h);
}

static void fuzz_options(const uint8_t *data, size_t size)
{
    static char in[MAX_OPTIONS + 1], out[MAX_OPTIONS + 1], out2[MAX_OPTIONS + 1];
    char err[32];
    struct startup_hints h, h2;
    int rc;

    if (size > MAX_OPTIONS)
        return;
    memcpy(in, data, size);
    in[size] = '\0';
    startup_hints_init(&h);
    rc = startup_hints_extract(in, size, &h, out, size + 1, err, sizeof(err));
    /* out has room for the whole input, so never HINTS_ENOSPACE */
    check(rc == HINTS_OK || rc == HINTS_EUNKNOWN || rc == HINTS_ETOOLONG || rc == HINTS_ESYNTAX ||
          rc == HINTS_ESTRAY);
    check(strnlen(err, sizeof(err)) < sizeof(err));
    check_hints(&h);
    fuzz_param(in, size);
    if (rc != HINTS_OK) {
        check(out[0] == '\0');
        return;
    }
    check(strlen(out) <= strnlen(in, size));
    startup_hints_init(&h2);
    check(startup_hints_extract(out, strlen(out), &h2, out2, sizeof(out2), NULL, 0) == HINTS_OK);
    check(strcmp(out, out2) == 0);
    check(!h2.has_city && !h2.has_region && !h2.has_location);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_proxy(data, size);
    fuzz_options(data, size);
    return 0;
}
