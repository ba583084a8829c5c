/*
 * worker_call.c — calls between workers' loops through their mailboxes
 * (see worker_call.h for the thread rules).
 */
#include "proxy/runtime/worker_call.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"

/* Answers of one worker_call_all; touched only on the caller's thread. */
struct worker_gather {
    struct worker_reply reply;
    int pending;
    worker_done_fn done;
};

struct worker_call {
    struct worker_call *next; /* in a mailbox's queue */
    struct worker *from, *to;
    worker_fn fn;
    void *arg;
    worker_done_fn done;
    void *done_arg;
    struct worker_gather *gather; /* worker_call_all's, or NULL */
    int result;
    bool ran;
    bool answered; /* on its way back to from */
};

/* Queues c for w; -1 when w's loop has ended, unless even_closed (answers always land). */
static int mailbox_post(struct worker *w, struct worker_call *c, bool even_closed)
{
    struct worker_mailbox *m = &w->calls;
    pthread_mutex_lock(&m->lock);
    if (m->closed && !even_closed) {
        pthread_mutex_unlock(&m->lock);
        return -1;
    }
    bool ring = m->head == NULL && !m->closed;
    c->next = NULL;
    if (m->tail != NULL)
        m->tail->next = c;
    else
        m->head = c;
    m->tail = c;
    if (ring) {
        /* A full pipe already holds a wake-up, so a short write loses nothing. */
        ssize_t n;
        do
            n = write(m->bell[1], "c", 1);
        while (n < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* Unlinks the whole queue; closing marks the mailbox closed in the same step. */
static struct worker_call *mailbox_take(struct worker *w, bool closing)
{
    struct worker_mailbox *m = &w->calls;
    pthread_mutex_lock(&m->lock);
    struct worker_call *list = m->head;
    m->head = m->tail = NULL;
    if (closing)
        m->closed = true;
    pthread_mutex_unlock(&m->lock);
    return list;
}

/* Sends c back to its caller, or frees it when nobody listens. */
static void call_answer(struct worker_call *c)
{
    if (c->done == NULL && c->gather == NULL) {
        free(c);
        return;
    }
    c->answered = true;
    mailbox_post(c->from, c, true);
}

/*
 * One answer of a call to every worker: the first non-zero result is kept; the
 * last answer tells done and frees the gather.
 */
static void gather_add(struct worker *from, struct worker_call *c)
{
    struct worker_gather *g = c->gather;
    if (c->ran) {
        g->reply.ran++;
        if (g->reply.result == 0)
            g->reply.result = c->result;
    }
    if (--g->pending > 0)
        return;
    if (g->done != NULL)
        g->done(from, &g->reply);
    free(g);
}

/* On the caller's side: the answer is in. */
static void call_finish(struct worker_call *c)
{
    if (c->gather != NULL) {
        gather_add(c->from, c);
    } else {
        struct worker_reply r = {c->arg, c->done_arg, c->to->index, 1, c->ran, c->result};
        c->done(c->from, &r);
    }
    free(c);
}

/* Handles what came to w's mailbox: answers finish, calls run (or are refused once closed). */
static void mailbox_deliver(struct worker *w, struct worker_call *list, bool closed)
{
    while (list != NULL) {
        struct worker_call *c = list;
        list = c->next;
        if (c->answered) {
            call_finish(c);
            continue;
        }
        if (!closed) {
            c->result = c->fn(w, c->arg);
            c->ran = true;
        }
        call_answer(c);
    }
}

/*
 * The bell rang: the pipe is emptied (rings coalesce), then everything in the
 * mailbox is handled.
 */
static void mailbox_bell_cb(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    char buf[64];
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    mailbox_deliver(w, mailbox_take(w, false), false);
}

int worker_calls_init(struct worker *w)
{
    struct worker_mailbox *m = &w->calls;
    m->bell[0] = m->bell[1] = -1;
    if (pthread_mutex_init(&m->lock, NULL) != 0)
        return -1;
    m->lock_ready = true;
    if (pipe2(m->bell, O_CLOEXEC | O_NONBLOCK) != 0)
        return -1;
    m->bell_ev = event_new(w->base, m->bell[0], EV_READ | EV_PERSIST, mailbox_bell_cb, w);
    if (m->bell_ev == NULL || event_add(m->bell_ev, NULL) != 0)
        return -1;
    return 0;
}

void worker_calls_close(struct worker *w)
{
    if (!w->calls.lock_ready)
        return;
    mailbox_deliver(w, mailbox_take(w, true), true);
}

void worker_calls_free(struct worker *w)
{
    struct worker_mailbox *m = &w->calls;
    if (m->lock_ready) {
        /* Also runs the done callbacks of answers that came after the loop ended. */
        worker_calls_close(w);
        pthread_mutex_destroy(&m->lock);
        m->lock_ready = false;
    }
    if (m->bell_ev != NULL)
        event_free(m->bell_ev);
    m->bell_ev = NULL;
    for (int i = 0; i < 2; i++)
        if (m->bell[i] >= 0)
            close(m->bell[i]);
    m->bell[0] = m->bell[1] = -1;
}

/*
 * A call from one worker to another; NULL when out of memory. It is freed on
 * the caller's side once answered.
 */
static struct worker_call *call_new(struct worker *from, struct worker *to, worker_fn fn, void *arg,
                                    worker_done_fn done, void *done_arg)
{
    struct worker_call *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->from = from;
    c->to = to;
    c->fn = fn;
    c->arg = arg;
    c->done = done;
    c->done_arg = done_arg;
    return c;
}

/* Queues c on its target; a target whose loop has ended answers at once. */
static void call_send(struct worker_call *c)
{
    if (mailbox_post(c->to, c, false) != 0)
        call_answer(c);
}

int worker_call(struct worker *from, struct worker *to, worker_fn fn, void *arg,
                worker_done_fn done, void *done_arg)
{
    struct worker_call *c = call_new(from, to, fn, arg, done, done_arg);
    if (c == NULL)
        return -1;
    call_send(c);
    return 0;
}

int worker_call_all(struct worker *from, worker_fn fn, void *arg, worker_done_fn done,
                    void *done_arg)
{
    int n = from->shared->nworkers;
    struct worker_gather *g = calloc(1, sizeof(*g));
    struct worker_call **calls = calloc((size_t)n, sizeof(*calls));
    bool ok = g != NULL && calls != NULL;
    for (int i = 0; ok && i < n; i++) {
        calls[i] = call_new(from, from->shared->workers[i], fn, arg, done, done_arg);
        ok = calls[i] != NULL;
    }
    if (!ok) {
        for (int i = 0; calls != NULL && i < n; i++)
            free(calls[i]);
        free(calls);
        free(g);
        return -1;
    }
    g->reply = (struct worker_reply){arg, done_arg, -1, n, 0, 0};
    g->pending = n;
    g->done = done;
    for (int i = 0; i < n; i++) {
        calls[i]->gather = g;
        call_send(calls[i]);
    }
    free(calls);
    return 0;
}
