/*
 * session_route.h — the regions a session tries, in order, for what it
 * needs of its server: planned as the startup packet is read, and again
 * while it waits for a host that fits (WAIT_ROLE).
 */
#ifndef PGNEAR_PROXY_SESSION_ROUTE_H
#define PGNEAR_PROXY_SESSION_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct region;
struct session;

/*
 * The regions to try for s->need from s's locality (s->login->loc), as
 * route_plan orders them, from the first, among those its database lives
 * in; s->region is the first (NULL: no region has a host that could serve
 * the need).
 */
void session_route_plan(struct session *s);

/*
 * Has every host of s's configuration checked every HEALTH_HURRY_MS until
 * until_ms (monotonic_ms), waking the checker on worker 0 when it had
 * stopped hurrying: a switchover was seen, and the new primary is to be
 * found soon.
 */
void session_route_check_all_soon(struct session *s, int64_t until_ms);

/*
 * Where a login that pgnear verifies looks the user's secret up
 * (auth_query), into out[0..max): every region that takes sessions and
 * holds s's database, nearest first by s's locality, whatever s needs of
 * its server.  The
 * lookup only reads, which a standby answers as well as a primary, and it
 * runs before the route has settled: a session waiting for a role (a
 * failover) or for a standby to replay its pgnear.min_lsn has no region
 * yet, and the region it ends up in is not known until it connects.
 * Returns the count; 0 only when no such region takes sessions.
 */
size_t session_route_lookup_plan(const struct session *s, struct region **out, size_t max);

/* How long a fenced read waits for a nearer standby when a farther one has its position. */
#define NEARER_REPLAY_GRACE_MS 200

/* Whether s still waits (min_lsn_wait) for a standby to replay its pgnear.min_lsn. */
bool session_route_waits_for_replay(const struct session *s);

#endif
