/*
 * session_types.h — what a session is made of: struct session and the
 * enum of its phases, without what runs it.  The session's parts below
 * session.c (the phase engine, the server connection) read and write
 * these fields; session.h adds the functions of a session's life
 * (session.c) and what only the login keeps.
 */
#ifndef PGNEAR_PROXY_SESSION_TYPES_H
#define PGNEAR_PROXY_SESSION_TYPES_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "protocol/param_set.h"
#include "protocol/pg_encoding.h"
#include "proxy/base/latency.h"
#include "proxy/base/list.h"
#include "proxy/session/cancel_keys.h"
#include "proxy/session/endpoint.h"
#include "proxy/session/fence_state.h"
#include "proxy/session/gate_state.h"
#include "proxy/session/session_rare.h"
#include "proxy/session/txn_next.h"
#include "routing/need.h"

struct config;
struct event;
struct near_state;
struct prep_client;
struct region;
struct registry_host;
struct server_conn;
struct session_login;
struct session_secret;
struct timeouts_state;
struct txn_hooks;
struct worker;

/* s->client_encoding for an encoding pgnear cannot convert (the notification hub leaves it). */
#define CLIENT_ENCODING_UNKNOWN 255

/* Where a session is in its life; what each phase does is the phase table's (phase.h). */
enum session_phase {
    PHASE_PROXY_HEADER, /* waiting for the PROXY protocol header */
    PHASE_WEBSOCKET,    /* websocket_port: the HTTP request, up to the upgrade (ws_ingress.h) */
    PHASE_STARTUP,      /* reading SSLRequest / StartupMessage */
    PHASE_CLIENT_TLS,   /* client TLS handshake */
    PHASE_CLIENT_AUTH,  /* pgnear verifies the client (auth = scram; always for the console) */
    PHASE_CONNECT,      /* TCP connect to a server host */
    PHASE_WAIT_ROLE,    /* no host fits what the session needs: waiting for one (failover_wait) */
    PHASE_SERVER_SSL,   /* waiting for the server's answer to SSLRequest */
    PHASE_SERVER_TLS,   /* server TLS handshake */
    PHASE_WAIT_SERVER,  /* the pool is full: waiting for a server connection (pool.h) */
    PHASE_SERVER_LOGIN, /* the server's authentication and parameters, up to ReadyForQuery */
    PHASE_ACTIVE,       /* relaying */
    PHASE_ADMIN,        /* logged into the admin console */
    PHASE_CLOSING,      /* a final error is being flushed to the client */
    PHASE_COUNT
};

/*
 * Where the caller was placed and how, kept past the login (whose state
 * is freed) for SHOW CLIENTS and each transaction's route.  Its texts
 * are of their own lengths, after the names the session keeps of its
 * startup packet (session_identity.h), NULL while all are "": an idle
 * client carries what it was told, not four buffers for the longest.
 */
enum origin_text {
    ORIGIN_VIA,    /* the evidence's channel: "startup hint", "header cf-ipcity", "GeoIP" */
    ORIGIN_PLACE,  /* the city as matched in the table, or as given */
    ORIGIN_REGION, /* the region the evidence named (a hint, [cities], default_region) */
    ORIGIN_CITY,   /* the city as given (its home, where rows are homed by city) */
    ORIGIN_TEXTS
};

/* The longest each text is kept (bytes, without its NUL), as SHOW CLIENTS and routes take them. */
#define ORIGIN_VIA_MAX    39
#define ORIGIN_PLACE_MAX  33
#define ORIGIN_REGION_MAX 63
#define ORIGIN_CITY_MAX   63

struct session_origin {
    float lat, lon; /* valid when has_coords */
    float km;       /* to the serving region; negative when unknown */
    uint8_t source; /* enum locality_source */
    bool has_coords;
    /* the enum origin_text's in its order, each ending in a NUL, in startup_raw; NULL: all "" */
    const char *texts;
};

