/*
 * cancel_keys.h — the registry of pgnear's cancel keys, shared by the
 * workers: a key's entry is added, removed and looked up under
 * cancel_lock (struct shared).  It knows entries only; whose session an
 * entry is, and what a CancelRequest then does, is cancel.h's.
 */
#ifndef PGNEAR_PROXY_CANCEL_KEYS_H
#define PGNEAR_PROXY_CANCEL_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/cancel_key.h"

struct config;
struct server_conn;
struct shared;

struct cancel_entry {
    /*
     * pgnear's key, as given to the client (cancel_entry_key): a 3.0 key's
     * four bytes here, a 3.2 key's 32 in an allocation of its own, made
     * with its first key and kept for the next (cancel_entry_free): most
     * clients speak 3.0, and a crowd's keys need no 32 bytes each.
     */
    union {
        uint8_t v30[CANCEL_KEY_V30_LEN];
        uint8_t *v32;
    } key;
    uint8_t client_key_len;
    bool registered;
    bool console;        /* a session pgnear answers itself: no server */
    uint32_t client_pid; /* the process ID given with it: the server's, or synthetic */
    uint64_t client_id;  /* its session's, which names its worker (shared_client_worker) */
    /* whose process ID and key this stands for, or NULL; read on the session's worker only */
    const struct server_conn *server;
};

/* e's key, client_key_len bytes (NULL: a 3.2 key not yet made). */
static inline const uint8_t *cancel_entry_key(const struct cancel_entry *e)
{
    return e->client_key_len == CANCEL_KEY_V32_LEN ? e->key.v32 : e->key.v30;
}

/* Whose key it is, copied from the registry under its lock. */
struct cancel_target {
    uint64_t client_id;
    bool console; /* a session pgnear answers itself: nothing to forward */
    int worker;   /* the session's: what it cancels is decided there */
};

/*
 * Picks a fresh client key for e (of e->client_key_len bytes), standing
 * for real_pid, and registers it: the key names this instance when it is
 * one of a fleet (cancel_key.h).  e's other fields are the caller's.
 * 0, or -1 when out of memory or out of random bytes.
 */
int cancel_keys_add(struct shared *sh, const struct config *cfg, struct cancel_entry *e,
                    uint32_t real_pid);

/* Forgets e's key (nothing when it has none): a request with it finds nothing from now on. */
void cancel_keys_remove(struct shared *sh, struct cancel_entry *e);

/* Frees what e holds (a 3.2 key's bytes, wiped), once removed: its session ends. */
void cancel_entry_free(struct cancel_entry *e);

/*
 * The entry of this key and process ID (the key as this instance made it),
 * copied into t while its owner cannot remove it; false when none matches.
 */
bool cancel_keys_find(struct shared *sh, const uint8_t *key, size_t len, uint32_t pid,
                      struct cancel_target *t);

#endif
