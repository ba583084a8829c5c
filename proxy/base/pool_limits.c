/*
 * pool_limits.c — the shared counts behind pool_size and max_db_connections.
 */
#include "proxy/base/pool_limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Empty counts; -1 when the mutex cannot be made. */
int pool_limits_init(struct pool_limits *pl)
{
    memset(pl, 0, sizeof(*pl));
    return pthread_mutex_init(&pl->lock, NULL) == 0 ? 0 : -1;
}

/* Frees the counts and the mutex; pl may be initialised again. */
void pool_limits_free(struct pool_limits *pl)
{
    free(pl->counts);
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
    for (size_t i = 0; i < pl->n; i++)
        if (strcmp(pl->counts[i].key, key) == 0)
            return &pl->counts[i];
    if (!create)
        return NULL;
    if (pl->n == pl->cap) {
        size_t cap = pl->cap > 0 ? pl->cap * 2 : 16;
        struct pool_count *grown = realloc(pl->counts, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        pl->counts = grown;
        pl->cap = cap;
    }
    struct pool_count *c = &pl->counts[pl->n++];
    memset(c, 0, sizeof(*c));
    snprintf(c->key, sizeof(c->key), "%s", key);
    return c;
}

/* Removes a count nothing refers to any more (the last one takes its place). */
static void count_drop_if_unused(struct pool_limits *pl, struct pool_count *c)
{
    if (c->servers > 0 || c->waiting > 0)
        return;
    *c = pl->counts[--pl->n];
}

enum pool_reserve pool_limits_reserve(struct pool_limits *pl, const char *pool, const char *host,
                                      int pool_size, int max_db)
{
    enum pool_reserve rc = POOL_RESERVED;
    pthread_mutex_lock(&pl->lock);
    struct pool_count *p = count_find(pl, pool, true);
    struct pool_count *h = p != NULL ? count_find(pl, host, true) : NULL;
    if (h == NULL)
        rc = POOL_NO_MEMORY;
    else if (pool_size > 0 && p->servers >= pool_size)
        rc = POOL_FULL;
    else if (max_db > 0 && h->servers >= max_db)
        rc = POOL_HOST_FULL;
    if (rc == POOL_RESERVED) {
        p->servers++;
        h->servers++;
    }
    /* Unused ones go; the host's first, since dropping moves the last entry (maybe p). */
    if (h != NULL)
        count_drop_if_unused(pl, h);
    if (p != NULL && (p = count_find(pl, pool, false)) != NULL)
        count_drop_if_unused(pl, p);
    pthread_mutex_unlock(&pl->lock);
    return rc;
}

enum pool_reserve pool_limits_full(struct pool_limits *pl, const char *pool, const char *host,
                                   int pool_size, int max_db)
{
    enum pool_reserve rc = POOL_RESERVED;
    pthread_mutex_lock(&pl->lock);
    const struct pool_count *p = count_find(pl, pool, false), *h = count_find(pl, host, false);
    if (pool_size > 0 && p != NULL && p->servers >= pool_size)
        rc = POOL_FULL;
    else if (max_db > 0 && h != NULL && h->servers >= max_db)
        rc = POOL_HOST_FULL;
    pthread_mutex_unlock(&pl->lock);
    return rc;
}

bool pool_limits_release(struct pool_limits *pl, const char *pool, const char *host)
{
    pthread_mutex_lock(&pl->lock);
    const char *keys[] = {host, pool};
    for (size_t i = 0; i < 2; i++) {
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
