/*
 * need.h — what a session needs of its server (libpq's
 * target_session_attrs, by the same names), and how well a host or a
 * region serves it, from the hosts' last health checks.
 *
 * A host's fit for a need, best first:
 *   NEED_FIT_GOOD      up, and its role is what the session asked for;
 *   NEED_FIT_FALLBACK  up, and acceptable when nothing good is left: the
 *                      primary for prefer-standby, a standby for
 *                      prefer-primary, and a host whose role no check has
 *                      learned yet (one that cannot log in, say), which the
 *                      server itself will judge, as before roles were known;
 *   NEED_FIT_LAST      down (its checks fail), or a standby passed over for
 *                      lag where a prefer- need takes it: tried last, as a
 *                      stale health check may be wrong;
 *   NEED_FIT_NONE      never: up with the wrong role, or a standby passed
 *                      over for lag where the session needs a standby.
 */
#ifndef PGNEAR_ROUTING_NEED_H
#define PGNEAR_ROUTING_NEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct region;
struct region_host;
struct registry_host;

enum session_need {
    NEED_ANY,
    NEED_READ_WRITE,
    NEED_READ_ONLY,
    NEED_PRIMARY,
    NEED_STANDBY,
    NEED_PREFER_STANDBY,
    NEED_PREFER_PRIMARY,
    /*
     * pgnear's own: each transaction on the nearest host that can run it.
     * A transaction starts on the nearest host of any role, a standby
     * before the primary of the same region, a lagging standby last; what
     * a standby refuses as a write is run on a primary (need_spec's role
     * for that leg is NEED_READ_WRITE).
     */
    NEED_NEAREST,
};
#define NEED_COUNT 8

/*
 * What a session needs: a role, and maybe a WAL position its server must
 * have replayed (pgnear.min_lsn, read-your-writes).  A standby is known to
 * have replayed it when its last health check read a replayed position at
 * or past it, on the same timeline when the position names one; a
 * primary has everything it wrote.  A standby not known to have it does
 * not fit the session at all, whatever its role: it could show older
 * data.
 */
struct need_spec {
    enum session_need role;
    uint32_t min_tli; /* the position's timeline; 0: not named */
    uint64_t min_lsn; /* 0: no position needed */
    /*
     * Monotonic reads (transaction pooling: each transaction may run on
     * another server).  read_at: the host the session's last transaction
     * ran on, NULL: none to follow; read_until_ms: when that transaction
     * ended (monotonic_ms).  What the session read there is no later
     * than that host's position at any time after; so that host fits (its
     * position only grows), and another standby is known to have what the
     * session read only when a check of read_at that started after
     * read_until_ms read a position it has replayed.  Until such a check,
     * no other standby is.
     *
     * A standby's position grows only while its server runs: one that
     * restarted may come back behind what it showed (it opens for reads
     * at its minimum recovery point).  read_downs and read_started_us are
     * read_at's as the transaction ended (health.downs and started_us;
     * read_wall_us, wall_clock_us then, tells the run where no check had
     * yet read started_us);
     * once either changed, read_at fits only by its position, as any
     * other standby, and its checks since bound nothing.  read_primary: a
     * primary of read_at's database system (NULL: none known), whose WAL
     * position by a check that started after read_until_ms bounds what
     * any standby of it had replayed by then, when read_at's own checks
     * cannot (it went down, or restarted).  read_lsn: a bound of what the
     * session's earlier transactions read (0: none), which every standby
     * but read_at in the same run must have replayed.
     */
    const struct registry_host *read_at;
    int64_t read_until_ms;
    unsigned read_downs;
    uint64_t read_started_us;
    uint64_t read_wall_us;
    uint64_t read_lsn;
    const struct registry_host *read_primary;
};

enum need_fit {
    NEED_FIT_GOOD,
    NEED_FIT_FALLBACK,
    NEED_FIT_LAST,
    NEED_FIT_NONE,
};

/* The need without what the session read (read_at and the rest): its role and position alone. */
void need_forget_reads(struct need_spec *need);

/* "read-write" etc., case-insensitively; false for anything else. */
bool need_parse(const char *text, enum session_need *out);

/* The need's name as libpq spells it. */
const char *need_name(enum session_need need);

/* "any, read-write, read-only, primary, standby, prefer-standby, prefer-primary, nearest". */
const char *need_choices(void);

/* Whether the need asks for a writable server (a session that must never land on a standby). */
bool need_wants_primary(enum session_need need);

/* Whether a session of this role may read from a standby (any, read-only, standby,
 * prefer-standby, nearest). */
bool need_reads_standbys(enum session_need role);

/* Whether hosts of every role fit the need (any, nearest): no role to wait for, none to lack. */
bool need_takes_any_role(enum session_need role);

/*
 * Whether h is a standby that could still replay need's position: up, not
 * passed over for lag, on the position's timeline, not there yet.
 */
bool need_may_catch_up(const struct region_host *h, const struct need_spec *need);

/* Whether the need names a position to have replayed (min_lsn, or a last read to follow). */
bool need_has_position(const struct need_spec *need);

/*
 * Whether read_at is the server the session read on, not restarted since
 * (need_spec: read_downs, read_started_us).
 */
bool need_read_at_same_run(const struct need_spec *need);

/*
 * A bound of what the session's last transaction (on read_at) read, into
 * *bound: the position of read_at by a check of the same run started
 * after it ended, or, with own_only false, of read_primary by such a
 * check; false when no such check is known yet.
 */
bool need_read_bound(const struct need_spec *need, bool own_only, uint64_t *bound);

/* How well h serves need; safe from any worker thread. */
enum need_fit need_host_fit(const struct region_host *h, const struct need_spec *need);

/*
 * The order to try r's hosts in for need, the one order of the login's
 * dial (server_connect.c) and of the fast ways that take a kept connection
 * instead (session/fetch.c), so that neither takes a host the other would
 * not try first: best fit first; within a fit, for "any" primaries before
 * standbys, for "nearest" standbys before the primary (a read on a standby
 * before it troubles the primary); then configured order.  Hosts that fit
 * not at all are left out.  Fills order (room for r->nhosts) with indexes
 * into r->hosts; returns how many.
 */
size_t need_host_order(const struct region *r, const struct need_spec *need, uint8_t *order);

/* The best fit among r's hosts. */
enum need_fit need_region_fit(const struct region *r, const struct need_spec *need);

/*
 * Why r serves need no better than it does, in a few words for route
 * reasons, SHOW ROUTE and the log: "no primary", "its standby lags",
 * "every host down".  "" when r has a host that fits well.
 */
const char *need_region_shortfall(const struct region *r, const struct need_spec *need, char *buf,
                                  size_t cap);

#endif
