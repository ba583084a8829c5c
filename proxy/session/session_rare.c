/*
 * session_rare.c — the fields few sessions set, apart (session_rare.h).
 */
#include "proxy/session/session_rare.h"

#include <stdlib.h>
#include <string.h>

const struct session_rare session_rare_none;

struct session_rare *session_rare_own(const struct session_rare **rare)
{
    if (*rare != &session_rare_none)
        return (struct session_rare *)*rare;
    struct session_rare *r = calloc(1, sizeof(*r));
    if (r != NULL)
        *rare = r;
    return r;
}

void session_rare_settle(const struct session_rare **rare, bool free_all)
{
    if (*rare == &session_rare_none)
        return;
    struct session_rare *r = (struct session_rare *)*rare;
    if (free_all) {
        free(r->peer_label);
        free(r->txn_region);
    } else if (memcmp(r, &session_rare_none, sizeof(*r)) != 0) {
        return;
    }
    free(r);
    *rare = &session_rare_none;
}
