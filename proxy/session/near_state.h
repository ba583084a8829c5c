/*
 * near_state.h — what a session that needs nearest keeps of its
 * transactions (near.h): its leg and flags, the answer held, the messages
 * kept, its slots under session pooling.  Written by near.c and the files
 * that place its transactions (near_text.c, txn*.c, near_sync.c).
 */
#ifndef PGNEAR_PROXY_NEAR_STATE_H
#define PGNEAR_PROXY_NEAR_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/base/func_catalog.h"

struct evbuffer;
struct near_sync;
struct registry_host;
struct registry_region;
struct server_conn;

/* The most of a server's answer held, and the longest client message kept. */
#define NEAR_HOLD_MAX (64 * 1024)

/* After a transaction on a primary, how long its checks and the standbys' hurry (near_settle). */
#define NEAR_HURRY_MS 2000

/* pool_mode = session: the session's own connections, one to a standby, one to a primary. */
enum near_slot { NEAR_SLOT_NEAR, NEAR_SLOT_PRIMARY, NEAR_SLOTS };

enum near_leg {
    NEAR_BETWEEN, /* no transaction going on, or one not followed */
    NEAR_HELD,    /* on a standby, its answer held */
    NEAR_SHOWN,   /* on a standby, some of its answer shown: it stays there */
    NEAR_PRIMARY, /* on a primary: placed there, or run again there */
};

struct near_state {
    enum near_leg leg;
    bool request_sent;     /* its request is sent whole: the client waits, unread */
    bool forwarded;        /* it runs again on a primary */
    bool forward_failed;   /* ... and the primary answered with an error */
    bool must_forward;     /* a text in it pins or locks: it belongs on a primary */
    bool serializable;     /* a standby refused its serializable transaction: all on a primary */
    bool forward_pending;  /* its messages wait in client.in for a primary's connection */
    bool head_seen;        /* the message at the head of client.in was seen (it waits) */
    bool client_paused;    /* the client's reading is paused for the answer */
    bool flushing;         /* a Flush asked for the answers so far: they go to the client */
    bool portal_kept;      /* a Bind or Execute since the last Flush: a portal on the standby */
    bool cancel_asked;     /* a cancel request went to the standby while held (txn_cancel.h) */
    bool routines_changed; /* a text of it changes routines: catalogs read again at its end */
    bool next_request;     /* the hold goes on after a Flush: the next request is read whole */
    bool stood_in;         /* a Sync of pgnear's own took the place of a request (kept) */
    size_t replay_left;    /* bytes of client.in that are messages run again */
    size_t checked_left;   /* bytes of client.in whose texts its request's check read */
    uint64_t write_lsn;    /* a primary's position past the session's writes (near_position) */
    /* Its last transaction that may have written ended on this primary, then: not checked since. */
    const struct registry_host *wrote_on;
    int64_t wrote_at_ms;
    /* What near_next_need found of the waiting request, for near_begin (placed: still so). */
    bool placed, placed_primary, placed_read_only;
    size_t placed_first, placed_end; /* its first message's bytes, the request's read */
    struct evbuffer *answer;         /* the server's answer held, for the client */
    struct evbuffer *kept;           /* the client's messages, to run again */
    /* Where its transactions ran, for SHOW CLIENTS (region entries live as long as pgnear). */
    bool for_primary; /* the transaction going on was placed on a primary (a block, a lock) */
    const struct registry_region *reads_at;  /* of its last transaction placed near; NULL none */
    const struct registry_region *writes_at; /* of its last run again or placed on a primary */
    uint64_t forwarded_total;                /* its transactions run again on a primary */
    /*
     * pool_mode = session (txn.c): its connections between transactions
     * are its own, parked here, not the pool's, until the session ends.
     */
    bool own_slots;
    struct server_conn *slot[NEAR_SLOTS];
    int64_t near_sought_ms; /* when a fetcher last sought a standby while none was parked */
    /*
     * Its session state (settings, role, SQL PREPAREs) on its connections
     * (near_sync.h): a generation bumped by each transaction that may have
     * changed it, and the one each connection has.
     */
    bool state_changing; /* the transaction going on may change it (txn_pin_scan_carried) */
    uint32_t state_gen;
    uint32_t conn_gen; /* the attached connection's */
    uint32_t slot_gen[NEAR_SLOTS];
    struct near_sync *sync; /* a sync under way */
    /* Its database's routines (func_catalog.h), and its wait for them, its client unread. */
    struct func_database *routines;
    struct func_waiter routines_wait;
};

#endif
