/*
 * server_conn.h — one connection to a PostgreSQL server, the server side
 * of a session.
 *
 * A server connection is made for a client session (one per host tried
 * during the login); under pool_mode = session it is kept when its client
 * leaves and serves the next client of the same host, database and user
 * (pool.h).  Its state is the worker list it sits on, so counting
 * connections by state is free:
 *
 *   login_servers   connecting, SSLRequest and TLS, authentication, up to
 *                   the server's first ReadyForQuery
 *   active_servers  linked to a client session (relaying, or being handed
 *                   over to a new client)
 *   used_servers    its client left; the reset query runs, or a cancel
 *                   request on its way to it is awaited first
 *   idle_servers    reset, waiting for the next client
 *
 * Everything the
 * server told pgnear about itself lives here: its process ID and cancel
 * key, some ParameterStatus values, and what the relay learns from the
 * headers it forwards.  One allocation per connection, freed when it
 * closes; nothing is allocated per message.
 */
#ifndef PGNEAR_PROXY_SERVER_CONN_H
#define PGNEAR_PROXY_SERVER_CONN_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/cancel_key.h"
#include "protocol/param_set.h"
#include "protocol/startup.h"
#include "protocol/tx_track.h"
#include "proxy/base/latency.h"
#include "proxy/base/list.h"
#include "proxy/session/endpoint.h"

struct prep_server;
struct config;
struct region;
struct region_host;
struct worker;

/* A pool's database and user names (PostgreSQL's NAMEDATALEN): longer ones are not pooled. */
#define SERVER_POOL_NAME_MAX 64

/* Long enough for "15.6 (Debian 15.6-1.pgdg120+2)"; longer versions are cut. */
#define SERVER_VERSION_MAX 40

/*
 * ParameterStatus values the server sent during the login, for logs and
 * SHOW SERVERS.  Fixed size: a value that changes later in the session
 * (in_hot_standby after a promotion) is not followed, since the relay
 * reads headers only.  A flag is 0 until reported, then 't' or 'f'.
 */
struct server_params {
    char server_version[SERVER_VERSION_MAX]; /* "" until reported */
    char in_hot_standby;
    char default_transaction_read_only;
    char is_superuser;
};

struct server_conn {
    struct list_node node; /* on one of the worker's server lists */
    struct list *list;     /* the list it is on: its state */
    struct worker *w;
    struct endpoint ep;     /* socket, TLS, buffers, events; ep.session: its client, NULL if none */
    struct session *client; /* the session it serves (s->server_conn == this); NULL when kept */
    struct config *cfg;     /* a reference: region and host point into it */
    struct region *region;
    struct region_host *host;
    /* The pool it belongs to (with host): who logged in, and where. */
    char database[SERVER_POOL_NAME_MAX];
    char user[SERVER_POOL_NAME_MAX];
    uint64_t id;                 /* unique in the worker, for logs */
    int64_t connect_time;        /* when the connect started: Unix time in microseconds */
    int64_t idle_since;          /* when it was last given back (monotonic microseconds) */
    uint32_t use_count;          /* client sessions served */
    uint64_t bytes_in_at_attach; /* ep.bytes_in as its client got it */
    uint32_t pid;                /* from BackendKeyData */
    uint16_t key_len;            /* 0: no BackendKeyData (yet) */
    uint8_t key[CANCEL_KEY_MAX_LEN];
    bool tls;            /* the connection is encrypted */
    bool answered;       /* the server sent its first login message */
    bool sent_to_client; /* something from this server reached the client */
    bool poolable;       /* may be kept for another client when this one leaves */
    bool reconnect;      /* RECONNECT asked: closed, not kept, when its client leaves */
    bool in_callback;    /* a kept connection's event callback is running: free after it */
    bool closed;         /* closed during that callback */
    bool reset_failed;   /* the reset query's answer had an error */
    bool fatal_sent;     /* its server's FATAL went to the client: it ends (server_error_passes) */
    bool fatal_read;     /* its server's FATAL answered pgnear's own question: it ends, serves
                            nothing more (fence_answer) */
    bool txn_return;     /* given back after a transaction (txn.h): kept as it is, no reset */
    bool owes_fence;     /* given back owing the answer to pgnear's question of its WAL position
                            (fence_ask_after): the pool reads it before the reset's (pool_idle.h) */
    /*
     * After the reset, pgnear asks whether the server process has a
     * temporary schema (pool_idle.c): one that has is closed, not kept.
     */
    bool temp_check_owed;    /* asked; its answer follows the reset's */
    bool temp_check_reading; /* the reset answered: what comes now is that answer */
    bool temp_schema;        /* it answered that it has one */
    /*
     * Cancel requests on their way to its backend (cancel_send.h): until
     * they end it serves no other client — the pool holds it back
     * (cancel_held) — and one that may still arrive (sent, but not seen
     * acted on) keeps it from being kept at all (cancel_unsure).
     */
    uint16_t cancels_in_flight;
    bool cancel_held;
    bool cancel_unsure;
    /*
     * Its client vanished inside a transaction (server_rollback_timeout):
     * the ReadyForQuery messages the pool reads before it is clean — the
     * answers the client was owed, then pgnear's ROLLBACK's — and by when
     * (wall_clock_us), else it is closed (pool_idle.h).
     */
    uint32_t rollback_owed;
    int64_t rollback_until_us;
    /* Transaction pooling: the statements it holds and the answers it owes (txn_prep.h). */
    struct prep_server *prep;
    bool counted;      /* counted in the daemon's pool limits (pool_limits.h) */
    int8_t pool_slice; /* ... in its worker's slice of the pool (pool.c); -1: the shared pool */
    /*
     * The transaction status (from the server's ReadyForQuery only) and
     * the requests the server has yet to answer, kept by the relay as
     * messages start each way (protocol/tx_track.h has the exact rule).
     */
    struct tx_track tx;
    struct latency_marks lat; /* what the latency histograms timed of tx (latency.h) */
    struct server_params params;
    /*
     * Pooled connections only: the startup parameters it logged in with
     * (user and database aside; they are its defaults, which a reset
     * returns to) and every ParameterStatus value the server reported at
     * login and while no client had it — what a new client is told.
     */
    struct param_set startup;
    struct param_set reported;
    /*
     * The session (its id, unique in the daemon) whose database, user and
     * startup parameters were last found to be exactly these: neither side's
     * change after login, so the pool need not compare them again (pool_take.c).
     */
    uint64_t fits_session;
    struct server_conn *next_gone; /* closed inside a callback, on its session's chain */
};