/* One of the origin's texts: "" when it has none. */
static inline const char *session_origin_text(const struct session_origin *o, enum origin_text i)
{
    const char *t = o->texts;
    if (t == NULL)
        return "";
    for (int k = 0; k < (int)i; k++)
        t += strlen(t) + 1;
    return t;
}

/*
 * A caller's address: IPv4 or IPv6, or the family alone (AF_UNIX: a Unix
 * socket's caller, or a PROXY header's, has no address pgnear uses).  28
 * bytes, where a sockaddr_storage takes 128 a client.
 */
union session_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct session {
    struct list_node node; /* on one of the worker's session lists */
    struct list *list;     /* the list it is on */
    struct worker *w;
    struct config *cfg; /* the configuration the session started under (a reference) */
    uint64_t id;
    int busy; /* event callbacks of this session on the stack */
    enum session_phase phase : 8;
    uint8_t txn_params_moved; /* reported settings now other than its login's (txn.c) */
    uint16_t client_minor;    /* protocol minor version agreed with the client */
    bool closed;              /* closed inside a callback: freed when it returns */
    bool client_after_server; /* its client's bytes wait for its server's, come first (relay.c) */
    /* How the client came (bits: a crowd's sessions are many) */
    bool from_proxy : 1;  /* a trusted PROXY header said who the caller is */
    bool client_tls : 1;  /* TLS of the PostgreSQL stream (inside the WebSocket for one) */
    bool unix_socket : 1; /* came to a Unix socket */
    bool
        cancel_only : 1; /* came to a draining pgnear's cancel socket: a CancelRequest or nothing */
    bool websocket : 1;  /* came to websocket_port (its stream is a WebSocket once upgraded) */
    bool websocket_tls : 1; /* ... over wss */
    bool client_counted;    /* in the client limits of user and database (login_limits.h) */
    bool report_fence;      /* pgnear.fence is sent after each transaction that wrote (fence.h) */
    bool identity_shared;   /* startup_raw is the worker's shared copy (session_identity.h) */
    /*
     * Its client_encoding as its server last reported it (txn.c; a kept
     * connection's handover, login/server_handover.c): notify_hub speaks in
     * it.  pg_encoding_number's for the server's name for it;
     * CLIENT_ENCODING_UNKNOWN: one pgnear cannot convert; 0: none reported
     * yet.  Read through session_client_encoding.
     */
    uint8_t client_encoding;
    struct endpoint client;
    struct server_conn *server_conn;  /* the server side; NULL before connecting and after */
    struct server_conn *servers_gone; /* closed during a callback, freed when it returns */
    struct event *timer; /* login and server connect timeouts, then timeouts.c's; NULL: none */
    struct ws_keepalive *ws_keepalive; /* websocket_ping_interval's pings; NULL: none */
    struct session_login *login;       /* NULL once relaying */
    /* What few sessions set: the console's state, a move, LISTENs (session_rare.h). */
    const struct session_rare *rare;

    union session_addr addr; /* the caller's real address (session_set_addr) */
    uint32_t connected_at;   /* when the client connected (Unix time, seconds; to 2106) */

    /*
     * The startup packet, whole during the login; user, database and
     * application_name point into it.  As the login ends it is replaced
     * by what the session keeps of it (session_identity.h): those three,
     * the origin's texts and server_startup's bytes, a copy the worker's
     * sessions share (identity_shared), read only.
     */
    uint8_t *startup_raw;
    const char *user, *database;
    /*
     * The startup parameters the server is given besides user and database:
     * the client's, in its order, without pgnear.* hints (options without
     * the hints in it).  Made once as the startup packet is read
     * (server_params_build); every login sends it, the pool compares a kept
     * connection's with it and sets what differs.
     */
    struct param_set server_startup;
    const char *application_name; /* NULL when the client sent none */

    struct session_origin origin; /* set as the login ends */
    struct latency_times lat;     /* its login and its waits for a server, timed (latency.h) */

