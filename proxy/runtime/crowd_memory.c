/*
 * crowd_memory.c — libevent's descriptor entries made a block at a time,
 * and the heap trimmed once a crowd has left (crowd_memory.h).
 */
#include "proxy/runtime/crowd_memory.h"

#include <fcntl.h>
#include <pthread.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxy/base/log.h"

static void crowd_trim_cb(evutil_socket_t fd, short what, void *arg)
{
    struct crowd_memory *cm = arg;
    (void)fd;
    (void)what;
#ifdef __GLIBC__
    int gave = malloc_trim(0);
#else
    int gave = 0;
#endif
    log_debug(0, "%zu clients (the most was %zu): the heap trimmed%s", cm->clients, cm->most,
              gave ? "" : ", nothing to give back");
    cm->most = cm->clients;
}

int crowd_memory_init(struct crowd_memory *cm, struct event_base *base)
{
    *cm = (struct crowd_memory){.base = base};
    cm->trim = evtimer_new(base, crowd_trim_cb, cm);
    return cm->trim != NULL ? 0 : -1;
}

void crowd_memory_free(struct crowd_memory *cm)
{
    if (cm->trim != NULL)
        event_free(cm->trim);
    cm->trim = NULL;
}

static void crowd_fd_unused(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* libevent's entry for descriptor fd, open and ours for now: an event added and taken off. */
static void crowd_fd_entry(struct event_base *base, struct event *ev, int fd)
{
    if (event_assign(ev, base, fd, EV_READ, crowd_fd_unused, NULL) == 0 && event_add(ev, NULL) == 0)
        event_del(ev);
}

/* A block of libevent's entries to make: from, up to end, and fd's. */
struct crowd_block {
    struct event_base *base;
    int fd, from, end;
};

/*
 * The numbers of the block, each taken as a copy of an eventfd (F_DUPFD:
 * the lowest free number from n, so a number another thread holds is
 * skipped, never taken from it) while its entry is made.  A skipped
 * number is in use: its entry comes as libevent's own, when this worker
 * watches it.  Out of descriptors, the rest come the same way.
 */
static void *crowd_block_make(void *arg)
{
    const struct crowd_block *b = arg;
    int probe = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct event *ev = event_new(b->base, -1, 0, crowd_fd_unused, NULL);
    if (probe >= 0 && ev != NULL) {
        crowd_fd_entry(b->base, ev, b->fd);
        for (int n = b->from; n < b->end;) {
            int got = fcntl(probe, F_DUPFD_CLOEXEC, n);
            if (got < 0)
                break;
            if (got < b->end)
                crowd_fd_entry(b->base, ev, got);
            close(got);
            n = got + 1;
        }
    }
    if (ev != NULL)
        event_free(ev);
    if (probe >= 0)
        close(probe);
    return NULL;
}

/*
 * Made on a thread of a moment while the worker waits for it: a new
 * thread's allocations come from a malloc arena of its own (the last such
 * thread's, once it has ended), so the entries lie together there, not in
 * the small holes a crowd's logins leave in the worker's arena, where
 * they would pin its pages as much as if made one by one.  libevent's
 * loop is not touched by the worker meanwhile.  When no thread can be
 * had, the worker makes them itself.
 */
void crowd_memory_fd(struct crowd_memory *cm, int fd)
{
    if (fd < cm->fd_entries_end)
        return;
    struct crowd_block b = {.base = cm->base,
                            .fd = fd,
                            .from = cm->fd_entries_end,
                            .end = (fd / CROWD_FD_BLOCK + 1) * CROWD_FD_BLOCK};
    pthread_t t;
    if (pthread_create(&t, NULL, crowd_block_make, &b) == 0)
        pthread_join(t, NULL);
    else
        crowd_block_make(&b);
    cm->fd_entries_end = b.end; /* not tried again, made or not */
}

void crowd_memory_trim_soon(struct crowd_memory *cm)
{
    if (cm->trim == NULL || evtimer_pending(cm->trim, NULL))
        return;
    struct timeval tv = {0, CROWD_TRIM_DELAY_MS * 1000};
    evtimer_add(cm->trim, &tv);
}

void crowd_memory_clients(struct crowd_memory *cm, size_t clients)
{
    cm->clients = clients;
    if (clients > cm->most) {
        cm->most = clients;
        return;
    }
    if (cm->most - clients >= CROWD_TRIM_CLIENTS)
        crowd_memory_trim_soon(cm);
}
