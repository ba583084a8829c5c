/*
 * pkt_add.h — a whole v3 message appended to an evbuffer.
 *
 * The framing of the messages pgnear writes by hand rather than through
 * a pktbuf: a Query of its own (the state read of a move, a fence, a
 * pool's reset, a kept connection's check), a message passed on, a
 * replay's headers, the prepared statements' rewritten Parse, Bind,
 * Describe and Close (prep_*.c), a session state's replay
 * (session_state.c).  A message type pgnear writes whole has one builder
 * here (Terminate, Sync, ParseComplete, ReadyForQuery, Parse, a text
 * Bind, Execute); the fixed bytes of those that have them are pkt.h's.
 * Lengths are a body's length throughout: the header written says
 * body_len + 4, as its length word counts itself.  Each returns 0, or -1
 * when out of memory (what was appended then is not said: the caller
 * closes).
 */
#ifndef PGNEAR_PROTOCOL_PKT_ADD_H
#define PGNEAR_PROTOCOL_PKT_ADD_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct pkt_report;

/* The header of a message of type whose body, body_len bytes, the caller adds next. */
int pkt_add_header(struct evbuffer *out, char type, size_t body_len);
/* A whole message: its header and body. */
int pkt_add_msg(struct evbuffer *out, char type, const void *body, size_t body_len);

/* A piece of a message for pkt_add_pieces. */
struct pkt_piece {
    const void *p;
    size_t len;
};

/*
 * A message of type whose body is the n pieces one after the other: its
 * header and the pieces in one evbuffer_add where they fit a small block
 * (each add costs about 90 instructions: a rewritten Bind was six).
 */
int pkt_add_pieces(struct evbuffer *out, char type, const struct pkt_piece *pieces, size_t n);
/*
 * A Describe ('D') or Close ('C') of the statement ('S') or portal ('P')
 * named name, name_len bytes without a NUL.
 */
int pkt_add_target(struct evbuffer *out, char type, char kind, const char *name, size_t name_len);
/* A Query ('Q') of sql, NUL-terminated. */
int pkt_add_query(struct evbuffer *out, const char *sql);
/* Terminate ('X'). */
int pkt_add_terminate(struct evbuffer *out);
/* Sync ('S'). */
int pkt_add_sync(struct evbuffer *out);
/* ParseComplete ('1'). */
int pkt_add_parse_complete(struct evbuffer *out);
/* ReadyForQuery ('Z') with status: 'I' idle, 'T' in a transaction, 'E' in a failed one. */
int pkt_add_ready(struct evbuffer *out, char status);
/*
 * A Parse ('P') of the statement name (name_len bytes) of sql (sql_len
 * bytes), neither with its NUL, and ntypes parameter types: 4 bytes each
 * at types, big-endian, as a Parse carries them (NULL when none).
 */
int pkt_add_parse(struct evbuffer *out, const char *name, size_t name_len, const void *sql,
                  size_t sql_len, const void *types, uint16_t ntypes);

/* The most parameters pkt_add_bind_text takes. */
#define PKT_BIND_TEXT_MAX 8
/*
 * A Bind ('B') of the unnamed statement to the unnamed portal with the n
 * (at most PKT_BIND_TEXT_MAX) parameters in text, none NULL, and its
 * results in text.
 */
int pkt_add_bind_text(struct evbuffer *out, const struct pkt_piece *params, uint16_t n);
/* An Execute ('E') of the unnamed portal, all its rows. */
int pkt_add_execute_all(struct evbuffer *out);
/*
 * A request canceled before its statement ran to its end, answered as a
 * server answers one a cancel stopped: answer holds what a server sent
 * for it so far (or nothing); what precedes its first result, error or
 * ReadyForQuery stays (ParseComplete, BindComplete, a description: the
 * client was told of its statement), the rest is dropped, and the error
 * 57014 "canceling statement due to user request" and a ReadyForQuery
 * (idle) are appended.
 */
int pkt_add_canceled(struct evbuffer *answer);
/* The same with why as the error (an ERROR 57014 of pgnear's own: query_timeout's). */
int pkt_add_canceled_as(struct evbuffer *answer, const struct pkt_report *why);

#endif
