/*
 * move_batch.c — many moves at once, on every worker (move_batch.h).
 */
#include "proxy/session/move_batch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/gate.h"
#include "proxy/session/session.h"
#include "routing/region.h"

struct move_batch {
    pthread_mutex_t lock;
    struct worker *home;
    struct event *poll;
    struct move_batch_spec spec;
    struct gate_scope scope; /* the spec's sessions */
    move_batch_done_fn done;
    void *arg;
    bool launched;      /* every worker has started its moves (under lock) */
    int pending;        /* moves started and not ended (under lock) */
    bool out_of_memory; /* a row was lost (under lock) */
    struct move_result *rows;
    size_t nrows, cap;
};

static void batch_free(struct move_batch *b)
{
    if (b->poll != NULL)
        event_free(b->poll);
    pthread_mutex_destroy(&b->lock);
    free(b->rows);
    free(b);
}

/* A move ended, on its session's worker. */
static void batch_row(const struct move_result *r, void *arg)
{
    struct move_batch *b = arg;
    pthread_mutex_lock(&b->lock);
    if (b->nrows == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        struct move_result *grown = realloc(b->rows, cap * sizeof(*grown));
        if (grown != NULL) {
            b->rows = grown;
            b->cap = cap;
        }
    }
    if (b->nrows < b->cap)
        b->rows[b->nrows++] = *r;
    else
        b->out_of_memory = true;
    b->pending--;
    pthread_mutex_unlock(&b->lock);
}

/*
 * The spec's sessions (what end_the_rest ends too): ONE, the one client;
 * FROM, those of region from; DATABASE, those of the database anywhere but
 * region to (a database may have lived in its primary's region and its
 * standbys'); HOME, every one (batch_target picks).
 */
static void batch_scope(const struct move_batch_spec *spec, struct gate_scope *scope)
{
    memset(scope, 0, sizeof(*scope));
    scope->all = spec->scope != MOVE_BATCH_FROM;
    if (spec->scope == MOVE_BATCH_FROM)
        snprintf(scope->region, sizeof(scope->region), "%s", spec->from);
    if (spec->scope == MOVE_BATCH_DATABASE) {
        snprintf(scope->database, sizeof(scope->database), "%s", spec->database);
        snprintf(scope->not_region, sizeof(scope->not_region), "%s", spec->to);
        snprintf(scope->city_key, sizeof(scope->city_key), "%s", spec->city_key);
    }
    scope->one_client = spec->scope == MOVE_BATCH_ONE;
    scope->client_id = spec->client_id;
}

/* Where s, of the batch's scope, goes; false when it stays (HOME: its region is still best). */
static bool batch_target(const struct move_batch_spec *spec, struct session *s,
                         struct move_target *t)
{
    memset(t, 0, sizeof(*t));
    if (s->phase != PHASE_ACTIVE)
        return false;
    snprintf(t->region, sizeof(t->region), "%s", spec->to);
    switch (spec->scope) {
    case MOVE_BATCH_ONE:
        return true;
    case MOVE_BATCH_FROM:
    case MOVE_BATCH_DATABASE:
        snprintf(t->avoid, sizeof(t->avoid), "%s", spec->from);
        return true;
    case MOVE_BATCH_HOME:
        move_home_region(s, t->region, sizeof(t->region));
        return t->region[0] != '\0' && strcmp(t->region, s->region->name) != 0;
    }
    return false;
}

static bool batch_one(struct session *s, void *arg)
{
    struct move_batch *b = arg;
    struct move_target t;
    if (!batch_target(&b->spec, s, &t))
        return true;
    pthread_mutex_lock(&b->lock);
    b->pending++;
    pthread_mutex_unlock(&b->lock);
    move_session(s, &t, batch_row, b);
    return true;
}

static int batch_on_worker(struct worker *w, void *arg)
{
    struct move_batch *b = arg;
    gate_each(w, &b->scope, batch_one, b);
    return 0;
}

static void batch_launched(struct worker *from, const struct worker_reply *r)
{
    struct move_batch *b = r->arg;
    (void)from;
    pthread_mutex_lock(&b->lock);
    b->launched = true;
    pthread_mutex_unlock(&b->lock);
}

static int batch_row_order(const void *a, const void *b)
{
    const struct move_result *x = a, *y = b;
    return x->client_id < y->client_id ? -1 : x->client_id > y->client_id;
}

static void batch_end(struct move_batch *b)
{
    if (b->nrows > 1)
        qsort(b->rows, b->nrows, sizeof(*b->rows), batch_row_order);
    b->done(b->rows, b->nrows, b->out_of_memory, b->arg);
    batch_free(b);
}

static bool end_one(struct session *s, void *arg)
{
    const struct move_batch *b = arg;
    gate_drain_session(s,
                       b->spec.scope == MOVE_BATCH_DATABASE ? CLOSE_DATABASE_MOVED : CLOSE_DRAIN);
    return true;
}

/* The scope's sessions still in its region end at their next safe point with 57P01. */
static int end_rest_on_worker(struct worker *w, void *arg)
{
    struct move_batch *b = arg;
    gate_each(w, &b->scope, end_one, b);
    return 0;
}

static void rest_ended(struct worker *from, const struct worker_reply *r)
{
    (void)from;
    batch_end(r->arg);
}

static void batch_poll(evutil_socket_t fd, short what, void *arg)
{
    struct move_batch *b = arg;
    (void)fd;
    (void)what;
    pthread_mutex_lock(&b->lock);
    bool ended = b->launched && b->pending == 0;
    pthread_mutex_unlock(&b->lock);
    if (!ended) {
        struct timeval tv = {0, MOVE_BATCH_POLL_MS * 1000};
        evtimer_add(b->poll, &tv);
        return;
    }
    if (!b->spec.end_the_rest ||
        worker_call_all(b->home, end_rest_on_worker, b, rest_ended, NULL) != 0)
        batch_end(b); /* out of memory: the moves are told; nothing more is ended */
}

int move_batch_start(struct worker *home, const struct move_batch_spec *spec,
                     move_batch_done_fn done, void *arg)
{
    struct move_batch *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -1;
    pthread_mutex_init(&b->lock, NULL);
    b->home = home;
    b->spec = *spec;
    batch_scope(spec, &b->scope);
    b->done = done;
    b->arg = arg;
    struct timeval tv = {0, MOVE_BATCH_POLL_MS * 1000};
    b->poll = evtimer_new(home->base, batch_poll, b);
    if (b->poll == NULL || worker_call_all(home, batch_on_worker, b, batch_launched, NULL) != 0) {
        batch_free(b);
        return -1;
    }
    evtimer_add(b->poll, &tv);
    return 0;
}
