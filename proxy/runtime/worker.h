/*
 * worker.h — one event loop (a thread) and everything it owns: its
 * listeners, its sessions, its statistics.  Workers share only what
 * struct shared holds (shared.h) and the loaded configuration.
 */
#ifndef PGNEAR_PROXY_WORKER_H
#define PGNEAR_PROXY_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/base/auth_lookup.h"
#include "proxy/base/func_catalog.h"
#include "proxy/base/cancel_limit.h"
#include "proxy/base/latency.h"
#include "proxy/base/list.h"
#include "proxy/base/stats.h"
#include "proxy/runtime/buffer_pool.h"
#include "proxy/runtime/crowd_memory.h"
#include "proxy/runtime/slab.h"
#include "proxy/runtime/close_queue.h"
#include "proxy/runtime/linger.h"
#include "proxy/runtime/worker_call.h"

struct prep_registry;
struct intern_table;

struct config;
struct shared;
struct event_base;
struct event;
struct ws_keepalive;
struct listener_set;
struct migrations_request;
struct pool_warm;
struct dbmove_follow;
struct uring;
struct notify_hub;

struct worker {
    struct shared *shared; /* what the process's workers share */
    int index;
    struct event_base *base;
    struct config *cfg; /* this worker's reference to the current configuration */
    struct listener_set *listeners;
    struct listener_set *cancel_listener; /* worker 0's, while draining (session/listener.h) */
    /* a session's state is the list it is on */
    struct list login_sessions;   /* before ReadyForQuery */
    struct list waiting_sessions; /* logged in, waiting for a server connection of a full pool */
    struct list active_sessions;  /* relaying */
    struct list admin_sessions;   /* logged into the admin console */
    /* a server connection's state is the list it is on (server_conn.h) */
    struct list login_servers;  /* connecting and logging in */
    struct list active_servers; /* linked to a session (relaying, or handed over) */
    struct list used_servers;   /* kept: their client left, the reset query runs */
    struct list idle_servers;   /* kept: reset, waiting for the next client */
    struct event *pool_timer;   /* looks at idle_servers for timeouts (pool.c) */
    struct pool_warm *warm;     /* pairs kept warm for min_pool_size (pool_warm.h) */
    struct event *pool_wake;    /* a connection may have freed up for server_waiters */
    /* Clients waiting for a connection of a full pool, logins and transactions, in arrival
     * order (pool/pool_wait.c; session/wait_turn.h), with one query_wait_timeout timer. */
    struct list server_waiters;
    struct event *server_wait_timer;
    /* WebSocket clients by their next ping's tick, and its timer (session/ws_keepalive.h). */
    struct list ws_keepalives;
    struct event *ws_keepalive_timer;
    void (*ws_keepalive_tick)(void *owner, struct ws_keepalive *k);
    int64_t server_wait_timer_ms;         /* monotonic_ms it is set for; 0: not set */
    bool server_waiters_recheck;          /* a slot may have freed: are their pools still full? */
    struct list cancel_conns;             /* forwarding one cancel request each */
    int peer_forwards;                    /* of them, those going to peers */
    struct cancel_limit cancel_limit;     /* cancel requests that missed, by client network */
    struct auth_lookup_pool auth_lookups; /* kept auth_query connections */
    struct func_catalog funcs;            /* per database, the routines that may write */
    struct notify_hub *notify_hub;        /* channels listened on without pinning (notify_hub.h) */
    uint8_t *relay_block;       /* RELAY_BLOCK_SIZE bytes: the relay's direct reads land here */
    struct buffer_pool buffers; /* its sockets' buffers, lent while they have bytes to hold */
    struct crowd_memory crowd;  /* what a crowd leaves in memory, given back */
    struct slab sessions;       /* where its sessions are (session_new) */
    /*
     * Where its logins' states are (struct session_login, 10 kB each):
     * pages of their own, so that those of the last logins of a crowd,
     * freed among the crowd's sessions' strings, go back to the system
     * (spares kept while logins go on, trimmed once none is in flight).
     */
    struct slab logins;
    struct uring *uring; /* sends of logged-in plain sockets (io_backend); NULL: epoll alone */
    /* Statements prepared through transaction pooling (txn_prep.h); NULL until one is. */
    struct prep_registry *prep_registry;
    /* The SCRAM keys its sessions keep, one copy each (session_secret.h); NULL while none. */
    struct intern_table *secrets;
    /*
     * What its sessions keep of their logins, one copy each: names, the
     * origin's texts, the server's startup parameters (session_identity.h).
     */
    struct intern_table *identities;
    struct close_queue closing;  /* server sockets of ended sessions, closed at a pace */
    struct linger_set lingering; /* client sockets after pgnear's last word, closed after a FIN */
    uint64_t next_client_id;
    uint64_t next_server_id;
    struct worker_stats stats;
    /* Its sessions' latency histograms, by region (latency.h). */
    struct latency_book latency;
    bool draining;   /* SIGTERM: no new sessions, exit when the lists empty */
    bool loop_ended; /* the loop ends after the callback running now */
    struct event *drain_timer;
    struct worker_mailbox calls;          /* other workers' calls to this one (worker_call.h) */
    struct migrations_request *migration; /* the migration run from here (admin/migrations.c) */
    struct dbmove_follow *follow;         /* worker 0: reading where moved databases live */
    pthread_t thread;
    bool started; /* thread created */
};

