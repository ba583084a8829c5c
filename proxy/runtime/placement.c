/*
 * placement.c — where databases live now, over the file (placement.h).
 */
#include "proxy/runtime/placement.h"

#include <stdio.h>
#include <string.h>

#include "proxy/base/config.h"
#include "routing/region.h"

/* An empty table; the mutex guards every entry, the count is read without it (table_empty). */
void placement_init(struct placement_table *t)
{
    memset(t, 0, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
}

/* The entries are inline in the table: only the mutex goes. */
void placement_destroy(struct placement_table *t)
{
    pthread_mutex_destroy(&t->lock);
}

/* The common case, no database placed by a move, answered without taking the lock. */
static bool table_empty(struct placement_table *t)
{
    return __atomic_load_n(&t->count, __ATOMIC_ACQUIRE) == 0;
}

/* database's entry, under the lock; NULL when it has none. */
static struct placement_entry *find(struct placement_table *t, const char *database)
{
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->items[i].database, database) == 0)
            return &t->items[i];
    return NULL;
}

/* database's entry, made when missing, under the lock; NULL when full or the name is too long. */
static struct placement_entry *find_or_add(struct placement_table *t, const char *database)
{
    struct placement_entry *e = find(t, database);
    if (e != NULL || strlen(database) > PLACEMENT_NAME_MAX || t->count == PLACEMENT_MAX)
        return e;
    e = &t->items[t->count];
    memset(e, 0, sizeof(*e));
    snprintf(e->database, sizeof(e->database), "%s", database);
    __atomic_store_n(&t->count, t->count + 1, __ATOMIC_RELEASE);
    return e;
}

/* An entry that says nothing any more goes (the last one takes its place). */
static void drop_if_empty(struct placement_table *t, struct placement_entry *e)
{
    if (e->region[0] != '\0' || e->flags != 0)
        return;
    *e = t->items[t->count - 1];
    __atomic_store_n(&t->count, t->count - 1, __ATOMIC_RELEASE);
}

const struct region_subset *placement_of(struct placement_table *t, const struct config *cfg,
                                         const char *database, struct region_subset *out)
{
    char region[PLACEMENT_NAME_MAX + 1];
    const struct region_subset *file = config_database_placement(cfg, database, out);
    if (table_empty(t) || !placement_region(t, database, region, sizeof(region)))
        return file;
    /*
     * A move names the region of the primary; the file's list may name its
     * standbys' regions beside it: where that region is listed, the file
     * says where the database lives.
     */
    struct region *r = region_set_find(&cfg->regions, region);
    if (file != NULL && r != NULL && region_subset_has(file, r))
        return file;
    out->count = 0;
    if (r != NULL)
        out->items[out->count++] = r;
    return out;
}

int placement_set_region(struct placement_table *t, const char *database, const char *region)
{
    pthread_mutex_lock(&t->lock);
    struct placement_entry *e = region[0] != '\0' ? find_or_add(t, database) : find(t, database);
    int rc = e != NULL || region[0] == '\0' ? 0 : -1;
    if (e != NULL) {
        snprintf(e->region, sizeof(e->region), "%s", region);
        drop_if_empty(t, e);
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

bool placement_region(struct placement_table *t, const char *database, char *out, size_t cap)
{
    if (table_empty(t))
        return false;
    pthread_mutex_lock(&t->lock);
    const struct placement_entry *e = find(t, database);
    bool named = e != NULL && e->region[0] != '\0';
    if (named)
        snprintf(out, cap, "%s", e->region);
    pthread_mutex_unlock(&t->lock);
    return named;
}

int placement_set_flag(struct placement_table *t, const char *database, enum placement_flag flag,
                       bool on)
{
    pthread_mutex_lock(&t->lock);
    struct placement_entry *e = on ? find_or_add(t, database) : find(t, database);
    int rc = e != NULL || !on ? 0 : -1;
    if (e != NULL) {
        e->flags = on ? e->flags | flag : e->flags & ~(unsigned)flag;
        drop_if_empty(t, e);
    }
    if (flag == PLACEMENT_LOCAL)
        t->local_epoch++;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

uint64_t placement_local_epoch(struct placement_table *t)
{
    pthread_mutex_lock(&t->lock);
    uint64_t epoch = t->local_epoch;
    pthread_mutex_unlock(&t->lock);
    return epoch;
}

/* Is flag set on database's entry? false when it has none. */
bool placement_flag(struct placement_table *t, const char *database, enum placement_flag flag)
{
    if (table_empty(t))
        return false;
    pthread_mutex_lock(&t->lock);
    const struct placement_entry *e = find(t, database);
    bool set = e != NULL && (e->flags & flag) != 0;
    pthread_mutex_unlock(&t->lock);
    return set;
}
