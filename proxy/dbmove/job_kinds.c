/*
 * job_kinds.c — which command each action runs: the kind (steps, free)
 * that its own file defines, handed to the engine (job.c), which names
 * none of them.  The entry of job.h.
 */
#include "proxy/dbmove/job.h"
#include "proxy/dbmove/job_int.h"

#include <stddef.h>

/*
 * A city's REVERT is not there yet: the database's would switch every
 * city's sessions back, and make the whole target refuse writes.
 */
static int city_step_not_yet(struct dbmove_job *j)
{
    job_problem(j, "0A000", "MOVE CITY ... REVERT is not supported yet");
    pg_error_hint(&j->problem, "MOVE CITY ... ABORT removes what the move made.");
    return JOB_FAIL;
}

static const struct job_step city_not_yet_steps[] = {
    {NULL, NULL, city_step_not_yet},
    {NULL, NULL, NULL},
};

static const struct job_kind city_not_yet_kind = {city_not_yet_steps, NULL};

struct dbmove_job *dbmove_job_start(struct worker *home, struct config *cfg,
                                    const struct dbmove_request *req, dbmove_notice_fn notice,
                                    dbmove_done_fn done, void *arg, struct pg_error *problem)
{
    static const struct job_kind *const kinds[] = {
        [DBMOVE_START] = &job_start_kind,    [DBMOVE_CUTOVER] = &job_cutover_kind,
        [DBMOVE_REVERT] = &job_cutover_kind, [DBMOVE_FINISH] = &job_finish_kind,
        [DBMOVE_ABORT] = &job_abort_kind,    [DBMOVE_SHOW] = &job_show_kind,
        [DBMOVE_SETTLE] = &job_settle_kind,
    };
    const struct job_kind *kind = kinds[req->action];
    if (req->city[0] != '\0' && req->action != DBMOVE_START && req->action != DBMOVE_ABORT &&
        req->action != DBMOVE_CUTOVER && req->action != DBMOVE_FINISH)
        kind = &city_not_yet_kind;
    return job_begin(home, cfg, req, kind, notice, done, arg, problem);
}
