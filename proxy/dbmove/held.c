/*
 * held.c — the server processes a cutover must not end (held.h).
 */
#include "proxy/dbmove/held.h"

#include <stdio.h>
#include <stdlib.h>

#include "proxy/base/log.h"
#include "proxy/dbmove/record.h"
#include "proxy/pool/pool.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/gate.h"

struct held_call {
    struct worker *home;
    struct gate_pids *pids;
    char region[DBMOVE_NAME_MAX + 1], database[DBMOVE_NAME_MAX + 1];
    void (*done)(void *arg);
    void *arg;
};

/* On each worker: the pool's kept connections to the database closed, so none is held. */
static int retire_on_worker(struct worker *w, void *arg)
{
    struct held_call *c = arg;
    pool_retire_database(w, c->region, c->database, c->pids);
    return 0;
}

/* Back on the cutover's worker: every worker has retired them, the held sessions' pids next. */
static void retired(struct worker *from, const struct worker_reply *r)
{
    struct held_call *c = r->arg;
    (void)from;
    if (gate_collect_pids(c->home, c->pids, c->done, c->arg) != 0) {
        log_warn(0, "out of memory: the held sessions of database \"%s\" were not counted",
                 c->database);
        c->done(c->arg);
    }
    free(c);
}

int dbmove_collect_held(struct worker *home, struct gate_pids *pids, const char *region,
                        const char *database, void (*done)(void *arg), void *arg)
{
    struct held_call *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->home = home;
    c->pids = pids;
    snprintf(c->region, sizeof(c->region), "%s", region);
    snprintf(c->database, sizeof(c->database), "%s", database);
    c->done = done;
    c->arg = arg;
    if (worker_call_all(home, retire_on_worker, c, retired, c) != 0) {
        free(c);
        return -1;
    }
    return 0;
}
