/*
 * server_params.h — the startup parameters a session gives its server
 * (struct session's server_startup), made once from the client's startup
 * packet (server_params.c).
 */
#ifndef PGNEAR_PROXY_SERVER_PARAMS_H
#define PGNEAR_PROXY_SERVER_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

struct param_set;
struct pktbuf;
struct server_conn;
struct session;

/*
 * Fills s->server_startup from the client's startup packet (s->login's):
 * every parameter but user, database and the pgnear.* hints, options
 * without the hints in it (s->login->server_options) and left out when
 * nothing else is in it.  A set as large as the largest startup packet:
 * 0, or -1 when out of memory.
 */
int server_params_build(struct session *s);

/*
 * A StartupMessage of protocol 3.minor for user and database with the
 * parameters of ps, into pb (its sticky error when it does not fit).
 */
void server_params_write_startup(struct pktbuf *pb, unsigned minor, const char *user,
                                 const char *database, const struct param_set *ps);

/*
 * The next of the session's startup parameters, after *off (0 to begin),
 * that sc lacks: one that differs from those sc logged in with, which a
 * reset returns it to (options aside: no setting replays them).  A kept
 * connection's handover and a nearest session's second connection
 * replay them.
 */
bool server_params_next_change(const struct session *s, const struct server_conn *sc, size_t *off,
                               const char **name, const char **value);

#endif
