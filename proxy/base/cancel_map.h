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

struct cancel_slot {
    uint32_t tag;
    void *owner; /* NULL: empty slot */
};

struct cancel_map {
    struct cancel_slot *slots;
    size_t mask;  /* capacity - 1, capacity a power of two */
    size_t floor; /* the capacity it was made with, below which it is not shrunk */
    size_t count;
};

int cancel_map_init(struct cancel_map *m, size_t capacity_pow2);
void cancel_map_free(struct cancel_map *m);
/* false when the tag is taken (pick another key) or memory ran out (*oom set). */
bool cancel_map_insert(struct cancel_map *m, uint32_t tag, void *owner, bool *oom);
void *cancel_map_find(const struct cancel_map *m, uint32_t tag);
/* Removes tag only if it still belongs to owner. */
bool cancel_map_remove(struct cancel_map *m, uint32_t tag, const void *owner);

#endif
