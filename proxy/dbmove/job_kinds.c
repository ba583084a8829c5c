/*
 * job_kinds.c — which command each action runs: the kind (steps, free)
 * that its own file defines, handed to the engine (job.c), which names
 * none of them.  The entry of job.h.
 */
#include "proxy/dbmove/job.h"
#include "proxy/dbmove/job_engine.h"

#include <stddef.h>

struct dbmove_job *dbmove_job_start(struct worker *home, struct config *cfg,
                                    const struct dbmove_request *req, dbmove_notice_fn notice,
                                    dbmove_done_fn done, void *arg, struct pg_error *problem)
{
    static const struct job_kind *const kinds[] = {
        [DBMOVE_START] = &job_start_kind,   [DBMOVE_CUTOVER] = &job_cutover_kind,
        [DBMOVE_REVERT] = &job_revert_kind, [DBMOVE_FINISH] = &job_finish_kind,
        [DBMOVE_ABORT] = &job_abort_kind,   [DBMOVE_SHOW] = &job_show_kind,
        [DBMOVE_SETTLE] = &job_settle_kind,
    };
    return job_begin(home, cfg, req, kinds[req->action], notice, done, arg, problem);
}
