/*
 * fetch.c — a server connection fetched for a session by an internal
 * session of pgnear's own (fetch.h): made to log in as the session would,
 * planned, started, and its end told to its owner.
 */
#include "proxy/session/fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"
#include "routing/region.h"
#include "routing/route.h"

/*
 * A session with no client that logs in as s would: s's user, database,
 * startup parameters and SCRAM keys (s->secret), on s's worker, named
 * "<what> of client <s's id>" in the log.  NULL with *why when it could
 * not be made.
 */
static struct session *fetch_new_session(struct session *s, const char *what, const char **why)
{
    struct worker *w = s->w;
    __atomic_add_fetch(&w->shared->clients, 1, __ATOMIC_RELAXED); /* session_free counts it out */
    struct session *m = session_new(w, -1);
    *why = "out of memory";
    if (m == NULL)
        return NULL;
    snprintf(m->peer, sizeof(m->peer), "%s of client %llu", what, (unsigned long long)s->id);
    size_t ulen = strlen(s->user) + 1, dlen = strlen(s->database) + 1;
    m->server_startup.limit = s->server_startup.limit;
    if (m->login == NULL || s->secret == NULL || (m->startup_raw = malloc(ulen + dlen)) == NULL ||
        param_set_copy(&m->server_startup, &s->server_startup) != PARAM_SET_OK) {
        session_close(m, *why);
        return NULL;
    }
    memcpy(m->startup_raw, s->user, ulen);
    memcpy(m->startup_raw + ulen, s->database, dlen);
    m->user = (const char *)m->startup_raw;
    m->database = (const char *)m->startup_raw + ulen;
    m->application_name = param_set_get(&m->server_startup, "application_name");
    m->login->verifier = s->secret->verifier;
    memcpy(m->login->warm_client_key, s->secret->client_key, SCRAM_KEY_LEN);
    *why = NULL;
    return m;
}

bool fetch_wants(const struct fetch_want *want, const struct locality *loc, const struct region *r)
{
    if (want->only)
        return r == loc->region;
    return want->avoid == NULL || strcmp(r->name, want->avoid) != 0;
}

size_t fetch_plan(const struct session *s, const struct fetch_want *want, struct locality *loc,
                  struct region **plan, double *cosines)
{
    size_t n = session_replan(s, &want->need, want->region, loc, plan, cosines);
    if (!want->only && (want->avoid == NULL || want->avoid[0] == '\0'))
        return n; /* every region of the route is wanted (each transaction's fetcher) */
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        if (fetch_wants(want, loc, plan[i])) {
            plan[kept] = plan[i];
            cosines[kept++] = cosines[i];
        }
    }
    return kept;
}

const char *fetch_start(struct session *s, const struct fetch_want *want,
                        const struct fetch_ops *ops, void *arg, struct session **fetcher)
{
    const char *why = NULL;
    struct session *m = fetch_new_session(s, ops->what, &why);
    if (m == NULL)
        return why;
    struct session_login *l = m->login;
    l->fetch = ops;
    l->fetch_arg = arg;
    m->need = want->need;
    l->plan_len = fetch_plan(s, want, &l->loc, l->plan, l->plan_cos);
    m->region = l->plan_len > 0 ? l->plan[0] : NULL;
    *fetcher = m;
    phase_begin_at(m, PHASE_CONNECT);
    return NULL;
}

void fetch_close(struct session *m, const char *why)
{
    m->login->fetch = NULL;
    session_close(m, why);
}

bool fetch_ready(struct session *m)
{
    const struct fetch_ops *ops = m->login != NULL ? m->login->fetch : NULL;
    if (ops == NULL)
        return false;
    ops->ready(m, m->login->fetch_arg);
    return true;
}

void fetch_lost(struct session *m)
{
    const struct fetch_ops *ops = m->login->fetch;
    if (ops == NULL)
        return;
    m->login->fetch = NULL;
    if (ops->lost != NULL)
        ops->lost(m, m->login->fetch_arg, m->closing_why);
}
