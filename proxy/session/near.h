/*
 * near.h — target_session_attrs = nearest under transaction pooling: each
 * transaction on the nearest host that can run it.  Under pool_mode =
 * session the same, on two connections of the session's own (its slots:
 * a standby's, a primary's), parked between its transactions as txn.c
 * lets them go (near_on_let_go) instead of going back to the pool, and
 * given back as it ends.
 *
 * Where a transaction starts.  When the session's next transaction needs
 * a server (txn.c), near_next_need looks at its first message: a block
 * that BEGIN or START TRANSACTION opens goes to a primary unless it says
 * READ ONLY (txn_open.h): once its client has seen a read's rows, a block
 * cannot be run again elsewhere, and a block run on a primary never fails
 * where the primary would not.  So does a text that calls an advisory
 * lock (one taken on a standby excludes nobody), that would pin the
 * session (txn_pin.h: the session would stay where it ran), or that runs
 * DO, CALL, or names what its database's catalog does not positively
 * know to only read (func_catalog.h: a function, view, operator, cast or
 * domain may write, and a standby runs it without an error and without
 * the write when it catches the refusal; a name the catalog does not
 * know has it read again first, the transaction waiting); so does a Query of several
 * statements whose statements after the first are not all plain reads
 * (txn_open.h's later_writes: its first statement's answer could pass
 * NEAR_HOLD_MAX and reach the client before a standby refused a later
 * one); while that catalog's first read is
 * under way the transaction waits for it, its client unread.  Everything
 * else starts on the nearest host of any role, a standby first (need.h:
 * NEED_NEAREST), unless the session must read what it wrote on a primary
 * and no standby is known to have replayed it yet (need_spec's last read:
 * txn.c notes the host and time of each transaction's end).
 *
 * The answer held.  A transaction that starts on a standby is *held*: the
 * client's messages are read up to the first that asks for an answer
 * (Query, Sync, FunctionCall) and kept; the server's answer goes to a
 * buffer of its own instead of the client; and the client is read no
 * further until the server's ReadyForQuery settles the transaction:
 *
 *   - the answer holds an ErrorResponse 25006 (read-only transaction, a
 *     statement that writes), or another error a standby gives for what
 *     a primary runs (0A000: an unlogged table, serializable; 55000:
 *     pg_current_wal_lsn; txid_current's XX000): it is dropped, the standby's connection goes
 *     back to the pool (its implicit transaction ended with the error), the
 *     kept messages go back in front of the client's input, and they run
 *     again on a primary (near_put_back), whose answer the client gets as
 *     if it had been connected there.  The standby ran nothing that wrote:
 *     the write runs once;
 *   - otherwise the answer goes to the client as it came.
 *
 * A server that ends the connection while its answer is held (a FATAL of
 * pg_terminate_backend, say) has it go to the client, its FATAL last,
 * and the session ends (txn.c's server_gone hook, session_server_gone):
 * only a refusal above runs again.
 *
 * Placed by its request.  A transaction is placed once the extended
 * protocol's messages that begin it are in, up to the first that asks for
 * an answer (a client expects none sooner): a message of them longer than
 * NEAR_HOLD_MAX (a Bind of a large value behind a short Parse) places it
 * on a primary, as a long first message does.  Each Query, Parse and
 * Bind of that request (of its first NEAR_HOLD_MAX bytes) is read by the
 * rule above before any of it goes to a standby, each text once
 * (near_next_need reads it as the connection is fetched, near_begin
 * takes its verdict): one that belongs on a primary places the whole
 * request there, the standby running none of it (a dblink_exec later in
 * a pipelined batch would write there, and again where the transaction
 * runs again).  So is a held transaction's next request after a Flush
 * (below).  Where the standby's connection cannot go back at once (a
 * Flush left a batch open there), a Sync of pgnear's own takes the
 * request's place on the standby, the request kept unsent, and its
 * ReadyForQuery forwards the transaction as a refusal does.
 *
 * A hold is given up — the answer so far goes to the client and the rest
 * follows as it comes, and a 25006 after that reaches the client — when
 * the answer grows past NEAR_HOLD_MAX (a long read), when the server
 * starts a COPY (its CopyInResponse or CopyOutResponse must reach the
 * client, and a COPY FROM that a standby refuses is refused before it),
 * or when the client sends a message longer than NEAR_HOLD_MAX.  A client
 * Flush (Parse, Describe, Flush, as asyncpg prepares) delivers what is
 * held so far and what the server answers after it (the client waits for
 * it); the client's next message waits until all of it was delivered.
 * The hold goes on when none of it was a statement's result or an error
 * and no Bind went before the Flush (its portal would be the standby's):
 * the messages after the Flush are then the ones run again (the rewriter
 * Parses on the primary whatever statement they use that it lacks).
 * Otherwise the hold is given up.
 *
 * A block placed near because it said READ ONLY is not held: a write in
 * it gets the standby's 25006, as the primary would refuse it.  A Query
 * or Parse in it (its ReadyForQuery in) that takes an advisory lock (which would exclude no session
 * of the primary) or would keep the session on the standby (txn_pin.h) is refused: a DO of pgnear's
 * own takes its place and raises 0A000 there, so that the block fails on the standby as on a server
 * that refused it (a Parse's under its name, with its parameters: raised at the Execute).
 *
 * A session whose transactions are serializable by default runs each on
 * a primary (near_serializable): a standby refuses them all
 * (0A000).  nearest learns it from the startup parameters and from a
 * text that may set it (txn_open_sets_serializable, near_on_text); a role's or database's
 * default shows only as the first such refusal, forwarded as a 25006 is.
 *
 * A client whose stream ends without a Terminate has the whole messages
 * it sent before run as if a Terminate followed them (txn_hooks'
 * client_ended, near_on_client_ended): a write it sent as it left runs, forwarded when a
 * standby refuses it, as a backend runs what reached it.
 */
