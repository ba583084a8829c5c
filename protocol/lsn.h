/*
 * lsn.h — WAL positions as text: PostgreSQL's own form, "16/B374D848"
 * (two hexadecimal halves), and pgnear's fence, which names the timeline
 * in front as WAL file names do: "00000002/16/B374D848".
 */
#ifndef PGNEAR_PROTOCOL_LSN_H
#define PGNEAR_PROTOCOL_LSN_H

#include <stddef.h>
#include <stdint.h>

/* The longest fence lsn_format writes, with its NUL. */
#define LSN_TEXT_MAX 32

enum lsn_result {
    LSN_OK = 0,
    LSN_EINVAL = -1, /* not "X/X" nor "T/X/X" in hexadecimal, each part 1 to 8 digits */
};

/*
 * Parses len bytes at p: "X/X" (tli 0: not named) or "T/X/X" (T not 0).
 * Returns an enum lsn_result; *tli and *lsn are set only on LSN_OK.
 */
int lsn_parse(const char *p, size_t len, uint32_t *tli, uint64_t *lsn);

/*
 * The end of the last WAL record, from an insert position (PostgreSQL's
 * pg_current_wal_insert_lsn): where a record ended at a page boundary, the
 * insert position is past the next page's header (24 bytes, 40 at the
 * start of a segment), a place where no record ends and no standby's
 * replayed position ever stops.  block and segment: wal_block_size and
 * wal_segment_size in bytes (0: not known, nothing taken off).
 */
uint64_t lsn_record_end(uint64_t insert, uint64_t block, uint64_t segment);

/* "00000002/16/B374D848" (tli 0: "16/B374D848") into buf; returns buf. */
const char *lsn_format(uint32_t tli, uint64_t lsn, char *buf, size_t cap);

#endif
