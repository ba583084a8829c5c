/*
 * near_sync.h — a nearest session's state carried between its two
 * connections under pool_mode = session (near.h's slots).
 *
 * A session under session pooling keeps what it set — SET, set_config(),
 * SET ROLE, SQL PREPARE — for its life.  A nearest session runs its
 * transactions on two connections of its own, a standby's and a
 * primary's, so what one transaction set on one of them must be there on
 * the other before that one runs the next.  Rather than pin the session
 * to the connection that ran the SET (an application that sets its
 * search_path or time zone as it connects would then never read near),
 * pgnear counts the session's state in generations: a transaction whose
 * text may change it (txn_pin_scan_carried, and any ParameterStatus the
 * server reports) makes the connection it ran on the only one with the
 * newest generation.  Before a connection with an older one runs a
 * transaction, the state is read back from the newest (session_state.h's
 * query, one round trip) and replayed on it after a DISCARD ALL and the
 * session's own startup parameters (one pipelined round trip), as a
 * move of a live session does; its prepared statements of the extended
 * protocol are left to the rewriter, which parses them again where they
 * are used (txn_prep.h).  A session that never changes its state never
 * syncs; one that does pays the two round trips once per change, at the
 * first transaction on its other connection.
 *
 * The read and the replay run in a transaction of pgnear's own limits,
 * not the session's (session_state_query_own_limits): read committed, as
 * a standby refuses a serializable transaction; no statement_timeout or
 * lock_timeout, lifted with SET LOCAL after the session's are read, and
 * set again last in the replay.  The statements that lift them still run
 * under the session's: a read they cancel (57014) is made again, up to
 * NEAR_SYNC_READS times.
 *
 * What the read finds that lives on one server only (temporary tables,
 * session advisory locks, WITH HOLD cursors, SET SESSION AUTHORIZATION,
 * made where no scan saw them, by a function) and a replay the other
 * server refuses keep the session on the connection that has its state
 * (the caller pins it): for good on a primary; on a standby until a move
 * can carry it to a primary (txn.c, as its transactions end).  With no
 * connection left that has it (the server ended it while it was parked)
 * the session cannot go on as it was and ends.
 */
#ifndef PGNEAR_PROXY_NEAR_SYNC_H
#define PGNEAR_PROXY_NEAR_SYNC_H

#include <stdbool.h>

struct server_conn;
struct session;

enum near_sync_end {
    NEAR_SYNC_DONE,   /* the attached connection has the state now */
    NEAR_SYNC_PINNED, /* it stays on the one that has it (attached); spare is the other */
    NEAR_SYNC_FAILED, /* the state is lost or unreadable: the session must end (why) */
};

/*
 * Called as the sync ends, inside an event of the session.  spare: a
 * connection the session no longer uses (detached: the caller gives it
 * back), or NULL.  why: what the log and the client are told (static or
 * in the session's memory until the call returns).
 */
typedef void (*near_sync_done)(struct session *s, enum near_sync_end how, struct server_conn *spare,
                               const char *why);

/* Whether a sync is under way: the session's request waits for it, run nowhere yet. */
bool near_sync_running(const struct session *s);

/*
 * Carries the newest state to the attached connection (near_on_attach):
 * reads it from the parked one that has it, replays it, then calls done.
 * The client is not read meanwhile.
 */
void near_sync_start(struct session *s, near_sync_done done);

/* The session ends during a sync: its memory goes (the connections are the session's). */
void near_sync_end(struct session *s);

#endif
