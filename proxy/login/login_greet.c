/*
 * login_greet.c — a transaction-pooled login answered from the pool.
 */
#include "proxy/login/login_greet.h"

#include "protocol/param_set.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/login/login_throttle.h"
#include "proxy/login/server_handover.h"
#include "proxy/pool/pool.h"
#include "proxy/pool/pool_warm.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/cancel.h"
#include "proxy/session/phase.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"
#include "routing/need.h"
#include "routing/region.h"

/* Whether s's session would start between transactions, with nothing a login must do for it. */
static bool login_greet_fits(struct session *s, const struct region_host *h)
{
    const struct session_login *l = s->login;
    return l->pool_share && !l->warming && !session_login_internal(l) && !l->for_console &&
           pool_mode_of(s) == POOL_TRANSACTION && s->need.role != NEED_NEAREST &&
           !need_has_position(&s->need) && host_is_up(h) && session_may_log_in_elsewhere(s);
}

bool login_greet(struct session *s, struct region *r, struct region_host *h)
{
    if (!login_greet_fits(s, h))
        return false;
    struct server_conn *from = pool_find_greeter(s, r, h);
    if (from == NULL)
        return false;
    if (cancel_register_detached(s, from->pid) != 0) {
        session_fail_msg(s, "53200", "out of memory registering the cancel key");
        return true;
    }
    const struct param_set none = {0};
    if (server_greet_client(s, &from->reported, &none) != 0)
        return true;
    slog_info(s,
              "login answered as server connection %llu to %s:%d logged in (transaction "
              "pooling: no server connection until its first transaction)",
              (unsigned long long)from->id, h->name, h->port);
    stat_inc(&s->w->stats.logins_without_server);
    pool_unreserve(s); /* a slot a wait for the pool reserved for it (pool_wait.h) */
    login_throttle_succeeded(s);
    pool_warm_note(s);
    phase_enter(s, PHASE_ACTIVE);
    return true;
}
