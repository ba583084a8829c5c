/*
 * session_need.h — what a session's server must be (struct need_spec,
 * need.h) at each stage that looks for one, and the one plan of regions
 * for a need.  The precedence, stated once:
 *
 * The role, the first that names one:
 *   1. the startup hint pgnear.target_session_attrs
 *   2. target_session_attrs of the session's [user] section
 *   3. target_session_attrs of its [database] section
 *   4. the target_session_attrs setting (any)
 * then nearest, where its transactions cannot be placed one by one
 * (auth = passthrough, no pooling, a replication or protocol-option
 * startup, max_prepared_statements = 0, not movable), is read-write.
 *
 * By stage (enum need_at), from the login's need (s->need):
 *
 *   stage        role                          position to have replayed
 *   -----------  ----------------------------  ---------------------------------
 *   LOGIN        the precedence above          pgnear.min_lsn (the login checks
 *                                              the hints' values first)
 *   ROUTE        LOGIN's; standby while the    LOGIN's
 *                login waits (min_lsn_wait)
 *                for one to replay it
 *   TRANSACTION  LOGIN's; nearest: what this   LOGIN's, the last transaction's
 *                request needs (near.h)        host, end and run (read_at), a
 *                                              bound of what it read before
 *                                              (read_lsn), its own
 *                                              last write (pgnear.fence), and
 *                                              nearest's writes: for a role
 *                                              that reads standbys only
 *   MOVE         LOGIN's; a primary for a      LOGIN's or the position its server
 *                nearest session's pin carried had (seen_lsn), the later, and
 *                                              what it read (as TRANSACTION)
 *                off a standby (move.h's
 *                move_target, txn.c)
 *
 * A host fenced as a former primary fits no need at any stage: need.c's
 * need_host_fit says so, once (claimants.h).
 */
#ifndef PGNEAR_PROXY_SESSION_SESSION_NEED_H
#define PGNEAR_PROXY_SESSION_SESSION_NEED_H

#include <stddef.h>
#include <stdint.h>

#include "routing/need.h"

struct config;
struct locality;
struct region;
struct region_subset;
struct registry_host;
struct session;

enum need_at {
    NEED_AT_LOGIN,       /* the startup packet's ask; stored as s->need */
    NEED_AT_ROUTE,       /* the login's plan of regions */
    NEED_AT_TRANSACTION, /* the next transaction's connection (transaction pooling, nearest) */
    NEED_AT_MOVE,        /* a move's target */
};

/*
 * What s needs of its server at stage at (seen_lsn: a move's, 0
 * otherwise).  LOGIN reads the login's hints, already checked; TRANSACTION
 * asks near.h what the waiting request needs, which it notes.
 */
struct need_spec session_need_for(struct session *s, enum need_at at, uint64_t seen_lsn);

/*
 * s's transaction on host at ended now: its next standby must have what
 * it read (need.h: read_at), the bound of its reads before kept.
 */
void session_note_read(struct session *s, const struct registry_host *at);

/*
 * Why s, needing nearest, cannot have each transaction placed: pgnear
 * must log in for it on a primary and follow its transactions and
 * prepared statements.  NULL when it can.
 */
const char *session_nearest_shortfall(const struct session *s);

/*
 * The regions of cfg that hold s's database, from where loc places its
 * caller (placement.h): NULL when every region does; where is the room.
 */
const struct region_subset *session_placed(const struct session *s, const struct config *cfg,
                                           const struct locality *loc, struct region_subset *where);

/*
 * The one plan: s's regions for need from loc, over those that hold its
 * database (session_placed), best first (route_plan), into plan and
 * cosines (max each); their count.  The login plans under the
 * configuration it started with (s->cfg), later stages under the worker's.
 */
size_t session_replan(const struct session *s, const struct config *cfg, const struct locality *loc,
                      const struct need_spec *need, struct region **plan, double *cosines,
                      size_t max);

/*
 * The caller's locality as its login found it (struct session_origin,
 * its city included), under the worker's configuration, for a plan now;
 * region (NULL or "": none) named first, as a region hint would.
 */
void session_locality(const struct session *s, const char *region, struct locality *loc);

#endif
