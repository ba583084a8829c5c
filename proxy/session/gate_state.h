/*
 * gate_state.h — what the gate keeps of a session (gate.h): what the
 * admin asked of it at its next safe point, who wants it held, and whether
 * and since when it is.  Embedded in struct session as s->hold; only
 * gate.c writes it (tests/doc/layering.t), the relay, transaction pooling,
 * a move and SHOW CLIENTS read it.
 */
#ifndef PGNEAR_PROXY_SESSION_GATE_STATE_H
#define PGNEAR_PROXY_SESSION_GATE_STATE_H

#include <stdbool.h>
#include <stdint.h>

struct gate_state {
    uint8_t on_safe;      /* what was asked at the next safe point (enum session_on_safe) */
    uint8_t hold_reasons; /* who wants it held (enum gate_reason bits): held while any does */
    uint8_t close_why;    /* with on_safe SAFE_CLOSE: enum session_close_why */
    bool held;            /* the client's next request waits, unread */
    int64_t held_at_us;   /* since when (monotonic), while held: a move's hold counts from it */
};

#endif
