/*
 * count_table.c — counts keyed by a name, found, made and dropped
 * (count_table.h).
 */
#include "proxy/base/count_table.h"

#include <stdlib.h>
#include <string.h>

void count_table_init(struct count_table *t, size_t item_size, size_t key_max)
{
    memset(t, 0, sizeof(*t));
    t->item_size = item_size;
    t->key_max = key_max;
}

void count_table_free(struct count_table *t)
{
    free(t->items);
    count_table_init(t, t->item_size, t->key_max);
}

/* Room for one more entry; false when out of memory. */
static bool count_table_grow(struct count_table *t)
{
    if (t->n < t->cap)
        return true;
    size_t cap = t->cap > 0 ? t->cap * 2 : 16;
    void *grown = realloc(t->items, cap * t->item_size);
    if (grown == NULL)
        return false;
    t->items = grown;
    t->cap = cap;
    return true;
}

/*
 * A stored key holds at most key_max - 1 bytes, so comparing that many
 * finds the key as it was cut when stored.
 */
void *count_table_find(struct count_table *t, const char *key, bool create)
{
    for (size_t i = 0; i < t->n; i++) {
        char *entry = count_table_at(t, i);
        if (strncmp(entry, key, t->key_max - 1) == 0)
            return entry;
    }
    if (!create || !count_table_grow(t))
        return NULL;
    char *entry = count_table_at(t, t->n++);
    memset(entry, 0, t->item_size);
    size_t len = strnlen(key, t->key_max - 1);
    memcpy(entry, key, len);
    return entry;
}

void count_table_drop(struct count_table *t, void *entry)
{
    void *last = count_table_at(t, --t->n);
    if (entry != last)
        memcpy(entry, last, t->item_size);
}
