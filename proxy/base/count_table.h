/*
 * count_table.h — a growable table of counts keyed by a name, the one
 * under the shared limits (pool_limits.c: pools, hosts, users on hosts;
 * client_limits.c: users and databases).
 *
 * An entry is the owner's struct, its key a char array at its start
 * (key_max bytes, cut at key_max - 1 as snprintf cuts); the table finds,
 * creates (zeroed) and drops entries and knows nothing of what they count.
 * The owner holds its lock around every call.  Lookups walk the entries:
 * the table holds what is in use now (entries nothing refers to are
 * dropped), a few dozen in practice.
 */
#ifndef PGNEAR_PROXY_COUNT_TABLE_H
#define PGNEAR_PROXY_COUNT_TABLE_H

#include <stdbool.h>
#include <stddef.h>

struct count_table {
    void *items;      /* n entries of item_size bytes, room for cap */
    size_t item_size; /* an entry's size; its key at offset 0 */
    size_t key_max;   /* the key's array size */
    size_t n, cap;
};

/* An empty table of entries of item_size bytes, each led by a char key[key_max]. */
void count_table_init(struct count_table *t, size_t item_size, size_t key_max);
/* Frees the entries; t is empty, and may be used again. */
void count_table_free(struct count_table *t);

/*
 * The entry of key (compared as cut to key_max - 1), made zeroed with its
 * key when create says so; NULL when absent or out of memory.  A pointer
 * stays good until the next create or drop.
 */
void *count_table_find(struct count_table *t, const char *key, bool create);

/* Removes entry (one of t's): the last one takes its place. */
void count_table_drop(struct count_table *t, void *entry);

/* The i-th entry (i < t->n), in no order. */
static inline void *count_table_at(const struct count_table *t, size_t i)
{
    return (char *)t->items + i * t->item_size;
}

#endif
