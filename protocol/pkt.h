/*
 * pkt.h — building and reading PostgreSQL v3 protocol messages.
 *
 * The builder writes into caller-provided storage and carries a sticky
 * error flag: callers make many puts and check pkt_ok() once at the end,
 * the way PgBouncer's PktBuf works.  Nothing here allocates.
 */
#ifndef PGNEAR_PROTOCOL_PKT_H
#define PGNEAR_PROTOCOL_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Header of every message after the startup packet: type byte + int32 length. */
#define PKT_HEADER_LEN 5

struct pktbuf {
    uint8_t *data;
    size_t cap;
    size_t len;
    size_t msg_start; /* offset of the current message's length word */
    bool failed;
};

void pkt_init(struct pktbuf *pb, uint8_t *storage, size_t cap);
/* type 0 starts an untyped packet (startup, SSLRequest, CancelRequest). */
void pkt_begin(struct pktbuf *pb, char type);
void pkt_end(struct pktbuf *pb);
void pkt_put_u8(struct pktbuf *pb, uint8_t v);
void pkt_put_u16(struct pktbuf *pb, uint16_t v);
void pkt_put_u32(struct pktbuf *pb, uint32_t v);
void pkt_put_bytes(struct pktbuf *pb, const void *p, size_t n);
void pkt_put_cstr(struct pktbuf *pb, const char *s);
static inline bool pkt_ok(const struct pktbuf *pb)
{
    return !pb->failed;
}
/* For builders that find their input unfit to send (a count over int16, say). */
static inline void pkt_fail(struct pktbuf *pb)
{
    pb->failed = true;
}

/* One field of an ErrorResponse or NoticeResponse: its code and value; none when value is NULL. */
void pkt_put_field(struct pktbuf *pb, char code, const char *value);

/* Error or notice fields, PostgreSQL style, set by name (.hint = ...); detail, hint may be NULL. */
struct pkt_report {
    const char *severity; /* "FATAL", "ERROR", "NOTICE", ... */
    const char *sqlstate; /* five characters */
    const char *message;
    const char *detail;
    const char *hint;
};
/* Appends an ErrorResponse ('E') or NoticeResponse ('N'). */
void pkt_put_report(struct pktbuf *pb, char type, const struct pkt_report *r);

/* The codes of an authentication request ('R') that pgnear sends or reads. */
#define AUTH_OK            0
#define AUTH_CLEARTEXT     3
#define AUTH_MD5           5
#define AUTH_SASL          10
#define AUTH_SASL_CONTINUE 11
#define AUTH_SASL_FINAL    12

/* An authentication request ('R'): code (0: AuthenticationOk, 10: SASL, ...) and its data. */
void pkt_put_authentication(struct pktbuf *pb, uint32_t code, const void *data, size_t len);
/* ReadyForQuery ('Z'): status 'I' idle, 'T' in a transaction, 'E' in a failed one. */
void pkt_put_ready_for_query(struct pktbuf *pb, char status);

/*
 * The messages that are a header alone, whole: Terminate ('X'), Sync
 * ('S') and ParseComplete ('1').  pkt_add_terminate and the like append
 * them; the bytes are for a reader that looks for one in a stream, or a
 * caller that puts one before a buffer.
 */
extern const uint8_t pkt_terminate[PKT_HEADER_LEN];
extern const uint8_t pkt_sync[PKT_HEADER_LEN];
extern const uint8_t pkt_parse_complete[PKT_HEADER_LEN];
/* ParameterStatus ('S'). */
void pkt_put_parameter_status(struct pktbuf *pb, const char *name, const char *value);
/* BackendKeyData ('K'): key_len is 4 under protocol 3.0, up to 256 under 3.2. */
void pkt_put_backend_key_data(struct pktbuf *pb, uint32_t pid, const uint8_t *key, size_t key_len);

/* Reader over one received message body, sticky error as well. */
struct pktreader {
    const uint8_t *p;
    size_t len;
    size_t pos;
    bool failed;
};

void pkt_reader_init(struct pktreader *r, const uint8_t *p, size_t len);

/*
 * The field code of an ErrorResponse or NoticeResponse body (len bytes,
 * never trusted): its value, or NULL when the body has no such field or
 * is malformed before it.
 */
const char *pkt_report_field(const uint8_t *body, size_t len, char code);

/*
 * Whether a report's body (len bytes, never trusted; a prefix that holds
 * the severity does) says FATAL or PANIC: the server ends the connection
 * after it.  Its severity as PostgreSQL writes it in any language ('V',
 * since 9.6), else as the server's language has it ('S').
 */
bool pkt_report_fatal(const uint8_t *body, size_t len);
uint8_t pkt_get_u8(struct pktreader *r);
uint16_t pkt_get_u16(struct pktreader *r);
uint32_t pkt_get_u32(struct pktreader *r);
/* Returns a pointer into the message to a NUL-terminated string, or "" and failure. */
const char *pkt_get_cstr(struct pktreader *r);
/* Returns a pointer to n bytes inside the message, or NULL and failure. */
const uint8_t *pkt_get_bytes(struct pktreader *r, size_t n);
static inline size_t pkt_remaining(const struct pktreader *r)
{
    return r->failed ? 0 : r->len - r->pos;
}

static inline uint32_t pkt_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/*
 * The transaction status of a ReadyForQuery ('I', 'T' or 'E'), from its
 * body of body_len bytes (the length word less its own 4); 0 for any
 * other message, or a body without it.
 */
static inline uint8_t pkt_ready_status(char type, const uint8_t *body, size_t body_len)
{
    return type == 'Z' && body != NULL && body_len > 0 ? body[0] : 0;
}

static inline void pkt_store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

#endif
