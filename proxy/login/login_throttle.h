/*
 * login_throttle.h — the auth throttle (auth_throttle.h) at a session's
 * login: the gate before authentication starts, and what the outcome
 * tells it.  Under auth = scram pgnear's own SCRAM verification decides;
 * under auth = passthrough the server's 28P01 or ReadyForQuery does.
 */
#ifndef PGNEAR_PROXY_LOGIN_THROTTLE_H
#define PGNEAR_PROXY_LOGIN_THROTTLE_H

#include "proxy/session/session.h"

/*
 * Enters next — the phase that authenticates: CLIENT_AUTH, or CONNECT
 * under passthrough — now, or after the wait the pair (caller's address,
 * user name) has earned by failing, on a timer of the worker's loop; or
 * refuses the login with 53300 when the pair's attempts are booked too
 * far ahead.  Nothing of the exchange happens before the wait, so the
 * wait tells nothing about the password.
 */
void login_throttle_gate(struct session *s, enum session_phase next);

/* The client's password (or user name) was wrong. */
void login_throttle_failed(struct session *s);

/* The client proved its password (or the server let it in): the pair is forgotten. */
void login_throttle_succeeded(struct session *s);

/* Frees the hold's timer, if any (the session closes, or its login ends). */
void login_throttle_release(struct session *s);

#endif
