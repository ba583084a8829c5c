/*
 * cancel_keys.c — the cancel key registry: entries added, removed and
 * looked up in the workers' shared map, under its lock.
 */
#include "proxy/session/cancel_keys.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "protocol/pkt.h"
#include "proxy/base/cancel_map.h"
#include "proxy/base/config.h"
#include "proxy/runtime/shared.h"

#define CANCEL_KEY_ATTEMPTS 16

/*
 * The map's tag: four random bytes of the key (a 3.2 key's first four say
 * its format and peer), without the bit that says "forwarded", so that a
 * forwarded request finds its entry.
 */
static uint32_t key_tag(const uint8_t *key, size_t len)
{
    return len == CANCEL_KEY_V32_LEN ? pkt_be32(key + 4) : pkt_be32(key) & ~1u;
}

/* An entry's tag, as the map asks it (its key does not change while it is registered). */
static uint32_t entry_tag(const void *owner)
{
    const struct cancel_entry *e = owner;
    return key_tag(cancel_entry_key(e), e->client_key_len);
}

/* cancel_keys_add under cancel_lock: a key no other entry has. */
static int cancel_pick_key(struct shared *sh, const struct config *cfg, struct cancel_entry *e,
                           uint32_t real_pid)
{
    const uint8_t *secret = cfg->peer_secret_len > 0 ? cfg->peer_secret : NULL;
    uint8_t *key = e->client_key_len == CANCEL_KEY_V32_LEN ? e->key.v32 : e->key.v30;
    for (int i = 0; i < CANCEL_KEY_ATTEMPTS; i++) {
        uint8_t rnd[CANCEL_KEY_RANDOM];
        bool oom;
        if (RAND_bytes(rnd, sizeof(rnd)) != 1 ||
            cancel_key_make(real_pid, cfg->peer_id, rnd, secret, cfg->peer_secret_len,
                            &e->client_pid, key, e->client_key_len) != 0)
            return -1;
        if (cancel_map_insert(&sh->cancel_keys, e, entry_tag, &oom)) {
            e->registered = true;
            return 0;
        }
        if (oom)
            return -1;
    }
    return -1;
}

int cancel_keys_add(struct shared *sh, const struct config *cfg, struct cancel_entry *e,
                    uint32_t real_pid)
{
    if (e->client_key_len == CANCEL_KEY_V32_LEN && e->key.v32 == NULL &&
        (e->key.v32 = calloc(1, CANCEL_KEY_V32_LEN)) == NULL)
        return -1;
    pthread_mutex_lock(&sh->cancel_lock);
    int rc = cancel_pick_key(sh, cfg, e, real_pid);
    pthread_mutex_unlock(&sh->cancel_lock);
    return rc;
}

void cancel_keys_remove(struct shared *sh, struct cancel_entry *e)
{
    if (!e->registered)
        return;
    pthread_mutex_lock(&sh->cancel_lock);
    cancel_map_remove(&sh->cancel_keys, e, entry_tag);
    pthread_mutex_unlock(&sh->cancel_lock);
    e->registered = false;
    e->server = NULL;
}

void cancel_entry_free(struct cancel_entry *e)
{
    if (e->client_key_len == CANCEL_KEY_V32_LEN && e->key.v32 != NULL) {
        OPENSSL_cleanse(e->key.v32, CANCEL_KEY_V32_LEN);
        free(e->key.v32);
    }
    memset(&e->key, 0, sizeof(e->key));
}

bool cancel_keys_find(struct shared *sh, const uint8_t *key, size_t len, uint32_t pid,
                      struct cancel_target *t)
{
    bool found = false;
    pthread_mutex_lock(&sh->cancel_lock);
    const struct cancel_entry *e = cancel_map_find(&sh->cancel_keys, key_tag(key, len), entry_tag);
    /* Both the whole key and the process ID must match, compared in constant time. */
    if (e != NULL && e->client_key_len == len &&
        CRYPTO_memcmp(cancel_entry_key(e), key, len) == 0 && e->client_pid == pid) {
        t->client_id = e->client_id;
        t->worker = shared_client_worker(sh, e->client_id);
        t->console = e->console;
        found = true;
    }
    pthread_mutex_unlock(&sh->cancel_lock);
    return found;
}
