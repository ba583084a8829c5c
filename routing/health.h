/*
 * health.h — periodic health checks of every host, through asynchronous
 * libpq on the event loop, and the up/down view routing decides with.
 */
#ifndef PGNEAR_ROUTING_HEALTH_H
#define PGNEAR_ROUTING_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "routing/rtt.h"

struct event_base;
struct region;
struct region_host;
struct region_set;

/* Consecutive successful checks a host that went down needs to count as up again. */
#define HEALTH_RISE 2

/* health_check_fall's range: timeouts in a row that take a host down. */
#define HEALTH_FALL_MIN 1
#define HEALTH_FALL_MAX 100

/* Builds the libpq conninfo for one host (server_conninfo, TLS settings). */
typedef bool (*health_conninfo_fn)(void *arg, const struct region_host *h, char *buf, size_t cap);
/* What health_log_fn reports. */
enum health_event {
    HEALTH_DOWN,       /* the host went down */
    HEALTH_UP,         /* it is up (again), or a note about an up host (role, login) */
    HEALTH_TIMEOUT,    /* a check timed out, counted, and the host stays up for now */
    HEALTH_LAG,        /* a standby passed over for lag, or taking reads again */
    HEALTH_PREFERENCE, /* a group of callers' preferred region changed (route_rtt.h; no host) */
    HEALTH_FENCED,     /* fenced as a former primary (claimants.h) */
    HEALTH_UNFENCED,   /* a fenced host serves again */
};
/* Reports an up/down transition or a counted timeout, for the log. */
typedef void (*health_log_fn)(void *arg, const struct region *r, const struct region_host *h,
                              enum health_event ev, const char *why);

struct health_checker;

/*
 * How often, how long, and how many timeouts in a row take a host down;
 * how long a check connection is kept before the next check logs in
 * afresh.
 */
struct health_params {
    int interval_ms;
    int timeout_ms;
    int fall;               /* HEALTH_FALL_MIN .. HEALTH_FALL_MAX */
    int64_t max_lag_ms;     /* max_standby_lag; 0: off */
    int64_t max_lag_bytes;  /* max_standby_lag_bytes; 0: off */
    int login_interval_ms;  /* health_check_login_interval; 0: every check logs in */
    struct route_rank rank; /* how the groups' preferred regions are chosen (rtt.h) */
};

/*
 * Checks every host of regions every interval_ms, each check bounded by
 * timeout_ms, on a connection kept per host: a check logs in afresh when
 * there is none, when the last check failed, and once login_interval_ms
 * passed since the kept one logged in.
 */
struct health_checker *health_start(struct event_base *base, struct region_set *regions,
                                    const struct health_params *params, health_conninfo_fn conninfo,
                                    health_log_fn log, void *arg);
void health_stop(struct health_checker *hc);

/*
 * A client's connection attempt failed: the host is down now, for every
 * worker, without waiting for a check; it comes back after HEALTH_RISE
 * successful checks.  Returns true when this call took it down.
 */
bool health_mark_down(struct region_host *h);

/*
 * A client's connection attempt timed out: counted with the checks'
 * timeouts, and the host goes down (as by health_mark_down) only at the
 * fall-th in a row.  Returns the count; *took_down says whether this call
 * took the host down.
 */
int health_count_timeout(struct region_host *h, int fall, bool *took_down);

/* h's count of downs, taken when a session starts connecting to it (for health_note_login). */
unsigned health_downs(const struct region_host *h);

/*
 * A session logged in through h (the server sent ReadyForQuery): it is
 * evidently up.  Its timeouts are forgotten, and a host that was down
 * when the session started connecting (downs_seen is still its count) is
 * up again at once; one that went down after that stays down, since that
 * news is newer.  Returns true when this call brought it up.  Safe from
 * any worker thread.
 */
bool health_note_login(struct region_host *h, unsigned downs_seen);

/*
 * A session's login found h a standby (the server's in_hot_standby) where
 * its last check said it was a primary: a switchover the checks have not
 * seen yet.  For every worker h counts as a standby (host_is_standby)
 * until a check that started after this says what it is.  Safe from any
 * worker thread.  True when this call is the first to say so.
 */
bool health_note_login_standby(struct region_host *h);

/*
 * A login's word on h's role (in_hot_standby) where no check has logged
 * in to say it (role_known is false: its checks cannot log in, or none has
 * finished yet): a standby counts as one (host_is_standby) until a login
 * says otherwise or a check that logged in says what it is, so that a
 * write needing a primary is not sent back to it.  Safe from any worker
 * thread.
 */
void health_note_login_role(struct region_host *h, bool standby);

/* After a login contradicted the checks, how long every host is checked every HEALTH_HURRY_MS. */
#define HEALTH_LOGIN_ROLE_CHECK_MS 200

