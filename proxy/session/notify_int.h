/*
 * notify_int.h — what the two halves of LISTEN and NOTIFY without pinning
 * (notify_hub.h) share, and only they include: each worker's table of
 * databases, channels and the sessions listening on them.  notify_hub.c
 * is the sessions' side (their LISTEN and UNLISTEN, their queues of
 * notifications); notify_conn.c the listening connection of each
 * database and the worker's part.
 */
#ifndef PGNEAR_PROXY_NOTIFY_INT_H
#define PGNEAR_PROXY_NOTIFY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "protocol/listen_sql.h"
#include "protocol/pg_error.h"
#include "proxy/base/list.h"

struct pgasync;
struct registry_host;
struct session;
struct worker;

/* How often each connection is checked to be on its database's primary; a failed connect's pause.
 */
#define NOTIFY_TICK_MS 1000

struct notify_hub {
    struct worker *w;
    struct list dbs;      /* struct notify_db */
    struct list to_flush; /* clients with notifications to send, by flush_node */
    struct event *tick;
    event_callback_fn db_step; /* each database's next step (notify_conn.c) */
};

struct notify_db {
    struct list_node node;
    struct notify_hub *hub;
    char name[128];
    struct list channels;           /* struct notify_chan */
    struct list clients;            /* struct notify_client, by db_node */
    struct list waiters;            /* clients whose LISTEN waits, by wait_node, oldest first */
    struct pgasync *conn;           /* connecting, running a query, or idle; NULL: none */
    bool busy;                      /* a query (the first with the connect) runs on conn */
    bool connected;                 /* conn has logged in */
    bool conn_lost;                 /* the server ended conn while it was idle */
    const struct registry_host *at; /* conn's host */
    char at_name[160];              /* its "host:port", for the logs and the warnings */
    uint64_t want_seq;  /* bumped by each change of the channels the server should have */
    uint64_t sent_seq;  /* the want_seq the query running makes true */
    uint64_t done_seq;  /* ... and the last one done */
    int64_t retry_ms;   /* a connect failed: the next not before (monotonic_ms) */
    bool split;         /* a query of several statements was refused: one a query until done */
    bool counted;       /* in notify_senders' count of listening connections */
    bool gap_told;      /* its listeners were warned of this outage already */
    struct event *kick; /* the next step, from the loop */
};

struct notify_chan {
    struct list_node node;
    char name[LISTEN_SQL_NAME_MAX + 1];
    struct list regs; /* struct notify_reg, by chan_node */
    bool on_server;   /* listened on the server, as the queries done left it */
    bool sending;     /* in the query running: ... */
    bool send_listen; /* ... as a LISTEN, else an UNLISTEN */
};

/* Whether the server listens on ch once the query running is done. */
static inline bool notify_chan_will_listen(const struct notify_chan *ch)
{
    return ch->sending ? ch->send_listen : ch->on_server;
}

/* One session listening on one channel. */
struct notify_reg {
    struct list_node chan_node, client_node;
    struct notify_chan *chan;
    struct notify_client *client;
};

struct notify_client {
    struct list_node db_node, flush_node, wait_node;
    struct notify_db *db;
    struct session *s;
    struct list regs;       /* by client_node */
    struct evbuffer *queue; /* whole messages for the client: notifications, warnings */
    uint64_t wait_seq;      /* its LISTEN's answer waits for done_seq to reach it; 0: none */
    size_t answer_n;
    bool answer_listen[LISTEN_SQL_OPS_MAX]; /* each statement's tag: LISTEN, else UNLISTEN */
    bool flushing;                          /* on the hub's to_flush */
    struct pg_error *refused; /* the server refused its LISTEN: its answer; NULL: none */
    size_t nundo; /* the channels its waiting Query listened on anew: undo (NULL: none) */
    char (*undo)[LISTEN_SQL_NAME_MAX + 1];
    struct pg_error *fatal; /* a notification it cannot be sent: the session ends; NULL */
};

static inline void notify_db_kick(struct notify_db *db)
{
    event_active(db->kick, EV_TIMEOUT, 1);
}

/* c's queue, to its client when it is between transactions; false: the session ended. */
bool notify_client_flush(struct notify_client *c);
/* c on the hub's list of clients to flush, once. */
void notify_client_mark(struct notify_client *c);
/* Each client marked, flushed; one that ends meanwhile leaves the list first. */
void notify_hub_flush_marked(struct notify_hub *hub);
/* A WARNING (sqlstate 01000) into c's queue, sent with its notifications. */
void notify_client_warn(struct notify_client *c, const struct pg_error *e);
/* db's channel of that name, or NULL. */
struct notify_chan *notify_chan_find(struct notify_db *db, const char *name);
/* ch off db's channels, freed. */
void notify_chan_free(struct notify_db *db, struct notify_chan *ch);
/* One session no more listening on one channel (the channel UNLISTENed or freed when the last). */
void notify_reg_drop(struct notify_reg *r);
/* The first waiter, answered, its client read again. */
void notify_db_answer_first(struct notify_db *db);
/* The waiters whose LISTEN the server has now answered. */
void notify_db_wake(struct notify_db *db);
/* The channels wanted on the server changed: the connection follows from the loop. */
void notify_db_changed(struct notify_db *db);
/* The worker's table for database name, made when new; NULL: out of memory. */
struct notify_db *notify_db_get(struct notify_hub *hub, const char *name);

#endif
