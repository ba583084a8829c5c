/*
 * server_params.c — what a session's startup packet gives the server it
 * logs in to: the client's parameters without pgnear's own hints, made
 * once into the session's server_startup.  The login sends it, the pool
 * compares a kept connection's with it, min_pool_size logs in with a copy.
 */
#include "proxy/session/server_params.h"

#include <string.h>
#include <strings.h>

#include "protocol/param_set.h"
#include "protocol/pkt.h"
#include "protocol/startup.h"
#include "proxy/session/server_conn.h"
#include "proxy/session/session.h"

/* The value the server gets for the client's parameter name, NULL for none (see the header). */
static const char *server_param_sent(const struct session *s, const char *name, const char *value)
{
    if (strncasecmp(name, "pgnear.", 7) == 0 || strcmp(name, "user") == 0 ||
        strcmp(name, "database") == 0)
        return NULL;
    if (strcmp(name, "options") == 0) {
        const char *opts = s->login->server_options;
        return opts == NULL || opts[0] == '\0' ? NULL : opts;
    }
    return value;
}

int server_params_build(struct session *s)
{
    const struct startup_packet *sp = &s->login->startup;
    param_set_free(&s->server_startup);
    s->server_startup.limit = STARTUP_MAX_LEN;
    for (size_t i = 0; i < sp->nparams; i++) {
        const char *value = server_param_sent(s, sp->params[i].name, sp->params[i].value);
        /* An equal name later replaces the value, as on the server; the set holds a whole
         * startup packet: only memory fails. */
        if (value != NULL && param_set_put(&s->server_startup, sp->params[i].name, value) != 0)
            return -1;
    }
    /* Kept as long as the session lives: what a crowd of idle clients holds (performance.md). */
    param_set_shrink(&s->server_startup);
    return 0;
}

void server_params_write_startup(struct pktbuf *pb, unsigned minor, const char *user,
                                 const char *database, const struct param_set *ps)
{
    const char *name, *value;
    pkt_begin(pb, 0);
    pkt_put_u32(pb, PROTO_VERSION(3, minor));
    pkt_put_cstr(pb, "user");
    pkt_put_cstr(pb, user);
    pkt_put_cstr(pb, "database");
    pkt_put_cstr(pb, database);
    for (size_t off = 0; param_set_next(ps, &off, &name, &value);) {
        pkt_put_cstr(pb, name);
        pkt_put_cstr(pb, value);
    }
    pkt_put_u8(pb, 0);
    pkt_end(pb);
}

bool server_params_next_change(const struct session *s, const struct server_conn *sc, size_t *off,
                               const char **name, const char **value)
{
    while (param_set_next(&s->server_startup, off, name, value)) {
        const char *kept = param_set_get(&sc->startup, *name);
        if (strcmp(*name, "options") != 0 && (kept == NULL || strcmp(kept, *value) != 0))
            return true;
    }
    return false;
}
