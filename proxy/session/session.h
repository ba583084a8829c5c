/*
 * session.h — one client session (struct session: session_types.h); its
 * server side is a struct server_conn (server_conn.h).
 */
#ifndef PGNEAR_PROXY_SESSION_H
#define PGNEAR_PROXY_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "protocol/geo_headers.h"
#include "protocol/lsn.h"
#include "protocol/param_set.h"
#include "protocol/pg_error.h"
#include "protocol/proxy_proto.h"
#include "protocol/scram.h"
#include "protocol/startup.h"
#include "protocol/startup_options.h"
#include "protocol/stream.h"
#include "proxy/session/endpoint.h"
#include "proxy/base/auth_throttle.h"
#include "proxy/base/list.h"
#include "proxy/base/pool_limits.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_dial.h"
#include "proxy/session/session_log.h"
#include "proxy/session/session_types.h"
#include "routing/need.h"
#include "routing/route.h"

struct session;
struct server_conn;
struct prep_client;
struct near_state;
struct registry_host;
struct fetch_ops;

/* How the client reached pgnear. */
/* TRANSPORT_CANCEL: the Unix socket a draining pgnear keeps for its successor's cancel requests. */
enum session_transport { TRANSPORT_TCP, TRANSPORT_UNIX, TRANSPORT_WEBSOCKET, TRANSPORT_CANCEL };
struct worker;
struct region;
struct pkt_report;
struct pgasync;

/*
 * A login waiting for a server connection because a pool limit is reached
 * (PHASE_WAIT_SERVER, pool.h): written by pool_wait.c alone; its place in
 * the worker's queue is the login's turn (wait_turn.h).
 */
struct login_pool_wait {
    bool waiting;             /* counted as waiting */
    uint8_t reason;           /* enum pool_reserve: which limit it waits on */
    char key[POOL_KEY_MAX];   /* what it is counted as waiting for */
    uint8_t key_kind;         /* its limit: POOL_FULL, POOL_HOST_FULL or POOL_USER_FULL */
    struct region_host *host; /* the host it waits to connect to */
};

/* The auth throttle's hold on a login (login_throttle.c, which alone writes it). */
struct login_throttle {
    struct throttle_key key; /* (address, user) */
    bool keyed;              /* key is set, and the outcome not yet told */
    struct event *timer;     /* holds a throttled login before it starts */
    enum session_phase next; /* the phase entered when the hold ends */
};

/*
 * A kept server connection handed over to the login (server_handover.c,
 * which alone writes it; the login's end frees params with the rest).
 */
struct login_handover {
    bool checking;           /* server_check_query's answer still to come */
    uint8_t answers;         /* ReadyForQuery messages still to come */
    struct param_set params; /* ParameterStatus the settings brought */
    struct pg_error error;   /* set when the settings failed: the client gets it */
};

/*
 * What only the login needs: the parsed startup packet, the evidence of
 * where the caller is and the plan it gave, the SCRAM exchanges.  It is a
 * separate allocation, freed when the session starts relaying, so that an
 * idle session holds only what the relay and the cancel map read (about
 * a third of the memory).
 */
struct session_login {
    int64_t accepted_us;  /* when the client was accepted (monotonic_us): the login's time */
    struct pp_header *pp; /* the PROXY header's TLVs, kept until routing is decided */
    /*
     * The PROXY header was believed only because the connection came from
     * a peer's address: it may stand ahead of a forwarded CancelRequest,
     * nothing else.  conn_addr: the connection's own address.
     */
    bool pp_from_peer;
    struct sockaddr_storage conn_addr;
    char sni[64];    /* TLS server name the client asked for */
    bool direct_tls; /* the client began with a TLS handshake, not SSLRequest */
    /* WebSocket ingress (ws_ingress.c): what a trusted sender's headers said */
    struct geo_headers *geo;
    char geo_location[48];                             /* its coordinates as "lat,lon" */
    char geo_city[GEO_CITY_MAX + GEO_COUNTRY_MAX + 3]; /* "city, CC" */
    char geo_via[3][80];           /* "header cf-ipcity": for the region, coordinates and city */
    struct startup_packet startup; /* params point into the session's startup_raw */

