/*
 * daemon.h — the process: its event-loop workers (threads), signals,
 * reloads, and the little the workers share (cancel keys, the client
 * count, the auth throttle's table).
 */
#ifndef PGNEAR_PROXY_DAEMON_H
#define PGNEAR_PROXY_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/auth_throttle.h"
#include "proxy/cancel_map.h"
#include "proxy/config.h"
#include "proxy/log.h"
#include "proxy/pool_limits.h"

struct config;
struct event;
struct registry;
struct worker;

struct daemon;

/* What a reload did, for whoever asked for it (RELOAD in the admin console). */
struct reload_outcome {
    bool ok;          /* the new configuration is in use */
    char error[1024]; /* why not */
    int nfixed;       /* settings that changed but wait for a restart */
    const char *fixed[16];
};
typedef void (*reload_done_fn)(struct daemon *d, const struct reload_outcome *o, void *arg);

/* One who waits for a reload's outcome. */
struct reload_waiter {
    struct reload_waiter *next;
    reload_done_fn fn;
    void *arg;
};

struct daemon {
    struct config *cfg; /* the current configuration (one reference) */
    /* Health and admin state by region and host name, across reloads; bound on worker 0. */
    struct registry *registry;
    int log_level; /* from the command line; kept across reloads */
    int nworkers;
    struct worker **workers; /* [0] runs on the main thread */
    uint8_t mock_secret[32]; /* stable fake SCRAM salts for unknown users */
    int clients;             /* client connections of all workers (atomic) */
    int running;             /* worker threads other than worker 0 still looping (atomic) */
    /* Lines about failed accepts and throttled logins, for all workers together. */
    struct log_limit accept_log, throttle_log, http_log; /* http_log: websocket_port refusals */
    pthread_mutex_t cancel_lock;
    struct cancel_map cancel_keys;      /* key tag -> struct cancel_entry, under cancel_lock */
    struct pool_limits pool_limits;     /* server connections by pool and host, under its lock */
    struct auth_throttle auth_throttle; /* failed logins per (address, user), under its own lock */
    struct event *sig_term, *sig_int, *sig_hup;
    struct reload_job *reload;            /* a configuration being loaded aside, or NULL */
    bool reload_again;                    /* a reload was asked for while one was running */
    struct reload_waiter *reload_waiters; /* of the running reload */
    struct reload_waiter *again_waiters;  /* of the one that follows it */
    unsigned reloads, reloads_failed;     /* counted on worker 0, read by anyone (atomic) */
    int64_t last_reload_at;               /* Unix time (atomic) */
    bool last_reload_ok;                  /* (atomic) */
    /* SET's values, in force until the next SIGHUP or RELOAD; worker 0's. */
    struct config_override *overrides;
    int noverrides;
    struct metrics_server *metrics; /* /metrics on worker 0, or NULL */
    /* 1 + the index of the worker whose admin session runs a migration; 0: none (atomic). */
    int migrating;
    /* Which command and admin, since when: for the 55006 of a second one (under its lock). */
    pthread_mutex_t migrating_lock;
    char migrating_what[128];
    uint64_t migrations_started; /* numbers each run (atomic) */
};

/* Runs the proxy until it is stopped; takes over cfg.  Returns the exit code. */
int daemon_run(struct config *cfg, int log_level, bool background);

/*
 * Re-reads the configuration file and hands it to every worker (SIGHUP,
 * RELOAD).  The file, city table, GeoIP databases and TLS files are loaded
 * on a thread of their own, so that no session waits on them; the swap
 * happens on worker 0 once all of it loaded.  Worker 0's thread only.
 */
void daemon_reload(struct daemon *d);

/*
 * daemon_reload, and fn(d, outcome, arg) on worker 0 once a reload that
 * read the file after this call is done (a reload already running read it
 * too early: the one that follows it answers).  0, or -1 when out of
 * memory (nothing started, fn never called).  Worker 0's thread only.
 */
int daemon_reload_then(struct daemon *d, reload_done_fn fn, void *arg);

/*
 * SET: name = value on top of the file until the next SIGHUP or RELOAD,
 * by a reload that keeps the other SET values; fn as daemon_reload_then.
 * A value the reload refuses is dropped again (the one before it, if
 * any, comes back).  Worker 0's thread only.
 */
int daemon_override_then(struct daemon *d, const char *name, const char *value, reload_done_fn fn,
                         void *arg);

#endif
