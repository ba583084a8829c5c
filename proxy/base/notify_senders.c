/*
 * notify_senders.c — which client sent a notification (notify_senders.h).
 */
#include "proxy/base/notify_senders.h"

#include <stdint.h>
#include <string.h>

void notify_senders_init(struct notify_senders *ns)
{
    memset(ns, 0, sizeof(*ns));
    pthread_mutex_init(&ns->lock, NULL);
    ns->next_seq = 1;
}

void notify_senders_destroy(struct notify_senders *ns)
{
    pthread_mutex_destroy(&ns->lock);
}

void notify_senders_listening(struct notify_senders *ns, int delta)
{
    __atomic_add_fetch(&ns->listening, delta, __ATOMIC_RELAXED);
}

static size_t notify_senders_bucket(const void *host, uint32_t backend_pid)
{
    return ((uintptr_t)host / 64 + backend_pid) % NOTIFY_SENDERS_BUCKETS;
}

uint64_t notify_senders_note(struct notify_senders *ns, const void *host, uint32_t backend_pid,
                             uint32_t client_pid)
{
    pthread_mutex_lock(&ns->lock);
    uint64_t seq = ns->next_seq++;
    ns->ring[seq % NOTIFY_SENDERS_MAX] = (struct notify_sender){
        .seq = seq, .host = host, .backend_pid = backend_pid, .client_pid = client_pid};
    ns->newest[notify_senders_bucket(host, backend_pid)] = seq;
    pthread_mutex_unlock(&ns->lock);
    return seq;
}

void notify_senders_released(struct notify_senders *ns, uint64_t seq, int64_t now_ms)
{
    pthread_mutex_lock(&ns->lock);
    struct notify_sender *e = &ns->ring[seq % NOTIFY_SENDERS_MAX];
    if (e->seq == seq)
        e->released_ms = now_ms > 0 ? now_ms : 1;
    pthread_mutex_unlock(&ns->lock);
}

uint32_t notify_senders_pid(struct notify_senders *ns, const void *host, uint32_t backend_pid,
                            int64_t now_ms)
{
    pthread_mutex_lock(&ns->lock);
    const struct notify_sender *best = NULL;
    /* The bucket's newest is the backend's newest when it is the backend's; else the ring. */
    uint64_t seq = ns->newest[notify_senders_bucket(host, backend_pid)];
    const struct notify_sender *e = &ns->ring[seq % NOTIFY_SENDERS_MAX];
    bool hit = seq != 0 && e->seq == seq && e->host == host && e->backend_pid == backend_pid;
    /* (a bucket never noted in: no holding of this backend either) */
    for (size_t i = 0; !hit && seq != 0 && i < NOTIFY_SENDERS_MAX; i++) {
        const struct notify_sender *r = &ns->ring[i];
        if (r->seq == 0 || r->host != host || r->backend_pid != backend_pid ||
            (r->released_ms != 0 && now_ms - r->released_ms > NOTIFY_SENDERS_GRACE_MS))
            continue;
        if (best == NULL || r->seq > best->seq)
            best = r;
    }
    if (hit)
        best = e->released_ms == 0 || now_ms - e->released_ms <= NOTIFY_SENDERS_GRACE_MS ? e : NULL;
    uint32_t pid = best != NULL ? best->client_pid : 0;
    pthread_mutex_unlock(&ns->lock);
    return pid;
}

bool notify_senders_text_may_notify(const void *text, size_t len)
{
    static const char word[] = "notify";
    const uint8_t *p = text;
    for (size_t i = 0; i + sizeof(word) - 1 <= len; i++) {
        if ((p[i] | 0x20) != 'n')
            continue;
        size_t j = 1;
        while (j < sizeof(word) - 1 && (p[i + j] | 0x20) == (uint8_t)word[j])
            j++;
        if (j == sizeof(word) - 1)
            return true;
    }
    return false;
}
