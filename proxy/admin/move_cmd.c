/*
 * move_cmd.c — MOVE CLIENT, MOVE CLIENTS and DRAIN (move_cmd.h).
 *
 * A batch is asked of every worker at once (worker_call_all); each starts
 * the moves of its own sessions in scope, whose ends come back on that
 * worker as rows, under the batch's lock.  The console's worker looks
 * every MOVE_POLL_MS whether every move has ended, and answers; no loop
 * waits.  DRAIN then ends, at their next safe point, the sessions of the
 * region that did not move, as it always has.
 */
#include "proxy/admin/move_cmd.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/gate.h"
#include "proxy/session/move.h"
#include "proxy/session/session.h"
#include "routing/region.h"
#include "routing/registry.h"

#define MOVE_POLL_MS 20

const struct admin_column move_cols[6] = {
    {"client_id", ADMIN_INT8, 0}, {"from_region", ADMIN_TEXT, 0}, {"to_region", ADMIN_TEXT, 0},
    {"result", ADMIN_TEXT, 0},    {"reason", ADMIN_TEXT, 0},      {"hold_ms", ADMIN_NUMERIC, 3},
};

enum batch_scope {
    BATCH_ONE,  /* MOVE CLIENT id */
    BATCH_FROM, /* MOVE CLIENTS FROM REGION, DRAIN */
    BATCH_HOME, /* MOVE CLIENTS HOME */
};

struct move_batch {
    pthread_mutex_t lock;
    struct console_wait *wait;
    struct worker *home;
    struct event *poll;
    const char *tag;
    enum batch_scope scope;
    uint64_t client_id;
    char from[MOVE_REGION_MAX];
    char to[MOVE_REGION_MAX];
    bool drain;         /* DRAIN: the sessions not moved are ended at their safe point */
    bool launched;      /* every worker has started its moves (under lock) */
    bool draining;      /* DRAIN's second round was asked */
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

/* Where s goes in this batch; false when it is not in scope. */
static bool batch_target(const struct move_batch *b, struct session *s, struct move_target *t)
{
    memset(t, 0, sizeof(*t));
    if (s->region == NULL || s->phase != PHASE_ACTIVE)
        return false;
    switch (b->scope) {
    case BATCH_ONE:
        snprintf(t->region, sizeof(t->region), "%s", b->to);
        return s->id == b->client_id;
    case BATCH_FROM:
        snprintf(t->region, sizeof(t->region), "%s", b->to);
        snprintf(t->avoid, sizeof(t->avoid), "%s", b->from);
        return strcasecmp(s->region->name, b->from) == 0;
    case BATCH_HOME:
        move_home_region(s, t->region, sizeof(t->region));
        return t->region[0] != '\0' && strcmp(t->region, s->region->name) != 0;
    }
    return false;
}

static int batch_on_worker(struct worker *w, void *arg)
{
    struct move_batch *b = arg;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->active_sessions)
    {
        struct session *s = list_entry(pos, struct session, node);
        struct move_target t;
        if (!batch_target(b, s, &t))
            continue;
        pthread_mutex_lock(&b->lock);
        b->pending++;
        pthread_mutex_unlock(&b->lock);
        move_session(s, &t, batch_row, b);
    }
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

static void batch_answer(struct move_batch *b)
{
    struct console_wait *wait = b->wait;
    if (b->scope == BATCH_ONE && b->nrows == 0) {
        admin_error_set(&wait->err, "42704", NULL, "SHOW CLIENTS lists the clients and their ids.",
                        "no client with id %llu", (unsigned long long)b->client_id);
        wait->answer(wait, CMD_ERROR);
        batch_free(b);
        return;
    }
    if (b->nrows > 1)
        qsort(b->rows, b->nrows, sizeof(*b->rows), batch_row_order);
    struct admin_result *res = &wait->res;
    result_init(res, move_cols, 6);
    if (b->out_of_memory)
        result_notice(res, "out of memory: some moves are missing from this answer");
    for (size_t i = 0; i < b->nrows; i++) {
        const struct move_result *r = &b->rows[i];
        result_int(res, (int64_t)r->client_id);
        result_text(res, r->from);
        if (r->to[0] != '\0')
            result_text(res, r->to);
        else
            result_null(res);
        result_text(res, r->moved ? "moved" : "not moved");
        if (r->moved)
            result_null(res);
        else
            result_text(res, r->reason);
        result_numeric(res, (double)r->hold_us / 1000.0);
    }
    char tag[64];
    snprintf(tag, sizeof(tag), "%s %zu", b->tag, b->nrows);
    result_set_tag(res, tag);
    wait->answer(wait, CMD_DONE);
    batch_free(b);
}

/* DRAIN: every session of the region still there ends at its next safe point with 57P01. */
static int drain_on_worker(struct worker *w, void *arg)
{
    const struct move_batch *b = arg;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &w->active_sessions)
    {
        struct session *s = list_entry(pos, struct session, node);
        if (s->region != NULL && strcasecmp(s->region->name, b->from) == 0)
            gate_drain_session(s);
    }
    return 0;
}

