/*
 * state_leave.c — which client messages may leave state in a server's
 * session (state_leave.h).
 */
#include "protocol/state_leave.h"

#include <stdbool.h>
#include <string.h>

#include "protocol/pkt.h"
#include "protocol/txn_pin.h"

/* Why the SQL text (len bytes) may leave state in the session, or NULL. */
static const char *state_leave_text(const uint8_t *sql, size_t len)
{
    if (txn_pin_rules_out(sql, len))
        return NULL;
    return txn_pin_scan(sql, len);
}

/* A Parse's body (whole): its name must be empty, and its text leave nothing. */
static const char *state_leave_parse(const uint8_t *body, size_t len)
{
    if (len == 0 || body[0] != '\0')
        return "a named prepared statement";
    const uint8_t *text = body + 1;
    const uint8_t *end = memchr(text, '\0', len - 1);
    if (end == NULL)
        return "a Parse pgnear could not read";
    return state_leave_text(text, (size_t)(end - text));
}

/* Why one message (whole: its body is all in body, blen bytes) may leave state, or NULL. */
static const char *state_leave_message(char type, const uint8_t *body, size_t blen, bool whole)
{
    switch (type) {
    case 'Q':
        if (!whole)
            return "a query longer than pgnear reads at once";
        return state_leave_text(body, blen > 0 && body[blen - 1] == '\0' ? blen - 1 : blen);
    case 'P':
        return whole ? state_leave_parse(body, blen) : "a Parse longer than pgnear reads at once";
    case 'F':
        return "a FunctionCall message";
    default:
        return NULL;
    }
}

const char *state_leave_scan(const uint8_t *p, size_t len, size_t skip)
{
    size_t pos = skip;
    while (pos < len && len - pos >= 5) {
        uint32_t mlen = pkt_be32(p + pos + 1);
        if (mlen < 4)
            return NULL;
        size_t avail = len - pos - 5;
        bool whole = (size_t)mlen - 4 <= avail;
        const char *why =
            state_leave_message((char)p[pos], p + pos + 5, whole ? (size_t)mlen - 4 : avail, whole);
        if (why != NULL || !whole)
            return why;
        pos += 1 + (size_t)mlen;
    }
    return NULL;
}
