/*
 * func_catalog.h — per database, what may write although a standby runs
 * it without an error, and every name that can be checked, read from the
 * system catalogs.
 *
 * A statement that calls a function which writes is refused by a standby
 * (25006) only when nothing catches the refusal: a PL/pgSQL EXCEPTION
 * clause, a check of pg_is_in_recovery() before the write, or a write
 * made elsewhere (dblink_exec) lets the standby answer as if it worked.
 * So the `nearest` need runs a statement on a standby only when its
 * database's copy of this catalog positively knows that what it names is
 * read-only (near_text.c); everything else runs on a primary.  A copy
 * holds, by name (any schema):
 *
 *   what may write: the user-defined and extension functions (oid >=
 *   16384: not PostgreSQL's own, which never catch the refusal) that are
 *   VOLATILE, every procedure, and, through pg_depend, transitively,
 *   whatever runs one when a statement only reads: a view or a table
 *   whose rules (pg_rewrite) or row security policies reach one, an
 *   operator whose function or estimator is one, a domain whose CHECK
 *   calls one (and the domains, arrays and composite types over it), the
 *   target type of a cast WITH FUNCTION of one, a function whose
 *   argument or result type is such a type, an aggregate with such a
 *   support function.  STABLE and IMMUTABLE functions stay near:
 *   PostgreSQL itself refuses a write in them;
 *
 *   what runs without being named (a cast used implicitly or in
 *   assignment, an operator that IN, LIKE, BETWEEN, ORDER BY or a join
 *   uses by itself, an operator class's support function, a type's input
 *   or output function) when it may write: the whole database's
 *   statements then run on a primary (func_set_implicit);
 *
 *   every function, relation, operator and type name the database has:
 *   a name a statement uses where one of those is expected that the copy
 *   does not have (made since the copy was read, past pgnear) is unknown,
 *   and the copy is read again before the statement is placed
 *   (func_catalog_demand); a name still missing from a copy read after
 *   the statement came is noted absent in the copy (func_set_note_absent,
 *   carried to the copies after while they lack it too) and places a
 *   statement on a primary, where PostgreSQL gives its own error.
 *
 * Each worker keeps its own copy per database, read with pgnear's own
 * connection (server_conninfo) from the first host up that is a primary,
 * else a standby (whose catalog is its primary's, replayed), of the
 * regions the database lives in now (placement_hosts: after a move, not
 * a copy it left behind).  A copy
 * answers for FUNC_CATALOG_REFRESH_MS from the start of its read (a
 * change past pgnear to an object the copy already knows — a function
 * made VOLATILE, an overload of a known name, a view replaced — is seen
 * at most that much later: doc/nearest.md says so) and is read again
 * halfway through as it is used, so that a database in use always has
 * one; it answers no longer once any worker saw a statement that changes
 * routines, views, operators, casts, domains or types
 * (func_catalog_changed: the generation the workers share), at its start
 * and again as it ended, or a migration run ended.  While a database's
 * copy is not known — its first read under way, one after such a
 * statement, or every host failed it — callers wait for the read under
 * way (func_catalog_wait) or take every name as one that may write.
 */
#ifndef PGNEAR_PROXY_FUNC_CATALOG_H
#define PGNEAR_PROXY_FUNC_CATALOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/sql_calls.h"
#include "proxy/base/list.h"
#include "proxy/base/pgconn.h"

struct config;
struct event_base;
struct func_set;

/* How long a copy answers from the start of its read. */
#define FUNC_CATALOG_REFRESH_MS 10000
/* After a read failed on every host, how long before the next try. */
#define FUNC_CATALOG_RETRY_MS 2000

struct func_catalog {
    struct event_base *base;
    uint64_t *generation;    /* shared by the workers, bumped by func_catalog_changed (atomic) */
    struct list databases;   /* struct func_database */
    pgconn_placed_fn placed; /* where a database's copy is read */
    void *placed_arg;
};

/* An empty catalog; placed(placed_arg, ...) says where each database's copy is read. */
int func_catalog_init(struct func_catalog *c, struct event_base *base, uint64_t *generation,
                      pgconn_placed_fn placed, void *placed_arg);
void func_catalog_close(struct func_catalog *c);

struct func_database;

/*
 * The catalog's entry of a database, made the first time it is asked
 * for, kept as long as the catalog (a session keeps it: no lookup a
 * transaction); NULL: out of memory.
 */
struct func_database *func_catalog_database(struct func_catalog *c, const char *database);

/*
 * The current copy of db's catalog, or NULL while it is not known
 * (db NULL too); a read is started when there is none fresh.  cfg: the
 * hosts and the conninfo the read uses (it need only outlive the call).
 */
struct func_set *func_catalog_get(struct func_database *db, const struct config *cfg);

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

/* What a copy says of a name. */
enum func_known {
    FUNC_READS,   /* known, and what it names only reads */
    FUNC_WRITES,  /* it may write */
    FUNC_UNKNOWN, /* not in the copy: made since it was read, or no such object */
    FUNC_ABSENT,  /* not in a copy read after a statement used it (func_set_note_absent) */
};

/* What the copy fs says of a name (len bytes, as the catalogs spell it) used as use says. */
enum func_known func_set_lookup(const struct func_set *fs, enum sql_use use, const char *name,
                                size_t len);

/*
 * A name that fs said FUNC_UNKNOWN of although fs was read after the
 * statement that used it came: noted absent in fs (and the copies read
 * after it while they lack it).  False: fs holds FUNC_ABSENT_MAX such
 * names already (the name stays unknown, for a primary, and asks no read).
 */
#define FUNC_ABSENT_MAX 1024
bool func_set_note_absent(struct func_set *fs, enum sql_use use, const char *name, size_t len);

/*
 * What of the database may write without being named (a cast used
 * implicitly, an operator an index or IN uses, a type's input function),
 * in words for a log line; NULL: nothing.
 */
const char *func_set_implicit(const struct func_set *fs);

/* The number of the read that made fs (func_catalog_reads: later reads have higher ones). */
uint64_t func_set_read(const struct func_set *fs);

/* How many reads of db's catalog started so far: a read numbered above began after this call. */
uint64_t func_catalog_reads(const struct func_database *db);

/*
 * A statement uses a name that the copy does not know: a read is started
 * unless one is under way or the last failed everywhere (FUNC_CATALOG_RETRY_MS).
 * The caller waits for it with func_catalog_wait_read.
 */
void func_catalog_demand(struct func_database *db, const struct config *cfg);

/* Whether w waits for the read under way of db (w->ready called as it ends); false: none. */
bool func_catalog_wait_read(struct func_database *db, struct func_waiter *w);

/* A statement that changes routines ended: every worker's copies are read again. */
void func_catalog_changed(struct func_catalog *c);

#endif
