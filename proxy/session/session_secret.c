/*
 * session_secret.c — the sessions' SCRAM keys, one copy a worker for the
 * same keys (session_secret.h), in the worker's table of shared copies.
 */
#include "proxy/session/session_secret.h"

#include <string.h>

#include <openssl/crypto.h>

#include "proxy/base/intern.h"
#include "proxy/runtime/worker.h"

const struct session_secret *session_secret_take(struct worker *w, const uint8_t *client_key,
                                                 const struct scram_verifier *v)
{
    /* Field by field into zeroed bytes: what the copies compare is the keys, not padding. */
    struct session_secret key;
    memset(&key, 0, sizeof(key));
    memcpy(key.client_key, client_key, SCRAM_KEY_LEN);
    key.verifier.iterations = v->iterations;
    key.verifier.salt_len = v->salt_len < SCRAM_MAX_SALT_LEN ? v->salt_len : SCRAM_MAX_SALT_LEN;
    memcpy(key.verifier.salt, v->salt, key.verifier.salt_len);
    memcpy(key.verifier.stored_key, v->stored_key, SCRAM_KEY_LEN);
    memcpy(key.verifier.server_key, v->server_key, SCRAM_KEY_LEN);
    const struct session_secret *copy = intern_take(&w->secrets, &key, sizeof(key), true);
    OPENSSL_cleanse(&key, sizeof(key));
    return copy;
}

void session_secret_drop(struct worker *w, const struct session_secret *secret)
{
    intern_drop(&w->secrets, secret);
}
