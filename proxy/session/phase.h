/*
 * phase.h — the phases of a client session, and the one place that moves
 * a session from one to the next.
 *
 * Each phase is a row of phase.c's table: its name, what starts it
 * (enter: the readers and timers it needs), what the session timer means
 * in it, what follows when it ends as it should (phase_done), and whether
 * it is part of the login.  A phase changes only through phase_enter();
 * the phase files call into it, never into each other.
 */
#ifndef PGNEAR_PROXY_PHASE_H
#define PGNEAR_PROXY_PHASE_H

#include <stdbool.h>

struct session;

enum session_phase {
    PHASE_PROXY_HEADER, /* waiting for the PROXY protocol header */
    PHASE_WEBSOCKET,    /* websocket_port: the HTTP request, up to the upgrade (ws_ingress.h) */
    PHASE_STARTUP,      /* reading SSLRequest / StartupMessage */
    PHASE_CLIENT_TLS,   /* client TLS handshake */
    PHASE_CLIENT_AUTH,  /* pgnear verifies the client (auth = scram; always for the console) */
    PHASE_CONNECT,      /* TCP connect to a server host */
    PHASE_SERVER_SSL,   /* waiting for the server's answer to SSLRequest */
    PHASE_SERVER_TLS,   /* server TLS handshake */
    PHASE_WAIT_SERVER,  /* the pool is full: waiting for a server connection (pool.h) */
    PHASE_SERVER_LOGIN, /* the server's authentication and parameters, up to ReadyForQuery */
    PHASE_ACTIVE,       /* relaying */
    PHASE_ADMIN,        /* logged into the admin console */
    PHASE_CLOSING,      /* a final error is being flushed to the client */
    PHASE_COUNT
};

/* A new connection: the PROXY header first when one is expected, else the startup packet. */
void phase_begin(struct session *s);

/* Sets s's phase to next and runs what starts it: the only way a phase changes. */
void phase_enter(struct session *s, enum session_phase next);

/*
 * The phase ended as it should: enters the one that follows, as the table
 * and the session's state decide.
 */
void phase_done(struct session *s);

/* What a failed attempt to log in through a server says about its host. */
enum server_verdict {
    HOST_BUSY,        /* it answered, but takes no sessions now: not marked */
    HOST_UNREACHABLE, /* refused, reset, closed, failed TLS: down at once */
    HOST_SLOW,        /* did not answer in time: down at health_check_fall in a row */
};

/*
 * Gives up on the server connection of a session in the login: the host
 * is marked as the verdict says and the connection closed.  Before
 * anything from it reached the client the next host is tried (CONNECT
 * again), then the next region of the plan; after that the client gets
 * the error.
 */
void phase_server_failed(struct session *s, const char *why, enum server_verdict v);

/* The session timer expired: does what that means in s's phase. */
void phase_timeout(struct session *s);

/*
 * The session is being freed: frees what its phases left in it (the
 * admin console's state), each only if it is there.
 */
void phase_end(struct session *s);

/* The phase's name, for logs. */
const char *phase_name(enum session_phase phase);

/* Whether the phase is part of the login (a failure in it counts as a failed login). */
bool phase_in_login(enum session_phase phase);

#endif
