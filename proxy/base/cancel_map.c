/*
 * cancel_map.c — open addressing with linear probing and backward-shift
 * deletion, so lookups never wade through tombstones.
 */
#include "proxy/base/cancel_map.h"

#include <stdlib.h>

/* Fibonacci hashing spreads sequential or clustered tags. */
static size_t slot_of(const struct cancel_map *m, uint32_t tag)
{
    return (size_t)((tag * 2654435769u) >> 7) & m->mask;
}

/* capacity_pow2 slots (64 when it is not a power of two of at least 8); -1 when out of memory. */
int cancel_map_init(struct cancel_map *m, size_t capacity_pow2)
{
    if (capacity_pow2 < 8 || (capacity_pow2 & (capacity_pow2 - 1)) != 0)
        capacity_pow2 = 64;
    m->slots = calloc(capacity_pow2, sizeof(*m->slots));
    if (m->slots == NULL)
        return -1;
    m->mask = capacity_pow2 - 1;
    m->floor = capacity_pow2;
    m->count = 0;
    return 0;
}

/* Frees the slots; the owners are the caller's. */
void cancel_map_free(struct cancel_map *m)
{
    free(m->slots);
    m->slots = NULL;
    m->count = 0;
}

/* Places an owner whose tag is known to be absent; the caller made sure a free slot exists. */
static void cancel_map_put(struct cancel_map *m, uint32_t tag, void *owner)
{
    size_t i = slot_of(m, tag);
    while (m->slots[i] != NULL)
        i = (i + 1) & m->mask;
    m->slots[i] = owner;
    m->count++;
}

/*
 * The table made capacity slots and every entry re-placed; the old table
 * stays as it was on failure.
 */
static int cancel_map_resize(struct cancel_map *m, size_t capacity, cancel_map_tag_fn tag_of)
{
    struct cancel_map other;
    if (cancel_map_init(&other, capacity) != 0)
        return -1;
    other.floor = m->floor;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->slots[i] != NULL)
            cancel_map_put(&other, tag_of(m->slots[i]), m->slots[i]);
    free(m->slots);
    *m = other;
    return 0;
}

bool cancel_map_insert(struct cancel_map *m, void *owner, cancel_map_tag_fn tag_of, bool *oom)
{
    uint32_t tag = tag_of(owner);
    *oom = false;
    if (cancel_map_find(m, tag, tag_of) != NULL)
        return false;
    /*
     * Three quarters full at most: a crowd's table is 11-21 bytes a
     * client, and a miss (a cancel with a key nobody holds) probes some 8
     * slots of linear probing's expected 8.5.
     */
    if ((m->count + 1) * 4 > (m->mask + 1) * 3 &&
        cancel_map_resize(m, (m->mask + 1) * 2, tag_of) != 0) {
        *oom = true;
        return false;
    }
    cancel_map_put(m, tag, owner);
    return true;
}

/*
 * The owner of tag, or NULL; a probe ends at the first empty slot, which
 * backward-shift deletion keeps true.
 */
void *cancel_map_find(const struct cancel_map *m, uint32_t tag, cancel_map_tag_fn tag_of)
{
    for (size_t i = slot_of(m, tag); m->slots[i] != NULL; i = (i + 1) & m->mask)
        if (tag_of(m->slots[i]) == tag)
            return m->slots[i];
    return NULL;
}

/* Moves later members of the probe run back into the hole left at i. */
static void cancel_map_close_gap(struct cancel_map *m, size_t hole, cancel_map_tag_fn tag_of)
{
    size_t i = hole;
    for (;;) {
        i = (i + 1) & m->mask;
        if (m->slots[i] == NULL)
            break;
        size_t home = slot_of(m, tag_of(m->slots[i]));
        /* Skip entries whose home lies cyclically in (hole, i]. */
        bool stays = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (stays)
            continue;
        m->slots[hole] = m->slots[i];
        m->slots[i] = NULL;
        hole = i;
    }
}

bool cancel_map_remove(struct cancel_map *m, const void *owner, cancel_map_tag_fn tag_of)
{
    if (owner == NULL)
        return false;
    uint32_t tag = tag_of(owner);
    for (size_t i = slot_of(m, tag); m->slots[i] != NULL; i = (i + 1) & m->mask) {
        if (m->slots[i] != owner)
            continue;
        m->slots[i] = NULL;
        m->count--;
        cancel_map_close_gap(m, i, tag_of);
        /*
         * A crowd gone leaves no table of its size behind: an eighth full,
         * halved (a quarter full then; doubled again only at three quarters).
         * Out of memory, it stays as it is.
         */
        if (m->count * 8 < m->mask + 1 && m->mask + 1 > m->floor)
            cancel_map_resize(m, (m->mask + 1) / 2, tag_of);
        return true;
    }
    return false;
}
