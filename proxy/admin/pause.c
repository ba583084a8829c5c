/*
 * pause.c — PAUSE and RESUME: asking sessions on every worker to stop at
 * their next safe point (session_at_safe_point), and to go on.
 *
 * PAUSE closes the gate of its regions (gate.h) and answers once every
 * session there is held; if pause_timeout passes first, or a RESUME or the
 * admin's Ctrl-C comes, the gate opens again and the error says which
 * clients kept it from closing.  RESUME opens it.  DRAIN, which moves or
 * ends the sessions of a region, is in move_cmd.c.
 */
#include "proxy/admin/pause.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/runtime/worker.h"
#include "proxy/runtime/worker_call.h"
#include "proxy/session/gate.h"
#include "proxy/session/session.h"
#include "routing/region.h"
#include "routing/registry.h"

/* A PAUSE waiting for its gate to close. */
struct pause_request {
    struct console_wait *wait;
    struct gate_close *closing;
    int timeout_ms;
};

/* The error of a PAUSE that gave up, naming the first clients that kept it from closing. */
static void pause_error(struct pause_request *req, const struct gate_outcome *o)
{
    if (o->end == GATE_OPENED)
        pg_error_set(&req->wait->err, "57014",
                     "PAUSE was canceled by RESUME before every session was held");
    else if (o->end == GATE_CANCELED) {
        pg_error_set(&req->wait->err, "57014", "canceling statement due to user request");
        pg_error_detail(&req->wait->err, "%s", o->busy);
        pg_error_hint(&req->wait->err, "The pause is undone; every session goes on.");
    } else if (o->end == GATE_FAILED) {
        pg_error_set(&req->wait->err, "53200", "out of memory");
        pg_error_hint(&req->wait->err, "The pause is undone.");
    } else {
        pg_error_set(&req->wait->err, "57014",
                     "could not pause: %llu client%s still busy after pause_timeout (%d ms); "
                     "the pause is undone",
                     (unsigned long long)o->late, o->late == 1 ? " was" : "s were",
                     req->timeout_ms);
        pg_error_detail(&req->wait->err, "%s", o->busy);
        pg_error_hint(
            &req->wait->err,
            "Those clients must end their transactions; then PAUSE again, or raise pause_timeout.");
    }
}

/*
 * The gate closed, timed out or was canceled: PAUSE answers; a failure names
 * the sessions that would not stop.
 */
static void pause_closed(const struct gate_outcome *o, void *arg)
{
    struct pause_request *req = arg;
    struct console_wait *wait = req->wait;
    int rc = CMD_DONE;
    wait->on_cancel = NULL;
    if (o->end == GATE_HELD) {
        result_init(&wait->res, NULL, 0);
        result_set_tag(&wait->res, "PAUSE");
    } else {
        pause_error(req, o);
        rc = CMD_ERROR;
    }
    free(req);
    wait->answer(wait, rc);
}

/* Ctrl-C during PAUSE: the gate gives up; pause_closed then answers with the error. */
static void pause_cancel(void *arg)
{
    struct pause_request *req = arg;
    gate_close_cancel(req->closing);
}

/* The scope of a command: its region (which must exist), or every region. */
static bool command_scope(struct session *s, const struct admin_cmd *cmd, struct gate_scope *scope,
                          struct pg_error *err)
{
    memset(scope, 0, sizeof(*scope));
    scope->reason = HOLD_PAUSE;
    scope->all = !cmd->has_region;
    if (scope->all)
        return true;
    const struct region *r = region_set_find(&s->w->cfg->regions, cmd->region);
    if (r == NULL) {
        pg_error_set(err, "42704", "region \"%s\" does not exist", cmd->region);
        pg_error_hint(err, "SHOW REGIONS lists them.");
        return false;
    }
    snprintf(scope->region, sizeof(scope->region), "%s", r->name);
    return true;
}

/*
 * PAUSE [region]: closes the gate on every worker; answers when every session
 * in scope is held, or pause_timeout says not.
 */
static int pause_run(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct gate_scope scope;
    if (!command_scope(s, cmd, &scope, &wait->err))
        return CMD_ERROR;
    struct pause_request *req = calloc(1, sizeof(*req));
    if (req == NULL) {
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    req->wait = wait;
    req->timeout_ms = s->w->cfg->pause_timeout_ms;
    slog_info(s, "admin %s: PAUSE %s", s->user, scope.all ? "(all)" : scope.region);
    req->closing = gate_close(s->w, &scope, req->timeout_ms, NULL, pause_closed, req);
    if (req->closing == NULL) {
        free(req);
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    wait->on_cancel = pause_cancel;
    wait->hook_arg = req;
    return CMD_PENDING;
}

const struct admin_command pause_command = {.run = pause_run};

/* A RESUME on its way to every worker. */
struct scope_call {
    struct gate_scope scope;
    struct console_wait *wait;
    const char *tag;
};

/* The gate opened on every worker: RESUME's answer. */
static void scope_answer(void *arg)
{
    struct scope_call *call = arg;
    result_init(&call->wait->res, NULL, 0);
    result_set_tag(&call->wait->res, call->tag);
    call->wait->answer(call->wait, CMD_DONE);
    free(call);
}

/*
 * A call for RESUME over the command's scope, logged; NULL with the error set
 * (unknown region, out of memory).
 */
static struct scope_call *scope_call_new(struct session *s, const struct admin_cmd *cmd,
                                         struct console_wait *wait, const char *tag)
{
    struct scope_call *call = calloc(1, sizeof(*call));
    if (call == NULL || !command_scope(s, cmd, &call->scope, &wait->err)) {
        if (call == NULL)
            admin_error_oom(&wait->err);
        free(call);
        return NULL;
    }
    call->wait = wait;
    call->tag = tag;
    slog_info(s, "admin %s: %s %s", s->user, tag,
              call->scope.all ? "(all regions)" : call->scope.region);
    return call;
}

/* RESUME [region]: opens the gate on every worker; the held sessions go on. */
static int resume_run(struct session *s, const struct admin_cmd *cmd, struct console_wait *wait)
{
    struct scope_call *call = scope_call_new(s, cmd, wait, "RESUME");
    if (call == NULL)
        return CMD_ERROR;
    if (gate_open(s->w, &call->scope, scope_answer, call) != 0) {
        free(call);
        admin_error_oom(&wait->err);
        return CMD_ERROR;
    }
    return CMD_PENDING;
}

const struct admin_command resume_command = {.run = resume_run};
