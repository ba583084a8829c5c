/*
 * func_catalog.c — per database, the routines that may write
 * (func_catalog.h).
 */
#include "proxy/base/func_catalog.h"

#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "protocol/clock.h"
#include "protocol/fnv.h"
#include "protocol/pgasync.h"
#include "proxy/base/config.h"
#include "proxy/base/log.h"
#include "proxy/base/pgconn.h"
#include "routing/region.h"

/*
 * One row per name: its kind, its name.  Lower case, what may write
 * ('f' functions, 'r' relations, 'o' operators, 't' types) and 'i' what
 * may write unnamed (its words); upper case, every name of that kind.
 *
 * PostgreSQL's own objects have oids below FirstNormalObjectId (16384);
 * extensions' and users' above.  A procedure may be called only by CALL,
 * which runs on a primary anyway: they are listed for a name a function
 * shares with one.  From those functions, writer follows pg_depend to
 * what runs them as a statement reads (the reached object: a rule's or a
 * policy's relation, a domain constraint's domain, a cast's target type,
 * a composite type's row type, or the dependent function, operator or
 * type itself); a table's defaults, triggers, checks and indexes run only
 * as it is written, which a standby refuses, and are not followed.
 */
static const char FUNC_CATALOG_SQL[] =
    "WITH RECURSIVE writer(classid, objid) AS ("
    " SELECT 'pg_proc'::regclass::oid, p.oid FROM pg_catalog.pg_proc p"
    "  WHERE p.oid >= 16384 AND (p.provolatile = 'v' OR p.prokind = 'p')"
    " UNION"
    " SELECT r.classid, r.objid FROM writer w"
    "  JOIN pg_catalog.pg_depend d ON d.refclassid = w.classid AND d.refobjid = w.objid"
    "  CROSS JOIN LATERAL ("
    "   SELECT 'pg_class'::regclass::oid, x.ev_class FROM pg_catalog.pg_rewrite x"
    "    WHERE d.classid = 'pg_rewrite'::regclass AND x.oid = d.objid"
    "   UNION ALL SELECT 'pg_class'::regclass::oid, x.polrelid FROM pg_catalog.pg_policy x"
    "    WHERE d.classid = 'pg_policy'::regclass AND x.oid = d.objid"
    "   UNION ALL SELECT 'pg_type'::regclass::oid, x.contypid FROM pg_catalog.pg_constraint x"
    "    WHERE d.classid = 'pg_constraint'::regclass AND x.oid = d.objid AND x.contypid <> 0"
    "   UNION ALL SELECT 'pg_type'::regclass::oid, x.casttarget FROM pg_catalog.pg_cast x"
    "    WHERE d.classid = 'pg_cast'::regclass AND x.oid = d.objid"
    "   UNION ALL SELECT 'pg_type'::regclass::oid, x.reltype FROM pg_catalog.pg_class x"
    "    WHERE d.classid = 'pg_class'::regclass AND x.oid = d.objid AND x.relkind = 'c'"
    "   UNION ALL SELECT d.classid, d.objid WHERE d.classid IN"
    "    ('pg_proc'::regclass, 'pg_operator'::regclass, 'pg_type'::regclass)"
    "  ) r(classid, objid)"
    "), wf AS (SELECT objid FROM writer WHERE classid = 'pg_proc'::regclass)"
    " SELECT DISTINCT k, name FROM ("
    " SELECT 'f' AS k, p.proname::text AS name FROM wf JOIN pg_catalog.pg_proc p ON p.oid = "
    "wf.objid"
    " UNION ALL SELECT 'r', c.relname::text FROM writer w JOIN pg_catalog.pg_class c"
    "  ON w.classid = 'pg_class'::regclass AND c.oid = w.objid"
    " UNION ALL SELECT 'o', o.oprname::text FROM writer w JOIN pg_catalog.pg_operator o"
    "  ON w.classid = 'pg_operator'::regclass AND o.oid = w.objid"
    " UNION ALL SELECT 't', t.typname::text FROM writer w JOIN pg_catalog.pg_type t"
    "  ON w.classid = 'pg_type'::regclass AND t.oid = w.objid"
    " UNION ALL SELECT 'i', 'the cast from ' || c.castsource::regtype || ' to ' ||"
    "  c.casttarget::regtype FROM pg_catalog.pg_cast c"
    "  WHERE c.castcontext <> 'e' AND c.castfunc IN (SELECT objid FROM wf)"
    " UNION ALL SELECT 'i', 'the operator ' || o.oprname FROM pg_catalog.pg_operator o"
    "  JOIN writer w ON w.classid = 'pg_operator'::regclass AND w.objid = o.oid"
    "  WHERE o.oprname IN ('=', '<>', '<', '>', '<=', '>=', '~~', '~~*', '!~~', '!~~*', '~', '!~')"
    "  OR EXISTS (SELECT FROM pg_catalog.pg_amop a WHERE a.amopopr = o.oid)"
    " UNION ALL SELECT 'i', 'the operator class support function ' || a.amproc::regproc"
    "  FROM pg_catalog.pg_amproc a WHERE a.amproc IN (SELECT objid FROM wf)"
    " UNION ALL SELECT 'i', 'an input or output function of type ' || t.oid::regtype"
    "  FROM pg_catalog.pg_type t WHERE t.oid >= 16384 AND ARRAY[t.typinput, t.typoutput,"
    "  t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typanalyze,"
    "  t.typsubscript]::oid[] && ARRAY(SELECT objid FROM wf)"
    " UNION ALL SELECT 'F', proname::text FROM pg_catalog.pg_proc"
    " UNION ALL SELECT 'R', relname::text FROM pg_catalog.pg_class"
    "  WHERE relkind IN ('r', 'v', 'm', 'p', 'f', 'S')"
    " UNION ALL SELECT 'O', oprname::text FROM pg_catalog.pg_operator"
    " UNION ALL SELECT 'T', typname::text FROM pg_catalog.pg_type"
    ") names";

