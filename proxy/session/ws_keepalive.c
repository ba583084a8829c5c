/*
 * ws_keepalive.c — one queue of a worker's WebSocket clients by the time
 * their next ping tick is due, and its timer (ws_keepalive.h).
 */
#include "proxy/session/ws_keepalive.h"

#include <event2/event.h>
#include <stdlib.h>

#include "protocol/clock.h"
#include "proxy/runtime/worker.h"

/* k goes into the queue at its due time: at the back, unless a reload shortened the interval. */
static void ws_keepalive_queue(struct worker *w, struct ws_keepalive *k)
{
    struct list_node *pos = w->ws_keepalives.head.prev;
    while (pos != &w->ws_keepalives.head &&
           list_entry(pos, struct ws_keepalive, node)->due_ms > k->due_ms)
        pos = pos->prev;
    list_insert_after(&w->ws_keepalives, pos, &k->node);
}

/* The timer is set for the head of the queue, if there is one. */
static void ws_keepalive_arm(struct worker *w)
{
    if (w->ws_keepalives.count == 0) {
        evtimer_del(w->ws_keepalive_timer);
        return;
    }
    int64_t due = list_entry(w->ws_keepalives.head.next, struct ws_keepalive, node)->due_ms;
    int64_t ms = due - monotonic_ms();
    if (ms < 0)
        ms = 0;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(w->ws_keepalive_timer, &tv);
}

/*
 * The ticks due now, each entry back in the queue one interval on before
 * its tick runs (which may stop it).  Bounded: each goes past now.
 */
static void ws_keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    (void)fd;
    (void)what;
    int64_t now = monotonic_ms();
    while (w->ws_keepalives.count > 0) {
        struct ws_keepalive *k = list_entry(w->ws_keepalives.head.next, struct ws_keepalive, node);
        if (k->due_ms > now)
            break;
        list_remove(&w->ws_keepalives, &k->node);
        k->due_ms = now + k->interval_ms;
        ws_keepalive_queue(w, k);
        w->ws_keepalive_tick(k->owner, k);
    }
    ws_keepalive_arm(w);
}

struct ws_keepalive *ws_keepalive_start(struct worker *w, int interval_ms, ws_keepalive_tick tick,
                                        void *owner)
{
    if (w->ws_keepalive_timer == NULL &&
        (w->ws_keepalive_timer = evtimer_new(w->base, ws_keepalive_cb, w)) == NULL)
        return NULL;
    struct ws_keepalive *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return NULL;
    w->ws_keepalive_tick = tick;
    k->owner = owner;
    k->interval_ms = interval_ms > 0 ? interval_ms : 1;
    k->due_ms = monotonic_ms() + k->interval_ms;
    ws_keepalive_queue(w, k);
    if (w->ws_keepalives.head.next == &k->node) /* the first due now: the timer follows it */
        ws_keepalive_arm(w);
    return k;
}

void ws_keepalive_stop(struct worker *w, struct ws_keepalive *k)
{
    if (k == NULL)
        return;
    list_remove(&w->ws_keepalives, &k->node);
    free(k);
}

void ws_keepalive_free(struct worker *w)
{
    if (w->ws_keepalive_timer != NULL)
        event_free(w->ws_keepalive_timer);
    w->ws_keepalive_timer = NULL;
}
