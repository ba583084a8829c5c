/*
 * gate.h — holding the sessions of a scope at their next safe point on
 * every worker, and letting them go again: the mechanism of the admin's
 * PAUSE and of a migration's pause steps.
 *
 * Closing a gate sets its flag (a paused region, or a region's migration
 * hold), so that sessions starting meanwhile are held as they start, asks
 * every worker to hold the open sessions in scope (gate_hold_session), then asks
 * again every GATE_POLL_MS how many are not held yet.  It ends when none
 * is left, when the timeout passes (the gate opens again, naming the
 * sessions that kept it from closing; with force, those are ended with
 * 57P01 instead and the gate closes), when someone opened it meanwhile
 * (RESUME), or when it is canceled.  No loop waits: the asking is
 * worker_call_all and a timer on the home worker.
 */
#ifndef PGNEAR_PROXY_GATE_H
#define PGNEAR_PROXY_GATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct worker;

#define GATE_POLL_MS   20
#define GATE_NAME_LATE 8 /* sessions named when a gate could not close */

/*
 * The sessions a gate, a move batch or a walk (gate_each) is about: those
 * with a region, and of them those every part below names.  Zeroed, a part
 * names every session.
 */
struct gate_scope {
    bool all;            /* every region (PAUSE without a region) */
    char region[64];     /* else this one */
    char not_region[64]; /* "": no region left out; else not this one */
    char database[64];   /* "": every database */
    char city_key[128];  /* "": every city; else the sessions whose city folds to it (MOVE CITY) */
    bool one_client;     /* only the session client_id (MOVE CLIENT) */
    uint64_t client_id;  /* with one_client */
    uint8_t reason;      /* a gate's enum hold_reason: HOLD_PAUSE, HOLD_MIGRATION or HOLD_DBMOVE */
};

enum gate_end {
    GATE_HELD,     /* every session in scope is held */
    GATE_LATE,     /* the timeout passed first: open again */
    GATE_OPENED,   /* someone else opened it meanwhile (RESUME): nothing undone */
    GATE_CANCELED, /* gate_close_cancel: open again */
    GATE_FAILED,   /* out of memory: open again */
};

struct gate_outcome {
    enum gate_end end;
    uint64_t late;     /* sessions in scope not held when it ended */
    uint64_t forced;   /* sessions ended because they kept it open (force) */
    int64_t waited_ms; /* from the asking to the end */
    char busy[512];    /* "Still busy: client 12 (addr) in a transaction, ..." or "" */
};

typedef void (*gate_done_fn)(const struct gate_outcome *o, void *arg);

struct gate_close;

/*
 * Closes scope's gate, from home's loop; done is called there once, from
 * the loop (never inside this call).  force_detail, when not NULL, is the
 * errdetail of the 57P01 sent to each session still not held at the
 * timeout.  NULL when out of memory (the gate is left open).
 */
struct gate_close *gate_close(struct worker *home, const struct gate_scope *scope, int timeout_ms,
                              const char *force_detail, gate_done_fn done, void *arg);

/* Gives up closing (Ctrl-C, ABORT): the next poll opens the gate and tells done GATE_CANCELED. */
void gate_close_cancel(struct gate_close *g);

/*
 * Opens scope's gate: its flag unset, then the sessions in scope let go
 * on every worker; done (may be NULL) once all have.  -1 when out of
 * memory (the flag is unset all the same, so new sessions pass).
 */
int gate_open(struct worker *home, const struct gate_scope *scope, void (*done)(void *arg),
              void *arg);

/*
 * The server processes (their pids, "12,34") of the sessions in scope that
 * have a server connection, gathered from every worker: those a cutover
 * holds, which ending the database's other sessions must pass over.
 */
struct gate_pids {
    struct gate_scope scope;
    pthread_mutex_t lock;
    char list[8192]; /* appended to, comma-separated */
    bool overflow;   /* more than list holds */
    void (*done)(void *arg);
    void *arg;
};

/* An empty list for the sessions in scope. */
void gate_pids_init(struct gate_pids *p, const struct gate_scope *scope);
/* Frees the list's lock; the list itself is the caller's. */
void gate_pids_destroy(struct gate_pids *p);
/* Asks every worker; done(arg) on home's loop once all have answered.  -1: out of memory. */
int gate_collect_pids(struct worker *home, struct gate_pids *p, void (*done)(void *arg), void *arg);
/* Appends pid to the list (the caller's own connections); false when it does not fit. */
bool gate_pids_add(struct gate_pids *p, long pid);

struct session;
/* Whether session s is in scope: its region, not the excluded one, the one client, city, database.
 */
bool gate_in_scope(const struct gate_scope *scope, const struct session *s);

/* What gate_each does with a session; false stops the walk. */
typedef bool (*gate_each_fn)(struct session *s, void *arg);

/*
 * fn(s, arg) for each of w's active sessions in scope, on w's thread: the
 * one walk of the gates, the move batches and the snapshots.  fn may end
 * s.  False when fn stopped the walk.
 */
bool gate_each(struct worker *w, const struct gate_scope *scope, gate_each_fn fn, void *arg);

/* What happens at a session's next safe point (the admin console's PAUSE and DRAIN). */
enum session_on_safe {
    SAFE_NOTHING,
    SAFE_HOLD,  /* stop reading from the client until every hold reason is gone */
    SAFE_CLOSE, /* end the session with 57P01 (DRAIN) */
};

/* Who holds a session at its safe point (bits of hold_reasons). */
enum hold_reason {
    HOLD_PAUSE = 1,     /* the admin's PAUSE of its region */
    HOLD_MIGRATION = 2, /* a pause step of a migration of its region and database */
    HOLD_MOVE = 4,      /* a move to another server (move.h) */
    HOLD_DBMOVE = 8,    /* the cutover of its database to another region (runtime/placement.h) */
};

struct region;
/*
 * The gates closed on s's sessions in region r (enum hold_reason bits; 0:
 * none): r paused, r's migration hold for the migrations database, a
 * cutover of s's database, or of its login's city.  The one rule of the
 * relay, which holds a session starting in r for them (relay_start), and
 * of the fast ways to a server connection, which take none in r while any
 * holds (session/fetch.c).
 */
uint8_t gate_reasons_for(const struct session *s, const struct region *r);

/*
 * A session is at a safe point when it relays, its server connection is
 * at one (idle, every request answered, no extended-protocol batch waiting
 * for its Sync, no COPY: server_conn_at_safe_point) and no message from
 * the client is half forwarded: holding or closing it there cuts no
 * transaction and loses nothing.
 */
bool session_at_safe_point(const struct session *s);

/* Does what was asked (s->hold.on_safe) if s is at a safe point; false when the session ended. */
bool gate_act_at_safe_point(struct session *s);

/*
 * Holds s at its next safe point for reason (enum hold_reason), at once
 * when it is at one; false when the session ended.  A session DRAIN is
 * closing stays on its way out.
 */
bool gate_hold_session(struct session *s, uint8_t reason);

/* reason no longer holds s; it reads again once no reason does (RESUME, a pause step's end). */
void gate_release_session(struct session *s, uint8_t reason);

/* Why a session is ended at its safe point (the errdetail of its 57P01). */
enum session_close_why {
    CLOSE_DRAIN,          /* DRAIN of its region */
    CLOSE_DATABASE_MOVED, /* its database was cut over to another region; it could not move */
};

/* s ends with 57P01 at its next safe point (at once when it is at one), for why. */
void gate_drain_session(struct session *s, uint8_t why);

#endif