    /* routing: where the caller is, and the regions to try in order */
    struct startup_hints hints;
    char *server_options; /* the client's options without pgnear.* hints; NULL: none */
    struct locality loc;
    /*
     * The configuration the login began under, once it has taken a reload's
     * (server_connect.c): kept until the login ends, as loc points into it.
     */
    struct config *cfg_began;
    struct region *plan[ROUTE_MAX_REGIONS];
    double plan_cos[ROUTE_MAX_REGIONS]; /* route_km() gives the distance */
    size_t plan_len, plan_index;
    uint8_t host_order[REGION_MAX_HOSTS]; /* hosts of the region in the order to try */
    uint8_t host_count, host_pos;
    bool region_any_host;         /* no host of this region is up: try them all */
    unsigned host_downs_seen;     /* health_downs() of the host as the connect started */
    struct server_dial dial;      /* the connection to the host being tried */
    bool servers_tried;           /* a host of the plan has been tried */
    char server_failure[320];     /* why the last host tried failed */
    int64_t server_wait_start_ms; /* monotonic_ms: the dial to the host began */
    int64_t server_wait_mark_ms;  /* the server_connect_timeout running now began */
    int64_t need_wait_until_ms;   /* monotonic_ms: failover_wait for a host that fits ends */
    bool role_wait_told;          /* its client was told of that wait (query_wait_notify) */
    int64_t replay_wait_until_ms; /* monotonic_ms: min_lsn_wait for a standby to replay ends */
    bool replay_waiting;          /* the plan is of standbys that have replayed it, or none */
    bool nearer_waiting;          /* a farther standby has it: a nearer one gets a grace */
    int64_t nearer_wait_until_ms; /* monotonic_ms: that grace ends */
    int64_t farther_fit_since_ms; /* a farther standby had replayed it, a nearer one not yet */

    /* pooling (pool.h, server_handover.h) */
    bool pool_share;                /* the server connection may be kept for others after */
    bool resumed;                   /* the server connection is a kept one, being handed over */
    struct region_host *retry_host; /* a kept connection to it failed: the host is tried again */
    bool warming;                   /* no client: opens a connection for min_pool_size */
    uint8_t warm_client_key[SCRAM_KEY_LEN]; /* the ClientKey it logs in with (pool_warm.h) */
    bool slot_reserved;               /* counted in the limits for the connection about to open */
    struct region_host *slot_host;    /* to this host */
    int8_t slot_slice;                /* of this worker's slice of the pool (pool.c); -1: shared */
    struct login_pool_wait pool_wait; /* waiting for a pool limit (pool_wait.c) */
    struct wait_turn turn;            /* its place in the queue meanwhile (wait_turn.h) */
    int64_t wait_began_us; /* a fetcher's client waited without it since (txn_fetch.c); 0 */
    struct login_handover handover; /* a kept connection's handover (server_handover.c) */

    /* authentication */
    bool for_console; /* the admin database: pgnear answers, no server is involved */
    /* Secrets, wiped as the login ends (session_login_end): these three and warm_client_key. */
    struct scram_server scram_srv;
    struct scram_client scram_cli;
    struct scram_verifier verifier;
    bool scram_started; /* SASLInitialResponse received */
    bool scram_done;    /* client verified by pgnear */
    bool relay_auth;    /* auth = hba or cert: the server authenticates, relayed (hba_auth.h) */
    struct auth_lookup *auth_lookup; /* verifier lookup in flight */
    bool server_offered_plus;
    uint32_t last_auth_code; /* passthrough: the server's last authentication request */
    bool server_asked;       /* passthrough: the server has sent an authentication message */
    bool password_held;      /* passthrough: a password came before that, and waits for it */

    struct login_throttle throttle; /* the auth throttle's (login_throttle.c) */

    bool failure_counted; /* counted as a failed login already (session_count_login_failure) */

    /* A fetcher (fetch.h): its owner's ops, told how its login ends; NULL: none (any more). */
    const struct fetch_ops *fetch;
    void *fetch_arg;
};

/*
 * Its place in the queue for a full pool (wait_turn.h): its login's, or
 * its next transaction's; NULL when it is getting no connection.
 */
static inline struct wait_turn *session_turn(const struct session *s)
{
    if (s->txn_next != NULL)
        return &s->txn_next->turn;
    return s->login != NULL ? &s->login->turn : NULL;
}

