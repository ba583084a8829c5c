/*
 * json_out.c — text escaped into a JSON string: into a caller's buffer
 * with a capacity, or appended to an evbuffer between quotes (json_out.h
 * says what is escaped and how).
 */
#include "protocol/json_out.h"

#include <stdint.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/utf8.h"

/* The longest piece one step writes: \u00XX. */
#define PIECE_MAX 6

/* The escape of a control byte, or of an ASCII byte HTML must not see: short form or \u00XX. */
static size_t escape_byte(char *out, uint8_t c)
{
    static const char hex[] = "0123456789abcdef";
    const char *shortcut = c == '\b'   ? "\\b"
                           : c == '\f' ? "\\f"
                           : c == '\n' ? "\\n"
                           : c == '\r' ? "\\r"
                           : c == '\t' ? "\\t"
                                       : NULL;
    if (shortcut != NULL) {
        memcpy(out, shortcut, 2);
        return 2;
    }
    memcpy(out, "\\u00", 4);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
}

/* The output for the character at t (n > 0 bytes left) into piece; *used: the bytes it takes. */
static size_t next_piece(char piece[PIECE_MAX], const uint8_t *t, size_t n, unsigned flags,
                         size_t *used)
{
    uint8_t c = t[0];
    *used = 1;
    if (c == '"' || c == '\\') {
        piece[0] = '\\';
        piece[1] = (char)c;
        return 2;
    }
    if (c < 0x20 || c == 0x7f ||
        ((flags & JSON_OUT_HTML) != 0 && (c == '<' || c == '>' || c == '&')))
        return escape_byte(piece, c);
    if (c < 0x80) {
        piece[0] = (char)c;
        return 1;
    }
    size_t len = utf8_seq_len(t, n);
    if (len == 0) {
        memcpy(piece, "\xEF\xBF\xBD", 3); /* U+FFFD for this one byte */
        return 3;
    }
    memcpy(piece, t, len);
    *used = len;
    return len;
}

/* As many whole pieces of t as fit in room bytes at out; *consumed: the input they took. */
static size_t escape_run(char *out, size_t room, const uint8_t *t, size_t len, unsigned flags,
                         size_t *consumed)
{
    size_t n = 0, i = 0;
    while (i < len) {
        char piece[PIECE_MAX];
        size_t used, plen = next_piece(piece, t + i, len - i, flags, &used);
        if (plen > room - n)
            break;
        memcpy(out + n, piece, plen);
        n += plen;
        i += used;
    }
    *consumed = i;
    return n;
}

size_t json_out_escape(char *out, size_t cap, const void *text, size_t len, unsigned flags)
{
    if (cap == 0)
        return 0;
    size_t consumed;
    size_t n = escape_run(out, cap - 1, text, len, flags, &consumed);
    out[n] = '\0';
    return n;
}

int json_out_add(struct evbuffer *out, const void *text, size_t len, unsigned flags)
{
    const uint8_t *t = text;
    char chunk[512];
    if (evbuffer_add(out, "\"", 1) != 0)
        return -1;
    while (len > 0) {
        size_t consumed, n = escape_run(chunk, sizeof(chunk), t, len, flags, &consumed);
        if (evbuffer_add(out, chunk, n) != 0)
            return -1;
        t += consumed;
        len -= consumed;
    }
    return evbuffer_add(out, "\"", 1) != 0 ? -1 : 0;
}
