/*
 * shared.h — what every worker of the process shares: the workers
 * themselves, the tables that must hold across them (cancel keys, pool
 * limits, the auth throttle), counters and the once-per-interval log
 * limits.  The process (daemon.c) makes one and hands it to each worker as
 * w->shared, so that no file below the process needs the process itself.
 */
#ifndef PGNEAR_PROXY_SHARED_H
#define PGNEAR_PROXY_SHARED_H

#include <pthread.h>
#include <stdint.h>

#include "proxy/base/auth_throttle.h"
#include "proxy/base/cancel_map.h"
#include "proxy/base/client_limits.h"
#include "proxy/base/log.h"
#include "proxy/base/notify_senders.h"
#include "proxy/base/peer_stats.h"
#include "proxy/base/pool_limits.h"
#include "proxy/base/scram_fit.h"
#include "proxy/runtime/placement.h"

struct reloader;
struct session_flow;
struct worker;
struct worker_part;

struct shared {
    int nworkers;
    struct worker **workers; /* [0] runs on the main thread */
    uint8_t mock_secret[32]; /* stable fake SCRAM salts for unknown users */
    int clients;             /* client connections of all workers (atomic) */
    int running;             /* worker threads other than worker 0 still looping (atomic) */
    int stopping; /* a stop signal came: /readyz answers 503 from then on (atomic; daemon.c) */
    /* Lines about failed accepts and throttled logins, for all workers together. */
    struct log_limit accept_log, throttle_log, http_log; /* http_log: websocket_port refusals */
    struct log_limit cancel_log;  /* cancel requests that cancel nothing, and failed forwards */
    struct peer_stats peers;      /* cancel requests forwarded to and from each peer */
    struct scram_fits scram_fits; /* whether pgnear's SCRAM key fits, per user and region */
    pthread_mutex_t cancel_lock;
    struct cancel_map cancel_keys;      /* key tag -> struct cancel_entry, under cancel_lock */
    struct pool_limits pool_limits;     /* server connections by pool and host, under its lock */
    struct client_limits client_limits; /* client sessions by user and database, under its lock */
    struct auth_throttle auth_throttle; /* failed logins per (address, user), under its own lock */
    struct placement_table placement;   /* where moved databases live; cutovers' holds */
    struct notify_senders notify_senders; /* which client holds a backend that may notify */
    /* 1 + the index of the worker whose admin session runs a migration; 0: none (atomic). */
    int migrating;
    /* Which command and admin, since when: for the 55006 of a second one (under its lock). */
    pthread_mutex_t migrating_lock;
    char migrating_what[128];
    char migrating_step[192];    /* the step it last started, and where ("": none yet) */
    uint64_t migrations_started; /* numbers each run (atomic) */
    uint64_t func_generation;    /* bumped when routines changed (func_catalog.h; atomic) */
    struct reloader *reload;     /* the configuration's reloads (runtime/reload.h), worker 0's */
    /* Handed down by the process before any worker starts; read-only afterwards: */
    const struct session_flow *flow;        /* the session's phases (session/phase.h) */
    const struct worker_part *const *parts; /* what each worker hosts (runtime/worker.h) */
    int nparts;
};

/*
 * The worker a client's session runs on, from its ID alone: each worker
 * hands out every nworkers-th ID (session_new), so no table says it.
 */
static inline int shared_client_worker(const struct shared *sh, uint64_t client_id)
{
    return client_id == 0 ? 0 : (int)((client_id - 1) % (uint64_t)sh->nworkers);
}

/* Makes the tables; 0, or -1 with err filled (nothing to free then). */
int shared_init(struct shared *sh, int nworkers, char *err, size_t errcap);
/* Frees what shared_init made (not the workers, nor the reloader). */
void shared_destroy(struct shared *sh);

#endif