/* A login of pgnear's own, with no client: min_pool_size's, a move's mover, a fetcher. */
static inline bool session_login_internal(const struct session_login *l)
{
    return l->warming || l->fetch != NULL;
}

/*
 * What reads a relaying session's server side, chosen once as the relay
 * takes the server (relay_attach_server): the relay's bytes as they come,
 * the fence reader's messages (fence.h), or transaction pooling's with
 * its prepared statements (txn_prep.h).
 */
struct server_reader {
    void (*read)(struct session *s); /* the server endpoint's reader */
    int (*pump)(struct session *s);  /* what the server sent before; <0: the session ended */
};

/*
 * What the gate and the session's close tell a part that a room above
 * attaches to a session — a move under way (move.h), transaction pooling
 * (txn.h) — through the hooks the part sets on the session it applies to,
 * so that those files do not call up into it.  NULL: not told.
 */
struct session_hooks {
    void (*holding)(struct session *s); /* the gate holds s at its safe point */
    void (*resume)(struct session *s);  /* the gate let s go while it has no server connection */
    void (*closing)(struct session *s); /* s closes (s->closing_why) */
};

/*
 * What the relay, the fence reader, the gate, the session's close and a
 * cancel request call under transaction pooling (txn.h): set by txn.c on
 * the sessions it applies to, so that those files do not call up into it.
 */
struct txn_hooks {
    void (*client_read)(struct session *s); /* the client endpoint's reader */
    int (*client_pump)(struct session *s);  /* the client's input, on; <0: the session ended */
    void (*server_param)(struct session *s, const uint8_t *body, uint32_t len);
    bool (*server_idle)(struct session *s); /* after server bytes; false: the session ended */
    struct session_hooks life;              /* the gate's and the close's (resume, closing) */
    const struct server_reader *server;     /* what reads the server side */
    bool (*on_cancel)(struct session *s);   /* a cancel request for it: true, answered here */
    /* Its server hung up (session_server_gone): what is held of its answer, out; false: ended. */
    bool (*server_gone)(struct session *s);
    /* A connection was attached for its next transaction (txn_fetch.c, near_slots.c): it runs. */
    void (*attached)(struct session *s);
    /*
     * Whether it is inside a request though its server is between
     * messages (nearest's held answer, or its messages waiting to run
     * again on a primary): not at a safe point (gate.h); for_close: for
     * the gate's close, which waits for such messages to have run.
     */
    bool (*owes_request)(const struct session *s, bool for_close);
    /*
     * Its client's stream ended, or hung up (hangup: seen while its reads
     * were paused), without a Terminate: true when the session goes on to
     * run what came before; false: it ends now.
     */
    bool (*client_ended)(struct session *s, bool hangup);
    /* Whether its client waits for no answer: a notification may go to it now (notify_hub.h). */
    bool (*between)(const struct session *s);
    /*
     * Its client went quiet (session_rest, its buffers given back): what
     * only a busy session needs goes too, and comes back as the client's
     * reader next runs.  NULL: nothing.
     */
    void (*rest)(struct session *s);
};

/* Output queued towards a peer below which reading from it resumes (relay.c, gate.c). */
#define RELAY_LOW_WATER (128 * 1024)
/* ... and above which reading from the source stops (relay.c, fence.c). */
#define RELAY_HIGH_WATER (512 * 1024)

/*
 * Back-pressure: src is read no more while dst's queue is over the high
 * mark; dst's writer (relay_write) resumes it as the queue drains.
 */
static inline void relay_throttle(struct endpoint *src, struct endpoint *dst)
{
    if (endpoint_queued(dst) > RELAY_HIGH_WATER) {
        endpoint_pause_read(src);
        endpoint_stop_receiving(src);
        endpoint_want_drain(dst, true);
    }
}

/* Session lifecycle (session.c). */
void session_accept(struct worker *w, int fd, const struct sockaddr *addr, int addrlen,
                    enum session_transport transport);
/* The same for a connection that waited in the backlog as the worker began to drain: served. */
void session_accept_backlog(struct worker *w, int fd, const struct sockaddr *addr, int addrlen,
                            enum session_transport transport);
void session_close(struct session *s, const char *why);
/*
 * A new session on w's login list, counted in the daemon's clients
 * (which the caller has already incremented; session_free takes it back),
 * its client endpoint on fd (-1: an internal session with no client,
 * whose output only piles up).  NULL when out of memory (the count given
 * back); s->login NULL when part of it could not be made: the caller
 * closes it.
 */
