/*
 * relay.h — an established session (ACTIVE): bytes both ways, and what
 * the admin console asks of a session at its next safe point.
 */
#ifndef PGNEAR_PROXY_RELAY_H
#define PGNEAR_PROXY_RELAY_H

#include <stdbool.h>
#include <stdint.h>

struct session;

/*
 * ACTIVE (phase.c's row): the server sent its first ReadyForQuery; the
 * login's state is freed, and whatever either side sent early goes
 * through.
 */
void relay_start(struct session *s);

/* Does what the admin asked (s->on_safe) if s is at a safe point; false when the session ended. */
bool relay_act_at_safe_point(struct session *s);

/*
 * Holds s at its next safe point for reason (enum hold_reason), at once
 * when it is at one; false when the session ended.  A session DRAIN is
 * closing stays on its way out.
 */
bool relay_hold(struct session *s, uint8_t reason);

/* reason no longer holds s; it reads again once no reason does (RESUME, a pause step's end). */
void relay_release(struct session *s, uint8_t reason);

#endif
