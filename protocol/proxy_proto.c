/*
 * proxy_proto.c — strict PROXY protocol v1/v2 parser.
 *
 * Nothing here trusts a length field: every length is checked against the
 * bytes actually given before anything behind it is read, and nothing is
 * allocated.  The caller feeds the bytes received so far and calls again
 * on PP_INCOMPLETE.
 */
#include "protocol/proxy_proto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "protocol/utf8.h"

static const uint8_t pp_v1_sig[] = {'P', 'R', 'O', 'X', 'Y', ' '};
static const uint8_t pp_v2_sig[] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                    0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

#define PP_V2_CMD_LOCAL 0x0
#define PP_V2_CMD_PROXY 0x1
#define PP_V2_TCP4      0x11
#define PP_V2_TCP6      0x21
#define PP_V2_UNSPEC    0x00
#define PP_V2_CRC_LEN   4

/* Indexes of the locality TLVs in struct pp_tlv_scan. */
enum { LOC_CITY, LOC_REGION, LOC_LOCATION, LOC_COUNT };

/* What the structural walk over the v2 TLVs found. */
struct pp_tlv_scan {
    bool has_crc;
    size_t crc_at; /* offset of the CRC value in the header */
    bool seen[LOC_COUNT];
    const uint8_t *val[LOC_COUNT];
    size_t vlen[LOC_COUNT];
    int peer_id;             /* PP2_TYPE_PGNEAR_PEER; 0: none */
    const uint8_t *peer_mac; /* its MAC, when it has one */
};

/* The TLV types pgnear reads locality from when the configuration names none. */
void pp_tlv_types_default(struct pp_tlv_types *t)
{
    t->city = PP_TLV_CITY_DEFAULT;
    t->region = PP_TLV_REGION_DEFAULT;
    t->location = PP_TLV_LOCATION_DEFAULT;
}

/* Bitwise, reflected polynomial 0x82F63B78: headers are at most ~1 kB, no table needed. */
uint32_t pp_crc32c(uint32_t crc, const uint8_t *buf, size_t len)
{
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= buf[i];
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* A line for the log and the client's error, for any PP_* code. */
const char *pp_strerror(int rc)
{
    switch (rc) {
    case PP_INCOMPLETE:
        return "incomplete PROXY header";
    case PP_OK:
        return "ok";
    case PP_NOT_PROXY:
        return "no PROXY protocol header";
    case PP_EINVALID:
        return "invalid PROXY protocol header";
    case PP_ETOOLONG:
        return "PROXY protocol header or TLV too long";
    case PP_ECRC:
        return "PROXY protocol header CRC32c mismatch";
    case PP_EUTF8:
        return "PROXY protocol locality TLV is not valid UTF-8";
    default:
        return "unknown PROXY protocol error";
    }
}

/* A big-endian int16 at p. */
static uint16_t pp_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* A big-endian int32 at p. */
static uint32_t pp_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Does buf agree with sig over the bytes both have? */
static bool pp_prefix_matches(const uint8_t *buf, size_t len, const uint8_t *sig, size_t siglen)
{
    size_t n = len < siglen ? len : siglen;
    return memcmp(buf, sig, n) == 0;
}

/* addr is 4 or 16 bytes in network order, port in host order. */
static void pp_set_sockaddr(struct sockaddr_storage *ss, int family, const uint8_t *addr,
                            uint16_t port)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        memcpy(&sin->sin_addr, addr, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        memcpy(&sin6->sin6_addr, addr, 16);
    }
}

/* ---------------------------------------------------------------- v1 */

/*
 * Finds the CRLF ending the v1 line.  The spec forbids a lone CR or LF and
 * caps the line at 107 bytes, so both are decided without waiting further.
 */
