/*
 * pool_limits.c — the shared counts behind pool_size and max_db_connections.
 */
#include "proxy/base/pool_limits.h"

#include <stddef.h>
#include <string.h>

/* count_table keys an entry by the array at its start. */
_Static_assert(offsetof(struct pool_count, key) == 0, "a pool_count starts with its key");

/* Empty counts; -1 when the mutex cannot be made. */
int pool_limits_init(struct pool_limits *pl)
{
    memset(pl, 0, sizeof(*pl));
    count_table_init(&pl->counts, sizeof(struct pool_count), POOL_KEY_MAX);
    return pthread_mutex_init(&pl->lock, NULL) == 0 ? 0 : -1;
}

/* Frees the counts and the mutex; pl may be initialised again. */
void pool_limits_free(struct pool_limits *pl)
{
    count_table_free(&pl->counts);
    pthread_mutex_destroy(&pl->lock);
    memset(pl, 0, sizeof(*pl));
}

/* The names are NAMEDATALEN-bounded (pool.c refuses longer ones); a unit separator joins them. */
/*
 * Appends text to the key out, of *n bytes, cut at POOL_KEY_MAX - 1 as
 * snprintf would: a key is made at every wait and give-back under
 * transaction pooling, where formatting it cost more than the rest.
 */
static void key_append(char *out, size_t *n, const char *text)
{
    size_t room = POOL_KEY_MAX - 1 - *n, len = strnlen(text, room);
    memcpy(out + *n, text, len);
    *n += len;
    out[*n] = '\0';
}

void pool_key(char *out, const char *region, const char *database, const char *user)
{
    size_t n = 0;
    out[0] = '\0';
    key_append(out, &n, region);
    key_append(out, &n, "\x1f");
    key_append(out, &n, database);
    key_append(out, &n, "\x1f");
    key_append(out, &n, user);
}

/* A host's key starts with a record separator, so it never equals a pool's key (pool_key). */
void pool_host_key(char *out, const char *host, int port)
{
    char digits[16], *d = digits + sizeof(digits);
    unsigned value = port < 0 ? 0u - (unsigned)port : (unsigned)port;
    *--d = '\0';
    do
        *--d = (char)('0' + value % 10);
    while ((value /= 10) > 0);
    if (port < 0)
        *--d = '-';
    size_t n = 0;
    out[0] = '\0';
    key_append(out, &n, "\x1e");
    key_append(out, &n, host);
    key_append(out, &n, ":");
    key_append(out, &n, d);
}

/* The count of key, created (at zero) when create says so; NULL when absent or out of memory. */
static struct pool_count *count_find(struct pool_limits *pl, const char *key, bool create)
{
    return count_table_find(&pl->counts, key, create);
}

/* Removes a count nothing refers to any more (the last one takes its place). */
static void count_drop_if_unused(struct pool_limits *pl, struct pool_count *c)
{
    if (c->servers > 0 || c->waiting > 0)
        return;
    count_table_drop(&pl->counts, c);
}

void pool_user_key(char *out, const char *user, const char *host, int port)
{
    char host_key[POOL_KEY_MAX];
    size_t n = 0;
    pool_host_key(host_key, host, port);
    out[0] = '\0';
    key_append(out, &n, "\x1d");
    key_append(out, &n, user);
    key_append(out, &n, host_key);
}

/*
 * The user-on-host key of a pool's connections to host: the pool key's
 * user (after its last unit separator, less a slice's "\x1f#N") and the
 * host's key, as pool_user_key makes it.
 */
static void pool_user_key_of(char *out, const char *pool, const char *host)
{
    size_t len = strlen(pool), n = 0;
    const char *end = pool + len, *sep = memrchr(pool, '\x1f', len);
    if (sep != NULL && sep[1] == '#') { /* a slice's suffix */
        end = sep;
        sep = memrchr(pool, '\x1f', (size_t)(sep - pool));
    }
    const char *user = sep != NULL ? sep + 1 : pool;
    size_t user_len = (size_t)(end - user);
    out[0] = '\0';
    key_append(out, &n, "\x1d");
    if (user_len > POOL_KEY_MAX - 1 - n)
        user_len = POOL_KEY_MAX - 1 - n;
    memcpy(out + n, user, user_len);
    n += user_len;
    out[n] = '\0';
    key_append(out, &n, host);
}

/* The counts of keys that nothing refers to any more go (each found anew: a drop moves one). */
static void counts_drop_unused(struct pool_limits *pl, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct pool_count *c = count_find(pl, keys[i], false);
        if (c != NULL)
            count_drop_if_unused(pl, c);
    }
}

/* What the counts of the keys (pool, host, user on host) say of one more connection. */
static enum pool_reserve counts_room(struct pool_limits *pl, const char *const *keys, int pool_size,
                                     int max_db, int max_user)
{
    const struct pool_count *p = count_find(pl, keys[0], false);
    const struct pool_count *h = count_find(pl, keys[1], false);
    const struct pool_count *u = count_find(pl, keys[2], false);
    if (pool_size > 0 && p != NULL && p->servers >= pool_size)
        return POOL_FULL;
    if (max_db > 0 && h != NULL && h->servers >= max_db)
        return POOL_HOST_FULL;
    if (max_user > 0 && u != NULL && u->servers >= max_user)
        return POOL_USER_FULL;
    return POOL_RESERVED;
}

