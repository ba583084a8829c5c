/*
 * session.h — one client session; its server side is a struct server_conn
 * (server_conn.h).
 */
#ifndef PGNEAR_PROXY_SESSION_H
#define PGNEAR_PROXY_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "protocol/geo_headers.h"
#include "protocol/param_set.h"
#include "protocol/proxy_proto.h"
#include "protocol/scram.h"
#include "protocol/startup_options.h"
#include "protocol/startup.h"
#include "protocol/stream.h"
#include "proxy/auth_throttle.h"
#include "proxy/cancel.h"
#include "proxy/list.h"
#include "proxy/phase.h"
#include "proxy/pool_limits.h"
#include "proxy/server_dial.h"
#include "routing/route.h"

struct session;
struct server_conn;

/* How the client reached pgnear. */
enum session_transport { TRANSPORT_TCP, TRANSPORT_UNIX, TRANSPORT_WEBSOCKET };
struct worker;
struct region;
struct pkt_report;
struct pgasync;

typedef void (*endpoint_handler)(struct session *s);

/*
 * One side of the proxy: a socket, its buffers and its events.
 *
 * Which events are armed is never set by hand: endpoint_arm() derives it
 * from the state — a reader (on_read, not paused) waits for what its
 * stream's last read asked for, queued output waits for what its last
 * write asked for — and every primitive below calls it after touching
 * the stream.  The event callback runs the writer when the readiness its
 * write waits for arrives, and the reader when the readiness its read
 * waits for does, so a TLS operation that wants the other direction is
 * retried when that direction is ready.
 */
struct endpoint {
    struct stream stream;
    struct event *rev, *wev;
    struct event *hev; /* client only: a hangup while reads are paused */
    struct evbuffer *in, *out;
    endpoint_handler on_read;  /* the phase's input step (or handshake, connect); NULL: none */
    endpoint_handler on_write; /* runs when queued output may move; NULL: just flush */
    struct session *session;
    uint32_t fwd_remaining; /* bytes of the current message still to forward */
    char last_type;         /* type of the last message seen starting */
    bool read_paused;       /* back-pressure: the peer's output is full */
    bool rev_armed, wev_armed, hev_armed;
    uint64_t bytes_in, bytes_out; /* read from and written to the socket */
};

/*
 * What only the login needs: the parsed startup packet, the evidence of
 * where the caller is and the plan it gave, the SCRAM exchanges.  It is a
 * separate allocation, freed when the session starts relaying, so that an
 * idle session holds only what the relay and the cancel map read (about
 * a third of the memory).
 */
struct session_login {
    struct pp_header *pp; /* the PROXY header's TLVs, kept until routing is decided */
    char sni[64];         /* TLS server name the client asked for */
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
    struct region *plan[ROUTE_MAX_REGIONS];
    double plan_cos[ROUTE_MAX_REGIONS]; /* route_km() gives the distance */
    size_t plan_len, plan_index;
    uint8_t host_order[REGION_MAX_HOSTS]; /* hosts of the region in the order to try */
    uint8_t host_count, host_pos;
    bool region_any_host;     /* no host of this region is up: try them all */
    unsigned host_downs_seen; /* health_downs() of the host as the connect started */
    struct server_dial dial;  /* the connection to the host being tried */
    bool servers_tried;       /* a host of the plan has been tried */
    char server_failure[320]; /* why the last host tried failed */

    /* pooling (pool.h, server_handover.h) */
    bool pool_share;                /* the server connection may be kept for others after */
    bool resumed;                   /* the server connection is a kept one, being handed over */
    struct region_host *retry_host; /* a kept connection to it failed: the host is tried again */
    bool warming;                   /* no client: opens a connection for min_pool_size */
    uint8_t warm_client_key[SCRAM_KEY_LEN]; /* the ClientKey it logs in with (pool_warm.h) */
    bool slot_reserved;               /* counted in the limits for the connection about to open */
    struct region_host *slot_host;    /* to this host */
    bool waiting;                     /* counted as waiting (PHASE_WAIT_SERVER) */
    uint8_t wait_reason;              /* enum pool_reserve: which limit it waits on */
    char wait_key[POOL_KEY_MAX];      /* what it is counted as waiting for */
    struct region_host *wait_host;    /* the host it waits to connect to */
    int64_t wait_since_us;            /* Unix time in microseconds */
    bool handover_checking;           /* server_check_query's answer still to come */
    uint8_t handover_answers;         /* ReadyForQuery messages still to come */
    struct param_set handover_params; /* ParameterStatus the settings brought */
    bool handover_failed;             /* the settings failed: the client gets that error */
    char handover_sqlstate[6];
    char handover_msg[256], handover_detail[256], handover_hint[256];

