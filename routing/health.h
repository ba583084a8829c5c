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

struct host_health {
    bool up;          /* believed reachable; true until a check or a client says otherwise */
    bool checked;     /* at least one check finished */
    bool in_recovery; /* pg_is_in_recovery(): a standby (atomic: workers read it) */
    bool role_known;  /* in_recovery comes from a check that logged in */
    int consecutive_ok;
    int consecutive_fail;
    int client_failures; /* marks by sessions since the last check (atomic) */
    bool login_failing;  /* the server answers, but server_conninfo cannot log in */
    double rtt_ms;       /* of the last successful check: connect + query */
    int64_t last_check;  /* unix time of the last finished check */
    char last_error[160];
};

/* Builds the libpq conninfo for one host (server_conninfo, TLS settings). */
typedef bool (*health_conninfo_fn)(void *arg, const struct region_host *h, char *buf, size_t cap);
/* Reports an up/down transition, for the log. */
typedef void (*health_log_fn)(void *arg, const struct region *r, const struct region_host *h,
                              bool up, const char *why);

struct health_checker;

/* Checks every host of regions every interval_ms, each check bounded by timeout_ms. */
struct health_checker *health_start(struct event_base *base, struct region_set *regions,
                                    int interval_ms, int timeout_ms, health_conninfo_fn conninfo,
                                    health_log_fn log, void *arg);
void health_stop(struct health_checker *hc);

/*
 * A client's connection attempt failed: the host is down now, for every
 * worker, without waiting for a check; it comes back after HEALTH_RISE
 * successful checks.  Returns true when this call took it down.
 */
bool health_mark_down(struct region_host *h);

/* Copies the states of hosts that are in both sets (same name and port), across a reload. */
void health_carry_over(struct region_set *to, const struct region_set *from);

/* A region can take sessions when one of its hosts is up. */
bool region_is_up(const struct region *r);

#endif