static int pp_v1_find_eol(const uint8_t *buf, size_t len, size_t *eol)
{
    size_t n = len < PP_V1_MAX_LEN ? len : PP_V1_MAX_LEN;

    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n')
            return PP_EINVALID;
        if (buf[i] != '\r')
            continue;
        if (i + 2 > PP_V1_MAX_LEN)
            return PP_ETOOLONG;
        if (i + 1 == len)
            return PP_INCOMPLETE;
        if (buf[i + 1] != '\n')
            return PP_EINVALID;
        *eol = i;
        return PP_OK;
    }
    return len >= PP_V1_MAX_LEN ? PP_ETOOLONG : PP_INCOMPLETE;
}

struct pp_v1_cursor {
    const uint8_t *p, *end;
};

/*
 * Takes the next field of the line: non-empty, followed by exactly one
 * space, or by the end of the line when it is the last one.
 */
static bool pp_v1_field(struct pp_v1_cursor *c, bool last, const uint8_t **f, size_t *flen)
{
    const uint8_t *start = c->p;

    while (c->p < c->end && *c->p != ' ')
        c->p++;
    *f = start;
    *flen = (size_t)(c->p - start);
    if (*flen == 0)
        return false;
    if (last)
        return c->p == c->end;
    if (c->p == c->end)
        return false;
    c->p++;
    return true;
}

/* Is the field exactly word? v1 is case-sensitive (the spec's words are upper case). */
static bool pp_v1_field_is(const uint8_t *f, size_t flen, const char *word)
{
    return flen == strlen(word) && memcmp(f, word, flen) == 0;
}

