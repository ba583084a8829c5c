/*
 * bytes8.h — a text read eight bytes at a time: a word loaded with byte j
 * in bits 8j..8j+7 on any machine, and the bytes of it that match marked
 * with their top bit, without a branch a byte.  The looks that read each
 * transaction's text for a few words (prep_store.c's DISCARD and
 * DEALLOCATE, txn_pin.c's quick look) use them to find where to compare.
 */
#ifndef PGNEAR_PROTOCOL_BYTES8_H
#define PGNEAR_PROTOCOL_BYTES8_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BYTES8_ONES  0x0101010101010101ULL
#define BYTES8_HIGHS 0x8080808080808080ULL

/* n <= 8 bytes of p, byte j in bits 8j..8j+7 whatever the machine's order; 0 past n. */
static inline uint64_t bytes8_load(const void *p, size_t n)
{
    uint64_t x = 0;
    memcpy(&x, p, n);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    x = __builtin_bswap64(x);
#endif
    return x;
}

/*
 * bytes8_load of the n < 8 bytes at p, with back bytes readable before p:
 * the eight ending at p + n, shifted, where there are eight (a
 * constant-size load, where a short one calls memcpy).
 */
static inline uint64_t bytes8_load_tail(const void *p, size_t n, size_t back)
{
    if (back + n < 8)
        return bytes8_load(p, n);
    return bytes8_load((const uint8_t *)p + n - 8, 8) >> (8 * (8 - n));
}

/*
 * The bytes of x equal to b, each marked with its top bit (a byte after a
 * marked one may be marked falsely: the caller looks at each again).
 */
static inline uint64_t bytes8_equal(uint64_t x, uint8_t b)
{
    uint64_t z = x ^ (BYTES8_ONES * b);
    return (z - BYTES8_ONES) & ~z & BYTES8_HIGHS;
}

/* The bytes of x equal to b, each marked with its top bit, and no other. */
static inline uint64_t bytes8_equal_exact(uint64_t x, uint8_t b)
{
    const uint64_t lows = ~BYTES8_HIGHS;
    uint64_t z = x ^ (BYTES8_ONES * b);
    /* a byte's low seven bits plus 0x7f carry into its top bit unless all zero: never further */
    return ~(((z & lows) + lows) | z) & BYTES8_HIGHS;
}

/*
 * The bytes of x that go on a SQL word as txn_pin.c reads one: ASCII
 * letters, '_' and every byte from 0x80 (PostgreSQL's identifiers take
 * those as letters), each marked with its top bit.  A letter in either
 * case is in 'a'..'z' with bit 0x20 set; the sums of the low seven bits
 * stay within their byte.
 */
static inline uint64_t bytes8_word(uint64_t x)
{
    const uint64_t lows = ~BYTES8_HIGHS;
    uint64_t folded = (x | (BYTES8_ONES * 0x20)) & lows;
    uint64_t from_a = (folded + BYTES8_ONES * (0x80 - 'a')) & BYTES8_HIGHS;
    uint64_t past_z = (folded + BYTES8_ONES * (0x80 - 'z' - 1)) & BYTES8_HIGHS;
    return (from_a & ~past_z) | (x & BYTES8_HIGHS) | bytes8_equal_exact(x, '_');
}

#endif
