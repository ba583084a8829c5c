/*
 * near_state.h — what others read of a nearest session's state (near.h),
 * and what they note in it for near.c (near_state.c): its state itself is
 * private (near_int.h).  s->near may be NULL (not followed) for each.
 */
#ifndef PGNEAR_PROXY_SESSION_NEAR_STATE_H
#define PGNEAR_PROXY_SESSION_NEAR_STATE_H

#include <stdbool.h>
#include <stdint.h>

struct evbuffer;
struct func_database;
struct near_sync;
struct need_spec;
struct session;

/* Where pgnear's own answers to the client go (the rewriter's ParseComplete): held or not. */
struct evbuffer *near_answers(const struct session *s);

/* Whether the client may be read now (no answer awaited while held). */
bool near_reads_client(const struct session *s);

/*
 * Whether the session is inside a request though its server is between
 * messages (txn_hooks' owes_request): its answer held on a standby, which
 * may yet have it run on a primary; for_close, also its messages waiting
 * in client.in to run there (an admin's hold may hold them, as a new
 * request's; a close waits for their answer).
 */
bool near_owes_request(const struct session *s, bool for_close);

/* Whether its transactions run on connections of its own (pool_mode = session). */
bool near_own_slots(const struct session *s);

/* Whether its transactions are serializable, each on a primary. */
bool near_serializable(const struct session *s);

/* Whether its answer is held on a standby for a transaction that belongs on a primary. */
bool near_held_for_primary(const struct session *s);

/* Its database's routines (func_catalog.h); NULL when not followed. */
struct func_database *near_routines(const struct session *s);

/* What SHOW CLIENTS shows of it. */
struct near_show {
    int64_t forwarded; /* its transactions run again on a primary; -1: not followed */
    bool owns_parked;  /* a connection of its own is parked */
    const char *reads_at, *writes_at; /* regions of its last transactions; NULL: none */
};
void near_show(const struct session *s, struct near_show *out);

/* The state sync under way (near_sync.c's), or NULL; and setting it (near_sync.c alone). */
struct near_sync *near_sync_of(const struct session *s);
void near_sync_set(struct session *s, struct near_sync *y);

/*
 * The position the next transaction's server must have: what the session
 * wrote.  After a transaction that may have written on a primary (run
 * again there, or placed there by its text), the first check of that
 * primary that started since gives a position past the session's writes:
 * the session's write position, which a standby must have replayed
 * (need.h's min_lsn).  Until that check, only the primary fits (need's
 * last read).  A fixed bar: the primary's position at its latest check
 * rises with every other session's writes, and a session's own reads on
 * the primary meanwhile do not move it, so a busy primary's sessions read
 * near again within a few checks.  The session sees its own writes;
 * other sessions' as a standby's staleness allows.  Its reads on a
 * standby are kept monotonic as any session's under transaction pooling
 * (need.h: read_at), its reads on a primary by the position above.
 */
void near_position(struct session *s, struct need_spec *need);

/* ---- notes, for a followed session (s->near not NULL) ---- */

/*
 * A statement of the session may make its transactions serializable
 * (how: what said so): a standby cannot run them, so each runs on a
 * primary from now on (near.h).
 */
void near_note_serializable(struct session *s, const char *how);

/* The transaction going on may change the session's state (near_sync.h): carried at its end. */
void near_note_state_change(struct session *s);

/* A text of the transaction changes routines: its database's catalog is read again at its end. */
void near_note_routines_changed(const struct session *s);

/*
 * Whether a move of the session, pinned on a standby, to a primary may be
 * asked now (txn.c): between its transactions (no request of it left to
 * run there: a refusal shown, a request a Sync of pgnear's stood in for),
 * and once a transaction, so that a move that failed (a state that
 * cannot move), whose end lets the session's hold go, is not asked again
 * before the client's next transaction.  Marks it asked.
 */
bool near_pin_move_may_ask(struct session *s);

#endif
