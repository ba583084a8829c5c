/*
 * pg_encoding.h — text in a PostgreSQL client encoding turned into UTF8
 * and back, as the server converts a client's text: where pgnear speaks
 * for a server in the client's encoding (LISTEN and NOTIFY answered by
 * pgnear, proxy/session/notify_hub.h), and with the server's errors for
 * what it refuses (22021 invalid byte sequence, 22P05 no equivalent).
 *
 * UTF8 and SQL_ASCII pass as they are (the server converts neither to a
 * UTF8 database; it only checks the bytes, utf8.h); the others go through
 * iconv under their iconv names.  PostgreSQL's own tables differ from
 * iconv's in a few characters of some multibyte encodings; MULE_INTERNAL
 * is not known here (PG_ENC_UNKNOWN: the caller leaves the text to the
 * server).
 */
#ifndef PGNEAR_PROTOCOL_PG_ENCODING_H
#define PGNEAR_PROTOCOL_PG_ENCODING_H

#include <stdbool.h>
#include <stddef.h>

struct pg_error;

enum pg_enc_rc {
    PG_ENC_OK = 0,
    PG_ENC_INVALID,    /* a byte sequence not valid in the source encoding */
    PG_ENC_UNMAPPABLE, /* a character with no equivalent in the target encoding */
    PG_ENC_NOSPACE,    /* out's cap is too short */
    PG_ENC_UNKNOWN,    /* an encoding pgnear cannot convert */
};

/* The server's name for a client encoding spelt as a client may spell it ("latin-1"); NULL: not
 * known. */
const char *pg_encoding_canonical(const char *name);

/*
 * A canonical name's number, 1 up (UTF8 is 1), for what keeps one a
 * session in a byte; 0 for a name that is none of them.  pg_encoding_name
 * gives the name back (NULL for a number that is none).
 */
unsigned pg_encoding_number(const char *canonical);
const char *pg_encoding_name(unsigned number);

/* Whether text in encoding name (as the server reports client_encoding) needs no conversion to
 * UTF8. */
bool pg_encoding_is_utf8(const char *name);

/*
 * len bytes of in, in encoding from, into out (cap bytes, NUL added) in
 * encoding to, one of them "UTF8"; *out_len the bytes written, *bad_at
 * the offset in in of the sequence refused.  UTF8 input is checked first.
 */
enum pg_enc_rc pg_encoding_convert(const char *from, const char *to, const void *in, size_t len,
                                   char *out, size_t cap, size_t *out_len, size_t *bad_at);

/*
 * The server's error for rc (PG_ENC_INVALID, PG_ENC_UNMAPPABLE) at bad_at
 * of in (len bytes), converting from into to, in the server's words.
 */
void pg_encoding_error(struct pg_error *e, enum pg_enc_rc rc, const char *from, const char *to,
                       const void *in, size_t len, size_t bad_at);

#endif
