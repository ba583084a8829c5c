/*
 * state_watch.c — whether a session's state is still its login's
 * (state_watch.h), read from the client's messages as they pass.
 */
#include "proxy/session/state_watch.h"

#include <stdbool.h>
#include <string.h>

#include "protocol/pkt.h"
#include "protocol/txn_pin.h"
#include "proxy/base/log.h"
#include "proxy/session/session.h"

/* Why the SQL text (len bytes) may leave state in the session, or NULL. */
static const char *state_watch_text(const uint8_t *sql, size_t len)
{
    if (txn_pin_rules_out(sql, len))
        return NULL;
    return txn_pin_scan(sql, len);
}

/* A Parse's body: its name must be empty, and its text leave nothing. */
static const char *state_watch_parse(const uint8_t *body, size_t len)
{
    if (len == 0 || body[0] != '\0')
        return "a named prepared statement";
    const uint8_t *text = body + 1;
    const uint8_t *end = memchr(text, '\0', len - 1);
    if (end == NULL)
        return "a Parse pgnear could not read";
    return state_watch_text(text, (size_t)(end - text));
}

/* Why one message (whole: its body is all in body, blen bytes) may leave state, or NULL. */
static const char *state_watch_message(char type, const uint8_t *body, size_t blen, bool whole)
{
    switch (type) {
    case 'Q':
        if (!whole)
            return "a query longer than pgnear reads at once";
        return state_watch_text(body, blen > 0 && body[blen - 1] == '\0' ? blen - 1 : blen);
    case 'P':
        return whole ? state_watch_parse(body, blen) : "a Parse longer than pgnear reads at once";
    case 'F':
        return "a FunctionCall message";
    default:
        return NULL;
    }
}

void state_watch_client(struct session *s, const uint8_t *p, size_t len, size_t skip)
{
    size_t pos = skip;
    while (s->state_unknown == NULL && pos < len && len - pos >= 5) {
        uint32_t mlen = pkt_be32(p + pos + 1);
        if (mlen < 4)
            return; /* the relay's scan refuses it */
        size_t avail = len - pos - 5;
        bool whole = (size_t)mlen - 4 <= avail;
        size_t blen = whole ? (size_t)mlen - 4 : avail;
        const char *why = state_watch_message((char)p[pos], p + pos + 5, blen, whole);
        if (why != NULL) {
            s->state_unknown = why;
            log_debug(s->id,
                      "its state may now differ from its login's (%s): it cannot move "
                      "once its server has ended",
                      why);
        }
        if (!whole)
            return;
        pos += 1 + (size_t)mlen;
    }
}

void state_watch_unread(struct session *s)
{
    if (s->state_unknown == NULL)
        s->state_unknown = "requests pgnear could not read";
}
