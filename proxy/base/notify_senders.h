/*
 * notify_senders.h — which client sent a notification, shared by the
 * workers: under transaction pooling a NOTIFY arrives with the process ID
 * of the server backend that committed it, while the sending client knows
 * itself by the process ID pgnear gave it (BackendKeyData), and the
 * backend serves many clients one after another.
 *
 * A session whose text may notify (the word NOTIFY: a NOTIFY statement,
 * pg_notify(), a routine so named) notes here, before the text goes,
 * that it holds that backend (host, process ID) under its own process ID,
 * and when it gives the backend back.  A notification from the backend is
 * then told, on whichever worker hears it, the process ID of the newest
 * such holding of the backend, unless that was given back over
 * NOTIFY_SENDERS_GRACE_MS ago.  Not known (a notification from a
 * trigger, or from a session that is not pgnear's client): the backend's
 * own process ID, as before.  The one guess: a notification that arrives
 * only after the backend's next client sent a NOTIFY of its own through
 * it is told as that client's.
 */
#ifndef PGNEAR_PROXY_BASE_NOTIFY_SENDERS_H
#define PGNEAR_PROXY_BASE_NOTIFY_SENDERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The holdings kept (the oldest forgotten first); how long one given back may still be sending. */
#define NOTIFY_SENDERS_MAX      1024
#define NOTIFY_SENDERS_GRACE_MS 2000
/* Buckets of the newest holding by backend, for a look without a walk of the ring. */
#define NOTIFY_SENDERS_BUCKETS 256

struct notify_sender {
    uint64_t seq; /* 0: free */
    const void *host;
    uint32_t backend_pid, client_pid;
    int64_t released_ms; /* 0: still held */
};

struct notify_senders {
    pthread_mutex_t lock;
    int listening; /* listening connections of all workers (atomic): none, nothing is noted */
    uint64_t next_seq;
    struct notify_sender ring[NOTIFY_SENDERS_MAX];
    uint64_t newest[NOTIFY_SENDERS_BUCKETS]; /* by backend: the newest holding noted */
};

void notify_senders_init(struct notify_senders *ns);
void notify_senders_destroy(struct notify_senders *ns);

/* Whether any worker listens: only then are holdings noted. */
static inline bool notify_senders_wanted(struct notify_senders *ns)
{
    return __atomic_load_n(&ns->listening, __ATOMIC_RELAXED) > 0;
}

/* A listening connection more (+1) or less (-1). */
void notify_senders_listening(struct notify_senders *ns, int delta);

/* A client (client_pid) holds backend_pid of host and may notify: its holding's number. */
uint64_t notify_senders_note(struct notify_senders *ns, const void *host, uint32_t backend_pid,
                             uint32_t client_pid);

/* The holding seq ended (now_ms: monotonic). */
void notify_senders_released(struct notify_senders *ns, uint64_t seq, int64_t now_ms);

/* The client's process ID for a notification from backend_pid of host; 0: not known. */
uint32_t notify_senders_pid(struct notify_senders *ns, const void *host, uint32_t backend_pid,
                            int64_t now_ms);

/* Whether a text (len bytes) may notify: the word NOTIFY in it, any case. */
bool notify_senders_text_may_notify(const void *text, size_t len);

#endif
