/*
 * crowd.h — what the parts of bench/crowd share: one client connection
 * (crowd_conn.c), a process holding a share of the crowd (crowd_members.c)
 * and the coordinator that measures (crowd.c).  See crowd.c's head
 * comment for the program.
 */
#ifndef PGNEAR_BENCH_CROWD_H
#define PGNEAR_BENCH_CROWD_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>

#include "protocol/scram.h"

/* Longest server message a login or `SELECT 1` reads; longer is a protocol error. */
#define CROWD_MSG_MAX (64 * 1024)
/* A code as it is tallied: a SQLSTATE, an errno name, or one of ours ("EOF", "TIMEOUT"). */
#define CROWD_CODE_LEN 24
#define CROWD_TEXT_LEN 160

enum crowd_auth {
    CROWD_AUTH_UNKNOWN = 0, /* the key exchange has not run */
    CROWD_AUTH_SCRAM,       /* keys derived from the server's salt and iterations */
    CROWD_AUTH_PASSWORD,    /* the server asked for the password in clear */
    CROWD_AUTH_NONE,        /* trust: AuthenticationOk at once */
};

/* What every login of a run shares; the keys are derived once (crowd_key_run). */
struct crowd_login {
    struct sockaddr_in server;
    const char *user;
    const char *database;
    const char *password;
    const char *query; /* each client's, after its login: `SELECT 1`, or --query's (one row) */
    double timeout_s;  /* a login and its query, from connect() */
    enum crowd_auth auth;
    struct scram_verifier verifier;
    uint8_t client_key[SCRAM_KEY_LEN];
    double derive_ms; /* the one PBKDF2 */
};

enum crowd_kind {
    CROWD_MEMBER, /* logs in, `SELECT 1`, then stays idle */
    CROWD_PROBE,  /* logs in, `SELECT 1`, Terminate */
    CROWD_KEY,    /* reads the server's salt and iterations, derives the keys, closes */
};

struct crowd_conn;
/* Called once: code NULL when the login and `SELECT 1` (or the key exchange) succeeded. */
typedef void (*crowd_done_fn)(struct crowd_conn *c, const char *code, const char *text);

struct crowd_conn {
    struct bufferevent *bev; /* NULL once closed */
    struct crowd_login *login;
    struct scram_client *scram; /* during a SCRAM exchange only */
    enum crowd_kind kind;
    int state;                  /* crowd_conn.c's enum conn_state */
    int rows;                   /* DataRows of the `SELECT 1` */
    double started;             /* crowd_now() at connect() */
    double answered, logged_in; /* its first message, its login's ReadyForQuery (0: not yet) */
    crowd_done_fn done;
    crowd_done_fn gone; /* a member's idle connection ended by the server (may be NULL) */
    void *owner;
};

double crowd_now(void);
/* The errno's symbolic name ("EMFILE"), or "E<number>". */
const char *crowd_errno_name(int err, char *buf, size_t cap);

/*
 * Opens c's connection, from src when not NULL (bound before connect(),
 * IP_BIND_ADDRESS_NO_PORT), and queues the startup message.  0, or the
 * errno of socket(), bind() or connect() (then nothing is left open and
 * done is not called).
 */
int crowd_conn_start(struct crowd_conn *c, struct event_base *base, const struct sockaddr_in *src);
/* Closes c's connection (without Terminate); done is not called afterwards. */
void crowd_conn_close(struct crowd_conn *c);

/* The key exchange on its own loop: 0, or -1 with why in text. */
int crowd_key_run(struct event_base *base, struct crowd_login *login, char *text, size_t cap);

/* ---- crowd_members.c: a process holding its share of the crowd ---- */

struct crowd_share {
    size_t first;               /* the index of its first client over the whole crowd */
    size_t count;               /* its clients */
    size_t window;              /* logins in flight at most */
    size_t per_source;          /* clients per source address */
    struct in_addr source_base; /* 127.0.0.2: client i from source_base + i / per_source */
    int report_fd;              /* lines to the coordinator (crowd_members.c says which) */
};

/* Runs in a child process until SIGTERM; never returns. */
void crowd_members_run(struct crowd_login *login, const struct crowd_share *share)
    __attribute__((noreturn));

#endif
