/*
 * json_out.h — the one writer of a JSON string (RFC 8259) in pgnear: the
 * log's lines under log_format = json (proxy/base/log.c), the probes'
 * bodies (proxy/admin/probes.c) and /status.json (proxy/admin/status_page.c)
 * all escape their text here.  json.c is the reader.
 *
 * The output is always well-formed UTF-8 and valid inside a JSON string,
 * whatever the input: '"' and '\\' as \" and \\; the control characters
 * U+0000 to U+001F and DEL (U+007F) escaped, \b \f \n \r \t by their short
 * forms, the others as \u00XX (lower-case hex); well-formed UTF-8 (utf8.h:
 * no overlong forms, no surrogates, nothing above U+10FFFF) copied; each
 * byte that is not part of a well-formed sequence written as U+FFFD
 * (EF BF BD), one for each such byte.  With JSON_OUT_HTML, '<', '>' and '&'
 * are escaped too (\u003c, \u003e, \u0026), so that the text is inert
 * wherever it lands in HTML.
 */
#ifndef PGNEAR_PROTOCOL_JSON_OUT_H
#define PGNEAR_PROTOCOL_JSON_OUT_H

#include <stddef.h>

struct evbuffer;

/* Flags of json_out_escape and json_out_add. */
#define JSON_OUT_HTML 1u /* '<', '>' and '&' escaped too */

/*
 * The len bytes at text escaped into out, a buffer of cap bytes: at most
 * cap - 1 bytes and a NUL after them (cap 0: nothing written).  Stops
 * before an escape or a character that would not fit whole, so a cut
 * output is still valid; returns the length written, NUL not counted.
 * Nothing is allocated.
 */
size_t json_out_escape(char *out, size_t cap, const void *text, size_t len, unsigned flags);

/*
 * The len bytes at text appended to out as one JSON string: escaped as
 * above, between double quotes.  Returns 0, or -1 when the evbuffer could
 * not grow (out may then hold part of it).
 */
int json_out_add(struct evbuffer *out, const void *text, size_t len, unsigned flags);

#endif
