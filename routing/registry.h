/*
 * registry.h — the runtime state of regions and hosts, kept by the
 * process outside any loaded configuration: per region name the admin's
 * state, per host (name:port) its health.  A loaded configuration's
 * regions and hosts point at their entries here (registry_bind in
 * region.h), so a reload keeps both for what the new configuration still
 * names, without copying anything.
 *
 * Threads.  The lookup arrays (which names have entries) are read and
 * written by one thread only, the one that binds: in pgnear worker 0's,
 * at start and at each reload before the new configuration is handed to
 * the workers.  The entries themselves are read and written by every
 * worker through the configuration's pointers: the health fields as
 * struct host_health says (relaxed atomics for what sessions touch), the
 * admin state with relaxed atomics.
 *
 * Lifetime.  Entries are allocated one by one and never moved or freed
 * before registry_free: a configuration that points at them may live on
 * in sessions long after a reload.  Names that a reload drops stay as
 * tombstones (health frozen, admin state kept) and come back to life if a
 * later configuration names them again; the registry is bounded by the
 * names configurations ever used.
 */
#ifndef PGNEAR_ROUTING_REGISTRY_H
#define PGNEAR_ROUTING_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "routing/rtt.h"

/*
 * What the admin wants of a region.  A disabled or draining region is
 * never chosen by route_plan: not when a client names it, not even last
 * when nothing else is left (unlike a region whose hosts are all down,
 * which is still tried last).  Pausing is apart from these: a paused
 * region is routed to as usual, and its gate holds the sessions.
 */
enum region_admin_state {
    REGION_ENABLED,
    REGION_DISABLED,
    REGION_DRAINING,
};

/* One region name's entry. */
struct registry_region {
    char *name;
    int admin_state; /* enum region_admin_state (atomic: every worker reads it) */
    int paused;      /* PAUSE: sessions hold their next request (atomic) */
    /* A migration's pause step: sessions of migrations_db hold theirs (atomic). */
    int migration_hold;
    /*
     * The region that callers whose nearest region this is try first
     * among their candidates (route_rtt.h: measured, damped); NULL until
     * the health checks ranked them.  Written by the checker's thread,
     * read by every worker (atomic).
     */
    struct registry_region *preferred;
    int64_t preferred_since_ms;  /* monotonic_ms of its last change (atomic) */
    uint64_t preference_changes; /* changes after the first choice (atomic) */
};

/* Positions of a primary kept to tell how long ago it passed a standby's (about a minute). */
#define HEALTH_LSN_HISTORY 64

/*
 * A host's health: written by the health checks (health.h) and by the
 * sessions that connect to it, read by routing.
 */
