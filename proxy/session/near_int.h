/*
 * near_int.h — what a session that needs nearest keeps of its
 * transactions (near.h): its leg and flags, the answer held, the messages
 * kept, its slots under session pooling.  Private to nearest's own files:
 * near.c, which owns it and alone changes its leg (near_leg_to, against
 * near_legs.c's table), near_hold.c (the answer held: it returns the leg
 * it wants), near_pooling.c (transaction pooling's door), near_slots.c
 * (its connections under session pooling) and near_state.c (its read
 * functions and notes).  Its real states are legs, not flags
 * (tests/doc/near_door.t: at most 10 booleans).  Every other file goes through near.h's verbs and
 * near_state.h's functions (tests/doc/owners.t).
 */
#ifndef PGNEAR_PROXY_NEAR_INT_H
#define PGNEAR_PROXY_NEAR_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/base/func_catalog.h"
#include "proxy/session/near_legs.h"
#include "proxy/session/session.h"

struct evbuffer;
struct msg_head;
struct near_pooling;
struct near_sync;
struct region_host;
struct registry_host;
struct registry_region;
struct server_conn;
struct session;

/* After a transaction on a primary, how long its checks and the standbys' hurry (near_on_ready). */
#define NEAR_HURRY_MS 2000

/* pool_mode = session: the session's own connections, one to a standby, one to a primary. */
enum near_slot { NEAR_SLOT_NEAR, NEAR_SLOT_PRIMARY, NEAR_SLOTS };

/*
 * What near_next_need found of the waiting request, for near_begin
 * (first: its first message's bytes; 0, nothing found or taken).
 */
struct near_placed {
    enum session_need need; /* NEED_PRIMARY or NEED_NEAREST */
    bool read_only;         /* a READ ONLY block: not held, its request not read further */
    size_t first, end;      /* its first message's bytes, the request's read */
};

/*
 * pool_mode = session (txn.c): its connections between transactions are
 * its own, parked here, not the pool's, until the session ends
 * (near_slots.c).  Its session state (settings, role, SQL PREPAREs) on
 * them (near_sync.h): a generation bumped by each transaction that may
 * have changed it, and the one each connection has.
 */
struct near_slots {
    bool own;
    struct server_conn *conn[NEAR_SLOTS];
    uint32_t gen[NEAR_SLOTS];
    int64_t near_sought_ms; /* when a fetcher last sought a standby while none was parked */
    bool state_changing;    /* the transaction going on may change it (txn_pin_scan_carried) */
    uint32_t state_gen;
    uint32_t conn_gen; /* the attached connection's */
    /* The connection attaching now, taken from its slot: conn_gen is its slot's; NULL none. */
    const struct server_conn *taken;
};

/*
 * The hold (the legs near_leg_holds names, near_hold.c): what refines it
 * while a transaction's answer is held on a standby.  near_begin clears
 * its flags for each transaction, near_on_relay its buffers for each
 * connection.
 */
struct near_hold {
    struct evbuffer *answer; /* the server's answer held, for the client */
    struct evbuffer *kept;   /* the client's messages, to run again */
    bool must_forward;       /* a text in it pins or locks: it belongs on a primary */
    bool cancel_asked;       /* a cancel request went to the standby while held (txn_cancel.h) */
    size_t checked_left;     /* bytes of client.in whose texts its request's check read */
};

/* A transaction run again on a primary (legs NEAR_FORWARDING, NEAR_RERUN, NEAR_RERUN_FAILED). */
struct near_forward {
    size_t replay_left; /* bytes of client.in that are messages run again */
    uint64_t total;     /* its transactions run again on a primary, for SHOW CLIENTS */
};

