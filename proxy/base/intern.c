/*
 * intern.c — one counted copy of equal byte strings (intern.h).
 *
 * Buckets by a hash seeded at random as the table is made (what a client
 * sends is hashed: a seed it cannot know keeps it from aiming at one
 * bucket), doubled as the copies pass their number, halved back as they
 * fall to a quarter of it.
 */
#include "proxy/base/intern.h"

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "protocol/fnv.h"

#define INTERN_MIN_BUCKETS 16

struct intern_entry {
    struct intern_entry *next; /* in its bucket */
    uint32_t hash;
    uint32_t refs; /* its holders */
    uint32_t len;
    bool wipe;
    alignas(8) unsigned char bytes[];
};

struct intern_table {
    uint64_t seed;
    size_t copies, holders;
    size_t nbuckets; /* a power of two */
    struct intern_entry **buckets;
};

static uint32_t intern_hash(const struct intern_table *t, const void *bytes, size_t len)
{
    uint64_t h = hash_fold_words(t->seed, bytes, len);
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return (uint32_t)(h ^ (h >> 32));
}

static struct intern_table *intern_table_new(void)
{
    struct intern_table *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->nbuckets = INTERN_MIN_BUCKETS;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    if (t->buckets == NULL || RAND_bytes((unsigned char *)&t->seed, sizeof(t->seed)) != 1) {
        free(t->buckets);
        free(t);
        return NULL;
    }
    return t;
}

/* The table's entries moved to n buckets; out of memory they stay where they are. */
static void intern_rehash(struct intern_table *t, size_t n)
{
    struct intern_entry **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (struct intern_entry *e = t->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

static struct intern_entry *intern_new_entry(struct intern_table *t, const void *bytes, size_t len,
                                             uint32_t hash, bool wipe)
{
    struct intern_entry *e = malloc(sizeof(*e) + len);
    if (e == NULL)
        return NULL;
    e->hash = hash;
    e->refs = 0;
    e->len = (uint32_t)len;
    e->wipe = wipe;
    memcpy(e->bytes, bytes, len);
    e->next = t->buckets[hash & (t->nbuckets - 1)];
    t->buckets[hash & (t->nbuckets - 1)] = e;
    if (++t->copies > t->nbuckets)
        intern_rehash(t, t->nbuckets * 2);
    return e;
}

const void *intern_take(struct intern_table **tp, const void *bytes, size_t len, bool wipe)
{
    if (len > UINT32_MAX || (*tp == NULL && (*tp = intern_table_new()) == NULL))
        return NULL;
    struct intern_table *t = *tp;
    uint32_t hash = intern_hash(t, bytes, len);
    struct intern_entry *e = t->buckets[hash & (t->nbuckets - 1)];
    while (e != NULL && (e->hash != hash || e->len != len || memcmp(e->bytes, bytes, len) != 0))
        e = e->next;
    if (e == NULL && (e = intern_new_entry(t, bytes, len, hash, wipe)) == NULL) {
        if (t->copies == 0) {
            free(t->buckets);
            free(t);
            *tp = NULL;
        }
        return NULL;
    }
    e->refs++;
    t->holders++;
    return e->bytes;
}

void intern_drop(struct intern_table **tp, const void *copy)
{
    struct intern_table *t = *tp;
    if (copy == NULL || t == NULL)
        return;
    const struct intern_entry *held =
        (const struct intern_entry *)((const char *)copy - offsetof(struct intern_entry, bytes));
    struct intern_entry **at = &t->buckets[held->hash & (t->nbuckets - 1)];
    while (*at != NULL && *at != held)
        at = &(*at)->next;
    if (*at == NULL)
        return;
    struct intern_entry *e = *at;
    t->holders--;
    if (--e->refs > 0)
        return;
    *at = e->next;
    if (e->wipe)
        OPENSSL_cleanse(e, sizeof(*e) + e->len);
    free(e);
    if (--t->copies == 0) {
        free(t->buckets);
        free(t);
        *tp = NULL;
    } else if (t->nbuckets > INTERN_MIN_BUCKETS && t->copies < t->nbuckets / 4) {
        intern_rehash(t, t->nbuckets / 2);
    }
}

size_t intern_copies(const struct intern_table *t)
{
    return t != NULL ? t->copies : 0;
}

size_t intern_holders(const struct intern_table *t)
{
    return t != NULL ? t->holders : 0;
}
