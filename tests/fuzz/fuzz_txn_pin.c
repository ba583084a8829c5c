/*
 * fuzz_txn_pin.c
 *    libFuzzer target for protocol/txn_pin.c, the scan that says whether
 *    a Query's text ties its client to the server connection.  The input
 *    is the text, scanned from a buffer of exactly its length, so that a
 *    byte read past it is seen.  Promises that must hold, else it traps:
 *    the answer is NULL or one of the reasons; a statement ended before
 *    the text changes nothing ("SELECT 1; " in front gives the same
 *    answer); and the text inside a dollar-quoted string, whose tag it
 *    does not hold, is a string and pins nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/txn_pin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static const char *const reasons[] = {
    "a session-level SET",     "set_config() outside a transaction-local call",
    "a temporary object",      "LISTEN",
    "a SQL PREPARE",           "a WITH HOLD cursor",
    "a session advisory lock", "LOAD",
};

static void check_reason(const char *why)
{
    if (why == NULL)
        return;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (why == reasons[i] || strcmp(why, reasons[i]) == 0)
            return;
    check(0);
}

/* The scan of head, data and tail, from one buffer of exactly their length. */
static const char *scan_wrapped(const char *head, const uint8_t *data, size_t size,
                                const char *tail)
{
    size_t hlen = strlen(head), tlen = strlen(tail), n = hlen + size + tlen;
    uint8_t *buf = malloc(n ? n : 1);
    if (buf == NULL)
        return NULL;
    memcpy(buf, head, hlen);
    if (size > 0)
        memcpy(buf + hlen, data, size);
    memcpy(buf + hlen + size, tail, tlen);
    const char *why = txn_pin_scan(buf, n);
    free(buf);
    return why;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *why = scan_wrapped("", data, size, "");
    check_reason(why);
    check(scan_wrapped("SELECT 1; ", data, size, "") == why);
    if (memmem(data, size, "$fz$", 4) == NULL)
        check(scan_wrapped("SELECT $fz$", data, size, "$fz$") == NULL);
    return 0;
}
