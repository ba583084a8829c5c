/*
 * fuzz_state_leave.c
 *    libFuzzer target for protocol/state_leave.c, which reads a run of a
 *    client's bytes for messages that may leave state in the server's
 *    session.  The input's first byte is the skip (the bytes that end a
 *    message begun before), the rest the bytes, scanned from a buffer of
 *    exactly their length, so that a byte read past it is seen.  Promises
 *    that must hold, else it traps: the answer is NULL or one of the
 *    reasons; a Sync in front (skip 0) changes nothing; a prefix of the
 *    bytes ending where a message ends says no more than the whole.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/state_leave.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        __builtin_trap();
}

static const char *const reasons[] = {
    "a session-level SET",
    "set_config() outside a transaction-local call",
    "a temporary object",
    "LISTEN",
    "a SQL PREPARE",
    "a WITH HOLD cursor",
    "a session advisory lock",
    "LOAD",
    "a named prepared statement",
    "a Parse pgnear could not read",
    "a query longer than pgnear reads at once",
    "a Parse longer than pgnear reads at once",
    "a FunctionCall message",
};

static void check_reason(const char *why)
{
    if (why == NULL)
        return;
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (strcmp(why, reasons[i]) == 0)
            return;
    check(0);
}

/* The scan of head (hlen bytes) then data, from one buffer of exactly their length. */
static const char *scan_wrapped(const uint8_t *head, size_t hlen, const uint8_t *data, size_t size,
                                size_t skip, int *oom)
{
    uint8_t *buf = malloc(hlen + size ? hlen + size : 1);
    if (buf == NULL) {
        *oom = 1;
        return NULL;
    }
    if (hlen > 0)
        memcpy(buf, head, hlen);
    if (size > 0)
        memcpy(buf + hlen, data, size);
    const char *why = state_leave_scan(buf, hlen + size, skip);
    free(buf);
    return why;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t skip = data[0] % 16;
    data++;
    size--;
    int oom = 0;
    const char *why = scan_wrapped(NULL, 0, data, size, skip, &oom);
    check_reason(why);
    if (skip == 0) {
        static const uint8_t sync[5] = {'S', 0, 0, 0, 4};
        const char *behind = scan_wrapped(sync, sizeof(sync), data, size, 0, &oom);
        check(oom || (behind == NULL) == (why == NULL));
        /* The first message alone, when whole: its reason is the whole's if it has one. */
        if (size >= 5) {
            uint32_t l = ((uint32_t)data[1] << 24) | ((uint32_t)data[2] << 16) |
                         ((uint32_t)data[3] << 8) | data[4];
            if (l >= 4 && (size_t)l + 1 <= size) {
                const char *first = scan_wrapped(NULL, 0, data, (size_t)l + 1, 0, &oom);
                check(oom || first == NULL || (why != NULL && strcmp(first, why) == 0));
            }
        }
    }
    return 0;
}