/* How often a standby that sessions wait on (health_hurry) is checked. */
#define HEALTH_HURRY_MS 20

/*
 * Sessions wait for h to replay a position until until_ms
 * (monotonic_ms): it is checked every HEALTH_HURRY_MS until then, so
 * that they learn soon that it has.  Safe from any worker thread.  True
 * when the checker had stopped hurrying for h: the caller then has
 * health_wake run on the checker's thread (the hurry timer runs only while
 * sessions wait, and nothing else would start it again).
 */
bool health_hurry(struct region_host *h, int64_t until_ms);

/* Which hosts health_hurry_hosts hurries (arg: its caller's); NULL: every one. */
typedef bool (*health_host_pick)(const struct region_host *h, void *arg);

/*
 * health_hurry for every host of regions that pick takes: the one way to
 * hurry the checks (a login waiting for a role, a fenced read, a write on
 * a primary, a new leader).  True when the checker must be woken
 * (health_wake on its thread: worker_wake_checks from a worker).
 */
bool health_hurry_hosts(struct region_set *regions, health_host_pick pick, void *arg,
                        int64_t until_ms);

/*
 * Judges now which primaries are fenced (claimants.h), as after each
 * check: for what the checks' thread learned elsewhere (an HA manager's
 * word).  NULL is fine.
 */
void health_judge_now(struct health_checker *hc);

/* Starts hc's hurry timer if it is idle.  On hc's thread (worker 0's); NULL: nothing. */
void health_wake(struct health_checker *hc);

/* How long the checks of a standby whose server ended a connection are hurried (health_hurry). */
#define HEALTH_DOUBT_HURRY_MS 5000

/*
 * The server of h ended one of pgnear's connections to it (its end of
 * file, a receive error, a FATAL): a standby may have restarted behind
 * what it showed, so its position is in doubt (host_health.doubted_ms)
 * until a check that starts after now, and its checks are hurried.  A
 * primary's is not: it has every position it wrote.  True when the
 * checker must be woken (as health_hurry).  Safe from any worker thread.
 */
bool health_note_conn_lost(struct region_host *h);

/* One of pgnear's connections to h got its first answer.  Safe from any worker thread. */
void health_note_answer(struct region_host *h);

/* Whether h answered one of pgnear's connections at since_ms or later. */
bool health_answered_since(const struct region_host *h, int64_t since_ms);

/* The most logins of one pool to a host that health_logins_at_once allows. */
#define HEALTH_LOGINS_AT_ONCE_MAX 64

/*
 * How many logins to a host may be under way at once without taking its
 * CPU from each other: a login of login_us, round_trips of rtt_us of it
 * on the network, keeps the server busy for the rest; while one is busy,
 * that many others can wait on the network.  A host on this machine or
 * a local network (round trips a small part of the login) takes one at a
 * time, as PgBouncer logs in: a crowd arriving at a cold pool then has a
 * server connection more every login, instead of pool_size server
 * processes starting together on the cores that serve it and none ready
 * until all are.  A distant host takes many: its logins wait on the
 * network, and one at a time would fill a pool in pool_size times three
 * round trips or more.  At least 1, at most HEALTH_LOGINS_AT_ONCE_MAX.
 */
unsigned health_login_overlap(int64_t login_us, int64_t rtt_us, int round_trips);

/*
 * What of a check's network time (rtt_floor_ms) may still be the two
 * ends' processes: the checker thread's wake-up and libpq, the server
 * process's own before and after the statement it timed.  Under a
 * millisecond on a quiet machine, they take that much on a loaded one
 * (and more than the wire to a near host): a login is weighed against
 * the checks' time less this, so that a busy pgnear does not take a near
 * host for a distant one.
 */
#define HEALTH_CHECK_SLACK_US 1000

/*
 * A login to h took login_us, from connect to ReadyForQuery, in
 * round_trips: what h's pools may start at once now
 * (health_login_overlap), over the longer of two round trips: TCP's
 * least on the login's connection (tcp_rtt_us, the kernel's, which
 * neither the server's work nor pgnear's waits for a core inflate; <= 0:
 * none), and the checks' network time lately, less HEALTH_CHECK_SLACK_US
 * (rtt_floor_ms: through whatever relays the path holds, which TCP sees
 * only the first leg of; the least, since a check's answer also waits for
 * a busy pgnear, as a crowd arriving makes it).  Safe from any worker
 * thread.
 */
void health_note_login_time(struct region_host *h, int64_t login_us, int64_t tcp_rtt_us,
                            int round_trips);

/* What the last login timed on h allows (health_note_login_time); 1 until one was. */
unsigned health_logins_at_once(const struct region_host *h);

#endif
