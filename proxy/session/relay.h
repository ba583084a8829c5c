/*
 * relay.h — an established session (ACTIVE): bytes both ways; at each
 * safe point, what was asked of the session (gate.h).
 */
#ifndef PGNEAR_PROXY_RELAY_H
#define PGNEAR_PROXY_RELAY_H

#include <stdbool.h>
#include <stdint.h>

struct session;

/*
 * ACTIVE (flow.c's row): the server sent its first ReadyForQuery; the
 * login's state is freed, and whatever either side sent early goes
 * through.
 */
void relay_start(struct session *s);

/*
 * ACTIVE for a session answered without a server connection (transaction
 * pooling): it starts between transactions, its client read for the
 * first, which takes a connection as any other would.
 */
void relay_start_detached(struct session *s);

/*
 * The relay takes over s's server connection (a new one after a move):
 * its reader and writer, and what it sent already goes to the client.
 * -1 when the session ended.
 */
int relay_attach_server(struct session *s);

struct server_reader;
/* What reads s's server side while it relays (relay_attach_server's choice). */
const struct server_reader *relay_server_reader(const struct session *s);

#endif
