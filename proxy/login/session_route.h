/*
 * session_route.h — the regions a session tries, in order, for what it
 * needs of its server: planned as the startup packet is read, and again
 * while it waits for a host that fits (WAIT_ROLE).
 */
#ifndef PGNEAR_PROXY_SESSION_ROUTE_H
#define PGNEAR_PROXY_SESSION_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

struct session;

/*
 * The regions to try for s->need from s's locality (s->login->loc), as
 * route_plan orders them, from the first; s->region is the first (NULL:
 * no region has a host that could serve the need).
 */
void session_route_plan(struct session *s);

/*
 * Has every host of s's configuration checked every HEALTH_HURRY_MS until
 * until_ms (health_clock_ms), waking the checker on worker 0 when it had
 * stopped hurrying: a switchover was seen, and the new primary is to be
 * found soon.
 */
void session_route_check_all_soon(struct session *s, int64_t until_ms);

/* Whether s still waits (min_lsn_wait) for a standby to replay its pgnear.min_lsn. */
bool session_route_waits_for_replay(const struct session *s);

#endif
