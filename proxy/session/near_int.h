/*
 * near_int.h — what a session that needs nearest keeps of its
 * transactions (near.h): its leg and flags, the answer held, the messages
 * kept, its slots under session pooling.  Private to nearest's own files:
 * near.c, which owns it and changes its leg (near_leg_to, against
 * near_legs.c's table), near_hold.c (the answer held), near_slots.c (its
 * connections under session pooling) and near_state.c (its read functions
 * and notes).  Every other file goes through near.h's verbs and
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
struct near_sync;
struct registry_host;
struct registry_region;
struct server_conn;
struct session;

/* After a transaction on a primary, how long its checks and the standbys' hurry (near_on_ready). */
#define NEAR_HURRY_MS 2000

/* pool_mode = session: the session's own connections, one to a standby, one to a primary. */
enum near_slot { NEAR_SLOT_NEAR, NEAR_SLOT_PRIMARY, NEAR_SLOTS };

/* What near_next_need found of the waiting request, for near_begin (valid: still so). */
struct near_placed {
    bool valid, primary, read_only;
    size_t first, end; /* its first message's bytes, the request's read */
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
    bool taken;        /* the connection attaching now was parked: conn_gen is its slot's */
};

/*
 * The hold (leg NEAR_HELD, near_hold.c): what refines it while a
 * transaction's answer is held on a standby.  near_begin clears its flags
 * for each transaction, near_on_relay its buffers for each connection.
 */
struct near_hold {
    struct evbuffer *answer; /* the server's answer held, for the client */
    struct evbuffer *kept;   /* the client's messages, to run again */
    bool request_sent;       /* its request is sent whole: the client waits, unread */
    bool must_forward;       /* a text in it pins or locks: it belongs on a primary */
    bool flushing;           /* a Flush asked for the answers so far: they go to the client */
    bool portal_kept;        /* a Bind or Execute since the last Flush: a portal on the standby */
    bool next_request;       /* the hold goes on after a Flush: the next request is read whole */
    bool stood_in;           /* a Sync of pgnear's own took the place of a request (kept) */
    bool cancel_asked;       /* a cancel request went to the standby while held (txn_cancel.h) */
    size_t checked_left;     /* bytes of client.in whose texts its request's check read */
};

/* A transaction run again on a primary (leg NEAR_PRIMARY after a hold put back). */
struct near_forward {
    bool pending;       /* its messages wait in client.in for a primary's connection */
    bool running;       /* it runs again on a primary */
    bool failed;        /* ... and the primary answered with an error */
    size_t replay_left; /* bytes of client.in that are messages run again */
    uint64_t total;     /* its transactions run again on a primary, for SHOW CLIENTS */
};

struct near_state {
    enum near_leg leg; /* changed by near_leg_to alone */
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
    struct near_placed placed;
    /* Where its transactions ran, for SHOW CLIENTS (region entries live as long as pgnear). */
    bool for_primary; /* the transaction going on was placed on a primary (a block, a lock) */
    const struct registry_region *reads_at;  /* of its last transaction placed near; NULL none */
    const struct registry_region *writes_at; /* of its last run again or placed on a primary */
    struct near_slots slots;
    struct near_sync *sync; /* a sync under way (near_sync.c's) */
    /* Its database's routines (func_catalog.h), and its wait for them, its client unread. */
    struct func_database *routines;
    struct func_waiter routines_wait;
    /* Its request names what the copy does not know: the reads started before it was seen. */
    bool unknown_seen;
    uint64_t unknown_reads;
};

/* The transaction moves to leg next, as near_legs.c's table allows (near_leg_enter). */
static inline bool near_leg_to(struct session *s, enum near_leg next)
{
    return near_leg_enter(s, &s->near->leg, next);
}

/* ---- near_hold.c: the answer held ---- */

/* The answer so far goes to the client, and the rest as it comes: no replay for this one. */
void near_give_up(struct session *s);
/* A client Flush while held (near.h). */
void near_flush_asked(struct session *s);
/* The client's first message after a Flush: true while it waits for the answers flushed for. */
bool near_flush_read(struct session *s);
/*
 * The held request at the head of client.in (end bytes) belongs on a
 * primary and its connection cannot go back now: a Sync of pgnear's own
 * in its place (near_hold.c).  False: out of memory.
 */
bool near_stand_in(struct session *s, size_t end);
/* The held transaction's answer is complete (near_on_ready's verdicts). */
enum near_verdict near_settle_held(struct session *s, uint8_t status, bool can_forward);
/* The held answer goes to the client after all; false: out of memory. */
bool near_deliver(struct session *s);
/* Where the transaction that ended ran, for SHOW CLIENTS: its reads' leg or its writes'. */
void near_note_ran(struct session *s, bool wrote);

/* ---- near_slots.c ---- */

/* Whether the attached connection lacks the session's newest state (near_sync.h). */
bool near_slots_behind(const struct session *s);
/* The connection attaching now: its state's generation (a parked one's, or a fresh one's). */
void near_slots_attach(struct session *s);

#endif