/*
 * The keys, each a kind byte and a name, in an open-addressed table of a
 * power-of-two size, with room for FUNC_ABSENT_MAX absent names (kind
 * '?', then the use's own kind byte).
 */
struct func_set {
    size_t cap, count, absent;
    char **keys;
    char *implicit; /* the first 'i' row's words; NULL: none */
    uint64_t read;  /* the read that made it */
};

struct func_database {
    struct list_node node;
    struct func_catalog *catalog;
    char *name;
    struct func_set *set; /* the last copy read; NULL: none */
    uint64_t generation;  /* the workers' generation when its read started */
    uint64_t reads;       /* reads started so far (the one under way's number) */
    int64_t read_at_ms;   /* when its read started */
    int64_t retry_at_ms;  /* after a read failed everywhere, no other before */
    bool warned;          /* the failure was logged: the next success is too */
    struct list waiters;  /* struct func_waiter, told as the read under way ends */
    /* A read under way: its connection, the hosts' conninfo in order, the one it is at. */
    struct pgasync *q;
    uint64_t q_generation;
    int64_t q_started_ms;
    int timeout_ms;
    char **conninfo;
    size_t nconninfo, at;
};

/* An empty catalog of no database yet, its reads on base, their hosts placed's. */
int func_catalog_init(struct func_catalog *c, struct event_base *base, uint64_t *generation,
                      pgconn_placed_fn placed, void *placed_arg)
{
    c->base = base;
    c->generation = generation;
    c->placed = placed;
    c->placed_arg = placed_arg;
    list_init(&c->databases);
    return 0;
}

/* A copy and its keys freed; NULL: nothing. */
static void func_set_free(struct func_set *fs)
{
    if (fs == NULL)
        return;
    for (size_t i = 0; i < fs->cap; i++)
        free(fs->keys[i]);
    free(fs->keys);
    free(fs->implicit);
    free(fs);
}

/*
 * Tells each waiter that the read ended, those on the list now only: one
 * that waits again (another read under way) goes behind them.
 */