    /* authentication */
    bool for_console; /* the admin database: pgnear answers, no server is involved */
    struct scram_server scram_srv;
    struct scram_client scram_cli;
    struct scram_verifier verifier;
    bool scram_started;              /* SASLInitialResponse received */
    bool scram_done;                 /* client verified by pgnear */
    struct auth_lookup *auth_lookup; /* verifier lookup in flight */
    bool server_offered_plus;
    uint32_t last_auth_code; /* passthrough: the server's last authentication request */
    bool server_asked;       /* passthrough: the server has sent an authentication message */
    bool password_held;      /* passthrough: a password came before that, and waits for it */

    /* the auth throttle (login_throttle.c) */
    struct throttle_key throttle_key; /* (address, user) */
    bool throttle_keyed;              /* throttle_key is set, and the outcome not yet told */
    struct event *throttle_timer;     /* holds a throttled login before it starts */
    enum session_phase throttle_next; /* the phase entered when the hold ends */
};

/*
 * Where the caller was placed and how, kept past the login (whose state
 * is freed) for SHOW CLIENTS: about 48 bytes instead of the login's 5 KB.
 */
struct session_origin {
    float lat, lon; /* valid when has_coords */
    float km;       /* to the serving region; negative when unknown */
    uint8_t source; /* enum locality_source */
    bool has_coords;
    char via[40];   /* the evidence's channel: "startup hint", "header cf-ipcity", "GeoIP" */
    char place[34]; /* the city as matched in the table, or as given; "" when none */
};

struct session {
    struct list_node node; /* on one of the worker's session lists */
    struct list *list;     /* the list it is on */
    struct worker *w;
    struct config *cfg; /* the configuration the session started under (a reference) */
    uint64_t id;
    enum session_phase phase;
    int busy;    /* event callbacks of this session on the stack */
    bool closed; /* closed inside a callback: freed when it returns */
    struct endpoint client;
    struct server_conn *server_conn;  /* the server side; NULL before connecting and after */
    struct server_conn *servers_gone; /* closed during a callback, freed when it returns */
    struct event *timer;              /* login timeout, then server connect timeout */
    struct event *ws_ping;            /* websocket_ping_interval's pings; NULL: none */
    uint64_t ws_ping_traffic;         /* the client's bytes at the last tick */
    bool ws_ping_waiting;             /* a ping went out on a quiet connection */
    struct session_login *login;      /* NULL once relaying */
    struct console *console;          /* the admin console's state (PHASE_ADMIN only) */

    char peer[64]; /* client address for logs (the real caller behind a trusted proxy) */
    struct sockaddr_storage addr; /* the caller's real address */
    bool from_proxy;              /* a trusted PROXY header said who the caller is */
    bool client_tls;              /* TLS of the PostgreSQL stream (inside the WebSocket for one) */
    bool unix_socket;
    bool websocket;     /* came to websocket_port (its stream is a WebSocket once upgraded) */
    bool websocket_tls; /* ... over wss */

    /* the startup packet, kept whole; user and database point into it */
    uint8_t *startup_raw;
    const char *user, *database;
    const char *application_name; /* NULL when the client sent none */
    uint16_t client_minor;        /* protocol minor version agreed with the client */

    struct session_origin origin; /* set as the login ends */
    int64_t connected_at;         /* when the client connected (Unix time, seconds) */

    /*
     * Where the client is routed: the region of the plan being tried, then
     * the one serving (the server connection's, while there is one).
     */
    struct region *region;
    uint64_t server_bytes; /* bytes read from server connections already closed */
    /* What the admin asked of the session at its next safe point (enum session_on_safe). */
    uint8_t on_safe;
    uint8_t hold_reasons; /* who wants it held (enum gate_reason bits): held while any does */
    bool held;            /* the client's next request waits, unread */

    /* the cancel key pgnear gave the client, naming the server connection's */
    struct cancel_entry cancel;
};

