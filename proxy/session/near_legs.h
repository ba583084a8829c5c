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
    NEAR_BETWEEN, /* no transaction going on, or one not followed */
    NEAR_HELD,    /* on a standby, its answer held */
    NEAR_SHOWN,   /* on a standby, some of its answer shown: it stays there */
    NEAR_PRIMARY, /* on a primary: placed there, or run again there */
    NEAR_LEGS
};

/* What the caller does after a verb of near.h (each verb says which it returns). */
enum near_verdict {
    NEAR_PASS,    /* go on as without nearest (the message goes on; the answer went out) */
    NEAR_LAST,    /* the message goes on and asks for the answer: read the client no more */
    NEAR_WAIT,    /* not yet: the rest of a request, a Flush's answers, the routines' read */
    NEAR_AGAIN,   /* a message of pgnear's own took its place at the head: read it again */
    NEAR_REFETCH, /* it begins a transaction the connection's host cannot run: let it go */
    NEAR_SYNC,    /* the session's state goes to the attached connection first (near_sync.h) */
    NEAR_FORWARD, /* let the connection go, near_put_back, and fetch a primary's */
    NEAR_RESUME,  /* the client, paused for the answer, is read again */
    NEAR_ENDED,   /* the session ended (out of memory, an undeclared leg) */
};

/* The leg's name, for the log ("?" for none). */
const char *near_leg_name(enum near_leg leg);

/* Whether the table declares a move from one leg to the other (staying is always one). */
bool near_leg_may(enum near_leg from, enum near_leg to);

/*
 * s's transaction moves from *leg (its nearest state's) to next, as the
 * table allows.  A move it does not declare is a bug: logged, fatal under
 * the sanitizers' build (PGNEAR_CHECKED), and the session fails with
 * XX000 (false then, *leg unmoved), as phase.c's phase_enter does.
 */
bool near_leg_enter(struct session *s, enum near_leg *leg, enum near_leg next);

#endif