static void func_database_wake(struct func_database *db)
{
    for (size_t n = db->waiters.count; n > 0 && db->waiters.count > 0; n--) {
        struct func_waiter *w = list_entry(db->waiters.head.next, struct func_waiter, node);
        list_remove(&db->waiters, &w->node);
        w->on = NULL;
        w->ready(w);
    }
}

/* The read under way (if any) abandoned, with the conninfo of its hosts. */
static void func_database_end_read(struct func_database *db)
{
    if (db->q != NULL)
        pgasync_abandon(db->q);
    db->q = NULL;
    for (size_t i = 0; i < db->nconninfo; i++)
        free(db->conninfo[i]);
    free(db->conninfo);
    db->conninfo = NULL;
    db->nconninfo = db->at = 0;
}

/* Every database's entry freed, with its copy and its read. */
void func_catalog_close(struct func_catalog *c)
{
    while (c->databases.head.next != &c->databases.head) {
        struct func_database *db = list_entry(c->databases.head.next, struct func_database, node);
        list_remove(&c->databases, &db->node);
        /* Its waiters are sessions of this worker, which ended before (their nodes are theirs). */
        func_database_end_read(db);
        func_set_free(db->set);
        free(db->name);
        free(db);
    }
}

/* The workers' generation bumped: every copy read before stops answering. */
void func_catalog_changed(struct func_catalog *c)
{
    __atomic_add_fetch(c->generation, 1, __ATOMIC_ACQ_REL);
}

/* The slot of key (len bytes) in fs: where it is, or the empty one where it would go. */
static size_t func_slot(const struct func_set *fs, const char *key, size_t len)
{
    size_t i = (size_t)fnv1a(FNV1A_BASIS, key, len) & (fs->cap - 1);
    while (fs->keys[i] != NULL && (strncmp(fs->keys[i], key, len) != 0 || fs->keys[i][len] != '\0'))
        i = (i + 1) & (fs->cap - 1);
    return i;
}

#define FUNC_KEY_MAX 72 /* room for a kind (two bytes at most), a name of 63, its NUL */
/* The key of kind and name (len bytes) into key (FUNC_KEY_MAX bytes); its length, 0: too long. */
static size_t func_key(char *key, const char *kind, const char *name, size_t len)
{
    size_t k = strlen(kind);
    if (k + len + 1 > FUNC_KEY_MAX)
        return 0;
    memcpy(key, kind, k);
    memcpy(key + k, name, len);
    key[k + len] = '\0';
    return k + len;
}

/* Whether fs holds the key of kind and name (len bytes). */
static bool func_set_has(const struct func_set *fs, const char *kind, const char *name, size_t len)
{
    char key[FUNC_KEY_MAX];
    size_t n = func_key(key, kind, name, len);
    return n > 0 && fs->keys[func_slot(fs, key, n)] != NULL;
}

/* Adds key (len bytes); false: out of memory.  The table has room (func_set_of sized it). */
static bool func_set_add(struct func_set *fs, const char *key, size_t len)
{
    size_t i = func_slot(fs, key, len);
    if (fs->keys[i] != NULL)
        return true;
    if ((fs->keys[i] = strndup(key, len)) == NULL)
        return false;
    fs->count++;
    return true;
}

/* The kinds, known and writing, that a use of a name is looked up in. */
static const char *const use_known[] = {"F", "R", "O", "T", "", ""};
static const char *const use_absent[] = {"?F", "?R", "?O", "?T", "", ""};