/* What happens at a session's next safe point (the admin console's PAUSE and DRAIN). */
enum session_on_safe {
    SAFE_NOTHING,
    SAFE_HOLD,  /* stop reading from the client until every hold reason is gone */
    SAFE_CLOSE, /* end the session with 57P01 (DRAIN) */
};

/* Who holds a session at its safe point (bits of hold_reasons). */
enum hold_reason {
    HOLD_PAUSE = 1,     /* the admin's PAUSE of its region */
    HOLD_MIGRATION = 2, /* a pause step of a migration of its region and database */
};

/*
 * A session is at a safe point when it relays, its server connection is
 * at one (idle, every request answered, no extended-protocol batch waiting
 * for its Sync, no COPY: server_conn_at_safe_point) and no message from
 * the client is half forwarded: holding or closing it there cuts no
 * transaction and loses nothing (relay.c).
 */
bool session_at_safe_point(const struct session *s);

/* Session lifecycle (session.c). */
void session_accept(struct worker *w, int fd, const struct sockaddr *addr, int addrlen,
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
/* Sends a FATAL report to the client, then closes once it is flushed (or at once). */
void session_fail(struct session *s, const char *sqlstate, const char *msg, const char *detail,
                  const char *hint);
void session_set_timer(struct session *s, int ms);
/* Frees what only the login needed (struct session_login), as the login ends. */
void session_login_end(struct session *s);
void session_format_peer(struct session *s, const struct sockaddr *sa);
/* The server hung up: the client gets what came before, and an error unless the server sent one. */
void session_server_gone(struct session *s, const char *why);

/* Endpoint helpers (session.c). */
/* Buffers, and events when fd >= 0; <0 when out of memory (endpoint_free cleans up). */
int endpoint_init(struct session *s, struct endpoint *ep, int fd);
/* Detaches, then frees the buffers. */
void endpoint_free(struct endpoint *ep);
/* Arms exactly the events the endpoint's reader and queued output wait for. */
void endpoint_arm(struct endpoint *ep);
/*
 * Makes h the endpoint's reader (NULL: nothing is read now).  Bytes that
 * arrived before the change (already in ep->in, or decrypted inside
 * OpenSSL) are handed to h on the next loop turn: a client that pipelines
 * its next message behind the last one is never left waiting.
 */
void endpoint_set_reader(struct endpoint *ep, endpoint_handler h);
/* A reader that waits for the socket to become writable (a TCP connect). */
void endpoint_wait_writable(struct endpoint *ep, endpoint_handler h);
int endpoint_flush(struct session *s, struct endpoint *ep); /* <0: session closed */
void endpoint_pause_read(struct endpoint *ep);
void endpoint_resume_read(struct endpoint *ep);
int endpoint_send(struct session *s, struct endpoint *ep, const void *p, size_t n);
/* Reads what the socket has into ep->in; <0 closed (session closed), 0 nothing, >0 bytes. */
ssize_t endpoint_fill(struct session *s, struct endpoint *ep, size_t max, int *more);
/*
 * TCP_NODELAY (clients that make many small round trips stall without it)
 * and, with tcp_keepalive, keepalive probes: a peer that vanished without
 * a FIN (a crashed host, a NAT that forgot the flow) would otherwise hold
 * its session, and the server connection behind it, forever.
 */
void session_tune_tcp(const struct config *cfg, int fd);
/* The same into flat memory; >0 bytes read, 0 nothing yet, <0 session closed. */
ssize_t endpoint_fill_bytes(struct session *s, struct endpoint *ep, uint8_t *p, size_t max,
                            int *more);
/*
 * Sends n bytes straight from p when nothing is queued before them; what
 * the socket does not take is queued in ep->out.  <0: session closed.
 */
int endpoint_send_bytes(struct session *s, struct endpoint *ep, const uint8_t *p, size_t n);
/*
 * One step of a TLS handshake (stream_tls_accept or stream_tls_connect),
 * run as the endpoint's reader: arms the event the handshake waits for;
 * returns 0 when done, STREAM_AGAIN, or STREAM_ERROR.
 */
int endpoint_handshake(struct endpoint *ep, int (*step)(struct stream *));
int endpoint_attach(struct session *s, struct endpoint *ep, int fd);
void endpoint_detach(struct endpoint *ep);
void session_move(struct session *s, struct list *to);

#endif
