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

/* "00000002/16/B374D848" (tli 0: "16/B374D848") into buf; returns buf. */
const char *lsn_format(uint32_t tli, uint64_t lsn, char *buf, size_t cap);

#endif