/* The lookup as written without the absent names. */
static enum func_known func_lookup_known(const struct func_set *fs, enum sql_use use,
                                         const char *name, size_t len)
{
    switch (use) {
    case SQL_USE_CALL: /* a function, or a type called as a cast (tag('x')) */
        if (func_set_has(fs, "f", name, len) || func_set_has(fs, "t", name, len))
            return FUNC_WRITES;
        /* INSERT INTO t(a, b): a relation's column list, not a call */
        return func_set_has(fs, "F", name, len) || func_set_has(fs, "T", name, len) ||
                       func_set_has(fs, "R", name, len)
                   ? FUNC_READS
                   : FUNC_UNKNOWN;
    case SQL_USE_RELATION:
    case SQL_USE_OPERATOR:
    case SQL_USE_TYPE: {
        const char *writes = use == SQL_USE_RELATION ? "r" : use == SQL_USE_OPERATOR ? "o" : "t";
        if (func_set_has(fs, writes, name, len))
            return FUNC_WRITES;
        return func_set_has(fs, use_known[use], name, len) ? FUNC_READS : FUNC_UNKNOWN;
    }
    case SQL_USE_KEYWORD: /* CUBE (...) or a function cube(...): the function is checked */
        return func_set_has(fs, "f", name, len) ? FUNC_WRITES : FUNC_READS;
    case SQL_USE_NAME:
    default:
        /* a name in any place: a view or a type that may write, as a column's, an alias's */
        return func_set_has(fs, "r", name, len) || func_set_has(fs, "t", name, len) ? FUNC_WRITES
                                                                                    : FUNC_READS;
    }
}

/* The lookup as written, then an unknown name's absent mark (func_set_note_absent). */
enum func_known func_set_lookup(const struct func_set *fs, enum sql_use use, const char *name,
                                size_t len)
{
    enum func_known k = func_lookup_known(fs, use, name, len);
    if (k == FUNC_UNKNOWN && func_set_has(fs, use_absent[use], name, len))
        return FUNC_ABSENT;
    return k;
}

/* name marked absent in fs under its use's kind; false: no room or a use not checked. */
bool func_set_note_absent(struct func_set *fs, enum sql_use use, const char *name, size_t len)
{
    char key[FUNC_KEY_MAX];
    size_t n = func_key(key, use_absent[use], name, len);
    if (n == 0 || use >= SQL_USE_NAME || fs->absent >= FUNC_ABSENT_MAX)
        return false;
    if (fs->keys[func_slot(fs, key, n)] != NULL)
        return true;
    if (!func_set_add(fs, key, n))
        return false;
    fs->absent++;
    return true;
}

/* What may write without being named, in words; NULL: nothing. */
const char *func_set_implicit(const struct func_set *fs)
{
    return fs->implicit;
}

/* The number of the read that made fs. */
uint64_t func_set_read(const struct func_set *fs)
{
    return fs->read;
}

/* How many reads of db started so far. */
uint64_t func_catalog_reads(const struct func_database *db)
{
    return db->reads;
}

/* The absent names of old that fs does not know either, carried to fs (as room allows). */
static void func_set_carry_absent(struct func_set *fs, const struct func_set *old)
{
    for (size_t i = 0; old != NULL && i < old->cap; i++) {
        const char *key = old->keys[i];
        if (key == NULL || key[0] != '?')
            continue;
        for (int use = SQL_USE_CALL; use < SQL_USE_NAME; use++)
            if (key[1] == use_known[use][0] &&
                func_lookup_known(fs, (enum sql_use)use, key + 2, strlen(key + 2)) == FUNC_UNKNOWN)
                (void)func_set_note_absent(fs, (enum sql_use)use, key + 2, strlen(key + 2));
    }
}

/* A copy of the rows of res (kind, name); NULL: out of memory. */
static struct func_set *func_set_of(const PGresult *res)
{
    struct func_set *fs = calloc(1, sizeof(*fs));
    int rows = PQntuples(res);
    if (fs == NULL)
        return NULL;
    fs->cap = 16;
    while (fs->cap < 2 * ((size_t)rows + FUNC_ABSENT_MAX) + 1)
        fs->cap *= 2;
    if ((fs->keys = calloc(fs->cap, sizeof(char *))) == NULL) {
        free(fs);
        return NULL;
    }
    for (int r = 0; r < rows; r++) {
        char key[FUNC_KEY_MAX];
        const char *kind = PQgetvalue(res, r, 0), *name = PQgetvalue(res, r, 1);
        if (kind[0] == 'i') {
            if (fs->implicit == NULL && (fs->implicit = strdup(name)) == NULL)
                goto oom;
            continue;
        }
        size_t n = func_key(key, kind, name, strlen(name));
        if (n > 0 && !func_set_add(fs, key, n))
            goto oom;
    }
    return fs;
oom:
    func_set_free(fs);
    return NULL;
}