/*
 * One room's life on a worker: what it sets up, does on SIGTERM and
 * SIGINT, whether it keeps a draining loop alive, and frees.  The process
 * hands the parts down (struct shared), so the loop calls the rooms above
 * it without naming them; each runs in table order.  NULL: nothing.
 */
struct worker_part {
    const char *name;
    int (*start)(struct worker *w, char *err, size_t errcap); /* 0, or -1 with err */
    void (*drain)(struct worker *w);                          /* SIGTERM: take no new work */
    void (*stop)(struct worker *w);                           /* SIGINT, drain timeout */
    bool (*busy)(const struct worker *w);                     /* holds a draining loop up */
    void (*free)(struct worker *w);
    void (*host_fenced)(struct worker *w);  /* a host was fenced as a former primary */
    void (*reconfigured)(struct worker *w); /* w->cfg is a reload's new configuration */
};

/* The most one relay read takes in (also the size of relay_block). */
#define RELAY_BLOCK_SIZE (64 * 1024)

static inline size_t worker_client_count(const struct worker *w)
{
    return w->login_sessions.count + w->waiting_sessions.count + w->active_sessions.count +
           w->admin_sessions.count;
}

static inline size_t worker_server_count(const struct worker *w)
{
    return w->login_servers.count + w->active_servers.count + w->used_servers.count +
           w->idle_servers.count;
}

/*
 * Unix time in microseconds as the worker's event loop last read it (once
 * a loop turn, libevent's cached time, whose ticks are coarse: about a
 * millisecond; the clock itself outside the loop's callbacks): for the
 * ages the pool compares on every transaction (idle since, connected
 * since), where a loop turn's staleness does not matter and a clock read
 * per transaction costs.
 */
int64_t worker_clock_us(struct worker *w);

struct worker *worker_new(struct shared *shared, int index, struct config *cfg, char *err,
                          size_t errcap);
/* Runs the loop until it ends, then closes the worker's mailbox (worker_calls_close). */
int worker_run(struct worker *w);
void worker_free(struct worker *w);

/*
 * What the main thread asks of a worker, as worker_fn (worker_call.h): run
 * on the worker's own thread, directly or through worker_call.
 */
/* Takes this configuration (arg: a reference of its own) for new sessions. */
int worker_use_config(struct worker *w, void *cfg);
/* SIGTERM: stop accepting, end when the sessions have. */
int worker_drain_fn(struct worker *w, void *unused);
/* The same without shutdown_timeout: sessions end on their own (SIGUSR2, SHUTDOWN WAIT). */
int worker_drain_wait_fn(struct worker *w, void *unused);
/* SIGINT: end every session now. */
int worker_stop_fn(struct worker *w, void *unused);
/* To worker 0: another worker's loop has ended. */
int worker_check_drained_fn(struct worker *w, void *unused);
/*
 * The health checks hurry again (routing/health.h): what a caller of
 * health_hurry does, from any worker, when it returned true.
 */
void worker_wake_checks(struct worker *from);
/* A host was fenced as a former primary (routing/claimants.h): the parts' host_fenced hooks. */
int worker_host_fenced_fn(struct worker *w, void *unused);

/* Ends the loop once a draining worker has no sessions left. */
void worker_check_drained(struct worker *w);

#endif