enum pool_reserve pool_limits_reserve_user(struct pool_limits *pl, const char *pool,
                                           const char *host, int pool_size, int max_db,
                                           int max_user)
{
    char user[POOL_KEY_MAX];
    pool_user_key_of(user, pool, host);
    const char *const keys[] = {pool, host, user};
    pthread_mutex_lock(&pl->lock);
    enum pool_reserve rc = counts_room(pl, keys, pool_size, max_db, max_user);
    size_t counted = 0;
    for (; counted < 3 && rc == POOL_RESERVED; counted++) {
        struct pool_count *c = count_find(pl, keys[counted], true);
        if (c == NULL) {
            rc = POOL_NO_MEMORY;
            break;
        }
        c->servers++;
    }
    for (size_t i = 0; rc == POOL_NO_MEMORY && i < counted; i++) /* uncounted again */
        count_find(pl, keys[i], false)->servers--;
    counts_drop_unused(pl, keys, 3);
    pthread_mutex_unlock(&pl->lock);
    return rc;
}

enum pool_reserve pool_limits_reserve(struct pool_limits *pl, const char *pool, const char *host,
                                      int pool_size, int max_db)
{
    return pool_limits_reserve_user(pl, pool, host, pool_size, max_db, 0);
}

enum pool_reserve pool_limits_full(struct pool_limits *pl, const char *pool, const char *host,
                                   int pool_size, int max_db)
{
    const char *const keys[] = {pool, host, ""};
    pthread_mutex_lock(&pl->lock);
    enum pool_reserve rc = counts_room(pl, keys, pool_size, max_db, 0);
    pthread_mutex_unlock(&pl->lock);
    return rc;
}

bool pool_limits_release(struct pool_limits *pl, const char *pool, const char *host)
{
    char user[POOL_KEY_MAX];
    pool_user_key_of(user, pool, host);
    pthread_mutex_lock(&pl->lock);
    const char *keys[] = {user, host, pool};
    for (size_t i = 0; i < 3; i++) {
        struct pool_count *c = count_find(pl, keys[i], false);
        if (c == NULL)
            continue;
        if (c->servers > 0)
            c->servers--;
        count_drop_if_unused(pl, c);
    }
    bool waiting = pl->waiting > 0;
    pthread_mutex_unlock(&pl->lock);
    return waiting;
}

void pool_limits_wait(struct pool_limits *pl, const char *pool, int delta)
{
    pthread_mutex_lock(&pl->lock);
    struct pool_count *c = count_find(pl, pool, delta > 0);
    if (c != NULL && c->waiting + delta >= 0) {
        c->waiting += delta;
        __atomic_add_fetch(&pl->waiting, delta, __ATOMIC_RELAXED);
        count_drop_if_unused(pl, c);
    }
    pthread_mutex_unlock(&pl->lock);
}

bool pool_limits_wait_report(struct pool_limits *pl, const char *pool, int64_t now_ms,
                             int64_t interval_ms, struct pool_wait_report *r)
{
    bool report = false;
    pthread_mutex_lock(&pl->lock);
    struct pool_count *c = count_find(pl, pool, true);
    if (c != NULL) {
        c->waiting++;
        c->began++;
        __atomic_add_fetch(&pl->waiting, 1, __ATOMIC_RELAXED);
        report = !c->reported || now_ms - c->reported_ms >= interval_ms;
        if (report) {
            r->waiting = c->waiting;
            r->began = c->began;
            c->began = 0;
            c->reported = true;
            c->reported_ms = now_ms;
        }
    }
    pthread_mutex_unlock(&pl->lock);
    return report;
}

/* One of pool's counts, read under the lock: its servers, else its waiting clients; 0: none. */
static int count_read(struct pool_limits *pl, const char *pool, bool servers)
{
    pthread_mutex_lock(&pl->lock);
    const struct pool_count *c = count_find(pl, pool, false);
    int n = c == NULL ? 0 : servers ? c->servers : c->waiting;
    pthread_mutex_unlock(&pl->lock);
    return n;
}

int pool_limits_waiting(struct pool_limits *pl, const char *pool)
{
    return count_read(pl, pool, false);
}

int pool_limits_servers(struct pool_limits *pl, const char *pool)
{
    return count_read(pl, pool, true);
}

int pool_limits_user_servers(struct pool_limits *pl, const char *user)
{
    char prefix[POOL_KEY_MAX];
    size_t n = 0, len;
    prefix[0] = '\0';
    key_append(prefix, &n, "\x1d");
    key_append(prefix, &n, user);
    key_append(prefix, &n, "\x1e");
    len = n;
    int servers = 0;
    pthread_mutex_lock(&pl->lock);
    for (size_t i = 0; i < pl->counts.n; i++) {
        const struct pool_count *c = count_table_at(&pl->counts, i);
        if (strncmp(c->key, prefix, len) == 0)
            servers += c->servers;
    }
    pthread_mutex_unlock(&pl->lock);
    return servers;
}

bool pool_limits_has_waiters(struct pool_limits *pl, const char *pool)
{
    if (__atomic_load_n(&pl->waiting, __ATOMIC_RELAXED) == 0)
        return false;
    pthread_mutex_lock(&pl->lock);
    const struct pool_count *c = count_find(pl, pool, false);
    bool waiting = c != NULL && c->waiting > 0;
    pthread_mutex_unlock(&pl->lock);
    return waiting;
}
