/*
 * move_int.h — what the parts of a move of a live session (move.h) share:
 * the move's record, its steps, the readers of its server connections and
 * the functions one part uses of another.  The parts, each using only those
 * before it:
 *   move_end.c    how a move ends, and the old server's messages meanwhile;
 *   move_mover.c  where the session goes, and the mover that logs in there;
 *   move_wire.c   the hold, the state read, the replay, the drain, the switch;
 *   move_ask.c    asking for a move, and starting it.
 */
#ifndef PGNEAR_PROXY_MOVE_INT_H
#define PGNEAR_PROXY_MOVE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>

#include "protocol/session_state.h"
#include "proxy/session/move.h"
#include "proxy/session/msg_loop.h"

struct event;
struct fetch_ops;
struct session;
struct session_hooks;

/* The largest message of the state's answer or the replay's read at once. */
#define MOVE_MAX_MESSAGE (SESSION_STATE_MAX_BYTES + 1024)

enum move_step {
    MOVE_WAITING,    /* for the session's next safe point (the mover logs in meanwhile) */
    MOVE_READING,    /* the old server answers the state query */
    MOVE_CONNECTING, /* the state is read; the mover is still logging in to the target */
    MOVE_REPLAYING,  /* the target runs the replay */
    MOVE_DRAINING,   /* the old server answers a NOTIFY: its notifications go on */
};

struct session_move {
    struct session *s;
    struct session *mover; /* the fetcher logging in to the target (fetch.h); NULL: none */
    bool mover_ready;      /* it has logged in, and waits for the state to replay */
    /* What the mover tells the move (move_wire.c's), handed down by move_session. */
    const struct fetch_ops *mover_ops;
    struct move_target target;
    enum move_step step;
    move_done_fn done;
    void *arg;
    struct move_result res;
    struct session_state st;
    struct event *timer; /* move_timeout */
    /* move_timeout and failover_wait as the move began (the worker's, reloads included). */
    int timeout_ms, failover_ms;
    struct event *retry; /* waiting for a standby to replay the session's position */
    int64_t held_us;     /* when the client was held; 0: not yet */
    char failure[200];   /* why the read or the replay failed; "" */
    bool old_gone;       /* the old server failed after the state was read (move_old_failed) */
    /* Its server ended while it was idle: nothing was read, its login's state goes (move.h). */
    bool lost;
    unsigned lost_downs; /* ... and how often its host had gone down then (health_downs) */
    char old_why[320];   /* ... and why: the session ends with it if the move fails */
    /* An ErrorResponse the old server sent meanwhile (its FATAL as it ends), held back. */
    uint8_t old_error[1024];
    uint32_t old_error_len;
};

/*
 * A reader of the session's server connection (the mover's, for the
 * target): whole messages, each handed to handler (msg_loop.h).
 */
#define MOVE_READER(name, handler)                                                                 \
    MSG_SERVER_READER(, name, handler, MOVE_MAX_MESSAGE, move_bad_length)

/* ---- move_end.c ---- */

/* The move's failure, prefix and text, unless it has one already. */
void move_fail_text(struct session_move *mv, const char *prefix, const char *text);
/* A server's ErrorResponse as the failure: its SQLSTATE and message, after prefix. */
void move_fail_report(struct session_move *mv, const char *prefix, const uint8_t *body,
                      uint32_t len);
void move_end(struct session_move *mv, bool moved, const char *reason);
/* s ends while a move of it is under way: the move ends with it (s->rare->moving's closing). */
void move_abandon(struct session *s);
/* A message of the old server that is not the move's: on to the client, as the relay would. */
int move_pass_on(struct session *s, char type, const uint8_t *body, uint32_t len);
void move_bad_length(struct session *s);

/*
 * The readers of the move's server connections, one a step (MOVE_READER):
 * the old server's messages while the session waits for its safe point
 * (move_end.c), the state's answer, the drain's and the replay's
 * (move_wire.c).
 */
void move_old_read(struct session *s);
void move_state_read(struct session *s);
void move_drain_read(struct session *s);
void move_replay_read(struct session *s);

/* ---- move_mover.c ---- */

/* Whether the region named (of the worker's configuration) holds s's database. */
bool move_region_holds_database(const struct session *s, const char *region);
void move_start_mover(struct session_move *mv, bool early);
/* The mover closes before the move ended (its fetch_ops' lost): the move fails with why. */
void move_mover_lost(struct session *m, void *arg, const char *why);
/* The mover logged in before the state was read: does its server have what the session has seen? */
bool move_mover_fits(struct session_move *mv);
/*
 * A session with no server connection (transaction pooling, between its
 * transactions) moves at once: its next transactions go to the region of
 * t, or of its route, that r->to names then.  NULL, or why it cannot.
 */
const char *move_route_detached(struct session *s, const struct move_target *t,
                                struct move_result *r);

/* ---- move_wire.c ---- */

/* The session is asked to stop at its next safe point (now, if it is at one). */
void move_hold(struct session_move *mv);
/* What the mover tells the move (fetch.h), and what the gate and the close tell it
 * (s->rare->moving). */
extern const struct fetch_ops move_mover_ops;
extern const struct session_hooks move_session_hooks;

#endif