static void func_read_done(void *arg, const PGresult *res, const char *error, bool server_answered);

/* The read on the next host in order; false when none is left. */
static bool func_read_next(struct func_database *db)
{
    char why[256];
    while (db->at < db->nconninfo) {
        const char *conninfo = db->conninfo[db->at++];
        db->q = pgasync_query(db->catalog->base, conninfo, FUNC_CATALOG_SQL, 0, NULL,
                              db->timeout_ms, func_read_done, db, why, sizeof(why));
        if (db->q != NULL)
            return true;
        log_warn(0, "nearest: could not read the routines of database \"%s\": %s", db->name, why);
    }
    return false;
}

/* Every host failed the read: not known until a later try. */
static void func_read_failed(struct func_database *db, const char *error)
{
    func_database_end_read(db);
    db->retry_at_ms = monotonic_ms() + FUNC_CATALOG_RETRY_MS;
    if (!db->warned)
        log_warn(0,
                 "nearest: could not read the routines of database \"%s\" (%s): every statement"
                 " that names a function, relation, operator or type runs on a primary until"
                 " they are read",
                 db->name, error != NULL ? error : "no host is up");
    db->warned = true;
    func_database_wake(db);
}

/*
 * pgasync's answer on one host: the copy made and kept, its waiters told;
 * a failure tries the next host in order, and after the last the read
 * failed (func_read_failed).
 */
static void func_read_done(void *arg, const PGresult *res, const char *error, bool server_answered)
{
    struct func_database *db = arg;
    (void)server_answered;
    db->q = NULL;
    /* A server's answer without the two columns (kind, name) is no catalog, not a crash. */
    if (error == NULL && PQnfields(res) < 2)
        error = "the server's answer has not the catalog's two columns";
    struct func_set *fs = error == NULL ? func_set_of(res) : NULL;
    if (error == NULL && fs == NULL)
        error = "out of memory";
    if (fs == NULL) {
        log_debug(0, "nearest: reading the routines of database \"%s\" failed on a host: %s",
                  db->name, error);
        if (!func_read_next(db))
            func_read_failed(db, error);
        return;
    }
    fs->read = db->reads;
    bool newly_implicit = fs->implicit != NULL && (db->set == NULL || db->set->implicit == NULL);
    func_set_carry_absent(fs, db->set);
    func_set_free(db->set);
    db->set = fs;
    db->generation = db->q_generation;
    db->read_at_ms = db->q_started_ms;
    if (db->warned)
        log_info(0, "nearest: the routines of database \"%s\" are read", db->name);
    db->warned = false;
    log_debug(0, "nearest: database \"%s\" has %zu names read", db->name, fs->count);
    if (newly_implicit)
        log_warn(0,
                 "nearest: in database \"%s\", %s may write although no statement names it:"
                 " every statement of that database runs on a primary",
                 db->name, fs->implicit);
    func_database_end_read(db);
    func_database_wake(db);
}

/*
 * The conninfo of each host up, primaries first, of the regions db lives
 * in now (the catalog's hosts hook), into db; false: out of memory.
 */
