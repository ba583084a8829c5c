/*
 * near_legs.h — nearest as a declared machine (near.h): the legs of a
 * session's transaction, the table of which may follow which
 * (near_legs.c), as the login's phase table declares its exits, checked
 * on every change (near_leg_enter); and the verdicts its verbs return,
 * which the caller (txn.c) acts on.
 */
#ifndef PGNEAR_PROXY_SESSION_NEAR_LEGS_H
#define PGNEAR_PROXY_SESSION_NEAR_LEGS_H

#include <stdbool.h>

struct session;

enum near_leg {
    NEAR_BETWEEN,       /* no transaction going on, or one not followed */
    NEAR_HELD,          /* on a standby, its answer held: its request read and kept */
    NEAR_HELD_SENT,     /* held, its request sent whole: the client waits, unread */
    NEAR_HELD_FLUSHING, /* held; a Flush's answers go to the client, the next request read whole */
    NEAR_STANDING_IN,   /* held; a Sync of pgnear's own at the head, for a request kept unsent */
    NEAR_STOOD_IN,      /* ... that Sync sent: the client waits, unread */
    NEAR_FORWARDING,    /* put back: its kept messages wait in client.in for a primary */
    NEAR_RERUN,         /* run again on a primary after a standby refused it */
    NEAR_RERUN_FAILED,  /* ... and the primary answered with an error */
    NEAR_SHOWN,         /* on a standby, some of its answer shown: it stays there */
    NEAR_PRIMARY,       /* on a primary, placed there by its text: it may write */
    NEAR_PRIMARY_NEAREST, /* on a primary, the nearest host that could run it */
    NEAR_LEGS
};

/* What the caller does after a verb of near.h (each verb says which it returns). */
enum near_verdict {
    NEAR_PASS,    /* go on as without nearest (the message goes on; the answer went out) */
    NEAR_LAST,    /* the message goes on and asks for the answer: read the client no more */
    NEAR_WAIT,    /* not yet: the rest of a request, a Flush's answers, the routines' read */
    NEAR_AGAIN,   /* a message of pgnear's own took its place at the head: read it again */
    NEAR_REFETCH, /* it begins a transaction the connection's host cannot run: let it go */
    NEAR_FORWARD, /* put back (NEAR_FORWARDING): let the connection go, fetch a primary's */
    NEAR_RESUME,  /* the client, paused for the answer, is read again */
    NEAR_ENDED,   /* the session ended (out of memory, an undeclared leg) */
};

/* The leg's name, for the log ("?" for none). */
const char *near_leg_name(enum near_leg leg);

/* Whether the table declares a move from one leg to the other (staying is always one). */
bool near_leg_may(enum near_leg from, enum near_leg to);

/* Whether the server's answer is held in this leg (near_sink). */
bool near_leg_holds(enum near_leg leg);

/* Whether the client waits for the answer in this leg, unread (near_reads_client). */
bool near_leg_asked(enum near_leg leg);

/*
 * Whether the answer held in this leg may go to the client as the
 * request's answer (near_deliver): not a stand-in's, whose answer is
 * that of pgnear's own Sync.
 */
bool near_leg_delivers(enum near_leg leg);

/*
 * s's transaction moves from *leg (its nearest state's) to next, as the
 * table allows.  A move it does not declare is a bug: logged, fatal under
 * the sanitizers' build (PGNEAR_CHECKED), and the session fails with
 * XX000 (false then, *leg unmoved), as phase.c's phase_enter does.
 */
bool near_leg_enter(struct session *s, enum near_leg *leg, enum near_leg next);

/* An undeclared step in leg (what: the step) is a bug: as near_leg_enter's refusal.  False. */
bool near_leg_refuse(struct session *s, enum near_leg leg, const char *what);

#endif
