/*
 * txn_notify.c — what transaction pooling tells LISTEN and NOTIFY
 * answered by pgnear (txn_notify.h).
 */
#include "proxy/session/txn_notify.h"

#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "protocol/clock.h"
#include "protocol/param_set.h"
#include "protocol/pg_encoding.h"
#include "proxy/base/notify_senders.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/msg_loop.h"
#include "proxy/session/notify_watch.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"

/* The client's encoding (NULL: none reported: UTF8), under the server's name for it. */
void txn_notify_encoding(struct session *s, const char *value)
{
    const char *canonical = value != NULL ? pg_encoding_canonical(value) : "UTF8";
    unsigned n = canonical != NULL ? pg_encoding_number(canonical) : 0;
    s->client_encoding =
        n > 0 && n < CLIENT_ENCODING_UNKNOWN ? (uint8_t)n : CLIENT_ENCODING_UNKNOWN;
}

/* The encoding the client was told at login: a kept connection's handover's (noted), or its
 * login's. */
const char *txn_notify_login_encoding(const struct session *s, const struct server_conn *sc)
{
    return s->client_encoding != 0 ? session_client_encoding(s)
                                   : param_set_get(&sc->reported, "client_encoding");
}

/*
 * A text that may notify, while some worker listens: the backend it goes
 * to is noted as held by this client (notify_senders.h), once a holding.
 */
void txn_notify_sender(struct session *s, const uint8_t *body, size_t blen)
{
    struct notify_senders *ns = &s->w->shared->notify_senders;
    struct server_conn *sc = s->server_conn;
    if (s->notify_holding != 0 || sc == NULL || !notify_senders_wanted(ns) ||
        !notify_senders_text_may_notify(body, blen))
        return;
    s->notify_holding = notify_senders_note(ns, sc->host->runtime, sc->pid, s->cancel.client_pid);
}

/* The holding noted ends: the connection goes back, or the session ends. */
void txn_notify_sender_end(struct session *s)
{
    if (s->notify_holding == 0)
        return;
    notify_senders_released(&s->w->shared->notify_senders, s->notify_holding, monotonic_ms());
    s->notify_holding = 0;
}

/*
 * A message passed on as it comes, of a session that listens through
 * pgnear: read whole first for an UNLISTEN (notify_watch.h).  1: go on,
 * 0: wait for the rest, <0: ended.
 */
int txn_notify_watch_msg(struct session *s, const struct msg_head *h, uint32_t max_text)
{
    struct notify_watch_msg wm;
    bool text = h->type == 'Q' || h->type == 'P' || h->type == 'B' || h->type == 'E';
    if (text && h->len - 4 > max_text)
        return 1; /* not followed: as a text too long to pin */
    if (text && !msg_whole(h))
        return 0;
    const uint8_t *msg = text ? evbuffer_pullup(s->client.in, 1 + (ssize_t)h->len) : NULL;
    if (text && msg == NULL) {
        session_close(s, "out of memory");
        return -1;
    }
    notify_watch_read(h->type, msg != NULL ? msg + 5 : NULL, msg != NULL ? h->len - 4 : 0, &wm);
    notify_watch_client(s, &wm);
    return 1;
}
