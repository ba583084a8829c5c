/*
 * health.h — periodic health checks of every host, through asynchronous
 * libpq on the event loop, and the up/down view routing decides with.
 */
#ifndef PGNEAR_ROUTING_HEALTH_H
#define PGNEAR_ROUTING_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct region;
struct region_host;
struct region_set;

/* Consecutive successful checks a host that went down needs to count as up again. */
#define HEALTH_RISE 2

/* health_check_fall's range: timeouts in a row that take a host down. */
#define HEALTH_FALL_MIN 1
#define HEALTH_FALL_MAX 100

struct host_health {
    bool up;          /* believed reachable; true until a check or a client says otherwise */
    bool checked;     /* at least one check finished */
    bool in_recovery; /* pg_is_in_recovery(): a standby (atomic: workers read it) */
    bool role_known;  /* in_recovery comes from a check that logged in */
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
    double rtt_ms;       /* of the last successful check: connect + query */
    int64_t last_check;  /* unix time of the last finished check */
    char last_error[160];
};

/* Builds the libpq conninfo for one host (server_conninfo, TLS settings). */
typedef bool (*health_conninfo_fn)(void *arg, const struct region_host *h, char *buf, size_t cap);
/* What health_log_fn reports. */
enum health_event {
    HEALTH_DOWN,    /* the host went down */
    HEALTH_UP,      /* it is up (again), or a note about an up host (role, login) */
    HEALTH_TIMEOUT, /* a check timed out, counted, and the host stays up for now */
};
/* Reports an up/down transition or a counted timeout, for the log. */
typedef void (*health_log_fn)(void *arg, const struct region *r, const struct region_host *h,
                              enum health_event ev, const char *why);

struct health_checker;

/* How often, how long, and how many timeouts in a row take a host down. */
struct health_params {
    int interval_ms;
    int timeout_ms;
    int fall; /* HEALTH_FALL_MIN .. HEALTH_FALL_MAX */
};

/* Checks every host of regions every interval_ms, each check bounded by timeout_ms. */
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

/* A region can take sessions when one of its hosts is up. */
bool region_is_up(const struct region *r);

#endif