struct session *session_new(struct worker *w, int fd);
/* Sends n bytes (an HTTP answer) as the client's last, then closes once they are flushed. */
void session_send_last(struct session *s, const void *p, size_t n, const char *why);
/*
 * Sends e to the client as a FATAL report, then closes once it is flushed
 * (or at once); during the login, a failed login (session_count_login_failure).
 */
void session_fail(struct session *s, const struct pg_error *e);
/* session_fail with a message alone (no detail, no hint). */
void session_fail_msg(struct session *s, const char *sqlstate, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * The one place a failed login is counted: a login that ends without a
 * session because pgnear or the server refused it (a client that hangs
 * up is no failure).  Counts once per session, in login_failures and in
 * login_errors_by_class by sqlstate's class; NULL (closed without an
 * answer) counts as class 08.  Does nothing outside the login phases, nor
 * for pgnear's own logins (a warm-up's, a move's mover).
 */
void session_count_login_failure(struct session *s, const char *sqlstate);
/* Closes s during its login without an answer (an invalid startup packet, ...): a failed login. */
void session_login_closed(struct session *s, const char *why);
/*
 * The session's timer (phase_timeout), armed for ms, or stopped (ms <= 0);
 * false when it could not be made (out of memory).  An idle session has
 * none (let go as its login ends): session_timer makes it again.
 */
bool session_set_timer(struct session *s, int ms);
struct event *session_timer(struct session *s);
/* Frees what only the login needed (struct session_login), as the login ends. */
void session_login_end(struct session *s);
/*
 * The caller's address, sa (len bytes): IPv4 and IPv6 kept whole, any
 * other family as the family alone.
 */
void session_set_addr(struct session *s, const struct sockaddr *sa, size_t len);
/* Names an internal session (a fetcher, min_pool_size's) in logs; out of memory: unnamed. */
void session_label_peer(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The server hung up: the client gets what came before, and an error unless the server sent one. */
void session_server_gone(struct session *s, const char *why);

/* The session of w with this id, on any of its lists; NULL when there is none. */
struct session *session_find(struct worker *w, uint64_t id);
/*
 * TCP_NODELAY (clients that make many small round trips stall without it)
 * and, with tcp_keepalive, keepalive probes: a peer that vanished without
 * a FIN (a crashed host, a NAT that forgot the flow) would otherwise hold
 * its session, and the server connection behind it, forever.
 */
void session_tune_tcp(const struct config *cfg, int fd);
/*
 * After an event callback of s (s->busy counted up before it): frees s when
 * it was closed inside, and the server connections closed inside; an idle
 * client's buffers go back (session_rest).
 */
void session_callback_done(struct session *s);
/*
 * A session that waits for its client and nothing else (an idle client
 * under transaction pooling) gives its client's buffers back to the worker
 * (endpoint_park); the end of each of its callbacks does this itself.
 */
void session_rest(struct session *s);
/*
 * The event of one of the session's endpoints (struct endpoint_owner): run
 * inside the session's callback bracket (busy, session_callback_done).  A
 * move that takes its old server's failures itself keeps it as its event.
 */
void session_endpoint_event(struct endpoint *ep, short what);
/* The session's id, for its endpoints' log lines. */
uint64_t session_endpoint_log_id(const struct endpoint *ep);
/*
 * The owner of a session's endpoints (session_new's client side; its
 * server connections copy their client side's): its events in the
 * session's bracket, a failure ends the session (session_server_gone
 * when a server's read failed).
 */
extern const struct endpoint_owner session_endpoint_owner;

/*
 * Whether a session's server connection may be kept for other clients
 * once it leaves: pool_mode = session, auth = scram, and a startup packet
 * whose every parameter a later client's SET can change (no replication,
 * no protocol extensions, names that fit).
 */
bool session_may_share_server(const struct session *s);

/*
 * Whether, once s's login ends, pgnear may log in for its client on other
 * server connections (s->secret: auth = scram, the client's key known,
 * movable): what transaction pooling needs to pass its transactions
 * around.  Said of a login under way.
 */
bool session_may_log_in_elsewhere(const struct session *s);

/* The sessions' life on a worker: listeners, and the session lists at drain, stop and free. */
extern const struct worker_part session_part;

#endif
