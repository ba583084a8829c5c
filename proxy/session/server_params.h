/*
 * server_params.h — the startup parameters a session gives its server
 * (server_params.c).
 */
#ifndef PGNEAR_PROXY_SERVER_PARAMS_H
#define PGNEAR_PROXY_SERVER_PARAMS_H

#include <stddef.h>

struct session;

/*
 * The startup parameter name as the server gets it from s (user and
 * database aside): the client's, without pgnear.* hints, options without
 * the hints in it; NULL when s sends none.
 */
const char *server_param_sent(const struct session *s, const char *name, const char *value);

/*
 * The startup parameters s gives the server (user and database aside,
 * pgnear.* hints removed): at most max, into names and values; returns
 * how many.
 */
size_t server_params(const struct session *s, const char **names, const char **values, size_t max);

/* The value of one of them; NULL when s gives none. */
const char *server_param(const struct session *s, const char *name);

#endif
