/*
 * state_watch.c — whether a session's state is still its login's
 * (state_watch.h), read from the client's messages as they pass
 * (protocol/state_leave.h).
 */
#include "proxy/session/state_watch.h"

#include "protocol/state_leave.h"
#include "proxy/base/log.h"
#include "proxy/session/session.h"

void state_watch_client(struct session *s, const uint8_t *p, size_t len, size_t skip)
{
    const char *why = state_leave_scan(p, len, skip);
    if (why == NULL || s->state_unknown != NULL)
        return;
    s->state_unknown = why;
    slog_debug(s,
               "its state may now differ from its login's (%s): it cannot move once its "
               "server has ended",
               why);
}

void state_watch_unread(struct session *s)
{
    if (s->state_unknown == NULL)
        s->state_unknown = "requests pgnear could not read";
}
