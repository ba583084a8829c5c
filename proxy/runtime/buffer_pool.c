/*
 * buffer_pool.c — a worker's spare evbuffers and its quiet buffer
 * (buffer_pool.h).
 */
#include "proxy/runtime/buffer_pool.h"

#include <stddef.h>

#include <event2/buffer.h>

int buffer_pool_init(struct buffer_pool *bp)
{
    bp->nspare = 0;
    bp->quiet_users = 0;
    bp->quiet = evbuffer_new();
    if (bp->quiet == NULL)
        return -1;
    /* Nothing goes in at its end, nothing comes off its front. */
    evbuffer_freeze(bp->quiet, 0);
    evbuffer_freeze(bp->quiet, 1);
    return 0;
}

void buffer_pool_free(struct buffer_pool *bp)
{
    while (bp->nspare > 0)
        evbuffer_free(bp->spare[--bp->nspare]);
    if (bp->quiet != NULL)
        evbuffer_free(bp->quiet);
    bp->quiet = NULL;
}

struct evbuffer *buffer_pool_get(struct buffer_pool *bp)
{
    return bp->nspare > 0 ? bp->spare[--bp->nspare] : evbuffer_new();
}

void buffer_pool_put(struct buffer_pool *bp, struct evbuffer *b)
{
    /*
     * An evbuffer drained empty holds no chain (nothing here reserves
     * space it does not fill): a spare costs its struct alone.  One that
     * still holds bytes is nobody's to lend.
     */
    if (bp->nspare < BUFFER_POOL_SPARES && evbuffer_get_length(b) == 0)
        bp->spare[bp->nspare++] = b;
    else
        evbuffer_free(b);
}
