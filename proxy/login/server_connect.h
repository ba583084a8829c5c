/*
 * server_connect.h — the phases that open a connection to a server
 * (CONNECT, SERVER_SSL, SERVER_TLS), for the phase table (flow.c).
 */
#ifndef PGNEAR_PROXY_SERVER_CONNECT_H
#define PGNEAR_PROXY_SERVER_CONNECT_H

#include <stdbool.h>

#include "proxy/session/phase.h"

struct need_spec;
struct region;
struct region_host;
struct session;

/*
 * CONNECT: dials the next host to try (the plan's first, the first time;
 * then the rest of its region, then the next regions); when none is left
 * the login fails with why the last one did.  The dial moves the session
 * through SERVER_SSL and SERVER_TLS as server_tls asks, and ends it with
 * phase_done once the connection is up.
 */
void server_connect_enter(struct session *s);

/*
 * The host of r a login entering r for need dials first (a kept connection
 * of it taken first), by need_host_order; NULL when none would be.
 * session/fetch.c's fast way takes only a kept connection of this host
 * (tests/unit/test_host_order.c).
 */
struct region_host *server_connect_first_host(struct region *r, const struct need_spec *need);

/*
 * WAIT_ROLE: no host fits the session's need now (a primary failing
 * over): it looks again every few milliseconds, and goes on to CONNECT
 * once one does, or once failover_wait has passed.
 */
void server_role_wait_enter(struct session *s);
void server_role_wait_tick(struct session *s);

/*
 * server_connect_timeout passed before s's new server connection got its
 * first answer.  When its host answered other connections of pgnear
 * meanwhile, it is busy, not gone: a burst of logins queues at the server
 * (its postmaster starts one backend at a time), as direct clients would.
 * Then the timer starts again, and true is returned: the wait goes on as
 * long as the host keeps answering others within each period.  False:
 * the host counts as slow.
 */
bool server_connect_wait_busy(struct session *s);

/* Counts and logs the failed attempt, marks its host as v says, closes the connection. */
void server_connect_failed(struct session *s, const char *why, enum server_verdict v);

/*
 * A kept connection handed to s failed before s heard anything from it:
 * closed, its host not blamed (kept connections die of old age), and the
 * same host tried again — another kept connection, or a new one.
 */
void server_connect_kept_failed(struct session *s, const char *why);

#endif
