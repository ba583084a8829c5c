/*
 * startup.h — the first packet of a connection: SSLRequest, GSSENCRequest,
 * CancelRequest or StartupMessage, parsed with strict bounds.
 */
#ifndef PGNEAR_PROTOCOL_STARTUP_H
#define PGNEAR_PROTOCOL_STARTUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PostgreSQL's own limit (MAX_STARTUP_PACKET_LENGTH). */
#define STARTUP_MAX_LEN        10000
#define STARTUP_MIN_LEN        8
#define STARTUP_MAX_PARAMS     64
#define STARTUP_MAX_UNKNOWN_PQ 16
/* Protocol 3.2 (PostgreSQL 18) allows cancel keys of up to 256 bytes. */
#define CANCEL_KEY_MAX_LEN 256
#define CANCEL_KEY_V30_LEN 4

#define PROTO_CODE_SSL      80877103u
#define PROTO_CODE_GSSENC   80877104u
#define PROTO_CODE_CANCEL   80877102u
#define PROTO_MAJOR(v)      ((v) >> 16)
#define PROTO_MINOR(v)      ((v)&0xffff)
#define PROTO_VERSION(M, m) (((uint32_t)(M) << 16) | (m))
/* The newest protocol pgnear speaks to clients. */
#define PROTO_LATEST_MINOR 2

/* The record type of a TLS handshake: the first byte of a ClientHello. */
#define TLS_RECORD_HANDSHAKE 0x16

enum startup_kind {
    STARTUP_SSL_REQUEST,
    STARTUP_GSSENC_REQUEST,
    STARTUP_CANCEL_REQUEST,
    STARTUP_MESSAGE,
};

enum startup_error {
    STARTUP_OK = 0,
    STARTUP_INCOMPLETE = 1, /* not an error: need more bytes */
    STARTUP_EBADLEN = -1,
    STARTUP_EBADPROTO = -2,
    STARTUP_EBADPARAMS = -3,
    STARTUP_ENOUSER = -4,
    STARTUP_ETOOMANY = -5,
    STARTUP_EBADCANCEL = -6,
};

struct startup_param {
    const char *name; /* pointers into the parsed packet */
    const char *value;
};

struct startup_packet {
    enum startup_kind kind;
    uint32_t version; /* as sent: 3.x, or one of the request codes */
    /* CancelRequest */
    uint32_t cancel_pid;
    const uint8_t *cancel_key;
    size_t cancel_key_len;
    /* StartupMessage */
    size_t nparams;
    struct startup_param params[STARTUP_MAX_PARAMS];
    const char *user;
    const char *database;
    size_t n_unknown_pq; /* "_pq_." options pgnear does not know (all of them, today) */
    const char *unknown_pq[STARTUP_MAX_UNKNOWN_PQ];
};

/*
 * Reads the length word of the first packet.  Returns STARTUP_INCOMPLETE
 * until four bytes are there, STARTUP_EBADLEN for lengths outside
 * [STARTUP_MIN_LEN, STARTUP_MAX_LEN].
 */
int startup_packet_length(const uint8_t *buf, size_t avail, uint32_t *len);

/*
 * Whether the connection's first bytes are a TLS handshake record (0x16),
 * a direct TLS handshake (PostgreSQL 17's sslnegotiation=direct) instead of
 * a packet: as a length word that byte would be hundreds of megabytes, so
 * startup_packet_length refuses it (STARTUP_EBADLEN).  False until a byte is there.
 */
bool startup_is_tls_handshake(const uint8_t *buf, size_t avail);

/* Parses one whole packet (length word included); pointers in *out point into buf. */
int startup_parse(const uint8_t *buf, size_t len, struct startup_packet *out);

/* PostgreSQL's NAMEDATALEN - 1: the most bytes of a user or database name it keeps. */
#define STARTUP_NAME_MAX 63

/*
 * Cuts a parsed StartupMessage's user and database names to
 * STARTUP_NAME_MAX bytes in buf, the packet sp was parsed from, as
 * PostgreSQL's ProcessStartupPacket does before any lookup: a byte cut (the
 * client's encoding is not known yet), so that every name pgnear keys on
 * (the hba line, limits, pools, secrets) is the role the server logs in.
 */
void startup_cut_names(uint8_t *buf, size_t len, struct startup_packet *sp);

const char *startup_strerror(int err);

/* The value of a startup parameter, or NULL. */
const char *startup_param(const struct startup_packet *sp, const char *name);

#endif
