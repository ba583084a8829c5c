/*
 * session_log.c — a session's log lines with what they are about
 * (session_log.h): the fields filled from the session on the stack,
 * nothing allocated.
 */
#include "proxy/session/session_log.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>

#include "proxy/session/server_conn.h"
#include "proxy/session/session_types.h"
#include "routing/region.h"

struct peer_text session_peer(const struct session *s)
{
    struct peer_text p = {""};
    char host[INET6_ADDRSTRLEN] = "?";
    if (s->rare->peer_label != NULL) {
        snprintf(p.text, sizeof(p.text), "%s", s->rare->peer_label);
    } else if (s->addr.sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &s->addr.in.sin_addr, host, sizeof(host));
        snprintf(p.text, sizeof(p.text), "%s:%d", host, ntohs(s->addr.in.sin_port));
    } else if (s->addr.sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &s->addr.in6.sin6_addr, host, sizeof(host));
        snprintf(p.text, sizeof(p.text), "[%s]:%d", host, ntohs(s->addr.in6.sin6_port));
    } else if (s->addr.sa.sa_family == AF_UNIX) {
        snprintf(p.text, sizeof(p.text), "unix socket");
    }
    return p;
}

void session_log(enum log_level level, const struct session *s, const char *sqlstate,
                 const char *fmt, ...)
{
    if (!log_wants(level))
        return;
    struct log_fields f = {.client_id = s->id, .sqlstate = sqlstate};
    char host[300];
    const struct server_conn *sc = s->server_conn;
    const struct region *r = sc != NULL && sc->region != NULL ? sc->region : s->region;
    struct peer_text peer = session_peer(s);
    if (peer.text[0] != '\0')
        f.client_addr = peer.text;
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
