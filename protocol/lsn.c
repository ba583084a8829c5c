/*
 * lsn.c — WAL positions as text (lsn.h).
 */
#include "protocol/lsn.h"

#include <stdio.h>

#include "protocol/hex.h"

/* One part: 1 to 8 hexadecimal digits; returns the bytes read, 0 when there is no part. */
static size_t lsn_hex_part(const char *p, size_t len, uint32_t *out)
{
    uint32_t v = 0;
    size_t n = 0;
    for (; n < len && n < 9; n++) {
        int d = hex_digit_value((unsigned char)p[n]);
        if (d < 0)
            break;
        v = v << 4 | (uint32_t)d;
    }
    if (n == 0 || n > 8)
        return 0;
    *out = v;
    return n;
}

int lsn_parse(const char *p, size_t len, uint32_t *tli, uint64_t *lsn)
{
    uint32_t part[3];
    size_t nparts = 0, pos = 0;
    while (nparts < 3) {
        size_t n = lsn_hex_part(p + pos, len - pos, &part[nparts]);
        if (n == 0)
            return LSN_EINVAL;
        pos += n;
        nparts++;
        if (pos == len)
            break;
        if (p[pos] != '/' || nparts == 3)
            return LSN_EINVAL;
        pos++;
    }
    if (nparts < 2 || (nparts == 3 && part[0] == 0))
        return LSN_EINVAL;
    *tli = nparts == 3 ? part[0] : 0;
    *lsn = (uint64_t)part[nparts - 2] << 32 | part[nparts - 1];
    return LSN_OK;
}

const char *lsn_format(uint32_t tli, uint64_t lsn, char *buf, size_t cap)
{
    if (tli != 0)
        snprintf(buf, cap, "%08X/%X/%X", tli, (unsigned)(lsn >> 32), (unsigned)lsn);
    else
        snprintf(buf, cap, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
    return buf;
}

#define LSN_SHORT_PAGE_HEADER 24 /* MAXALIGN(sizeof(XLogPageHeaderData)) */
#define LSN_LONG_PAGE_HEADER  40 /* MAXALIGN(sizeof(XLogLongPageHeaderData)), a segment's first */

uint64_t lsn_record_end(uint64_t insert, uint64_t block, uint64_t segment)
{
    if (segment != 0 && insert % segment == LSN_LONG_PAGE_HEADER)
        return insert - LSN_LONG_PAGE_HEADER;
    if (block != 0 && insert % block == LSN_SHORT_PAGE_HEADER)
        return insert - LSN_SHORT_PAGE_HEADER;
    return insert;
}
