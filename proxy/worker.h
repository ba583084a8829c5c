/*
 * worker.h — one event loop and everything it owns.  This struct and the
 * loaded config are the only mutable state in the process.
 */
#ifndef PGNEAR_PROXY_WORKER_H
#define PGNEAR_PROXY_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/cancel_map.h"
#include "proxy/list.h"

struct config;
struct event_base;
struct event;
struct listener_set;

struct worker_stats {
    uint64_t sessions_total;
    uint64_t sessions_refused;
    uint64_t login_failures;
    uint64_t server_connect_failures;
    uint64_t cancels_forwarded;
    uint64_t cancels_ignored;
    uint64_t bytes_client_to_server;
    uint64_t bytes_server_to_client;
    uint64_t routed_by_source[5]; /* enum locality_source */
    uint64_t failovers;           /* sessions that moved to another region before starting */
};

struct worker {
    struct event_base *base;
    struct config *cfg;
    struct listener_set *listeners;
    /* a session's state is the list it is on */
    struct list login_sessions;  /* before ReadyForQuery */
    struct list active_sessions; /* relaying */
    struct list cancel_conns;    /* forwarding one cancel request each */
    struct cancel_map cancel_keys;
    uint64_t next_client_id;
    uint8_t mock_secret[32]; /* makes stable fake SCRAM salts for unknown users */
    struct worker_stats stats;
    int log_level; /* from the command line; kept across reloads */
    bool draining; /* SIGTERM: no new sessions, exit when the lists empty */
    struct event *drain_timer;
    struct event *sig_term, *sig_int, *sig_hup;
};

static inline size_t worker_client_count(const struct worker *w)
{
    return w->login_sessions.count + w->active_sessions.count;
}

int worker_init(struct worker *w, struct config *cfg, int log_level, char *err, size_t errcap);
int worker_run(struct worker *w);
void worker_free(struct worker *w);
/* Re-reads the configuration file (SIGHUP, RELOAD). */
void worker_reload(struct worker *w);

/* Ends the loop once a draining worker has no sessions left. */
void worker_check_drained(struct worker *w);

#endif