    /*
     * Where the client is routed: the region of the plan being tried, then
     * the one serving (the server connection's, while there is one).
     */
    struct region *region;
    /*
     * What its server must be (target_session_attrs, pgnear.min_lsn), and
     * under transaction pooling what its transactions read, for the next
     * one's (need.h: read_at and the rest; session_need.c alone writes
     * them).  Only its copies follow the reads (session_need_for).
     */
    struct need_spec need;
    struct fence_state *fence;       /* written by fence.c alone (fence_state.h); NULL: none */
    uint64_t server_bytes;           /* bytes read from server connections already closed */
    struct gate_state hold;          /* its holds at safe points, written by gate.c alone */
    struct timeouts_state *timeouts; /* PgBouncer's timeouts (timeouts.c alone); NULL: none */

    /* the cancel key pgnear gave the client, naming the server connection's */
    struct cancel_entry cancel;

    /* moves to another server (move.h) */
    const char *unmovable;               /* why it may not move (static text); NULL: it may */
    const struct session_secret *secret; /* its keys for a move (session_secret.h); NULL: none */
    bool leaving_fenced;   /* its move leaves a fenced host: its client unread until it holds */
    bool move_answer_owed; /* the server owes the answer of a move's own query */
    /* (transaction pooling's, here to fill the word: txn.h) */
    bool txn_settings_follow; /* its settings follow it (txn_settings.h) */
    bool txn_client_gone;     /* its client's stream ended: a Terminate put after its messages */
    uint32_t moves;           /* moves done */
    /*
     * Under session pooling, why pgnear no longer knows the session's state
     * to be its login's (static text; NULL: it knows): a session that still
     * is may move when its server ends while it is idle (move.h:
     * move_session_lost), with nothing to read there.  Written by
     * state_watch.c, and by that move (set as it starts, cleared once it
     * moved: the new server has the login's state).
     */
    const char *state_unknown;

    /* transaction pooling (txn.h) */
    const struct txn_hooks *txn; /* transaction pooling applies (txn.h); NULL: it does not */
    const char *pinned; /* why it keeps its server connection after all (static text); NULL */
    /* How it gets its next transaction's connection (txn_next.h); NULL: it gets none now. */
    struct txn_next *txn_next;
    struct prep_client *prep; /* its prepared statements, followed (txn_prep.h); NULL: not */
    struct near_state *near;  /* target_session_attrs = nearest, followed (near.h); NULL: not */
    uint64_t transactions;    /* server connections given back after a transaction */
    const char *closing_why;  /* while session_close runs its hooks: why */
    uint64_t notify_holding;  /* its server connection's holding noted as may notify; 0: none */
};

/*
 * The client's encoding as pgnear speaks to it (the notification hub):
 * one none reported yet is UTF8, as txn_notify_encoding takes a server
 * that reports none.  A login answered without a server connection, or a
 * server that never reports it, leaves s->client_encoding 0.
 */
static inline const char *session_client_encoding(const struct session *s)
{
    if (s->client_encoding == CLIENT_ENCODING_UNKNOWN)
        return "?";
    const char *name = pg_encoding_name(s->client_encoding);
    return name != NULL ? name : "UTF8";
}

/*
 * What s->txn_next (txn_next.h) says, each question stated here once for
 * the gate, a move, the timeouts, the fan-out, a cancel and transaction
 * pooling, which add their own tails (a hold, a pin, unread input);
 * txn_fetch.c alone writes it, and stops it (txn_next_stop, txn_fetch.h).
 *
 * txn_next_waiting: its request waits for its next transaction's
 * connection (in the pool's queue, or a fetcher logs in for it): no server
 * runs it yet.  txn_next_detached_idle: under transaction pooling, between
 * two transactions: no server connection, and none being got.
 */
static inline bool txn_next_waiting(const struct session *s)
{
    return s->txn_next != NULL && s->txn_next->how != TXN_NEXT_NONE;
}

/* Whether it waits in the pool's queue (s->txn_next->spot: where). */
static inline bool txn_next_queued(const struct session *s)
{
    return s->txn_next != NULL && s->txn_next->how == TXN_NEXT_QUEUED;
}

static inline bool txn_next_detached_idle(const struct session *s)
{
    return s->txn != NULL && s->server_conn == NULL && !txn_next_waiting(s);
}

#endif
