/*
 * utf8.h — well-formed UTF-8, as PostgreSQL accepts it: no overlong forms,
 * no surrogates, nothing above U+10FFFF.
 */
#ifndef PGNEAR_PROTOCOL_UTF8_H
#define PGNEAR_PROTOCOL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length of the sequence at s (n > 0 bytes available); 0 when it is ill-formed. */
size_t utf8_seq_len(const uint8_t *s, size_t n);

/* The offset of the first byte that is not well-formed UTF-8, or a NUL; len when all of it is. */
size_t utf8_invalid_at(const uint8_t *s, size_t len);

/*
 * Writes code point cp (at most U+10FFFF; the caller has checked it) as
 * UTF-8 into out; returns its length, 1 to 4.  The one encoder of the
 * protocol layer: JSON's \u escapes (json.c), SQL's U& names (sql_calls.c).
 */
size_t utf8_put(uint32_t cp, uint8_t out[4]);

#endif