#ifndef PGNEAR_PROXY_NEAR_H
#define PGNEAR_PROXY_NEAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/session/near_hold.h"
#include "proxy/session/near_legs.h"
#include "proxy/session/near_state.h"
#include "routing/need.h"

struct msg_head;
struct server_conn;
struct session;

/*
 * A session's nearest state (s->near) is near.c's own (near_int.h):
 * others change it through the verbs below and near_hold.h's, each
 * returning a verdict (near_legs.h) that the caller acts on, and read it
 * through near_state.h's functions.
 */
struct near_state;

/*
 * What transaction pooling (txn.c) does for nearest, handed down as the
 * session starts, so that nearest calls nothing above it: its verbs below
 * call these where txn.c's own action follows.
 */
struct near_pooling {
    /* The attached connection takes the client's waiting messages on (its state there). */
    void (*go)(struct session *s);
    /* The session keeps its server connection from now on (txn_pin). */
    void (*pin)(struct session *s, const char *why);
    /* The client's waiting messages go on to the server; <0: the session ended. */
    int (*pump)(struct session *s);
    /* The connection goes back (it could), and another is fetched for what waits. */
    void (*fetch_again)(struct session *s);
};

/*
 * The session needs nearest and is followed (transaction pooling, or
 * own_slots: session pooling on connections of its own): s->near, its
 * startup parameters read for a serializable default; false: out of
 * memory.  pool lives as long as pgnear.
 */
bool near_session_start(struct session *s, bool own_slots, const struct near_pooling *pool);
void near_session_end(struct session *s);

/* Whether the first message in client.in is whole (or needs no reading): its need is known. */
bool near_first_ready(struct session *s);

/* The need to fetch the next transaction's connection for, from the first message in client.in. */
enum session_need near_next_need(struct session *s);

/* ---- verbs for txn.c (near_pooling.c): each acts on its own verdicts ---- */

/*
 * A connection attached for the session's next transaction: the
 * session's state carried to it first where it lacks it (near_sync.h),
 * then pool->go.  False: not followed (txn.c goes on itself).
 */
bool near_on_attach(struct session *s);

/*
 * The connection sc goes back (txn.c let it go): under session pooling
 * parked in the session's slot (true), else the pool's (false).
 */
bool near_on_let_go(struct session *s, struct server_conn *sc);

/*
 * Whether a change of the session's state (a reported setting, a text
 * too long to read) is carried under session pooling rather than pinned
 * (near_sync.h): noted then.
 */
bool near_carries(struct session *s);

/*
 * A Query's or Parse's text (body, len bytes; NULL: too long to read)
 * that pins for why (txn.c's scan; NULL: none), changes: the state it
 * may change.  Noted (a change to carry, a serializable default); the
 * reason that pins now, or NULL (carried; or held for a primary, where it
 * pins as it runs again).  Under session pooling, a reason returned has
 * its parked connections go back: it stays where it runs.
 */
const char *near_on_text(struct session *s, const uint8_t *body, size_t len, bool changes,
                         const char *why);

/*
 * The client message at the head of client.in (h) is about to go
 * (near_on_client; a Bind's pins under session pooling): MSG_HEAD, it
 * goes on (the client paused for its answer where it asks for one); else
 * as txn_client_step returns (MSG_WAIT, MSG_MOVED: another message took
 * its place; MSG_ENDED), the connection let go for a primary's where it
 * belongs there (pool->fetch_again).
 */
int near_client_step(struct session *s, const struct msg_head *h, bool can_let_go);

/*
 * The server's ReadyForQuery on an attached connection (near_on_ready):
 * NEAR_PASS (a paused client read again), NEAR_FORWARD (the request put
 * back: txn.c lets the connection go and fetches a primary's) or
 * NEAR_ENDED.
 */
enum near_verdict near_on_server_ready(struct session *s, uint8_t status, bool can_forward);

/*
 * The connection stays with the session after its transaction (pinned,
 * or its client sent more): a pinned session's parked connections go
 * back (session pooling), and one pinned on a standby moves to a primary
 * (move.h).  False: the session ended.
 */
bool near_on_idle(struct session *s);

/*
 * The client's stream ended without a Terminate (txn_hooks'
 * client_ended): its whole messages run as if one followed.  False:
 * nothing is left to run, and the session ends.
 */
bool near_on_client_ended(struct session *s, bool hangup);

/*
 * The session closes: its sync ends, its own connections go back (reset)
 * and its nearest state goes.  True: its connections were its own (the
 * attached one is reset too).
 */
bool near_on_close(struct session *s);

/* ---- verbs of near.c for the cancels (txn_cancel.c) and the rewriter (txn.c) ---- */

/* A cancel request reached the session's server: noted while its answer is held (txn_cancel.h). */
void near_on_cancel(struct session *s);

/*
 * A cancel request for the request (n bytes at the head of client.in)
 * that waits for a connection: it runs nowhere; the client gets a
 * standby's answer to it first where it was to run again, then 57014.
 * False: out of memory.
 */
bool near_cancel_unsent(struct session *s, size_t n);

/* n bytes of client.in were read: while some were run again, the rewriter knows (prep replay). */
void near_consumed(struct session *s, size_t n);

#endif
