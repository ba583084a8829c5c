/*
 * migrate_abort.c — MIGRATE ABORT: stops the migration running on this
 * pgnear, whichever worker runs it.  The call goes to that worker (only it
 * touches its request), tells the run to stop, then asks again every
 * ABORT_POLL_MS until the run has ended or ABORT_WAIT_MS have passed; the
 * admin who started the run gets the details on their own session.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <event2/event.h>

#include "proxy/admin/migrations.h"
#include "proxy/base/log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/session.h"

#define ABORT_POLL_MS 50
#define ABORT_WAIT_MS 60000
#define ABORT_ELSEWHERE_HINT                                                                       \
    "A migration another pgnear runs is stopped from that pgnear's console; SHOW MIGRATIONS "      \
    "names the pgnear of a running step."

/* An ABORT on its way to the migration's worker, then waiting there for the run's end. */
struct abort_call {
    struct console_wait *wait;
    struct worker *home; /* the ABORT's worker */
    int target;          /* the migration's worker */
    char who[128];
    uint64_t id; /* the migration told to stop */
    bool found;  /* abort_on_worker found it */
    bool gone;   /* gone_on_worker: it has ended */
    int64_t waited_ms;
    struct event *timer;
};

/*
 * The answer to MIGRATE ABORT, and the call's end: 55000 when nothing ran here,
 * a NOTICE when the run has not yet stopped.
 */
static void abort_answer(struct abort_call *call)
{
    struct console_wait *wait = call->wait;
    int rc = CMD_DONE;
    if (!call->found) {
        pg_error_set(&wait->err, "55000", "no migration is running on this pgnear");
        pg_error_hint(&wait->err, "%s", ABORT_ELSEWHERE_HINT);
        rc = CMD_ERROR;
    } else {
        result_init(&wait->res, NULL, 0);
        if (call->gone)
            result_notice(&wait->res, "the migration stopped; its admin session has the details");
        else
            result_notice(&wait->res,
                          "the migration was told to stop and has not ended after "
                          "%d s; its admin session will have the details",
                          ABORT_WAIT_MS / 1000);
        result_set_tag(&wait->res, "MIGRATE ABORT");
    }
    if (call->timer != NULL)
        event_free(call->timer);
    free(call);
    wait->answer(wait, rc);
}

/*
 * On each worker: stops a migration running there (at most one runs per pgnear)
 * and notes its id.
 */
static int abort_on_worker(struct worker *w, void *arg)
{
    struct abort_call *call = arg;
    call->id = migrations_stop(w, call->who);
    call->found = call->id != 0;
    return 0;
}

/* On the run's worker: has the migration stopped? */
static int gone_on_worker(struct worker *w, void *arg)
{
    struct abort_call *call = arg;
    call->gone = !migrations_running(w, call->id);
    return 0;
}

static void abort_poll(struct abort_call *call);

/*
 * The poll's answer: answer once the run is gone or the wait is over, else ask
 * again after a while.
 */
static void abort_checked(struct worker *from, const struct worker_reply *r)
{
    struct abort_call *call = r->arg;
    (void)from;
    if (r->ran == 0)
        call->gone = true; /* that worker's loop has ended, and the run with it */
    if (!call->found || call->gone || call->waited_ms >= ABORT_WAIT_MS) {
        abort_answer(call);
        return;
    }
    struct timeval tv = {0, ABORT_POLL_MS * 1000};
    call->waited_ms += ABORT_POLL_MS;
    if (evtimer_add(call->timer, &tv) != 0)
        abort_answer(call);
}

/* Asks the run's worker whether the migration has ended; an undeliverable call answers at once. */
static void abort_poll(struct abort_call *call)
{
    if (worker_call(call->home, call->home->shared->workers[call->target], gone_on_worker, call,
                    abort_checked, NULL) != 0)
        abort_answer(call);
}

/* Time to poll again. */
static void abort_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    abort_poll(arg);
}

/* MIGRATE ABORT: stops the migration running on this pgnear, whichever worker runs it. */
static int migrate_abort_run(struct session *s, const struct admin_cmd *cmd,
                             struct console_wait *wait)
{
    (void)cmd;
    int migrating = __atomic_load_n(&s->w->shared->migrating, __ATOMIC_ACQUIRE);
    slog_info(s, "admin %s: MIGRATE ABORT", s->user);
    if (migrating == 0) {
        pg_error_set(&wait->err, "55000", "no migration is running on this pgnear");
        pg_error_hint(&wait->err, "%s", ABORT_ELSEWHERE_HINT);
        return CMD_ERROR;
    }
    struct abort_call *call = calloc(1, sizeof(*call));
    if (call == NULL || (call->timer = evtimer_new(s->w->base, abort_timer_cb, call)) == NULL) {
        free(call);
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    call->wait = wait;
    call->home = s->w;
    call->target = migrating - 1;
    snprintf(call->who, sizeof(call->who), "MIGRATE ABORT (admin %.32s)", s->user);
    if (worker_call(s->w, s->w->shared->workers[call->target], abort_on_worker, call, abort_checked,
                    NULL) != 0) {
        event_free(call->timer);
        free(call);
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

const struct admin_command migrations_abort_command = {.run = migrate_abort_run};