struct near_state {
    enum near_leg leg;               /* changed by near_leg_to alone, in near.c */
    const struct near_pooling *pool; /* txn.c's actions (near.h) */
    struct near_hold held;
    struct near_forward forward;
    bool head_seen;        /* the message at the head of client.in was seen (it waits) */
    bool client_paused;    /* the client's reading is paused for the answer (NEAR_LAST) */
    bool serializable;     /* a standby refused its serializable transaction: all on a primary */
    bool routines_changed; /* a text of it changes routines: catalogs read again at its end */
    bool pin_move_asked;   /* pinned on a standby: a move to a primary asked since its last began */
    uint64_t write_lsn;    /* a primary's position past the session's writes (near_position) */
    /* Its last transaction that may have written ended on this primary, then: not checked since. */
    const struct registry_host *wrote_on;
    int64_t wrote_at_ms;
    /* The primary its last transaction that may have written ran on (kept once checked). */
    const struct registry_host *last_primary;
    struct near_placed placed;
    /* Where its transactions ran, for SHOW CLIENTS (region entries live as long as pgnear). */
    const struct registry_region *reads_at;  /* of its last transaction placed near; NULL none */
    const struct registry_region *writes_at; /* of its last run again or placed on a primary */
    struct near_slots slots;
    struct near_sync *sync; /* a sync under way (near_sync.c's) */
    /* Its database's routines (func_catalog.h), and its wait for them, its client unread. */
    struct func_database *routines;
    struct func_waiter routines_wait;
    /*
     * Its request names what the copy does not know: 1 + the reads
     * started before it was seen (func_catalog_reads); 0, none such.
     */
    uint64_t unknown_since;
};

/* ---- near.c: its verbs for near_pooling.c ---- */

/* The attached connection takes the client's messages on: no transaction held yet. */
void near_on_relay(struct session *s);

/*
 * The client message at the head of client.in (h: its header) is about
 * to go to the server: kept while held.  can_let_go: the connection could
 * go back now (else a transaction for a primary starts where it is, held,
 * and is forwarded whatever the standby answers).  NEAR_PASS, NEAR_LAST,
 * NEAR_WAIT, NEAR_AGAIN, NEAR_REFETCH or NEAR_ENDED.
 */
enum near_verdict near_on_client(struct session *s, const struct msg_head *h, bool can_let_go);

/*
 * The server's ReadyForQuery (status) may end the transaction's request.
 * can_forward: its connection could go back now (else an answer to run
 * again goes to the client as it came).  NEAR_PASS, NEAR_RESUME,
 * NEAR_FORWARD or NEAR_ENDED.
 */
enum near_verdict near_on_ready(struct session *s, uint8_t status, bool can_forward);

/* ---- near_hold.c: the answer held (it moves no leg: near.c moves it as it asks) ---- */

/* The answer so far goes to the client, and the rest as it comes (leg NEAR_SHOWN). */
void near_give_up(struct session *s);
/* A client Flush while held (near.h): the leg it leads to (NEAR_HELD_FLUSHING or NEAR_SHOWN). */
enum near_leg near_flush_asked(struct session *s);
/* The client's first message after a Flush: true while it waits for the answers flushed for. */
bool near_flush_read(struct session *s);
/*
 * The held request at the head of client.in (end bytes) belongs on a
 * primary and its connection cannot go back now: a Sync of pgnear's own
 * in its place (leg NEAR_STANDING_IN).  False: out of memory.
 */
bool near_stand_in(struct session *s, size_t end);
/*
 * The held transaction's answer is complete (near_on_ready's verdicts);
 * *next: the leg it leads to (NEAR_FORWARDING with NEAR_FORWARD).
 */
enum near_verdict near_settle_held(struct session *s, uint8_t status, bool can_forward,
                                   enum near_leg *next);
/*
 * The held answer goes to the client after all, where the leg delivers
 * (near_legs.c); a stand-in's request goes back to run where it is,
 * unheld (leg NEAR_SHOWN then).  False: out of memory, or the session
 * failed (an undeclared delivery).
 */
bool near_deliver(struct session *s);
/* Where the transaction that ended ran, for SHOW CLIENTS: its reads' leg or its writes'. */
void near_note_ran(struct session *s, bool wrote);
/* The kept messages back in front of client.in, to run again (leg NEAR_FORWARDING). */
bool near_put_back(struct session *s);

/* ---- near_state.c: what the session wrote ---- */

/*
 * A transaction ended on a primary: it may have written, the session
 * reads there until it knows a position past it (near_position).  False:
 * the session ended.
 */
bool near_wrote(struct session *s, struct region_host *primary);

/* ---- near_slots.c ---- */

/* Whether the attached connection lacks the session's newest state (near_sync.h). */
bool near_slots_behind(const struct session *s);
/* The connection attaching now: its state's generation (a parked one's, or a fresh one's). */
void near_slots_attach(struct session *s);

#endif
