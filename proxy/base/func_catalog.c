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
 * PostgreSQL's own objects have oids below FirstNormalObjectId (16384);
 * extensions' and users' above.  A procedure may be called only by CALL,
 * which runs on a primary anyway: they are listed for a name a function
 * shares with one.
 */
static const char FUNC_CATALOG_SQL[] =
    "SELECT DISTINCT proname::text FROM pg_catalog.pg_proc"
    " WHERE oid >= 16384 AND (provolatile = 'v' OR prokind = 'p')";

/* The names, in an open-addressed table of a power-of-two size. */
struct func_set {
    size_t cap, count;
    char **names;
};

struct func_database {
    struct list_node node;
    struct func_catalog *catalog;
    char *name;
    struct func_set *set; /* the last copy read; NULL: none */
    uint64_t generation;  /* the workers' generation when its read started */
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

int func_catalog_init(struct func_catalog *c, struct event_base *base, uint64_t *generation)
{
    c->base = base;
    c->generation = generation;
    list_init(&c->databases);
    return 0;
}

static void func_set_free(struct func_set *fs)
{
    if (fs == NULL)
        return;
    for (size_t i = 0; i < fs->cap; i++)
        free(fs->names[i]);
    free(fs->names);
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

void func_catalog_changed(struct func_catalog *c)
{
    __atomic_add_fetch(c->generation, 1, __ATOMIC_ACQ_REL);
}

static size_t func_slot(const struct func_set *fs, const char *name, size_t len)
{
    size_t i = (size_t)fnv1a(FNV1A_BASIS, name, len) & (fs->cap - 1);
    while (fs->names[i] != NULL &&
           (strncmp(fs->names[i], name, len) != 0 || fs->names[i][len] != '\0'))
        i = (i + 1) & (fs->cap - 1);
    return i;
}

bool func_set_writes(const struct func_set *fs, const char *name, size_t len)
{
    return fs->names[func_slot(fs, name, len)] != NULL;
}

/* A set of the names in the first column of res; NULL: out of memory. */
static struct func_set *func_set_of(const PGresult *res)
{
    struct func_set *fs = calloc(1, sizeof(*fs));
    int rows = PQntuples(res);
    if (fs == NULL)
        return NULL;
    fs->cap = 16;
    while (fs->cap < 2 * (size_t)rows + 1)
        fs->cap *= 2;
    if ((fs->names = calloc(fs->cap, sizeof(char *))) == NULL) {
        free(fs);
        return NULL;
    }
    for (int r = 0; r < rows; r++) {
        const char *name = PQgetvalue(res, r, 0);
        size_t i = func_slot(fs, name, strlen(name));
        if (fs->names[i] != NULL)
            continue;
        if ((fs->names[i] = strdup(name)) == NULL) {
            func_set_free(fs);
            return NULL;
        }
        fs->count++;
    }
    return fs;
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
                 " that calls a function runs on a primary until they are read",
                 db->name, error != NULL ? error : "no host is up");
    db->warned = true;
    func_database_wake(db);
}

static void func_read_done(void *arg, const PGresult *res, const char *error, bool server_answered)
{
    struct func_database *db = arg;
    (void)server_answered;
    db->q = NULL;
    /* A server's answer of no column (rows of nothing) is no catalog, not a crash. */
    if (error == NULL && PQnfields(res) < 1)
        error = "the server's answer has no column";
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
    func_set_free(db->set);
    db->set = fs;
    db->generation = db->q_generation;
    db->read_at_ms = db->q_started_ms;
    if (db->warned)
        log_info(0, "nearest: the routines of database \"%s\" are read", db->name);
    db->warned = false;
    log_debug(0, "nearest: database \"%s\" has %zu routines that may write", db->name, fs->count);
    func_database_end_read(db);
    func_database_wake(db);
}

/* The conninfo of each host up, primaries first, into db; false: out of memory. */
static bool func_read_hosts(struct func_database *db, const struct config *cfg)
{
    char buf[2048];
    size_t cap = 0;
    for (size_t i = 0; i < cfg->regions.count; i++)
        cap += cfg->regions.items[i].nhosts;
    if (cap == 0 || (db->conninfo = calloc(cap, sizeof(char *))) == NULL)
        return cap == 0;
    for (int standbys = 0; standbys <= 1; standbys++)
        for (size_t i = 0; i < cfg->regions.count; i++) {
            const struct region *r = &cfg->regions.items[i];
            for (size_t j = 0; j < r->nhosts; j++) {
                const struct region_host *h = &r->hosts[j];
                if (!host_is_up(h) || host_is_standby(h) != (standbys == 1) ||
                    !pgconn_conninfo(cfg, h, db->name, "pgnear routines", buf, sizeof(buf)))
                    continue;
                if ((db->conninfo[db->nconninfo] = strdup(buf)) == NULL)
                    return false;
                db->nconninfo++;
            }
        }
    return true;
}

static void func_read_start(struct func_database *db, const struct config *cfg, uint64_t gen)
{
    db->q_generation = gen;
    db->q_started_ms = monotonic_ms();
    db->timeout_ms = cfg->server_connect_timeout_ms * 2;
    if (!func_read_hosts(db, cfg)) {
        func_read_failed(db, "out of memory");
        return;
    }
    if (!func_read_next(db))
        func_read_failed(db, NULL);
}

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

const struct func_set *func_catalog_get(struct func_database *db, const struct config *cfg)
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

void func_waiter_cancel(struct func_waiter *w)
{
    if (w->on != NULL)
        list_remove(w->on, &w->node);
    w->on = NULL;
}
