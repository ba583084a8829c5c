/*
 * notify_watch.h — an UNLISTEN that runs on the session's server, followed
 * to the channels pgnear listens on for it (notify_hub.h), as PostgreSQL
 * applies it: at the commit of its transaction, not at all when that
 * rolls back.
 *
 * A session that listens through pgnear (s->rare->notify set) may still send
 * UNLISTEN to its server: in a transaction block, beside other statements
 * (asyncpg's reset: `...; UNLISTEN *; RESET ALL;`), as DISCARD ALL (an
 * application pool's reset), or through the extended protocol.  The server
 * has none of pgnear's channels, so each such statement is read from the
 * client's messages on their way (a Query's, or a Parse's text, its
 * statement followed through Bind to the Execute that runs it), and taken
 * as run when the server's CommandComplete for it comes (UNLISTEN,
 * DISCARD ALL) in that request's answer.  What ran waits for the
 * transaction's end: a COMMIT (its tag, or an implicit transaction's
 * ReadyForQuery 'I' with no error) applies it to the hub, a ROLLBACK or an
 * error drops it.  Limits: a ROLLBACK TO SAVEPOINT does not undo one made
 * after the savepoint; an UNLISTEN run inside a function (EXECUTE) is not
 * seen; at most NOTIFY_WATCH_MAX statements wait per session.
 */
#ifndef PGNEAR_PROXY_NOTIFY_WATCH_H
#define PGNEAR_PROXY_NOTIFY_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/listen_sql.h"
#include "proxy/session/session_types.h"

/* The most UNLISTEN statements waiting for their answer, or for their commit, per session. */
#define NOTIFY_WATCH_MAX 16

/* A statement's or portal's name, when short enough to be kept (else it is not followed). */
#define NOTIFY_WATCH_NAME_MAX 64

/* What one client message says of UNLISTEN, read before it goes (its bytes may go with it). */
struct notify_watch_msg {
    uint8_t type;
    size_t nops;
    struct listen_op ops[NOTIFY_WATCH_MAX]; /* a Query's UNLISTENs, or a Parse's one */
    char name[NOTIFY_WATCH_NAME_MAX];       /* a Parse's statement, a Bind's or Execute's portal */
    char name2[NOTIFY_WATCH_NAME_MAX];      /* a Bind's statement */
    bool name_ok, name2_ok;
};

/* A client message (body: blen bytes, the whole one for Q, P, B and E) read into m. */
void notify_watch_read(uint8_t type, const uint8_t *body, size_t blen, struct notify_watch_msg *m);

/* ... and, once it went to the server, followed. */
void notify_watch_client(struct session *s, const struct notify_watch_msg *m);

/* A message of the server's answer to the client (body: a CommandComplete's or ReadyForQuery's). */
void notify_watch_server_msg(struct session *s, uint8_t type, const uint8_t *body, size_t blen);

/*
 * From when the session first listens through pgnear, detached (nothing
 * outstanding on a server): its messages followed from then on.  False:
 * out of memory.
 */
bool notify_watch_start(struct session *s);

/* Whether the session's messages are followed. */
static inline bool notify_watch_on(const struct session *s)
{
    return __builtin_expect(s->rare->notify_watch != NULL, 0);
}

/* The session gave its connection back, nothing outstanding: the counts start again. */
void notify_watch_detached(struct session *s);

/* The session ends. */
void notify_watch_end(struct session *s);

#endif
