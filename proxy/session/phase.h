/*
 * phase.h — the phases of a client session, and the one place that moves
 * a session from one to the next.
 *
 * Each phase is a row of a table (struct session_flow, login/flow.c's,
 * handed down through struct shared): what starts it (enter: the readers
 * and timers it needs), what the session timer means in it, what follows
 * when it ends as it should (phase_done), what it leaves to free.  A
 * phase changes only through phase_enter(); the phase files call into it,
 * never into each other, and the engine (phase.c) names none of them.
 */
#ifndef PGNEAR_PROXY_PHASE_H
#define PGNEAR_PROXY_PHASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/session/session_types.h" /* enum session_phase */

struct pg_error;
struct region;
struct region_host;
struct server_conn;
struct session;

/* What a failed attempt to log in through a server says about its host. */
enum server_verdict {
    HOST_BUSY,        /* it answered, but takes no sessions now: not marked */
    HOST_UNREACHABLE, /* refused, reset, closed, failed TLS: down at once */
    HOST_SLOW,        /* did not answer in time: down at health_check_fall in a row */
    /*
     * It answered that it takes no sessions for now, shutting down or not
     * up yet (57P03, 57P01): down at once, as HOST_UNREACHABLE, so that
     * the next login passes it over until its checks pass again.
     */
    HOST_CLOSING,
};

typedef void (*phase_fn)(struct session *s);

/* A set of phases, a bit each. */
typedef uint32_t phase_set;
#define PHASE_BIT(p) ((phase_set)1 << (p))

/* What one phase does; NULL: nothing. */
struct phase_row {
    phase_fn enter;      /* starts the phase (readers, timers) */
    phase_fn on_timeout; /* the session timer expired (NULL: the phase arms none) */
    phase_fn done;       /* the phase ended as it should: enters the next */
    phase_fn end;        /* frees the phase's state as the session is freed */
    phase_fn cancel;     /* a CancelRequest for a session pgnear answers itself */
    /*
     * The phases it may move to, whoever decides (done, or the phase's own
     * code: an SSLRequest, a full pool); CLOSING, always.  phase_enter
     * refuses any other.
     */
    phase_set exits;
};

/*
 * The table the engine runs, and the hooks through which the session and
 * its server connection hand their teardown to the rooms above them.
 */
struct session_flow {
    struct phase_row rows[PHASE_COUNT];
    /* A new connection's first phase; PHASE_COUNT when it could not start (s closed). */
    enum session_phase (*first)(struct session *s);
    /* The phases a session may start in: first's answers, and phase_begin_at's. */
    phase_set entries;
    /*
     * The session's ends (session.h), through which the engine ends one on
     * its own internal errors: closed, or sent a FATAL report first.
     */
    void (*close)(struct session *s, const char *why);
    void (*fail)(struct session *s, const struct pg_error *e);
    /* phase_server_failed's work. */
    void (*server_failed)(struct session *s, const char *why, enum server_verdict v);
    /* s closes during its login: let go of what it waits for or holds. */
    void (*login_abort)(struct session *s);
    /* s's login state is freed (closed, or relaying). */
    void (*login_end)(struct session *s);
    /* The client of sc leaves: sc is kept for another or closed. */
    void (*server_release)(struct server_conn *sc);
    /* An idle connection to h of r for s, linked to s; NULL when none (pool_take). */
    struct server_conn *(*server_take)(struct session *s, struct region *r, struct region_host *h,
                                       bool ready);
    /*
     * Whether s's next transaction waits for a connection to h to be given
     * back, counted as waiting (pool_txn_wait), and the end of that wait.
     */
    bool (*server_wait)(struct session *s, struct region_host *h, bool join);
    void (*server_wait_end)(struct session *s);
    /* Whether clients of s's pool in r wait in its worker's queue: it waits behind them. */
    bool (*server_queued)(const struct session *s, const struct region *r);
    /* After an event of a relaying session whose timeouts are followed (timeouts.h). */
    void (*relay_event)(struct session *s);
    /* The cancel requests on their way to sc ended: a connection held back for them goes on. */
    void (*server_cancel_done)(struct server_conn *sc);
    /* A server connection counted in the pool's limits closed. */
    void (*server_closed)(struct server_conn *sc);
    /* A server connection's login ended well: it left the worker's login_servers. */
    void (*server_logged_in)(struct server_conn *sc);
    /*
     * s's server is a host fenced as a former primary: whether its client's
     * bytes may go on to it (session/former_primary.h); false when s ended
     * or its client is not read meanwhile.
     */
    bool (*server_fenced)(struct session *s);
    /*
     * s's server ended while s was idle under session pooling: its FATAL
     * (error, len bytes: an ErrorResponse's body), or its socket closed
     * (error NULL), why.  True when s moves instead (session/move.h:
     * move_session_lost), the connection the move's from then on; false:
     * nothing was done, s ends as before.
     */
    bool (*server_ended_idle)(struct session *s, const uint8_t *error, size_t len, const char *why);
    /*
     * s's client drops, renames or copies database (session/db_unhold.h):
     * pgnear's idle connections to it close on every worker.
     */
    void (*database_unhold)(struct session *s, const char *database);
};

/* A new connection: the table's first phase (the PROXY header, the startup packet, ...). */
void phase_begin(struct session *s);

/* A new session of pgnear's own (min_pool_size) starts in first, one of the table's entries. */
void phase_begin_at(struct session *s, enum session_phase first);

/*
 * Sets s's phase to next and runs what starts it: the only way a phase
 * changes.  A move the table does not declare (its row's exits) is a bug:
 * the session fails with XX000 and the log says which move it was
 * (a build with PGNEAR_CHECKED, the sanitizers' build, aborts instead, so
 * that the tests see it).
 */
void phase_enter(struct session *s, enum session_phase next);

/*
 * The phase ended as it should: enters the one that follows, as the table
 * and the session's state decide.
 */
void phase_done(struct session *s);

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

/* A CancelRequest named s, which has no server to forward it to: its phase's cancel. */
void phase_cancel(struct session *s);

/* The phase's name, for logs. */
const char *phase_name(enum session_phase phase);

/* Whether the phase is part of the login (a failure in it counts as a failed login). */
bool phase_in_login(enum session_phase phase);

#endif
