/*
 * txn_notify.h — what transaction pooling tells LISTEN and NOTIFY
 * answered by pgnear (notify_hub.h): the client's encoding, as its login
 * reported it and its ParameterStatus changes it; the backend a text
 * that may notify goes to, noted as held by the client
 * (base/notify_senders.h); and a client message read for an UNLISTEN
 * (notify_watch.h).  Called by txn.c only.
 */
#ifndef PGNEAR_PROXY_TXN_NOTIFY_H
#define PGNEAR_PROXY_TXN_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

struct msg_head;
struct server_conn;
struct session;

/* The client's encoding (NULL: none reported: UTF8), under the server's name for it. */
void txn_notify_encoding(struct session *s, const char *value);

/* The encoding the client was told at login: a kept connection's handover's (noted), or its
 * login's. */
const char *txn_notify_login_encoding(const struct session *s, const struct server_conn *sc);

/* A text (a Query's or Parse's body) that may notify: its backend noted as this client's. */
void txn_notify_sender(struct session *s, const uint8_t *body, size_t blen);

/* The holding noted ends: the connection goes back, or the session ends. */
void txn_notify_sender_end(struct session *s);

/*
 * A message passed on as it comes, read whole for an UNLISTEN first (a
 * text over max_text bytes is not): 1 go on, 0 wait, <0 ended.
 */
int txn_notify_watch_msg(struct session *s, const struct msg_head *h, uint32_t max_text);

#endif
