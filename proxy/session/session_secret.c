/*
 * session_secret.c — the sessions' SCRAM keys, one copy a worker for the
 * same keys (session_secret.h).
 *
 * A table of buckets by the ClientKey's first bytes (an HMAC: as good as
 * random), made with the worker's first kept keys and freed with its
 * last, so that a worker that keeps none holds nothing.
 */
#include "proxy/session/session_secret.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "proxy/runtime/worker.h"

#define SECRET_BUCKETS 256

struct session_secrets {
    size_t count;
    struct session_secret *buckets[SECRET_BUCKETS];
};

static struct session_secret **secret_bucket(struct session_secrets *t, const uint8_t *client_key)
{
    return &t->buckets[(client_key[0] | (unsigned)client_key[1] << 8) % SECRET_BUCKETS];
}

static bool secret_same(const struct session_secret *e, const uint8_t *client_key,
                        const struct scram_verifier *v)
{
    const struct scram_verifier *ev = &e->verifier;
    return memcmp(e->client_key, client_key, SCRAM_KEY_LEN) == 0 &&
           ev->iterations == v->iterations && ev->salt_len == v->salt_len &&
           memcmp(ev->salt, v->salt, v->salt_len) == 0 &&
           memcmp(ev->stored_key, v->stored_key, SCRAM_KEY_LEN) == 0 &&
           memcmp(ev->server_key, v->server_key, SCRAM_KEY_LEN) == 0;
}

const struct session_secret *session_secret_take(struct worker *w, const uint8_t *client_key,
                                                 const struct scram_verifier *v)
{
    if (w->secrets == NULL && (w->secrets = calloc(1, sizeof(*w->secrets))) == NULL)
        return NULL;
    struct session_secret **head = secret_bucket(w->secrets, client_key);
    for (struct session_secret *e = *head; e != NULL; e = e->next) {
        if (secret_same(e, client_key, v)) {
            e->refs++;
            return e;
        }
    }
    struct session_secret *e = calloc(1, sizeof(*e));
    if (e == NULL) {
        if (w->secrets->count == 0) {
            free(w->secrets);
            w->secrets = NULL;
        }
        return NULL;
    }
    memcpy(e->client_key, client_key, SCRAM_KEY_LEN);
    e->verifier = *v;
    e->refs = 1;
    e->next = *head;
    *head = e;
    w->secrets->count++;
    return e;
}

void session_secret_drop(struct worker *w, const struct session_secret *secret)
{
    if (secret == NULL || w->secrets == NULL)
        return;
    struct session_secret **at = secret_bucket(w->secrets, secret->client_key);
    while (*at != NULL && *at != secret)
        at = &(*at)->next;
    if (*at == NULL || --(*at)->refs > 0)
        return;
    struct session_secret *e = *at;
    *at = e->next;
    OPENSSL_cleanse(e, sizeof(*e));
    free(e);
    if (--w->secrets->count == 0) {
        free(w->secrets);
        w->secrets = NULL;
    }
}