/* Decimal 0..65535, digits only, no heading zeroes (the spec forbids them). */
static bool pp_v1_port(const uint8_t *f, size_t flen, uint16_t *port)
{
    uint32_t v = 0;

    if (flen == 0 || flen > 5 || (f[0] == '0' && flen > 1))
        return false;
    for (size_t i = 0; i < flen; i++) {
        if (f[i] < '0' || f[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(f[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* inet_pton needs a C string; a NUL inside the field must not cut it short. */
static bool pp_v1_addr(const uint8_t *f, size_t flen, int family, uint8_t *addr)
{
    char text[INET6_ADDRSTRLEN + 1];

    if (flen >= sizeof(text) || memchr(f, '\0', flen) != NULL)
        return false;
    memcpy(text, f, flen);
    text[flen] = '\0';
    return inet_pton(family, text, addr) == 1;
}

/* "TCP4|TCP6 <src> <dst> <sport> <dport>", the protocol word already taken. */
static int pp_v1_parse_tcp(struct pp_v1_cursor *c, int family, struct pp_header *out)
{
    const uint8_t *f[4];
    size_t flen[4];
    uint8_t src[16], dst[16];
    uint16_t sport, dport;

    for (int i = 0; i < 4; i++) {
        if (!pp_v1_field(c, i == 3, &f[i], &flen[i]))
            return PP_EINVALID;
    }
    if (!pp_v1_addr(f[0], flen[0], family, src) || !pp_v1_addr(f[1], flen[1], family, dst) ||
        !pp_v1_port(f[2], flen[2], &sport) || !pp_v1_port(f[3], flen[3], &dport))
        return PP_EINVALID;
    pp_set_sockaddr(&out->src, family, src, sport);
    pp_set_sockaddr(&out->dst, family, dst, dport);
    return PP_OK;
}

/* "UNKNOWN" alone, or followed by a space and anything up to the CRLF (ignored). */
static bool pp_v1_is_unknown(const uint8_t *p, size_t n)
{
    return n >= 7 && memcmp(p, "UNKNOWN", 7) == 0 && (n == 7 || p[7] == ' ');
}

/*
 * A v1 text header: UNKNOWN is local (no address), else TCP4 or TCP6 and the
 * addresses; PP_INCOMPLETE until the line's end has come.
 */
static int pp_parse_v1(const uint8_t *buf, size_t len, struct pp_header *out)
{
    size_t eol = 0;
    int rc = pp_v1_find_eol(buf, len, &eol);
    struct pp_v1_cursor c;
    const uint8_t *proto;
    size_t plen;

    if (rc != PP_OK)
        return rc;
    out->version = 1;
    out->length = eol + 2;
    c.p = buf + sizeof(pp_v1_sig);
    c.end = buf + eol;
    if (pp_v1_is_unknown(c.p, (size_t)(c.end - c.p))) {
        out->local = true;
        return PP_OK;
    }
    if (!pp_v1_field(&c, false, &proto, &plen))
        return PP_EINVALID;
    if (pp_v1_field_is(proto, plen, "TCP4"))
        return pp_v1_parse_tcp(&c, AF_INET, out);
    if (pp_v1_field_is(proto, plen, "TCP6"))
        return pp_v1_parse_tcp(&c, AF_INET6, out);
    return PP_EINVALID;
}

/* ---------------------------------------------------------------- v2 */

/* Address block size for each family/transport byte the spec defines, -1 for the rest. */
static int pp_v2_addr_len(uint8_t fam)
{
    switch (fam) {
    case 0x00:
        return 0;
    case 0x11:
    case 0x12:
        return 12;
    case 0x21:
    case 0x22:
        return 36;
    case 0x31:
    case 0x32:
        return 216;
    default:
        return -1;
    }
}

/* Which configured locality type t is, or -1. */
static int pp_locality_index(uint8_t t, const struct pp_tlv_types *types)
{
    if (t == types->city)
        return LOC_CITY;
    if (t == types->region)
        return LOC_REGION;
    if (t == types->location)
        return LOC_LOCATION;
    return -1;
}

/*
 * One TLV at hdr[pos]: checks that it lies inside the header and notes the
 * ones pgnear reads.  Everything else (ALPN, AUTHORITY, NOOP, UNIQUE_ID,
 * SSL, NETNS, cloud and unknown types) is skipped, as the spec allows.
 */
static int pp_v2_tlv(const uint8_t *hdr, size_t total, size_t *pos,
                     const struct pp_tlv_types *types, struct pp_tlv_scan *scan)
{
    uint8_t type;
    size_t vlen, vpos;
    int idx;

    if (total - *pos < 3)
        return PP_EINVALID;
    type = hdr[*pos];
    vlen = pp_be16(hdr + *pos + 1);
    vpos = *pos + 3;
    if (vlen > total - vpos)
        return PP_EINVALID;
    *pos = vpos + vlen;
    if (type == PP2_TYPE_CRC32C) {
        if (vlen != PP_V2_CRC_LEN || scan->has_crc)
            return PP_EINVALID;
        scan->has_crc = true;
        scan->crc_at = vpos;
        return PP_OK;
    }
    idx = pp_locality_index(type, types);
    if (idx < 0 && type == PP2_TYPE_PGNEAR_PEER) {
        if ((vlen != 2 && vlen != 2 + PP_PEER_MAC_LEN) || scan->peer_id != 0 ||
            pp_be16(hdr + vpos) == 0)
            return PP_EINVALID;
        scan->peer_id = pp_be16(hdr + vpos);
        scan->peer_mac = vlen > 2 ? hdr + vpos + 2 : NULL;
        return PP_OK;
    }
    if (idx < 0)
        return PP_OK;
    if (scan->seen[idx])
        return PP_EINVALID;
    scan->seen[idx] = true;
    scan->val[idx] = hdr + vpos;
    scan->vlen[idx] = vlen;
    return PP_OK;
}

/* The header is checksummed with its own CRC field read as zeroes. */
static bool pp_v2_crc_ok(const uint8_t *hdr, size_t total, size_t crc_at)
{
    static const uint8_t zeroes[PP_V2_CRC_LEN];
    uint32_t crc = pp_crc32c(0, hdr, crc_at);

    crc = pp_crc32c(crc, zeroes, sizeof(zeroes));
    crc = pp_crc32c(crc, hdr + crc_at + PP_V2_CRC_LEN, total - crc_at - PP_V2_CRC_LEN);
    return crc == pp_be32(hdr + crc_at);
}

/* A locality TLV: well-formed UTF-8, no NUL. */
static bool pp_utf8_valid(const uint8_t *s, size_t n)
{
    return utf8_invalid_at(s, n) == n;
}

/* An empty TLV (a balancer with nothing to say) counts as absent. */
static int pp_copy_locality(const uint8_t *val, size_t vlen, bool *has, char *dst)
{
    if (vlen == 0)
        return PP_OK;
    if (vlen > PP_TLV_VALUE_MAX)
        return PP_ETOOLONG;
    if (!pp_utf8_valid(val, vlen))
        return PP_EUTF8;
    memcpy(dst, val, vlen);
    dst[vlen] = '\0';
    *has = true;
    return PP_OK;
}

/* Walks all TLVs first, so that a bad CRC is reported before anything inside is judged. */
static int pp_v2_parse_tlvs(const uint8_t *hdr, size_t total, size_t pos,
                            const struct pp_tlv_types *types, struct pp_header *out)
{
    struct pp_tlv_scan scan;
    int rc;

    memset(&scan, 0, sizeof(scan));
    while (pos < total) {
        rc = pp_v2_tlv(hdr, total, &pos, types, &scan);
        if (rc != PP_OK)
            return rc;
    }
    if (scan.has_crc) {
        if (!pp_v2_crc_ok(hdr, total, scan.crc_at))
            return PP_ECRC;
        out->crc_checked = true;
    }
    out->peer_id = scan.peer_id;
    out->has_peer_mac = scan.peer_mac != NULL;
    if (out->has_peer_mac)
        memcpy(out->peer_mac, scan.peer_mac, PP_PEER_MAC_LEN);
    rc = pp_copy_locality(scan.val[LOC_CITY], scan.vlen[LOC_CITY], &out->has_city, out->city);
    if (rc == PP_OK)
        rc = pp_copy_locality(scan.val[LOC_REGION], scan.vlen[LOC_REGION], &out->has_region,
                              out->region);
    if (rc == PP_OK)
        rc = pp_copy_locality(scan.val[LOC_LOCATION], scan.vlen[LOC_LOCATION], &out->has_location,
                              out->location);
    return rc;
}

/* TCP over IPv4 or IPv6: addresses, then ports, all in network order. */
static void pp_v2_addresses(const uint8_t *block, uint8_t fam, struct pp_header *out)
{
    int family = fam == PP_V2_TCP4 ? AF_INET : AF_INET6;
    size_t alen = fam == PP_V2_TCP4 ? 4 : 16;

    pp_set_sockaddr(&out->src, family, block, pp_be16(block + 2 * alen));
    pp_set_sockaddr(&out->dst, family, block + alen, pp_be16(block + 2 * alen + 2));
}

/* Everything the fixed 16 bytes can tell, before waiting for the rest. */
static int pp_v2_check_fixed(const uint8_t *buf, int *addr_len)
{
    uint8_t cmd = buf[12] & 0x0F, fam = buf[13];
    size_t paylen = pp_be16(buf + 14);

    if ((buf[12] >> 4) != 2 || (cmd != PP_V2_CMD_LOCAL && cmd != PP_V2_CMD_PROXY))
        return PP_EINVALID;
    *addr_len = pp_v2_addr_len(fam);
    if (*addr_len < 0)
        return PP_EINVALID;
    /* pgnear proxies TCP only: UDP and UNIX sockets are refused unless LOCAL. */
    if (cmd == PP_V2_CMD_PROXY && fam != PP_V2_TCP4 && fam != PP_V2_TCP6 && fam != PP_V2_UNSPEC)
        return PP_EINVALID;
    if (paylen > PP_V2_MAX_PAYLOAD)
        return PP_ETOOLONG;
    if (paylen < (size_t)*addr_len)
        return PP_EINVALID;
    return PP_OK;
}

/*
 * A v2 binary header: the fixed part checked, the addresses unless LOCAL or
 * UNSPEC, then the TLVs; PP_INCOMPLETE until all of it has come.
 */
static int pp_parse_v2(const uint8_t *buf, size_t len, const struct pp_tlv_types *types,
                       struct pp_header *out)
{
    int addr_len;
    int rc = pp_v2_check_fixed(buf, &addr_len);
    size_t total = PP_V2_HDR_LEN + (size_t)pp_be16(buf + 14);
    uint8_t fam = buf[13];

    if (rc != PP_OK)
        return rc;
    if (len < total)
        return PP_INCOMPLETE;
    out->version = 2;
    out->length = total;
    out->local = (buf[12] & 0x0F) == PP_V2_CMD_LOCAL || fam == PP_V2_UNSPEC;
    if (!out->local)
        pp_v2_addresses(buf + PP_V2_HDR_LEN, fam, out);
    return pp_v2_parse_tlvs(buf, total, PP_V2_HDR_LEN + (size_t)addr_len, types, out);
}

/* ---------------------------------------------------------------- entry */

int pp_parse(const uint8_t *buf, size_t len, const struct pp_tlv_types *types,
             struct pp_header *out)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if (len == 0)
        return PP_INCOMPLETE;
    if (buf[0] == pp_v1_sig[0]) {
        if (!pp_prefix_matches(buf, len, pp_v1_sig, sizeof(pp_v1_sig)))
            return PP_NOT_PROXY;
        if (len < sizeof(pp_v1_sig))
            return PP_INCOMPLETE;
        rc = pp_parse_v1(buf, len, out);
    } else if (buf[0] == pp_v2_sig[0]) {
        if (!pp_prefix_matches(buf, len, pp_v2_sig, sizeof(pp_v2_sig)))
            return PP_NOT_PROXY;
        if (len < PP_V2_HDR_LEN)
            return PP_INCOMPLETE;
        rc = pp_parse_v2(buf, len, types, out);
    } else {
        return PP_NOT_PROXY;
    }
    if (rc != PP_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* Copies n bytes to out at at; the length after them. */
static size_t pp_put(uint8_t *out, size_t at, const void *bytes, size_t n)
{
    memcpy(out + at, bytes, n);
    return at + n;
}

size_t pp_build_v2(uint8_t *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst,
                   int peer_id, const uint8_t *mac)
{
    bool v4 = src->sa_family == AF_INET && dst->sa_family == AF_INET;
    bool v6 = src->sa_family == AF_INET6 && dst->sa_family == AF_INET6;
    size_t addrs = v4 ? 12 : v6 ? 36 : 0;
    size_t tlv_len = 2 + (mac != NULL ? PP_PEER_MAC_LEN : 0);
    size_t payload = addrs + (peer_id > 0 ? 3 + tlv_len : 0);
    if (cap < PP_V2_HDR_LEN + payload || peer_id > 0xFFFF)
        return 0;
    size_t n = pp_put(out, 0, pp_v2_sig, sizeof(pp_v2_sig));
    out[n++] = 0x20 | (addrs > 0 ? PP_V2_CMD_PROXY : PP_V2_CMD_LOCAL);
    out[n++] = v4 ? PP_V2_TCP4 : v6 ? PP_V2_TCP6 : PP_V2_UNSPEC;
    out[n++] = (uint8_t)(payload >> 8);
    out[n++] = (uint8_t)payload;
    if (v4) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)src;
        const struct sockaddr_in *b = (const struct sockaddr_in *)dst;
        n = pp_put(out, n, &a->sin_addr, 4);
        n = pp_put(out, n, &b->sin_addr, 4);
        n = pp_put(out, n, &a->sin_port, 2);
        n = pp_put(out, n, &b->sin_port, 2);
    } else if (v6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)src;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)dst;
        n = pp_put(out, n, &a->sin6_addr, 16);
        n = pp_put(out, n, &b->sin6_addr, 16);
        n = pp_put(out, n, &a->sin6_port, 2);
        n = pp_put(out, n, &b->sin6_port, 2);
    }
    if (peer_id > 0) {
        const uint8_t tlv[5] = {PP2_TYPE_PGNEAR_PEER, 0, (uint8_t)tlv_len, (uint8_t)(peer_id >> 8),
                                (uint8_t)peer_id};
        n = pp_put(out, n, tlv, sizeof(tlv));
        if (mac != NULL)
            n = pp_put(out, n, mac, PP_PEER_MAC_LEN);
    }
    return n;
}
