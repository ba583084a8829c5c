/*
 * session_log.c — a session's log lines with what they are about
 * (session_log.h): the fields filled from the session on the stack,
 * nothing allocated.
 */
#include "proxy/session/session_log.h"

#include <stdarg.h>
#include <stdio.h>

#include "proxy/session/server_conn.h"
#include "proxy/session/session_types.h"
#include "routing/region.h"

void session_log(enum log_level level, const struct session *s, const char *sqlstate,
                 const char *fmt, ...)
{
    if (!log_wants(level))
        return;
    struct log_fields f = {.client_id = s->id, .sqlstate = sqlstate};
    char host[300];
    const struct server_conn *sc = s->server_conn;
    const struct region *r = sc != NULL && sc->region != NULL ? sc->region : s->region;
    if (s->peer[0] != '\0')
        f.client_addr = s->peer;
    if (r != NULL)
        f.region = r->name;
    if (sc != NULL && sc->host != NULL) {
        snprintf(host, sizeof(host), "%s:%d", sc->host->name, sc->host->port);
        f.host = host;
    }
    va_list ap;
    va_start(ap, fmt);
    log_vat(level, &f, fmt, ap);
    va_end(ap);
}
