/*
 * pool_take.h — an idle server connection found for a client: one that
 * logged in with exactly its startup parameters first, else (under
 * session pooling) one whose parameters its SETs can change.
 */
#ifndef PGNEAR_PROXY_POOL_TAKE_H
#define PGNEAR_PROXY_POOL_TAKE_H

#include <stdbool.h>

struct region;
struct region_host;
struct server_conn;
struct session;

/*
 * An idle connection to host h of region r for s's database and user
 * that can take s's startup parameters, linked to s; NULL when none.
 * ready: only one that needs nothing said before it serves s (transaction
 * pooling's direct take, fetch.h): logged in with exactly s's startup
 * parameters, and not due for server_check_query.
 */
struct server_conn *pool_take(struct session *s, struct region *r, struct region_host *h,
                              bool ready);

/*
 * The idle connection pool_take would take for s, without taking it;
 * exact: one logged in with exactly s's startup parameters only.
 */
struct server_conn *pool_find(struct session *s, const struct region *r,
                              const struct region_host *h, bool exact);

/*
 * A connection of s's pool at host h of r, idle or serving another client,
 * whose login reported what a login of s's would be told now (its
 * ParameterStatus values): s can be answered from it without taking it
 * (login_greet.h).  NULL when none.
 */
struct server_conn *pool_find_greeter(struct session *s, const struct region *r,
                                      const struct region_host *h);

/* How s's pool is pooled ([database]/[user] pool_mode, else pool_mode). */
int pool_mode_of(const struct session *s);

#endif
