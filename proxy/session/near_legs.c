/*
 * near_legs.c — the table of a nearest transaction's legs (near_legs.h).
 */
#include "proxy/session/near_legs.h"

#include <stdlib.h>

#include "protocol/pg_error.h"
#include "proxy/base/log.h"
#include "proxy/session/session.h"

#define NEAR_LEG_BIT(l) (1u << (l))

struct near_leg_row {
    const char *name;
    unsigned exits; /* the legs that may follow it (NEAR_LEG_BIT) */
};

static const struct near_leg_row near_leg_rows[NEAR_LEGS] = {
    /* A transaction starts: held on a standby, shown there (READ ONLY, too long), or on a primary.
     */
    [NEAR_BETWEEN] = {"between", NEAR_LEG_BIT(NEAR_HELD) | NEAR_LEG_BIT(NEAR_SHOWN) |
                                     NEAR_LEG_BIT(NEAR_PRIMARY)},
    /* The hold is given up or delivered; or it ends, delivered or put back to run again. */
    [NEAR_HELD] = {"held", NEAR_LEG_BIT(NEAR_SHOWN) | NEAR_LEG_BIT(NEAR_BETWEEN)},
    /* Shown on a standby, or run on a primary: it stays there until its end. */
    [NEAR_SHOWN] = {"shown", NEAR_LEG_BIT(NEAR_BETWEEN)},
    [NEAR_PRIMARY] = {"primary", NEAR_LEG_BIT(NEAR_BETWEEN)},
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

bool near_leg_enter(struct session *s, enum near_leg *leg, enum near_leg next)
{
    if (near_leg_may(*leg, next)) {
        if (*leg != next)
            log_debug(s->id, "nearest: %s -> %s", near_leg_name(*leg), near_leg_name(next));
        *leg = next;
        return true;
    }
    log_error(s->id,
              "internal error: nearest's leg %s may not move to %s (its table declares no such "
              "exit)",
              near_leg_name(*leg), near_leg_name(next));
#ifdef PGNEAR_CHECKED
    abort();
#endif
    struct pg_error e;
    session_fail(s, pg_error_set(&e, "XX000", "internal error in pgnear's nearest"));
    return false;
}
