/*
 * cancel_map.h — the cancel keys pgnear handed to clients, mapped to the
 * sessions they name.  Keyed by the key's first four bytes, which pgnear
 * keeps unique among live sessions; the caller compares the whole key.
 */
#ifndef PGNEAR_PROXY_CANCEL_MAP_H
#define PGNEAR_PROXY_CANCEL_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * An owner's tag.  The map keeps the owners only, 8 bytes a slot (a
 * crowd's table is 11-21 bytes a client), and asks an owner its tag as a
 * probe passes it; the tag must not change while the owner is in the map.
 */
typedef uint32_t (*cancel_map_tag_fn)(const void *owner);

struct cancel_map {
    void **slots; /* the owners; NULL: an empty slot */
    size_t mask;  /* capacity - 1, capacity a power of two */
    size_t floor; /* the capacity it was made with, below which it is not shrunk */
    size_t count;
};

int cancel_map_init(struct cancel_map *m, size_t capacity_pow2);
void cancel_map_free(struct cancel_map *m);
/* false when owner's tag is taken (pick another key) or memory ran out (*oom set). */
bool cancel_map_insert(struct cancel_map *m, void *owner, cancel_map_tag_fn tag_of, bool *oom);
void *cancel_map_find(const struct cancel_map *m, uint32_t tag, cancel_map_tag_fn tag_of);
/* Removes owner, found by its tag; false when it is not in the map. */
bool cancel_map_remove(struct cancel_map *m, const void *owner, cancel_map_tag_fn tag_of);

#endif
