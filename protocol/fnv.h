/*
 * fnv.h — the 64-bit FNV-1a hash: a few instructions a byte, for keys that
 * only pgnear compares (the prepared statements' tables, a Describe's
 * answer, a session's statement context).  Not for anything an attacker
 * could aim at unseeded: fold a seed in first where that matters.  Beside
 * it a fold eight bytes a step, for long keys hashed on every message
 * whose tables compare the bytes themselves on a match (a statement's
 * text: an unnamed Parse's, each extended-protocol transaction).
 */
#ifndef PGNEAR_PROTOCOL_FNV_H
#define PGNEAR_PROTOCOL_FNV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The hash of no bytes: where a fold starts. */
#define FNV1A_BASIS 0xcbf29ce484222325ull

/* h with the n bytes at p folded in. */
static inline uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* One step of hash_fold_words: w multiplied in, its high bits folded down. */
static inline uint64_t hash_fold_word(uint64_t h, uint64_t w)
{
    h = (h ^ w) * 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 32);
}

/*
 * h with the n bytes at p folded in eight at a time, the last short word
 * zero-filled and n itself after it.  Finish with a mixer before taking bits.
 */
static inline uint64_t hash_fold_words(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t w;
    size_t left = n;
    for (; left >= 8; b += 8, left -= 8) {
        memcpy(&w, b, 8);
        h = hash_fold_word(h, w);
    }
    w = 0;
    if (left > 0)
        memcpy(&w, b, left);
    return hash_fold_word(hash_fold_word(h, w), (uint64_t)n);
}

#endif
