/*
 * peer_stats.c — the fleet's cancel-forwarding figures (peer_stats.h).
 */
#include "proxy/base/peer_stats.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Zero figures for every peer slot. */
void peer_stats_init(struct peer_stats *t)
{
    memset(t->items, 0, sizeof(t->items));
    pthread_mutex_init(&t->lock, NULL);
}

/* The figures are inline: only the mutex goes. */
void peer_stats_destroy(struct peer_stats *t)
{
    pthread_mutex_destroy(&t->lock);
}

/* Peer id's entry, claimed when it has none; NULL when the table is full. */
static struct peer_stat *peer_stats_entry(struct peer_stats *t, int id)
{
    for (int i = 0; i < PEERS_MAX; i++)
        if (__atomic_load_n(&t->items[i].id, __ATOMIC_ACQUIRE) == id)
            return &t->items[i];
    struct peer_stat *found = NULL;
    pthread_mutex_lock(&t->lock);
    for (int i = 0; i < PEERS_MAX && found == NULL; i++)
        if (t->items[i].id == id)
            found = &t->items[i];
    for (int i = 0; i < PEERS_MAX && found == NULL; i++)
        if (t->items[i].id == 0) {
            found = &t->items[i];
            found->reachable = -1;
            __atomic_store_n(&found->id, id, __ATOMIC_RELEASE);
        }
    pthread_mutex_unlock(&t->lock);
    return found;
}

bool peer_stats_begin_out(struct peer_stats *t, int id, int max, int64_t now_ms, bool *failing)
{
    struct peer_stat *p = peer_stats_entry(t, id);
    *failing = false;
    if (p == NULL)
        return true; /* a table full of other peers' figures stops nobody */
    if (__atomic_load_n(&p->retry_at_ms, __ATOMIC_RELAXED) > now_ms) {
        *failing = true; /* did not reach it either: counted so */
        __atomic_add_fetch(&p->failed, 1, __ATOMIC_RELAXED);
        return false;
    }
    if (__atomic_add_fetch(&p->inflight, 1, __ATOMIC_RELAXED) > max) {
        __atomic_sub_fetch(&p->inflight, 1, __ATOMIC_RELAXED);
        return false;
    }
    return true;
}

void peer_stats_note_out(struct peer_stats *t, int id, bool ok, const char *why, int64_t now_ms)
{
    struct peer_stat *p = peer_stats_entry(t, id);
    if (p == NULL)
        return;
    __atomic_sub_fetch(&p->inflight, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&p->retry_at_ms, ok ? 0 : now_ms + PEER_RETRY_MS, __ATOMIC_RELAXED);
    __atomic_add_fetch(ok ? &p->forwarded_out : &p->failed, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&p->reachable, ok ? 1 : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&p->last_forward, (int64_t)time(NULL), __ATOMIC_RELAXED);
    if (ok)
        return;
    pthread_mutex_lock(&t->lock);
    snprintf(p->last_error, sizeof(p->last_error), "%s", why);
    pthread_mutex_unlock(&t->lock);
}

void peer_stats_note_in(struct peer_stats *t, int id)
{
    struct peer_stat *p = peer_stats_entry(t, id);
    if (p != NULL)
        __atomic_add_fetch(&p->forwarded_in, 1, __ATOMIC_RELAXED);
}

void peer_stats_read(struct peer_stats *t, int id, struct peer_stat *out)
{
    memset(out, 0, sizeof(*out));
    out->reachable = -1;
    for (int i = 0; i < PEERS_MAX; i++) {
        struct peer_stat *p = &t->items[i];
        if (__atomic_load_n(&p->id, __ATOMIC_ACQUIRE) != id)
            continue;
        out->id = id;
        out->forwarded_out = __atomic_load_n(&p->forwarded_out, __ATOMIC_RELAXED);
        out->forwarded_in = __atomic_load_n(&p->forwarded_in, __ATOMIC_RELAXED);
        out->failed = __atomic_load_n(&p->failed, __ATOMIC_RELAXED);
        out->reachable = __atomic_load_n(&p->reachable, __ATOMIC_RELAXED);
        out->last_forward = __atomic_load_n(&p->last_forward, __ATOMIC_RELAXED);
        pthread_mutex_lock(&t->lock);
        memcpy(out->last_error, p->last_error, sizeof(out->last_error));
        pthread_mutex_unlock(&t->lock);
        return;
    }
}
