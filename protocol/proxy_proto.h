/*
 * proxy_proto.h — the PROXY protocol header (v1 text and v2 binary) a TCP
 * load balancer puts in front of the PostgreSQL stream, parsed strictly as
 * HAProxy's proxy-protocol.txt defines it, plus pgnear's locality TLVs.
 */
#ifndef PGNEAR_PROTOCOL_PROXY_PROTO_H
#define PGNEAR_PROTOCOL_PROXY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6 addresses). */
#define PP_V1_MAX_LEN 107
/* The fixed part of a v2 header: signature, version/command, family, length. */
#define PP_V2_HDR_LEN 16
/* Largest v2 length field (bytes after the fixed part) pgnear accepts. */
#define PP_V2_MAX_PAYLOAD 1024

/* Registered v2 TLV types. */
#define PP2_TYPE_ALPN      0x01
#define PP2_TYPE_AUTHORITY 0x02
#define PP2_TYPE_CRC32C    0x03
#define PP2_TYPE_NOOP      0x04
#define PP2_TYPE_UNIQUE_ID 0x05
#define PP2_TYPE_SSL       0x20
#define PP2_TYPE_NETNS     0x30
/* The custom range and the cloud vendors' types inside it. */
#define PP2_TYPE_MIN_CUSTOM 0xE0
#define PP2_TYPE_MAX_CUSTOM 0xEF
#define PP2_TYPE_GCP        0xE0
#define PP2_TYPE_ALIBABA    0xE1
#define PP2_TYPE_AWS        0xEA
#define PP2_TYPE_AZURE      0xEE
/*
 * pgnear's own: the peer_id of the instance that forwarded a cancel
 * request (2 bytes), followed, when the fleet has a secret, by
 * PP_PEER_MAC_LEN bytes that authenticate the header and the request.
 */
#define PP2_TYPE_PGNEAR_PEER 0xE8
#define PP_PEER_MAC_LEN      16

/* pgnear's default locality TLV types. */
#define PP_TLV_CITY_DEFAULT     0xE3
#define PP_TLV_REGION_DEFAULT   0xE4
#define PP_TLV_LOCATION_DEFAULT 0xE5

enum pp_result {
    PP_INCOMPLETE = 0, /* need more bytes */
    PP_OK = 1,
    PP_NOT_PROXY = -1, /* the bytes do not start a PROXY header: a plain PostgreSQL client */
    PP_EINVALID = -2,
    PP_ETOOLONG = -3,
    PP_ECRC = -4,  /* CRC32c TLV mismatch */
    PP_EUTF8 = -5, /* a locality TLV that is not valid UTF-8 */
};

struct pp_tlv_types {
    uint8_t city, region, location;
};

#define PP_TLV_VALUE_MAX 128

struct pp_header {
    int version; /* 1 or 2 */
    /* v2 LOCAL command, v2 UNSPEC family or v1 "UNKNOWN": keep the socket's own addresses */
    bool local;
    struct sockaddr_storage src, dst;        /* when !local: AF_INET or AF_INET6 with ports */
    bool has_city, has_region, has_location; /* an empty TLV counts as absent */
    bool crc_checked;                        /* a CRC32C TLV was present and matched */
    int peer_id;                             /* PP2_TYPE_PGNEAR_PEER's value; 0 when absent */
    bool has_peer_mac;
    uint8_t peer_mac[PP_PEER_MAC_LEN];
    char city[PP_TLV_VALUE_MAX + 1], region[PP_TLV_VALUE_MAX + 1],
        location[PP_TLV_VALUE_MAX + 1]; /* NUL-terminated copies */
    size_t length; /* bytes the header occupies; the PostgreSQL stream starts after them */
};

void pp_tlv_types_default(struct pp_tlv_types *t);

/*
 * Looks at the first bytes a client sent.  PP_INCOMPLETE while fewer bytes
 * than needed to decide/finish; PP_NOT_PROXY as soon as the bytes cannot be
 * the start of either signature (a PostgreSQL client's first bytes are a
 * 4-byte length <= 10000, which never matches "PROXY " nor the v2
 * signature).  Only PP_OK fills *out; bytes after out->length are not
 * looked at (a second PROXY header there is the caller's protocol error).
 */
int pp_parse(const uint8_t *buf, size_t len, const struct pp_tlv_types *types,
             struct pp_header *out);

/* CRC32c (Castagnoli, RFC 4960 appendix B) of buf, continuing from crc (0 to start). */
uint32_t pp_crc32c(uint32_t crc, const uint8_t *buf, size_t len);

const char *pp_strerror(int rc);

/*
 * Writes a PROXY protocol v2 header naming src as the caller and dst as
 * the address it reached (TCP over IPv4 or IPv6), with a
 * PP2_TYPE_PGNEAR_PEER TLV when peer_id > 0 (and mac, PP_PEER_MAC_LEN
 * bytes, in it when not NULL); a LOCAL header when the two are not both
 * IPv4 or both IPv6.  Its length, or 0 when cap is too small
 * (PP_V2_BUILD_MAX always fits).
 */
#define PP_V2_BUILD_MAX (PP_V2_HDR_LEN + 36 + 3 + 2 + PP_PEER_MAC_LEN)
size_t pp_build_v2(uint8_t *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst,
                   int peer_id, const uint8_t *mac);

#endif /* PGNEAR_PROTOCOL_PROXY_PROTO_H */
