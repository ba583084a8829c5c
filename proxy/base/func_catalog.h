/*
 * func_catalog.h — per database, the routines that may write although a
 * standby runs them without an error, read from pg_proc.
 *
 * A statement that calls a function which writes is refused by a standby
 * (25006) only when nothing catches the refusal: a PL/pgSQL EXCEPTION
 * clause, a check of pg_is_in_recovery() before the write, or a write
 * made elsewhere (dblink_exec) lets the standby answer as if it worked.
 * So the `nearest` need runs a statement that calls such a routine on a
 * primary (near.h), and this catalog says which routines those are: the
 * user-defined and extension functions (oid >= 16384: not PostgreSQL's
 * own, which never catch the refusal) that are VOLATILE, and every
 * procedure.  STABLE and IMMUTABLE functions stay near: PostgreSQL
 * itself refuses a write in them.  Names only, in any schema.
 *
 * Each worker keeps its own copy per database, read with pgnear's own
 * connection (server_conninfo) from the first host up that is a primary,
 * else a standby (whose catalog is its primary's, replayed).  A copy
 * answers for FUNC_CATALOG_REFRESH_MS from the start of its read (DDL
 * run past pgnear is seen at most that much later) and is read again
 * halfway through as it is used, so that a database in use always has
 * one; it answers no longer once any worker saw a statement that changes
 * routines (func_catalog_changed: the generation the workers share), at
 * its start and again as it ended, or a migration run ended.  While a database's copy is not known
 * — its first read under way, one after such a statement, or every host
 * failed it — callers wait for the read under way (func_catalog_wait) or
 * take every call as one that may write.
 */
#ifndef PGNEAR_PROXY_FUNC_CATALOG_H
#define PGNEAR_PROXY_FUNC_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/base/list.h"

struct config;
struct event_base;
struct func_set;

/* How long a copy answers from the start of its read. */
#define FUNC_CATALOG_REFRESH_MS 10000
/* After a read failed on every host, how long before the next try. */
#define FUNC_CATALOG_RETRY_MS 2000

struct func_catalog {
    struct event_base *base;
    uint64_t *generation;  /* shared by the workers, bumped by func_catalog_changed (atomic) */
    struct list databases; /* struct func_database */
};

int func_catalog_init(struct func_catalog *c, struct event_base *base, uint64_t *generation);
void func_catalog_close(struct func_catalog *c);

struct func_database;

/*
 * The catalog's entry of a database, made the first time it is asked
 * for, kept as long as the catalog (a session keeps it: no lookup a
 * transaction); NULL: out of memory.
 */
struct func_database *func_catalog_database(struct func_catalog *c, const char *database);

/*
 * The routines of db that may write, or NULL while they are not known
 * (db NULL too); a read is started when there is none fresh.  cfg: the
 * hosts and the conninfo the read uses (it need only outlive the call).
 */
const struct func_set *func_catalog_get(struct func_database *db, const struct config *cfg);

/*
 * A session that waits for its database's first copy (or the one read
 * after a change) rather than send its statements to a primary meanwhile.
 */
struct func_waiter {
    struct list_node node;
    struct list *on;                         /* the database's waiters; NULL: not waiting */
    void (*ready)(struct func_waiter *self); /* the read ended, well or not */
    void *owner;                             /* for ready */
};

/*
 * Whether w should wait: no copy of db's routines answers, and a
 * read is under way (started here if none is): w->ready is then called
 * as it ends, at most after the read's timeout on every host.  False:
 * known, or not known for now (the reads failed): go on without.
 */
bool func_catalog_wait(struct func_database *db, const struct config *cfg, struct func_waiter *w);

/* w waits no more (its session ended); nothing when it does not wait. */
void func_waiter_cancel(struct func_waiter *w);

/* Whether a routine named name (len bytes, as pg_proc spells it) may write. */
bool func_set_writes(const struct func_set *fs, const char *name, size_t len);

/* A statement that changes routines ended: every worker's copies are read again. */
void func_catalog_changed(struct func_catalog *c);

#endif
