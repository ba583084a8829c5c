/*
 * near_legs.c — the table of a nearest transaction's legs (near_legs.h).
 */
#include "proxy/session/near_legs.h"

#include <stdio.h>
#include <stdlib.h>

#include "protocol/pg_error.h"
#include "proxy/base/log.h"
#include "proxy/session/session.h"

#define NEAR_LEG_BIT(l) (1u << (l))

/* What a leg is: the server's answer held, the client waiting, the held answer its own. */
#define HOLDS    1u
#define ASKED    2u
#define DELIVERS 4u

struct near_leg_row {
    const char *name;
    unsigned exits; /* the legs that may follow it (NEAR_LEG_BIT) */
    unsigned is;    /* HOLDS, ASKED, DELIVERS */
};

#define TO(l) NEAR_LEG_BIT(NEAR_##l)

/*
 * Every leg may end between (a connection attached, its ReadyForQuery
 * 'I', a request canceled).  A put-back request runs again, on a primary
 * (or the standby its session is pinned to): FORWARDING has no exit to a
 * held leg.  A stand-in's answer is pgnear's own Sync's: its legs do not
 * deliver it.
 */
static const struct near_leg_row near_leg_rows[NEAR_LEGS] = {
    /* A transaction starts: held on a standby (a request for a primary stood in for), shown
     * there (READ ONLY, too long), or on a primary. */
    [NEAR_BETWEEN] = {"between",
                      TO(HELD) | TO(STANDING_IN) | TO(SHOWN) | TO(PRIMARY) | TO(PRIMARY_NEAREST),
                      0},
    /* Its request sent; a Flush; the hold given up. */
    [NEAR_HELD] = {"held", TO(HELD_SENT) | TO(HELD_FLUSHING) | TO(SHOWN) | TO(BETWEEN),
                   HOLDS | DELIVERS},
    /* Put back to run again on a primary; delivered. */
    [NEAR_HELD_SENT] = {"held-sent", TO(FORWARDING) | TO(SHOWN) | TO(BETWEEN),
                        HOLDS | ASKED | DELIVERS},
    /* The next request read whole: held on, or stood in for; or the hold given up. */
    [NEAR_HELD_FLUSHING] = {"held-flushing", TO(HELD) | TO(STANDING_IN) | TO(SHOWN) | TO(BETWEEN),
                            HOLDS | DELIVERS},
    /* pgnear's Sync goes; or its request runs where it is after all, unheld. */
    [NEAR_STANDING_IN] = {"standing-in", TO(STOOD_IN) | TO(SHOWN) | TO(BETWEEN), HOLDS},
    /* Put back to run on a primary; run where it is after all, unheld; canceled. */
    [NEAR_STOOD_IN] = {"stood-in", TO(FORWARDING) | TO(SHOWN) | TO(BETWEEN), HOLDS | ASKED},
    /* Its connection attached: run again; or canceled before. */
    [NEAR_FORWARDING] = {"forwarding", TO(RERUN) | TO(BETWEEN), 0},
    /* The primary answered with an error (counted at its end). */
    [NEAR_RERUN] = {"rerun", TO(RERUN_FAILED) | TO(BETWEEN), 0},
    /* Shown on a standby, or run on a primary: it stays there until its end. */
    [NEAR_RERUN_FAILED] = {"rerun-failed", TO(BETWEEN), 0},
    [NEAR_SHOWN] = {"shown", TO(BETWEEN), 0},
    [NEAR_PRIMARY] = {"primary", TO(BETWEEN), 0},
    [NEAR_PRIMARY_NEAREST] = {"primary-nearest", TO(BETWEEN), 0},
};

const char *near_leg_name(enum near_leg leg)
{
    return (unsigned)leg < NEAR_LEGS ? near_leg_rows[leg].name : "?";
}

bool near_leg_may(enum near_leg from, enum near_leg to)
{
    if ((unsigned)from >= NEAR_LEGS || (unsigned)to >= NEAR_LEGS)
        return false;
    return from == to || (near_leg_rows[from].exits & NEAR_LEG_BIT(to)) != 0;
}

static bool near_leg_is(enum near_leg leg, unsigned what)
{
    return (unsigned)leg < NEAR_LEGS && (near_leg_rows[leg].is & what) != 0;
}

bool near_leg_holds(enum near_leg leg)
{
    return near_leg_is(leg, HOLDS);
}

bool near_leg_asked(enum near_leg leg)
{
    return near_leg_is(leg, ASKED);
}

bool near_leg_delivers(enum near_leg leg)
{
    return near_leg_is(leg, DELIVERS);
}

bool near_leg_refuse(struct session *s, enum near_leg leg, const char *what)
{
    slog_error(s, "internal error: nearest's leg %s may not %s (its table declares no such step)",
               near_leg_name(leg), what);
#ifdef PGNEAR_CHECKED
    abort();
#endif
    struct pg_error e;
    session_fail(s, pg_error_set(&e, "XX000", "internal error in pgnear's nearest"));
    return false;
}

bool near_leg_enter(struct session *s, enum near_leg *leg, enum near_leg next)
{
    if (!near_leg_may(*leg, next)) {
        char what[64];
        snprintf(what, sizeof(what), "move to %s", near_leg_name(next));
        return near_leg_refuse(s, *leg, what);
    }
    if (*leg != next)
        slog_debug(s, "nearest: %s -> %s", near_leg_name(*leg), near_leg_name(next));
    *leg = next;
    return true;
}
