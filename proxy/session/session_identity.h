/*
 * session_identity.h — what a session keeps of its login once the login
 * ends: its names (user, database, application_name), the origin's texts
 * (how and where the caller was placed), and the startup parameters its
 * servers are given (server_startup).
 *
 * A client's, as its login ends, is one copy a worker shares with the
 * sessions that keep the same (intern.h, the worker's identities): a
 * crowd of one application's clients keeps one, not one a client.  Read
 * only from then on; its fields point into the copy.
 */
#ifndef PGNEAR_PROXY_SESSION_IDENTITY_H
#define PGNEAR_PROXY_SESSION_IDENTITY_H

#include <stddef.h>

#include "proxy/session/session_types.h"

/*
 * What the session keeps as its login ends, the origin's texts text[]
 * (of lengths len[]; all 0: none) with its names, in place of its startup
 * packet (freed: the names point into it until then) and its own copy of
 * server_startup.  Out of memory, the packet and that copy stay, and the
 * origin's texts are "" (its coordinates and the region it serves from
 * still route it).
 */
void session_keep_identity(struct session *s, const char *const text[ORIGIN_TEXTS],
                           const size_t len[ORIGIN_TEXTS]);

/*
 * Gives s its names in one allocation of its own, in place of what
 * startup_raw held (freed after they are copied, so they may point into
 * it): user, database and application_name (NULL: none), then extra bytes
 * of the caller's, whose start it returns.  NULL when out of memory:
 * nothing changed.  For an internal session (a fetcher, min_pool_size's).
 */
char *session_keep_names(struct session *s, const char *user, const char *database,
                         const char *application_name, size_t extra);

/* Lets go of what s kept: its names, the origin's texts and server_startup are gone. */
void session_drop_identity(struct session *s);

#endif
