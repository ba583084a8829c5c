/*
 * login_limits.c — a client session counted against the client limits of
 * its user and database, or refused.
 */
#include "proxy/login/login_limits.h"

#include "protocol/pg_error.h"
#include "proxy/base/client_limits.h"
#include "proxy/base/config.h"
#include "proxy/runtime/shared.h"
#include "proxy/runtime/worker.h"
#include "proxy/session/session.h"

/* The 53300 of a full user or database, in PostgreSQL's words for its own CONNECTION LIMIT. */
static void login_limits_refuse(struct session *s, enum client_admit rc, int limit, int now)
{
    bool by_user = rc == CLIENT_USER_FULL;
    struct pg_error err;
    pg_error_set(&err, "53300", "too many client connections for %s \"%s\"",
                 by_user ? "user" : "database", by_user ? s->user : s->database);
    pg_error_detail(&err, "%s is %d; the %s has %d client sessions through pgnear.",
                    by_user ? "max_user_client_connections" : "max_db_client_connections", limit,
                    by_user ? "user" : "database", now);
    pg_error_hint(&err, "Try again when a session of the %s has ended.",
                  by_user ? "user" : "database");
    session_fail(s, &err);
}

bool login_limits_admit(struct session *s)
{
    if (s->client_counted)
        return true;
    const struct config *cfg = s->cfg;
    int max_user =
        config_section_value(cfg, SECTION_MAX_USER_CLIENT_CONNECTIONS, s->user, s->database);
    int max_db = config_section_value(cfg, SECTION_MAX_DB_CLIENT_CONNECTIONS, s->user, s->database);
    int now = 0;
    enum client_admit rc = client_limits_enter(&s->w->shared->client_limits, s->user, s->database,
                                               max_user, max_db, &now);
    switch (rc) {
    case CLIENT_ADMITTED:
        s->client_counted = true;
        return true;
    case CLIENT_NO_MEMORY:
        session_fail_msg(s, "53200", "out of memory");
        return false;
    default:
        login_limits_refuse(s, rc, rc == CLIENT_USER_FULL ? max_user : max_db, now);
        return false;
    }
}