struct host_health {
    bool up;          /* believed reachable; true until a check or a client says otherwise */
    bool checked;     /* at least one check finished */
    bool in_recovery; /* pg_is_in_recovery(): a standby (atomic: workers read it) */
    bool role_known;  /* in_recovery comes from a check that logged in */
    bool read_only;   /* default_transaction_read_only is on: read-only, though maybe a primary */
    /*
     * When a session's login found the host a standby (in_hot_standby)
     * that its last check said was a primary (monotonic_ms; 0: not so;
     * atomic): it counts as one until a check started after that.
     */
    int64_t login_saw_standby_ms;
    /*
     * When the server last ended one of pgnear's connections to this
     * standby (monotonic_ms; 0: never; atomic): it may have restarted, and
     * a restarted standby opens for reads at its minimum recovery point,
     * maybe behind what it showed.  Its position and its run (started_us)
     * are not trusted for a session that needs a position until a check
     * that started after that reads them (need.h).
     */
    int64_t doubted_ms;
    /*
     * A standby passed over for reads (read-only, standby, prefer-standby):
     * its lag went over max_standby_lag, and it has not yet been back
     * under it for HEALTH_LAG_RISE checks in a row (atomic).
     */
    bool lagging;
    int lag_ok_checks; /* while lagging: checks in a row back under the limit */
    /* By the last check (atomic: SHOW reads them); -1 when not known (a primary: 0). */
    int64_t lag_bytes;
    int64_t lag_ms;
    uint64_t lsn; /* a primary's WAL insert position, a standby's replay position; 0 unknown */
    int64_t lsn_since_ms; /* when the check that read lsn started (monotonic_ms; atomic) */
    uint32_t timeline;    /* of that position (a standby: health_standby_timeline); 0 unknown */
    /* pg_control_system()'s: shared by a primary and its streaming standbys; 0 unknown (atomic) */
    uint64_t system_id;
    /*
     * Until then (monotonic_ms; atomic), sessions wait for this standby
     * to replay a position they need: it is checked every HEALTH_HURRY_MS.
     */
    int64_t hurry_until_ms;
    /* The checker found nobody waiting on it and may have stopped its hurry timer (atomic). */
    bool hurry_idle;
    /* A primary's recent positions and when the checks read them (the checks' thread only). */
    struct lsn_sample {
        int64_t at_ms; /* monotonic_ms when the check's answer came */
        uint64_t lsn;
    } lsn_history[HEALTH_LSN_HISTORY];
    unsigned lsn_history_next;  /* where the next sample goes */
    unsigned lsn_history_count; /* samples kept, up to HEALTH_LSN_HISTORY */
    int consecutive_ok;
    int consecutive_fail;
    /*
     * Checks and session connects that timed out in a row (atomic:
     * sessions of every worker add to it and reset it).  A timeout means
     * slow, not gone: the host goes down only at health_check_fall.
     */
    int consecutive_timeouts;
    /* Times it went down (atomic): a login that connected before the last one proves nothing. */
    unsigned downs;
    int client_failures; /* marks by sessions since the last check (atomic) */
    bool login_failing;  /* the server answers, but server_conninfo cannot log in */
    /*
     * When one of pgnear's connections to it last got a first answer, a
     * session's or a check's (monotonic_ms; atomic).  A host that
     * answers others while a connection waits is busy, not gone.
     */
    int64_t last_answer_ms;
    /*
     * How many logins of one pool to it may be under way at once, from the
     * last login timed (health_note_login_time; atomic); 0 until one was.
     */
    uint32_t logins_at_once;
    bool busy_said; /* a check timed out on it while it answered sessions, and the log said so */
    double rtt_ms;  /* of the last successful check: the query, and the login if it made one */
    struct rtt_estimate rtt; /* the checks on a kept connection, for routing (rtt.h) */
    int64_t last_check;      /* unix time of the last finished check */
    char last_error[160];
    /*
     * Fenced as a former primary (claimants.h): it says primary, but
     * another host of its database system serves a newer timeline (or
     * holds the system's writes at the same one), so what runs here may
     * be thrown away when it rejoins.  No session or transaction goes to
     * it.  The fields after fenced say who took over, and the two
     * timelines, as of the fence (atomic: SHOW REGIONS reads them).
     */
    bool fenced;
    struct registry_host *fenced_by;
    struct registry_region *fenced_by_region;
    uint32_t fenced_timeline;
    uint32_t fenced_by_timeline;
    unsigned fences; /* times fenced (atomic) */
    /* When its server started (pg_postmaster_start_time(), µs; 0 unknown; the checks only). */
    uint64_t started_us;
    /*
     * What its HA manager says of it (routing/patroni.h; atomic): a member
     * of the cluster it manages, its leader, and the member's
     * noloadbalance tag (no reads); all false while none says.
     */
    bool ha_member;
    bool ha_leader;
    bool ha_noloadbalance;
    /* Why it is fenced: enum claimants_fence (atomic). */
    uint8_t fenced_why;
};

/*
 * One host's entry, by name (as configured), port and the address the name
 * resolved to: a name that DNS moves to another address (a managed
 * failover) is a new host, whose health the checks learn afresh, while the
 * old address's entry stays behind for the sessions still there.
 */
struct registry_host {
    char *name;
    int port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    struct host_health health;
};

struct registry;

struct registry *registry_new(void);

/* Frees every entry: only once no configuration bound to reg is left. */
void registry_free(struct registry *reg);

/* The entry of a region name, or NULL.  The binding thread only. */
struct registry_region *registry_find_region(const struct registry *reg, const char *name);

/*
 * The entry of a region name (case-insensitively), or of a host name and
 * port, made when there is none yet: enabled, the host up until a check
 * or a client says otherwise.  NULL when out of memory.  The binding
 * thread only.
 */
struct registry_region *registry_region_entry(struct registry *reg, const char *name);
struct registry_host *registry_host_entry(struct registry *reg, const char *name, int port,
                                          const struct sockaddr_storage *addr, socklen_t addrlen);

/* Whether a and b are the same IP address (ports aside); false for an unknown family. */
bool registry_same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Whether route_plan may choose the region (enabled); safe from any thread. */
bool registry_takes_sessions(const struct registry_region *rr);

/* Sets an entry's admin state; safe from any thread. */
void registry_set_admin_state(struct registry_region *rr, enum region_admin_state state);

/* An entry's admin state; safe from any thread. */
enum region_admin_state registry_admin_state(const struct registry_region *rr);

/* PAUSE and RESUME; safe from any thread. */
void registry_set_paused(struct registry_region *rr, bool paused);
bool registry_paused(const struct registry_region *rr);

/* A pause step's gate for the region's migrations_db; safe from any thread. */
void registry_set_migration_hold(struct registry_region *rr, bool held);
bool registry_migration_hold(const struct registry_region *rr);

#endif
