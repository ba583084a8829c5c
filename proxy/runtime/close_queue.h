/*
 * close_queue.h — server connections closed at a bounded pace.
 *
 * When thousands of clients vanish at once (a crashed application host,
 * a load balancer restart), closing every server connection in the same
 * loop turn makes thousands of backends exit at the same moment; on a
 * small machine the run queue then holds pgnear and every surviving
 * session's backend off the CPU for seconds.  Server sockets whose
 * session has ended are closed a batch per loop turn instead, so the
 * backends exit at a pace the machine absorbs while the sessions that
 * remain keep being served.
 */
#ifndef PGNEAR_PROXY_CLOSE_QUEUE_H
#define PGNEAR_PROXY_CLOSE_QUEUE_H

#include <stddef.h>

struct event_base;
struct event;

struct close_queue {
    int *fds; /* a ring of cap descriptors */
    size_t cap, head, len;
    struct event *timer; /* closes the next batch */
};

/* A batch per loop turn, turns at least this far apart (see close_queue.c). */
#define CLOSE_BATCH       64
#define CLOSE_INTERVAL_US 2000
/* Descriptors a worker holds back at most; past this, closing is immediate again. */
#define CLOSE_QUEUE_CAP 4096

/* Holds at most cap descriptors.  Returns 0, or -1 when out of memory. */
int close_queue_init(struct close_queue *q, struct event_base *base, size_t cap);
/* Closes fd soon; at once when the queue is full or cannot run. */
void close_queue_push(struct close_queue *q, int fd);
/* Closes everything queued now and frees the queue (the worker is ending). */
void close_queue_free(struct close_queue *q);

#endif