static void drain_asked(struct worker *from, const struct worker_reply *r)
{
    (void)from;
    batch_answer(r->arg);
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
        struct timeval tv = {0, MOVE_POLL_MS * 1000};
        evtimer_add(b->poll, &tv);
        return;
    }
    if (!b->drain) {
        batch_answer(b);
        return;
    }
    if (worker_call_all(b->home, drain_on_worker, b, drain_asked, NULL) != 0)
        batch_answer(b); /* out of memory: the moves are told; DRAIN ends nothing */
}

/* Starts the batch on every worker; CMD_PENDING, or CMD_ERROR with the error filled. */
static int batch_start(struct session *s, struct move_batch *b, struct console_wait *wait)
{
    struct timeval tv = {0, MOVE_POLL_MS * 1000};
    b->wait = wait;
    b->home = s->w;
    pthread_mutex_init(&b->lock, NULL);
    b->poll = evtimer_new(s->w->base, batch_poll, b);
    if (b->poll == NULL || worker_call_all(s->w, batch_on_worker, b, batch_launched, NULL) != 0) {
        batch_free(b);
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    evtimer_add(b->poll, &tv);
    return CMD_PENDING;
}

/* A region the command names: its name as configured, into out; false with err set. */
static bool batch_region(struct session *s, const char *name, char *out, size_t cap,
                         struct admin_error *err)
{
    const struct region *r = region_set_find(&s->w->cfg->regions, name);
    if (r == NULL) {
        admin_error_set(err, "42704", NULL, "SHOW REGIONS lists them.",
                        "region \"%s\" does not exist", name);
        return false;
    }
    snprintf(out, cap, "%s", r->name);
    return true;
}

int move_clients_command(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct move_batch *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    b->tag = "MOVE";
    b->client_id = cmd->client_id;
    b->scope = cmd->kind == ADMIN_MOVE_CLIENT ? BATCH_ONE
               : cmd->move_home               ? BATCH_HOME
                                              : BATCH_FROM;
    if ((cmd->to_region[0] != '\0' &&
         !batch_region(s, cmd->to_region, b->to, sizeof(b->to), &wait->err)) ||
        (b->scope == BATCH_FROM &&
         !batch_region(s, cmd->region, b->from, sizeof(b->from), &wait->err))) {
        free(b);
        return CMD_ERROR;
    }
    if (b->scope == BATCH_ONE)
        log_info(s->id, "admin %s: MOVE CLIENT %llu TO REGION %s", s->user,
                 (unsigned long long)b->client_id, b->to);
    else if (b->scope == BATCH_FROM)
        log_info(s->id, "admin %s: MOVE CLIENTS FROM REGION %s%s%s", s->user, b->from,
                 b->to[0] ? " TO REGION " : "", b->to);
    else
        log_info(s->id, "admin %s: MOVE CLIENTS HOME", s->user);
    return batch_start(s, b, wait);
}

/*
 * DRAIN region: no new session goes there; every movable session of it
 * moves to its next region by its own route, and those that cannot are
 * ended at their next safe point with 57P01, as before moves existed.
 */
int drain_command(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct move_batch *b = calloc(1, sizeof(*b));
    if (b == NULL) {
        admin_error_set(&wait->err, "53200", NULL, NULL, "out of memory");
        return CMD_ERROR;
    }
    if (!batch_region(s, cmd->region, b->from, sizeof(b->from), &wait->err)) {
        free(b);
        return CMD_ERROR;
    }
    b->tag = "DRAIN";
    b->scope = BATCH_FROM;
    b->drain = true;
    log_info(s->id, "admin %s: DRAIN %s", s->user, b->from);
    registry_set_admin_state(region_set_find(&s->w->cfg->regions, b->from)->runtime,
                             REGION_DRAINING);
    return batch_start(s, b, wait);
}