static bool func_read_hosts(struct func_database *db, const struct config *cfg)
{
    size_t cap = cfg->regions.count * REGION_MAX_HOSTS;
    const struct region_host **hosts = cap > 0 ? calloc(cap, sizeof(*hosts)) : NULL;
    if (cap > 0 && hosts == NULL)
        return false;
    struct func_catalog *c = db->catalog;
    size_t n =
        cap > 0 ? c->placed(c->placed_arg, cfg, db->name, PGCONN_PRIMARIES_FIRST, hosts, cap) : 0;
    bool ok = n == 0 || (db->conninfo = calloc(n, sizeof(char *))) != NULL;
    char buf[2048];
    for (size_t i = 0; i < n && ok; i++) {
        if (!pgconn_conninfo(cfg, hosts[i], db->name, "pgnear routines", buf, sizeof(buf)))
            continue;
        ok = (db->conninfo[db->nconninfo] = strdup(buf)) != NULL;
        db->nconninfo += ok;
    }
    free(hosts);
    return ok;
}

/* A read of db's catalog started, on its hosts in order; failed at once when none starts. */
static void func_read_start(struct func_database *db, const struct config *cfg, uint64_t gen)
{
    db->q_generation = gen;
    db->reads++;
    db->q_started_ms = monotonic_ms();
    db->timeout_ms = cfg->server_connect_timeout_ms * 2;
    if (!func_read_hosts(db, cfg)) {
        func_read_failed(db, "out of memory");
        return;
    }
    if (!func_read_next(db))
        func_read_failed(db, NULL);
}

/* c's entry of database name, made the first time; NULL: out of memory. */
struct func_database *func_catalog_database(struct func_catalog *c, const char *name)
{
    for (struct list_node *i = c->databases.head.next; i != &c->databases.head; i = i->next) {
        struct func_database *db = list_entry(i, struct func_database, node);
        if (strcmp(db->name, name) == 0)
            return db;
    }
    struct func_database *db = calloc(1, sizeof(*db));
    if (db == NULL || (db->name = strdup(name)) == NULL) {
        free(db);
        return NULL;
    }
    db->catalog = c;
    list_init(&db->waiters);
    list_append(&c->databases, &db->node);
    return db;
}

/*
 * db's copy while it answers (not older than FUNC_CATALOG_REFRESH_MS,
 * read in the workers' generation), a read started when it is due.
 */
struct func_set *func_catalog_get(struct func_database *db, const struct config *cfg)
{
    if (db == NULL)
        return NULL;
    uint64_t gen = __atomic_load_n(db->catalog->generation, __ATOMIC_ACQUIRE);
    int64_t now = monotonic_ms();
    int64_t age = now - db->read_at_ms;
    bool fresh = db->set != NULL && db->generation == gen && age < FUNC_CATALOG_REFRESH_MS;
    /* Read again halfway through: a database in use never waits for its routines. */
    bool due = !fresh || age >= FUNC_CATALOG_REFRESH_MS / 2;
    if (due && db->q == NULL && now >= db->retry_at_ms)
        func_read_start(db, cfg, gen);
    return fresh ? db->set : NULL;
}

/* Whether w waits for the read under way, there being no copy that answers. */
bool func_catalog_wait(struct func_database *db, const struct config *cfg, struct func_waiter *w)
{
    if (w->on != NULL)
        return true;
    if (db == NULL || func_catalog_get(db, cfg) != NULL || db->q == NULL)
        return false;
    w->on = &db->waiters;
    list_append(&db->waiters, &w->node);
    return true;
}

/* w off its database's waiters, if on them. */
void func_waiter_cancel(struct func_waiter *w)
{
    if (w->on != NULL)
        list_remove(w->on, &w->node);
    w->on = NULL;
}

/* A name the copy does not know: a read started unless one runs or the last failed lately. */
void func_catalog_demand(struct func_database *db, const struct config *cfg)
{
    if (db != NULL && db->q == NULL && monotonic_ms() >= db->retry_at_ms)
        func_read_start(db, cfg, __atomic_load_n(db->catalog->generation, __ATOMIC_ACQUIRE));
}

/* Whether w waits for the read under way of db. */
bool func_catalog_wait_read(struct func_database *db, struct func_waiter *w)
{
    if (w->on != NULL)
        return true;
    if (db == NULL || db->q == NULL)
        return false;
    w->on = &db->waiters;
    list_append(&db->waiters, &w->node);
    return true;
}
