/*
 * move.h — moving a live session to another server at a transaction
 * boundary, without its client noticing more than a pause.
 *
 * A move asked of a session (move_session) holds it at its next safe
 * point (gate.h, HOLD_MOVE): the server idle, every request answered, no
 * batch open, no COPY.  The login of step 2 comes first, while the
 * session runs on, and the hold is asked for once it is done, so that the
 * client waits for no more than the read and the replay (a login that
 * fails fails the move before the client was held at all); only where no
 * server fits before the read has told the session's position (a standby
 * that must catch up) is the session held first.  On the session's own
 * worker:
 *
 *   1. read   one Query on the old server reads back what the session
 *             carries (protocol/session_state.h); a session with temporary
 *             tables, session advisory locks or WITH HOLD cursors is
 *             named with that reason and left where it is;
 *   2. login  an internal session without a client (the mover, a
 *             fetcher of fetch.h) logs in to the target like a client's
 *             login would: a kept connection of the pool, or a new one
 *             under the session's own user, database, startup
 *             parameters and ClientKey; what the session needs comes with it (read-write: a
 * primary), and the WAL position the session has seen as its pgnear.min_lsn, so that a standby
 * behind it is waited for or refused (a mover that logged in early to a standby behind the position
 * read gives way to one that waits);
 *   3. replay the state, as one pipelined batch ending in a Sync: one
 *             implicit transaction, all or nothing;
 *   4. drain  with LISTEN channels only: a NOTIFY on the old server,
 *             its notifications passed on until its answer, so that none
 *             sent before the new server listened is lost (one sent
 *             between the two may come twice); the old one listens until
 *             the switch, so a move that fails here loses no channel;
 *   5. switch the session's cancel key now names the new backend, the old
 *             connection goes back to the pool (reset) or is closed, and
 *             the client is read again.
 *
 * Until the switch the new connection belongs to the mover: whatever
 * fails there (the login refused, a replayed statement, the target dying,
 * move_timeout) ends the mover alone, and the session goes on on its old
 * server as if nothing had happened; the reason goes to whoever asked.
 * Once the state is read, the old connection's failures are the move's
 * too (its endpoint's on_fail): a server that goes away then (a region
 * being shut down) does not end the session if the target takes it; its
 * last words (a FATAL ErrorResponse) are held back meanwhile, and told
 * only if the move fails, when the session ends as it would have.
 * The client keeps its connection, its cancel key and the ParameterStatus
 * values it was told; only pg_backend_pid() changes.
 */
#ifndef PGNEAR_PROXY_MOVE_H
#define PGNEAR_PROXY_MOVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct session;

#define MOVE_REGION_MAX 64

/* How a move ended, for whoever asked (one row of the console's answer). */
struct move_result {
    uint64_t client_id;
    char from[MOVE_REGION_MAX];
    char to[MOVE_REGION_MAX]; /* where it went, or was to go ("" when no region was found) */
    bool moved;
    char reason[256]; /* why not; "" when moved */
    int64_t hold_us;  /* how long the client was not read: from the safe point to the switch */
};

/* Called once per move, on the session's worker. */
typedef void (*move_done_fn)(const struct move_result *r, void *arg);

/* Where a move goes: one region, or the session's next region by its own route. */
struct move_target {
    char region[MOVE_REGION_MAX]; /* "": the first region of its route that is not avoid */
    char avoid[MOVE_REGION_MAX];  /* "": none */
    /* Held at its next safe point at once, not after the target's login: no request more on the
     * server it leaves (a former primary's, former_primary.h). */
    bool hold_first;
    /* To a primary, whatever the session needs: a nearest session's pin carried off a standby
     * (txn.c), where its writes must run. */
    bool primary;
    /* Where no server fits yet, its mover waits as a login does (failover_wait more): a session
     * whose server ended, or one leaving a former primary, whose new primary may not have been
     * checked yet (a name DNS moved). */
    bool wait_for_role;
};

/*
 * Asks s to move at its next safe point, within move_timeout.  done hears
 * the end, always, also when the move cannot start (then before this
 * returns).
 */
void move_session(struct session *s, const struct move_target *t, move_done_fn done, void *arg);

/*
 * s's server ended while s was idle under session pooling (a fast
 * shutdown for a switchover: its FATAL, error of len bytes, the body of an
 * ErrorResponse; NULL when its socket closed without one, why): s is held
 * and moved by its route with the state of its login, which pgnear knows
 * it still has (state_watch.h), as a drained session moves; its server
 * connection is the move's from then on.  The mover waits, as a login
 * does, for a primary being promoted (failover_wait), within
 * move_timeout.  If the move fails (or lands on the same host, which never
 * went down meanwhile: its backend alone was ended), the client gets the
 * FATAL after all and the session ends as it would have.  False, nothing done: s cannot move so
 * (move_lost_refusal says why) and ends as before.
 */
bool move_session_lost(struct session *s, const uint8_t *error, size_t len, const char *why);

/* Why s cannot move once its server has ended (static text), or NULL when it can. */
const char *move_lost_refusal(const struct session *s);

/* Why s cannot be moved at all (static text), or NULL when it can. */
const char *move_refusal(const struct session *s);

/* The region s's route picks now, into out (""): what MOVE CLIENTS HOME compares. */
void move_home_region(const struct session *s, char *out, size_t cap);

#endif
