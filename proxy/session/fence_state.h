/*
 * fence_state.h — what the read-your-writes fence keeps of a session
 * (fence.h), s->fence: made by fence_begin for a session that reports
 * fences or follows nearest, which alone ask the server where its WAL is
 * (NULL otherwise: an idle client of neither carries none).  Only fence.c
 * writes it; the others read it (SHOW CLIENTS' fence, the next transaction's
 * min_lsn, nearest's write position, whether the server owes pgnear an
 * answer).  Whether the session reports fences at all is its login's
 * choice (s->report_fence), not this state.
 */
#ifndef PGNEAR_PROXY_SESSION_FENCE_STATE_H
#define PGNEAR_PROXY_SESSION_FENCE_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "protocol/lsn.h"

struct fence_state {
    uint32_t tli; /* the last fence sent; 0/0: none yet */
    uint64_t lsn;
    bool wrote; /* the transaction going on wrote */
    bool asked; /* the server is asked where its WAL is; a ReadyForQuery held */
    /*
     * The server is asked where its WAL is after a transaction, nothing
     * held (fence_ask_after); position_after: its answer, a position past
     * everything the session did there (0: none yet).
     */
    bool after;
    bool answered; /* while asked: the server said where (answer_tli/answer_lsn), to be the fence */
    uint32_t answer_tli;
    uint64_t position_after;
    uint64_t answer_lsn;
};

/* The server owes pgnear the answer to its question (either way): its messages are fence.c's. */
static inline bool fence_asking(const struct fence_state *f)
{
    return f != NULL && (f->asked || f->after);
}

#endif
