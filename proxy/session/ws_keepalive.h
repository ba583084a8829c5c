/*
 * ws_keepalive.h — the queue of websocket_ping_interval's ticks of a
 * worker's WebSocket clients.  The clients wait in one queue a worker
 * (w->ws_keepalives), in the order their ticks are due, under one timer
 * set for its head; a tick puts its client at the back again, one
 * interval on, then runs the worker's tick (login/ws_ingress.c: a ping on
 * a quiet connection, or the close of one whose ping went unanswered).
 * A timer of each client's own cost libevent's 144 bytes a client; an
 * entry here costs 48.
 */
#ifndef PGNEAR_PROXY_SESSION_WS_KEEPALIVE_H
#define PGNEAR_PROXY_SESSION_WS_KEEPALIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "proxy/base/list.h"

struct worker;
struct ws_keepalive;

/* A tick of k, due now: k is back in the queue already, and may be stopped. */
typedef void (*ws_keepalive_tick)(void *owner, struct ws_keepalive *k);

struct ws_keepalive {
    struct list_node node; /* on its worker's ws_keepalives, by due_ms */
    void *owner;           /* its session */
    int64_t due_ms;        /* monotonic_ms: its next tick */
    uint64_t traffic;      /* its tick's: its client's bytes, both ways, at its last tick */
    int interval_ms;
    bool waiting; /* its tick's: a ping went out on a quiet connection */
};

/*
 * owner's ticks begin, every interval_ms (> 0), each running tick (one
 * for the worker): its entry, or NULL when out of memory.
 */
struct ws_keepalive *ws_keepalive_start(struct worker *w, int interval_ms, ws_keepalive_tick tick,
                                        void *owner);
/* ... and end (k NULL: nothing). */
void ws_keepalive_stop(struct worker *w, struct ws_keepalive *k);
/* The worker's timer goes, as the worker ends (every entry stopped). */
void ws_keepalive_free(struct worker *w);

#endif