/*
 * A new connection to host (of region) for session s, on the worker's
 * login list, linked both ways (s->server_conn, sc->client), with its
 * buffers but no socket yet; not poolable (the caller says when it is).
 * NULL when out of memory.
 */
struct server_conn *server_conn_new(struct session *s, struct region *region,
                                    struct region_host *host);

/*
 * Closes the connection and unlinks it from its session: its cancel key
 * is forgotten, its socket closed — with paced, at the worker's pace
 * (close_queue.h) — and its memory freed, once no event callback of the
 * session is running.
 */
void server_conn_close(struct server_conn *sc, bool paced);

/*
 * The server ended sc (its end of file, a receive error, a FATAL): a
 * standby's position is in doubt until its next check, which is hurried
 * (health_note_conn_lost).  Called before sc is closed.
 */
void server_conn_ended_by_server(struct server_conn *sc);

/*
 * A connection whose server has ended, kept a while by its session (a move
 * without its server, move.h): its place in the pool's limits goes now,
 * for the connection that replaces it.
 */
void server_conn_uncount(struct server_conn *sc);

/* Moves the connection to another of the worker's server lists (a change of state). */
void server_conn_move(struct server_conn *sc, struct list *to);

/* Takes a kept connection for s: linked both ways, moved to active_servers, s's configuration. */
void server_conn_attach(struct server_conn *sc, struct session *s);

/* Unlinks the connection from its client, which is leaving (the connection is kept). */
void server_conn_detach(struct server_conn *sc);

/*
 * The connection an internal session logged in with (a move's mover, a
 * transaction's fetcher: from) goes to the session it worked for (to),
 * which lives under the configuration the connection was made with from
 * then on.  Nothing is reset: the connection goes on as from left it.
 */
void server_conn_hand_over(struct server_conn *sc, struct session *from, struct session *to);

/* Frees a kept connection that server_conn_close closed inside its own callback (pool.c). */
void server_conn_free(struct server_conn *sc);

/* Frees connections closed while the session's callbacks ran (s->servers_gone). */
void server_conn_reap(struct session *s);

/* Notes a ParameterStatus message (name, value) from the login. */
void server_conn_note_param(struct server_conn *sc, const uint8_t *body, uint32_t len);

/*
 * The server is idle ('I') and has nothing of the client's to answer or
 * finish: no request outstanding, no extended-protocol batch without its
 * Sync, no COPY, and the count is trusted (see tx_track.h).  A
 * transaction boundary where the connection could be paused or, with
 * pooling, given to another client.
 */
static inline bool server_conn_at_safe_point(const struct server_conn *sc)
{
    return tx_track_at_safe_point(&sc->tx);
}

/*
 * At a safe point, an ErrorResponse first in its input: the FATAL of its
 * backend's end, which the readers of transaction pooling leave there
 * (server_error_unasked): the connection ends, and nothing more is asked
 * of it.
 */
bool server_conn_error_waits(const struct server_conn *sc);

/* The server's last ReadyForQuery said 'T' or 'E' (false for NULL: no connection). */
static inline bool server_conn_in_transaction(const struct server_conn *sc)
{
    return sc != NULL && (sc->tx.status == 'T' || sc->tx.status == 'E');
}

#endif
