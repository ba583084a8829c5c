/*
 * pool_warm.h — min_pool_size: server connections opened in the
 * background, so that the first client of a distant region after a quiet
 * spell pays no handshake with it.
 *
 * Under auth = scram pgnear logs in to a server with the ClientKey a
 * client's SCRAM proof revealed; it has no other secret.  So a warm pool
 * exists only for a (region, database, user) whose client logged in since
 * pgnear started: the worker that served it keeps, per such pair, the
 * startup parameters as sent to the server, the ClientKey and the user's
 * verifier — in memory only, at most POOL_WARM_MAX pairs per worker, each
 * dropped (its key wiped) once no client of the pair has come for
 * server_lifetime, or when a login with it fails.  Nothing of it is ever
 * written anywhere.
 *
 * Each second (pool.c's sweep) a pair whose pool on this worker holds
 * fewer connections than its share of min_pool_size gets one more,
 * opened by an internal session without a client: it goes through the
 * same dial and login as a client's, and its connection is kept idle
 * instead of relayed.  A failed attempt waits POOL_WARM_RETRY_MS before
 * the next.
 */
#ifndef PGNEAR_PROXY_POOL_WARM_H
#define PGNEAR_PROXY_POOL_WARM_H

#include <stdbool.h>
#include <stdint.h>

struct server_conn;
struct session;
struct worker;

#define POOL_WARM_MAX      32
#define POOL_WARM_RETRY_MS 5000

/* A client of a pooled pair logged in (s->login still there): its pair is kept warm. */
void pool_warm_note(struct session *s);

/* The sweep: drops stale pairs, starts a connection for each pair short of its share. */
void pool_warm_tick(struct worker *w);

/* Whether sc is one of its pair's share of min_pool_size: server_idle_timeout spares it. */
bool pool_warm_keeps(const struct worker *w, const struct server_conn *sc);

/* Whether pairs are kept (the sweep must keep running). */
bool pool_warm_active(const struct worker *w);

/* The ClientKey a warming session or a mover (move.h) logs in with; NULL for a client's session. */
const uint8_t *pool_warm_client_key(const struct session *s);

/* A warming session's login failed for its credentials: the pair is dropped. */
void pool_warm_forget(struct session *s);

/* Wipes and frees the worker's pairs. */
void pool_warm_free(struct worker *w);

/* The warm-up's life on a worker: freed with it. */
extern const struct worker_part pool_warm_part;

#endif
