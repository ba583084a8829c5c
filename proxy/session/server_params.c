/*
 * server_params.c — what a session's startup packet gives the server it
 * logs in to: the client's parameters without pgnear's own hints.  The
 * login sends them, the pool compares a kept connection's with them.
 */
#include "proxy/session/server_params.h"

#include <string.h>
#include <strings.h>

#include "proxy/session/session.h"

/*
 * The startup parameter name as the server gets it from s (user and
 * database aside): the client's, without pgnear.* hints, options without
 * the hints in it; NULL when s sends none.
 */
const char *server_param_sent(const struct session *s, const char *name, const char *value)
{
    if (strncasecmp(name, "pgnear.", 7) == 0)
        return NULL;
    if (strcmp(name, "options") == 0) {
        const char *opts = s->login->server_options;
        return opts == NULL || opts[0] == '\0' ? NULL : opts;
    }
    return value;
}

static bool server_param_is_identity(const char *name)
{
    return strcmp(name, "user") == 0 || strcmp(name, "database") == 0;
}

const char *server_param(const struct session *s, const char *name)
{
    const struct startup_packet *sp = &s->login->startup;
    for (size_t i = 0; i < sp->nparams; i++)
        if (strcmp(sp->params[i].name, name) == 0)
            return server_param_sent(s, name, sp->params[i].value);
    return NULL;
}

size_t server_params(const struct session *s, const char **names, const char **values, size_t max)
{
    const struct startup_packet *sp = &s->login->startup;
    size_t n = 0;
    for (size_t i = 0; i < sp->nparams && n < max; i++) {
        const char *name = sp->params[i].name;
        const char *value = server_param_sent(s, name, sp->params[i].value);
        if (value == NULL || server_param_is_identity(name))
            continue;
        names[n] = name;
        values[n++] = value;
    }
    return n;
}
