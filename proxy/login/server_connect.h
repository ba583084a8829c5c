/*
 * server_connect.h — the phases that open a connection to a server
 * (CONNECT, SERVER_SSL, SERVER_TLS), for phase.c.
 */
#ifndef PGNEAR_PROXY_SERVER_CONNECT_H
#define PGNEAR_PROXY_SERVER_CONNECT_H

#include "proxy/phase.h"

struct session;

/*
 * CONNECT: dials the next host to try (the plan's first, the first time;
 * then the rest of its region, then the next regions); when none is left
 * the login fails with why the last one did.  The dial moves the session
 * through SERVER_SSL and SERVER_TLS as server_tls asks, and ends it with
 * phase_done once the connection is up.
 */
void server_connect_enter(struct session *s);

/* Counts and logs the failed attempt, marks its host as v says, closes the connection. */
void server_connect_failed(struct session *s, const char *why, enum server_verdict v);

/*
 * A kept connection handed to s failed before s heard anything from it:
 * closed, its host not blamed (kept connections die of old age), and the
 * same host tried again — another kept connection, or a new one.
 */
void server_connect_kept_failed(struct session *s, const char *why);

#endif
