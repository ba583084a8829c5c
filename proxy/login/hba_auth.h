/*
 * hba_auth.h — auth = hba and auth = cert at a session's login: the line
 * of auth_hba_file that the caller matches (its real address, after a
 * PROXY header; its transport) and, for certificates, the verified CN.
 */
#ifndef PGNEAR_PROXY_LOGIN_HBA_AUTH_H
#define PGNEAR_PROXY_LOGIN_HBA_AUTH_H

#include <stdbool.h>

#include "proxy/session/session.h"

/*
 * Whether the login goes on: false when the session failed (28000: no
 * line, a reject line, a missing or wrong certificate).  Under auth = hba
 * or cert it decides who authenticates: pgnear (scram-sha-256 lines) or
 * the server, the exchange relayed (cert and trust: pgnear asks no
 * password itself).  Under scram and passthrough it admits every login.
 */
bool hba_auth_admit(struct session *s);

/* Whether pgnear verifies the client itself (CLIENT_AUTH), after hba_auth_admit. */
bool hba_auth_by_pgnear(const struct session *s);

#endif
