/*
 * phase.c — the phase engine: moves a session from one phase to the next
 * and runs what the phase table (struct session_flow, handed down by the
 * process in struct shared) says each phase does.  What a phase is — its
 * name, its list, whether it is part of the login — is told here, with
 * the enum; what it does is the table's.
 */
#include "proxy/session/phase.h"

#include <stdlib.h>

#include "protocol/pg_error.h"
#include "proxy/base/log.h" /* by id: session_log.h would close a circle through server_conn */
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"

/* Which of the worker's session lists a phase puts the session on: its state there. */
enum phase_list {
    PHASE_LIST_KEEP,    /* the one it is on */
    PHASE_LIST_LOGIN,   /* login_sessions (where a new session starts) */
    PHASE_LIST_WAITING, /* waiting_sessions */
    PHASE_LIST_ACTIVE,  /* active_sessions */
    PHASE_LIST_ADMIN,   /* admin_sessions */
};

static const struct {
    const char *name;
    enum phase_list list; /* the worker's list the session sits on */
    bool login;           /* part of the login: its failures are failed logins */
} phase_kinds[PHASE_COUNT] = {
    [PHASE_PROXY_HEADER] = {"proxy header", PHASE_LIST_LOGIN, true},
    [PHASE_WEBSOCKET] = {"websocket", PHASE_LIST_LOGIN, true},
    [PHASE_STARTUP] = {"startup", PHASE_LIST_LOGIN, true},
    [PHASE_CLIENT_TLS] = {"client tls", PHASE_LIST_LOGIN, true},
    [PHASE_CLIENT_AUTH] = {"client auth", PHASE_LIST_LOGIN, true},
    [PHASE_CONNECT] = {"connect", PHASE_LIST_LOGIN, true},
    [PHASE_WAIT_ROLE] = {"wait role", PHASE_LIST_LOGIN, true},
    [PHASE_SERVER_SSL] = {"server ssl", PHASE_LIST_LOGIN, true},
    [PHASE_SERVER_TLS] = {"server tls", PHASE_LIST_LOGIN, true},
    [PHASE_WAIT_SERVER] = {"wait server", PHASE_LIST_WAITING, true},
    [PHASE_SERVER_LOGIN] = {"server login", PHASE_LIST_LOGIN, true},
    [PHASE_ACTIVE] = {"active", PHASE_LIST_ACTIVE, false},
    [PHASE_ADMIN] = {"admin", PHASE_LIST_ADMIN, false},
    /* Entered from any phase, on the list of the one it ends. */
    [PHASE_CLOSING] = {"closing", PHASE_LIST_KEEP, false},
};

static const struct phase_row *phase_row(const struct session *s, enum session_phase phase)
{
    return &s->w->shared->flow->rows[phase];
}

const char *phase_name(enum session_phase phase)
{
    return phase < PHASE_COUNT ? phase_kinds[phase].name : "?";
}

bool phase_in_login(enum session_phase phase)
{
    return phase < PHASE_COUNT && phase_kinds[phase].login;
}

static struct list *phase_list(struct worker *w, enum phase_list list)
{
    switch (list) {
    case PHASE_LIST_LOGIN:
        return &w->login_sessions;
    case PHASE_LIST_WAITING:
        return &w->waiting_sessions;
    case PHASE_LIST_ACTIVE:
        return &w->active_sessions;
    case PHASE_LIST_ADMIN:
        return &w->admin_sessions;
    default:
        return NULL;
    }
}

/* Moves the session to another of its worker's lists. */
static void phase_move_to_list(struct session *s, struct list *to)
{
    list_remove(s->list, &s->node);
    s->list = to;
    list_append(to, &s->node);
}

static void phase_start(struct session *s, enum session_phase next)
{
    const struct phase_row *row = phase_row(s, next);
    struct list *to = phase_list(s->w, phase_kinds[next].list);
    s->phase = next;
    if (to != NULL && to != s->list)
        phase_move_to_list(s, to);
    if (row->enter != NULL)
        row->enter(s);
}

/* A move the table does not declare: a bug, which costs this session only (or aborts, checked). */
static void phase_refuse(struct session *s, const char *from, enum session_phase next)
{
    log_error(s->id,
              "internal error: phase %s may not move to %s (the phase table declares no "
              "such exit)",
              from, phase_name(next));
#ifdef PGNEAR_CHECKED
    abort();
#endif
    const struct session_flow *flow = s->w->shared->flow;
    if (s->phase == PHASE_CLOSING) {
        flow->close(s, "internal error: undeclared phase change");
        return;
    }
    struct pg_error e;
    flow->fail(s, pg_error_set(&e, "XX000", "internal error in pgnear's login"));
}

void phase_begin_at(struct session *s, enum session_phase first)
{
    if (first >= PHASE_COUNT || (s->w->shared->flow->entries & PHASE_BIT(first)) == 0) {
        phase_refuse(s, "(new)", first);
        return;
    }
    log_debug(s->id, "phase %s", phase_name(first));
    phase_start(s, first);
}

void phase_begin(struct session *s)
{
    enum session_phase first = s->w->shared->flow->first(s);
    if (first == PHASE_COUNT)
        return; /* closed */
    phase_begin_at(s, first);
}

void phase_enter(struct session *s, enum session_phase next)
{
    if (next >= PHASE_COUNT ||
        (next != PHASE_CLOSING && (phase_row(s, s->phase)->exits & PHASE_BIT(next)) == 0)) {
        phase_refuse(s, phase_name(s->phase), next);
        return;
    }
    if (s->phase != next)
        log_debug(s->id, "phase %s -> %s", phase_name(s->phase), phase_name(next));
    phase_start(s, next);
}

void phase_done(struct session *s)
{
    const struct phase_row *row = phase_row(s, s->phase);
    if (row->done == NULL) {
        log_error(s->id, "phase %s has no next phase", phase_name(s->phase));
        s->w->shared->flow->close(s, "internal error: no next phase");
        return;
    }
    row->done(s);
}

void phase_timeout(struct session *s)
{
    const struct phase_row *row = phase_row(s, s->phase);
    if (row->on_timeout == NULL) {
        log_warn(s->id, "session timer expired in phase %s, which sets none", phase_name(s->phase));
        return;
    }
    row->on_timeout(s);
}

void phase_server_failed(struct session *s, const char *why, enum server_verdict v)
{
    s->w->shared->flow->server_failed(s, why, v);
}

void phase_end(struct session *s)
{
    /* A session closes in CLOSING as often as in the phase whose state it holds: every end runs. */
    const struct session_flow *flow = s->w->shared->flow;
    for (size_t i = 0; i < PHASE_COUNT; i++)
        if (flow->rows[i].end != NULL)
            flow->rows[i].end(s);
}

void phase_cancel(struct session *s)
{
    const struct phase_row *row = phase_row(s, s->phase);
    if (row->cancel != NULL)
        row->cancel(s);
}
