/*
 * login_throttle.c — the auth throttle at a session's login.
 */
#include "proxy/login/login_throttle.h"

#include <inttypes.h>
#include <stdio.h>

#include <event2/event.h>

#include "protocol/clock.h"
#include "proxy/base/auth_throttle.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/session/session_log.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/phase.h"

static void login_throttle_params(const struct config *cfg, struct throttle_params *p)
{
    p->threshold = cfg->auth_failure_threshold;
    p->delay_ms = cfg->auth_failure_delay_ms;
    p->max_delay_ms = cfg->auth_failure_max_delay_ms;
    /* Waiting past the login timeout would only end in 57014: refuse at once instead. */
    p->horizon_ms = p->max_delay_ms;
    if (cfg->client_login_timeout_ms > 0 && cfg->client_login_timeout_ms < p->horizon_ms)
        p->horizon_ms = cfg->client_login_timeout_ms;
}

/*
 * A guesser opens connections as fast as it likes: at most
 * THROTTLE_LOG_BURST lines a second, for all workers together, say so,
 * and the next line after a quiet spell counts what was left out.
 */
#define THROTTLE_LOG_BURST 10

/* Whether a line may be logged now; if so, note says how many were left out before it. */
static bool login_throttle_may_log(struct worker *w, char *note, size_t cap)
{
    uint64_t left_out;
    if (!log_limit_allow(&w->shared->throttle_log, THROTTLE_LOG_BURST, 1000, &left_out))
        return false;
    note[0] = '\0';
    if (left_out > 0)
        snprintf(note, cap, " (%" PRIu64 " similar lines left out)", left_out);
    return true;
}

static void login_throttle_log(struct session *s, const char *what, const struct throttle_state *st)
{
    char note[96];
    if (!login_throttle_may_log(s->w, note, sizeof(note)))
        return;
    slog_info(s,
              "login of user \"%s\" from %s %s %" PRId64 " ms: %" PRIu32
              " failed logins in a row from this address%s",
              s->user, session_peer(s).text, what, st->wait_ms, st->failures, note);
}

static void login_throttle_wake(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    (void)fd;
    (void)what;
    phase_enter(s, s->login->throttle.next);
}

/* Holds the login for st->wait_ms on a timer of its own (the login timeout keeps running). */
static void login_throttle_hold(struct session *s, enum session_phase next,
                                const struct throttle_state *st)
{
    struct timeval tv = {(time_t)(st->wait_ms / 1000), (suseconds_t)(st->wait_ms % 1000) * 1000};
    stat_inc(&s->w->stats.logins_delayed);
    stat_add(&s->w->stats.login_delay_ms, (uint64_t)st->wait_ms);
    login_throttle_log(s, "held for", st);
    s->login->throttle.next = next;
    if (s->login->throttle.timer == NULL)
        s->login->throttle.timer = evtimer_new(s->w->base, login_throttle_wake, s);
    if (s->login->throttle.timer == NULL || evtimer_add(s->login->throttle.timer, &tv) != 0) {
        session_close(s, "out of memory");
        return;
    }
}

void login_throttle_gate(struct session *s, enum session_phase next)
{
    struct throttle_params p;
    struct throttle_state st;
    struct auth_throttle *t = &s->w->shared->auth_throttle;
    login_throttle_params(s->cfg, &p);
    if (p.threshold <= 0) {
        phase_enter(s, next);
        return;
    }
    auth_throttle_key(t, (const struct sockaddr *)&s->addr, s->user, &s->login->throttle.key);
    s->login->throttle.keyed = true;
    switch (auth_throttle_admit(t, &p, &s->login->throttle.key, monotonic_ms(), &st)) {
    case THROTTLE_GO:
        phase_enter(s, next);
        return;
    case THROTTLE_WAIT:
        login_throttle_hold(s, next, &st);
        return;
    case THROTTLE_REFUSE:
        break;
    }
    char msg[160];
    stat_inc(&s->w->stats.logins_throttle_refused);
    login_throttle_log(s, "refused: its turn would come after", &st);
    snprintf(msg, sizeof(msg), "too many failed login attempts for user \"%s\" from this address",
             s->user);
    struct pg_error err;
    pg_error_set(&err, "53300", "%s", msg);
    pg_error_hint(&err, "Wait before trying again.");
    session_fail(s, &err);
}

void login_throttle_failed(struct session *s)
{
    struct throttle_params p;
    bool evicted;
    if (s->login == NULL || !s->login->throttle.keyed)
        return;
    login_throttle_params(s->cfg, &p);
    uint32_t n = auth_throttle_failed(&s->w->shared->auth_throttle, &p, &s->login->throttle.key,
                                      monotonic_ms(), &evicted);
    if (evicted)
        stat_inc(&s->w->stats.auth_throttle_evictions);
    char note[96];
    if (n > 0 && n == (uint32_t)p.threshold && login_throttle_may_log(s->w, note, sizeof(note)))
        slog_info(s,
                  "%" PRIu32 " failed logins in a row for user \"%s\" from %s: its next attempts "
                  "wait, from %d ms%s",
                  n, s->user, session_peer(s).text, p.delay_ms, note);
}

void login_throttle_succeeded(struct session *s)
{
    if (s->login == NULL || !s->login->throttle.keyed)
        return;
    /* Once is enough: under scram both the proof and the server's ReadyForQuery say so. */
    s->login->throttle.keyed = false;
    auth_throttle_succeeded(&s->w->shared->auth_throttle, &s->login->throttle.key);
}

void login_throttle_release(struct session *s)
{
    if (s->login == NULL || s->login->throttle.timer == NULL)
        return;
    event_free(s->login->throttle.timer);
    s->login->throttle.timer = NULL;
}
