/*
 * follow_settle.c — a cutover that nobody runs any more is settled
 * (job_settle.c): the follower on worker 0 of every pgnear looks, each
 * round, for a row of a database's newest move that still says 'cutting
 * over' or 'reverting' while this pgnear does not run that cutover, and
 * at most every FOLLOW_SETTLE_MS starts the settling job.  While another
 * pgnear runs the cutover its move lock is held, and the job ends at once
 * (55006), quietly; once that pgnear is gone, whichever pgnear takes the
 * lock first finishes or undoes the cutover, the restarted one included.
 * A move that says 'copying' is looked at once, the same way, to find a
 * MOVE DATABASE cut short before its copy began.
 */
#include "proxy/dbmove/follow_int.h"

#include <stdio.h>
#include <string.h>

#include "protocol/clock.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/dbmove/job.h"
#include "proxy/runtime/placement.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "routing/health.h"

/* The states a cutover leaves behind when its pgnear stops before it ends. */
static bool transitional(enum dbmove_state state)
{
    return state == DBMOVE_CUTTING_OVER || state == DBMOVE_REVERTING;
}

/*
 * A row of r's move, from either region, that says a cutover runs; or r
 * itself when it says 'copying' and this pgnear has not seen its copy
 * begin yet; NULL: nothing to settle.
 */
static const struct dbmove_row *unsettled_row(const struct dbmove_follow *f,
                                              const struct dbmove_row *r)
{
    for (size_t i = 0; i < f->nrows; i++)
        if (f->rows[i].id == r->id && transitional(f->rows[i].state))
            return &f->rows[i];
    if (r->state == DBMOVE_COPYING && r->id != f->copy_seen_id)
        return r;
    return NULL;
}

/* The settling job's end: a problem is logged once, however often the tries meet it. */
static void settle_done(void *arg, enum dbmove_action action, const struct pg_error *problem,
                        const char *summary, const struct dbmove_status *rows, size_t nrows,
                        const struct move_result *moves, size_t nmoves)
{
    struct dbmove_follow *f = arg;
    (void)action, (void)rows, (void)nrows, (void)moves, (void)nmoves;
    f->settling = NULL;
    if (problem == NULL) {
        if (f->settle_copying)
            f->copy_seen_id = f->settle_move_id; /* its copy began, or it is failed now */
        if (strncmp(summary, "no cutover", 10) != 0)
            log_info(0, "%s", summary);
        f->settle_told[0] = '\0';
        return;
    }
    if (strcmp(problem->sqlstate, "55006") == 0)
        return; /* the pgnear running the cutover holds the lock: nothing to settle */
    if (strcmp(f->settle_told, problem->message) != 0) {
        snprintf(f->settle_told, sizeof(f->settle_told), "%s", problem->message);
        log_warn(0,
                 "settling an interrupted cutover of database \"%s\": %s (tried again every %d ms)",
                 f->settle_database, problem->message, FOLLOW_SETTLE_MS);
    }
}

void follow_settle_round(struct dbmove_follow *f, const struct config *cfg,
                         const struct dbmove_row *r)
{
    const struct dbmove_row *u = unsettled_row(f, r);
    if (u == NULL || f->starting || f->settling != NULL || f->w->draining ||
        placement_local(&f->w->shared->placement, r->database))
        return;
    int64_t now = monotonic_ms();
    if (now < f->settle_next_ms)
        return;
    f->settle_next_ms = now + FOLLOW_SETTLE_MS;
    struct dbmove_request req = {.action = DBMOVE_SETTLE};
    snprintf(req.database, sizeof(req.database), "%s", r->database);
    snprintf(req.city, sizeof(req.city), "%s", r->city);
    snprintf(req.to_region, sizeof(req.to_region), "%s",
             u->state == DBMOVE_REVERTING ? u->to_region : u->from_region);
    snprintf(req.by, sizeof(req.by), "pgnear (peer_id %d), settling", cfg->peer_id);
    snprintf(f->settle_database, sizeof(f->settle_database), "%s", r->database);
    f->settle_move_id = r->id;
    f->settle_copying = u->state == DBMOVE_COPYING;
    struct pg_error problem;
    f->settling = dbmove_job_start(f->w, f->w->cfg, &req, NULL, settle_done, f, &problem);
}

void follow_settle_free(struct dbmove_follow *f)
{
    if (f->settling != NULL)
        dbmove_job_abandon(f->settling);
    f->settling = NULL;
}
