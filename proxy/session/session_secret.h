/*
 * session_secret.h — the SCRAM keys pgnear logs in with for a session
 * elsewhere (a move, transaction pooling's next server): the ClientKey
 * the client's proof revealed and the user's verifier.  The sessions of a
 * worker whose clients proved the same keys share one copy, counted: a
 * crowd of one user's clients keeps one, not one a client (intern.h, in
 * the worker's secrets).  Wiped when the last session that holds it ends.
 * On the sessions' worker only.
 */
#ifndef PGNEAR_PROXY_SESSION_SECRET_H
#define PGNEAR_PROXY_SESSION_SECRET_H

#include <stdint.h>

#include "protocol/scram.h"

struct worker;

struct session_secret {
    uint8_t client_key[SCRAM_KEY_LEN];
    struct scram_verifier verifier; /* its salt zero past salt_len: copies compare whole */
};

/*
 * The keys of client_key and v, the copy w's sessions share or a new one,
 * counted for the caller; NULL: out of memory.
 */
const struct session_secret *session_secret_take(struct worker *w, const uint8_t *client_key,
                                                 const struct scram_verifier *v);

/* The caller holds the keys no more: the last to let go wipes and frees them. */
void session_secret_drop(struct worker *w, const struct session_secret *secret);

#endif
