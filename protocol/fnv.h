/*
 * fnv.h — the 64-bit FNV-1a hash: a few instructions a byte, for keys that
 * only pgnear compares (the prepared statements' tables, a Describe's
 * answer, a session's statement context).  Not for anything an attacker
 * could aim at unseeded: fold a seed in first where that matters.
 */
#ifndef PGNEAR_PROTOCOL_FNV_H
#define PGNEAR_PROTOCOL_FNV_H

#include <stddef.h>
#include <stdint.h>

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

#endif
