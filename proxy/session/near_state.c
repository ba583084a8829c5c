/*
 * near_state.c — what others read of a nearest session's state, and what
 * they note in it (near_state.h).
 */
#include "proxy/session/near_state.h"

#include <event2/buffer.h>

#include "proxy/base/log.h"
#include "proxy/session/near_int.h"
#include "proxy/session/session.h"
#include "routing/registry.h"

bool near_owes_request(const struct session *s, bool for_close)
{
    const struct near_state *ns = s->near;
    return ns != NULL && (ns->leg == NEAR_HELD || (for_close && ns->forward.pending));
}

void near_note_serializable(struct session *s, const char *how)
{
    if (s->near->serializable)
        return;
    s->near->serializable = true;
    log_info(s->id,
             "nearest: %s make its transactions serializable, which a standby cannot run: "
             "on a primary from now on",
             how);
}

void near_note_state_change(struct session *s)
{
    s->near->slots.state_changing = true;
}

void near_note_routines_changed(const struct session *s)
{
    s->near->routines_changed = true;
}

bool near_pin_move_may_ask(struct session *s)
{
    if (s->near->leg != NEAR_BETWEEN)
        return false; /* a request of it still runs there (a refusal shown, a stand-in's) */
    bool may = !s->near->pin_move_asked;
    s->near->pin_move_asked = true;
    return may;
}

struct evbuffer *near_answers(const struct session *s)
{
    return s->near != NULL && s->near->leg == NEAR_HELD ? s->near->held.answer : s->client.out;
}

bool near_reads_client(const struct session *s)
{
    return s->near == NULL || !s->near->held.request_sent;
}

bool near_own_slots(const struct session *s)
{
    return s->near != NULL && s->near->slots.own;
}

bool near_serializable(const struct session *s)
{
    return s->near != NULL && s->near->serializable;
}

bool near_held_for_primary(const struct session *s)
{
    return s->near != NULL && s->near->leg == NEAR_HELD && s->near->held.must_forward;
}

struct func_database *near_routines(const struct session *s)
{
    return s->near != NULL ? s->near->routines : NULL;
}

void near_show(const struct session *s, struct near_show *out)
{
    const struct near_state *n = s->near;
    *out = (struct near_show){.forwarded = n != NULL ? (int64_t)n->forward.total : -1};
    if (n == NULL)
        return;
    out->owns_parked =
        n->slots.own && (n->slots.conn[NEAR_SLOT_NEAR] || n->slots.conn[NEAR_SLOT_PRIMARY]);
    out->reads_at = n->reads_at != NULL ? n->reads_at->name : NULL;
    out->writes_at = n->writes_at != NULL ? n->writes_at->name : NULL;
}

struct near_sync *near_sync_of(const struct session *s)
{
    return s->near != NULL ? s->near->sync : NULL;
}

void near_sync_set(struct session *s, struct near_sync *y)
{
    s->near->sync = y;
}
