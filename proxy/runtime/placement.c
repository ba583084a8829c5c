/*
 * placement.c — where databases live now, over the file, and where the
 * rows of a city homed elsewhere live (placement.h).
 */
#include "proxy/runtime/placement.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proxy/base/config.h"
#include "routing/cities.h"
#include "routing/region.h"
#include "routing/route.h"

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

size_t placement_hosts(struct placement_table *t, const struct config *cfg, const char *database,
                       enum pgconn_pick pick, const struct region_host **out, size_t cap)
{
    struct region_subset sub;
    const struct region_subset *placed = placement_of(t, cfg, database, &sub);
    const struct region *regions[REGION_SUBSET_MAX];
    size_t n = 0;
    for (size_t i = 0; i < cfg->regions.count && n < REGION_SUBSET_MAX; i++)
        if (placed == NULL || region_subset_has(placed, &cfg->regions.items[i]))
            regions[n++] = &cfg->regions.items[i];
    return pgconn_hosts(regions, n, pick, out, cap);
}

/* The region of city's home (folded as key) in database into out; false when it has none. */
static bool city_home(struct placement_table *t, const char *database, const char *city, char *out,
                      size_t cap)
{
    char key[PLACEMENT_KEY_MAX + 1];
    bool found = false;
    if (city == NULL || city[0] == '\0' || !city_fold(city, key, sizeof(key)) || key[0] == '\0')
        return false;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nhomes && !found; i++) {
        const struct placement_home *h = &t->homes[i];
        found = h->city[0] != '\0' && h->region[0] != '\0' && strcmp(h->database, database) == 0 &&
                strcmp(h->key, key) == 0;
        if (found)
            snprintf(out, cap, "%s", h->region);
    }
    pthread_mutex_unlock(&t->lock);
    return found;
}

const struct region_subset *placement_of_city(struct placement_table *t, const struct config *cfg,
                                              const char *database, const struct locality *loc,
                                              struct region_subset *out)
{
    char home[PLACEMENT_NAME_MAX + 1];
    if (loc != NULL && __atomic_load_n(&t->nhomes, __ATOMIC_ACQUIRE) > 0 &&
        config_database_home_by(cfg, database) != NULL &&
        (city_home(t, database, loc->city, home, sizeof(home)) ||
         city_home(t, database, loc->matched, home, sizeof(home)))) {
        struct region *r = region_set_find(&cfg->regions, home);
        if (r != NULL) { /* a region no longer configured: where the database lives */
            out->count = 0;
            out->items[out->count++] = r;
            return out;
        }
    }
    return placement_of(t, cfg, database, out);
}

/* Whether a city of database has rows in region r (its home, or its live move's target). */
static bool city_rows_in(const struct placement_table *t, const char *database,
                         const struct region *r)
{
    for (size_t i = 0; i < t->nhomes; i++) {
        const struct placement_home *h = &t->homes[i];
        if (h->city[0] != '\0' && strcmp(h->database, database) == 0 &&
            (strcasecmp(h->region, r->name) == 0 || strcasecmp(h->target, r->name) == 0))
            return true;
    }
    return false;
}

void placement_add_city_regions(struct placement_table *t, const struct config *cfg,
                                const char *database, struct region_subset *out)
{
    if (__atomic_load_n(&t->nhomes, __ATOMIC_ACQUIRE) == 0 ||
        config_database_home_by(cfg, database) == NULL)
        return;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < cfg->regions.count && out->count < REGION_SUBSET_MAX; i++) {
        struct region *r = &cfg->regions.items[i];
        if (!region_subset_has(out, r) && city_rows_in(t, database, r))
            out->items[out->count++] = r;
    }
    pthread_mutex_unlock(&t->lock);
}

void placement_set_homes(struct placement_table *t, const struct placement_home *homes, size_t n)
{
    if (n > PLACEMENT_HOMES_MAX)
        n = PLACEMENT_HOMES_MAX;
    pthread_mutex_lock(&t->lock);
    memcpy(t->homes, homes, n * sizeof(*homes));
    __atomic_store_n(&t->nhomes, n, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&t->lock);
}

size_t placement_homes(struct placement_table *t, struct placement_home *out, size_t cap)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->nhomes < cap ? t->nhomes : cap;
    memcpy(out, t->homes, n * sizeof(*out));
    pthread_mutex_unlock(&t->lock);
    return n;
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

bool placement_is_city(const char *key, const char *city, const char *matched)
{
    char mine[PLACEMENT_KEY_MAX + 1];
    const char *names[2] = {city, matched};
    for (size_t i = 0; i < 2; i++)
        if (names[i] != NULL && names[i][0] != '\0' && city_fold(names[i], mine, sizeof(mine)) &&
            strcmp(mine, key) == 0)
            return true;
    return false;
}

/* The held city of database and key, under the lock; its index, or -1. */
static int held_city(const struct placement_table *t, const char *database, const char *key)
{
    for (size_t i = 0; i < t->nheld_cities; i++)
        if (strcmp(t->held_cities[i].database, database) == 0 &&
            strcmp(t->held_cities[i].key, key) == 0)
            return (int)i;
    return -1;
}

int placement_set_city_held(struct placement_table *t, const char *database, const char *key,
                            bool held)
{
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    int i = held_city(t, database, key);
    if (held && i < 0 && t->nheld_cities == PLACEMENT_HELD_CITIES) {
        rc = -1;
    } else if (held && i < 0) {
        struct placement_held_city *c = &t->held_cities[t->nheld_cities];
        snprintf(c->database, sizeof(c->database), "%s", database);
        snprintf(c->key, sizeof(c->key), "%s", key);
        __atomic_store_n(&t->nheld_cities, t->nheld_cities + 1, __ATOMIC_RELEASE);
    } else if (!held && i >= 0) {
        t->held_cities[i] = t->held_cities[t->nheld_cities - 1];
        __atomic_store_n(&t->nheld_cities, t->nheld_cities - 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

bool placement_city_held(struct placement_table *t, const char *database, const char *city,
                         const char *matched)
{
    bool held = false;
    if (__atomic_load_n(&t->nheld_cities, __ATOMIC_ACQUIRE) == 0)
        return false;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < t->nheld_cities && !held; i++)
        held = strcmp(t->held_cities[i].database, database) == 0 &&
               placement_is_city(t->held_cities[i].key, city, matched);
    pthread_mutex_unlock(&t->lock);
    return held;
}

void placement_set_home(struct placement_table *t, const struct placement_home *h)
{
    pthread_mutex_lock(&t->lock);
    size_t i = 0;
    while (i < t->nhomes && !(strcmp(t->homes[i].database, h->database) == 0 &&
                              strcmp(t->homes[i].key, h->key) == 0 &&
                              (t->homes[i].city[0] == '\0') == (h->city[0] == '\0')))
        i++;
    if (i < PLACEMENT_HOMES_MAX) {
        t->homes[i] = *h;
        if (i == t->nhomes)
            __atomic_store_n(&t->nhomes, i + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&t->lock);
}

bool placement_city_held_key(struct placement_table *t, const char *database, const char *key)
{
    pthread_mutex_lock(&t->lock);
    bool held = held_city(t, database, key) >= 0;
    pthread_mutex_unlock(&t->lock);
    return held;
}
